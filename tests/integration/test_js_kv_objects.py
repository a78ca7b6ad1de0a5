"""Key-value buckets and object stores through nats-py, on top of the hub's JetStream.

Each test runs on the hub and on the reference nats-server (``@pytest.mark.differential``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time

import nats
import pytest
from nats.js import api
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
    ObjectNotFoundError,
)
from nats.js.kv import KV_DEL, KV_PURGE
from servers import js_connect as connect
from servers import kv_settled

MiB = 1 << 20



async def drain_watcher(watcher, timeout: float = 2.0) -> list:
    """Entries until the initial-values marker (None)."""
    out = []
    while True:
        entry = await watcher.updates(timeout=timeout)
        if entry is None:
            return out
        out.append(entry)


def view(entry) -> tuple:
    return entry.key, entry.value, entry.operation


# -- key-value ------------------------------------------------------------------------


@pytest.mark.differential
async def test_kv_bucket_is_a_stream(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="cfg", history=5, description="settings")
    info = await js.stream_info("KV_cfg")
    cfg = info.config
    assert cfg.subjects == ["$KV.cfg.>"]
    assert cfg.max_msgs_per_subject == 5
    assert cfg.allow_rollup_hdrs is True and cfg.deny_delete is True
    assert cfg.discard == api.DiscardPolicy.NEW and cfg.description == "settings"
    status = await kv.status()
    assert status.bucket == "cfg" and status.history == 5 and status.values == 0
    again = await js.key_value("cfg")
    assert (await again.status()).history == 5
    with pytest.raises(BucketNotFoundError):
        await js.key_value("missing")
    assert await js.delete_key_value("cfg")
    with pytest.raises(NotFoundError):
        await js.stream_info("KV_cfg")
    await nc.close()


@pytest.mark.differential
async def test_kv_put_get_update_create(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="app", history=5)
    r1 = await kv.put("color", b"red")
    r2 = await kv.put("color", b"green")
    assert r2 == r1 + 1
    entry = await kv.get("color")
    assert (entry.key, entry.value, entry.revision) == ("color", b"green", r2)
    old = await kv.get("color", revision=r1)
    assert old.value == b"red" and old.revision == r1
    r3 = await kv.update("color", b"blue", last=r2)
    assert r3 == r2 + 1
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.update("color", b"pink", last=r2)
    assert (await kv.get("color")).value == b"blue"
    r4 = await kv.create("size", b"L")
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.create("size", b"XL")
    await kv.delete("size")
    r6 = await kv.create("size", b"M")  # allowed again over a delete marker
    assert r6 == r4 + 2 and (await kv.get("size")).value == b"M"
    with pytest.raises(KeyNotFoundError):
        await kv.get("nothing")
    nested = await kv.put("a.b.c", b"dots")
    assert (await kv.get("a.b.c")).revision == nested
    big = os.urandom(64 * 1024)
    await kv.put("blob", big)
    assert (await kv.get("blob")).value == big
    status = await kv.status()
    assert status.values == 8  # color x3, size x3 (with its delete marker), a.b.c, blob
    await nc.close()


@pytest.mark.differential
async def test_kv_delete_purge_history_keys(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="hist", history=10)
    with pytest.raises(NoKeysError):
        await kv.keys()
    for v in (b"1", b"2", b"3"):
        await kv.put("k", v)
    await kv.put("other", b"x")
    history = await kv_settled(kv.history, "k")
    assert [(e.value, e.revision, e.operation) for e in history] == [
        (b"1", 1, None), (b"2", 2, None), (b"3", 3, None)]
    assert sorted(await kv_settled(kv.keys)) == ["k", "other"]
    await kv.delete("k")
    with pytest.raises(KeyNotFoundError):
        await kv.get("k")
    history = await kv_settled(kv.history, "k")
    assert [(e.value, e.operation) for e in history] == [
        (b"1", None), (b"2", None), (b"3", None), (b"", KV_DEL)]
    assert await kv_settled(kv.keys) == ["other"]
    await kv.put("k", b"4")
    await kv.purge("k")
    with pytest.raises(KeyNotFoundError):
        await kv.get("k")
    history = await kv_settled(kv.history, "k")
    assert [(e.value, e.operation, e.revision) for e in history] == [(b"", KV_PURGE, 7)]
    info = await js.stream_info("KV_hist")
    assert info.state.messages == 2  # "other" and the purge marker
    await kv.delete("other", last=4)
    with pytest.raises(NoKeysError):
        await kv.keys()
    await nc.close()


@pytest.mark.differential
async def test_kv_history_limit(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="lim", history=3)
    for i in range(6):
        await kv.put("k", b"%d" % i)
    history = await kv_settled(kv.history, "k")
    assert [(e.value, e.revision) for e in history] == [(b"3", 4), (b"4", 5), (b"5", 6)]
    status = await kv.status()
    assert status.values == 3 and status.history == 3
    await nc.close()


@pytest.mark.differential
async def test_kv_watch(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="w", history=5)
    await kv.put("a.one", b"1")
    await kv.put("a.one", b"1b")
    await kv.put("a.two", b"2")
    await kv.put("b.one", b"x")
    watcher = await kv.watch("a.*")
    initial = await drain_watcher(watcher)
    assert [view(e) for e in initial] == [("a.one", b"1b", None), ("a.two", b"2", None)]
    await kv.put("a.two", b"2b")
    await kv.put("b.two", b"ignored")
    await kv.delete("a.one")
    await kv.purge("a.two")
    live = [await watcher.updates(timeout=2) for _ in range(3)]
    assert [view(e) for e in live] == [
        ("a.two", b"2b", None), ("a.one", b"", KV_DEL), ("a.two", b"", KV_PURGE)]
    assert [e.revision for e in live] == [5, 7, 8]
    with pytest.raises(nats.errors.TimeoutError):
        await watcher.updates(timeout=0.3)
    await watcher.stop()

    everything = await kv.watch(">", include_history=True)
    entries = await drain_watcher(everything)
    assert [(e.key, e.revision) for e in entries] == [
        ("a.one", 1), ("a.one", 2), ("b.one", 4), ("b.two", 6), ("a.one", 7), ("a.two", 8)]
    await everything.stop()

    single = await kv.watch("b.one")
    assert [view(e) for e in await drain_watcher(single)] == [("b.one", b"x", None)]
    await single.stop()

    meta = await kv.watch("b.*", meta_only=True)
    assert [view(e) for e in await drain_watcher(meta)] == [
        ("b.one", b"", None), ("b.two", b"", None)]
    await meta.stop()

    deletes_hidden = await kv.watch("a.*", ignore_deletes=True)
    assert await drain_watcher(deletes_hidden) == []
    await deletes_hidden.stop()
    await nc.close()


@pytest.mark.differential
async def test_kv_watch_updates_only(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="u", history=5)
    await kv.put("k", b"before")
    seen: list = []

    async def cb(msg) -> None:
        seen.append((msg.subject, msg.data, (msg.headers or {}).get("KV-Operation")))

    # What an updates-only watcher is: an ordered consumer delivering only new messages.
    sub = await js.subscribe("$KV.u.>", stream="KV_u", cb=cb, ordered_consumer=True,
                             deliver_policy=api.DeliverPolicy.NEW)
    await asyncio.sleep(0.2)
    assert seen == []
    await kv.put("k", b"after")
    await kv.delete("k")
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert seen == [("$KV.u.k", b"after", None), ("$KV.u.k", b"", "DEL")]
    await sub.unsubscribe()

    # An empty bucket's watcher says "no initial values" at once and then follows.
    watcher = await kv.watch("fresh.*")
    assert await watcher.updates(timeout=2) is None
    await kv.put("fresh.x", b"new")
    entry = await watcher.updates(timeout=2)
    assert view(entry) == ("fresh.x", b"new", None)
    await watcher.stop()
    await nc.close()


@pytest.mark.differential
async def test_kv_ttl_expires_keys(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="short", ttl=1)
    status = await kv.status()
    assert status.ttl == 1
    info = await js.stream_info("KV_short")
    assert info.config.max_age == 1 and info.config.duplicate_window == 1
    start = time.monotonic()
    await kv.put("k", b"v")
    await kv.put("j", b"w")
    assert (await kv.get("k")).value == b"v"
    await asyncio.sleep(0.9)
    refreshed = time.monotonic()
    await kv.put("j", b"refreshed")

    async def gone(key: str, deadline: float) -> float:
        while time.monotonic() < deadline:
            try:
                await kv.get(key)
            except KeyNotFoundError:
                return time.monotonic()
            await asyncio.sleep(0.05)
        raise AssertionError(f"{key} still there 2.5 s after its last put")

    k_gone = await gone("k", start + 2.5)
    assert k_gone - start >= 0.95
    if time.monotonic() - refreshed < 0.95:
        assert (await kv.get("j")).value == b"refreshed"
    j_gone = await gone("j", refreshed + 2.5)
    assert j_gone - refreshed >= 0.95
    with pytest.raises(NoKeysError):
        await kv.keys()
    status = await kv.status()
    assert status.values == 0
    await nc.close()


# -- object store ---------------------------------------------------------------------


def digest(data: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.differential
async def test_object_put_get_multi_mib(js_hub) -> None:
    nc, js = await connect(js_hub)
    obs = await js.create_object_store("files", description="blobs")
    three = os.urandom(3 * MiB)
    ten = os.urandom(10 * MiB + 12345)
    info = await obs.put("three", three)
    assert info.size == len(three) and info.chunks == 24
    assert info.digest == digest(three)
    info = await obs.put("ten", ten)
    assert info.size == len(ten) and info.chunks == 81 and info.digest == digest(ten)
    got = await obs.get("three")
    assert got.info.name == "three" and got.info.size == len(three)
    assert hashlib.sha256(got.data).digest() == hashlib.sha256(three).digest()
    assert got.data == three
    got = await obs.get("ten")
    assert got.data == ten and got.info.digest == digest(ten)
    info = await obs.get_info("ten")
    assert (info.name, info.bucket, info.size, info.chunks) == ("ten", "files", len(ten), 81)
    listed = await obs.list()
    assert sorted((i.name, i.size) for i in listed) == [("ten", len(ten)), ("three", len(three))]
    status = await obs.status()
    assert status.bucket == "files" and status.description == "blobs"
    assert status.size >= len(three) + len(ten)
    stream = await js.stream_info("OBJ_files")
    assert stream.state.messages == 24 + 81 + 2
    empty = await obs.put("empty", b"")
    assert empty.size == 0 and empty.chunks == 0
    assert (await obs.get("empty")).data == b""
    await nc.close()


@pytest.mark.differential
async def test_object_overwrite_delete_and_missing(js_hub) -> None:
    nc, js = await connect(js_hub)
    obs = await js.create_object_store("docs")
    first = os.urandom(3 * MiB)
    second = os.urandom(MiB // 2)
    await obs.put("doc", first)
    info = await obs.put("doc", second)
    assert info.size == len(second) and info.chunks == 4
    got = await obs.get("doc")
    assert got.data == second and got.info.digest == digest(second)
    stream = await js.stream_info("OBJ_docs")
    assert stream.state.messages == 4 + 1  # the old chunks were purged
    await obs.delete("doc")
    with pytest.raises(ObjectNotFoundError):
        await obs.get("doc")
    with pytest.raises(ObjectNotFoundError):
        await obs.get_info("doc")
    deleted = await obs.get_info("doc", show_deleted=True)
    assert deleted.deleted is True and deleted.size == 0
    stream = await js.stream_info("OBJ_docs")
    assert stream.state.messages == 1
    with pytest.raises(ObjectNotFoundError):
        await obs.get("never-stored")
    with pytest.raises(NotFoundError):
        await obs.list(ignore_deletes=True)
    await nc.close()
