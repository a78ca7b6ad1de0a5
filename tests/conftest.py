"""How a test gets a server: the ``launch`` fixture, on the test's target.

A test marked ``@pytest.mark.differential`` runs once on Jetport and once on the real
nats-server (``target`` is ``"jetport"`` or ``"nats-server"``): the same client code must
see the same behaviour from both.  ``@pytest.mark.differential(compare=True)`` marks a
test that starts both servers itself (``launch(..., target=...)``) and compares what they
answered; it runs once.  Every other test runs on Jetport only.

``--target jetport`` runs everything on Jetport alone (no nats-server needed);
``--target nats-server`` runs only the differential tests, on nats-server alone, to check
a test's expectations against the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import TARGETS, Launch, ServerProcess


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--target", choices=("both", *TARGETS), default="both",
                     help="which server the differential tests run on (default: both)")


def _differential(item: pytest.Item | pytest.Metafunc) -> pytest.Mark | None:
    node = item.definition if isinstance(item, pytest.Metafunc) else item
    return node.get_closest_marker("differential")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = _differential(metafunc)
    if mark is None or mark.kwargs.get("compare") or "target" not in metafunc.fixturenames:
        return
    if any("target" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test lists its own (target, ...) cases
    chosen = metafunc.config.getoption("--target")
    metafunc.parametrize("target", TARGETS if chosen == "both" else (chosen,))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("--target")
    if chosen == "both":
        return
    keep, drop = [], []
    for item in items:
        mark = _differential(item)
        if mark is None:
            wanted = chosen == "jetport"
        elif mark.kwargs.get("compare"):
            wanted = False
        else:
            callspec = getattr(item, "callspec", None)
            wanted = callspec is None or callspec.params.get("target", chosen) == chosen
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def target(request: pytest.FixtureRequest) -> str:
    """The server a test runs on: its differential parameter, else Jetport."""
    return getattr(request, "param", "jetport")


@pytest.fixture
def launch(tmp_path: Path, target: str) -> Iterator[Launch]:
    """Start servers on the test's target (see :class:`Launch`)."""
    servers = Launch(tmp_path, target)
    yield servers
    servers.stop_all()


@pytest.fixture
def hub(launch: Launch) -> ServerProcess:
    """The server under test with default options."""
    return launch()


@pytest.fixture
def js_hub(launch: Launch) -> ServerProcess:
    """The server under test with JetStream on a store of its own."""
    return launch.jetstream()
