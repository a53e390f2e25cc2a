"""Worker processes that die with the process that started them.

A pool worker whose driver is killed (``kill -9``, an OOM kill, a scheduler) would otherwise
finish its task and then wait forever on a queue nobody writes. ``die_with_parent`` is a pool
``initializer``: on Linux it asks the kernel for SIGKILL when the parent dies
(``PR_SET_PDEATHSIG``); everywhere, a watchdog thread exits once the process is reparented.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` (its parent) dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the hook was set
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # reparented: the parent is gone

    threading.Thread(target=watch, name="learnlab-parent-watch", daemon=True).start()
