"""Backpressure: a reader that falls behind slows the writers feeding it, briefly.

A publisher whose input delivered to a congested connection is not read again for a
few milliseconds, so the reader gets a chance to catch up; it is never held longer,
so one subscriber that stops reading cannot stop its publishers.  The subscriber's
buffer then grows until ``max_pending`` (or the write deadline) cuts it off as a slow
consumer, as nats-server does: it stalls such producers for 2 to 5 ms per read and
offers ``no_fast_producer_stall`` to not stall them at all.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

#: How long one input that fed congestion holds its producer (nats-server's upper bound).
STALL = 0.005


class Pausable(Protocol):
    #: Times this producer was held back (``stalls`` in /connz).
    stalls: int

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FlowControl:
    def __init__(self, stall: bool = True) -> None:
        #: Set by a congested connection when something is delivered to it.
        self.hit = False
        self.congested = 0
        #: False with ``no_fast_producer_stall``: producers are never held.
        self.stall = stall
        #: Stalls so far (``stalled_clients`` in /varz).
        self.stalled = 0
        self._paused: dict[Pausable, asyncio.TimerHandle] = {}

    def congest(self) -> None:
        self.congested += 1

    def relieve(self) -> None:
        """A congested connection drained or went away: let the writers go at once."""
        self.congested = max(self.congested - 1, 0)
        paused, self._paused = self._paused, {}
        for producer, timer in paused.items():
            timer.cancel()
            producer.resume_reading()

    def after_input(self, producer: Pausable) -> None:
        """Call after a connection's input was processed: hold it if it fed congestion."""
        if self.hit:
            self.hit = False
            if self.congested and self.stall and producer not in self._paused:
                producer.stalls += 1
                self.stalled += 1
                producer.pause_reading()
                loop = asyncio.get_running_loop()
                self._paused[producer] = loop.call_later(STALL, self._release, producer)

    def _release(self, producer: Pausable) -> None:
        if self._paused.pop(producer, None) is not None:
            producer.resume_reading()

    def forget(self, producer: Pausable) -> None:
        timer = self._paused.pop(producer, None)
        if timer is not None:
            timer.cancel()
