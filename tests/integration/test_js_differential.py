"""JetStream scenarios run against nats-server and against Jetport: same answers back.

Each scenario is an ordered list of raw ``$JS.API`` requests, publishes (with headers)
and pull requests. Both servers get the same list; every response is normalised and
compared field by field. Only what legitimately differs between two servers is removed
before comparing, and every such key is listed below with its reason.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import pytest
from servers import Launch, ServerProcess

pytestmark = pytest.mark.timeout(60)

SECOND = 1_000_000_000

#: Keys dropped wherever they appear, with the reason they can not match.
IGNORED_KEYS: dict[str, str] = {
    "created": "creation time of a stream or consumer",
    "ts": "server time the response was made at",
    "first_ts": "store time of the first message",
    "last_ts": "store time of the last message",
    "time": "store time of a message",
    "last_active": "time of the last delivery or ack",
    "Nats-Time-Stamp": "store time of a message, as a DIRECT.GET header",
    "cluster": "names the server leading the asset, which differs per server",
    # Added to stream configs after 2.10:
    "allow_msg_ttl": "stream config key added in nats-server 2.11",
    "subject_delete_marker_ttl": "stream config key added in nats-server 2.11",
    "allow_msg_counter": "stream config key added in nats-server 2.12",
    "allow_atomic": "stream config key added in nats-server 2.12",
    "allow_msg_schedules": "stream config key added in nats-server 2.12",
    "persist_mode": "stream config key added in nats-server 2.12",
    "allow_batched": "stream config key added in nats-server 2.14",
    # Added to consumer configs and infos after 2.10:
    "priority_groups": "consumer config/info key added in nats-server 2.11",
    "priority_policy": "consumer config key added in nats-server 2.11",
    "priority_timeout": "consumer config key added in nats-server 2.11",
    "pause_until": "consumer config key added in nats-server 2.11",
    "paused": "consumer info key added in nats-server 2.11",
    "pause_remaining": "consumer info key added in nats-server 2.11",
    # Added to account info after 2.10:
    "reserved_memory": "account info key added after nats-server 2.10",
    "reserved_storage": "account info key added after nats-server 2.10",
}

#: Keys dropped only under a given parent key.
IGNORED_PATHS: dict[str, str] = {
    "api.level": "JetStream API level, reported from nats-server 2.11 on",
    "api.total": "which internal requests nats-server counts is bookkeeping, not API contract",
    "api.errors": "as api.total",
}

#: Metadata keys with this prefix are the server's own (2.11+: _nats.ver, _nats.level ...);
#: a metadata map left empty without them is dropped too (2.10 omits an empty one).
IGNORED_METADATA_PREFIX = "_nats."

#: Error descriptions that quote a parser's message keep only their fixed prefix: the text
#: after it comes from Go's encoding/json and can not be reproduced word for word.
PARSER_MESSAGE_PREFIXES = ("invalid JSON: ",)


# -- scenario steps --------------------------------------------------------------------


@dataclass
class Step:
    desc: str
    kind: str  # "api", "pub" or "next"
    subject: str
    body: Any = None
    headers: dict[str, str] | None = None
    #: Remember ``response[capture]`` under this placeholder for later steps.
    capture: str = ""


def api(desc: str, subject: str, body: Any = None, capture: str = "",
        headers: dict[str, str] | None = None) -> Step:
    return Step(desc, "api", subject, body, headers, capture=capture)


def pub(desc: str, subject: str, data: bytes = b"", headers: dict[str, str] | None = None
        ) -> Step:
    return Step(desc, "pub", subject, data, headers)


def next_msgs(desc: str, stream: str, consumer: str, body: Any,
              headers: dict[str, str] | None = None) -> Step:
    return Step(desc, "next", f"CONSUMER.MSG.NEXT.{stream}.{consumer}", body, headers)


def _payload(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


def _decode(msg: Any) -> Any:
    """A reply as something comparable: JSON when it is JSON, and any status header."""
    out: dict[str, Any] = {}
    if msg.headers:
        out["headers"] = _headers(msg)
    try:
        out["json"] = json.loads(msg.data)
    except ValueError:
        out["data"] = msg.data.decode(errors="replace")
    return out


def _headers(msg: Any) -> dict[str, str]:
    """Headers by name; nats-py keys the status description with an enum member."""
    return {getattr(k, "value", k): v for k, v in (msg.headers or {}).items()}


def _ack_reply(reply: str) -> str:
    """$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>: drop <ts>."""
    tokens = reply.split(".")
    if reply.startswith("$JS.ACK.") and len(tokens) == 9:
        tokens[7] = "<ts>"
    return ".".join(tokens)


async def run_scenario(server: ServerProcess, steps: list[Step]) -> list[Any]:
    """Every step's outcome, in order, with captured names already replaced."""
    nc = await nats.connect(server.url)
    captured: dict[str, str] = {}
    results: list[Any] = []
    try:
        for i, step in enumerate(steps):
            subject = step.subject
            for key, value in captured.items():
                subject = subject.replace(f"<{key}>", value)
            outcome: Any
            if step.kind == "next":
                outcome = await _pull(nc, "$JS.API." + subject, _payload(step.body), i,
                                      step.headers)
            else:
                full = "$JS.API." + subject if step.kind == "api" else subject
                try:
                    msg = await nc.request(full, _payload(step.body), timeout=1.0,
                                           headers=step.headers)
                    outcome = _decode(msg)
                except nats.errors.NoRespondersError:
                    outcome = "<no responders>"
                except nats.errors.TimeoutError:
                    outcome = "<timeout>"
            if step.capture and isinstance(outcome, dict):
                value = outcome.get("json", {}).get("name")
                if value:
                    captured[step.capture] = value
            results.append(outcome)
    finally:
        await nc.close()
    names = {v: f"<{k}>" for k, v in captured.items()}
    return [_replace_names(r, names) for r in results]


