"""Random CONNECT lines against a server that requires a user and password.

Whatever a client sends as CONNECT, the server must answer promptly: a PONG to the next PING
when the credentials are good and the options well-typed, otherwise close the connection
(after at most one ``-ERR`` line). It must never hang and must keep serving other clients.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import RawClient

pytestmark = pytest.mark.timeout(120)

CONF = "authorization { users: [{user: a, password: b}] }"
GOOD = {"user": "a", "pass": "b"}
AUTH_VIOLATION = b"-ERR 'Authorization Violation'\r\n"
ONE_ERR_LINE = re.compile(rb"(-ERR '[^\r\n]*'\r\n)?")
#: Protocol 1 clients may get an INFO (``connect_info``) right after their first PONG.
WELCOME = re.compile(rb"(\+OK\r\n)?PONG\r\n(INFO \{[^\r\n]*\} ?\r\n)?")

#: Lines this long are surely over the default 4 KiB control line limit.
SURELY_TOO_LONG = 5000
#: Lines this short are surely within it.
SURELY_SHORT = 3500

BOOL_KEYS = ("verbose", "pedantic", "echo", "headers")
TEXT_KEYS = ("name", "lang", "version", "auth_token", "nkey", "sig", "jwt")


async def exchange(port: int, payload: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Send ``CONNECT payload`` and PING; return the reply and whether the server closed."""
    raw = await RawClient.open(port)
    try:
        if not await raw.send(b"CONNECT " + payload + b"\r\nPING\r\n"):
            return raw.buf, True
        # Up to the PONG, and whatever arrived with it; reading stops at EOF or timeout.
        out = await raw.until(b"PONG\r\n", timeout)
        out, raw.buf = out + raw.buf, b""
        return out, raw.eof
    finally:
        await raw.close()


async def classify(port: int, payload: bytes) -> tuple[str, bytes]:
    """("accepted" | "rejected", bytes seen); fails if the server neither answers nor closes."""
    out, closed = await exchange(port, payload)
    if b"PONG\r\n" in out:
        assert WELCOME.fullmatch(out), out
        return "accepted", out
    assert closed, f"server neither answered nor closed: {payload[:200]!r} -> {out!r}"
    assert ONE_ERR_LINE.fullmatch(out), out
    return "rejected", out


async def still_serving(port: int) -> None:
    raw = await RawClient.open(port)
    try:
        await raw.handshake(**GOOD)
    finally:
        await raw.close()


# -- strategies ------------------------------------------------------------------------------

text = st.text(max_size=40)
junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
extra_keys = st.dictionaries(st.text(min_size=1, max_size=12).map(lambda s: "x_" + s), junk,
                             max_size=4)


@st.composite
def valid_options(draw) -> dict[str, Any]:
    """Well-typed optional CONNECT fields (credentials excluded)."""
    opts: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(BOOL_KEYS), unique=True)):
        opts[key] = draw(st.none() | st.booleans())
    for key in draw(st.lists(st.sampled_from(TEXT_KEYS), unique=True)):
        opts[key] = draw(st.none() | text)
    if draw(st.booleans()):
        opts["protocol"] = draw(st.sampled_from([None, 0, 1]))
    if opts.get("headers") is True and draw(st.booleans()):
        opts["no_responders"] = True
    if draw(st.booleans()):
        opts["name"] = draw(st.text(min_size=100, max_size=200)) * draw(
            st.sampled_from([1, 40, 100]))
    opts.update(draw(extra_keys))
    return opts


def wrong_type_for(key: str) -> st.SearchStrategy:
    if key in BOOL_KEYS or key == "no_responders":
        return st.integers() | text | st.lists(junk, max_size=2) | st.dictionaries(text, junk)
    if key == "protocol":
        return (st.integers().filter(lambda n: n not in (0, 1)) | st.booleans() | text
                | st.floats(allow_nan=False, allow_infinity=False))
    return st.integers() | st.booleans() | st.lists(junk, max_size=2) | st.dictionaries(text, junk)


