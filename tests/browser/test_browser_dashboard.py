"""The browser examples in a real headless Chromium: examples/browser-dashboard's pages,
served as static files, talk to a hub's WebSocket listener with the official NATS
JavaScript client (live chart, JetStream replay) and with mqtt.js (MQTT over WebSocket),
while examples/mqtt-sensor publishes over MQTT on TCP.

Each test runs on Jetport and on nats-server from the same config. Screenshots go to the
test's tmp_path and to tests/browser/output/."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from cdp import CHROMIUM, Page, chromium, save_screenshot
from nats.js.api import StorageType, StreamConfig
from servers import ROOT, ServerProcess, free_port

DASHBOARD = ROOT / "examples" / "browser-dashboard"
SENSOR = ROOT / "examples" / "mqtt-sensor" / "sensor.py"
NPM = shutil.which("npm")
INSTALLED = [DASHBOARD / "node_modules" / "@nats-io" / "nats-core",
             DASHBOARD / "node_modules" / "mqtt"]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(NPM is None and not all(p.is_dir() for p in INSTALLED),
                       reason="npm is not installed (needed for the pages' node_modules)"),
    pytest.mark.timeout(30),
]

CONF = """server_name: {name}
jetstream {{ store_dir: "{store}" }}
mqtt {{ host: 127.0.0.1, port: -1 }}
websocket {{ host: 127.0.0.1, port: {ws}, no_tls: true }}
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """examples/browser-dashboard over HTTP (its node_modules installed from the lock file
    when CI has not done it yet), as `python -m http.server` would serve it."""
    if not all(p.is_dir() for p in INSTALLED):
        assert NPM is not None
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=DASHBOARD, check=True,
                       capture_output=True, timeout=300)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(DASHBOARD))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hub(launch, tmp_path: Path) -> ServerProcess:
    """NATS, JetStream, MQTT and WebSocket (no TLS) on free ports."""
    ws = free_port()
    server = launch.conf(CONF.format(name=launch.target, store=tmp_path / "js", ws=ws))
    assert server.mqtt_port, server.log()
    server.ws_url = f"ws://127.0.0.1:{ws}"
    return server


def run_sensor(hub: ServerProcess, room: str, count: int, start: float) -> list[dict]:
    """examples/mqtt-sensor as documented; the readings it says the broker acknowledged."""
    out = subprocess.run(
        [sys.executable, str(SENSOR), "--port", str(hub.mqtt_port), "--room", room,
         "--count", str(count), "--interval", "0.1", "--start", str(start)],
        capture_output=True, text=True, timeout=20,
    )
    assert out.returncode == 0, out.stderr
    readings = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(readings) == count
    return readings


async def text(page: Page, selector: str) -> str:
    return await page.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


@pytest.mark.differential
async def test_dashboard_live_chart_and_replay(site: str, hub: ServerProcess, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    async with chromium() as page:
        await page.navigate(f"{site}/?server={hub.ws_url}")
        await page.wait_for("document.querySelector('#status').textContent === 'connected'")

        nc = await nats.connect(hub.url)
        try:
            info = await nc.jetstream().stream_info("SENSORS")
        finally:
            await nc.close()
        assert info.config.subjects == ["sensors.>"]
        assert info.config.max_age == 3600
        assert info.config.storage == StorageType.FILE

        readings = run_sensor(hub, "lab", count=6, start=31.7)
        last = readings[-1]
        expected = f"lab: {last['celsius']:.1f} °C"
        await page.wait_for(f"document.querySelector('#latest').textContent === '{expected}'")

        await page.evaluate("document.querySelector('#replay').click()")
        replayed = await page.wait_for(
            "(n => n >= 0 && n)(parseInt(document.querySelector('#replayed').textContent))")
        assert replayed >= len(readings), await text(page, "#status")
        assert await text(page, "#status") == "connected"

        # The chart has the line: many pixels are neither the white background nor grey.
        coloured = await page.evaluate("""(() => {
            const c = document.querySelector('#chart');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i+1], d[i+2])
                - Math.min(d[i], d[i+1], d[i+2]) > 60) n++;
            return n;
        })()""")
        assert coloured > 200, coloured
        save_screenshot(await page.screenshot(), request, tmp_path)


@pytest.mark.differential
async def test_dashboard_keeps_an_existing_stream(site: str, hub: ServerProcess) -> None:
    nc = await nats.connect(hub.url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="SENSORS", subjects=["sensors.>"], max_age=7200))
        async with chromium() as page:
            await page.navigate(f"{site}/?server={hub.ws_url}")
            await page.wait_for("document.querySelector('#status').textContent === 'connected'")
        assert (await js.stream_info("SENSORS")).config.max_age == 7200
    finally:
        await nc.close()


@pytest.mark.differential
async def test_mqtt_over_websocket_page(site: str, hub: ServerProcess, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:
    async with chromium() as page:
        await page.navigate(f"{site}/mqtt.html?server={hub.ws_url}")
        await page.wait_for("document.querySelector('#status').textContent === 'connected'")
        assert await text(page, "#server") == f"{hub.ws_url}/mqtt"

        nc = await nats.connect(hub.url)
        try:
            reading = {"room": "x", "celsius": 18.4, "ts": 0}
            await nc.publish("sensors.x.temperature", json.dumps(reading).encode())
            await nc.flush()
        finally:
            await nc.close()
        await page.wait_for(
            "document.querySelector('#latest').textContent === 'sensors/x/temperature: 18.4 °C'")
        save_screenshot(await page.screenshot(), request, tmp_path)
