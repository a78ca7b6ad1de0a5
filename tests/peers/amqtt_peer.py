"""amqtt's MQTT client, driven over stdin/stdout by the tests.

amqtt pins its own versions of shared libraries (websockets among them), so it runs
from a virtual environment of its own (``make`` builds ``.venv-amqtt``) and never
decides which versions the hub is tested with.  Each request is one JSON line::

    {"op": "connect", "url": "mqtt://127.0.0.1:1883/", "client_id": "x", "clean": true}
    {"op": "subscribe", "topics": [["a/b", 1]]}
    {"op": "publish", "topic": "a/b", "payload": "<hex>", "qos": 1}
    {"op": "deliver", "wait": 5}
    {"op": "disconnect"}

and each answer one JSON line: ``{"ok": <result>}`` or ``{"error": "<class>: <text>"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from amqtt.client import MQTTClient


async def handle(client: MQTTClient | None, req: dict[str, Any]) -> tuple[MQTTClient | None, Any]:
    op = req["op"]
    if op == "connect":
        client = MQTTClient(client_id=req["client_id"],
                            config={"auto_reconnect": False, "keep_alive": 30})
        await client.connect(req["url"], cleansession=req["clean"])
        return client, None
    assert client is not None, "connect first"
    if op == "subscribe":
        return client, await client.subscribe([tuple(t) for t in req["topics"]])
    if op == "publish":
        await client.publish(req["topic"], bytes.fromhex(req["payload"]), qos=req["qos"])
        return client, None
    if op == "deliver":
        msg = await client.deliver_message(timeout_duration=req["wait"])
        if msg is None:
            return client, None
        return client, {"topic": msg.topic, "payload": bytes(msg.data).hex(), "qos": msg.qos}
    if op == "disconnect":
        await client.disconnect()
        return None, None
    raise ValueError(f"unknown op {op!r}")


async def main() -> None:
    loop = asyncio.get_running_loop()
    client: MQTTClient | None = None
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        try:
            client, result = await handle(client, json.loads(line))
            answer: dict[str, Any] = {"ok": result}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the test as data
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
