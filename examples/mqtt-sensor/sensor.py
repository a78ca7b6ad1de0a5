"""A temperature sensor that speaks MQTT: it publishes a JSON reading to
``sensors/<room>/temperature`` every interval, QoS 1, and prints each one once the broker
has acknowledged it. On Jetport (or nats-server) the topic is the NATS subject
``sensors.<room>.temperature``, so NATS, WebSocket and JetStream clients see it too."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    p.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    p.add_argument("--room", default="room1", help="topic level between sensors/ and /temperature")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    p.add_argument("--count", type=int, default=0, help="readings to send (0: until Ctrl-C)")
    p.add_argument("--start", type=float, default=21.0, help="first reading, in °C")
    return p.parse_args(argv)


def readings(room: str, start: float):
    """A slow random walk around ``start``, like a room's air."""
    celsius = start
    while True:
        yield {"room": room, "celsius": round(celsius, 1), "ts": int(time.time() * 1000)}
        celsius += random.uniform(-0.3, 0.3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sensor-{args.room}-{os.getpid()}")
    accepted = threading.Event()
    client.on_connect = lambda c, u, flags, rc, props: rc.is_failure or accepted.set()
    try:
        client.connect(args.host, args.port)
    except OSError as err:
        print(f"cannot reach the MQTT broker at {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    client.loop_start()
    if not accepted.wait(timeout=10):
        print(f"the MQTT broker at {args.host}:{args.port} did not accept us", file=sys.stderr)
        client.loop_stop()
        return 1
    topic = f"sensors/{args.room}/temperature"
    try:
        for n, reading in enumerate(readings(args.room, args.start), 1):
            sent = client.publish(topic, json.dumps(reading), qos=1)
            sent.wait_for_publish(timeout=5)
            if not sent.is_published():
                print("the broker did not acknowledge the reading", file=sys.stderr)
                return 1
            print(json.dumps(reading), flush=True)
            if n == args.count:
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
