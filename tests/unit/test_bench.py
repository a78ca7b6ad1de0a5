"""Smoke test for ``jetport bench``: every scenario, tiny counts, against a real nats-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.bench import main
from core.bench.counter import Counter
from core.bench.model import REGISTRY, Context
from core.bench.rawclient import Endpoint
from core.bench.runner import Job, run_here
from core.bench.servers import Target, TargetSpec, find_nats_server, target

needs_nats = pytest.mark.skipif(find_nats_server() is None, reason="nats-server not installed")

TINY: dict[str, dict[str, Any]] = {
    "pubsub": {"pubs": 2, "subs": 2, "size": 64, "count": 5_000},
    "reqrep": {"rate": 5_000, "count": 200},
    "conns": {"conns": 50, "settle": 0.05},
}


@pytest.fixture(scope="module")
def nats() -> Iterator[Target]:
    with target(TargetSpec("nats-server")) as t:
        yield t


@needs_nats
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scenario_runs(nats: Target, name: str) -> None:
    params = {**REGISTRY[name].defaults, **TINY[name]}
    outcome = run_here(Job(name, params), Context(nats.url, nats.pid, timeout=10.0))
    assert outcome.error is None
    assert not outcome.partial
    for column in REGISTRY[name].columns:
        value = outcome.metrics[column.key]
        assert value is not None and value > 0, column.key


@needs_nats
def test_cli_table_and_json(nats: Target, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    argv = ["--url", nats.url, "--pid", str(nats.pid), "--url", nats.url, "pubsub",
            "--count", "2k", "--size", "1KiB", "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "pubsub 1KiB 1->1" in table and "ratio" in table
    doc = json.loads(out.read_text())
    assert [r["target"] for r in doc["results"]] == [nats.url, nats.url + "#2"]
    assert doc["results"][0]["details"]["delivered"] == 2000


class _Transport:
    """Just enough transport for feeding a protocol by hand."""

    def __init__(self) -> None:
        self.written = b""

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _feed(proto: Counter, data: bytes) -> None:
    buf = proto.get_buffer(-1)
    buf[: len(data)] = data
    proto.buffer_updated(len(data))


async def test_counter_survives_control_lines_split_across_reads() -> None:
    counter = Counter(Endpoint("127.0.0.1", 4222), "t", b"SUB s 1\r\n")
    transport = _Transport()
    counter.connection_made(transport)  # type: ignore[arg-type]
    _feed(counter, b'INFO {"server_id":"x"}\r\n')
    assert transport.written.startswith(b"CONNECT ")
    _feed(counter, b"PONG\r\n")
    frame = b"MSG s 1 3\r\nxxx\r\n"
    _feed(counter, frame)
    assert counter.primed.done()
    done = counter.expect(7)
    stream = frame * 2 + b"PING\r\n" + frame * 3 + b"INFO {}\r\n" + frame * 2
    for step in (1, 2, 5, 7):
        for i in range(0, len(stream), step):
            _feed(counter, stream[i : i + step])
        assert done.done() and counter.count == 7, step
        assert transport.written.endswith(b"PONG\r\n")
        done = counter.expect(7)
