"""OpenLineage: every build pass, every asset built and every source observation that moved, as standard
lineage events, with the cause of each build (a run facet of dbtassets' own). Off unless configured.

``config`` finds the transport the way the OpenLineage client does; ``events`` and ``cause`` make the
events; ``sender`` sends them from a thread of its own; ``emitter`` hears the builder (a
:class:`dbtassets.builder.BuildListener`). docs/openlineage.md describes the whole.
"""
