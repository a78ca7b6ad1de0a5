"""One loop timer for many clients' periodic work (keepalive pings).

A timer handle per client costs about 1.5 KB (the handle, its callback and the loop's
own timer), the largest single part of an idle connection. Clients that share an
interval are due in the order they were scheduled, so an insertion-ordered dict is
their queue: the first entry is always the next due, rescheduling moves a client to the
end, and forgetting one is O(1). About 100 bytes per client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from jetport.core.log import log


class Ticking(Protocol):
    """What a ticker calls when a member is due (hashable by identity)."""

    def tick(self) -> None: ...


class Ticker:
    """Calls each member's ``tick()`` ``interval`` seconds after it was last scheduled."""

    __slots__ = ("interval", "_loop", "_due", "_timer")

    def __init__(self, interval: float, loop: asyncio.AbstractEventLoop) -> None:
        self.interval = interval
        self._loop = loop
        self._due: dict[Ticking, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, member: Ticking) -> None:
        """(Re)schedule ``member`` one interval from now; replaces an earlier schedule."""
        due = self._due
        due.pop(member, None)
        due[member] = self._loop.time() + self.interval
        if self._timer is None:
            self._arm()

    def cancel(self, member: Ticking) -> None:
        self._due.pop(member, None)

    def _arm(self) -> None:
        when = next(iter(self._due.values()))
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        due = self._due
        now = self._loop.time()
        # A member's tick usually schedules it again (to the end), so take the due ones
        # first; one that cancels or reschedules another must not be called stale.
        ready: list[Ticking] = []
        for member, at in due.items():
            if at > now:
                break
            ready.append(member)
        for member in ready:
            when = due.get(member)
            if when is not None and when <= now:  # not cancelled or moved by an earlier tick
                del due[member]
                _call(member.tick)
        if due and self._timer is None:
            self._arm()


def _call(tick: Callable[[], None]) -> None:
    """One member's failure is its own: the others still get their ticks."""
    try:
        tick()
    except Exception:  # noqa: BLE001 - logged with the member it belongs to
        log.exception("periodic tick failed: %r", getattr(tick, "__self__", tick))


class Tickers:
    """The hub's tickers, one per interval (doors may ping at their own)."""

    __slots__ = ("_by_interval",)

    def __init__(self) -> None:
        self._by_interval: dict[float, Ticker] = {}

    def get(self, interval: float) -> Ticker:
        ticker = self._by_interval.get(interval)
        if ticker is None:
            ticker = self._by_interval[interval] = Ticker(interval, asyncio.get_running_loop())
        return ticker
