"""Shared shapes: scenarios, their run context, results, and the scenario registry.

A scenario is one async function plus a description of which of its metrics the table shows;
new protocols or workloads plug in by registering another ``Scenario``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

Params = dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What a scenario needs to know about its target.

    ``launch`` names the kind of server ("jetport", "nats-server") for scenarios that start
    and stop servers themselves; it is None when the target is a URL given by the user.
    """

    url: str
    pid: int | None
    timeout: float
    launch: str | None = None


@dataclass
class Outcome:
    """What a scenario returns: metric values plus raw details for ``--json``.

    ``partial`` means the time limit hit before completion; metrics then cover what was done.
    """

    metrics: dict[str, float | None]
    details: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Column:
    """One metric shown in a table cell; ``higher`` tells which direction is better."""

    key: str
    label: str
    kind: str  # "rate", "ms", "s", "mb", "kb", "float"
    higher: bool = True
    ratio: bool = True


# Which server a scenario runs against (``Scenario.server``):
SHARED = "shared"  # the target's server, shared by every such scenario of the run
JETSTREAM = "jetstream"  # a launched target: a fresh server with JetStream on a scratch store
OWN = "own"  # the scenario starts and stops servers itself; needs a launchable target


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Context, Params], Coroutine[object, object, Outcome]]
    columns: tuple[Column, ...]
    defaults: Params
    label: Callable[[Params], str]
    help: str = ""
    server: str = SHARED
    # How many phases bounded by the time limit the scenario has (fill, measure, restart,
    # ...); the worker running it is given that many time limits before it is abandoned.
    phases: int = 1


@dataclass
class Result:
    """One scenario run against one target, as reported and written to JSON."""

    label: str
    scenario: str
    target: str
    params: Params
    metrics: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    REGISTRY[scenario.name] = scenario
    return scenario


class CpuProbe:
    """CPU seconds used by this process and the server (with its helper processes)
    between ``start`` and ``stop``.

    Reported next to throughput so a reader can tell whether the client or the server was
    the busy side.
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._t = self._me = 0.0
        self._srv: float | None = None

    def start(self) -> None:
        self._t, self._me, self._srv = time.perf_counter(), time.process_time(), proc_cpu(self.pid)

    def stop(self) -> dict[str, float | None]:
        wall = time.perf_counter() - self._t
        me = time.process_time() - self._me
        srv_now = proc_cpu(self.pid)
        srv = None if srv_now is None or self._srv is None else srv_now - self._srv
        return {
            "wall_s": wall,
            "client_cpu_pct": 100 * me / wall if wall > 0 else None,
            "server_cpu_pct": 100 * srv / wall if srv is not None and wall > 0 else None,
        }


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (a server may run helper processes, such as
    Jetport's SQLite writer), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def proc_cpu(pid: int | None) -> float | None:
    """User+system CPU seconds of a process and its descendants (all threads)."""
    if pid is None:
        return None
    total = 0
    for p in _family(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return None
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: int | None) -> int | None:
    """Resident set size in KiB (VmRSS) of a process and its descendants, or None when
    the process is not readable."""
    if pid is None:
        return None
    total, seen = 0, False
    for p in _family(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        seen = seen or p == pid
                        break
        except OSError:
            continue
    return total if seen else None


def proc_nofile(pid: int | None) -> int | None:
    """A process's soft open-file limit, to explain connection failures."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        return None
    return None


def latency_metrics(latencies: list[float], elapsed: float) -> dict[str, float | None]:
    """p50/p90/p99/max in ms of round trips (seconds), and the rate achieved."""
    ms = sorted(x * 1000 for x in latencies)

    def pct(q: float) -> float | None:
        return ms[max(0, math.ceil(q * len(ms)) - 1)] if ms else None

    return {"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": ms[-1] if ms else None,
            "rate": len(latencies) / elapsed if elapsed > 0 else None}


def latency_columns(rate_unit: str) -> tuple[Column, ...]:
    """The table columns for :func:`latency_metrics`."""
    return (*(Column(k, k.split("_")[0], "ms", higher=False)
              for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
            Column("rate", rate_unit, "rate", ratio=False))
