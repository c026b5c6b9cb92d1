"""Where OpenLineage events go: ``--openlineage``, then dbtassets.yml's ``openlineage:``, then the OpenLineage
client's own configuration (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, ``openlineage.yml``, ``OPENLINEAGE__…``
variables), read by the client itself. Nothing configured: off, and openlineage-python is never imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def resolve(option: str | None, setting: str | Mapping[str, Any] | None, settings_file: Path) -> tuple[Any, str] | None:
    """The transport to send through and a description of where it sends, or None when nothing configures it.

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
    try:
        from openlineage.client import OpenLineageClient
    except ImportError:
        raise ConfigError(f"OpenLineage is configured ({source}) but openlineage-python is not installed "
                          f"{INSTALL}; or remove that setting") from None
    try:
        client = OpenLineageClient(config=config) if config is not None else OpenLineageClient()
    except Exception as exc:  # the client's own errors: a wrong transport type, a missing key
        raise ConfigError(f"OpenLineage configuration ({source}): {type(exc).__name__}: {exc}") from None
    transport = client.transport
    url = getattr(getattr(transport, "config", None), "url", None) or getattr(transport, "url", None)
    return transport, f"the OpenLineage receiver ({url or transport.kind}, from {source})"
