"""Storage faults on a real file system: an acknowledgement only for a stored message.

The store lives on a small tmpfs the test mounts, so the hub meets a real ENOSPC, or
the writer process is killed.  (A file system cannot be remounted read-only while the
store's files are open for writing; a read-only store at start-up is one fatal line,
see test_first_contact.)  Every door's publisher
gets the protocol's own refusal (JetStream error PubAck, MQTT 5 PUBACK reason, MQTT
3.1.1 close, HTTP 503); nothing else stops working; one log line per fault; when the
fault goes, the streams take messages again without a restart; and every acknowledged
message is in its stream exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import APIError
from servers import Launch, ServerProcess
from test_mqtt_conformance import V3, V5, connect, publish

CONF = """
server_name: faulty
http: "127.0.0.1:-1"
mqtt {{ port: -1 }}
jetstream {{ store_dir: "{store}" }}
"""


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MiB tmpfs of the test's own; unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(reason=f"tmpfs mount unavailable here: {done.stderr!r}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def start(tmp_path: Path, store: Path) -> ServerProcess:
    conf = tmp_path / "faulty.conf"
    conf.write_text(CONF.format(store=store))
    return Launch(tmp_path)("-c", str(conf))


def fill(disk: Path, leave: int = 0) -> Path:
    """Take up the disk's free space (all but ``leave`` bytes) with one file."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                st = os.statvfs(disk)
                free = st.f_bavail * st.f_frsize - leave
                if free <= 0:
                    break
                f.write(b"\0" * min(free, 1 << 20))
                f.flush()
        except OSError:
            pass
    return filler


async def mqtt_publish(port: int, version: int, topic: str, payload: bytes,
                       pid: int) -> bytes | None:
    """One QoS 1 PUBLISH on a fresh connection: the PUBACK's bytes, or None when the
    server closed the connection without acknowledging."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(connect(f"faulty-{version}-{pid}", version))
        await asyncio.wait_for(reader.readexactly(4 if version == V3 else 5), 5)
        if version == V5:  # CONNACK properties follow
            await asyncio.wait_for(reader.read(256), 1)
        writer.write(publish(topic, payload, 1, pid, version=version))
        data = await asyncio.wait_for(reader.read(16), 5)
        return data or None
    finally:
        writer.close()


def fault_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.log().splitlines() if "storage of account" in line]


async def wait_recovered(js, subject: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.publish(subject, b"probe-after-recovery")
            return
        except APIError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_full_disk_refuses_on_every_door_then_recovers(tmp_path, small_disk) -> None:
    server = start(tmp_path, small_disk / "store")
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=5)
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10)
    try:
        await js.add_stream(name="FILE", subjects=["file.>"])
        await js.add_stream(name="MEM", subjects=["mem.>"], storage="memory")
        acked: list[bytes] = []
        for i in range(20):
            ack = await js.publish("file.nats", b"before-%d" % i)
            assert ack.seq == i + 1
            acked.append(b"before-%d" % i)
        filler = fill(small_disk, leave=64 << 10)

        # NATS: error PubAcks (never a timeout), the connection stays
        refused = 0
        for i in range(400):
            try:
                await js.publish("file.nats", b"full-%d" % i + b"x" * 2000)
                acked.append(b"full-%d" % i + b"x" * 2000)
            except APIError as err:
                assert (err.code, err.err_code) == (503, 10023), err
                refused += 1
        assert refused > 0 and nc.is_connected
        # what does not need the disk keeps working
        assert (await js.publish("mem.x", b"in memory")).stream == "MEM"
        sub = await nc.subscribe("core.x")
        await nc.publish("core.x", b"core")
        assert (await sub.next_msg(2)).data == b"core"
        # Each door until it is refused (a commit may still fit where SQLite has room):
        # HTTP 503 with the error document, MQTT 5 PUBACK with Quota exceeded, MQTT
        # 3.1.1 closed without a PUBACK.
        big = b"z" * 20_000
        for i in range(50):
            body = b"http-%d" % i + big
            resp = await http.post("/v1/publish/file.http", content=body)
            if resp.status_code == 200:
                acked.append(body)
                continue
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["err_code"] == 10023
            break
        else:
            raise AssertionError("HTTP publishes kept being acknowledged on a full disk")
        for version, topic, refused_with in ((V5, "file/mqtt5", "40 03 00 07 97"),
                                             (V3, "file/mqtt3", None)):
            for i in range(50):
                body = b"mqtt%d-%d" % (version, i) + big
                got = await mqtt_publish(server.mqtt_port, version, topic, body, 7)
                if got == bytes.fromhex("40 02 00 07"):
                    acked.append(body)
                    continue
                assert got == (refused_with and bytes.fromhex(refused_with)), got
                break
            else:
                raise AssertionError(f"MQTT {version} kept being acknowledged on a full disk")
        # health says so; one log line for the fault, no tracebacks
        health = await http.get("/healthz")
        assert health.status_code == 503 and "storage" in health.json()["error"]
        assert "$G" in (await http.get("/jsz")).json()["storage_errors"]
        assert len([x for x in fault_lines(server) if "[ERR]" in x]) == 1
        assert "Traceback" not in server.log()

        filler.unlink()
        await wait_recovered(js, "file.nats")
        acked.append(b"probe-after-recovery")
        assert (await http.get("/healthz")).status_code == 200
        resp = await http.post("/v1/publish/file.http", content=b"after-http")
        assert resp.status_code == 200, resp.text
        acked.append(b"after-http")
        assert await mqtt_publish(server.mqtt_port, V5, "file/mqtt5", b"after-m5", 9) == \
            bytes.fromhex("40 02 00 09")
        acked.append(b"after-m5")
        assert await mqtt_publish(server.mqtt_port, V3, "file/mqtt3", b"after-m3", 10) == \
            bytes.fromhex("40 02 00 0a")
        acked.append(b"after-m3")
        assert len([x for x in fault_lines(server) if "recovered" in x]) == 1

        # every acknowledged message is there exactly once, and nothing else
        stored = await stored_payloads(js, "FILE")
        assert sorted(stored) == sorted(acked)
    finally:
        await http.aclose()
        await nc.close()
        assert server.stop() == 0


async def stored_payloads(js, stream: str) -> list[bytes]:
    info = await js.stream_info(stream)
    out = []
    seq = info.state.first_seq
    while seq <= info.state.last_seq:
        try:
            out.append((await js.get_msg(stream, seq)).data)
        except nats.js.errors.NotFoundError:
            pass
        seq += 1
    return out


async def writer_processes(nc, js, store: Path) -> list[str]:
    """The store's SQLite writer process.  It starts with the first transaction too large
    to commit in the hub, so pipelined bursts go to a stream of their own until it runs."""
    await js.add_stream(name="BURST", subjects=["burst.>"])
    for _ in range(50):
        found = subprocess.run(["pgrep", "-f", f"sqlite_worker.py {store}"],
                               capture_output=True, text=True).stdout.split()
        if found:
            return found
        for i in range(200):
            await nc.publish("burst.x", b"%d" % i, reply="burst.acks")
        await nc.flush()
        await asyncio.sleep(0.1)
    raise AssertionError("no writer process")


async def test_sigterm_ends_a_hub_whose_disk_is_full(tmp_path, small_disk) -> None:
    server = start(tmp_path, small_disk / "store")
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=5)
    await js.add_stream(name="FILE", subjects=["file.>"])
    fill(small_disk, leave=16 << 10)
    with pytest.raises(APIError):
        for _ in range(200):
            await js.publish("file.x", b"y" * 4000)
    await nc.close()
    began = time.monotonic()
    assert server.stop(timeout=20) == 0
    assert time.monotonic() - began < 10
    assert "Server Exiting" in server.log()


async def test_killed_writer_process_is_replaced(tmp_path) -> None:
    store = tmp_path / "store"
    server = start(tmp_path, store)
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=5)
    try:
        await js.add_stream(name="FILE", subjects=["file.>"])
        acked = []
        for i in range(50):
            await js.publish("file.x", b"a-%d" % i)
            acked.append(b"a-%d" % i)
        found = await writer_processes(nc, js, store)
        for pid in found:
            os.kill(int(pid), signal.SIGKILL)
        # A pipelined burst, so commits go through the (dead) writer process: each
        # message gets a PubAck or an error, never silence.
        answers: dict[int, dict] = {}
        done = asyncio.Event()

        async def on_ack(msg) -> None:
            answers[int(msg.subject.rsplit(".", 1)[1])] = json.loads(msg.data)
            if len(answers) == 300:
                done.set()

        await nc.subscribe("acks.*", cb=on_ack)
        for i in range(300):
            await nc.publish("file.x", b"b-%d" % i, reply=f"acks.{i}")
        await asyncio.wait_for(done.wait(), 15)
        refused = 0
        for i, answer in sorted(answers.items()):
            if "error" in answer:
                assert answer["error"]["err_code"] == 10077, answer
                refused += 1
            else:
                acked.append(b"b-%d" % i)
        assert refused > 0
        await wait_recovered(js, "file.x")
        acked.append(b"probe-after-recovery")
        stored = await stored_payloads(js, "FILE")
        assert sorted(stored) == sorted(acked)
        assert json.dumps(fault_lines(server)).count("[ERR]") <= 1
    finally:
        await nc.close()
        server.stop()


async def test_consumers_get_only_committed_messages(tmp_path) -> None:
    """A consumer or a mirror hands out nothing the store has not committed: with the
    writer process frozen, published messages reach neither the push consumer, the
    pull consumer nor the mirror; once it runs again, all of them arrive, in order."""
    store = tmp_path / "store"
    server = start(tmp_path, store)
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=5)
    pushed: list[int] = []
    try:
        await js.add_stream(name="C", subjects=["c.>"])
        await js.add_stream(name="M", mirror={"name": "C"})
        for i in range(50):
            await js.publish("c.x", b"warm-%d" % i)
        push = await js.subscribe("c.x", durable="PUSH",
                                  cb=lambda m: pushed.append(m.metadata.sequence.stream))
        pull = await js.pull_subscribe("c.x", durable="PULL")
        while len(pushed) < 50:
            await asyncio.sleep(0.05)
        for m in await pull.fetch(50, timeout=5):
            await m.ack()
        found = await writer_processes(nc, js, store)
        for pid in found:
            os.kill(int(pid), signal.SIGSTOP)
        try:
            for i in range(200):
                await nc.publish("c.x", b"new-%d" % i, reply="acks.none")
            await nc.flush()
            await asyncio.sleep(1.0)
            assert pushed == list(range(1, 51))
            with pytest.raises(nats.errors.TimeoutError):
                await pull.fetch(1, timeout=0.5)
            assert (await js.stream_info("M")).state.last_seq <= 50
        finally:
            for pid in found:
                os.kill(int(pid), signal.SIGCONT)
        deadline = time.monotonic() + 10
        while len(pushed) < 250 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pushed == list(range(1, 251))
        got = [m.metadata.sequence.stream for m in await pull.fetch(200, timeout=5)]
        assert got == list(range(51, 251))
        while (await js.stream_info("M")).state.last_seq < 250:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await push.unsubscribe()
    finally:
        await nc.close()
        server.stop()
