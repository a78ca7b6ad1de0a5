"""Account info, publish acks, stored messages and the small API request bodies."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models_base import (
    B64Bytes,
    Bool,
    Int,
    Int64,
    Str,
    Timestamp,
    Uint64,
    WireModel,
)
from jetport.core.timeutil import ZERO_TIME_NS


class JetStreamAccountLimits(WireModel):
    """JetStream limits of an account; -1 means unlimited."""

    _go_name = "JetStreamAccountLimits"

    max_memory: Int64 = -1
    max_storage: Int64 = -1
    max_streams: Int = -1
    max_consumers: Int = -1
    max_ack_pending: Int = -1
    memory_max_stream_bytes: Int64 = -1
    storage_max_stream_bytes: Int64 = -1
    max_bytes_required: Bool = False


class ApiStats(WireModel):
    """API call counters; ``level`` is the JetStream API level the server speaks."""

    _go_name = "JetStreamAPIStats"
    _omitempty = frozenset({"inflight"})

    level: Int = 0
    total: Uint64 = 0
    errors: Uint64 = 0
    inflight: Uint64 = 0


class AccountTier(WireModel):
    _go_name = "JetStreamTier"

    memory: Uint64 = 0
    storage: Uint64 = 0
    reserved_memory: Uint64 = 0
    reserved_storage: Uint64 = 0
    streams: Int = 0
    consumers: Int = 0
    limits: JetStreamAccountLimits = Field(default_factory=JetStreamAccountLimits)


class AccountInfo(AccountTier):
    """The ``$JS.API.INFO`` body (responses add ``type``)."""

    _go_name = "JetStreamAccountStats"
    _omitempty = frozenset({"domain", "tiers"})

    domain: Str = ""
    api: ApiStats = Field(default_factory=ApiStats)
    tiers: dict[Str, AccountTier] = Field(default_factory=dict)


class PubAck(WireModel):
    """The reply to a publish stored in a stream (no ``type`` field).

    Key order follows what nats-server 2.10+ writes: ``stream``, ``domain``, ``seq``.
    """

    _omitempty = frozenset({"domain", "duplicate", "val", "batch", "count"})

    stream: Str = ""
    domain: Str = ""
    seq: Uint64 = 0
    duplicate: Bool = False
    # 2.12+: counter value and batch publishing.
    val: Str = ""
    batch: Str = ""
    count: Int = 0


def pub_ack_error(stream: str, err: E.ApiError) -> dict[str, Any]:
    """A failed publish's reply: the error, the stream and sequence 0."""
    return {"error": err.to_dict(), "stream": stream, "seq": 0}


class StoredMessage(WireModel):
    """A message as STREAM.MSG.GET returns it; headers and data travel base64-encoded."""

    _go_name = "StoredMsg"
    _omitempty = frozenset({"hdrs", "data"})

    subject: Str = ""
    seq: Uint64 = 0
    hdrs: B64Bytes = b""
    data: B64Bytes = b""
    time: Timestamp = ZERO_TIME_NS


class PurgeRequest(WireModel):
    """STREAM.PURGE: everything, below ``seq``, or all but the newest ``keep``."""

    _go_name = "JSApiStreamPurgeRequest"
    _omitempty = frozenset({"seq", "filter", "keep"})

    seq: Uint64 = 0
    filter: Str = ""
    keep: Uint64 = 0

    def check(self) -> None:
        """``seq`` and ``keep`` together are a bad request (10003)."""
        if self.seq > 0 and self.keep > 0:
            raise E.bad_request()


class MsgGetRequest(WireModel):
    """STREAM.MSG.GET and DIRECT.GET bodies (batch fields are DIRECT.GET only)."""

    _go_name = "JSApiMsgGetRequest"
    _omitempty = frozenset({
        "seq", "last_by_subj", "next_by_subj", "batch", "max_bytes", "multi_last",
        "up_to_seq", "no_hdr",
    })

    seq: Uint64 = 0
    last_by_subj: Str = ""
    next_by_subj: Str = ""
    batch: Int = 0
    max_bytes: Int = 0
    start_time: Timestamp | None = None
    multi_last: list[Str] = Field(default_factory=list)
    up_to_seq: Uint64 = 0
    up_to_time: Timestamp | None = None
    no_hdr: Bool = False

    def check(self) -> None:
        """The option combinations STREAM.MSG.GET rejects with bad request (10003)."""
        conflicts = (
            self.batch > 0 or self.max_bytes > 0 or bool(self.multi_last),
            self.seq > 0 and bool(self.last_by_subj),
            self.seq == 0 and not self.last_by_subj and not self.next_by_subj
            and self.start_time is None,
            self.seq > 0 and self.start_time is not None,
            self.start_time is not None and bool(self.last_by_subj),
            bool(self.last_by_subj) and bool(self.next_by_subj),
        )
        if any(conflicts):
            raise E.bad_request()


class MsgDeleteRequest(WireModel):
    """STREAM.MSG.DELETE: ``no_erase`` skips overwriting the payload on disk."""

    _go_name = "JSApiMsgDeleteRequest"
    _omitempty = frozenset({"no_erase"})

    seq: Uint64 = 0
    no_erase: Bool = False


class StreamInfoRequest(WireModel):
    _go_name = "JSApiStreamInfoRequest"
    _omitempty = frozenset({"deleted_details", "subjects_filter"})

    offset: Int = 0
    deleted_details: Bool = False
    subjects_filter: Str = ""


class NamesRequest(WireModel):
    """STREAM.NAMES / CONSUMER.NAMES paging; ``subject`` filters streams by overlap."""

    _go_name = "JSApiStreamNamesRequest"
    _omitempty = frozenset({"subject"})

    offset: Int = 0
    subject: Str = ""


class ListRequest(NamesRequest):
    _go_name = "JSApiStreamListRequest"


def response(type_suffix: str, body: dict[str, Any] | WireModel | None = None,
             **extra: Any) -> dict[str, Any]:
    """A successful API reply: ``type`` first, then the body's fields, then ``extra``."""
    doc: dict[str, Any] = {"type": E.API_TYPE_PREFIX + type_suffix}
    if isinstance(body, WireModel):
        doc.update(body.dump())
    elif body:
        doc.update(body)
    doc.update(extra)
    return doc
