from __future__ import annotations

import os
from pathlib import Path

import pytest
from servers import ServerProcess, jetport, nats_server, nats_server_binary


@pytest.fixture
def hub(tmp_path: Path):
    """A Jetport hub with default options on a random port."""
    server = jetport(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def make_hub(tmp_path: Path):
    """Start hubs with extra flags; all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(*args: str, name: str = "jetport") -> ServerProcess:
        server = jetport(tmp_path, *args, name=name).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def reference(tmp_path: Path):
    """The real nats-server, for differential tests."""
    if nats_server_binary() is None:
        pytest.skip(reason="nats-server not installed")
    server = nats_server(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def srv(tmp_path: Path, make_hub):
    """The server under test with JetStream enabled: Jetport, or the real nats-server
    when JETPORT_TEST_TARGET=nats-server (to check a test's expectations)."""
    store = str(tmp_path / "store")
    if os.environ.get("JETPORT_TEST_TARGET") == "nats-server":
        server = nats_server(tmp_path, "-js", "-sd", store).start()
        yield server
        server.stop()
    else:
        yield make_hub("-js", "-sd", store)


@pytest.fixture(params=["jetport", "nats-server"])
def conf_server(request, tmp_path: Path):
    """Start a server from config text, once as Jetport and once as the real
    nats-server: the same file must give the same behaviour on both.

    ``start(text, *flags)`` writes ``text`` to a file and starts the server on a free
    port with ``-c`` that file; every server started is stopped after the test.
    """
    target = request.param
    if target == "nats-server" and nats_server_binary() is None:
        pytest.skip(reason="nats-server not installed")
    started: list[ServerProcess] = []

    def start(text: str, *flags: str) -> ServerProcess:
        n = len(started)
        conf = tmp_path / f"{target}-{n}.conf"
        conf.write_text(text)
        make = jetport if target == "jetport" else nats_server
        server = make(tmp_path, "-c", str(conf), *flags, name=f"{target}-{n}").start()
        server.target = target
        server.conf_path = conf
        started.append(server)
        return server

    start.target = target
    yield start
    for s in started:
        s.stop()
