"""A real nats-server JetStream cluster on loopback, and nats-server leaf nodes that dial
it: the reference topology for Jetport's leafnode tests.

:class:`HubCluster` writes one config per node (``n1`` … ``n3``: client, route and
leafnode listeners on fixed free ports, so a restarted node comes back where it was;
JetStream with a domain, ``hub`` by default; stores under the test's tmp path), starts
the nodes together and waits until the cluster is usable: every node healthy
(``/healthz``), routed to all the others (``/routez``) and agreeing on one JetStream
meta leader that sees every peer (``/jsz``).  :meth:`HubCluster.kill` is ``kill -9``;
:meth:`HubCluster.restart` brings a node back and waits for the same readiness.
:meth:`HubCluster.start_leaf` starts a nats-server with ``leafnodes { remotes }`` on all
nodes' leafnode ports and waits for its link.

Use :func:`cluster_fixture` to make a pytest fixture (module-scoped by default: a
cluster takes a few seconds to elect its meta leader).
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.aio.subscription
import nats.errors
import pytest
from mqtt_clients import Paho, thread
from servers import ServerProcess, free_ports, nats_server_binary

CLUSTER_NAME = "HUB"


@dataclass(frozen=True)
class NodePorts:
    """The fixed listeners of one node."""

    client: int
    cluster: int
    leafnode: int
    http: int


def _q(value: str | Path) -> str:
    """A config string value (JSON quoting is valid nats-server config syntax)."""
    return json.dumps(str(value))


def monitor(server: ServerProcess, path: str, timeout: float = 2.0) -> dict[str, Any]:
    """GET a monitoring endpoint (``/jsz``, ``/leafz?subs=1`` …) as JSON; ``{}`` when the
    server does not answer or answers with an error status."""
    url = f"http://127.0.0.1:{server.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class HubCluster:
    """A nats-server cluster of ``size`` nodes (n1..nN), JetStream in ``domain``.

    :param domain: the JetStream domain (``jetstream { domain: … }``); None for none.
    :param jetstream: False runs the cluster without JetStream.
    :param extra: config text added to every node (accounts, authorization, …).
    :param leafnode_extra: text added inside every node's ``leafnodes {}`` block.
    """

    def __init__(self, tmp: Path, *, size: int = 3, domain: str | None = "hub",
                 jetstream: bool = True, extra: str = "", leafnode_extra: str = "",
                 name: str = CLUSTER_NAME) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server binary not found")
        self.tmp = tmp
        self.size = size
        self.domain = domain
        self.jetstream = jetstream
        self.name = name  # (two clusters linked by a leaf link need different names)
        self._extra, self._leafnode_extra = extra, leafnode_extra
        self.names = [f"n{i}" for i in range(1, size + 1)]
        self.nodes = [ServerProcess([binary, "-c", str(tmp / f"{name}.conf")],
                                    tmp / f"{name}.log", cwd=tmp) for name in self.names]
        for name, node in zip(self.names, self.nodes, strict=True):
            node.target, node.conf_path = "nats-server", tmp / f"{name}.conf"
        self.ports: list[NodePorts] = []
        self._configure()
        self.leaves: list[ServerProcess] = []

    def _configure(self) -> None:
        """Pick free ports and write every node's config."""
        ports = iter(free_ports(4 * len(self.names)))
        self.ports = [NodePorts(*(next(ports) for _ in range(4))) for _ in self.names]
        routes = ", ".join(f"nats-route://127.0.0.1:{p.cluster}" for p in self.ports)
        for name, ports in zip(self.names, self.ports, strict=True):
            (self.tmp / f"{name}.conf").write_text(
                self._config(name, ports, routes, self._extra, self._leafnode_extra))

    def _config(self, name: str, ports: NodePorts, routes: str, extra: str,
                leafnode_extra: str) -> str:
        js = ""
        if self.jetstream:
            domain = f", domain: {_q(self.domain)}" if self.domain else ""
            js = f"jetstream {{ store_dir: {_q(self.tmp / name / 'js')}{domain} }}\n"
        return (
            f"server_name: {name}\n"
            f"listen: 127.0.0.1:{ports.client}\n"
            f"http: 127.0.0.1:{ports.http}\n"
            f"{js}"
            f"cluster {{ name: {self.name}, listen: 127.0.0.1:{ports.cluster},"
            f" routes: [{routes}] }}\n"
            f"leafnodes {{ listen: 127.0.0.1:{ports.leafnode}\n{leafnode_extra}\n}}\n"
            f"{extra}\n"
        )

    # -- life cycle -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0, attempts: int = 3) -> HubCluster:
        """Start every node and wait until the cluster is ready.  A node that cannot
        start (a free port taken by another test meanwhile), or a cluster that does not
        become ready in ``timeout``, makes the whole cluster start again on new ports
        with empty stores."""
        for attempt in range(attempts):
            try:
                for node in self.nodes:
                    node.start(timeout)
                self.wait_ready(timeout)
                if len(self.running()) != self.size:
                    raise RuntimeError(f"a node of {self.names} exited; logs in {self.tmp}")
            except (RuntimeError, TimeoutError) as exc:
                self.stop()
                if attempt == attempts - 1:
                    raise
                print(f"cluster start, attempt {attempt + 1} of {attempts}: {exc}",
                      file=sys.stderr)  # shown with the test's output if it fails later
                for name in self.names:
                    shutil.rmtree(self.tmp / name, ignore_errors=True)
                self._configure()
                continue
            except BaseException:
                self.stop()
                raise
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for proc in [*self.leaves, *self.nodes]:
            if proc.proc is not None:
                proc.stop()

    def __enter__(self) -> HubCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def node(self, name: str) -> ServerProcess:
        """``"n1"`` → that node's process."""
        return self.nodes[self.names.index(name)]

    def running(self) -> list[ServerProcess]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def kill(self, name: str) -> None:
        """``kill -9`` one node."""
        self.node(name).kill()

    def restart(self, name: str, timeout: float = 30.0) -> ServerProcess:
        """Start a stopped or killed node again on its ports and wait until the cluster,
        that node included, is ready."""
        node = self.node(name)
        node.restart(timeout=timeout)
        self.wait_ready(timeout)
        return node

    # -- readiness ------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running node healthy, routed to the other running nodes, and (with
        JetStream) all agreeing on a meta leader that has every peer."""
        wait_until(self.ready, timeout, f"cluster {self.names} ready; logs in {self.tmp}")

    def ready(self) -> bool:
        nodes = self.running()
        names = {self.names[self.nodes.index(n)] for n in nodes}
        leaders = set()
        for node in nodes:
            name = self.names[self.nodes.index(node)]
            if monitor(node, "/healthz").get("status") != "ok":
                return False
            routed = {r.get("remote_name") for r in monitor(node, "/routez").get("routes") or []}
            if not (names - {name}) <= routed:
                return False
            if self.jetstream:
                meta = monitor(node, "/jsz").get("meta_cluster") or {}
                if not meta.get("leader") or meta.get("cluster_size") != self.size:
                    return False
                leaders.add(meta["leader"])
        if self.jetstream and (len(leaders) != 1 or not leaders <= set(self.names)):
            return False
        if self.jetstream:
            # The leader's view: every other running node is a current peer.
            leader = self.node(leaders.pop())
            replicas = monitor(leader, "/jsz").get("meta_cluster", {}).get("replicas") or []
            current = {r["name"] for r in replicas if r.get("current")}
            if not (names - {self.names[self.nodes.index(leader)]}) <= current:
                return False
        return True

    def meta_leader(self) -> str:
        """The name of the JetStream meta leader, as the first running node sees it."""
        return monitor(self.running()[0], "/jsz").get("meta_cluster", {}).get("leader", "")

    # -- addresses ------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Client URLs of all nodes."""
        return [f"nats://127.0.0.1:{p.client}" for p in self.ports]

    @property
    def leafnode_urls(self) -> list[str]:
        """What a remote lists to reach the cluster's leafnode listeners."""
        return [f"nats-leaf://127.0.0.1:{p.leafnode}" for p in self.ports]

    # -- leaf nodes -----------------------------------------------------------------------

    def start_leaf(self, name: str = "leaf1", *, domain: str | None = "leaf1",
                   jetstream: bool = True, remote_extra: str = "", extra: str = "",
                   urls: list[str] | None = None, timeout: float = 15.0,
                   target: str = "nats-server", remotes: list[str] | None = None,
                   links: int = 1) -> ServerProcess:
        """Start a leaf node that dials the cluster (all nodes' leafnode ports unless
        ``urls`` is given) and wait until its leafnode link is up.

        :param target: ``"nats-server"`` or ``"jetport"``: which server is the leaf;
            both get the same config file.

        :param domain: the leaf's own JetStream domain; None for none.
        :param jetstream: False: a leaf without JetStream (it reaches the hub's with
            ``$JS.<hub domain>.API``, e.g. ``nc.jetstream(domain="hub")``).
        :param remote_extra: text inside the remote block (``deny_imports: [...]`` …).
        :param extra: config text added at the top level.
        :param remotes: the bodies of several remotes (each ``urls: [...], account: A``),
            instead of the one built from ``urls`` and ``remote_extra``; ``links``: how
            many links to wait for.
        """
        js = ""
        if jetstream:
            dom = f", domain: {_q(domain)}" if domain else ""
            js = f"jetstream {{ store_dir: {_q(self.tmp / name / 'js')}{dom} }}\n"
        remote_list = ", ".join(f"{{ {r} }}" for r in remotes) if remotes else (
            f"{{ urls: [{', '.join(_q(u) for u in (urls or self.leafnode_urls))}]\n"
            f"{remote_extra}\n}}")
        conf = self.tmp / f"{name}.conf"
        if target == "jetport":
            argv = [sys.executable, "-m", "jetport.core.cli", "serve", "-c", str(conf)]
        else:
            binary = nats_server_binary()
            assert binary is not None
            argv = [binary, "-c", str(conf)]
        leaf = ServerProcess(argv, self.tmp / f"{name}.log", cwd=self.tmp)
        leaf.target, leaf.conf_path = target, conf
        self.leaves.append(leaf)
        for attempt in range(3):  # new ports if another test took the free ones meanwhile
            client, http = free_ports(2)
            conf.write_text(
                f"server_name: {name}\n"
                f"listen: 127.0.0.1:{client}\n"
                f"http: 127.0.0.1:{http}\n"
                f"{js}"
                f"leafnodes {{ reconnect: 1,\n  remotes: [ {remote_list} ] }}\n"
                f"{extra}\n"
            )
            try:
                leaf.start(timeout)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        wait_until(lambda: links_up(leaf) >= links, timeout,
                   f"leaf {name} linked to the cluster")
        return leaf


