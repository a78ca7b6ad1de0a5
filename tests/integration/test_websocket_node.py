"""The official NATS JavaScript clients (@nats-io/nats-core's wsconnect, @nats-io/jetstream,
@nats-io/kv) over the WebSocket door, run with node against Jetport and nats-server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from servers import free_port

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The npm packages, installed from the lock file when CI has not done it yet."""
    modules = NODE_DIR / "node_modules"
    if not (modules / "@nats-io" / "nats-core").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install the JavaScript clients"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)
    return modules


@pytest.mark.differential
def test_js_clients_over_websocket(launch, node_modules: Path, tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / f"js-{launch.target}"
    launch.conf(f'jetstream {{ store_dir: "{store}" }}\n'
                f"websocket {{\n  port: {port}\n  no_tls: true\n}}\n")
    assert NODE is not None
    run = subprocess.run([NODE, "ws_clients.mjs", f"ws://127.0.0.1:{port}"], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=120)
    checks = {}
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            checks[result["check"]] = result
    failed = {name: r["error"] for name, r in checks.items() if not r["ok"]}
    assert not failed, failed
    assert set(checks) == {"pubsub", "request-reply", "headers",
                           "jetstream publish and consume", "kv", "batched direct get",
                           "priority groups and pause"}, run.stderr
    assert run.returncode == 0, run.stderr
