"""Per-message TTLs (``Nats-TTL``) and subject delete markers, on Jetport and nats-server.

Every test but the restart one runs on both servers from the same client code.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import KeyNotFoundError
from servers import Launch, ServerProcess

pytestmark = pytest.mark.timeout(60)

SECOND = 1_000_000_000
MARKER = {"Nats-Marker-Reason": "MaxAge", "Nats-TTL": "1s", "Nats-Rollup": "sub"}


async def api(nc: Any, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = await nc.request("$JS.API." + subject, json.dumps(body or {}).encode(), timeout=2)
    return json.loads(msg.data)


async def publish(nc: Any, subject: str, ttl: str | None = None, data: bytes = b"v"
                  ) -> dict[str, Any]:
    headers = {"Nats-TTL": ttl} if ttl is not None else None
    return json.loads((await nc.request(subject, data, headers=headers, timeout=2)).data)


async def direct(nc: Any, stream: str, seq: int) -> tuple[dict[str, str], bytes] | None:
    """A message's headers (minus the direct-get ones) and data; None once it is gone."""
    msg = await nc.request(f"$JS.API.DIRECT.GET.{stream}", json.dumps({"seq": seq}).encode(),
                           timeout=2)
    headers = {getattr(k, "value", k): v for k, v in (msg.headers or {}).items()}
    if headers.get("Status") == "404":
        return None
    for k in ("Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp"):
        headers.pop(k, None)
    return headers, msg.data


async def wait_gone(nc: Any, stream: str, seq: int, within: float) -> float:
    """Seconds until message ``seq`` is gone; fails after ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await direct(nc, stream, seq) is None:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{stream} message {seq} still there after {within} s")


@pytest.mark.differential
async def test_publish_checks_the_ttl(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await api(nc, "STREAM.CREATE.OFF", {"name": "OFF", "subjects": ["off"]})
    assert (await publish(nc, "off", "1s"))["error"] == {
        "code": 400, "err_code": 10166, "description": "per-message TTL is disabled"}
    await api(nc, "STREAM.CREATE.T", {"name": "T", "subjects": ["t"], "allow_msg_ttl": True,
                                      "allow_direct": True})
    for good in ("1s", "2", "never", "1m30s", "1.5s", "1000ms", "+2s", "1h"):
        assert "error" not in await publish(nc, "t", good), good
    for bad in ("0", "0s", "500ms", "999ms", "-1", "abc", "5x"):
        assert (await publish(nc, "t", bad))["error"] == {
            "code": 400, "err_code": 10165, "description": "invalid per-message TTL"}, bad
    assert await direct(nc, "T", 1) == ({"Nats-TTL": "1s"}, b"v")
    # with markers on, a TTL below the marker TTL is raised to it, and the header says so
    await api(nc, "STREAM.CREATE.M", {"name": "M", "subjects": ["m"], "allow_msg_ttl": True,
                                      "subject_delete_marker_ttl": 3 * SECOND,
                                      "allow_direct": True})
    for ttl in ("1s", "5", "never"):
        await publish(nc, "m", ttl)
    assert [(await direct(nc, "M", s))[0]["Nats-TTL"] for s in (1, 2, 3)] == ["3", "5", "never"]
    await nc.close()


@pytest.mark.differential
async def test_ttl_removes_the_message_and_leaves_a_marker(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    info = await api(nc, "STREAM.CREATE.N", {
        "name": "N", "subjects": ["n.>"], "subject_delete_marker_ttl": SECOND,
        "allow_direct": True})
    # markers need TTLs and roll-ups: both are switched on for them
    assert info["config"]["allow_msg_ttl"] is True and info["config"]["allow_rollup_hdrs"]
    start = time.monotonic()
    assert (await publish(nc, "n.short", "1s"))["seq"] == 1
    assert (await publish(nc, "n.kept"))["seq"] == 2
    assert (await publish(nc, "n.short", "2s", b"second"))["seq"] == 3
    await wait_gone(nc, "N", 1, within=3)
    assert time.monotonic() - start >= 0.9
    # the subject still has seq 3, so no marker yet
    assert await direct(nc, "N", 3) == ({"Nats-TTL": "2s"}, b"second")
    await wait_gone(nc, "N", 3, within=3)
    assert await direct(nc, "N", 4) == (MARKER, b"")
    # the marker goes after its own TTL and leaves no marker of its own
    await wait_gone(nc, "N", 4, within=3)
    await asyncio.sleep(0.3)
    state = (await api(nc, "STREAM.INFO.N"))["state"]
    assert (state["messages"], state["last_seq"]) == (1, 4)
    assert await direct(nc, "N", 2) == ({}, b"v")
    await nc.close()


@pytest.mark.differential
async def test_consumers_see_markers(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    js = nc.jetstream()
    await api(nc, "STREAM.CREATE.W", {"name": "W", "subjects": ["w.>"], "allow_msg_ttl": True,
                                      "subject_delete_marker_ttl": SECOND})
    sub = await js.pull_subscribe("w.>", durable="c", stream="W")
    await publish(nc, "w.a", "1s")
    first = (await sub.fetch(1, timeout=2))[0]
    assert first.data == b"v" and first.headers == {"Nats-TTL": "1s"}
    await first.ack()
    marker = (await sub.fetch(1, timeout=4))[0]
    assert marker.subject == "w.a" and marker.data == b""
    assert marker.headers == MARKER
    assert marker.metadata.sequence.stream == 2
    await nc.close()


@pytest.mark.differential
async def test_never_outlives_max_age_and_a_longer_ttl_does_not(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await api(nc, "STREAM.CREATE.A", {"name": "A", "subjects": ["a.>"], "allow_msg_ttl": True,
                                      "max_age": SECOND, "allow_direct": True})
    await publish(nc, "a.plain")
    await publish(nc, "a.forever", "never")
    await publish(nc, "a.long", "1h")
    await wait_gone(nc, "A", 1, within=3)
    await wait_gone(nc, "A", 3, within=3)
    await asyncio.sleep(1)
    assert await direct(nc, "A", 2) == ({"Nats-TTL": "never"}, b"v")
    state = (await api(nc, "STREAM.INFO.A"))["state"]
    assert (state["messages"], state["first_seq"]) == (1, 2)
    await nc.close()


@pytest.mark.differential
async def test_kv_keys_with_a_ttl_and_limit_markers(js_hub: ServerProcess) -> None:
    """nats-py's own KV TTL features: per-key TTLs, and markers watchers see."""
    nc = await nats.connect(js_hub.url)
    js = nc.jetstream()
    assert (await js.account_info()).api.level >= 1
    kv = await js.create_key_value(bucket="sessions", limit_marker_ttl=1)
    assert (await kv.status()).marker_ttl == 1
    watcher = await kv.watchall()
    assert await watcher.updates(timeout=2) is None  # no initial values
    await kv.create("token", b"abc", msg_ttl=1)
    await kv.put("user", b"ann")
    entry = await watcher.updates(timeout=2)
    assert (entry.key, entry.value, entry.operation) == ("token", b"abc", None)
    await watcher.updates(timeout=2)
    start = time.monotonic()
    removed = await watcher.updates(timeout=4)
    assert removed.key == "token" and removed.operation == "PURGE"
    assert time.monotonic() - start >= 0.5
    assert (await kv.get("token")).value is None  # nats-py reads the marker itself
    assert (await kv.get("user")).value == b"ann"
    # once the marker's own TTL has passed the key is gone and can be created again
    await asyncio.sleep(1.5)
    with pytest.raises(KeyNotFoundError):
        await kv.get("token")
    assert await kv.create("token", b"new") > 0
    await watcher.stop()
    await nc.close()


async def test_deadlines_survive_a_restart(tmp_path: Path) -> None:
    """Deadlines are rebuilt from the stored headers; what fell due while down goes."""
    hub = Launch(tmp_path)("-js", "-sd", str(tmp_path / "store"))
    try:
        nc = await nats.connect(hub.url)
        await api(nc, "STREAM.CREATE.R", {"name": "R", "subjects": ["r.>"],
                                          "allow_msg_ttl": True, "allow_direct": True})
        await publish(nc, "r.soon", "1s")
        await publish(nc, "r.later", "4s")
        await publish(nc, "r.never", "never")
        await nc.close()
        hub.kill()
        await asyncio.sleep(1.2)
        hub.restart()
        start = time.monotonic()
        nc = await nats.connect(hub.url)
        await wait_gone(nc, "R", 1, within=1)
        assert await direct(nc, "R", 2) is not None
        await wait_gone(nc, "R", 2, within=4)
        assert time.monotonic() - start >= 1.5
        assert await direct(nc, "R", 3) == ({"Nats-TTL": "never"}, b"v")
        await nc.close()
    finally:
        hub.stop()
