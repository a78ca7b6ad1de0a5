"""The console at / of the HTTP door, in headless Chromium, against one hub per module
with authorization and traffic from every door: NATS, WebSocket, MQTT (a connected
persistent session with a will, an offline one with a queued message) and HTTP.

Each page's numbers are checked against the REST and monitoring routes, read with the
system account's user. Screenshots go to tests/browser/output/ (docs/console/ keeps the
ones the README shows)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import paho.mqtt.client as mqtt
import pytest
from cdp import CHROMIUM, Page, chromium, save_screenshot
from servers import Launch, ServerProcess, free_port

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.timeout(60),
]

CONF = """server_name: console
jetstream {{ store_dir: "{store}" }}
mqtt {{ host: 127.0.0.1, port: -1 }}
websocket {{ host: 127.0.0.1, port: {ws}, no_tls: true }}
accounts {{
  APP: {{ jetstream: enabled, users: [
    {{ user: alice, password: apw }},
    {{ user: viewer, password: vpw, permissions: {{ publish: {{ deny: [
      "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.DELETE.>" ] }} }} }} ] }}
  OTHER: {{ jetstream: enabled, users: [ {{ user: bob, password: bpw }} ] }}
  SYS: {{ users: [ {{ user: admin, password: spw }} ] }}
}}
system_account: SYS
"""
ADMIN = ("admin", "spw")
ALICE = ("alice", "apw")


class Hub:
    """The server and the clients that keep its doors busy."""

    def __init__(self, server: ServerProcess, ws: int) -> None:
        self.server = server
        self.base = f"http://127.0.0.1:{server.http_port}"
        self.ws_url = f"ws://127.0.0.1:{ws}"
        self.mqtt: mqtt.Client | None = None

    def rest(self, auth: tuple[str, str] = ADMIN) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, auth=auth, timeout=5)


def _mqtt(hub: ServerProcess, client_id: str, clean: bool, will: bool = False) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    clean_session=clean)
    c.username_pw_set(*ALICE)
    if will:
        c.will_set("status/sensor-1", b"gone", qos=1)
    c.connect("127.0.0.1", hub.mqtt_port)
    c.loop_start()
    deadline = time.monotonic() + 5
    while not c.is_connected():
        assert time.monotonic() < deadline, "MQTT client did not connect"
        time.sleep(0.02)
    return c


def _subscribed(c: mqtt.Client, topic: str) -> None:
    done = []
    c.on_subscribe = lambda *a: done.append(1)
    c.subscribe(topic, qos=1)
    deadline = time.monotonic() + 5
    while not done:
        assert time.monotonic() < deadline, "no SUBACK"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("console")
    ws = free_port()
    conf = tmp / "hub.conf"
    conf.write_text(CONF.format(store=tmp / "js", ws=ws))
    server = Launch(tmp)("-c", str(conf), "-m", "-1")
    h = Hub(server, ws)
    # An offline persistent session, with a message queued for it afterwards.
    gone = _mqtt(server, "offline-1", clean=False)
    _subscribed(gone, "alerts/#")
    gone.disconnect()
    gone.loop_stop()
    h.mqtt = _mqtt(server, "sensor-1", clean=False, will=True)
    _subscribed(h.mqtt, "cmd/#")
    yield h
    h.mqtt.loop_stop()
    h.mqtt.disconnect()
    server.stop()


@asynccontextmanager
async def traffic(hub: Hub) -> AsyncIterator[dict[str, Any]]:
    """A NATS and a WebSocket client of APP (and a stream with messages from every door)
    for the length of a test; ``state["run"]`` set keeps a publisher going."""
    nc = await nats.connect(hub.server.url, user="alice", password="apw", name="nats-app")
    # No reconnect: nats-py would be back at once after the console disconnects it,
    # and the page could count it again before it showed it gone.
    wc = await nats.connect(hub.ws_url, user="alice", password="apw", name="ws-app",
                            allow_reconnect=False)
    state: dict[str, Any] = {"nc": nc, "wc": wc, "run": False}
    await wc.subscribe("orders.>")
    js = nc.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders.>"])
    if (await js.stream_info("ORDERS")).state.messages == 0:
        await js.publish("orders.nats", json.dumps({"from": "nats", "n": 1}).encode(),
                         headers={"Trace": "one"})
        await wc.jetstream().publish("orders.ws", b"from websocket")
        assert hub.mqtt is not None
        hub.mqtt.publish("orders/mqtt", b"from mqtt", qos=1).wait_for_publish(5)
        async with hub.rest(ALICE) as rest:
            r = await rest.post("/v1/publish/orders.http", content=b"\x00\x01binary")
            assert r.status_code == 200, r.text
        hub.mqtt.publish("alerts/one", b"queued for offline-1", qos=1).wait_for_publish(5)
        # A pull consumer with one message delivered and not acknowledged.
        await js.add_consumer("ORDERS", durable_name="worker", ack_policy="explicit",
                              ack_wait=300)
        worker = await js.pull_subscribe_bind(durable="worker", stream="ORDERS")
        await worker.fetch(1, timeout=5)

    async def publish() -> None:
        while True:
            if state["run"]:
                for _ in range(20):
                    await nc.publish("load.x", b"tick")
            await asyncio.sleep(0.05)

    task = asyncio.create_task(publish())
    try:
        yield state
    finally:
        task.cancel()
        await nc.close()
        await wc.close()


async def login(page: Page, hub: Hub, user: str, password: str, route: str) -> None:
    """Open the console, log in through its dialog, go to ``route``."""
    await page.navigate(f"{hub.base}/")
    await page.wait_for("document.getElementById('login').open")
    await page.evaluate(f"""(() => {{
        const f = document.getElementById('login-form');
        f.user.value = {json.dumps(user)}; f.password.value = {json.dumps(password)};
        f.requestSubmit(); }})()""")
    await page.wait_for("!document.getElementById('login').open && "
                        "document.getElementById('who').textContent")
    await page.evaluate(f"location.hash = {json.dumps(route)}")


def sel(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def exists(selector: str) -> str:
    return f"!!{sel(selector)}"


async def confirm_dialog(page: Page, answer: str) -> None:
    """Answer the open confirmation dialog: 'ok' or 'cancel'."""
    await page.wait_for("document.getElementById('confirm').open")
    button = "#confirm-ok" if answer == "ok" else "#confirm button[value=cancel]"
    await page.evaluate(f"{sel(button)}.click()")
    await page.wait_for("!document.getElementById('confirm').open")


async def test_overview_counts_and_live_chart(hub: Hub, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    async with traffic(hub) as state, chromium() as page:
        await page.viewport(1280, 800)
        await login(page, hub, *ADMIN, "#/overview")
        await page.wait_for(f"{sel('[data-door=nats]')}?.dataset.connections")
        async with hub.rest() as rest:
            connz = (await rest.get("/connz", params={"limit": 1000})).json()
        by_type: dict[str, int] = {}
        for c in connz["connections"]:
            by_type[c["type"]] = by_type.get(c["type"], 0) + 1
        for door, kind in (("nats", "nats"), ("websocket", "websocket"), ("mqtt", "mqtt")):
            shown = await page.wait_for(
                f"(n => n === '{by_type.get(kind, 0)}' && n)"
                f"({sel(f'[data-door={door}]')}.dataset.connections)")
            assert int(shown) >= 1
        assert await page.evaluate(f"{sel('[data-door=http] .url')}.textContent") == hub.base
        varz = httpx.get(f"{hub.base}/varz").json()
        summary = await page.evaluate(f"{sel('#server')}.textContent")
        assert varz["server_name"] in summary and varz["version"] in summary

        # The chart moves: a steady publisher shows as a rate, and the line is drawn.
        state["run"] = True
        rate = await page.wait_for(
            f"(r => r > 0 && r)(parseInt({sel('[data-door=nats] .rate-in')}"
            ".textContent.replace(/,/g, '')))")
        assert rate > 0
        coloured = await page.evaluate("""(() => {
            const c = document.getElementById('chart-nats');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 100 && d[i] < 60) n++;
            return n; })()""")
        assert coloured > 50, coloured
        state["run"] = False

        # A failed login on another door is a warning as it happens.
        with pytest.raises(nats.errors.Error):
            await nats.connect(hub.server.url, user="alice", password="wrong",
                               max_reconnect_attempts=0, allow_reconnect=False)
        await page.wait_for(f"{sel('#warnings')}.textContent.includes("
                            "'authentication failure(s) on the nats door')")
        save_screenshot(await page.screenshot(), request, tmp_path)

        # Keyboard: Tab goes to the skip link, then to each page's link; Enter follows it.
        await page.evaluate("document.activeElement.blur()")
        focused = []
        for _ in range(3):
            await page.press("Tab")
            focused.append(await page.evaluate("document.activeElement.textContent"))
        assert focused == ["Skip to content", "Overview", "Clients"]
        assert await page.evaluate(
            "getComputedStyle(document.activeElement).outlineStyle") == "solid"
        await page.press("Enter")
        await page.wait_for("location.hash === '#/clients'")
        await page.evaluate("location.hash = '#/overview'")
        await page.viewport(390, 844, mobile=True)
        await page.wait_for("document.documentElement.scrollWidth <= 400")
        save_screenshot(await page.screenshot(), request, tmp_path, "-phone", min_width=390)


async def test_clients_sessions_and_disconnect(hub: Hub, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    async with traffic(hub), chromium() as page:
        await page.viewport(1280, 800)
        await login(page, hub, *ADMIN, "#/clients")
        async with hub.rest() as rest:
            connz = (await rest.get("/connz", params={"limit": 1000})).json()
        total = await page.wait_for(f"{sel('#client-total')}?.textContent")
        assert int(total) == connz["total"]
        await page.wait_for(exists("#sessions tr[data-client-id]"))
        save_screenshot(await page.screenshot(), request, tmp_path)

        # Filter by door, sort by messages in.
        await page.evaluate(f"""(() => {{ const f = {sel('#client-filter')};
            f.door.value = 'websocket'; f.requestSubmit(); }})()""")
        await page.wait_for(f"{sel('#client-total')}.textContent === '1'")
        assert await page.evaluate(f"{sel('#clients td[data-col=name]')}.textContent") \
            == "ws-app"

        # The MQTT sessions: the live one with its will, the offline one with its queue.
        row = "#sessions tr[data-client-id=sensor-1]"
        await page.wait_for(exists(row))
        text = await page.evaluate(f"{sel(row)}.textContent")
        assert "connected" in text and "cmd/# (1)" in text and "status/sensor-1 (QoS 1)" in text
        off = await page.wait_for(
            f"{sel('#sessions tr[data-client-id=offline-1]')}?.textContent")
        assert "offline" in off and "alerts/# (1)" in off
        assert await page.evaluate(
            f"{sel('#sessions tr[data-client-id=offline-1] td[data-col=queued]')}"
            ".textContent") == "1"

        # Disconnect asks first: cancelled, the client stays; confirmed, it is gone.
        cid = int(await page.evaluate(f"{sel('#clients tr[data-cid]')}.dataset.cid"))
        await page.evaluate(f"{sel('#clients tr[data-cid] button.danger')}.click()")
        await confirm_dialog(page, "cancel")
        async with hub.rest() as rest:
            assert (await rest.get("/connz", params={"cid": cid})).json()["connections"]
            await page.evaluate(f"{sel('#clients tr[data-cid] button.danger')}.click()")
            await confirm_dialog(page, "ok")
            await page.wait_for(f"{sel('#client-total')}.textContent === '0'")
            assert not (await rest.get("/connz", params={"cid": cid})).json()["connections"]


async def test_streams_browser_purge_and_create(hub: Hub, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    async with traffic(hub), chromium() as page:
        await page.viewport(1280, 800)
        await login(page, hub, *ALICE, "#/streams")
        async with hub.rest(ALICE) as rest:
            info = (await rest.get("/v1/streams/ORDERS")).json()
        shown = await page.wait_for(f"{sel('#streams tr[data-stream=ORDERS]')}"
                                    "?.dataset.messages")
        assert int(shown) == info["state"]["messages"] == 4

        await page.evaluate("location.hash = '#/streams/ORDERS'")
        await page.wait_for(f"{sel('#msg-count')}?.textContent === '4'")
        async with hub.rest(ALICE) as rest:
            worker = (await rest.get("/v1/streams/ORDERS/consumers/worker")).json()
        assert (worker["num_pending"], worker["num_ack_pending"]) == (3, 1)
        row = "#consumers tr[data-consumer=worker]"
        for col in ("num_pending", "num_ack_pending", "num_redelivered"):
            cell = await page.wait_for(f"{sel(f'{row} td[data-col={col}]')}?.textContent")
            assert cell == str(worker[col]), col
        assert await page.evaluate(f"{sel('#last-seq')}.textContent") == \
            str(info["state"]["last_seq"])
        # The message browser: the first message with its header, as JSON; by subject; hex.
        await page.wait_for(exists("#message .payload"))
        await page.evaluate(f"""(() => {{ const f = {sel('#browse')};
            f.mode.value = 'json'; f.requestSubmit(); }})()""")
        await page.wait_for(f"{sel('#message .payload')}?.dataset.mode === 'json'")
        assert json.loads(await page.evaluate(f"{sel('#message .payload')}.textContent")) \
            == {"from": "nats", "n": 1}
        assert "Trace: one" in await page.evaluate(f"{sel('#message .headers')}.textContent")
        await page.evaluate(f"""(() => {{ const f = {sel('#browse')};
            f.subject.value = 'orders.http'; f.mode.value = 'hex'; f.requestSubmit(); }})()""")
        await page.wait_for(f"{sel('#message .payload')}?.dataset.mode === 'hex'")
        assert (await page.evaluate(f"{sel('#message .payload')}.textContent")) \
            .startswith("000000  00 01 62 69 6e 61 72 79")
        save_screenshot(await page.screenshot(), request, tmp_path)
        # By time: from a time before the stream, every message.
        await page.evaluate(f"""(() => {{ const f = {sel('#browse')};
            f.subject.value = ''; f.mode.value = 'text'; f.time.value = '2001-01-01T00:00';
            f.requestSubmit(); }})()""")
        await page.wait_for("document.querySelectorAll('#messages tr[data-seq]').length === 4")
        await page.evaluate(f"{sel('#browse')}.time.value = ''")

        # Purge needs its confirmation: cancelled, nothing happens.
        await page.evaluate(f"{sel('#purge')}.click()")
        await confirm_dialog(page, "cancel")
        await page.wait_for(f"{sel('#stream-note')}.textContent === 'Purge cancelled.'")
        async with hub.rest(ALICE) as rest:
            assert (await rest.get("/v1/streams/ORDERS")).json()["state"]["messages"] == 4
            await page.evaluate(f"{sel('#purge')}.click()")
            await confirm_dialog(page, "ok")
            await page.wait_for(f"{sel('#stream-note')}.textContent === 'Purged 4 messages.'")
            assert (await rest.get("/v1/streams/ORDERS")).json()["state"]["messages"] == 0

            # Create a stream from the form.
            await page.evaluate("location.hash = '#/streams'")
            await page.wait_for(exists("#create-stream"))
            await page.evaluate(f"""(() => {{ const f = {sel('#create-stream')};
                f.name.value = 'AUDIT'; f.subjects.value = 'audit.>, log.audit';
                f.storage.value = 'memory'; f.max_msgs.value = '1000'; f.requestSubmit(); }})()""")
            await page.wait_for(exists("#streams tr[data-stream=AUDIT]"))
            cfg = (await rest.get("/v1/streams/AUDIT")).json()["config"]
            assert cfg["subjects"] == ["audit.>", "log.audit"]
            assert cfg["storage"] == "memory" and cfg["max_msgs"] == 1000

            # Delete needs its confirmation too.
            await page.evaluate("location.hash = '#/streams/AUDIT'")
            await page.wait_for(exists("#delete"))
            await page.evaluate(f"{sel('#delete')}.click()")
            await confirm_dialog(page, "ok")
            await page.wait_for("location.hash === '#/streams'")
            assert (await rest.get("/v1/streams/AUDIT")).status_code == 404


async def test_tap_shows_mqtt_publish_and_publishes(hub: Hub, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    async with traffic(hub) as state, chromium() as page:
        await page.viewport(1280, 800)
        await login(page, hub, *ALICE, "#/tap")
        await page.wait_for(exists("#tap-form"))
        await page.evaluate(f"""(() => {{ const f = {sel('#tap-form')};
            f.subject.value = 'sensors/#'; f.kind.value = 'topic'; f.requestSubmit(); }})()""")
        await page.wait_for(f"{sel('#tap-status')}.textContent === 'Watching sensors.>'")
        assert hub.mqtt is not None
        hub.mqtt.publish("sensors/lab/temp", b'{"celsius": 21.5}', qos=1).wait_for_publish(5)
        await page.wait_for(exists('#tap-log [data-subject="sensors.lab.temp"]'))
        text = await page.evaluate(f"{sel('#tap-log .tap-msg')}.textContent")
        assert "MQTT" in text and '{"celsius": 21.5}' in text

        # A test message on an MQTT topic reaches a NATS subscriber of its subject.
        sub = await state["nc"].subscribe("cmd.lamp")
        await state["nc"].flush()  # the subscription is in place before the page publishes
        await page.evaluate(f"""(() => {{ const f = {sel('#publish-form')};
            f.subject.value = 'cmd/lamp'; f.kind.value = 'topic'; f.payload.value = 'on';
            f.requestSubmit(); }})()""")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"on"
        await page.wait_for(f"{sel('#tap-count')}.textContent === '1'")
        save_screenshot(await page.screenshot(), request, tmp_path)


async def test_kv_and_objects(hub: Hub, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    async with hub.rest(ALICE) as rest, chromium() as page:
        r = await rest.post("/v1/kv", json={"bucket": "config", "history": 5})
        assert r.status_code in (201, 409), r.text
        for value in (b"1", b"2"):
            assert (await rest.put("/v1/kv/config/keys/app.level", content=value)).is_success
        r = await rest.post("/v1/objects", json={"bucket": "files"})
        assert r.status_code in (201, 409), r.text
        blob = bytes(range(256)) * 40
        assert (await rest.put("/v1/objects/files/report.bin", content=blob)).is_success

        await page.viewport(1280, 800)
        await login(page, hub, *ALICE, "#/kv")
        status = (await rest.get("/v1/kv/config")).json()
        shown = await page.wait_for(
            f"{sel('#kv tr[data-bucket=config] td[data-col=values]')}?.textContent")
        assert int(shown) == status["values"]
        await page.evaluate("location.hash = '#/kv/config'")
        await page.wait_for(exists('#kv-keys tr[data-key="app.level"] button'))
        await page.evaluate(sel('#kv-keys tr[data-key="app.level"] button') + ".click()")
        await page.wait_for(exists("#kv-history tr[data-revision]"))
        revisions = await page.evaluate(
            "[...document.querySelectorAll('#kv-history tr[data-revision]')]"
            ".map(r => r.textContent)")
        assert len(revisions) == 2
        # The bucket live: a put shows at once.
        await page.wait_for(f"{sel('#kv-watch')}.dataset.open")  # its SSE answered
        assert (await rest.put("/v1/kv/config/keys/app.mode", content=b"fast")).is_success
        await page.wait_for(exists('#kv-watch li[data-key="app.mode"]'))
        assert "app.mode = fast" in await page.evaluate(f"{sel('#kv-watch')}.textContent")
        save_screenshot(await page.screenshot(), request, tmp_path)

        await page.evaluate("location.hash = '#/objects/files'")
        size = await page.wait_for(
            sel('#objects tr[data-object="report.bin"]') + "?.dataset.size")
        assert int(size) == len(blob)
        downloaded = await page.evaluate("""fetch('/v1/objects/files/report.bin',
            {headers: {Authorization: 'Basic ' + sessionStorage.getItem('jetport.console.auth')}})
            .then(r => r.arrayBuffer()).then(b => b.byteLength)""")
        assert downloaded == len(blob)


async def test_limited_user_sees_only_their_account(hub: Hub, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    async with traffic(hub), httpx.AsyncClient(base_url=hub.base, auth=("bob", "bpw")) as bob:
        r = await bob.post("/v1/streams", json={"name": "SECRET", "subjects": ["secret.>"]})
        assert r.status_code in (201, 400), r.text
        async with chromium() as page:
            await page.viewport(1280, 800)
            # A wrong password is refused in the dialog.
            await page.navigate(f"{hub.base}/")
            await page.wait_for("document.getElementById('login').open")
            await page.evaluate("""(() => { const f = document.getElementById('login-form');
                f.user.value = 'viewer'; f.password.value = 'nope'; f.requestSubmit(); })()""")
            await page.wait_for(f"{sel('#login-error')}.textContent === 'Wrong user or password.'")

            await login(page, hub, "viewer", "vpw", "#/streams")
            await page.wait_for(exists("#streams tr[data-stream=ORDERS]"))
            names = await page.evaluate(
                "[...document.querySelectorAll('#streams tr[data-stream]')]"
                ".map(r => r.dataset.stream)")
            assert "SECRET" not in names
            # The clients table holds only APP's connections.
            await page.evaluate("location.hash = '#/clients'")
            await page.wait_for(exists("#clients tr[data-cid]"))
            accounts = await page.evaluate(
                "[...document.querySelectorAll('#clients td[data-col=account]')]"
                ".map(td => td.textContent)")
            assert set(accounts) == {"APP"}
            assert not await page.evaluate(exists("#clients button.danger"))
            # Purge is refused by the route's permission check, after the confirmation.
            await page.evaluate("location.hash = '#/streams/ORDERS'")
            await page.wait_for(exists("#msg-count"))
            before = (await hub.rest(ALICE).get("/v1/streams/ORDERS")).json()["state"]
            await page.evaluate(f"{sel('#purge')}.click()")
            await confirm_dialog(page, "ok")
            note = await page.wait_for(f"{sel('#stream-note .error')}?.textContent")
            assert "permission" in note.lower(), note
            after = (await hub.rest(ALICE).get("/v1/streams/ORDERS")).json()["state"]
            assert after["messages"] == before["messages"]
            save_screenshot(await page.screenshot(), request, tmp_path)

            # The system account's user sees every account's streams (read-only).
            await page.evaluate(f"{sel('#logout')}.click()")
            await login(page, hub, *ADMIN, "#/streams")
            await page.wait_for(exists("#streams tr[data-account=OTHER][data-stream=SECRET]"))
            rows = await page.evaluate(
                "[...document.querySelectorAll('#streams tr[data-stream]')]"
                ".map(r => [r.dataset.account, r.dataset.stream, r.dataset.messages])")
            assert ["APP", "ORDERS", str(after["messages"])] in rows
