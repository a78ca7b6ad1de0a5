"""JetStream limits, per account and server-wide, with nats-server's errors.

Every test runs against Jetport and against nats-server with the same config; the
expected replies are what nats-server sends.  A stream reserves its ``max_bytes`` against
the account's and the server's memory or storage when it is created (one without
``max_bytes`` counts as 1 byte); publishes are refused once usage is at the limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest

pytestmark = pytest.mark.timeout(60)

T = "io.nats.jetstream.api.v1."
DYNAMIC = {"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1,
           "max_ack_pending": -1, "memory_max_stream_bytes": -1,
           "storage_max_stream_bytes": -1, "max_bytes_required": False}
STORAGE_FULL = {"code": 500, "err_code": 10047,
                "description": "insufficient storage resources available"}
MEMORY_FULL = {"code": 500, "err_code": 10028,
               "description": "insufficient memory resources available"}
MAX_STREAMS = {"code": 400, "err_code": 10027, "description": "maximum number of streams reached"}
MAX_CONSUMERS = {"code": 400, "err_code": 10026, "description": "maximum consumers limit reached"}
MAX_BYTES_REQUIRED = {"code": 400, "err_code": 10113,
                      "description": "account requires a stream config to have max bytes set"}
STREAM_TOO_BIG = {"code": 400, "err_code": 10122,
                  "description": "stream max bytes exceeds account limit max stream bytes"}
ACCOUNT_FULL = {"code": 400, "err_code": 10002,
                "description": "resource limits exceeded for account"}
SERVER_FULL = {"code": 503, "err_code": 10023, "description": "insufficient resources"}
NOT_ENABLED = {"code": 503, "err_code": 10039,
               "description": "JetStream not enabled for account"}


def conf(tmp: Path, target: str, body: str, server_limits: str = "") -> str:
    store = tmp / f"store-{target}"
    return f'jetstream {{\n  store_dir: "{store}"\n  {server_limits}\n}}\n{body}\n'


async def connect(server: Any, user: str | None = None) -> nats.NATS:
    if user is None:
        return await nats.connect(server.url)
    return await nats.connect(server.url, user=user, password=user)


async def api(nc: nats.NATS, subject: str, body: Any = None) -> dict[str, Any]:
    payload = b"" if body is None else json.dumps(body).encode()
    msg = await nc.request("$JS.API." + subject, payload, timeout=5)
    return json.loads(msg.data)


async def create(nc: nats.NATS, name: str, **cfg: Any) -> dict[str, Any]:
    return await api(nc, f"STREAM.CREATE.{name}", {"name": name, **cfg})


async def error_of(nc: nats.NATS, subject: str, body: Any = None) -> dict[str, Any] | None:
    return (await api(nc, subject, body)).get("error")


async def publish_until_refused(nc: nats.NATS, subject: str, payload: bytes,
                                limit: int = 500) -> tuple[int, dict[str, Any]]:
    """Publish until a PubAck carries an error: (messages stored, that reply)."""
    for stored in range(limit):
        reply = json.loads((await nc.request(subject, payload, timeout=5)).data)
        if "error" in reply:
            return stored, reply
    raise AssertionError(f"{limit} publishes all stored")


def usage(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("memory", "storage", "reserved_memory", "reserved_storage", "streams", "consumers")
    return {k: info[k] for k in keys}


# -- server-wide limits, global account ------------------------------------------------

SERVER_LIMITS = "max_mem: 1M, max_file: 2M"


@pytest.mark.differential
async def test_global_account_info_shows_dynamic_limits(launch, tmp_path: Path) -> None:
    server = launch.conf(conf(tmp_path, launch.target, "", SERVER_LIMITS))
    nc = await connect(server)
    try:
        info = await api(nc, "INFO")
        assert info["type"] == T + "account_info_response"
        assert info["limits"] == DYNAMIC
        assert usage(info) == {"memory": 0, "storage": 0, "reserved_memory": 0,
                               "reserved_storage": 0, "streams": 0, "consumers": 0}
        account = await nc.jetstream().account_info()
        assert account.limits.max_memory == -1 and account.limits.max_storage == -1
    finally:
        await nc.close()


@pytest.mark.differential
async def test_server_wide_reservations(launch, tmp_path: Path) -> None:
    server = launch.conf(conf(tmp_path, launch.target, "", SERVER_LIMITS))
    nc = await connect(server)
    try:
        file_cases = [(2_000_001, STORAGE_FULL), (1_500_000, None), (500_001, STORAGE_FULL),
                      (500_000, None), (1, STORAGE_FULL), (-1, STORAGE_FULL)]
        for i, (max_bytes, error) in enumerate(file_cases):
            reply = await create(nc, f"F{i}", subjects=[f"f{i}"], max_bytes=max_bytes)
            assert reply.get("error") == error, (max_bytes, reply)
            if error:
                assert reply == {"type": T + "stream_create_response", "error": error}
        memory_cases = [(1_000_001, MEMORY_FULL), (600_000, None), (400_001, MEMORY_FULL)]
        for i, (max_bytes, error) in enumerate(memory_cases):
            reply = await create(nc, f"M{i}", subjects=[f"m{i}"], storage="memory",
                                 max_bytes=max_bytes)
            assert reply.get("error") == error, (max_bytes, reply)
        info = await api(nc, "INFO")
        assert usage(info) == {"memory": 0, "storage": 0, "reserved_memory": 600_000,
                               "reserved_storage": 2_000_000, "streams": 3, "consumers": 0}
        # A create that names its storage type is first checked as sent, against a server
        # reservation that counts the stream itself: then even an identical create is
        # refused once the server is fully reserved.
        f1 = {"name": "F1", "subjects": ["f1"], "max_bytes": 1_500_000}
        assert await error_of(nc, "STREAM.CREATE.F1", f1) is None
        assert await error_of(nc, "STREAM.CREATE.F1", f1 | {"storage": "file"}) == STORAGE_FULL
        # An update reserves only what it adds.
        m1 = {"name": "M1", "subjects": ["m1"], "storage": "memory"}
        assert await error_of(nc, "STREAM.UPDATE.M1", m1 | {"max_bytes": 1_000_001}) == MEMORY_FULL
        assert await error_of(nc, "STREAM.UPDATE.M1", m1 | {"max_bytes": 1_000_000}) is None
        assert (await api(nc, "INFO"))["reserved_memory"] == 1_000_000
        assert await error_of(nc, "STREAM.UPDATE.M1", m1 | {"max_bytes": 10}) is None
        assert (await api(nc, "INFO"))["reserved_memory"] == 10
        # nats-py sees the same error.
        js = nc.jetstream()
        with pytest.raises(nats.js.errors.APIError) as info_err:
            await js.add_stream(name="BIG", subjects=["big"], max_bytes=3_000_000)
        assert info_err.value.err_code == 10047
        assert info_err.value.description == STORAGE_FULL["description"]
    finally:
        await nc.close()


@pytest.mark.differential
@pytest.mark.parametrize(("storage", "record", "stored"), [("memory", 1017, 98 + 1),
                                                          ("file", 1031, 193 + 1)])
async def test_server_wide_usage_refuses_publishes(launch, tmp_path: Path, storage: str,
                                                   record: int, stored: int) -> None:
    """The server stores while its usage is not yet over the maximum (so it may end up a
    message over), then refuses with 10023 until space is freed."""
    server = launch.conf(conf(tmp_path, launch.target, "", "max_mem: 100K, max_file: 200K"))
    nc = await connect(server)
    try:
        assert "error" not in await create(nc, "P", subjects=["p"], storage=storage)
        count, reply = await publish_until_refused(nc, "p", b"x" * 1000)
        assert reply == {"error": SERVER_FULL, "stream": "P", "seq": 0}
        assert count == stored
        info = await api(nc, "INFO")
        assert info["memory" if storage == "memory" else "storage"] == stored * record
        await api(nc, "STREAM.PURGE.P")
        ack = json.loads((await nc.request("p", b"x", timeout=5)).data)
        assert ack == {"stream": "P", "seq": stored + 1}
    finally:
        await nc.close()


# -- per-account limits ------------------------------------------------------------------

ACCOUNTS = """
accounts {
  A: { users: [{user: a, password: a}],
       jetstream: { max_mem: 1000, max_file: 2000, max_streams: 3, max_consumers: 2,
                    max_ack_pending: 50 } }
  B: { users: [{user: b, password: b}] }
  C: { users: [{user: c, password: c}],
       jetstream: { max_bytes_required: true, mem_max_stream_bytes: 5000,
                    disk_max_stream_bytes: 6000 } }
  D: { users: [{user: d, password: d}], jetstream: enabled }
}
"""


@pytest.fixture
def accounts_server(launch, tmp_path: Path) -> Any:
    return launch.conf(conf(tmp_path, launch.target, ACCOUNTS, SERVER_LIMITS))


@pytest.mark.differential
async def test_info_shows_each_accounts_limits(accounts_server: Any) -> None:
    expected = {
        "a": DYNAMIC | {"max_memory": 1000, "max_storage": 2000, "max_streams": 3,
                        "max_consumers": 2, "max_ack_pending": 50},
        "c": DYNAMIC | {"max_bytes_required": True, "memory_max_stream_bytes": 5000,
                        "storage_max_stream_bytes": 6000},
        "d": DYNAMIC,
    }
    for user, limits in expected.items():
        nc = await connect(accounts_server, user)
        try:
            info = await api(nc, "INFO")
            assert info["limits"] == limits, user
            assert info["type"] == T + "account_info_response"
        finally:
            await nc.close()


NOT_ENABLED_REPLIES: list[tuple[str, dict[str, Any]]] = [
    ("INFO", {"type": T + "account_info_response", "error": NOT_ENABLED}),
    ("STREAM.CREATE.X", {"type": T + "stream_create_response", "error": NOT_ENABLED}),
    ("STREAM.UPDATE.X", {"type": T + "stream_update_response", "error": NOT_ENABLED}),
    ("STREAM.INFO.X", {"type": T + "stream_info_response", "error": NOT_ENABLED,
                       "total": 0, "offset": 0, "limit": 0}),
    ("STREAM.DELETE.X", {"type": T + "stream_delete_response", "error": NOT_ENABLED}),
    ("STREAM.PURGE.X", {"type": T + "stream_purge_response", "error": NOT_ENABLED,
                        "purged": 0}),
    ("STREAM.NAMES", {"type": T + "stream_names_response", "error": NOT_ENABLED,
                      "total": 0, "offset": 0, "limit": 0, "streams": None}),
    ("STREAM.LIST", {"type": T + "stream_list_response", "error": NOT_ENABLED,
                     "total": 0, "offset": 0, "limit": 0, "streams": []}),
    ("STREAM.MSG.GET.X", {"type": T + "stream_msg_get_response", "error": NOT_ENABLED}),
    ("STREAM.MSG.DELETE.X", {"type": T + "stream_msg_delete_response", "error": NOT_ENABLED}),
    ("CONSUMER.CREATE.X", {"type": T + "consumer_create_response", "error": NOT_ENABLED}),
    ("CONSUMER.CREATE.X.c.f", {"type": T + "consumer_create_response", "error": NOT_ENABLED}),
    ("CONSUMER.DURABLE.CREATE.X.c",
     {"type": T + "consumer_create_response", "error": NOT_ENABLED}),
    ("CONSUMER.INFO.X.c", {"type": T + "consumer_info_response", "error": NOT_ENABLED}),
    ("CONSUMER.DELETE.X.c", {"type": T + "consumer_delete_response", "error": NOT_ENABLED}),
    ("CONSUMER.NAMES.X", {"type": T + "consumer_names_response", "error": NOT_ENABLED,
                          "total": 0, "offset": 0, "limit": 0, "consumers": []}),
    ("CONSUMER.LIST.X", {"type": T + "consumer_list_response", "error": NOT_ENABLED,
                         "total": 0, "offset": 0, "limit": 0, "consumers": []}),
]


@pytest.mark.differential
async def test_account_without_jetstream(accounts_server: Any) -> None:
    nc = await connect(accounts_server, "b")
    try:
        for subject, expected in NOT_ENABLED_REPLIES:
            assert await api(nc, subject) == expected, subject
        # consumer creates parse their body first, CONSUMER.INFO wants none
        reply = await api(nc, "CONSUMER.CREATE.X", {"name": "X"})
        assert reply["error"] == {"code": 400, "err_code": 10025,
                                  "description": 'invalid JSON: json: unknown field "name"'}
        assert (await api(nc, "CONSUMER.INFO.X.c", {"x": 1}))["error"] == {
            "code": 400, "err_code": 10038, "description": "expected an empty request payload"}
        assert (await api(nc, "STREAM.CREATE.X", {"name": "X"}))["error"] == NOT_ENABLED
        # Pull requests and direct gets have no responder at all.
        for subject in ("$JS.API.CONSUMER.MSG.NEXT.X.c", "$JS.API.DIRECT.GET.X"):
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request(subject, b"", timeout=2)
        with pytest.raises(nats.js.errors.ServiceUnavailableError) as info:
            await nc.jetstream().account_info()
        assert info.value.err_code == 10039
    finally:
        await nc.close()


@pytest.mark.differential
async def test_max_streams_and_consumers(accounts_server: Any) -> None:
    nc = await connect(accounts_server, "a")
    try:
        for name in ("S0", "S1", "S2"):
            assert "error" not in await create(nc, name, subjects=[name.lower()])
        assert (await create(nc, "S3", subjects=["s3"])).get("error") == MAX_STREAMS
        # the count does not include the stream itself: an identical create still works,
        # and the stream count comes before the config checks
        assert "error" not in await create(nc, "S0", subjects=["s0"])
        assert (await create(nc, "S3", subjects=["s3.>.x"])).get("error") == MAX_STREAMS
        await api(nc, "STREAM.DELETE.S2")
        # a stream may not allow more consumers than the account
        assert (await create(nc, "S2", subjects=["s2"], max_consumers=3)).get(
            "error") == MAX_CONSUMERS
        assert "error" not in await create(nc, "S2", subjects=["s2"], max_consumers=2)
        # the account's consumer limit applies to each stream
        for stream in ("S0", "S1"):
            for i in range(2):
                reply = await api(nc, f"CONSUMER.CREATE.{stream}.c{i}",
                                  {"stream_name": stream, "config": {"name": f"c{i}"}})
                assert "error" not in reply, reply
            reply = await api(nc, f"CONSUMER.CREATE.{stream}.c2",
                              {"stream_name": stream, "config": {"name": "c2"}})
            assert reply == {"type": T + "consumer_create_response", "error": MAX_CONSUMERS}
        assert (await api(nc, "INFO"))["consumers"] == 4
        update = {"name": "S1", "subjects": ["s1"], "max_consumers": 5}
        assert await error_of(nc, "STREAM.UPDATE.S1", update) == MAX_CONSUMERS
    finally:
        await nc.close()


@pytest.mark.differential
async def test_max_bytes_rules(accounts_server: Any) -> None:
    nc = await connect(accounts_server, "c")
    try:
        cases = [("file", None, MAX_BYTES_REQUIRED), ("file", 0, MAX_BYTES_REQUIRED),
                 ("file", -1, MAX_BYTES_REQUIRED), ("memory", 5001, STREAM_TOO_BIG),
                 ("file", 6001, STREAM_TOO_BIG)]
        for storage, max_bytes, error in cases:
            cfg: dict[str, Any] = {"subjects": ["q"], "storage": storage}
            if max_bytes is not None:
                cfg["max_bytes"] = max_bytes
            reply = await create(nc, "Q", **cfg)
            assert reply == {"type": T + "stream_create_response", "error": error}, cfg
        # subjects are checked first, replicas after
        reply = await create(nc, "Q", subjects=["q.>.x"])
        assert reply["error"] == {"code": 500, "err_code": 10052, "description": "invalid subject"}
        assert (await create(nc, "Q", subjects=["q"], num_replicas=3))["error"] == (
            MAX_BYTES_REQUIRED)
        assert "error" not in await create(nc, "F", subjects=["f"], max_bytes=6000)
        assert "error" not in await create(nc, "M", subjects=["m"], storage="memory",
                                           max_bytes=5000)
        update = {"name": "F", "subjects": ["f"]}
        assert await error_of(nc, "STREAM.UPDATE.F", update | {"max_bytes": 6001}) == (
            STREAM_TOO_BIG)
        assert await error_of(nc, "STREAM.UPDATE.F", update) == MAX_BYTES_REQUIRED
        assert await error_of(nc, "STREAM.UPDATE.F", update | {"max_bytes": 10}) is None
    finally:
        await nc.close()


@pytest.mark.differential
async def test_account_reservations_and_usage(accounts_server: Any) -> None:
    nc = await connect(accounts_server, "a")
    try:
        assert "error" not in await create(nc, "X", subjects=["x"], max_bytes=1200)
        assert (await create(nc, "Y", subjects=["y"], max_bytes=801)).get("error") == STORAGE_FULL
        assert "error" not in await create(nc, "Y", subjects=["y"])
        assert (await create(nc, "M", subjects=["m"], storage="memory",
                             max_bytes=1001)).get("error") == MEMORY_FULL
        assert "error" not in await create(nc, "M", subjects=["m"], storage="memory")
        # Usage is checked per message: each file record of these is 81 bytes, each
        # memory record 67, and the message that would go over the limit is refused.
        count, reply = await publish_until_refused(nc, "y", b"x" * 50)
        assert (count, reply) == (24, {"error": ACCOUNT_FULL, "stream": "Y", "seq": 0})
        count, reply = await publish_until_refused(nc, "m", b"x" * 50)
        assert (count, reply) == (14, {"error": ACCOUNT_FULL, "stream": "M", "seq": 0})
        assert usage(await api(nc, "INFO")) == {
            "memory": 938, "storage": 1944, "reserved_memory": 0, "reserved_storage": 1200,
            "streams": 3, "consumers": 0}
        # reservations count max_bytes, not what is stored
        await api(nc, "STREAM.DELETE.M")
        assert "error" not in await create(nc, "Z", subjects=["z"], max_bytes=800)
        update = {"name": "X", "subjects": ["x"]}
        assert await error_of(nc, "STREAM.UPDATE.X", update | {"max_bytes": 1201}) == (
            STORAGE_FULL)
        assert await error_of(nc, "STREAM.UPDATE.X", update | {"max_bytes": 1100}) is None
    finally:
        await nc.close()


@pytest.mark.differential
async def test_max_ack_pending(accounts_server: Any) -> None:
    nc = await connect(accounts_server, "a")
    try:
        await create(nc, "N", subjects=["n"])
        await create(nc, "L", subjects=["l"], consumer_limits={"max_ack_pending": 30})

        async def consumer(stream: str, **cfg: Any) -> Any:
            reply = await api(nc, f"CONSUMER.CREATE.{stream}",
                              {"stream_name": stream, "config": {"ack_policy": "explicit", **cfg}})
            if "error" in reply:
                return reply["error"]["description"]
            await api(nc, f"CONSUMER.DELETE.{stream}.{reply['name']}")
            return reply["config"].get("max_ack_pending")

        excess = "consumer max ack pending exceeds system limit of {}"
        assert await consumer("N") == 50
        assert await consumer("N", max_ack_pending=40) == 40
        assert await consumer("N", max_ack_pending=51) == excess.format(50)
        assert await consumer("N", max_ack_pending=-1) == -1
        assert await consumer("N", ack_policy="none", deliver_subject="dn") is None
        # the account's cap is checked before the stream's
        assert await consumer("L") == 30
        assert await consumer("L", max_ack_pending=40) == excess.format(30)
        assert await consumer("L", max_ack_pending=60) == excess.format(50)
        js = nc.jetstream()
        info = await js.add_consumer("N", durable_name="d", ack_policy="explicit")
        assert info.config.max_ack_pending == 50
    finally:
        await nc.close()


@pytest.mark.differential
async def test_server_limits_bind_all_accounts(launch, tmp_path: Path) -> None:
    body = """
