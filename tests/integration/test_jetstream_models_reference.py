"""The JetStream config rules against nats-server: the same stream and consumer create and
update requests, replayed on the real binary, give the configs and errors Jetport's
models compute."""

from __future__ import annotations

import json
from typing import Any

import nats
import pytest
from nats.js import api as nats_api
from servers import Launch

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models import (
    ConsumerConfig,
    ConsumerInfo,
    StreamConfig,
    StreamInfo,
    check_consumer_update,
    check_stream_create,
    check_stream_update,
    check_workqueue_consumer,
    normalize_consumer_config,
    normalize_stream_config,
    parse_consumer_request,
    parse_stream_config,
)

NS = 1_000_000_000

# -- differential: the same requests against nats-server ---------------------------------
# Configs are compared field for field except the ``_nats.*`` metadata keys 2.11+ servers
# stamp in (api level and version); ``created``/``ts`` only via the info round-trip.
# Bodies are parsed strictly, since 2.11+ refuses unknown fields.

def _strip(config: dict[str, Any]) -> dict[str, Any]:
    """Drop what nats-server 2.11+ stamps into metadata (``_nats.*`` keys)."""
    config = dict(config)
    meta = {k: v for k, v in config.pop("metadata", {}).items() if not k.startswith("_nats.")}
    if meta:
        config["metadata"] = meta
    return config


KV_STREAM = nats_api.StreamConfig(
    name="KV_cfg", subjects=["$KV.cfg.>"], allow_direct=True, allow_rollup_hdrs=True,
    allow_msg_ttl=True, deny_delete=True, discard=nats_api.DiscardPolicy.NEW,
    duplicate_window=120, max_age=0, max_bytes=-1, max_consumers=-1, max_msg_size=-1,
    max_msgs=-1, max_msgs_per_subject=5, num_replicas=1,
    storage=nats_api.StorageType.FILE).as_dict()
ORDERED = nats_api.ConsumerConfig(
    deliver_subject="_INBOX.ord", ack_policy=nats_api.AckPolicy.NONE, max_deliver=1,
    flow_control=True, idle_heartbeat=5, ack_wait=22 * 3600, mem_storage=True, num_replicas=1,
    inactive_threshold=300, filter_subject="$KV.cfg.>",
    deliver_policy=nats_api.DeliverPolicy.LAST_PER_SUBJECT).as_dict()

