"""JetStream shapes, defaults and errors.

Expected values come from nats-server 2.15.1 replies. The differential test,
tests/integration/test_jetstream_models_reference.py, replays the same kind of requests
against the real binary and compares configs and error codes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from nats.js import api as nats_api

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models import (
    ZERO_TIME_NS,
    AccountInfo,
    AckPolicy,
    BadPullRequest,
    ConsumerConfig,
    ConsumerInfo,
    Discard,
    MsgGetRequest,
    PubAck,
    PurgeRequest,
    StoredMessage,
    StreamConfig,
    StreamInfo,
    check_consumer_update,
    check_stream_create,
    check_stream_update,
    check_workqueue_consumer,
    format_time,
    go_json,
    mapping_error,
    normalize_consumer_config,
    normalize_stream_config,
    parse_consumer_request,
    parse_pull_request,
    parse_stream_config,
    parse_time,
    pub_ack_error,
    response,
    valid_name,
)

NS = 1_000_000_000


def stream(**fields: Any) -> StreamConfig:
    fields.setdefault("name", "S")
    return normalize_stream_config(StreamConfig.model_validate(fields))


def consumer(fields: dict[str, Any], on: StreamConfig | None = None) -> ConsumerConfig:
    on = on or stream(subjects=["a.>"])
    return normalize_consumer_config(ConsumerConfig.model_validate(fields), on)


def api_error(fn: Any, *args: Any, **kwargs: Any) -> E.ApiError:
    with pytest.raises(E.ApiError) as info:
        fn(*args, **kwargs)
    return info.value


# -- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("err,code,err_code,text", [
    (E.stream_not_found(), 404, 10059, "stream not found"),
    (E.stream_name_in_use(), 400, 10058,
     "stream name already in use with a different configuration"),
    (E.subjects_overlap(), 400, 10065, "subjects overlap with an existing stream"),
    (E.consumer_not_found(), 404, 10014, "consumer not found"),
    (E.wrong_last_sequence(7), 400, 10071, "wrong last sequence: 7"),
    (E.wrong_last_msg_id("abc"), 400, 10070, "wrong last msg ID: abc"),
    (E.expected_stream_mismatch(), 400, 10060, "expected stream does not match"),
    (E.message_size_exceeded(), 400, 10054, "message size exceeds maximum allowed"),
    (E.store_failed("maximum messages exceeded"), 503, 10077, "maximum messages exceeded"),
    (E.stream_sealed(), 400, 10109, "invalid operation on sealed stream"),
    (E.purge_not_permitted(), 500, 10110, "stream purge not permitted"),
    (E.delete_not_permitted(), 500, 10057, "message delete not permitted"),
    (E.rollup_not_permitted(), 500, 10111, "rollup not permitted"),
    (E.rollup_invalid("x"), 500, 10111, 'rollup value invalid: "x"'),
    (E.stream_replicas_not_supported(), 500, 10074,
     "replicas > 1 not supported in non-clustered mode"),
    (E.invalid_json("unexpected EOF"), 400, 10025, "invalid JSON: unexpected EOF"),
    (E.bad_request(), 400, 10003, "bad request"),
    (E.no_message_found(), 404, 10037, "no message found"),
    (E.maximum_consumers(), 400, 10026, "maximum consumers limit reached"),
    (E.maximum_streams(), 400, 10027, "maximum number of streams reached"),
    (E.stream_name_mismatch(), 400, 10056, "stream name in subject does not match request"),
    (E.consumer_name_mismatch(), 400, 10017,
     "consumer name in subject does not match durable name in request"),
    (E.consumer_durable_name_mismatch(), 400, 10132,
     "Consumer Durable and Name have to be equal if both are provided"),
    (E.consumer_already_exists(), 400, 10148, "consumer already exists"),
    (E.consumer_does_not_exist(), 400, 10149, "consumer does not exist"),
    (E.consumer_name_in_use(), 400, 10013, "consumer name already in use"),
    (E.consumer_filter_not_subset(), 400, 10093,
     "consumer filter subject is not a valid subset of the interest subjects"),
    (E.consumer_create_failed(err="ack policy can not be updated"), 500, 10012,
     "ack policy can not be updated"),
    (E.stream_invalid_config(err="max age needs to be >= 100ms"), 500, 10052,
     "max age needs to be >= 100ms"),
    (E.wrong_last_sequence_constant(), 400, 10164, "wrong last sequence"),
    (E.not_enabled_for_account(), 503, 10039, "JetStream not enabled for account"),
    (E.storage_resources_exceeded(), 500, 10047, "insufficient storage resources available"),
])
def test_error_table(err: E.ApiError, code: int, err_code: int, text: str) -> None:
    assert err.to_dict() == {"code": code, "err_code": err_code, "description": text}
    assert E.BY_CODE[err_code].err_code == err_code


def test_error_helpers() -> None:
    err = E.stream_not_found()
    assert err.err_code == E.stream_not_found.err_code and str(err) == "stream not found (10059)"
    assert E.error_response("stream_info_response", err) == {
        "type": "io.nats.jetstream.api.v1.stream_info_response",
        "error": {"code": 404, "err_code": 10059, "description": "stream not found"},
    }
    # A wrapped API error passes through; anything else fills {err}.
    assert E.consumer_create_failed.wrap(err) is err
    assert E.consumer_create_failed.wrap(ValueError("boom")).description == "boom"
    with pytest.raises(TypeError):
        E.wrong_last_sequence()
    assert pub_ack_error("S", E.wrong_last_sequence(4)) == {
        "error": {"code": 400, "err_code": 10071, "description": "wrong last sequence: 4"},
        "stream": "S", "seq": 0}


# -- time and JSON ------------------------------------------------------------------------

def test_time_round_trip() -> None:
    for text in ("2026-11-26T13:14:28.47481214Z", "2024-01-01T00:00:00Z",
                 "0001-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z"):
        assert format_time(parse_time(text)) == text
    assert parse_time("0001-01-01T00:00:00Z") == ZERO_TIME_NS
    assert parse_time("2024-01-01T01:00:00+01:00") == parse_time("2024-01-01T00:00:00Z")
    assert parse_time("2024-01-01T00:00:00.123456789123Z") % NS == 123456789
    with pytest.raises(ValueError):
        parse_time("2024-13-01T00:00:00Z")


def test_go_json_escapes_like_go() -> None:
    assert go_json({"s": "a.>", "x": "<&>"}) == b'{"s":"a.\\u003e","x":"\\u003c\\u0026\\u003e"}'


# -- streams ------------------------------------------------------------------------------

NATS_PY_STREAM = {  # nats-server 2.15.1's echo of js.add_stream(name="S", subjects=["a.>"])
    "name": "S", "subjects": ["a.>"], "retention": "limits", "max_consumers": -1,
    "max_msgs": -1, "max_bytes": -1, "max_age": 0, "max_msgs_per_subject": -1,
    "max_msg_size": -1, "discard": "old", "storage": "file", "num_replicas": 1,
    "duplicate_window": 120 * NS, "compression": "none", "allow_direct": False,
    "mirror_direct": False, "sealed": False, "deny_delete": False, "deny_purge": False,
    "allow_rollup_hdrs": False, "consumer_limits": {}, "allow_msg_ttl": False,
}


def test_nats_py_add_stream() -> None:
    body = json.dumps(nats_api.StreamConfig(name="S", subjects=["a.>"]).as_dict())
    cfg, pedantic = parse_stream_config(body, strict=True)
    assert not pedantic
    result = normalize_stream_config(cfg)
    assert result.dump() == NATS_PY_STREAM
    assert normalize_stream_config(result) == result  # idempotent (recovery)
    assert StreamConfig.model_validate_json(result.model_dump_json()) == result


@pytest.mark.parametrize("fields,expected", [
    ({}, {"subjects": ["S"], "duplicate_window": 120 * NS}),
    ({"max_age": 60 * NS}, {"duplicate_window": 60 * NS}),
    ({"max_age": 200_000_000}, {"duplicate_window": 200_000_000}),
    ({"sources": [{"name": "O"}]}, {"subjects": [], "duplicate_window": 0}),
    ({"mirror": {"name": "O"}}, {"subjects": [], "duplicate_window": 0}),
    ({"max_msgs": -5, "max_bytes": -7, "max_consumers": 0, "max_msg_size": -3},
     {"max_msgs": -1, "max_bytes": -1, "max_consumers": -1, "max_msg_size": -1}),
    ({"discard": "NEW"}, {"discard": Discard.NEW}),
    ({"subjects": ["r.>"], "republish": {"dest": "out.>"}},
     {"republish": {"src": ">", "dest": "out.>"}}),
    ({"placement": {}}, {"placement": None}),
    ({"subject_delete_marker_ttl": 5 * NS},
     {"allow_msg_ttl": True, "allow_rollup_hdrs": True}),
    ({"subjects": ["x", "$JS.API.x"], "no_ack": True}, {"subjects": ["x", "$JS.API.x"]}),
    ({"subjects": ["$JS.EVENT.x"]}, {"subjects": ["$JS.EVENT.x"]}),
])
def test_stream_defaults(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    result = stream(**fields)
    for key, value in expected.items():
        got = getattr(result, key)
        assert (got.dump() if hasattr(got, "dump") else got) == value, key


@pytest.mark.parametrize("fields,err_code,text", [
    ({"name": "a b"}, 10052,
     "stream name is required and can not contain '.', '*', '>', '\\', '/'"),
    ({"name": "x" * 256}, 10052, "stream name is too long, maximum allowed is 255"),
    ({"description": "x" * 5000}, 10052,
     "stream description is too long, maximum allowed is 4096"),
    ({"metadata": {"k": "v" * 131072}}, 10052,
     "stream metadata exceeds maximum size of 131072 bytes"),
    ({"max_age": 50_000_000}, 10052, "max age needs to be >= 100ms"),
    ({"max_age": -1}, 10052, "max age can not be negative"),
    ({"max_age": 60 * NS, "duplicate_window": 120 * NS}, 10052,
     "duplicates window can not be larger then max age"),
    ({"duplicate_window": 50_000_000}, 10052, "duplicates window needs to be >= 100ms"),
    ({"duplicate_window": -1}, 10052, "duplicates window can not be negative"),
    ({"discard_new_per_subject": True}, 10052,
     "discard new per subject requires discard new policy to be set"),
    ({"discard_new_per_subject": True, "discard": "new"}, 10052,
     "discard new per subject requires max msgs per subject > 0"),
    ({"deny_purge": True, "allow_rollup_hdrs": True}, 10052,
     "roll-ups require the purge permission"),
    ({"num_replicas": 3}, 10074, "replicas > 1 not supported in non-clustered mode"),
    ({"num_replicas": 6}, 10052, "maximum replicas is 5"),
    ({"num_replicas": -1}, 10133, "replicas count cannot be negative"),
    ({"subjects": ["a.*", "a.b"]}, 10052, 'subject "a.*" overlaps with "a.b"'),
    ({"subjects": ["d", "d"]}, 10052, 'subject "d" overlaps with "d"'),
    ({"subjects": ["a..b"]}, 10052, "invalid subject"),
    ({"subjects": ["$JS.API.>"]}, 10052,
     "subjects that overlap with jetstream api require no-ack to be true"),
    ({"subjects": ["$SYS.x"]}, 10052,
     "subjects that overlap with system api require no-ack to be true"),
    ({"subjects": [">"]}, 10052, "capturing all subjects requires no-ack to be true"),
    ({"subjects": ["x"], "mirror": {"name": "O"}}, 10034,
     "stream mirrors can not contain subjects"),
    ({"mirror": {"name": "O"}, "first_seq": 5}, 10143,
     "stream mirrors can not have first sequence configured"),
    ({"mirror": {"name": "O"}, "sources": [{"name": "O"}]}, 10031,
     "stream mirrors can not also contain other sources"),
    ({"mirror": {"name": "a.b"}}, 10142, "mirrored stream name is invalid"),
    ({"sources": [{"name": "O"}, {"name": "O"}]}, 10140,
     "duplicate source configuration detected"),
    ({"sources": [{"name": "a.b"}]}, 10141, "sourced stream name is invalid"),
    ({"subjects": ["p9"], "subject_transform": {"src": "p9", "dest": "x.{{wildcard(1)}}"}},
     10156, "stream transform: invalid mapping destination: wildcard index out of range in "
            "{{wildcard(1)}}"),
    ({"subjects": ["r2.>"], "republish": {"src": ">", "dest": "r2.x"}}, 10052,
     "stream configuration for republish destination forms a cycle"),
    ({"subjects": ["p10"], "republish": {"src": "p10", "dest": "out.{{wildcard(1)}}"}},
     10052, "stream configuration for republish with transform from 'p10' to "
            "'out.{{wildcard(1)}}' not valid"),
    ({"placement": {"preferred": "x"}}, 10052, "preferred server not permitted in placement"),
    ({"subject_delete_marker_ttl": 500_000_000}, 10052,
     "subject delete marker TTL must be at least 1 second"),
])
def test_stream_errors(fields: dict[str, Any], err_code: int, text: str) -> None:
    err = api_error(stream, **fields)
    assert (err.err_code, err.description) == (err_code, text)


def test_stream_pedantic() -> None:
    cfg = StreamConfig(name="S", max_age=60 * NS)
    err = api_error(normalize_stream_config, cfg, pedantic=True)
    assert err.to_dict() == {"code": 400, "err_code": 10157,
                             "description": "pedantic mode: duplicate window cannot be "
                                            "bigger than max age"}


def test_stream_create_checks() -> None:
    for cfg, code in ((StreamConfig(name="a/b"), 10128), (StreamConfig(name="S", sealed=True),
                      10052), (StreamConfig(name="S", mirror_direct=True), 10052)):
        assert api_error(check_stream_create, cfg).err_code == code
    check_stream_create(StreamConfig(name="S"))


def test_stream_lookup_rules() -> None:
    origin = stream(name="O", subjects=["o.>"], allow_direct=True, max_msg_size=100)
    lookup = {"O": origin}.get
    mirror = normalize_stream_config(StreamConfig(name="M", mirror={"name": "O"}), lookup=lookup)
    assert mirror.mirror_direct is True
    small = StreamConfig(name="M", mirror={"name": "O"}, max_msg_size=10)
    assert api_error(normalize_stream_config, small, lookup=lookup).err_code == 10030
    small = StreamConfig(name="M", sources=[{"name": "O"}], max_msg_size=10)
    assert api_error(normalize_stream_config, small, lookup=lookup).err_code == 10046
    loop = stream(name="A", sources=[{"name": "B"}])
    back = StreamConfig(name="B", sources=[{"name": "A"}])
    err = api_error(normalize_stream_config, back, lookup={"A": loop}.get)
    assert err.description == "detected cycle"


@pytest.mark.parametrize("change,err_code,text", [
    ({"storage": "memory"}, 10052, "stream configuration update can not change storage type"),
    ({"retention": "workqueue"}, 10052,
     "stream configuration update can not change retention policy to/from workqueue"),
    ({"name": "T"}, 10052, "stream configuration name must match original"),
    ({"num_replicas": 3}, 10074, "replicas > 1 not supported in non-clustered mode"),
])
def test_stream_update_errors(change: dict[str, Any], err_code: int, text: str) -> None:
    old = stream(subjects=["a"])
    new = StreamConfig.model_validate({"name": "S", "subjects": ["a"], **change})
    err = api_error(check_stream_update, old, new)
    assert (err.err_code, err.description) == (err_code, text)


def test_stream_update_rules() -> None:
    old = stream(subjects=["a"], max_age=60 * NS)
    sealed = check_stream_update(old, StreamConfig(name="S", subjects=["a"], sealed=True,
                                                   retention="interest", max_consumers=5))
    assert (sealed.max_age, sealed.discard, sealed.deny_delete, sealed.deny_purge,
            sealed.max_consumers) == (0, Discard.NEW, True, True, 5)
    for change, text in (({}, "stream configuration update can not unseal a sealed stream"),
                         ({"sealed": True}, "stream configuration update can not cancel "
                                            "deny message deletes")):
        err = api_error(check_stream_update, sealed, StreamConfig(name="S", subjects=["a"],
                                                                  **change))
        assert err.description == text
    mirror = stream(name="M", mirror={"name": "O"})
    changed = StreamConfig(name="M", mirror={"name": "P"})
    assert api_error(check_stream_update, mirror, changed).err_code == 10055
    assert check_stream_update(mirror, StreamConfig(name="M")).mirror is None  # promotion
    ttl = stream(subjects=["a"], allow_msg_ttl=True)
    err = api_error(check_stream_update, ttl, StreamConfig(name="S", subjects=["a"]))
    assert err.description == "message TTL status can not be disabled"


# -- consumers ----------------------------------------------------------------------------

def test_nats_py_add_consumer() -> None:
    req = {"stream_name": "S", "config": nats_api.ConsumerConfig(durable_name="d").as_dict()}
    parsed = parse_consumer_request(json.dumps(req), strict=True)
    result = normalize_consumer_config(parsed.config, stream(subjects=["a.>"]))
    assert result.dump() == {
        "durable_name": "d", "name": "d", "deliver_policy": "all", "ack_policy": "explicit",
        "ack_wait": 30 * NS, "max_deliver": -1, "replay_policy": "instant",
        "max_waiting": 512, "max_ack_pending": 1000, "num_replicas": 0}
    assert normalize_consumer_config(result, stream(subjects=["a.>"])) == result


@pytest.mark.parametrize("fields,expected", [
    ({}, {"ack_policy": AckPolicy.NONE, "max_waiting": 512, "inactive_threshold": 5 * NS,
          "max_ack_pending": 0, "ack_wait": 0, "name": ""}),
    ({"durable_name": "d"}, {"inactive_threshold": 0, "name": "d"}),
    ({"deliver_subject": "in", "idle_heartbeat": NS, "flow_control": True},
     {"max_waiting": 0, "max_deliver": -1}),
    ({"ack_policy": "explicit", "backoff": [NS, 5 * NS], "max_deliver": 5, "ack_wait": 9 * NS},
     {"ack_wait": NS}),
    ({"max_deliver": -5, "max_ack_pending": -5, "max_waiting": -1, "max_batch": -1},
     {"max_deliver": -1, "max_ack_pending": -1, "max_waiting": 512, "max_batch": 0}),
    ({"durable_name": "p", "priority_policy": "pinned_client", "priority_groups": ["g"]},
     {"priority_timeout": 120 * NS}),
])
def test_consumer_defaults(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    result = consumer(fields)
    for key, value in expected.items():
        assert getattr(result, key) == value, key


def test_consumer_stream_limits() -> None:
    limited = stream(subjects=["l.>"], consumer_limits={"max_ack_pending": 100,
                                                        "inactive_threshold": 60 * NS})
    result = consumer({}, limited)
    assert (result.max_ack_pending, result.inactive_threshold) == (100, 60 * NS)
    err = api_error(consumer, {"max_ack_pending": 200}, limited)
    assert err.description == "consumer max ack pending exceeds system limit of 100"
    err = api_error(consumer, {"inactive_threshold": 120 * NS}, limited)
    assert err.description == "consumer inactive threshold exceeds system limit of 1m0s"


@pytest.mark.parametrize("fields,err_code,text", [
    ({"idle_heartbeat": NS}, 10088, "consumer idle heartbeat requires a push based consumer"),
    ({"flow_control": True}, 10089, "consumer flow control requires a push based consumer"),
    ({"deliver_subject": "p", "idle_heartbeat": 50_000_000}, 10083,
     "consumer idle heartbeat needs to be >= 100ms"),
    ({"deliver_subject": "p", "flow_control": True}, 10108,
     "consumer with flow control also needs heartbeats"),
    ({"deliver_subject": "p.*"}, 10079, "consumer deliver subject has wildcards"),
    ({"deliver_subject": "a..b"}, 10112, "invalid push consumer deliver subject"),
    ({"deliver_subject": "a.x"}, 10081, "consumer deliver subject forms a cycle"),
    ({"deliver_subject": "p", "max_waiting": 5}, 10080,
     "consumer in push mode can not set max waiting"),
    ({"deliver_subject": "p", "max_ack_pending": 10}, 10082,
     "consumer requires ack policy for max ack pending"),
    ({"filter_subject": "a.x", "filter_subjects": ["a.y"]}, 10136,
     "consumer cannot have both FilterSubject and FilterSubjects specified"),
    ({"filter_subjects": ["a.*", "a.b"]}, 10138, "consumer subject filters cannot overlap"),
    ({"filter_subjects": [""]}, 10139, "consumer filter in FilterSubjects cannot be empty"),
    ({"filter_subject": "a..b"}, 10052, "invalid subject"),
    ({"deliver_policy": "by_start_sequence"}, 10094,
     "consumer delivery policy is deliver by start sequence, but optional start sequence "
     "is not set"),
    ({"deliver_policy": "by_start_time"}, 10094,
     "consumer delivery policy is deliver by start time, but optional start time is not set"),
    ({"opt_start_seq": 5}, 10094,
     "consumer delivery policy is deliver all, but optional start sequence is also set"),
    ({"deliver_policy": "new", "opt_start_time": "2024-01-01T00:00:00Z"}, 10094,
     "consumer delivery policy is deliver new, but optional start time is also set"),
    ({"deliver_policy": "last_per_subject"}, 10094,
     "consumer delivery policy is deliver last per subject, but optional filter subject "
     "is not set"),
    ({"durable_name": "x", "name": "y"}, 10132,
     "Consumer Durable and Name have to be equal if both are provided"),
    ({"name": "a*b"}, 10052, "consumer name can not contain '.', '*', '>', '\\', '/'"),
    ({"ack_policy": "explicit", "backoff": [NS, 2 * NS, 3 * NS], "max_deliver": 2}, 10116,
     "max deliver is required to be > length of backoff values"),
    ({"backoff": [-1], "max_deliver": 5}, 10184, "consumer backoff needs to be positive"),
    ({"ack_wait": -1}, 10183, "consumer ack wait needs to be positive"),
    ({"rate_limit_bps": 100}, 10086, "consumer in pull mode can not have rate limit set"),
    ({"max_expires": 100}, 10115, "consumer max request expires needs to be >= 1ms"),
    ({"sample_freq": "abc"}, 10095, "failed to parse consumer sampling configuration: "
                                    'strconv.Atoi: parsing "abc": invalid syntax'),
    ({"sample_freq": "-5"}, 10095, "failed to parse consumer sampling configuration: <nil>"),
    ({"description": "x" * 5000}, 10107,
     "consumer description is too long, maximum allowed is 4096"),
    ({"metadata": {"k": "v" * 131072}}, 10135,
     "consumer metadata exceeds maximum size of 128KB"),
    ({"num_replicas": 3}, 10074, "replicas > 1 not supported in non-clustered mode"),
    ({"num_replicas": -1}, 10133, "replicas count cannot be negative"),
    ({"priority_policy": "overflow"}, 10159,
     "Setting PriorityPolicy requires at least one PriorityGroup to be set"),
    ({"priority_policy": "overflow", "priority_groups": ["bad group"]}, 10162,
     "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed "
     "16 characters"),
    ({"priority_groups": ["a"]}, 10196,
     "consumer can not have priority groups when policy is none"),
    ({"priority_timeout": 5}, 10197, "PinnedTTL cannot be set when PriorityPolicy is none"),
    ({"durable_name": "d" * 256}, 10102, "consumer name is too long, maximum allowed is 255"),
])
def test_consumer_errors(fields: dict[str, Any], err_code: int, text: str) -> None:
    err = api_error(consumer, fields)
    assert (err.err_code, err.description) == (err_code, text)


def test_consumer_update_rules() -> None:
    old = consumer({"durable_name": "u", "ack_policy": "explicit", "filter_subject": "a.1",
                    "max_waiting": 10})
    ok = consumer({"durable_name": "u", "ack_policy": "explicit", "filter_subject": "a.2",
                   "max_waiting": 10, "description": "x", "max_ack_pending": 5})
    check_consumer_update(old, ok)
    for change, text in (({"ack_policy": "all"}, "ack policy can not be updated"),
                         ({"max_waiting": 11}, "max waiting can not be updated"),
                         ({"mem_storage": True}, "storage type can not be updated"),
                         ({"deliver_policy": "new"}, "deliver policy can not be updated"),
                         ({"deliver_subject": "p"}, "can not update pull consumer to push based")):
        fields = {"durable_name": "u", "ack_policy": "explicit", "max_waiting": 10, **change}
        if "deliver_subject" in change:
            fields.pop("max_waiting")
        err = api_error(check_consumer_update, old, consumer(fields))
        assert (err.err_code, err.description) == (10012, text)
    push = consumer({"durable_name": "u", "deliver_subject": "d1"})
    moved = consumer({"durable_name": "u", "deliver_subject": "d2"})
    check_consumer_update(push, moved)
    assert api_error(check_consumer_update, push, moved, deliver_bound=True).err_code == 10013


def test_workqueue_rules() -> None:
    wq = stream(subjects=["w.>"], retention="workqueue")
    w1 = consumer({"durable_name": "w1", "ack_policy": "explicit"}, wq)
    check_workqueue_consumer(w1, [])
    cases = [
        ({"ack_policy": "all"}, [], 10098),
        ({"ack_policy": "explicit", "deliver_policy": "last"}, [], 10101),
        ({"ack_policy": "explicit"}, [w1], 10099),
        ({"ack_policy": "explicit", "filter_subject": "w.a"}, [w1], 10100),
    ]
    for fields, others, code in cases:
        cfg = consumer(fields, wq)
        assert api_error(check_workqueue_consumer, cfg, others).err_code == code
    a = consumer({"ack_policy": "explicit", "filter_subject": "w.*.a"}, wq)
    b = consumer({"ack_policy": "explicit", "filter_subject": "w.b.*"}, wq)
    assert api_error(check_workqueue_consumer, b, [a]).err_code == 10100
    check_workqueue_consumer(consumer({"ack_policy": "explicit", "filter_subject": "w.c"}, wq),
                             [a])
    assert api_error(consumer, {}, wq).err_code == 10084


# -- parsing ------------------------------------------------------------------------------

@pytest.mark.parametrize("body,text", [
    (b'{"name":"A","max_msgs":"5"}', "json: cannot unmarshal string into Go struct field "
                                     "StreamConfigRequest.max_msgs of type int64"),
    (b'{"name":"A","subjects":"b"}', "json: cannot unmarshal string into Go struct field "
                                     "StreamConfigRequest.subjects of type []string"),
    (b'{"name":"A","sealed":0}', "json: cannot unmarshal number into Go struct field "
                                 "StreamConfigRequest.sealed of type bool"),
    (b'{"name":"A","max_msgs":1.5}', "json: cannot unmarshal number 1.5 into Go struct field "
                                     "StreamConfigRequest.max_msgs of type int64"),
    (b'{"name":"A","first_seq":-1}', "json: cannot unmarshal number -1 into Go struct field "
                                     "StreamConfigRequest.first_seq of type uint64"),
    (b'{"name":"A","max_msg_size":3000000000}',
     "json: cannot unmarshal number 3000000000 into Go struct field "
     "StreamConfigRequest.max_msg_size of type int32"),
    (b'{"name":"F","sources":[{"name":"A","opt_start_time":"bad"}]}',
     'parsing time "bad" as "2006-01-02T15:04:05Z07:00": cannot parse "bad" as "2006"'),
    (b'{"name":"G","retention":null}', 'can not unmarshal "null"'),
    (b'{"name":"A","retention":"bogus"}', 'can not unmarshal "\\"bogus\\""'),
    (b'{"name":"A","storage":"MEMORY"}', 'can not unmarshal "\\"MEMORY\\""'),
    (b'{"name":"A","compression":"S2"}', "unknown compression algorithm"),
    (b"[1]", "json: cannot unmarshal array into Go value of type server.StreamConfigRequest"),
    (b'{"name":"I",}', "invalid character '}' looking for beginning of object key string "
                       "at offset 13"),
    (b"{", "unexpected EOF"),
    (b'{"name":"A","foo":1}', 'json: unknown field "foo"'),
])
def test_stream_parse_errors(body: bytes, text: str) -> None:
    err = api_error(parse_stream_config, body, strict=True)
    assert (err.err_code, err.description) == (10025, "invalid JSON: " + text)


@pytest.mark.parametrize(("body", "text"), [
    ({"name": "S", "allow_batched": True}, 'json: unknown field "allow_batched"'),
    ({"name": "S", "sources": [{"name": "O", "consumer": {"name": "c"}}]},
     'json: unknown field "consumer"'),
])
def test_stream_features_above_api_level_1_are_unknown(body: dict[str, Any], text: str) -> None:
    """Later servers' stream fields are refused as a 2.11 server refuses them, so a client
    learns they do nothing here instead of seeing them echoed."""
    with pytest.raises(E.ApiError) as err:
        parse_stream_config(json.dumps(body).encode(), strict=True)
    assert (err.value.err_code, err.value.description) == (10025, "invalid JSON: " + text)


@pytest.mark.parametrize(("config", "text"), [
    ({"ack_policy": "flow_control"}, "can not unmarshal"),
])
def test_consumer_features_above_api_level_1_are_unknown(config: dict[str, Any],
                                                         text: str) -> None:
    with pytest.raises(E.ApiError) as err:
        parse_consumer_request(json.dumps({"config": config}).encode())
    assert err.value.err_code == 10025 and text in err.value.description
    assert str(next(iter(config.values()))) in err.value.description


def test_parse_leniency() -> None:
    cfg, pedantic = parse_stream_config(b'{"name":"A","foo":1,"subjects":null,"pedantic":true}')
    assert (cfg.name, cfg.subjects, pedantic) == ("A", [], True)
    assert parse_stream_config(b"")[0] == StreamConfig()
    for body, text in ((b'{"config":{"priority_policy":"bogus"}}',
                        'unknown priority policy: "bogus"'),
                       (b'{"config":{},"action":"bogus"}', 'unknown consumer action: "bogus"'),
                       (b'{"config":{"max_deliver":"x"}}',
                        "json: cannot unmarshal string into Go struct field "
                        "CreateConsumerRequest.config.max_deliver of type int")):
        assert api_error(parse_consumer_request, body).description == "invalid JSON: " + text
    assert parse_consumer_request(b'{"stream_name":"S","config":null}').config == ConsumerConfig()


def test_pull_requests() -> None:
    assert parse_pull_request(b"").batch == 1
    assert parse_pull_request(b" 10 ").batch == 10
    assert parse_pull_request(b"junk").batch == 1
    req = parse_pull_request(b'{"batch":5,"expires":1000000000,"no_wait":true}')
    assert (req.batch, req.expires, req.no_wait) == (5, NS, True)
    assert req.dump() == {"expires": NS, "batch": 5, "no_wait": True}
    with pytest.raises(BadPullRequest, match="heartbeat value too large"):
        parse_pull_request(b'{"batch":1,"expires":1000000000,"idle_heartbeat":600000000}')
    with pytest.raises(BadPullRequest):
        parse_pull_request(b'{"batch":')


def test_request_checks() -> None:
    for body in ({"seq": 1, "last_by_subj": "a"}, {"seq": 0}, {"seq": 1, "batch": 2}, {},
                 {"last_by_subj": "a", "next_by_subj": "b"}):
        assert api_error(MsgGetRequest.model_validate(body).check).err_code == 10003
    for body in ({"seq": 1}, {"last_by_subj": "a.>"}, {"seq": 3, "next_by_subj": "a"}):
        MsgGetRequest.model_validate(body).check()
    assert api_error(PurgeRequest(seq=2, keep=1).check).err_code == 10003
    assert PurgeRequest(filter="a").dump() == {"filter": "a"}


def test_names_and_mappings() -> None:
    assert valid_name("ORDERS") and valid_name("KV_x-y")
    for bad in ("", "a.b", "a*", "a>", "a b", "a\tb", "a/b", "a\\b"):
        assert not valid_name(bad)
    assert mapping_error("t.*", "u.{{wildcard(1)}}") is None
    assert mapping_error("t.*", "u.$1") is None
    assert mapping_error("t.*", "u.{{bogus(1)}}") is not None
    assert mapping_error("t.*", "u.$2") is not None


# -- shapes round-trip as nats-server writes them ----------------------------------------

STREAM_INFO = (
    '{"config":{"name":"S","subjects":["a.\\u003e"],"retention":"limits","max_consumers":-1,'
    '"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,'
    '"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,'
    '"compression":"none","allow_direct":true,"mirror_direct":false,"sealed":false,'
    '"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},'
    '"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0",'
    '"_nats.ver":"2.15.1"}},"created":"2026-11-26T13:20:08.120558211Z","state":{"messages":3,'
    '"bytes":139,"first_seq":1,"first_ts":"2026-11-26T13:20:08.123297996Z","last_seq":4,'
    '"last_ts":"2026-11-26T13:20:08.124341929Z","num_subjects":2,"subjects":{"a.1":2,'
    '"a.3":1},"num_deleted":1,"deleted":[2],"consumer_count":0},"cluster":{"leader":'
    '"NAWQ3QSC3M4XA23WZPWA57LWEWNJSRYCCL2MK25T4GLROKO7MAESLK6Z"},"sources":[{"name":"O",'
    '"lag":0,"active":-1}],"ts":"2026-11-26T13:20:08.1317835Z"}'
)
CONSUMER_INFO = (
    '{"stream_name":"S","name":"pin","created":"2026-11-26T13:20:08.132768735Z","config":'
    '{"durable_name":"pin","name":"pin","deliver_policy":"all","ack_policy":"explicit",'
    '"ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,'
    '"max_ack_pending":1000,"num_replicas":0,"priority_groups":["g1"],"priority_policy":'
    '"pinned_client","priority_timeout":120000000000},"delivered":{"consumer_seq":0,'
    '"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,'
    '"num_redelivered":0,"num_waiting":0,"num_pending":3,"ts":"2026-11-26T13:20:08.133478581Z",'
    '"priority_groups":[{"group":"g1","pinned_ts":"0001-01-01T00:00:00Z"}]}'
)
ACCOUNT_INFO = (
    '{"memory":0,"storage":0,"reserved_memory":0,"reserved_storage":0,"streams":2,'
    '"consumers":3,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,'
    '"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,'
    '"storage_max_stream_bytes":-1,"max_bytes_required":false},"api":{"level":5,"total":5,'
    '"errors":0}}'
)


@pytest.mark.parametrize("model,text", [
    (StreamInfo, STREAM_INFO), (ConsumerInfo, CONSUMER_INFO), (AccountInfo, ACCOUNT_INFO),
    (PubAck, '{"stream":"S","domain":"hub","seq":5}'), (PubAck, '{"stream":"S","seq":1}'),
    (StoredMessage, '{"subject":"a.1","seq":1,"hdrs":"TkFUUy8xLjANCkg6IHYNCg0K",'
                    '"data":"aGVsbG8=","time":"2026-11-26T13:20:08.123297996Z"}'),
])
def test_shapes_round_trip(model: Any, text: str) -> None:
    value = model.model_validate_json(text)
    assert value.to_json() == text.encode()
    assert model.model_validate_json(value.model_dump_json()) == value


def test_shape_details() -> None:
    msg = StoredMessage.model_validate_json('{"subject":"a","seq":1,"data":"aGk=",'
                                            '"time":"2024-01-01T00:00:00Z"}')
    assert (msg.data, msg.hdrs) == (b"hi", b"")
    info = StreamInfo()
    assert info.dump()["state"]["first_ts"] == "0001-01-01T00:00:00Z"
    assert response("stream_delete_response", success=True) == {
        "type": "io.nats.jetstream.api.v1.stream_delete_response", "success": True}
    full = stream(subjects=["a.>"], description="d", sources=[{
        "name": "O", "opt_start_time": "2024-01-01T00:00:00.5Z",
        "subject_transforms": [{"src": "o.*", "dest": "x.$1"}]}], metadata={"k": "v"})
    assert StreamConfig.model_validate_json(full.model_dump_json()) == full
