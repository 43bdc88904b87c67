"""A web node's open-file limit: every socket it serves is an open file."""

from __future__ import annotations

import resource

# Beyond the connections it serves, a node holds its database and Redis connections, the
# listening socket, its logs and the interpreter's own files.
RESERVED_FILES = 256


def files_wanted(max_connections: int) -> int:
    # A client holds one connection, a WebSocket or a long-poll; HTTP requests come and go.
    return max_connections + RESERVED_FILES


def fit_file_limit(wanted: int) -> int:
    """Raise this process's soft open-file limit toward ``wanted``, within its hard limit.

    Returns the soft limit in force. Containers and login shells often start processes at a
    soft limit of 1,024 under a much higher hard one; only the hard limit needs privileges.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            # macOS refuses soft limits above its per-process maximum, even under an infinite hard one.
            return soft
    return target