DIFF_STREAMS: list[dict[str, Any]] = [
    nats_api.StreamConfig(name="S", subjects=["a.>"]).as_dict(), KV_STREAM,
    {"name": "W", "subjects": ["w.>"], "retention": "workqueue"},
    {"name": "L", "subjects": ["l.>"], "metadata": {"k": "v"},
     "consumer_limits": {"max_ack_pending": 100, "inactive_threshold": 60 * NS}},
    {"name": "T0"}, {"name": "T1", "subjects": ["t1"], "max_age": NS},
    {"name": "T2", "sources": [{"name": "S", "filter_subject": "a.1",
                                "opt_start_time": "2024-01-01T00:00:00.123456789Z"}]},
    {"name": "T3", "mirror": {"name": "KV_cfg"}},
    {"name": "T4", "subjects": ["t4.>"], "republish": {"dest": "out4.>"}, "placement": {}},
    {"name": "T5", "subjects": ["t5.*"], "subject_transform": {"src": "t5.*",
                                                               "dest": "u5.{{wildcard(1)}}"}},
    {"name": "T6", "subjects": ["t6"], "max_msgs": -5, "max_consumers": -5, "max_bytes": -7,
     "max_msgs_per_subject": -9, "max_msg_size": -3, "discard": "NEW"},
    {"name": "T7", "subjects": ["t7"], "subject_delete_marker_ttl": 5 * NS},
    {"name": "T8", "subjects": ["t8"], "first_seq": 10, "compression": "s2",
     "storage": "memory", "description": "d", "max_msgs_per_subject": 2,
     "discard": "new", "discard_new_per_subject": True},
    {"name": "T9", "subjects": ["t9", "$JS.API.t9"], "no_ack": True},
    {"name": "T10", "subjects": ["t10.>"], "allow_msg_schedules": True, "deny_purge": True},
    # refused
    {"name": "E1", "max_age": 50_000_000}, {"name": "E2", "num_replicas": 3},
    {"name": "E3", "subjects": ["e.*", "e.b"]}, {"name": "E4", "subjects": [">"]},
    {"name": "E5", "sealed": True}, {"name": "E6", "mirror_direct": True},
    {"name": "E7", "deny_purge": True, "allow_rollup_hdrs": True},
    {"name": "E8", "sources": [{"name": "S"}, {"name": "S"}]},
    {"name": "E9", "mirror": {"name": "S"}, "first_seq": 5},
    {"name": "E10", "retention": "bogus"}, {"name": "E11", "foo": 1},
    {"name": "E12", "max_msgs": "5"}, {"name": "E13", "num_replicas": -1},
    {"name": "E14", "subjects": ["e14"], "republish": {"src": "e14", "dest": "e14"}},
    {"name": "E15", "subjects": ["e15"], "allow_msg_schedules": True, "discard": "new"},
    {"name": "E16", "mirror": {"name": "S"}, "allow_msg_schedules": True},
    {"name": "E17", "subjects": ["e17"], "sources": [{"name": "S"}], "allow_msg_schedules": True},
    {"name": "E18", "subjects": ["e18"], "allow_msg_schedules": True,
     "allow_rollup_hdrs": False, "pedantic": True},
    {"name": "a/b"},
]
DIFF_CONSUMERS: list[tuple[str, str, dict[str, Any]]] = [
    ("S", "d", nats_api.ConsumerConfig(durable_name="d").as_dict()),
    ("KV_cfg", "", ORDERED),
    ("S", "", {}), ("S", "nm", {"name": "nm", "ack_policy": "explicit"}),
    ("S", "", {"deliver_subject": "p1", "idle_heartbeat": NS, "flow_control": True,
               "headers_only": True, "deliver_group": "g"}),
    ("S", "b", {"durable_name": "b", "ack_policy": "explicit", "backoff": [NS, 2 * NS],
                "max_deliver": 5, "filter_subjects": ["a.1", "a.2"], "sample_freq": "50%"}),
    ("S", "n", {"durable_name": "n", "max_deliver": -5, "max_ack_pending": -5,
                "max_waiting": -1, "max_batch": -1, "max_expires": -1, "max_bytes": -1}),
    ("S", "t", {"durable_name": "t", "deliver_policy": "by_start_time",
                "opt_start_time": "2024-01-01T00:00:00.5Z", "mem_storage": True}),
    ("S", "pin", {"durable_name": "pin", "ack_policy": "explicit",
                  "priority_policy": "pinned_client", "priority_groups": ["g1"]}),
    ("L", "", {}), ("L", "ld", {"durable_name": "ld", "ack_policy": "explicit"}),
    ("W", "w1", {"durable_name": "w1", "ack_policy": "explicit"}),
    # refused
    ("S", "", {"idle_heartbeat": NS}), ("S", "", {"deliver_subject": "p.*"}),
    ("S", "", {"deliver_subject": "a.x"}), ("S", "", {"filter_subjects": ["a.*", "a.b"]}),
    ("S", "", {"deliver_policy": "by_start_sequence"}), ("S", "", {"sample_freq": "abc"}),
    ("S", "", {"ack_policy": "bogus"}), ("S", "", {"foo": 1}),
    ("S", "nr", {"durable_name": "nr", "num_replicas": 3}),
    ("L", "", {"max_ack_pending": 200}), ("L", "", {"inactive_threshold": 120 * NS}),
    ("W", "", {}), ("W", "w2", {"durable_name": "w2", "ack_policy": "explicit"}),
    ("W", "w3", {"durable_name": "w3", "ack_policy": "all", "filter_subject": "w.a"}),
    ("W", "w4", {"durable_name": "w4", "ack_policy": "explicit", "filter_subject": "w.b"}),
    ("S", "", {"priority_policy": "overflow"}),
]


def _expect_stream(body: dict[str, Any], ours: dict[str, StreamConfig]) -> Any:
    try:
        cfg, pedantic = parse_stream_config(json.dumps(body), strict=True)
        check_stream_create(cfg)
        cfg = normalize_stream_config(cfg, pedantic=pedantic, lookup=ours.get)
    except E.ApiError as err:
        return err.to_dict()
    ours[cfg.name] = cfg
    return cfg.dump()


def _expect_consumer(stream_cfg: StreamConfig, name: str, body: dict[str, Any],
                     made: dict[str, list[ConsumerConfig]]) -> Any:
    try:
        req = parse_consumer_request(json.dumps(body), strict=True)
        cfg = req.config
        if name:  # CONSUMER.CREATE.<stream>.<name> names the consumer
            cfg.name = name
        cfg = normalize_consumer_config(cfg, stream_cfg)
        if stream_cfg.retention == "workqueue":
            check_workqueue_consumer(cfg, made.setdefault(stream_cfg.name, []))
    except E.ApiError as err:
        return err.to_dict()
    made.setdefault(stream_cfg.name, []).append(cfg)
    return cfg.dump()


