"""The ``$JS.API.*`` request/reply interface of one account.

Requests arrive on an internal subscription to ``$JS.API.>``.  Pull requests and acks
are handled at once (they are on the message path); everything else is queued and
answered in order by one task, so a client's create-then-info sees its own create.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

from jetport.core.jetstream import apilevel
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.consumer import Consumer
from jetport.core.jetstream.direct import DirectGet, lookup
from jetport.core.jetstream.models import (
    ZERO_TIME_NS,
    ConsumerPauseRequest,
    ConsumerPauseResponse,
    check_stream_create,
    normalize_consumer_config,
    normalize_stream_config,
    parse_consumer_request,
    parse_model,
    parse_stream_config,
)
from jetport.core.jetstream.responses import EMPTY_EXTRAS, PREFIX, T, response_type
from jetport.core.log import log
from jetport.core.tasks import spawn
from jetport.core.timeutil import rfc3339
from jetport.storage.base import StorageError

if TYPE_CHECKING:
    from jetport.core.jetstream.account import JetStreamAccount
    from jetport.core.jetstream.stream import Stream

API_SUBJECTS = (b"$JS.API.INFO", b"$JS.API.STREAM.>", b"$JS.API.CONSUMER.>",
                b"$JS.API.ACCOUNT.>", b"$JS.API.META.>", b"$JS.API.SERVER.>")
SUBJECTS_LIMIT = 100_000
NAMES_LIMIT = 1024
LIST_LIMIT = 256


def _body(payload: bytes) -> dict[str, Any]:
    if not payload.strip():
        return {}
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise E.invalid_json(str(exc)) from exc
    if not isinstance(doc, dict):
        raise E.invalid_json("expected an object")
    return doc


class JetStreamApi:
    def __init__(self, jsa: JetStreamAccount) -> None:
        self.jsa = jsa
        self._queue: list[tuple[list[bytes], bytes, bytes, bool]] = []
        self._worker: asyncio.Task[None] | None = None
        #: Consumers by the (stream, name) tokens of their ack subjects.
        self._acking: dict[tuple[bytes, bytes], Consumer] = {}
        client = jsa.client
        domain = jsa.js.domain.encode()
        #: Where the API is answered: ``$JS.API.``, and ``$JS.<domain>.API.`` with a
        #: domain (what nats-server maps to the first for its own domain).
        self.prefixes = [PREFIX, b"$JS.%s.API." % domain] if domain else [PREFIX]
        # Not one `$JS.API.>`: DIRECT.GET is answered by each stream that allows it, so a
        # get on a stream that does not exist finds no responder, as with nats-server.
        for prefix in self.prefixes:
            for subject in API_SUBJECTS:
                client.listen(prefix + subject[len(PREFIX):], self._on_request)
        if domain:
            # Stored subjects the API prefix reaches across leaf links, as nats-server
            # maps them: the message is published again on its own subject.
            for kind in (b"$KV.", b"$OBJ."):
                client.listen(self.prefixes[1] + kind + b">", self._on_stored_write)
        client.listen(b"$JS.ACK.>", self._on_ack, batch=self._on_acks)
        client.listen(b"$JS.FC.>", self._on_flow_control)

    # -- intake -----------------------------------------------------------------------

    def _api_tokens(self, subject: bytes) -> list[bytes]:
        """The tokens after whichever API prefix ``subject`` came on."""
        prefix = self.prefixes[-1]
        cut = len(prefix) if subject.startswith(prefix) else len(PREFIX)
        return subject[cut:].split(b".")

    def _on_stored_write(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                         payload: bytes) -> None:
        self.jsa.client.send(subject[len(self.prefixes[1]):], reply, hdr, payload)

    def _on_request(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                    payload: bytes) -> None:
        tokens = self._api_tokens(subject)
        if tokens[:3] == [b"CONSUMER", b"MSG", b"NEXT"] and len(tokens) == 5 and reply:
            consumer = self._find_consumer(tokens[3], tokens[4])
            if consumer is not None:
                consumer.add_request(reply, payload, apilevel.unmet(hdr))
            return
        if not reply:
            return
        self._queue.append((tokens, reply, payload, apilevel.unmet(hdr)))
        if self._worker is None or self._worker.done():
            self._worker = spawn(self._work(), f"account {self.jsa.account.name}: JetStream API")

    def _find_consumer(self, stream: bytes, name: bytes) -> Consumer | None:
        s = self.jsa.streams.get(stream.decode(errors="replace"))
        return s.consumers.get(name.decode(errors="replace")) if s else None

    def _on_ack(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                payload: bytes) -> None:
        self._on_acks([(subject, reply, hdr, payload)])

    def _on_acks(self, msgs: list[tuple[bytes, bytes | None, bytes | None, bytes]]) -> None:
        acking = self._acking
        # consecutive plain acks for one consumer go to it together
        run_consumer: Consumer | None = None
        run: list[int] = []
        for subject, reply, _hdr, payload in msgs:
            tokens = subject.split(b".")
            if len(tokens) != 9 or not tokens[5].isdigit() or not tokens[6].isdigit():
                continue
            key = (tokens[2], tokens[3])
            consumer = acking.get(key)
            if consumer is None or consumer.stopped:
                consumer = self._find_consumer(*key)
                if consumer is None:
                    acking.pop(key, None)
                    continue
                if len(acking) >= 1024:
                    acking.clear()
                acking[key] = consumer
            if not payload and not reply:
                if consumer is not run_consumer:
                    if run_consumer is not None:
                        run_consumer.ack_plain(run)
                    run_consumer, run = consumer, []
                run.append(int(tokens[5]))
                continue
            if run_consumer is not None:
                run_consumer.ack_plain(run)
                run_consumer, run = None, []
            consumer.process_ack(int(tokens[5]), int(tokens[6]), payload, reply)
        if run_consumer is not None:
            run_consumer.ack_plain(run)

    def _on_flow_control(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                         payload: bytes) -> None:
        tokens = subject.split(b".")
        if len(tokens) >= 4:
            consumer = self._find_consumer(tokens[2], tokens[3])
            if consumer is not None:
                consumer.flow_control_reply(subject)

    async def _work(self) -> None:
        while self._queue:
            tokens, reply, payload, level_unmet = self._queue.pop(0)
            try:
                if level_unmet:
                    if response_type(tokens) == "error_response":
                        continue  # no answer to a request nats-server does not know
                    raise E.required_api_level()
                response = await self._dispatch(tokens, payload, reply)
            except (E.ApiError, StorageError) as exc:
                err = exc if isinstance(exc, E.ApiError) else E.from_storage(
                    exc, f"account {self.jsa.account.name!r}")  # the account logs the fault
                self.jsa.api_errors += 1
                kind = response_type(tokens)
                response = {"type": T + kind, "error": err.to_dict(),
                            **EMPTY_EXTRAS.get(kind, {})}
            except Exception:  # noqa: BLE001 - logged with what it belongs to
                log.exception("JetStream API request %s failed", b".".join(tokens))
                self.jsa.api_errors += 1
                response = {"type": T + response_type(tokens),
                            "error": E.ApiError(500, 10003, "internal error").to_dict()}
            self.jsa.api_total += 1  # counted after: INFO reports the calls before it
            if response is not None:
                self.jsa.client.send(reply, None, None,
                                     json.dumps(response, separators=(",", ":")).encode())

    # -- dispatch ---------------------------------------------------------------------

    async def _dispatch(self, tokens: list[bytes], payload: bytes,
                        reply: bytes) -> dict[str, Any] | None:
        words = [t.decode(errors="replace") for t in tokens]
        n = len(words)
        if words == ["INFO"]:
            return self.account_info()
        if n == 3 and words[0] == "STREAM":
            op, name = words[1], words[2]
            if op in ("CREATE", "UPDATE"):
                return await self.stream_create(name, payload, op == "UPDATE")
            handler = _STREAM_OPS.get(op)
            if handler is not None:
                return await handler(self, name, _body(payload))
        if n == 2 and words[0] == "STREAM" and words[1] in ("NAMES", "LIST"):
            return await self.stream_names(_body(payload), words[1] == "LIST")
        if n == 4 and words[:2] == ["STREAM", "MSG"]:
            if words[2] == "GET":
                return await self.msg_get(words[3], _body(payload))
            if words[2] == "DELETE":
                return await self.msg_delete(words[3], _body(payload))
        if words[0] == "CONSUMER" and n >= 3:
            return await self._consumer_op(words, tokens, payload)
        return None

    async def _consumer_op(self, words: list[str], tokens: list[bytes],
                           payload: bytes) -> dict[str, Any] | None:
        op, n = words[1], len(words)
        if op == "CREATE" and n >= 3:
            name = words[3] if n >= 4 else ""
            filt = ".".join(words[4:]) if n >= 5 else ""
            return await self.consumer_create(words[2], name, filt, payload, False)
        if op == "DURABLE" and n == 5 and words[2] == "CREATE":
            return await self.consumer_create(words[3], words[4], "", payload, True)
        if op in ("NAMES", "LIST") and n == 3:
            return await self.consumer_names(words[2], _body(payload), op == "LIST")
        if op == "INFO" and n == 4:
            consumer = self._consumer(words[2], words[3])
            return {"type": T + "consumer_info_response",
                    **self._with_server(await consumer.info())}
        if op == "DELETE" and n == 4:
            self.jsa.remove_consumer(self.jsa.stream(words[2]), words[3])
            return {"type": T + "consumer_delete_response", "success": True}
        if op == "PAUSE" and n == 4:
            return await self.consumer_pause(words[2], words[3], payload)
        if op == "UNPIN" and n == 4:
            return self.consumer_unpin(words[2], words[3], payload)
        return None

    def consumer_unpin(self, stream: str, name: str, payload: bytes) -> dict[str, Any]:
        group = _body(payload).get("group")
        if not group or not isinstance(group, str):
            raise E.invalid_json(err="consumer group not specified")
        consumer = self._consumer(stream, name)
        if group not in consumer.config.priority_groups:
            raise E.consumer_invalid_priority_group()
        consumer.unpin(group)
        return {"type": T + "consumer_unpin_response"}

    async def consumer_pause(self, stream: str, name: str, payload: bytes) -> dict[str, Any]:
        consumer = self._consumer(stream, name)
        req = parse_model(ConsumerPauseRequest, payload) if payload.strip() else None
        until = req.pause_until if req is not None else None
        consumer.pause(until)
        left = consumer.paused()
        answer = ConsumerPauseResponse(
            paused=left > 0, pause_until=ZERO_TIME_NS if until is None else until,
            pause_remaining=left)
        return {"type": T + "consumer_pause_response", **answer.dump()}

    def _consumer(self, stream: str, name: str) -> Consumer:
        consumer = self.jsa.stream(stream).consumers.get(name)
        if consumer is None:
            raise E.consumer_not_found()
        return consumer

    # -- account ----------------------------------------------------------------------

    def account_info(self) -> dict[str, Any]:
        return {
            "type": T + "account_info_response",
            **self.jsa.usage(),
            "limits": self.jsa.limits.model_dump(),
            **({"domain": self.jsa.js.domain} if self.jsa.js.domain else {}),
            "api": {"total": self.jsa.api_total, "errors": self.jsa.api_errors,
                    "level": apilevel.API_LEVEL},
        }

    # -- streams ----------------------------------------------------------------------

    async def stream_info_doc(self, stream: Stream, req: dict[str, Any] | None = None
                              ) -> dict[str, Any]:
        st = stream.store.state()
        state: dict[str, Any] = {
            "messages": st.msgs,
            "bytes": st.bytes,
            "first_seq": st.first_seq,
            "first_ts": rfc3339(ns=st.first_ts) if st.first_ts else "0001-01-01T00:00:00Z",
            "last_seq": st.last_seq,
            "last_ts": rfc3339(ns=st.last_ts) if st.last_ts else "0001-01-01T00:00:00Z",
            "consumer_count": len(stream.consumers),
        }
        if st.num_deleted:
            state["num_deleted"] = st.num_deleted
        req = req or {}
        subjects = await stream.store.subjects(b">")
        if subjects:
            state["num_subjects"] = len(subjects)
        filt = req.get("subjects_filter")
        paging = {"total": 0, "offset": 0, "limit": 0}
        if filt:
            chosen = await stream.store.subjects(str(filt).encode())
            state["subjects"] = {k.decode(errors="replace"): v for k, v in chosen.items()}
            paging = {"total": len(chosen), "offset": 0, "limit": SUBJECTS_LIMIT}
        if req.get("deleted_details") and st.num_deleted:
            state["deleted"] = await _deleted(stream, st)
        doc: dict[str, Any] = {
            **paging,
            "config": stream.config.dump(),
            "created": rfc3339(ns=stream.created_ns),
            "state": state,
            "cluster": {"leader": self.jsa.js.hub.server_name},
            "ts": rfc3339(),
        }
        for link in stream.links:
            if link.mirror:
                doc["mirror"] = link.info()
            else:
                doc.setdefault("sources", []).append(link.info())
        return doc

    async def stream_create(self, name: str, payload: bytes, update: bool) -> dict[str, Any]:
        config, pedantic = parse_stream_config(payload, strict=True)
        if config.name != name:
            raise E.stream_name_mismatch()
        limits = self.jsa.limits
        if update:
            config = normalize_stream_config(config, pedantic=pedantic, account_limits=limits)
            stream = await self.jsa.update_stream(apilevel.stamp_stream(config))
            return {"type": T + "stream_update_response",
                    **_no_paging(self._with_server(await self.stream_info_doc(stream)))}
        check_stream_create(config)
        self.jsa.check_create_limits(config, _names_storage(payload))
        config = normalize_stream_config(config, pedantic=pedantic, account_limits=limits)
        stream, _ = await self.jsa.create_stream(apilevel.stamp_stream(config))
        return {"type": T + "stream_create_response",
                **_no_paging(self._with_server(await self.stream_info_doc(stream))),
                "did_create": True}

    def _with_server(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A stream or consumer answer (not a list's) shows the server's version and API
        level in its config's metadata, as nats-server 2.11+."""
        doc["config"] = apilevel.with_server(doc["config"], self.jsa.js.hub.version)
        return doc

    async def stream_info(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._with_server(await self.stream_info_doc(self.jsa.stream(name), body))
        return {"type": T + "stream_info_response", **doc}

    async def stream_delete(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.jsa.delete_stream(name)
        return {"type": T + "stream_delete_response", "success": True}

    async def stream_purge(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        stream = self.jsa.stream(name)
        if stream.config.sealed:
            raise E.stream_sealed()
        if stream.config.deny_purge:
            raise E.purge_not_permitted()
        seq, keep = int(body.get("seq") or 0), int(body.get("keep") or 0)
        if seq and keep:
            raise E.bad_request()
        filt = body.get("filter")
        purged = await stream.store.purge(str(filt).encode() if filt else None, seq, keep)
        await stream.store.sync()
        self.jsa.stream_changed(stream)
        return {"type": T + "stream_purge_response", "success": True, "purged": purged}

    async def stream_names(self, body: dict[str, Any], full: bool) -> dict[str, Any]:
        offset = max(int(body.get("offset") or 0), 0)
        subject = body.get("subject")
        streams = sorted(self.jsa.streams.values(), key=lambda s: s.name)
        if subject:
            from jetport.core.subjects import subjects_overlap

            want = str(subject).encode()
            streams = [s for s in streams if any(subjects_overlap(want, x) for x in s.subjects)]
        limit = LIST_LIMIT if full else NAMES_LIMIT
        page = streams[offset : offset + limit]
        doc: dict[str, Any] = {"total": len(streams), "offset": offset, "limit": limit}
        if full:
            doc["type"] = T + "stream_list_response"
            doc["streams"] = [_no_paging(await self.stream_info_doc(s)) for s in page]
        else:
            doc["type"] = T + "stream_names_response"
            doc["streams"] = [s.name for s in page] or None
        return doc

    # -- messages ---------------------------------------------------------------------

    async def msg_get(self, name: str, req: dict[str, Any]) -> dict[str, Any]:
        stream = self.jsa.stream(name)
        if not req:
            raise E.bad_request()
        msg = await lookup(stream, req)
        if msg is None:
            raise E.no_message_found()
        doc: dict[str, Any] = {"subject": msg.subject.decode(errors="replace"), "seq": msg.seq}
        if msg.hdr:
            doc["hdrs"] = base64.b64encode(msg.hdr).decode()
        if msg.data:
            doc["data"] = base64.b64encode(msg.data).decode()
        doc["time"] = rfc3339(ns=msg.ts)
        return {"type": T + "stream_msg_get_response", "message": doc}

    async def msg_delete(self, name: str, req: dict[str, Any]) -> dict[str, Any]:
        stream = self.jsa.stream(name)
        if stream.config.sealed:
            raise E.stream_sealed()
        if stream.config.deny_delete:
            raise E.delete_not_permitted()
        seq = int(req.get("seq") or 0)
        if not await stream.store.remove(seq):
            st = stream.store.state()
            if seq > st.last_seq:
                raise E.msg_delete_failed("stream store EOF")
            if seq < st.first_seq:
                raise E.msg_delete_failed("no message found")
            raise E.sequence_not_found(seq)
        stream.removed(seq)
        await stream.store.sync()
        self.jsa.stream_changed(stream)
        return {"type": T + "stream_msg_delete_response", "success": True}

    def on_direct_get(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                      payload: bytes) -> None:
        """A stream's own DIRECT.GET subscription (only streams with allow_direct)."""
        tokens = self._api_tokens(subject)[2:]  # after DIRECT.GET: the stream, a subject
        if reply:
            name = tokens[0].decode(errors="replace")
            last = b".".join(tokens[1:])
            stream = self.jsa.streams.get(name)
            if stream is not None and stream.config.allow_direct:
                spawn(DirectGet(stream, reply).answer(last, payload, apilevel.unmet(hdr)),
                      f"stream {stream.name}: direct get")

    # -- consumers --------------------------------------------------------------------

    async def consumer_create(self, stream_name: str, name: str, filt: str,
                              payload: bytes, legacy: bool) -> dict[str, Any]:
        stream = self.jsa.stream(stream_name)
        req = parse_consumer_request(payload)
        if req.stream_name and req.stream_name != stream_name:
            raise E.stream_name_mismatch()
        config = req.config
        if legacy:
            if config.durable_name and config.durable_name != name:
                raise E.consumer_name_mismatch()
            config.durable_name = name
            config.name = name
        elif name:
            # the subject's name wins over the config's, but not over a durable name
            if config.durable_name and config.durable_name != name:
                raise E.consumer_name_mismatch()
            config.name = name
            if filt and config.filter_subjects:
                raise E.consumer_multiple_filters_not_allowed()
            if filt and config.filter_subject != filt:
                raise E.consumer_filter_mismatch()
        elif config.durable_name:
            raise E.consumer_ephemeral_with_durable()
        config = normalize_consumer_config(
            config, stream.config, pedantic=req.pedantic,
            account_max_ack_pending=self.jsa.limits.max_ack_pending)
        consumer = await self.jsa.add_consumer(stream, config, str(req.action))
        return {"type": T + "consumer_create_response",
                **self._with_server(await consumer.info())}

    async def consumer_names(self, stream_name: str, body: dict[str, Any],
                             full: bool) -> dict[str, Any]:
        stream = self.jsa.stream(stream_name)
        offset = max(int(body.get("offset") or 0), 0)
        consumers = sorted(stream.consumers.values(), key=lambda c: c.name)
        limit = LIST_LIMIT if full else NAMES_LIMIT
        page = consumers[offset : offset + limit]
        doc: dict[str, Any] = {"total": len(consumers), "offset": offset, "limit": limit}
        if full:
            doc["type"] = T + "consumer_list_response"
            doc["consumers"] = [await c.info() for c in page]
        else:
            doc["type"] = T + "consumer_names_response"
            doc["consumers"] = [c.name for c in page]
        return doc


_STREAM_OPS = {
    "INFO": JetStreamApi.stream_info,
    "DELETE": JetStreamApi.stream_delete,
    "PURGE": JetStreamApi.stream_purge,
}


def _names_storage(payload: bytes) -> bool:
    """Does a (valid) STREAM.CREATE body set ``storage``?"""
    try:
        return json.loads(payload).get("storage") is not None
    except (ValueError, AttributeError):
        return False


def _no_paging(doc: dict[str, Any]) -> dict[str, Any]:
    for key in ("total", "offset", "limit"):
        doc.pop(key, None)
    return doc


async def _deleted(stream: Stream, st: Any) -> list[int]:
    """Interior sequences that are gone (STREAM.INFO with deleted_details)."""
    gaps: list[int] = []
    expect = st.first_seq
    msg = await stream.store.next(expect)
    while msg is not None and len(gaps) < st.num_deleted:
        gaps.extend(range(expect, msg.seq))
        expect = msg.seq + 1
        msg = await stream.store.next(expect)
    return gaps
