"""Which machine and process a run or a lease belongs to, so a store shared by machines judges each rightly.

A run of this machine is alive while its process is; one of another machine cannot be asked, and is
judged by its leases instead (:mod:`dbtassets.state.leases`).
"""

from __future__ import annotations

import os


def machine_name() -> str:
    """This machine's name in runs and leases: ``DBTASSETS_HOST``, else the host name.

    Set ``DBTASSETS_HOST`` where host names are not unique among the machines sharing a store
    (containers started from one image with a fixed host name).
    """
    import socket  # imported where used: most commands never get here

    return os.environ.get("DBTASSETS_HOST") or socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
