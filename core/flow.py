"""Backpressure: a reader that falls behind slows the writers feeding it.

Instead of letting a fast publisher grow a slow subscriber's buffer until it is cut
off, a publisher that delivered to a congested connection stops being read until
congestion clears (nats-server stalls such producers for the same reason).  A
subscriber that stays congested past the write deadline is still dropped as a slow
consumer, which releases everyone.
"""

from __future__ import annotations

from typing import Protocol


class Pausable(Protocol):
    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FlowControl:
    def __init__(self) -> None:
        #: Set by a congested connection when something is delivered to it.
        self.hit = False
        self.congested = 0
        self._paused: set[Pausable] = set()

    def congest(self) -> None:
        self.congested += 1

    def relieve(self) -> None:
        """A congested connection drained or went away: let the writers go again."""
        self.congested = max(self.congested - 1, 0)
        paused, self._paused = self._paused, set()
        for producer in paused:
            producer.resume_reading()

    def after_input(self, producer: Pausable) -> None:
        """Call after a connection's input was processed: pause it if it fed congestion."""
        if self.hit:
            self.hit = False
            if self.congested:
                self._paused.add(producer)
                producer.pause_reading()

    def forget(self, producer: Pausable) -> None:
        self._paused.discard(producer)