accounts {
  A: { users: [{user: a, password: a}], jetstream: { max_mem: 1000 } }
  D: { users: [{user: d, password: d}], jetstream: enabled }
}
"""
    server = launch.conf(conf(tmp_path, launch.target, body,
                              "max_mem: 100K, max_file: 200K"))
    a, d = await connect(server, "a"), await connect(server, "d")
    try:
        # what one account reserves, the others can not
        assert "error" not in await create(d, "R", subjects=["r"], max_bytes=200_000)
        assert (await create(a, "R", subjects=["r"], max_bytes=1)).get("error") == STORAGE_FULL
        assert "error" not in await create(a, "M", subjects=["m"], storage="memory")
        assert "error" not in await create(d, "M", subjects=["m"], storage="memory")
        count, reply = await publish_until_refused(d, "m", b"x" * 1000)
        assert (count, reply) == (99, {"error": SERVER_FULL, "stream": "M", "seq": 0})
        # a full server refuses before the account's own limit is looked at
        ack = json.loads((await a.request("m", b"x" * 2000, timeout=5)).data)
        assert ack == {"error": SERVER_FULL, "stream": "M", "seq": 0}
        await api(d, "STREAM.PURGE.M")
        # Until an account has stored something its own limits are not checked, so its
        # first message may exceed them; the next is refused.
        ack = json.loads((await a.request("m", b"x" * 2000, timeout=5)).data)
        assert ack == {"stream": "M", "seq": 1}
        ack = json.loads((await a.request("m", b"x", timeout=5)).data)
        assert ack == {"error": ACCOUNT_FULL, "stream": "M", "seq": 0}
    finally:
        await a.close()
        await d.close()
