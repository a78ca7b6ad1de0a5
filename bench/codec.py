"""The NATS codec alone on the many-subject traffic: ``python -m jetport.bench.codec``.

The frames are ``subj-wild``'s (1,000 subjects ``dev.NNNN.temp``, payloads of 32, 200 and
64 bytes in turn, one ``HPUB`` with a header in four), cut into 64 KiB reads at whatever
byte they fall on, as a socket delivers them. It times :meth:`ServerCodec.receive_data`
over those reads and prints the best rate of several rounds, so that the pure and the
mypyc build (docs/benchmarks.md) can be compared without a server or a socket.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from jetport.bridges.nats import codec
from jetport.bridges.nats.codec import OP_PUB, OP_PUBS, ServerCodec

from .pubsub import BATCH_BYTES
from .subjects import cycle_frames


def reads(cycles: int) -> tuple[list[bytes], int]:
    """The traffic of ``cycles`` full cycles as socket-sized reads, and its message count."""
    frames = cycle_frames(1000)
    stream = b"".join(frames) * cycles
    return ([stream[i:i + BATCH_BYTES] for i in range(0, len(stream), BATCH_BYTES)],
            len(frames) * cycles)


def parse(chunks: list[bytes]) -> tuple[int, float]:
    """Messages parsed from ``chunks`` by a fresh codec, and the seconds it took."""
    parser = ServerCodec()
    parser.receive_data(b'CONNECT {"headers":true,"verbose":false}\r\n')
    messages = 0
    start = time.perf_counter()
    for chunk in chunks:
        for event in parser.receive_data(chunk):
            if event[0] == OP_PUB:
                messages += 1
            elif event[0] == OP_PUBS:
                messages += len(event[4])
    return messages, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jetport.bench.codec", description=__doc__)
    ap.add_argument("--cycles", type=int, default=100, help="3,000-message cycles per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the best is reported")
    args = ap.parse_args(argv)
    chunks, expected = reads(args.cycles)
    best = 0.0
    for _ in range(args.rounds):
        messages, seconds = parse(chunks)
        if messages != expected:
            raise SystemExit(f"parsed {messages} messages, expected {expected}")
        best = max(best, messages / seconds)
    build = "compiled" if codec.__file__.endswith(".so") else "pure"
    print(f"codec ({build}): {best / 1e3:.0f}k msgs/s, best of {args.rounds} x {expected:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
