"""Giving memory back to the system after a burst.

A slow consumer may hold up to ``max_pending`` (64 MB by default) of queued output
before it is cut off.  When it goes, CPython frees those buffers, but glibc keeps the
pages for reuse, so the process stays as large as at the peak.  ``malloc_trim`` hands
the free pages back; it runs once, a moment after the last cut-off, when the buffers are
gone.  Elsewhere (no glibc) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from typing import Any

#: Seconds between a cut-off and the trim: the transport frees its buffer on close.
TRIM_DELAY = 1.0


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


_trim = _malloc_trim()
_pending: asyncio.TimerHandle | None = None


def release_soon() -> None:
    """Return freed memory to the system shortly (once for a run of calls)."""
    global _pending
    if _trim is None or _pending is not None:
        return
    _pending = asyncio.get_running_loop().call_later(TRIM_DELAY, _release)


def _release() -> None:
    global _pending
    _pending = None
    _trim(0)
