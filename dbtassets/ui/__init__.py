"""The page: a live asset graph in the browser, with ``/healthz`` and ``/metrics`` beside it.

:mod:`~dbtassets.ui.views` turns the engine's answers into the JSON the page reads (reusing the
``--format json`` documents), :mod:`~dbtassets.ui.live` follows the watcher's typed events and the
store's newest records, :mod:`~dbtassets.ui.metrics` writes the Prometheus text format and
:mod:`~dbtassets.ui.server` serves it all read-only with the standard library's HTTP server. The
page itself (``static/``) is plain HTML, CSS and JavaScript: nothing to build, nothing from a CDN.

Nothing outside ``dbtassets ui`` and ``dbtassets watch --ui`` imports this package.
"""
