"""KV buckets and object stores through the HTTP door, interchangeable with nats-py's."""

from __future__ import annotations

import base64
import hashlib
import os

import nats
import pytest
from nats.js.errors import ObjectNotFoundError
from test_http_api import err, http_fixture, js_hub_fixture  # noqa: F401  (fixtures)

MiB = 1 << 20


async def test_kv_put_get_update_delete(http):
    assert (await http.post("/v1/kv", json={"bucket": "cfg", "history": 5})).status_code == 201
    assert (await http.get("/v1/kv")).json() == ["cfg"]
    status = (await http.get("/v1/kv/cfg")).json()
    assert status["bucket"] == "cfg" and status["history"] == 5
    r1 = (await http.put("/v1/kv/cfg/keys/app.color", content=b"red")).json()["revision"]
    got = await http.get("/v1/kv/cfg/keys/app.color")
    assert got.content == b"red" and got.headers["kv-revision"] == str(r1)
    r2 = (await http.put(f"/v1/kv/cfg/keys/app.color?revision={r1}",
                         content=b"blue")).json()["revision"]
    assert r2 > r1
    stale = await http.put(f"/v1/kv/cfg/keys/app.color?revision={r1}", content=b"green")
    assert stale.status_code == 409 and err(stale)["err_code"] == 10071
    stale = await http.put("/v1/kv/cfg/keys/app.color", content=b"green",
                           headers={"If-Match": f'"{r1}"'})
    assert stale.status_code == 409
    old = await http.get(f"/v1/kv/cfg/keys/app.color?revision={r1}")
    assert old.content == b"red"
    assert (await http.post("/v1/kv/cfg/keys/app.color", content=b"x")).status_code == 409
    created = await http.post("/v1/kv/cfg/keys/app.size", content=b"L")
    assert created.status_code == 201
    assert (await http.get("/v1/kv/cfg/keys")).json() == {"keys": ["app.color", "app.size"]}
    await http.delete("/v1/kv/cfg/keys/app.size")
    assert (await http.get("/v1/kv/cfg/keys/app.size")).status_code == 404
    assert (await http.get("/v1/kv/cfg/keys")).json() == {"keys": ["app.color"]}
    # a deleted key may be created again
    assert (await http.post("/v1/kv/cfg/keys/app.size", content=b"M")).status_code == 201
    hist = (await http.get("/v1/kv/cfg/history/app.size")).json()["entries"]
    assert [e["operation"] for e in hist] == ["PUT", "DEL", "PUT"]
    assert [e["value"] for e in hist] == ["L", "", "M"]
    await http.delete("/v1/kv/cfg/keys/app.size?purge=true")
    hist = (await http.get("/v1/kv/cfg/history/app.size")).json()["entries"]
    assert [e["operation"] for e in hist] == ["PURGE"]


async def test_kv_errors(http):
    assert (await http.get("/v1/kv/none/keys/k")).status_code == 404
    assert (await http.put("/v1/kv/none/keys/k", content=b"v")).status_code == 404
    assert (await http.get("/v1/kv/none")).status_code == 404
    await http.post("/v1/kv", json={"bucket": "e", "max_value_size": 4})
    assert (await http.get("/v1/kv/e/keys/missing")).status_code == 404
    assert (await http.get("/v1/kv/e/history/missing")).status_code == 404
    for key in (".a", "a.", "a b", "a*"):
        assert (await http.put(f"/v1/kv/e/keys/{key}", content=b"v")).status_code == 400, key
    assert (await http.post("/v1/kv", json={"bucket": "a.b"})).status_code == 400
    assert (await http.post("/v1/kv", json={"bucket": "h", "history": 100})).status_code == 400
    big = await http.put("/v1/kv/e/keys/k", content=b"too long")
    assert big.status_code == 413
    assert (await http.put("/v1/kv/e/keys/k?revision=x", content=b"v")).status_code == 400
    assert (await http.put("/v1/kv/e/keys/k", content=b"v",
                           headers={"If-Match": "abc"})).status_code == 400


async def test_kv_shared_with_nats_clients(js_hub, http):
    nc = await nats.connect(js_hub.url)
    js = nc.jetstream()
    kv = await js.create_key_value(bucket="shared", history=3)
    await kv.put("from.nats", b"n1")
    assert (await http.get("/v1/kv/shared/keys/from.nats")).content == b"n1"
    rev = (await http.put("/v1/kv/shared/keys/from.http", content=b"h1")).json()["revision"]
    entry = await kv.get("from.http")
    assert entry.value == b"h1" and entry.revision == rev
    await http.post("/v1/kv", json={"bucket": "made.by.http"})
    await http.post("/v1/kv", json={"bucket": "madebyhttp", "history": 2})
    await http.put("/v1/kv/madebyhttp/keys/k", content=b"v")
    kv2 = await js.key_value("madebyhttp")
    assert (await kv2.get("k")).value == b"v"
    await kv2.delete("k")
    assert (await http.get("/v1/kv/madebyhttp/keys/k")).status_code == 404
    await nc.close()


