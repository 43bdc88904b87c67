"""A worker's child dies with it: a SIGKILLed worker leaves no work horse or scheduler running.

Linux delivers a chosen signal to a process when its parent exits (``PR_SET_PDEATHSIG``),
however the parent died. Elsewhere nothing is set up and such children can outlive their
worker; the watchdog still retries or fails the task, but the orphan runs on.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when ``parent_pid``, its parent, exits.

    Called first thing in a freshly forked child. The signal is tied to the parent's thread
    that forked the child, so fork only from the worker's main thread. A parent that died
    before the signal was set can no longer deliver it: the child then exits at once.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        log.warning("could not ask to die with the worker: %s", os.strerror(errno))
        return
    if os.getppid() != parent_pid:
        os._exit(1)
