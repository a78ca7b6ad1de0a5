"""MQTT clients the integration tests drive: paho-mqtt (3.1.1 and 5, over TCP or
WebSocket) on its own network thread, and amqtt's client in a process of its own."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V3, V5 = paho.MQTTv311, paho.MQTTv5

#: nats-server speaks MQTT 3.1.1 only: a differential test over every MQTT version runs
#: 3.1.1 on both servers and 5 on Jetport alone.
EVERY_VERSION = pytest.mark.parametrize(
    ("target", "version"), [("jetport", V3), ("jetport", V5), ("nats-server", V3)],
    ids=["jetport-3.1.1", "jetport-5", "nats-server-3.1.1"])


class Paho:
    """A paho client (callback API v2) on its own network thread; messages queue up."""

    def __init__(self, port: int, cid: str, version: int = V3, clean: bool = True,
                 expiry: int | None = None, user: str | None = None, password: str = "",
                 will: tuple[str, bytes, int, bool] | None = None,
                 ws_path: str | None = None) -> None:
        self.port = port
        self.version = version
        self.messages: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        kwargs: dict[str, Any] = {} if version == V5 else {"clean_session": clean}
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                             reconnect_on_failure=False,
                             transport="tcp" if ws_path is None else "websockets", **kwargs)
        if ws_path is not None:
            self.c.ws_set_options(path=ws_path)
        if user is not None:
            self.c.username_pw_set(user, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos=qos, retain=retain)
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, flags, rc, props: self.events.put(
            ("connect", flags.session_present, rc))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.events.put(
            ("disconnect", None, rc))
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.events.put(
            ("suback", mid, codes))
        self.clean = clean
        self.expiry = expiry

    def connect(self) -> tuple[bool, Any]:
        """Connect and wait for CONNACK: (session present, reason code)."""
        if self.version == V5:
            props = Properties(PacketTypes.CONNECT)
            if self.expiry is not None:
                props.SessionExpiryInterval = self.expiry
            self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=self.clean,
                           properties=props)
        else:
            self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        kind, present, rc = self.event("connect", "disconnect")
        return bool(present), rc

    def event(self, *kinds: str, timeout: float = 5.0) -> tuple:
        deadline = time.monotonic() + timeout
        while True:
            item = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if item[0] in kinds:
                return item

    def subscribe(self, *topics: tuple[str, int]) -> list[int]:
        """Subscribe and return the SUBACK codes as ints."""
        self.c.subscribe(list(topics))
        _, _, codes = self.event("suback")
        return [int(getattr(code, "value", code)) for code in codes]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                props: Properties | None = None) -> None:
        """Publish and wait until the QoS flow completes."""
        self.c.publish(topic, payload, qos=qos, retain=retain, properties=props) \
            .wait_for_publish(5)

    def take(self, n: int, timeout: float = 5.0) -> list[paho.MQTTMessage]:
        return [self.messages.get(timeout=timeout) for _ in range(n)]

    def nothing(self, timeout: float = 0.3) -> bool:
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message {msg.topic} {msg.payload!r}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self) -> None:
        """End the TCP connection without DISCONNECT."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()


def rc_value(rc: Any) -> int:
    return int(getattr(rc, "value", rc))


ROOT = Path(__file__).resolve().parent.parent
#: amqtt's own environment (``make`` builds it): its pins never reach the hub's.
AMQTT_PYTHON = os.environ.get("JETPORT_AMQTT_PYTHON", str(ROOT / ".venv-amqtt/bin/python"))


class AmqttError(Exception):
    """What amqtt's client raised, as its peer process reported it."""


class Amqtt:
    """amqtt's MQTTClient in its own process (``tests/peers/amqtt_peer.py``)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, op: str, timeout: float = 10.0, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise AmqttError(f"amqtt peer exited during {op}")
        answer = json.loads(line)
        if "error" in answer:
            raise AmqttError(answer["error"])
        return answer["ok"]

    async def subscribe(self, topics: list[tuple[str, int]]) -> list[int]:
        return list(await self.call("subscribe", topics=topics))

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        await self.call("publish", topic=topic, payload=payload.hex(), qos=qos)

    async def deliver_message(self, timeout_duration: float = 5.0) -> tuple[str, bytes, int] | None:
        """The next message as (topic, payload, qos), or None after the timeout."""
        msg = await self.call("deliver", timeout=timeout_duration + 5, wait=timeout_duration)
        return None if msg is None else (msg["topic"], bytes.fromhex(msg["payload"]), msg["qos"])

    async def disconnect(self) -> None:
        try:
            await self.call("disconnect")
        finally:
            await self.close()

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def amqtt_client(port: int, cid: str, auth: str = "", clean: bool = True) -> Amqtt:
    """Start amqtt's client in its own environment and connect it to the MQTT door."""
    if not Path(AMQTT_PYTHON).exists():
        raise RuntimeError(f"amqtt's environment {AMQTT_PYTHON} is missing: `make test` builds it")
    proc = await asyncio.create_subprocess_exec(
        AMQTT_PYTHON, str(ROOT / "tests/peers/amqtt_peer.py"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    client = Amqtt(proc)
    try:
        await client.call("connect", url=f"mqtt://{auth}127.0.0.1:{port}/", client_id=cid,
                          clean=clean)
    except BaseException:
        await client.close()
        raise
    return client


async def thread(fn, *args):
    return await asyncio.to_thread(fn, *args)
