"""What an idle client costs the hub, held to a byte budget.

Each budget is RSS growth per client over 1,000 idle clients with one subscription
each, on a hub with JetStream, NATS and MQTT doors, read from /proc. This test measured
about 2.0 KB per NATS connection and 3.6 KB per MQTT session on the development machine
(4.5 KB and 6.1 KB before the per-client ping timer, the per-connection attribute dict
and the index's empty dicts went; the MQTT session was 5.7 KB before its out queue,
packet-id sets and empty dicts were made on first use). Sharing the session's empty
wildcard list and the connection's empty out list, and dropping a connection's timer
dict with its last timer, took it from 3.06 to 2.71 KB in one run (NATS: 2.25 to 2.18).
Keeping an MQTT subscription's options on its core subscription, and indexing a
session's subscriptions only when an MQTT 5 session with several needs it, took it from
3.31-3.40 to 2.69-2.83 KB (two runs each, another day). The budgets leave room for
allocator noise, not for a new per-client structure.
"""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_raw import connect, subscribe

NATS_BUDGET = 2_600
MQTT_BUDGET = 4_000
CLIENTS = 1_000


def rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    assert m
    return int(m.group(1)) * 1024


async def nats_client(port: int, i: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b'CONNECT {"verbose":false}\r\nSUB idle.%d 1\r\nPING\r\n' % i)
    assert await reader.readline() == b"PONG\r\n"
    return writer


async def mqtt_client(port: int, i: int, keepalive: int = 0) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(connect(f"idle-{i}", keepalive=keepalive) + subscribe(1, (f"idle/{i}", 0)))
    got = b""
    while len(got) < 4 + 5:  # CONNACK, then SUBACK
        got += await reader.read(64)
    assert got[0] == 0x20 and got[4] == 0x90, got
    return writer


async def growth(pid: int, open_one, port: int) -> float:
    """RSS growth per client over CLIENTS idle clients (after a warm-up of 100)."""
    writers = [await open_one(port, i) for i in range(100)]
    await asyncio.sleep(0.3)
    before = rss(pid)
    writers += [await open_one(port, i) for i in range(100, 100 + CLIENTS)]
    await asyncio.sleep(0.5)
    after = rss(pid)
    for w in writers:
        w.close()
    return (after - before) / CLIENTS


@pytest.fixture
def hub(launch, tmp_path: Path):
    return launch.conf(f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\nmqtt {{ port: -1 }}\n')


async def test_an_idle_nats_connection_stays_within_its_budget(hub) -> None:
    per_client = await growth(hub.proc.pid, nats_client, hub.port)
    assert per_client <= NATS_BUDGET, f"{per_client:.0f} bytes per idle NATS connection"


@pytest.mark.parametrize("keepalive", [0, 60], ids=["no-keep-alive", "keep-alive"])
async def test_an_idle_mqtt_session_stays_within_its_budget(hub, keepalive: int) -> None:
    """A keep-alive adds no timer per client: the same budget holds with one."""
    per_client = await growth(hub.proc.pid, functools.partial(mqtt_client, keepalive=keepalive),
                              hub.mqtt_port)
    assert per_client <= MQTT_BUDGET, f"{per_client:.0f} bytes per idle MQTT session"


async def test_a_hub_without_keys_loads_no_cryptography(launch, tmp_path: Path) -> None:
    """Ed25519 and x509 load on first use (6.5 and 10 MB of RSS): a hub with every door
    and no nkey, JWT or client-certificate users maps none of cryptography's code."""
    server = launch.conf(f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\nmqtt {{ port: -1 }}\n'
                         "websocket { port: -1, no_tls: true }\nhttp: 127.0.0.1:-1\n")
    await nats_client(server.port, 0)
    await mqtt_client(server.mqtt_port, 0)
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "/cryptography/" not in maps


def test_asking_every_door_whether_it_is_wanted_loads_no_door_library() -> None:
    """The server loads every installed door's class to ask whether the options want it:
    what only a started door needs (websockets, the HTTP stack, cryptography) must
    not come with the class."""
    heavy = ("websockets", "fastapi", "starlette", "uvicorn", "cryptography")
    code = ("import sys\nfrom jetport.core.doors import door_classes\ndoor_classes()\n"
            f"print(*[m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == []
