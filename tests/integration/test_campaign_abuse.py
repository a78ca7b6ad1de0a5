"""The abuse campaign's scenarios, each in a few seconds (``make abuse`` runs
``tests/campaigns/abuse.py`` in full): slow first bytes on every door, connect floods,
subscribers that stop reading on every door, and a hub out of descriptors.

The short runs lower ``max_pending`` to 8 MB so slow consumers are cut after a few
seconds of flooding instead of a few hundred megabytes.
"""

from __future__ import annotations

from pathlib import Path

from campaigns import abuse

SHORT = {"slow_clients": 5, "slow_interval": 0.5, "slow_cap": 11.0, "flood_seconds": 0.5,
         "flood_workers": 50, "flood_max_seconds": 30.0, "slow_rounds": 1, "settle": 2.0,
         "nofile": 120, "full_watch": 2.0, "extra_conf": "max_pending: 8MB\n"}


async def run(tmp_path: Path, scenario: str) -> None:
    report = await abuse.campaign(only=(scenario,), dir=str(tmp_path / scenario), keep=True,
                                  **SHORT)
    text = abuse.render(report)
    print(text)
    assert report.rows, text
    assert report.ok, "\n".join([text, "", *report.failures])


async def test_slow_first_bytes_are_closed_by_the_hubs_timeouts(tmp_path: Path) -> None:
    await run(tmp_path, "slowloris")


async def test_connect_floods_leave_no_descriptors_behind(tmp_path: Path) -> None:
    await run(tmp_path, "flood")


async def test_subscribers_that_stop_reading_are_cut_off_on_every_door(tmp_path: Path) -> None:
    await run(tmp_path, "slow-consumers")


async def test_descriptor_exhaustion_refuses_new_clients_and_recovers(tmp_path: Path) -> None:
    await run(tmp_path, "fd-exhaustion")