@st.composite
def cases(draw) -> tuple[bytes, str | None, bytes | None]:
    """(payload, expected outcome or None when unsure, exact reply or None)."""
    kind = draw(st.sampled_from(["good", "bad_creds", "bad_type", "not_object", "garbage"]))
    if kind == "good":
        obj = {**draw(valid_options()), **GOOD}
        payload, expected, exact = json.dumps(obj).encode(), "accepted", None
    elif kind == "bad_creds":
        creds = draw(st.fixed_dictionaries({}, optional={"user": text, "pass": text}))
        if creds.get("user") == "a" and creds.get("pass") == "b":
            creds["pass"] = "wrong"
        obj = {**draw(valid_options()), **creds}
        payload, expected, exact = json.dumps(obj).encode(), "rejected", AUTH_VIOLATION
    elif kind == "bad_type":
        key = draw(st.sampled_from([*BOOL_KEYS, *TEXT_KEYS, "protocol", "user", "pass"]))
        obj = {**draw(valid_options()), **GOOD, key: draw(wrong_type_for(key))}
        payload, expected, exact = json.dumps(obj).encode(), "rejected", None
    elif kind == "not_object":
        value = draw(st.lists(junk, max_size=3) | text | st.integers() | st.booleans())
        payload, expected, exact = json.dumps(value).encode(), "rejected", b""
    else:
        raw = draw(st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                                      blacklist_categories=("Cs",)), max_size=60))
        try:
            json.loads(raw)
        except ValueError:
            payload, expected, exact = raw.encode(), "rejected", b""
        else:
            payload, expected, exact = raw.encode(), None, None
    size = len(payload) + len(b"CONNECT ")
    if size > SURELY_TOO_LONG:
        return payload, "rejected", b"-ERR 'maximum control line exceeded'\r\n"
    if size > SURELY_SHORT:
        return payload, None, None
    return payload, expected, exact


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.differential
async def test_random_connect_lines(launch):
    server = launch.conf(CONF)
    loop = asyncio.get_running_loop()
    started = time.monotonic()

    # Hypothesis calls ``run`` synchronously, so it runs in a worker thread and hands each
    # exchange to this test's event loop.
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases())
    def run(case: tuple[bytes, str | None, bytes | None]) -> None:
        payload, expected, exact = case
        outcome, out = asyncio.run_coroutine_threadsafe(
            classify(server.port, payload), loop).result(timeout=30)
        if expected is not None:
            assert outcome == expected, (payload[:300], out)
        if exact is not None:
            assert out == exact, (payload[:300], out)

    await asyncio.to_thread(run)
    assert time.monotonic() - started < 60
    await still_serving(server.port)


HAND_PICKED = [
    # payload, outcome, exact reply (None: not compared byte for byte)
    (b'{"user":"a","pass":"b"}', "accepted", b"+OK\r\nPONG\r\n"),
    (b'{"user":"a","pass":"b","verbose":false}', "accepted", b"PONG\r\n"),
    (b'{"user":"a","pass":"b","verbose":null,"pedantic":null,"headers":null}', "accepted",
     b"+OK\r\nPONG\r\n"),
    (b'{"user":"a","pass":"b","x":{"deep":[1,{"y":null}]}}', "accepted", b"+OK\r\nPONG\r\n"),
    (b'{"user":"a","pass":"b","auth_token":"zz","jwt":"j","nkey":"UX","sig":"s"}', "accepted",
     b"+OK\r\nPONG\r\n"),
    (b'{"USER":"a","Pass":"b","verbose":false}', "accepted", b"PONG\r\n"),
    (b'{"user":"a","pass":"b","headers":true,"no_responders":true}', "accepted",
     b"+OK\r\nPONG\r\n"),
    (b'{"user":"a","pass":"c"}', "rejected", AUTH_VIOLATION),
    (b'{"user":"a","pass":"b","user":"c"}', "rejected", AUTH_VIOLATION),
    (b"{}", "rejected", AUTH_VIOLATION),
    (b"null", "rejected", AUTH_VIOLATION),
    (b'{"user":"a","pass":"b","account":"x"}', "rejected", AUTH_VIOLATION),
    (b'{"user":"a","pass":"b","protocol":2}', "rejected", b"-ERR 'invalid client protocol'\r\n"),
    (b'{"user":"a","pass":"b","protocol":-1}', "rejected",
     b"-ERR 'invalid client protocol'\r\n"),
    (b'{"user":"a","pass":"b","no_responders":true}', "rejected",
     b"-ERR 'no responders requires headers support'\r\n"),
    (b'{"user":"a","pass":"b","verbose":"yes"}', "rejected", b""),
    (b'{"user":1,"pass":"b"}', "rejected", b""),
    (b'{"user":"a","pass":"b","protocol":1.5}', "rejected", b""),
    (b'{"user":"a","pass":"b","protocol":"1"}', "rejected", b""),
    (b"[1,2]", "rejected", b""),
    (b'"a string"', "rejected", b""),
    (b"{not json", "rejected", b""),
    (b'{"user":"a","pass":"b"} trailing', "rejected", b""),
    (b"", "rejected", b""),
    (b'{"user":"a","pass":"b","name":"' + b"x" * 10000 + b'"}', "rejected",
     b"-ERR 'maximum control line exceeded'\r\n"),
]


@pytest.mark.differential
async def test_hand_picked_connect_lines(launch):
    """The same table holds on both servers, so their classifications agree."""
    server = launch.conf(CONF)
    for payload, expected, exact in HAND_PICKED:
        outcome, out = await classify(server.port, payload)
        assert outcome == expected, (payload[:100], out)
        if exact is not None:
            assert out == exact, (payload[:100], out)
    await still_serving(server.port)


@pytest.mark.differential
async def test_connect_split_across_writes(launch, raw_clients):
    """A CONNECT that arrives in pieces is still one CONNECT."""
    server = launch.conf(CONF)
    line = b"CONNECT " + json.dumps({**GOOD, "verbose": False}).encode() + b"\r\nPING\r\n"
    raw = await raw_clients(server.port)
    for i in range(0, len(line), 5):
        await raw.send(line[i:i + 5])
        await asyncio.sleep(0.01)
    assert await raw.read_line() == b"PONG"


@pytest.mark.differential
async def test_silent_client_then_server_still_serves(launch):
    server = launch.conf(CONF)
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        await still_serving(server.port)
    finally:
        idle.close()
