"""One loop timer serving many members: due order, rescheduling, cancelling."""

from __future__ import annotations

import asyncio

import pytest

from jetport.core.ticker import Ticker, Tickers


class Member:
    def __init__(self, name: str, log: list[str], again: Ticker | None = None) -> None:
        self.name, self.log, self.again = name, log, again

    def tick(self) -> None:
        self.log.append(self.name)
        if self.again is not None:
            self.again.schedule(self)


async def test_members_tick_in_the_order_they_were_scheduled() -> None:
    ticker, log = Ticker(0.02, asyncio.get_running_loop()), []
    for name in "abc":
        ticker.schedule(Member(name, log))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    assert log == ["a", "b", "c"] and len(ticker) == 0


async def test_a_member_that_schedules_itself_again_keeps_ticking() -> None:
    log: list[str] = []
    ticker = Ticker(0.01, asyncio.get_running_loop())
    ticker.schedule(Member("a", log, again=ticker))
    await asyncio.sleep(0.075)
    assert 4 <= len(log) <= 8
    assert len(ticker) == 1


async def test_rescheduling_moves_a_member_back_and_cancel_forgets_it() -> None:
    log: list[str] = []
    ticker = Ticker(0.03, asyncio.get_running_loop())
    a, b, c = Member("a", log), Member("b", log), Member("c", log)
    for m in (a, b, c):
        ticker.schedule(m)
    await asyncio.sleep(0.01)
    ticker.schedule(a)  # activity: due one interval from now, after b
    ticker.cancel(c)
    await asyncio.sleep(0.025)
    assert log == ["b"]
    await asyncio.sleep(0.02)
    assert log == ["b", "a"] and len(ticker) == 0


async def test_a_failing_member_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []

    class Broken:
        def tick(self) -> None:
            raise RuntimeError("boom")

    ticker = Ticker(0.01, asyncio.get_running_loop())
    ticker.schedule(Broken())
    ticker.schedule(Member("ok", log))
    await asyncio.sleep(0.04)
    assert log == ["ok"]
    assert "periodic tick failed" in caplog.text


async def test_one_ticker_per_interval() -> None:
    tickers = Tickers()
    assert tickers.get(2.0) is tickers.get(2.0)
    assert tickers.get(2.0) is not tickers.get(0.5)