async def test_kv_key_ttl_and_limit_markers(js_hub, http):
    made = await http.post("/v1/kv", json={"bucket": "leases", "limit_marker_ttl": 1})
    assert made.status_code == 201 and made.json()["limit_marker_ttl"] == 1
    nc = await nats.connect(js_hub.url)
    kv = await nc.jetstream().key_value("leases")
    assert (await kv.status()).marker_ttl == 1
    watcher = await kv.watchall()
    assert await watcher.updates(timeout=2) is None
    assert (await http.post("/v1/kv/leases/keys/lock?ttl=1", content=b"me")).status_code == 201
    await http.put("/v1/kv/leases/keys/kept", content=b"k")
    assert (await watcher.updates(timeout=2)).key == "lock"
    await watcher.updates(timeout=2)
    expired = await watcher.updates(timeout=4)
    assert (expired.key, expired.operation) == ("lock", "PURGE")
    # the marker reads as a purge over HTTP too, and the key can be taken again
    assert (await http.get("/v1/kv/leases/keys/lock")).status_code == 404
    assert (await http.get("/v1/kv/leases/keys")).json() == {"keys": ["kept"]}
    history = (await http.get("/v1/kv/leases/history/lock")).json()["entries"]
    assert [e["operation"] for e in history] == ["PURGE"]
    assert (await http.post("/v1/kv/leases/keys/lock", content=b"you")).status_code == 201
    bad = await http.post("/v1/kv", json={"bucket": "tiny", "limit_marker_ttl": 0.5})
    assert bad.status_code == 400
    await watcher.stop()
    await nc.close()


async def test_object_store_10_mib_round_trip(js_hub, http):
    assert (await http.post("/v1/objects", json={"bucket": "files"})).status_code == 201
    data = os.urandom(10 * MiB)

    async def body():
        for i in range(0, len(data), 1_000_000):  # odd-sized parts, streamed
            yield data[i : i + 1_000_000]

    up = await http.put("/v1/objects/files/big.bin", content=body(), timeout=60)
    assert up.status_code == 201, up.text
    info = up.json()
    assert info["size"] == 10 * MiB and info["chunks"] == 80
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
    assert info["digest"] == "SHA-256=" + digest
    async with http.stream("GET", "/v1/objects/files/big.bin", timeout=60) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-length"] == str(10 * MiB)
        got = b"".join([part async for part in resp.aiter_bytes()])
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # nats-py reads what HTTP wrote, and HTTP what nats-py wrote
    nc = await nats.connect(js_hub.url)
    obs = await nc.jetstream().object_store("files")
    res = await obs.get("big.bin")
    assert res.data == data
    await obs.put("small.txt", b"from nats")
    assert (await http.get("/v1/objects/files/small.txt")).content == b"from nats"
    listed = (await http.get("/v1/objects/files")).json()["objects"]
    assert sorted(o["name"] for o in listed) == ["big.bin", "small.txt"]
    one = (await http.get("/v1/objects/files?name=small.txt")).json()
    assert one["size"] == 9 and not one["deleted"]
    # replacing purges the old version's chunks
    before = (await http.get("/v1/streams/OBJ_files")).json()["state"]["messages"]
    await http.put("/v1/objects/files/big.bin", content=b"short now")
    after = (await http.get("/v1/streams/OBJ_files")).json()["state"]["messages"]
    assert after == before - 80 + 1
    assert (await http.get("/v1/objects/files/big.bin")).content == b"short now"
    gone = await http.delete("/v1/objects/files/small.txt")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert (await http.get("/v1/objects/files/small.txt")).status_code == 404
    assert (await http.get("/v1/objects/files?name=small.txt")).status_code == 404
    assert (await http.get("/v1/objects/files?name=small.txt&deleted=true")).json()["deleted"]
    with pytest.raises(ObjectNotFoundError):
        await obs.get("small.txt")
    await nc.close()


async def test_object_errors(http):
    assert (await http.get("/v1/objects/none/x")).status_code == 404
    assert (await http.put("/v1/objects/none/x", content=b"1")).status_code == 404
    assert (await http.post("/v1/objects", json={"bucket": "b*"})).status_code == 400
    await http.post("/v1/objects", json={"bucket": "tiny", "max_bytes": 300_000})
    assert (await http.get("/v1/objects/tiny/missing")).status_code == 404
    assert (await http.delete("/v1/objects/tiny/missing")).status_code == 404
    full = await http.put("/v1/objects/tiny/big", content=b"x" * 1_000_000)
    assert full.status_code == 429, full.text
    # the failed upload left nothing behind
    assert (await http.get("/v1/streams/OBJ_tiny")).json()["state"]["messages"] == 0
