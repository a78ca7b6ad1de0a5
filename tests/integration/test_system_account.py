"""The system account reads server and per-account stats over NATS; others cannot."""

from __future__ import annotations

import json

import nats
import nats.errors
import pytest

CONF = """
accounts {
  A { users: [{user: a, password: pa}] }
  B { users: [{user: b, password: pb}] }
  SYS { users: [{user: sys, password: ps}] }
}
system_account: SYS
"""


async def _request(nc, subject: str) -> dict:
    msg = await nc.request(subject, b"", timeout=2)
    return json.loads(msg.data)


@pytest.mark.differential
async def test_account_stats_for_the_system_account(launch):
    server = launch.conf(CONF)
    a1 = await nats.connect(server.url, user="a", password="pa")
    a2 = await nats.connect(server.url, user="a", password="pa")
    await a1.subscribe("x.>")
    await a1.publish("x.1", b"hello")
    await a1.flush()
    sys_nc = await nats.connect(server.url, user="sys", password="ps")
    try:
        connz = await _request(sys_nc, "$SYS.REQ.ACCOUNT.A.CONNZ")
        assert connz["data"]["num_connections"] == 2
        assert {c["cid"] for c in connz["data"]["connections"]} == {
            a1._client_id, a2._client_id}

        statz = await _request(sys_nc, "$SYS.REQ.ACCOUNT.A.STATZ")
        (acc,) = statz["data"]["account_statz"]
        assert (acc["acc"], acc["conns"], acc["total_conns"]) == ("A", 2, 2)
        assert acc["received"]["msgs"] >= 1

        every = await _request(sys_nc, "$SYS.REQ.ACCOUNT.PING.STATZ")
        names = {s["acc"] for s in every["data"]["account_statz"]}
        assert {"A", "SYS"} <= names and "B" not in names

        accountz = await _request(sys_nc, "$SYS.REQ.SERVER.PING.ACCOUNTZ")
        assert accountz["data"]["system_account"] == "SYS"
        assert {"A", "B", "SYS", "$G"} <= set(accountz["data"]["accounts"])

        with pytest.raises(nats.errors.NoRespondersError):
            await a1.request("$SYS.REQ.ACCOUNT.A.CONNZ", b"", timeout=1)
    finally:
        for nc in (a1, a2, sys_nc):
            await nc.close()