async def _pull(nc: Any, subject: str, payload: bytes, i: int,
                headers: dict[str, str] | None) -> list[Any]:
    """Send a pull request and collect what arrives until things go quiet."""
    inbox = f"_INBOX.diff.{i}"
    got: list[Any] = []
    arrived = asyncio.Event()

    async def cb(msg: Any) -> None:
        got.append({"subject": msg.subject, "reply": _ack_reply(msg.reply or ""),
                    "headers": _headers(msg), "data": msg.data.decode()})
        arrived.set()

    sub = await nc.subscribe(inbox, cb=cb)
    await nc.publish(subject, payload, reply=inbox, headers=headers)
    while True:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), 0.4)
        except TimeoutError:
            break
    await sub.unsubscribe()
    return got


def _replace_names(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _replace_names(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_names(v, names) for v in value]
    if isinstance(value, str):
        for real, placeholder in names.items():
            value = value.replace(real, placeholder)
    return value


def normalize(value: Any, parent: str = "") -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in IGNORED_KEYS or f"{parent}.{k}" in IGNORED_PATHS:
                continue
            if parent == "metadata" and k.startswith(IGNORED_METADATA_PREFIX):
                continue
            v = normalize(v, k)
            if k == "metadata" and v == {}:
                continue
            if k == "consumers" and isinstance(v, list):
                # an ephemeral consumer's random name decides its place in the page
                v = sorted(v, key=lambda c: c.get("name", "") if isinstance(c, dict) else c)
            if parent == "error" and k == "description" and isinstance(v, str):
                for prefix in PARSER_MESSAGE_PREFIXES:
                    if v.startswith(prefix):
                        v = prefix + "<parser message>"
            out[k] = v
        return out
    if isinstance(value, list):
        return [normalize(v, parent) for v in value]
    return value


def differences(ref: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(ref, dict) and isinstance(got, dict):
        out: list[str] = []
        for k in [*ref, *(k for k in got if k not in ref)]:
            p = f"{path}.{k}" if path else k
            if k not in got:
                out.append(f"  {p}: nats-server {json.dumps(ref[k])}, Jetport <missing>")
            elif k not in ref:
                out.append(f"  {p}: nats-server <missing>, Jetport {json.dumps(got[k])}")
            else:
                out.extend(differences(ref[k], got[k], p))
        return out
    if isinstance(ref, list) and isinstance(got, list) and len(ref) == len(got):
        out = []
        for i, (a, b) in enumerate(zip(ref, got, strict=True)):
            out.extend(differences(a, b, f"{path}[{i}]"))
        return out
    if ref != got:
        return [f"  {path or '<response>'}: nats-server {json.dumps(ref)}, "
                f"Jetport {json.dumps(got)}"]
    return []


async def compare(launch: Launch, steps: list[Step]) -> None:
    ref_server = launch.jetstream(target="nats-server")
    try:
        ref = await run_scenario(ref_server, steps)
    finally:
        ref_server.stop()
    hub = launch.jetstream(target="jetport")
    try:
        got = await run_scenario(hub, steps)
    finally:
        hub.stop()
    report: list[str] = []
    for step, a, b in zip(steps, ref, got, strict=True):
        diff = differences(normalize(a), normalize(b))
        if diff:
            report.append(f"{step.desc} ({step.kind} {step.subject}):")
            report.extend(diff)
    if report:
        text = "\n".join(report)
        pytest.fail(f"{len([r for r in report if not r.startswith(' ')])} step(s) differ:\n"
                    + text, pytrace=False)


# -- scenarios -------------------------------------------------------------------------

STREAM_ADMIN: list[Step] = [
    api("account info, fresh", "INFO"),
    api("names, no streams", "STREAM.NAMES"),
    api("list, no streams", "STREAM.LIST"),
    api("create ORDERS", "STREAM.CREATE.ORDERS", {"name": "ORDERS", "subjects": ["orders.*"]}),
    api("create ORDERS again, same config", "STREAM.CREATE.ORDERS",
        {"name": "ORDERS", "subjects": ["orders.*"]}),
    api("create ORDERS again, other config", "STREAM.CREATE.ORDERS",
        {"name": "ORDERS", "subjects": ["orders.>"]}),
    api("create MEM with limits", "STREAM.CREATE.MEM", {
        "name": "MEM", "description": "in memory", "subjects": ["mem.>"], "storage": "memory",
        "max_msgs": 10, "max_bytes": 4096, "max_age": 60 * SECOND, "discard": "new",
        "max_msgs_per_subject": 3, "max_msg_size": 512, "duplicate_window": 30 * SECOND,
    }),
    api("create DEF with no subjects", "STREAM.CREATE.DEF", {"name": "DEF"}),
    api("create OPTS with flags and metadata", "STREAM.CREATE.OPTS", {
        "name": "OPTS", "subjects": ["opts.*"], "allow_rollup_hdrs": True,
        "deny_delete": True, "allow_direct": True, "max_consumers": 5,
        "metadata": {"team": "a"}, "retention": "interest", "first_seq": 10,
    }),
    api("create with rollups but deny_purge", "STREAM.CREATE.RD", {
        "name": "RD", "subjects": ["rd"], "allow_rollup_hdrs": True, "deny_purge": True}),
    api("create WQ work queue", "STREAM.CREATE.WQ",
        {"name": "WQ", "subjects": ["wq.>"], "retention": "workqueue"}),
    api("create with name mismatch", "STREAM.CREATE.ONE", {"name": "TWO", "subjects": ["x"]}),
    api("create with bad JSON", "STREAM.CREATE.BAD", b'{"name": "BAD", "subjects": '),
    api("create with empty body", "STREAM.CREATE.EMPTY"),
    api("create with a path separator in the name", "STREAM.CREATE.a/b",
        {"name": "a/b", "subjects": ["ab"]}),
    api("create with a wildcard in the name", "STREAM.CREATE.a*b",
        {"name": "a*b", "subjects": ["awb"]}),
    api("create with overlapping subjects", "STREAM.CREATE.OVER",
        {"name": "OVER", "subjects": ["orders.new"]}),
    api("create with an invalid subject", "STREAM.CREATE.BADSUBJ",
        {"name": "BADSUBJ", "subjects": ["bad..subject"]}),
    api("create with duplicate window over max age", "STREAM.CREATE.DUPW", {
        "name": "DUPW", "subjects": ["dupw"], "max_age": SECOND,
        "duplicate_window": 2 * SECOND}),
    api("create with three replicas", "STREAM.CREATE.R3",
        {"name": "R3", "subjects": ["r3"], "num_replicas": 3}),
    api("create with an unknown retention", "STREAM.CREATE.RET",
        {"name": "RET", "subjects": ["ret"], "retention": "forever"}),
    api("create with subjects overlapping each other", "STREAM.CREATE.SELF",
        {"name": "SELF", "subjects": ["self.*", "self.a"]}),
    api("update ORDERS subjects and limits", "STREAM.UPDATE.ORDERS",
        {"name": "ORDERS", "subjects": ["orders.*", "returns.*"], "max_msgs": 100}),
    api("update ORDERS storage", "STREAM.UPDATE.ORDERS",
        {"name": "ORDERS", "subjects": ["orders.*"], "storage": "memory"}),
    api("update ORDERS retention", "STREAM.UPDATE.ORDERS",
        {"name": "ORDERS", "subjects": ["orders.*"], "retention": "workqueue"}),
    api("update a missing stream", "STREAM.UPDATE.NOPE", {"name": "NOPE", "subjects": ["n"]}),
    api("update with name mismatch", "STREAM.UPDATE.ORDERS", {"name": "MEM"}),
    api("info ORDERS", "STREAM.INFO.ORDERS"),
    api("info MEM", "STREAM.INFO.MEM"),
    api("info missing", "STREAM.INFO.NOPE"),
    api("names", "STREAM.NAMES"),
    api("names from offset 2", "STREAM.NAMES", {"offset": 2}),
    api("names by subject", "STREAM.NAMES", {"subject": "mem.x.y"}),
    api("names by subject, no match", "STREAM.NAMES", {"subject": "zzz"}),
    api("list", "STREAM.LIST"),
    api("list from offset 3", "STREAM.LIST", {"offset": 3}),
    api("delete DEF", "STREAM.DELETE.DEF"),
    api("delete DEF again", "STREAM.DELETE.DEF"),
    api("names after delete", "STREAM.NAMES"),
    api("create with an unknown field", "STREAM.CREATE.UNK",
        {"name": "UNK", "subjects": ["unk"], "no_such_field": 1}),
    api("account info at the end", "INFO"),
]

HDRS = {"X-Trace": "t-1", "X-Multi": "a"}

MESSAGES: list[Step] = [
    api("create S", "STREAM.CREATE.S", {"name": "S", "subjects": ["s.*"]}),
    pub("publish s.a", "s.a", b"one"),
    pub("publish s.b with headers", "s.b", b"two", HDRS),
    pub("publish with msg id", "s.a", b"three", {"Nats-Msg-Id": "m-1"}),
    pub("publish duplicate msg id", "s.a", b"three", {"Nats-Msg-Id": "m-1"}),
    pub("expected stream matches", "s.c", b"four", {"Nats-Expected-Stream": "S"}),
    pub("expected stream differs", "s.c", b"x", {"Nats-Expected-Stream": "T"}),
    pub("expected last seq wrong", "s.c", b"x", {"Nats-Expected-Last-Sequence": "1"}),
    pub("expected last seq right", "s.c", b"five", {"Nats-Expected-Last-Sequence": "4"}),
    pub("expected last subject seq wrong", "s.a", b"x",
        {"Nats-Expected-Last-Subject-Sequence": "1"}),
    pub("expected last subject seq 0 on a new subject", "s.d", b"six",
        {"Nats-Expected-Last-Subject-Sequence": "0"}),
    pub("expected last msg id wrong", "s.a", b"x", {"Nats-Expected-Last-Msg-Id": "zz"}),
    pub("publish with msg id m-2", "s.e", b"seven", {"Nats-Msg-Id": "m-2"}),
    pub("expected last msg id right", "s.a", b"eight",
        {"Nats-Expected-Last-Msg-Id": "m-2", "Nats-Msg-Id": "m-3"}),
    pub("rollup without allow_rollup_hdrs", "s.a", b"x", {"Nats-Rollup": "sub"}),
    pub("publish on a subject no stream has", "nostream.here", b"x"),
    api("create SZ with max_msg_size", "STREAM.CREATE.SZ",
        {"name": "SZ", "subjects": ["sz"], "max_msg_size": 8}),
    pub("publish over max_msg_size", "sz", b"123456789"),
    api("create N with discard new", "STREAM.CREATE.N",
        {"name": "N", "subjects": ["n"], "max_msgs": 1, "discard": "new"}),
    pub("publish into N", "n", b"1"),
    pub("publish into a full N", "n", b"2"),
    api("create R with rollups", "STREAM.CREATE.R",
        {"name": "R", "subjects": ["r.*"], "allow_rollup_hdrs": True}),
    pub("publish r.a", "r.a", b"1"),
    pub("publish r.b", "r.b", b"2"),
    pub("roll up r.a", "r.a", b"3", {"Nats-Rollup": "sub"}),
    pub("roll up everything", "r.b", b"4", {"Nats-Rollup": "all"}),
    pub("bad rollup value", "r.b", b"5", {"Nats-Rollup": "some"}),
    api("info R", "STREAM.INFO.R"),
    api("get seq 1", "STREAM.MSG.GET.S", {"seq": 1}),
    api("get seq 2 with headers", "STREAM.MSG.GET.S", {"seq": 2}),
    api("get last by subject", "STREAM.MSG.GET.S", {"last_by_subj": "s.a"}),
    api("get last by wildcard subject", "STREAM.MSG.GET.S", {"last_by_subj": "s.*"}),
    api("get next by subject", "STREAM.MSG.GET.S", {"seq": 2, "next_by_subj": "s.c"}),
    api("get a missing seq", "STREAM.MSG.GET.S", {"seq": 99}),
    api("get from a missing stream", "STREAM.MSG.GET.NOPE", {"seq": 1}),
    api("get with an empty body", "STREAM.MSG.GET.S"),
    api("get with bad JSON", "STREAM.MSG.GET.S", b"{seq:1}"),
    api("get with seq and last_by_subj", "STREAM.MSG.GET.S", {"seq": 1, "last_by_subj": "s.a"}),
    api("delete seq 2", "STREAM.MSG.DELETE.S", {"seq": 2}),
    api("delete seq 2 again", "STREAM.MSG.DELETE.S", {"seq": 2}),
    api("delete past the end", "STREAM.MSG.DELETE.S", {"seq": 99}),
    api("secure delete seq 4", "STREAM.MSG.DELETE.S", {"seq": 4, "no_erase": False}),
    api("delete from a missing stream", "STREAM.MSG.DELETE.NOPE", {"seq": 1}),
    api("info S with subjects and deleted details", "STREAM.INFO.S",
        {"subjects_filter": ">", "deleted_details": True}),
    api("purge s.c", "STREAM.PURGE.S", {"filter": "s.c"}),
    api("purge keep 2", "STREAM.PURGE.S", {"keep": 2}),
    api("purge with seq and keep", "STREAM.PURGE.S", {"seq": 3, "keep": 1}),
    api("purge a missing stream", "STREAM.PURGE.NOPE"),
    api("info S after purges", "STREAM.INFO.S", {"subjects_filter": ">"}),
    api("purge up to seq 8", "STREAM.PURGE.S", {"seq": 8}),
    api("purge all", "STREAM.PURGE.S"),
    api("info S after purge all", "STREAM.INFO.S"),
    pub("publish after purge", "s.a", b"after"),
    api("create DIRECT", "STREAM.CREATE.DIRECT",
        {"name": "DIRECT", "subjects": ["dg.*"], "allow_direct": True}),
    pub("publish dg.a", "dg.a", b"direct", {"X-Trace": "t"}),
    api("direct get seq 1", "DIRECT.GET.DIRECT", {"seq": 1}),
    api("direct get last by subject", "DIRECT.GET.DIRECT.dg.a"),
    api("direct get missing", "DIRECT.GET.DIRECT", {"seq": 5}),
    api("direct get from a missing stream", "DIRECT.GET.NOPE", {"seq": 1}),
    api("account info", "INFO"),
]

CONSUMERS: list[Step] = [
    api("create C", "STREAM.CREATE.C", {"name": "C", "subjects": ["c.*"]}),
    pub("publish c.a", "c.a", b"1"),
    pub("publish c.b", "c.b", b"2"),
    pub("publish c.a again", "c.a", b"3", {"X-N": "3"}),
    api("durable pull consumer", "CONSUMER.CREATE.C.pull", {
        "stream_name": "C", "config": {"durable_name": "pull", "ack_policy": "explicit",
                                       "ack_wait": 30 * SECOND}}),
    api("same durable again", "CONSUMER.CREATE.C.pull", {
        "stream_name": "C", "config": {"durable_name": "pull", "ack_policy": "explicit",
                                       "ack_wait": 30 * SECOND}}),
    api("durable via the legacy subject", "CONSUMER.DURABLE.CREATE.C.legacy", {
        "stream_name": "C", "config": {"durable_name": "legacy", "ack_policy": "explicit",
                                       "filter_subject": "c.b"}}),
    api("named consumer with a filter in the subject", "CONSUMER.CREATE.C.filt.c.a", {
        "stream_name": "C", "config": {"name": "filt", "filter_subject": "c.a",
                                       "ack_policy": "none", "deliver_policy": "last"}}),
    api("ephemeral push consumer", "CONSUMER.CREATE.C", {
        "stream_name": "C", "config": {"deliver_subject": "push.here",
                                       "ack_policy": "explicit"}}, capture="EPH"),
    api("consumer on a missing stream", "CONSUMER.CREATE.NOPE.x",
        {"stream_name": "NOPE", "config": {"durable_name": "x"}}),
    api("durable name mismatch", "CONSUMER.CREATE.C.one",
        {"stream_name": "C", "config": {"durable_name": "two"}}),
    api("stream name mismatch", "CONSUMER.CREATE.C.sm",
        {"stream_name": "D", "config": {"durable_name": "sm"}}),
    api("filter outside the stream", "CONSUMER.CREATE.C.out",
        {"stream_name": "C", "config": {"durable_name": "out", "filter_subject": "zz"}}),
    api("bad ack policy", "CONSUMER.CREATE.C.badack",
        {"stream_name": "C", "config": {"durable_name": "badack", "ack_policy": "sometimes"}}),
    api("consumer with bad JSON", "CONSUMER.CREATE.C.bj", b"{"),
    api("info pull", "CONSUMER.INFO.C.pull"),
    api("info ephemeral", "CONSUMER.INFO.C.<EPH>"),
    api("info missing consumer", "CONSUMER.INFO.C.nope"),
    api("info consumer of a missing stream", "CONSUMER.INFO.NOPE.pull"),
    api("consumer names", "CONSUMER.NAMES.C"),
    api("consumer list", "CONSUMER.LIST.C"),
    next_msgs("pull 2, no_wait", "C", "pull", {"batch": 2, "no_wait": True}),
    next_msgs("pull 5, no_wait, one left", "C", "pull", {"batch": 5, "no_wait": True}),
    next_msgs("pull 1, no_wait, nothing left", "C", "pull", {"batch": 1, "no_wait": True}),
    next_msgs("pull from a filtered consumer", "C", "legacy", {"batch": 3, "no_wait": True}),
    next_msgs("pull with expires", "C", "filt", {"batch": 2, "expires": SECOND // 5}),
    api("info pull after delivering", "CONSUMER.INFO.C.pull"),
    api("stream info counts consumers", "STREAM.INFO.C"),
    api("delete ephemeral", "CONSUMER.DELETE.C.<EPH>"),
    api("delete it again", "CONSUMER.DELETE.C.<EPH>"),
    api("consumer names after delete", "CONSUMER.NAMES.C"),
    api("account info", "INFO"),
]

#: ``Nats-Required-Api-Level`` above the hub's level (1) and the reference's, and not a number.
ABOVE = {"Nats-Required-Api-Level": "99"}
NOT_A_LEVEL = {"Nats-Required-Api-Level": "two"}

API_LEVEL: list[Step] = [
    api("create L at level 1", "STREAM.CREATE.L",
        {"name": "L", "subjects": ["l.>"], "allow_direct": True},
        headers={"Nats-Required-Api-Level": "1"}),
    api("create M with an empty level", "STREAM.CREATE.M", {"name": "M", "subjects": ["m"]},
        headers={"Nats-Required-Api-Level": ""}),
    api("create N with a negative level", "STREAM.CREATE.N", {"name": "N", "subjects": ["n"]},
        headers={"Nats-Required-Api-Level": "-1"}),
    pub("a publish is not checked", "l.a", b"one", ABOVE),
    api("consumer C", "CONSUMER.CREATE.L.C", {"stream_name": "L", "config": {"name": "C"}}),
    api("account info above our level", "INFO", headers=ABOVE),
    api("account info, level not a number", "INFO", headers=NOT_A_LEVEL),
    api("stream create above our level", "STREAM.CREATE.X", {"name": "X", "subjects": ["x"]},
        headers=ABOVE),
    api("stream update above our level", "STREAM.UPDATE.L", {"name": "L", "subjects": ["l.>"]},
        headers=ABOVE),
    api("stream info", "STREAM.INFO.L", headers=ABOVE),
    api("stream names", "STREAM.NAMES", headers=ABOVE),
    api("stream list", "STREAM.LIST", headers=NOT_A_LEVEL),
    api("stream names with bad JSON", "STREAM.NAMES", b"{bad"),
    api("stream list with bad JSON", "STREAM.LIST", b"{bad"),
    api("consumer names with bad JSON", "CONSUMER.NAMES.L", b"{bad"),
    api("consumer list of a missing stream", "CONSUMER.LIST.NOPE"),
    api("stream purge", "STREAM.PURGE.L", headers=ABOVE),
    api("message get", "STREAM.MSG.GET.L", {"seq": 1}, headers=ABOVE),
    api("message delete", "STREAM.MSG.DELETE.L", {"seq": 1}, headers=ABOVE),
    api("direct get", "DIRECT.GET.L", {"seq": 1}, headers=ABOVE),
    api("direct get at our level", "DIRECT.GET.L", {"seq": 1},
        headers={"Nats-Required-Api-Level": "1"}),
    api("consumer create", "CONSUMER.CREATE.L.D", {"stream_name": "L", "config": {"name": "D"}},
        headers=ABOVE),
    api("durable create", "CONSUMER.DURABLE.CREATE.L.D",
        {"stream_name": "L", "config": {"durable_name": "D"}}, headers=ABOVE),
    api("consumer info", "CONSUMER.INFO.L.C", headers=ABOVE),
    api("consumer names", "CONSUMER.NAMES.L", headers=ABOVE),
    api("consumer list", "CONSUMER.LIST.L", headers=NOT_A_LEVEL),
    next_msgs("pull above our level", "L", "C", {"batch": 1, "no_wait": True}, ABOVE),
    next_msgs("pull at our level", "L", "C", {"batch": 1, "no_wait": True},
              {"Nats-Required-Api-Level": "1"}),
    api("consumer delete", "CONSUMER.DELETE.L.C", headers=ABOVE),
    api("stream delete", "STREAM.DELETE.L", headers=ABOVE),
    api("an unknown request is not answered", "STREAM.FROB.L", headers=ABOVE),
    api("stream names: every refusal left things as they were", "STREAM.NAMES"),
    api("consumer names", "CONSUMER.NAMES.L"),
    api("account info", "INFO"),
]


@pytest.mark.differential(compare=True)
async def test_stream_administration(launch: Launch) -> None:
    await compare(launch, STREAM_ADMIN)


@pytest.mark.differential(compare=True)
async def test_publish_and_messages(launch: Launch) -> None:
    await compare(launch, MESSAGES)


@pytest.mark.differential(compare=True)
async def test_consumers(launch: Launch) -> None:
    await compare(launch, CONSUMERS)


@pytest.mark.differential(compare=True)
async def test_required_api_level(launch: Launch) -> None:
    await compare(launch, API_LEVEL)


async def _stream_infos(server: ServerProcess) -> list[dict[str, Any]]:
    """The StreamInfo objects nats-py hands its user through a create, a publish, an
    update and an info, as dicts."""
    from nats.js import api as js_api

    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        infos = [await js.add_stream(name="SI", subjects=["si.>"])]
        await js.publish("si.a", b"x")
        infos.append(await js.update_stream(
            js_api.StreamConfig(name="SI", subjects=["si.>", "sj.>"], max_msgs=10)))
        infos.append(await js.stream_info("SI"))
        return [i.as_dict() for i in infos]
    finally:
        await nc.close()


@pytest.mark.differential(compare=True)
async def test_stream_info_objects_match(launch: Launch) -> None:
    """nats-py's StreamInfo after a create, an update and an info holds the same fields
    on both servers (no ``state.subjects`` unless a filter asked for them)."""
    ref_server = launch.jetstream(target="nats-server")
    try:
        ref = await _stream_infos(ref_server)
    finally:
        ref_server.stop()
    hub = launch.jetstream(target="jetport")
    try:
        got = await _stream_infos(hub)
    finally:
        hub.stop()
    assert all("subjects" not in i["state"] for i in got)
    assert differences(normalize(ref), normalize(got)) == []
