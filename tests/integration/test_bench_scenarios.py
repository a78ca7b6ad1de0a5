"""Smoke test for ``jetport bench``: every scenario, tiny counts, against a real nats-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jetport.bench import main
from jetport.bench.model import JETSTREAM, OWN, REGISTRY, Context
from jetport.bench.runner import Job, run_here
from jetport.bench.servers import Target, TargetSpec, find_nats_server, target

needs_nats = pytest.mark.skipif(find_nats_server() is None, reason="nats-server not installed")

TINY: dict[str, dict[str, Any]] = {
    "pubsub": {"pubs": 2, "subs": 2, "size": 64, "count": 5_000},
    "subj-wild": {"count": 3_000},
    "subj-exact": {"count": 3_000},
    "subj-queue": {"count": 3_000, "subs": 4},
    "reqrep": {"rate": 5_000, "count": 200},
    "conns": {"conns": 50, "settle": 0.05},
    "js-pub": {"count": 2_000, "window": 100},
    "js-sync": {"count": 50},
    "js-fetch": {"count": 2_500, "batch": 300},
    "js-restart": {"count": 2_000},
    "auth": {"count": 5_000, "rules": 10},
    "ws": {"count": 5_000},
    "mqtt-qos0": {"count": 5_000, "subs": 2},
    "mqtt-qos1": {"count": 2_000, "subs": 2, "window": 50},
    "mqtt-clients": {"conns": 50, "settle": 0.05},
    "http": {"count": 300, "conns": 4, "batch": 200, "batch_msgs": 2_000, "fetch_msgs": 1_000,
             "nats_msgs": 2_000},
    "sse": {"subs": 20, "rate": 500, "count": 50},
    "reqrep-load": {"burst": 20_000, "rate": 5_000, "count": 200},
    "leaf-pubsub": {"count": 3_000, "nodes": 1},
    "leaf-mqtt": {"count": 300, "nodes": 1},
}


@pytest.fixture(scope="module")
def nats() -> Iterator[Target]:
    with target(TargetSpec("nats-server")) as t:
        yield t


@pytest.fixture(scope="module")
def nats_js() -> Iterator[Target]:
    """One JetStream-enabled nats-server shared by the js-* smoke tests (each scenario uses
    its own uniquely named stream and deletes it)."""
    with target(TargetSpec("nats-server"), jetstream=True) as t:
        yield t


# Scenarios of Jetport's HTTP door: they measure nothing for a nats-server target.
JETPORT_ONLY = ("http", "sse")


def _context(name: str, request: pytest.FixtureRequest) -> Context:
    server = REGISTRY[name].server
    if server == OWN:
        return Context("", None, timeout=10.0,
                       launch="jetport" if name in JETPORT_ONLY else "nats-server")
    tgt: Target = request.getfixturevalue("nats_js" if server == JETSTREAM else "nats")
    return Context(tgt.url, tgt.pid, timeout=10.0)


@needs_nats
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scenario_runs(request: pytest.FixtureRequest, name: str) -> None:
    params = {**REGISTRY[name].defaults, **TINY[name]}
    outcome = run_here(Job(name, params), _context(name, request))
    assert outcome.error is None
    assert not outcome.partial
    for column in REGISTRY[name].columns:
        value = outcome.metrics[column.key]
        assert value is not None, column.key
        # Rates and times are positive; a percentage change may have either sign.
        assert value > 0 or column.key.endswith("_pct"), column.key


@pytest.mark.parametrize("name", JETPORT_ONLY)
def test_http_door_scenarios_leave_the_nats_server_column_empty(name: str) -> None:
    outcome = run_here(Job(name, dict(REGISTRY[name].defaults)),
                       Context("", None, timeout=10.0, launch="nats-server"))
    assert (outcome.metrics, outcome.error) == ({}, None)
    assert outcome.details["skipped"] == "nats-server has no HTTP door"


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


@needs_nats
def test_js_counts_are_verified(nats_js: Target) -> None:
    params = {**REGISTRY["js-fetch"].defaults, **TINY["js-fetch"]}
    outcome = run_here(Job("js-fetch", params), Context(nats_js.url, nats_js.pid, 10.0))
    d = outcome.details
    assert d["acked"] == d["filled"] == 2_500
    assert d["pulls"] == 9 and d["num_ack_pending"] == 0 and d["num_pending"] == 0
    params = {**REGISTRY["js-pub"].defaults, **TINY["js-pub"], "warmup": 100}
    outcome = run_here(Job("js-pub", params), Context(nats_js.url, nats_js.pid, 10.0))
    assert outcome.details["stream_messages"] == 2_100
    restart = {**REGISTRY["js-restart"].defaults, **TINY["js-restart"]}
    outcome = run_here(Job("js-restart", restart), Context("", None, 10.0, launch="nats-server"))
    assert outcome.details["filled"] == outcome.details["stream_messages"] == 2_000


@needs_nats
def test_js_scenarios_need_jetstream_or_a_launched_server(nats: Target) -> None:
    ctx = Context(nats.url, nats.pid, timeout=5.0)
    outcome = run_here(Job("js-sync", dict(REGISTRY["js-sync"].defaults)), ctx)
    assert outcome.error is not None and "JetStream" in outcome.error
    outcome = run_here(Job("js-restart", dict(REGISTRY["js-restart"].defaults)), ctx)
    assert outcome.error is not None and "starts itself" in outcome.error


@needs_nats
def test_cli_starts_a_jetstream_server_per_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--nats-server", "js-pub", "js-sync", "--count", "200", "--window", "50",
                 "--in-process"]) == 0
    out = capsys.readouterr()
    assert "js-pub 128B w50" in out.out and "js-sync 128B" in out.out
    assert out.err.count("JetStream server pid") == 2


@needs_nats
def test_leaf_pubsub_compares_jetport_and_nats_server_leaves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both kinds of leaf in one --compare run, across a 3-node cluster: every message
    arrives exactly once on each side, and the client's CPU is reported."""
    out = tmp_path / "leaf.json"
    assert main(["--compare", "leaf-pubsub", "--count", "3k", "--size", "64", "--nodes", "3",
                 "--in-process", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "leaf-pubsub 64B A->3-node cluster->B" in table
    assert "ratio jetport/nats-server" in table
    results = json.loads(out.read_text())["results"]
    assert [r["target"] for r in results] == ["jetport", "nats-server"]
    for r in results:
        d = r["details"]
        assert r["error"] is None and not r["partial"], r["target"]
        assert d["delivered"] == d["expected"] == 3_000 and d["duplicates"] == 0, r["target"]
        assert r["metrics"]["msgs_per_s"] > 0 and r["metrics"]["mb_per_s"] > 0
        assert d["client_cpu_pct"] is not None and d["server_cpu_pct"] is not None
        kinds = [s["kind"] for s in d["servers"]]
        expected_leaf = r["target"]
        assert kinds == [expected_leaf, expected_leaf] + ["nats-server"] * 3


def test_leaf_pubsub_needs_a_launched_target() -> None:
    params = dict(REGISTRY["leaf-pubsub"].defaults)
    outcome = run_here(Job("leaf-pubsub", params), Context("nats://127.0.0.1:1", None, 5.0))
    assert outcome.error is not None and "starts its own servers" in outcome.error
