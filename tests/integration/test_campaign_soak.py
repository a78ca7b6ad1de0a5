"""36 seconds of the soak (``make soak`` runs ``tests/campaigns/soak.py`` for 30
minutes): mixed traffic on every door while the hub's memory, descriptors and log are
watched; no [ERR] line and bounded memory growth.

The memory bound: the run moves about 10,000 messages into the hub and 27,000
deliveries out of it (core NATS to four doors, JetStream, MQTT QoS 0/1 to three,
requests, SSE).  After the warm-up (the first third of the run) nothing should
accumulate: the stream is capped at 20,000 messages and every other structure is per
connection, and the connections stay.  On the shared 2-core machine the growth after
warm-up in such runs was 1-4 MB; 24 MB leaves room for that noise, while a leak of 1 KB
per delivery (27 MB) or 2.5 KB per message received fails.
"""

from __future__ import annotations

from pathlib import Path

from campaigns import soak

RSS_GROWTH_MB = 24


async def test_a_short_soak_holds_memory_and_logs_no_errors(tmp_path: Path) -> None:
    result = await soak.campaign(minutes=0.4, sample_every=4, rss_growth_mb=RSS_GROWTH_MB,
                                 dir=str(tmp_path / "soak"), keep=True)
    text = soak.report(result)
    print(text)
    assert not [line for line in result.log_problems if "[ERR]" in line], text
    growth = soak.growth_after_warmup(result.samples)
    assert growth < RSS_GROWTH_MB << 20, f"RSS grew {growth >> 20} MB\n{text}"
    assert result.ok, "\n".join([text, "", *result.failures])
