"""Two rounds of the kill test (``make killtest`` runs ``tests/campaigns/killtest.py``
with 20): SIGKILL under load on all four doors, once the hub's process group alone
(its SQLite writer must then exit by itself) and once with the writer, a restart on the
same store, and every acknowledged message in its stream exactly once, durable consumers
and a persistent MQTT session resuming where they were.
"""

from __future__ import annotations

from pathlib import Path

from campaigns import killtest


async def test_kill_9_under_load_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    result = await killtest.campaign(rounds=2, min_kill=0.5, max_kill=1.5,
                                     dir=str(tmp_path / "killtest"), keep=True)
    table = killtest.report(result)
    print(table)
    assert result.ok, "\n".join([table, "", *result.failures])
    assert len(result.rounds) == 2
    for r in result.rounds:
        assert all(r.acked.get(d, 0) > 0 for d in killtest.DOORS), r.acked
        assert (r.lost, r.duplicated, r.session_present) == (0, 0, True)
