"""The examples run as documented against a real hub."""

from __future__ import annotations

import subprocess
import sys

from servers import ROOT


def run_example(path: str, url: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / path), url],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return out.stdout


def test_pubsub_example(hub) -> None:
    out = run_example("pubsub/pubsub.py", hub.url)
    assert "sensors.kitchen.temperature: 21.5" in out
    assert out.count("temperature:") == 3


def test_request_reply_example(hub) -> None:
    out = run_example("request-reply/request_reply.py", hub.url)
    assert "hello -> HELLO" in out
    assert "svc.missing: no responders" in out
