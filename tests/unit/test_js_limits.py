"""An account's ``jetstream`` config value read as nats-server reads it, and the limit rules."""

from __future__ import annotations

import pytest

from jetport.core.config.file import parse
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.limits import (
    account_limits_from_conf,
    consumers_cap,
    publish_error,
    reservation_error,
)
from jetport.core.jetstream.models import JetStreamAccountLimits


def limits_of(block: str) -> JetStreamAccountLimits | None:
    """The limits of account A in ``accounts { A { jetstream: <block> } }``."""
    conf = parse("accounts { A { jetstream: " + block + " } }")
    return account_limits_from_conf(conf["accounts"]["A"]["jetstream"])


@pytest.mark.parametrize("word", ["enabled", "enable", "ENABLED", "Enable", "true", "yes", "on"])
def test_enabled_means_dynamic_limits(word: str) -> None:
    assert limits_of(word) == JetStreamAccountLimits()
    assert JetStreamAccountLimits().model_dump() == {
        "max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1,
        "max_ack_pending": -1, "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1,
        "max_bytes_required": False,
    }


@pytest.mark.parametrize("word", ["disabled", "disable", "DISABLED", "false", "no", "off"])
def test_disabled_means_no_jetstream(word: str) -> None:
    assert limits_of(word) is None


@pytest.mark.parametrize(("key", "field"), [
    ("max_memory", "max_memory"), ("max_mem", "max_memory"), ("mem", "max_memory"),
    ("memory", "max_memory"), ("MAX_MEM", "max_memory"),
    ("max_store", "max_storage"), ("max_file", "max_storage"), ("max_disk", "max_storage"),
    ("store", "max_storage"), ("disk", "max_storage"),
    ("max_streams", "max_streams"), ("streams", "max_streams"),
    ("max_consumers", "max_consumers"), ("consumers", "max_consumers"),
    ("mem_max_stream_bytes", "memory_max_stream_bytes"),
    ("memory_max_stream_bytes", "memory_max_stream_bytes"),
    ("disk_max_stream_bytes", "storage_max_stream_bytes"),
    ("store_max_stream_bytes", "storage_max_stream_bytes"),
    ("max_ack_pending", "max_ack_pending"),
])
def test_every_key_spelling(key: str, field: str) -> None:
    limits = limits_of(f"{{ {key}: 7 }}")
    assert limits == JetStreamAccountLimits(**{field: 7})


@pytest.mark.parametrize("key", ["max_bytes_required", "max_stream_bytes", "max_bytes"])
def test_max_bytes_required_spellings(key: str) -> None:
    assert limits_of(f"{{ {key}: true }}") == JetStreamAccountLimits(max_bytes_required=True)
    assert limits_of(f"{{ {key}: false }}") == JetStreamAccountLimits()


def test_a_block_sets_only_what_it_names() -> None:
    limits = limits_of("{ max_mem: 1M, max_file: 2GB, max_streams: 10, max_consumers: 20,"
                       " max_bytes_required: true, mem_max_stream_bytes: 1K,"
                       " disk_max_stream_bytes: 1KB, max_ack_pending: 100 }")
    assert limits == JetStreamAccountLimits(
        max_memory=1_000_000, max_storage=2 * 1024**3, max_streams=10, max_consumers=20,
        max_ack_pending=100, memory_max_stream_bytes=1000, storage_max_stream_bytes=1024,
        max_bytes_required=True)
    assert limits_of("{}") == JetStreamAccountLimits()


def test_plain_dicts_and_python_values() -> None:
    assert account_limits_from_conf(True) == JetStreamAccountLimits()
    assert account_limits_from_conf(False) is None
    assert account_limits_from_conf({"Streams": 3}) == JetStreamAccountLimits(max_streams=3)


def test_variables_are_not_fields() -> None:
    conf = parse("accounts { A { jetstream: { LIMIT: 5, max_streams: $LIMIT } } }")
    assert account_limits_from_conf(conf["accounts"]["A"]["jetstream"]) == JetStreamAccountLimits(
        max_streams=5)


@pytest.mark.parametrize(("block", "message"), [
    ("maybe", "Expected 'enabled' or 'disabled' for string value, got 'maybe'"),
    ("5", "Expected map, bool or string to define JetStream, got int64"),
    ("[1]", "Expected map, bool or string to define JetStream, got []interface {}"),
    ('{ max_mem: "1M" }', 'Expected a parseable size for "max_mem", got 1M'),
    ("{ max_streams: 1.5 }", 'Expected a parseable size for "max_streams", got 1.5'),
    ("{ max_consumers: true }", 'Expected a parseable size for "max_consumers", got True'),
    ("{ max_bytes: yes_please }", 'Expected a parseable bool for "max_bytes", got yes_please'),
    ("{ max_bytes_required: 1 }", 'Expected a parseable bool for "max_bytes_required", got 1'),
    ("{ bogus: 1 }", 'unknown field "bogus"'),
])
def test_bad_values(block: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        limits_of(block)
    assert message in str(info.value)


def test_every_problem_is_reported() -> None:
    with pytest.raises(ValueError) as info:
        limits_of('{ bogus: 1, max_bytes: "yes" }')
    assert 'unknown field "bogus"' in str(info.value)
    assert 'Expected a parseable bool for "max_bytes", got yes' in str(info.value)


# -- the rules -------------------------------------------------------------------------


def test_reservation_counts_a_stream_without_max_bytes_as_one_byte() -> None:
    def check(add: int, **kw: int) -> E.ApiError | None:
        args = {"account_max": -1, "account_reserved": 0, "server_max": -1,
                "server_reserved": 0} | kw
        return reservation_error("file", add, **args)

    assert check(10**12) is None
    assert check(1000, account_max=1000) is None
    assert check(1001, account_max=1000) == E.storage_resources_exceeded()
    assert check(-1, account_max=1000, account_reserved=1000) == E.storage_resources_exceeded()
    assert check(0, account_max=1000, account_reserved=1000) is None
    assert check(500, server_max=1000, server_reserved=500) is None
    assert check(501, server_max=1000, server_reserved=500) == E.storage_resources_exceeded()
    assert check(-1, server_max=0) == E.storage_resources_exceeded()
    assert reservation_error("memory", 2, account_max=1, account_reserved=0, server_max=-1,
                             server_reserved=0) == E.memory_resources_exceeded()


def test_publish_refusals() -> None:
    def check(size: int, **kw: int) -> E.ApiError | None:
        args = {"account_max": -1, "account_used": 0, "server_max": -1, "server_used": 0} | kw
        return publish_error(size, **args)

    assert check(10**9) is None
    assert check(62, account_max=1000, account_used=938) is None
    assert check(67, account_max=1000, account_used=938) == E.account_resources_exceeded()
    # the server refuses only once it is already over
    assert check(10**6, server_max=100, server_used=100) is None
    assert check(1, server_max=100, server_used=101) == E.insufficient_resources()
    assert check(1, server_max=100, server_used=101, account_max=0) == E.insufficient_resources()


def test_consumers_cap() -> None:
    assert consumers_cap(0, JetStreamAccountLimits()) == -1
    assert consumers_cap(-1, JetStreamAccountLimits(max_consumers=2)) == 2
    assert consumers_cap(5, JetStreamAccountLimits(max_consumers=2)) == 2
    assert consumers_cap(1, JetStreamAccountLimits(max_consumers=2)) == 1
    assert consumers_cap(5, JetStreamAccountLimits()) == 5