def links_up(leaf: ServerProcess) -> int:
    """How many leafnode links the leaf has up: from ``/leafz``, or, where monitoring is
    for the system account only (Jetport with users configured), from its log."""
    doc = monitor(leaf, "/leafz")
    if "leafs" in doc:
        return len(doc["leafs"] or [])
    lines = leaf.log().splitlines()
    return sum("Connected leafnode" in line for line in lines) - sum(
        "Leafnode connection to" in line and line.endswith(" closed") for line in lines)


def leaf_connected(leaf: ServerProcess) -> bool:
    """The leaf has its leafnode connection up (``/leafz``)."""
    return bool(monitor(leaf, "/leafz").get("leafnodes"))


def cluster_fixture(*, scope: str = "module", name: str | None = None,
                    **options: Any) -> Any:
    """Make a pytest fixture giving a started :class:`HubCluster` (stopped afterwards,
    with its leaves).  In a test module::

        hub = cluster_fixture()                  # fixture named "hub", module scope
        hub_nojs = cluster_fixture(jetstream=False)

    ``options`` go to :class:`HubCluster`.  Skips when nats-server is not installed.
    """

    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubCluster]:
        if nats_server_binary() is None:
            pytest.skip(reason="nats-server not installed")
        cluster = HubCluster(tmp_path_factory.mktemp("cluster"), **options)
        with cluster:
            yield cluster

    return pytest.fixture(scope=scope, name=name)(fixture)  # type: ignore[call-overload]


