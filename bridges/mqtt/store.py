"""Where the MQTT door keeps what must outlive a connection or a restart: JetStream.

Three streams per account, created on first use through ``$JS.API`` like any client
would, so another engine can stand in for the core's:

- ``$MQTT_sess``: one record per persistent session (``$MQTT.sess.<id hash>``, last
  one kept): its subscriptions and the QoS 2 packet ids received but not released.
- ``$MQTT_rmsgs``: retained messages (``$MQTT.rmsgs.<subject>``, last one kept).
- ``$MQTT_queue``: QoS 1/2 messages owed to persistent sessions, one subject per
  session (``$MQTT.q.<id hash>``), deleted as the client acknowledges them.

A session is then a record plus a subject in a shared stream — no consumer per
subscription — so thousands of idle sessions cost a few objects each.

With a JetStream domain (``mqtt { js_domain }``), the streams live in that domain, such
as the cluster of a leaf node hub, with ``stream_replicas`` copies: every hub linked to
it shares the sessions, queues and retained messages.  Requests then fail at once when
the domain cannot be reached, rather than by timing out.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from jetport.core.headers import get as get_header
from jetport.core.headers import parse as parse_headers
from jetport.core.log import log
from jetport.core.requester import NoResponders, Reply, Requester, RequestTimeout

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub
    from jetport.core.jetstream.models import StoredMessage

#: Reply subjects of the door's own JetStream requests and PubAcks (nats-server's).
REPLY_PREFIX = b"$MQTT.JSA."
SESSIONS = "$MQTT_sess"
RETAINED = "$MQTT_rmsgs"
QUEUE = "$MQTT_queue"
_STREAMS: dict[str, dict[str, Any]] = {
    SESSIONS: {"subjects": ["$MQTT.sess.>"], "max_msgs_per_subject": 1},
    RETAINED: {"subjects": ["$MQTT.rmsgs.>"], "max_msgs_per_subject": 1},
    QUEUE: {"subjects": ["$MQTT.q.>"]},
}


#: How often, and how far apart, a store write is tried while nobody listens yet.
INTEREST_TRIES = 20
INTEREST_WAIT = 0.1


class StoreUnavailable(Exception):
    """The account has no JetStream (or it did not answer)."""


def _status(hdr: bytes | None) -> int:
    """The status a header block opens with (``NATS/1.0 204 EOB``); 0 for a message."""
    line = (hdr or b"").split(b"\r\n", 1)[0]
    code = line[9:12]
    return int(code) if line.startswith(b"NATS/1.0 ") and code.isdigit() else 0


def _ends_batch(replies: list[Reply]) -> bool:
    return _status(replies[-1][1]) != 0


def _session_record(subject: str, data: bytes) -> tuple[str, dict[str, Any]] | None:
    """(token, record) of a message in the sessions stream; None if it holds none."""
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return (subject[len("$MQTT.sess."):], record) if isinstance(record, dict) else None


def session_token(client_id: str) -> str:
    """A subject-safe, fixed-length token for a client id."""
    digest = hashlib.sha256(client_id.encode()).digest()[:15]
    return base64.b32encode(digest).decode().rstrip("=")


class MqttStore:
    """One account's MQTT streams, reached through the core's request/reply."""

    def __init__(self, hub: Hub, account: Account, domain: str = "",
                 replicas: int = 1, *, no_responders: bool = False) -> None:
        self.requester = Requester(hub, account, "$MQTT", prefix=REPLY_PREFIX,
                                   no_responders=no_responders or bool(domain))
        self.api = f"$JS.{domain}.API." if domain else "$JS.API."
        self.replicas = replicas
        self._ready = False

    async def ready(self) -> None:
        """Create the streams once; StoreUnavailable when JetStream is off."""
        if self._ready:
            return
        for name, extra in _STREAMS.items():
            config = {"name": name, "storage": "file", "retention": "limits",
                      "allow_direct": True, "num_replicas": self.replicas, **extra}
            try:
                answer = await self.requester.request_json(
                    f"{self.api}STREAM.CREATE.{name}", config)
            except RequestTimeout as exc:
                raise StoreUnavailable("JetStream did not answer") from exc
            error = (answer or {}).get("error")
            if error and error.get("err_code") != 10058:  # already exists: fine
                raise StoreUnavailable(error.get("description", "JetStream error"))
        self._ready = True

    async def _publish(self, subject: str, payload: bytes, hdr: bytes | None = None) -> int:
        """Store one message; its sequence once committed."""
        for attempt in range(INTEREST_TRIES):
            try:
                _, _, data = await self.requester.request(subject.encode(), payload, hdr)
                break
            except NoResponders:
                # A stream just made in another domain is heard of over the link a moment
                # later; a domain that cannot be reached stays silent.
                if attempt == INTEREST_TRIES - 1:
                    raise
                await asyncio.sleep(INTEREST_WAIT)
        ack = json.loads(data)
        if "error" in ack:
            raise StoreUnavailable(ack["error"].get("description", "store error"))
        return int(ack["seq"])

    async def _get(self, stream: str, body: dict[str, Any]) -> StoredMessage | None:
        answer = await self.requester.request_json(f"{self.api}STREAM.MSG.GET.{stream}", body)
        msg = (answer or {}).get("message")
        if not msg:
            return None
        # Imported here: the door's module loads (to ask whether it is wanted) in hubs
        # without MQTT, and the JetStream models cost 10 MB of memory to build.
        from jetport.core.jetstream.models import StoredMessage

        return StoredMessage.model_validate(msg)

    async def _scan(self, stream: str, subject: str) -> list[StoredMessage]:
        out: list[StoredMessage] = []
        seq = 1
        while True:
            msg = await self._get(stream, {"seq": seq, "next_by_subj": subject})
            if msg is None:
                return out
            out.append(msg)
            seq = msg.seq + 1

    async def _direct_batch(self, stream: str, body: dict[str, Any]
                            ) -> tuple[list[Reply], int]:
        """A batched DIRECT.GET: the messages (the stored subject and sequence in their
        headers), and how many more match after them; none for a missing stream."""
        replies = await self.requester.gather(f"{self.api}DIRECT.GET.{stream}".encode(),
                                              json.dumps(body).encode(), _ends_batch)
        *msgs, end = replies
        if _status(end[1]) != 204:  # 404: nothing matched; 503: no such stream
            return [], 0
        return msgs, int(get_header(end[1], b"Nats-Num-Pending") or 0)

    async def _purge(self, stream: str, subject: str) -> None:
        await self.requester.request_json(f"{self.api}STREAM.PURGE.{stream}", {"filter": subject})

    # -- sessions ---------------------------------------------------------------------

    async def load_session(self, token: str) -> dict[str, Any] | None:
        msg = await self._get(SESSIONS, {"last_by_subj": f"$MQTT.sess.{token}"})
        return json.loads(msg.data) if msg is not None and msg.data else None

    async def session_records(self) -> list[tuple[str, dict[str, Any]]]:
        """Every stored session: (token, record)."""
        found = (_session_record(msg.subject, msg.data)
                 for msg in await self._scan(SESSIONS, "$MQTT.sess.>"))
        return [item for item in found if item is not None]

    async def session_batch(self, after: int, count: int
                            ) -> tuple[list[tuple[str, dict[str, Any]]], int, int]:
        """Up to ``count`` stored sessions after stream sequence ``after``, read in one
        request: their (token, record)s, the sequence read to, and how many follow."""
        msgs, more = await self._direct_batch(
            SESSIONS, {"seq": after + 1, "next_by_subj": "$MQTT.sess.>", "batch": count})
        out = []
        for _, hdr, data in msgs:
            fields = parse_headers(hdr)
            after = int(fields.get(b"Nats-Sequence") or after)
            item = _session_record(fields.get(b"Nats-Subject", b"").decode(), data)
            if item is not None:
                out.append(item)
        return out, after, more

    async def save_session(self, token: str, record: dict[str, Any]) -> None:
        await self._publish(f"$MQTT.sess.{token}", json.dumps(record).encode())

    async def delete_session(self, token: str) -> None:
        await self._purge(SESSIONS, f"$MQTT.sess.{token}")
        await self._purge(QUEUE, f"$MQTT.q.{token}")

    # -- queued messages ----------------------------------------------------------------

    async def enqueue(self, token: str, hdr: bytes, payload: bytes) -> int:
        return await self._publish(f"$MQTT.q.{token}", payload, hdr)

    async def queued(self, token: str, after: int = 0,
                     budget: int = 0) -> tuple[list[StoredMessage], bool]:
        """A session's queued messages after sequence ``after``, in order, until their
        payloads reach ``budget`` bytes (0: all); and whether more remain."""
        out: list[StoredMessage] = []
        size, seq = 0, after + 1
        while True:
            msg = await self._get(QUEUE, {"seq": seq, "next_by_subj": f"$MQTT.q.{token}"})
            if msg is None:
                return out, False
            out.append(msg)
            size += len(msg.data)
            seq = msg.seq + 1
            if budget and size >= budget:
                return out, True

    async def queued_count(self, token: str) -> int:
        """How many messages a session has queued, without reading them all."""
        msgs, more = await self._direct_batch(
            QUEUE, {"seq": 1, "next_by_subj": f"$MQTT.q.{token}", "batch": 1})
        return len(msgs) + more

    async def dequeue(self, seq: int) -> None:
        try:
            await self.requester.request_json(f"{self.api}STREAM.MSG.DELETE.{QUEUE}",
                                              {"seq": seq, "no_erase": True})
        except RequestTimeout:
            log.warning("MQTT: could not delete queued message %d", seq)

    # -- retained -----------------------------------------------------------------------

    async def retained(self) -> list[tuple[str, dict[bytes, bytes], bytes]]:
        """Every retained message: (subject, its headers, payload)."""
        out = []
        for msg in await self._scan(RETAINED, "$MQTT.rmsgs.>"):
            if msg.data:  # (an empty one cleared its topic)
                subject = msg.subject[len("$MQTT.rmsgs."):]
                out.append((subject, parse_headers(msg.hdrs) if msg.hdrs else {}, msg.data))
        return out

    async def retain(self, subject: str, hdr: bytes, payload: bytes) -> None:
        await self._publish(f"$MQTT.rmsgs.{subject}", payload, hdr)

    async def clear_retained(self, subject: str, hdr: bytes) -> None:
        """An empty message replaces the retained one: every hub sharing the stream
        hears of it, as of a new one (a purge would tell nobody)."""
        await self._publish(f"$MQTT.rmsgs.{subject}", b"", hdr)
