"""The codecs alone on the many-subject traffic: ``python -m jetport.bench.codec``.

NATS: ``subj-wild``'s frames (1,000 subjects ``dev.NNNN.temp``, payloads of 32, 200 and 64
bytes in turn, one ``HPUB`` with a header in four) parsed by :class:`ServerCodec`. MQTT:
the same subjects as topics and the same payloads as QoS 0 PUBLISH packets, decoded by a
server's :class:`MqttCodec`, and encoded by it as deliveries. Input arrives in 64 KiB reads
cut at whatever byte they fall on, as a socket delivers it. Each rate is the best of
several rounds, so that the pure and the mypyc build (docs/benchmarks.md) can be compared
without a server or a socket.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from jetport.bridges.mqtt.codec import MqttCodec
from jetport.bridges.mqtt.packets import Publish
from jetport.bridges.nats import codec
from jetport.bridges.nats.codec import OP_PUB, OP_PUBS, ServerCodec

from .pubsub import BATCH_BYTES
from .rawclient import FILL
from .subjects import SIZES, cycle_frames, subject


def _reads(stream: bytes) -> list[bytes]:
    return [stream[i:i + BATCH_BYTES] for i in range(0, len(stream), BATCH_BYTES)]


def _publishes() -> list[Publish]:
    """One cycle of the traffic as MQTT QoS 0 publishes."""
    return [Publish(subject(i % 1000).replace(".", "/"), FILL * SIZES[i % len(SIZES)])
            for i in range(len(cycle_frames(1000)))]


def nats_parse(cycles: int) -> Callable[[], int]:
    """A round of NATS parsing; it returns the number of messages parsed."""
    chunks = _reads(b"".join(cycle_frames(1000)) * cycles)

    def run() -> int:
        parser = ServerCodec()
        parser.receive_data(b'CONNECT {"headers":true,"verbose":false}\r\n')
        messages = 0
        for chunk in chunks:
            for event in parser.receive_data(chunk):
                if event[0] == OP_PUB:
                    messages += 1
                elif event[0] == OP_PUBS:
                    messages += len(event[4])
        return messages
    return run


def mqtt_decode(cycles: int) -> Callable[[], int]:
    client = MqttCodec(client=True, level=4)
    chunks = _reads(b"".join(client.send(p) for p in _publishes()) * cycles)

    def run() -> int:
        server = MqttCodec(level=4)
        return sum(len(server.receive_data(chunk)) for chunk in chunks)
    return run


def mqtt_encode(cycles: int) -> Callable[[], int]:
    packets = _publishes() * cycles

    def run() -> int:
        send = MqttCodec(level=4).send
        for packet in packets:
            send(packet)
        return len(packets)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jetport.bench.codec", description=__doc__)
    ap.add_argument("--cycles", type=int, default=100, help="3,000-message cycles per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the best is reported")
    args = ap.parse_args(argv)
    build = "compiled" if codec.__file__.endswith(".so") else "pure"
    expected = len(cycle_frames(1000)) * args.cycles
    for name, make in (("nats parse", nats_parse), ("mqtt decode", mqtt_decode),
                       ("mqtt encode", mqtt_encode)):
        run = make(args.cycles)
        best = 0.0
        for _ in range(args.rounds):
            start = time.perf_counter()
            messages = run()
            seconds = time.perf_counter() - start
            if messages != expected:
                raise SystemExit(f"{name}: {messages} messages, expected {expected}")
            best = max(best, messages / seconds)
        print(f"{name} ({build}): {best / 1e3:.0f}k msgs/s, best of {args.rounds} x "
              f"{expected:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