async def until_delivered(pub: nats.NATS, subject: str, sub: nats.aio.subscription.Subscription,
                          timeout: float = 10.0) -> None:
    """Publish probes until one arrives: interest crosses the link and the cluster's
    routes asynchronously, as with nats-server.  Drains the probes that arrived."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await pub.publish(subject, b"probe")
        await pub.flush()
        try:
            await sub.next_msg(timeout=0.2)
            break
        except nats.errors.TimeoutError:
            if loop.time() > deadline:
                raise
    await asyncio.sleep(0.2)
    while True:
        try:
            await sub.next_msg(timeout=0.05)
        except nats.errors.TimeoutError:
            return


async def drain(sub: nats.aio.subscription.Subscription, wait: float = 0.5) -> list[bytes]:
    got = []
    while True:
        try:
            msg = await sub.next_msg(timeout=wait)
        except nats.errors.TimeoutError:
            return got
        got.append(msg.data)


async def until_mqtt_delivered(pub: nats.NATS, subject: str, data: bytes, client: Paho,
                               timeout: float = 15.0) -> Any:
    """Publish ``data`` on ``subject`` over NATS until the MQTT ``client`` gets a message
    (its hub's interest crosses the links asynchronously); that message."""
    deadline = time.monotonic() + timeout
    while True:
        await pub.publish(subject, data)
        await pub.flush()
        try:
            return await thread(client.messages.get, True, 0.25)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise
