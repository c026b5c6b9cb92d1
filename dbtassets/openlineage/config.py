"""Where OpenLineage events go: ``--openlineage``, then dbtassets.yml's ``openlineage:``, then the OpenLineage
client's own configuration (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, ``openlineage.yml``, ``OPENLINEAGE__…``
variables), read by the client itself. Nothing configured: off, and openlineage-python is never imported.

Configured, the client is imported and made on the sender's thread, while dbt builds (its import costs about
half a second): the command checks at start only what costs nothing (the client is installed, the shorthand
parses, dbtassets.yml's mapping names its transport's type); what only the client can tell, the sender's thread
says.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dbtassets.errors import ConfigError

INSTALL = "(pip install openlineage-python), or install dbtassets with its openlineage extra"


def shorthand(value: str, where: str) -> dict[str, Any]:
    """``http://…`` or ``https://…`` (an http transport), ``file:PATH`` (one JSON event a line) or ``console``:
    the client's transport config. The http transport tries once; the sender tries again itself, never holding
    a build."""
    if value.startswith(("http://", "https://")):
        return {"type": "http", "url": value, "timeout": 5.0, "retry": {"total": 0, "connect": 0, "read": 0}}
    if value.startswith("file:") and value[5:]:
        return {"type": "file", "log_file_path": str(Path(value[5:]).expanduser()), "append": True}
    if value == "console":
        return {"type": "console"}
    raise ConfigError(f"{where}: expected http://HOST[:PORT] (or https://), file:PATH or console, got {value!r}")


def _configured_by_environment() -> str | None:
    """What configures the client from the environment, if anything (it reads them itself)."""
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        if os.environ.get(name):
            return f"the environment variable {name}"
    if any(k.startswith("OPENLINEAGE__TRANSPORT") for k in os.environ):
        return "the OPENLINEAGE__TRANSPORT… environment variables"
    for path in (Path.cwd() / "openlineage.yml", Path("~/.openlineage/openlineage.yml").expanduser()):
        if path.is_file():
            return str(path)
    return None


def _installed() -> bool:
    try:
        return importlib.util.find_spec("openlineage.client") is not None  # runs openlineage/__init__ only
    except ImportError:
        return False


def reach(url: str | None) -> Callable[[], None] | None:
    """For an http or https receiver: a check that it takes connections (raising OSError when it refuses them), so
    that the client is not imported to send to a receiver that is down; None for other transports."""
    if not url or not url.startswith(("http://", "https://")) or any(
            name.lower().endswith("_proxy") for name in os.environ):  # through a proxy: only the client knows
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        address = (parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:  # a port that is not a number: the client says so
        return None

    def connect() -> None:
        import socket

        socket.create_connection(address, timeout=5).close()

    return connect


def resolve(option: str | None, setting: str | Mapping[str, Any] | None,
            settings_file: Path) -> tuple[Callable[[], Any], Callable[[], None] | None, str] | None:
    """How to make the transport to send through (called on the sender's thread), how to check an http receiver
    takes connections (see :func:`reach`) and a description of where it sends, or None when nothing configures it.

    Raises:
        ConfigError: it is configured but openlineage-python is not installed, or the configuration is wrong.
    """
    config: dict[str, Any] | None = None
    if option is not None:
        source, config = "--openlineage", {"transport": shorthand(option, "--openlineage")}
    elif isinstance(setting, str):
        source = f"{settings_file}: openlineage"
        config = {"transport": shorthand(setting, source)}
    elif setting is not None:
        source, config = f"{settings_file}: openlineage", dict(setting)
    else:
        found = _configured_by_environment()
        if found is None:
            return None
        source = found
    if not _installed():
        raise ConfigError(f"OpenLineage is configured ({source}) but openlineage-python is not installed "
                          f"{INSTALL}; or remove that setting")

    def connect() -> Any:
        from openlineage.client import OpenLineageClient

        return (OpenLineageClient(config=config) if config is not None else OpenLineageClient()).transport

    transport = (config or {}).get("transport", {})
    url = transport.get("url") if transport.get("type") == "http" else None  # configured by the client: its own
    detail = transport.get("url") or transport.get("type") or os.environ.get("OPENLINEAGE_URL")
    return connect, reach(url), f"the OpenLineage receiver ({detail + ', ' if detail else ''}from {source})"
