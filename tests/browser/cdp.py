"""Drive headless Chromium over the Chrome DevTools Protocol with the ``websockets``
library: enough to load a page, read it with JavaScript, click and take a screenshot,
without a browser-automation dependency."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
#: Screenshots of the last run, kept as test artefacts.
OUTPUT = Path(__file__).resolve().parent / "output"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1000,760", "--remote-debugging-port=0"]


class CdpError(RuntimeError):
    """A DevTools command failed, or a page expression threw."""


class Page:
    """One page target. Console output and uncaught exceptions are kept in ``console``
    so a failing test can show what the page said."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.console: list[str] = []
        self._id = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                return msg["result"]
            self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        params = msg.get("params", {})
        if msg.get("method") == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"console.{params['type']}: {args}")
        elif msg.get("method") == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.console.append(f"uncaught: {text}")

    async def navigate(self, url: str) -> None:
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"navigate {url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll ``expression`` until it is truthy; its value, or AssertionError with the
        page's console after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except CdpError as err:
                value = err
            if value and not isinstance(value, CdpError):
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"{expression!r} still {value!r} after {timeout}s; "
                             f"page console: {self.console}")

    async def press(self, key: str) -> None:
        """A key pressed and released on the focused element ("Tab", "Enter")."""
        codes = {"Tab": 9, "Enter": 13}
        for kind in ("rawKeyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                            windowsVirtualKeyCode=codes.get(key, 0))
        if key == "Enter":
            await self.send("Input.dispatchKeyEvent", type="char", text="\r")

    async def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Show the page as a screen of this size (a phone's with ``mobile``)."""
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=mobile)

    async def screenshot(self) -> bytes:
        """The viewport as PNG bytes."""
        result = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    """Chromium writes its DevTools port to the profile once it listens."""
    path = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (lines := path.read_text().splitlines()):
            return int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port")


def _page_target(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
        targets = json.load(r)
    pages = [t for t in targets if t.get("type") == "page"]
    if pages:
        return pages[0]["webSocketDebuggerUrl"]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["webSocketDebuggerUrl"]


@asynccontextmanager
async def chromium(binary: str = CHROMIUM, timeout: float = 20.0) -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile) and its page; the browser and all its
    child processes are killed on exit."""
    profile = Path(tempfile.mkdtemp(prefix="jetport-chromium-"))
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port = await asyncio.to_thread(_devtools_port, profile, proc, timeout)
        url = await asyncio.to_thread(_page_target, port)
        async with connect(url, max_size=None, open_timeout=timeout) as ws:
            page = Page(ws)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page
    finally:
        _kill(proc)
        shutil.rmtree(profile, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL to the browser's whole process group (renderers, GPU, zygote) while the
    browser is not yet reaped, so the group id cannot belong to anyone else; then reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a well-formed PNG (signature, IHDR and IDAT checked)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    ihdr = data[16:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + ihdr)
    assert b"IDAT" in data and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", ihdr[:8])


def save_screenshot(data: bytes, request: pytest.FixtureRequest, tmp_path: Path,
                    suffix: str = "", min_width: int = 600) -> Path:
    """Write the PNG to tmp_path and to tests/browser/output/<test name><suffix>.png."""
    name = re.sub(r"[^\w-]+", "-", request.node.name + suffix).strip("-") + ".png"
    OUTPUT.mkdir(exist_ok=True)
    (tmp_path / name).write_bytes(data)
    (OUTPUT / name).write_bytes(data)
    width, height = png_size(data)
    assert width >= min_width and height >= 400, (width, height)
    assert len(data) > 10_000, len(data)
    return OUTPUT / name
