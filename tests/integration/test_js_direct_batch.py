"""Batched DIRECT.GET (``batch`` from a sequence, ``multi_last``), on Jetport and
nats-server from the same client code: every message with its pending count and the
sequence sent before it, then the end-of-batch status."""

from __future__ import annotations

import json
from typing import Any

import nats
import pytest
from servers import ServerProcess

pytestmark = pytest.mark.timeout(60)


def m(data: str, subject: str, seq: int, pending: int, last: int,
      **extra: str) -> tuple[str, dict[str, str]]:
    return data, {**extra, "Nats-Subject": subject, "Nats-Sequence": str(seq),
                  "Nats-Num-Pending": str(pending), "Nats-Last-Sequence": str(last)}


def eob(pending: int, last: int, up_to: int = 0) -> tuple[str, dict[str, str]]:
    headers = {"Status": "204", "Description": "EOB", "Nats-Num-Pending": str(pending),
               "Nats-Last-Sequence": str(last)}
    if up_to:
        headers["Nats-UpTo-Sequence"] = str(up_to)
    return "", headers


def status(code: str, text: str) -> tuple[str, dict[str, str]]:
    return "", {"Status": code, "Description": text}


CASES: list[tuple[dict[str, Any], list[tuple[str, dict[str, str]]]]] = [
    ({"seq": 1, "batch": 2}, [m("m0", "s.0", 1, 3, 0),
                              m("m2", "s.0", 3, 2, 1, X="2"), eob(2, 3)]),
    ({"seq": 3, "batch": 1}, [m("m2", "s.0", 3, 2, 0, X="2"), eob(2, 3)]),
    ({"seq": 1, "batch": 10, "max_bytes": 30}, [
        m("m0", "s.0", 1, 3, 0), m("m2", "s.0", 3, 2, 1, X="2"), m("m3", "s.1", 4, 1, 3),
        eob(1, 4)]),
    ({"next_by_subj": "s.1", "seq": 1, "batch": 5}, [
        m("m3", "s.1", 4, 0, 0), eob(0, 4)]),
    ({"multi_last": ["s.>"]}, [m("m3", "s.1", 4, 1, 0), m("m4", "s.0", 5, 0, 4),
                               eob(0, 5, 5)]),
    ({"multi_last": ["s.>"], "batch": 1}, [m("m3", "s.1", 4, 1, 0), eob(1, 4, 5)]),
    ({"multi_last": ["s.0", "s.1"], "up_to_seq": 1}, [m("m0", "s.0", 1, 0, 0),
                                                      eob(0, 1, 1)]),
    ({"seq": 1, "batch": -1}, [eob(4, 0)]),
    ({"seq": 99, "batch": 2}, [status("404", "Message Not Found")]),
    ({"next_by_subj": "zz", "batch": 2}, [status("404", "Message Not Found")]),
    ({"multi_last": ["zz"]}, [status("404", "No Results")]),
    ({"batch": 2}, [status("408", "Empty Request")]),
    ({"multi_last": []}, [status("408", "Empty Request")]),
]


@pytest.mark.differential
async def test_batched_direct_gets(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await nc.request("$JS.API.STREAM.CREATE.S",
                     b'{"name":"S","subjects":["s.>"],"allow_direct":true}', timeout=2)
    for i in range(5):
        await nc.request(f"s.{i % 2}", f"m{i}".encode(), timeout=2,
                         headers={"X": "2"} if i == 2 else None)
    await nc.request("$JS.API.STREAM.MSG.DELETE.S", b'{"seq":2}', timeout=2)
    for body, expected in CASES:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, max_msgs=len(expected))
        await nc.publish("$JS.API.DIRECT.GET.S", json.dumps(body).encode(), reply=inbox)
        got = []
        for _ in expected:
            msg = await sub.next_msg(2)
            headers = {getattr(k, "value", k): v for k, v in (msg.headers or {}).items()}
            headers.pop("Nats-Stream", None)
            headers.pop("Nats-Time-Stamp", None)
            got.append((msg.data.decode(), headers))
        assert got == expected, body
    await nc.close()
