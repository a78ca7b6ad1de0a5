"""One protocol scenario run against nats-server and against Jetport: same bytes out.

Raw steps are sent over plain sockets; after each step every open connection is
synchronised with PING/PONG, so everything the step caused is captured per connection.
Only what legitimately differs between two servers is normalised away: INFO contents
(server id, name, version, ports, client ids, nonces).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import pytest
from servers import Inbox, Launch, RawClient

pytestmark = pytest.mark.timeout(60)

EOF_MARK = b"<EOF>"
_INFO = re.compile(rb"INFO \{.*?\} \r\n")


def _connect(**options: Any) -> bytes:
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode() + b"\r\n"


QUIET = _connect(verbose=False, pedantic=False)
QUIET_HEADERS = _connect(verbose=False, pedantic=False, headers=True)


def _count_msgs(*conns: str) -> Callable[[dict[str, bytes]], dict[str, Any]]:
    """Summarise a step by how many messages the given connections got, together."""

    def summary(out: dict[str, bytes]) -> dict[str, Any]:
        rest = {k: v for k, v in out.items() if k not in conns}
        rest["+".join(conns)] = sum(out.get(c, b"").count(b"MSG ") for c in conns)
        return rest

    return summary


@dataclass
class Step:
    desc: str
    conn: str
    data: bytes
    #: False for steps that should end the connection: read until EOF, send no PING.
    sync: bool = True
    #: Send the data one byte per write.
    split: bool = False
    summary: Callable[[dict[str, bytes]], dict[str, Any]] | None = None


HDR_BLOCK = (
    b"NATS/1.0\r\n"
    b"X-Dup: one\r\n"
    b"X-Dup:two\r\n"
    b"x-dup:   three  \r\n"
    b"Odd :\tspacing\there\r\n"
    b"\r\n"
)


def _hpub(subject: bytes, block: bytes, body: bytes, reply: bytes = b"") -> bytes:
    head = b"HPUB " + subject + (b" " + reply if reply else b"")
    return b"%b %d %d\r\n%b%b\r\n" % (head, len(block), len(block) + len(body), block, body)


SCENARIO: list[Step] = [
    # subscribers
    Step("sub connects with headers", "sub", QUIET_HEADERS),
    Step(
        "sub subscribes to literals and wildcards",
        "sub",
        b"SUB foo 1\r\nSUB foo.* 2\r\nSUB foo.> 3\r\nSUB > 4\r\nSUB *.bar 5\r\n"
        b"SUB foo.*.baz 6\r\n",
    ),
    Step("plain subscriber without headers", "plain", _connect(verbose=False) + b"SUB foo 1\r\n"),
    Step("publisher connects", "pub", QUIET_HEADERS),
    # pub/sub and wildcards
    Step("publish to a literal", "pub", b"PUB foo 5\r\nhello\r\n"),
    Step(
        "wildcard matching",
        "pub",
        b"PUB foo.bar 1\r\na\r\nPUB foo.bar.baz 1\r\nb\r\nPUB x.bar 1\r\nc\r\n"
        b"PUB bar 1\r\nd\r\nPUB foo.x.baz.y 1\r\ne\r\n",
    ),
    Step("reply subject", "pub", b"PUB foo.r inbox.1 2\r\nok\r\n"),
    Step("utf-8 subject", "pub", "PUB foo.ünï 2\r\nuu\r\n".encode()),
    Step("payload with CRLF, empty payload", "pub", b"PUB foo 4\r\na\r\nb\r\nPUB foo 0\r\n\r\n"),
    Step("tab separators, lowercase ops", "pub", b"PUB\tfoo\t2\r\nhi\r\npub foo 2\r\nlo\r\n"),
    Step("bare LF line endings", "pub", b"PUB foo 2\nlf\r\n"),
    # headers
    Step("headers: repeated keys and odd spacing", "pub", _hpub(b"foo", HDR_BLOCK, b"body")),
    Step("headers with reply", "pub", _hpub(b"foo.h", b"NATS/1.0\r\nK: v\r\n\r\n", b"x", b"r.1")),
    Step("headers only, empty body", "pub", _hpub(b"foo", b"NATS/1.0\r\nOnly: h\r\n\r\n", b"")),
    Step(
        "HPUB from a client that did not negotiate headers",
        "nohdr",
        _connect(verbose=False) + _hpub(b"foo", b"NATS/1.0\r\n\r\n", b"no"),
        sync=False,
    ),
    # verbose and pedantic
    Step("verbose CONNECT", "verbose", _connect(verbose=True)),
    Step("verbose SUB", "verbose", b"SUB v 1\r\n"),
    Step("verbose PUB to own subscription", "verbose", b"PUB v 2\r\nhi\r\n"),
    Step("verbose PUB elsewhere", "verbose", b"PUB nowhere 2\r\nhi\r\n"),
    Step("verbose UNSUB", "verbose", b"UNSUB 1\r\n"),
    Step("verbose CONNECT again, now quiet", "verbose", QUIET),
    Step("pedantic CONNECT", "ped", _connect(verbose=False, pedantic=True)),
    Step("pedantic: wildcard publish", "ped", b"SUB ped.* 1\r\nPUB ped.* 2\r\nhi\r\n"),
    Step("pedantic: full wildcard publish", "ped", b"PUB ped.> 2\r\nhi\r\n"),
    Step("pedantic: empty token publish", "ped", b"PUB ped..x 2\r\nhi\r\n"),
    Step("not pedantic: empty token publish", "pub", b"PUB foo..x 2\r\nhi\r\n"),
    Step("ops before CONNECT use the defaults", "early", b"SUB early 1\r\nPUB early 1\r\nz\r\n"),
    # soft errors
    Step("errs connects", "errs", QUIET),
    Step("SUB invalid subjects", "errs", b"SUB a..b 1\r\nSUB foo.>.bar 2\r\nSUB .a 3\r\n"),
    Step("reserved reply $JS.ACK.", "errs", b"PUB foo $JS.ACK.x 2\r\nhi\r\n"),
    Step("reserved reply _R_.", "errs", b"PUB foo _R_.x 2\r\nhi\r\n"),
    Step("queue _sys_", "errs", b"SUB a _sys_ 1\r\nPUB a 1\r\nx\r\n"),
    Step("UNSUB of an unknown sid", "errs", b"UNSUB 99\r\n"),
    Step("errs still alive", "errs", b"SUB alive 9\r\nPUB alive 2\r\nok\r\n"),
    # unsubscribe after max
    Step("unsub max 2", "errs", b"SUB um 7\r\nUNSUB 7 2\r\n"),
    Step("three messages for an unsub max 2", "pub", b"PUB um 1\r\n1\r\n" * 3),
    Step("unsub max already reached", "errs", b"SUB um2 8\r\nPUB um2 1\r\nx\r\nUNSUB 8 1\r\n"),
    Step("after unsub max reached", "pub", b"PUB um2 1\r\ny\r\n"),
    # queue groups
    Step("queue member 1", "q1", QUIET + b"SUB work g 1\r\n"),
    Step("queue member 2", "q2", QUIET + b"SUB work g 1\r\n"),
    Step(
        "50 messages to a queue group",
        "pub",
        b"PUB work 1\r\nw\r\n" * 50,
        summary=_count_msgs("q1", "q2"),
    ),
    # no responders
    Step("stop catching everything", "sub", b"UNSUB 4\r\n"),
    Step(
        "no responders client",
        "nr",
        _connect(verbose=False, headers=True, no_responders=True) + b"SUB _INBOX.nr 1\r\n",
    ),
    Step("request with no responders", "nr", b"PUB nobody.here _INBOX.nr 2\r\nhi\r\n"),
    Step("request with no responders, HPUB", "nr", _hpub(b"nobody", b"NATS/1.0\r\n\r\n", b"",
                                                         b"_INBOX.nr")),
    Step("request with a responder", "nr", b"PUB foo _INBOX.nr 1\r\nq\r\n"),
    # split writes
    Step(
        "everything one byte at a time",
        "split",
        QUIET_HEADERS
        + b"SUB split 1\r\nPUB split 5\r\nhello\r\n"
        + _hpub(b"split", b"NATS/1.0\r\nA: b\r\n\r\n", b"hh")
        + b"PUB foo 3\r\nxyz\r\n",
        split=True,
    ),
    # fatal errors, one connection each
    Step("unknown operation", "unknown", QUIET + b"FOO bar\r\n", sync=False),
    Step("control line too long", "ctl", QUIET + b"SUB " + b"a" * 5000 + b" 1\r\n", sync=False),
    Step("protocol 2", "proto", _connect(verbose=False, protocol=2), sync=False),
    Step("no responders without headers", "nrh", _connect(no_responders=True), sync=False),
    Step("maximum payload", "maxpay", QUIET + b"PUB foo 1048577\r\n", sync=False),
    Step("payload longer than announced", "overrun", QUIET + b"PUB foo 2\r\nhello\r\n",
         sync=False),
    Step("UNSUB without arguments", "unsubargs", QUIET + b"UNSUB\r\n", sync=False),
    Step("bad CONNECT json", "badjson", b"CONNECT {nope\r\n", sync=False),
    Step("survivors still deliver", "pub", b"PUB foo 3\r\nend\r\n"),
]


async def _send(raw: RawClient, data: bytes, split: bool) -> None:
    if not split:
        await raw.send(data)
        return
    for i in range(len(data)):
        if not await raw.send(data[i : i + 1]):
            return
        await asyncio.sleep(0.001)


async def run_raw_scenario(port: int, steps: list[Step]) -> list[tuple[str, dict[str, Any]]]:
    """Play ``steps``; for each, what every open connection received because of it."""
    conns: dict[str, RawClient] = {}
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        for step in steps:
            out: dict[str, bytes] = {}
            raw = conns.get(step.conn)
            if raw is None:
                raw = conns[step.conn] = await RawClient.open(port)
                assert _INFO.fullmatch(raw.info_line), raw.info_line
            await _send(raw, step.data, step.split)
            if step.sync:
                got = await raw.sync()
            else:
                await raw.closed(timeout=2.0)
                got = await raw.collect(timeout=0.05)
            out[step.conn] = got + (EOF_MARK if raw.eof else b"")
            for name, other in conns.items():
                if name != step.conn and not other.eof:
                    got = await other.sync()
                    if got or other.eof:
                        out[name] = got + (EOF_MARK if other.eof else b"")
            normalised = {k: _INFO.sub(b"INFO {...}\r\n", v) for k, v in out.items()}
            results.append((step.desc, step.summary(normalised) if step.summary else normalised))
    finally:
        for raw in conns.values():
            await raw.close()
    return results


def _reordered(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """Whether two step results hold the same lines per connection, only ordered otherwise."""
    def lines(v: Any) -> Any:
        return sorted(v.split(b"\r\n")) if isinstance(v, bytes) else v

    return want.keys() == have.keys() and all(lines(want[k]) == lines(have[k]) for k in want)


def _mismatches(expected: list, got: list) -> list[str]:
    problems = []
    for (desc, want), (desc2, have) in zip(expected, got, strict=True):
        assert desc == desc2
        if want != have:
            note = " (same frames, different order)" if _reordered(want, have) else ""
            problems.append(f"{desc}{note}:\n  nats-server: {want!r}\n  jetport:     {have!r}")
    return problems


@pytest.mark.differential(compare=True)
async def test_raw_protocol_scenario_matches_nats_server(launch: Launch):
    reference, hub = launch(target="nats-server"), launch(target="jetport")
    expected = await run_raw_scenario(reference.port, SCENARIO)
    got = await run_raw_scenario(hub.port, SCENARIO)
    # the scenario really exercises what it claims to, on the reference itself
    steps = dict(expected)
    assert steps["50 messages to a queue group"]["q1+q2"] == 50
    assert b"HMSG _INBOX.nr 1" in steps["request with no responders"]["nr"]
    assert steps["unknown operation"]["unknown"].endswith(EOF_MARK)
    problems = _mismatches(expected, got)
    assert not problems, "\n".join(problems)


# -- the same nats-py scenario on both servers --------------------------------------------


async def run_client_scenario(url: str) -> dict[str, Any]:
    """A fixed sequence of nats-py operations; every observable result, normalised."""
    result: dict[str, Any] = {}
    options = {"allow_reconnect": False, "connect_timeout": 2}
    nc = await nats.connect(url, **options)
    other = await nats.connect(url, **options)
    try:
        result["max_payload"] = nc.max_payload
        result["headers_supported"] = nc._server_info.get("headers")

        # pub/sub with wildcards
        inboxes = {p: Inbox() for p in ("a.*", "a.>", "a.b", ">")}
        wild = [await nc.subscribe(p, cb=inbox.cb) for p, inbox in inboxes.items()]
        await _roundtrip(nc)
        for s in ("a", "a.b", "a.b.c", "b"):
            await other.publish(s, s.encode())
        await _roundtrip(other)
        await inboxes[">"].wait_for(4)
        await _roundtrip(nc)
        result["wildcards"] = {
            p: [(m.subject, m.data) for m in inbox.msgs] for p, inbox in inboxes.items()
        }
        for sub in wild:
            await sub.unsubscribe()

        # request/reply, with headers on the way in and out
        async def respond_with_headers(msg):
            await nc.publish(msg.reply, b"re:" + msg.data,
                             headers={"Seen": (msg.headers or {}).get("In", "-")})

        await nc.subscribe("svc", cb=respond_with_headers)
        await _roundtrip(nc)
        reply = await other.request("svc", b"q1", timeout=2, headers={"In": "yes"})
        result["request"] = (reply.data, reply.headers)
        reply = await other.request("svc", b"q2", timeout=2)
        result["request_plain"] = (reply.data, reply.headers)

        # headers round trip
        hsub = await nc.subscribe("hdr")
        await _roundtrip(nc)
        await other.publish("hdr", b"body", headers={"A": "1", "B": "two words", "C": ""})
        msg = await hsub.next_msg(timeout=2)
        result["headers"] = (msg.data, msg.headers)

        # queue group: count only
        counts = [Inbox(), Inbox(), Inbox()]
        for inbox in counts:
            await nc.subscribe("qq", queue="g", cb=inbox.cb)
        await _roundtrip(nc)
        for i in range(60):
            await other.publish("qq", b"%d" % i)
        await _roundtrip(other)
        await _roundtrip(nc)
        await asyncio.sleep(0.05)
        result["queue_total"] = sum(len(i.msgs) for i in counts)
        result["queue_distinct"] = len({d for i in counts for d in i.data})

        # unsubscribe after max
        capped = Inbox()
        await nc.subscribe("cap", cb=capped.cb, max_msgs=3)
        await _roundtrip(nc)
        for i in range(10):
            await other.publish("cap", b"%d" % i)
        await _roundtrip(other)
        await _roundtrip(nc)
        await asyncio.sleep(0.05)
        result["unsub_max"] = capped.data

        # no responders and timeouts
        for name, subject in (("no_responders", "nobody"), ("timeout", "svc.silent")):
            if name == "timeout":
                await nc.subscribe(subject)
                await _roundtrip(nc)
            try:
                await other.request(subject, b"?", timeout=0.3)
                result[name] = "answered"
            except Exception as exc:  # noqa: BLE001 - the exception type is the observable result
                result[name] = type(exc).__name__

        # payload limits
        try:
            await other.publish("big", b"x" * (other.max_payload + 1))
            result["over_max_payload"] = "accepted"
        except nats.errors.MaxPayloadError:
            result["over_max_payload"] = "MaxPayloadError"
    finally:
        await nc.close()
        await other.close()
    return result


async def _roundtrip(nc) -> None:
    # nats-py sends a flush's PING ahead of buffered commands: two make it ordered.
    await nc.flush(timeout=5)
    await nc.flush(timeout=5)


@pytest.mark.differential(compare=True)
async def test_client_scenario_matches_nats_server(launch: Launch):
    reference, hub = launch(target="nats-server"), launch(target="jetport")
    expected = await run_client_scenario(reference.url)
    got = await run_client_scenario(hub.url)
    assert expected["queue_total"] == 60 and expected["queue_distinct"] == 60
    assert expected["unsub_max"] == [b"0", b"1", b"2"]
    assert expected["no_responders"] == "NoRespondersError"
    assert expected["timeout"] == "TimeoutError"
    assert got == expected
