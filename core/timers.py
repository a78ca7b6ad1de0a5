"""Named loop timers of one connection (auth, write deadline, linger...).

Most connections have none running once they are established, so the dict that holds
them exists only while one does: a dict emptied by its last ``pop`` keeps its table
(about 200 bytes per idle connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class NamedTimers:
    """A mixin for a door's connection class; the class provides ``_loop``."""

    _timers: dict[str, asyncio.TimerHandle] | None = None
    _loop: asyncio.AbstractEventLoop

    def _start_timer(self, name: str, delay: float, callback: Callable[..., object],
                     *args: object) -> None:
        """Start (or restart) the timer called ``name``."""
        timers = self._timers
        if timers is None:
            timers = self._timers = {}
        old = timers.get(name)
        if old is not None:
            old.cancel()
        timers[name] = self._loop.call_later(delay, callback, *args)

    def _stop_timer(self, name: str) -> None:
        timers = self._timers
        if timers:
            timer = timers.pop(name, None)
            if timer is not None:
                timer.cancel()
            if not timers:
                self._timers = None

    def _stop_timers(self) -> None:
        """Cancel every timer (the connection is gone)."""
        for timer in (self._timers or {}).values():
            timer.cancel()
        self._timers = None