@pytest.mark.differential(compare=True)
async def test_against_nats_server(launch: Launch) -> None:
    """Jetport's models give the answers nats-server gives to the same requests."""
    server = launch.jetstream(target="nats-server")
    nc = await nats.connect(server.url)
    try:
        version = nc.connected_server_version
        if (version.major, version.minor) < (2, 14):
            pytest.skip(reason=f"requires nats-server 2.14+, found {version}")
        ours: dict[str, StreamConfig] = {}
        for body in DIFF_STREAMS:
            reply = await nc.request(f"$JS.API.STREAM.CREATE.{body['name']}",
                                     json.dumps(body).encode(), timeout=2)
            got = json.loads(reply.data)
            expected = _expect_stream(body, ours)
            if "error" in got:
                assert expected == got["error"], body
            else:
                assert expected == _strip(got["config"]), body
                info = StreamInfo.model_validate(got)
                assert info.dump() == {k: v for k, v in got.items()
                                       if k not in ("type", "did_create")}
        made: dict[str, list[ConsumerConfig]] = {}
        for stream_name, name, config in DIFF_CONSUMERS:
            subject = f"$JS.API.CONSUMER.CREATE.{stream_name}" + (f".{name}" if name else "")
            body = {"stream_name": stream_name, "config": config}
            reply = await nc.request(subject, json.dumps(body).encode(), timeout=2)
            got = json.loads(reply.data)
            expected = _expect_consumer(ours[stream_name], name, body, made)
            if "error" in got:
                assert expected == got["error"], (stream_name, config)
            else:
                assert expected == _strip(got["config"]), (stream_name, config)
                info = ConsumerInfo.model_validate(got)
                assert info.dump() == {k: v for k, v in got.items() if k != "type"}
        await _updates_against(nc, ours, made)
    finally:
        await nc.close()
        server.stop()


async def _updates_against(nc: Any, ours: dict[str, StreamConfig],
                           made: dict[str, list[ConsumerConfig]]) -> None:
    """Stream and consumer updates: same result or the same refusal."""
    for body in ({"name": "T1", "subjects": ["t1"], "max_age": NS, "storage": "memory"},
                 {"name": "T1", "subjects": ["t1"], "max_age": NS, "retention": "workqueue"},
                 {"name": "T1", "subjects": ["t1"], "max_age": NS, "max_consumers": 5},
                 {"name": "T1", "subjects": ["t1"], "sealed": True, "retention": "interest"},
                 {"name": "T1", "subjects": ["t1"], "retention": "interest"},
                 {"name": "T3", "mirror": {"name": "S"}},
                 {"name": "T10", "subjects": ["t10.>"]},
                 {"name": "T9", "subjects": ["t9", "$JS.API.t9"], "no_ack": True,
                  "allow_msg_schedules": True}):
        reply = await nc.request(f"$JS.API.STREAM.UPDATE.{body['name']}",
                                 json.dumps(body).encode(), timeout=2)
        got = json.loads(reply.data)
        try:
            cfg, _ = parse_stream_config(json.dumps(body))
            expected = check_stream_update(ours[cfg.name], cfg, lookup=ours.get)
        except E.ApiError as err:
            assert got.get("error") == err.to_dict(), body
            continue
        assert _strip(got["config"]) == expected.dump(), body
        ours[cfg.name] = expected
    old = next(c for c in made["S"] if c.name == "b")
    for change in ({"description": "x", "max_ack_pending": 5}, {"ack_policy": "all"},
                   {"deliver_policy": "new"}, {"max_waiting": 11}, {"deliver_subject": "zz"}):
        config = {**old.dump(), **change}
        body = {"stream_name": "S", "config": config}
        reply = await nc.request("$JS.API.CONSUMER.CREATE.S.b", json.dumps(body).encode(),
                                 timeout=2)
        got = json.loads(reply.data)
        try:
            new = normalize_consumer_config(ConsumerConfig.model_validate(config), ours["S"])
            check_consumer_update(old, new)
        except E.ApiError as err:
            assert got.get("error") == err.to_dict(), change
            continue
        assert _strip(got["config"]) == new.dump(), change
        old = new
