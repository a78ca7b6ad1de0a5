"""Stream shapes: configuration, state and info, field for field as nats-server sends them."""

from __future__ import annotations

from pydantic import Field

from jetport.core.jetstream.models_base import (
    Bool,
    Compression,
    CompressionField,
    Discard,
    DiscardField,
    Duration,
    Int,
    Int32,
    Int64,
    PersistMode,
    PersistModeField,
    Retention,
    RetentionField,
    StorageField,
    StorageType,
    Str,
    StrMap,
    Timestamp,
    Uint16,
    Uint64,
    WireModel,
)
from jetport.core.timeutil import ZERO_TIME_NS


class Placement(WireModel):
    _omitempty = frozenset({"cluster", "tags", "preferred"})

    cluster: Str = ""
    tags: list[Str] = Field(default_factory=list)
    preferred: Str = ""


class SubjectTransformConfig(WireModel):
    """A ``src`` → ``dest`` subject mapping (Go's SubjectTransformConfig)."""

    _go_name = "SubjectTransformConfig"

    src: Str = ""
    dest: Str = ""


class RePublish(WireModel):
    """Republish stored messages from ``src`` (default ``>``) onto ``dest``."""

    _omitempty = frozenset({"src", "headers_only"})

    src: Str = ""
    dest: Str = ""
    headers_only: Bool = False


class ExternalStream(WireModel):
    """Where a sourced or mirrored stream lives: another account's or domain's API prefix."""

    api: Str = ""
    deliver: Str = ""


class StreamSource(WireModel):
    _omitempty = frozenset({"opt_start_seq", "filter_subject", "subject_transforms"})

    name: Str = ""
    opt_start_seq: Uint64 = 0
    opt_start_time: Timestamp | None = None
    filter_subject: Str = ""
    subject_transforms: list[SubjectTransformConfig] = Field(default_factory=list)
    external: ExternalStream | None = None

    def identity(self) -> tuple[str, ...]:
        """What makes two sources the same one (nats-server's source index name)."""
        api = self.external.api if self.external is not None else ""
        if self.subject_transforms:
            srcs = "\f".join(t.src or ">" for t in self.subject_transforms)
            dests = "\f".join(t.dest or ">" for t in self.subject_transforms)
        else:
            srcs, dests = self.filter_subject or ">", ">"
        return (self.name, api, srcs, dests)


class StreamConsumerLimits(WireModel):
    """Defaults and ceilings for the stream's consumers (2.10+)."""

    _omitempty = frozenset({"inactive_threshold", "max_ack_pending"})

    inactive_threshold: Duration = 0
    max_ack_pending: Int = 0


class StreamConfig(WireModel):
    """A stream's configuration, as created, stored and echoed."""

    _omitempty = frozenset({
        "description", "subjects", "max_msg_size", "no_ack", "duplicate_window", "sources",
        "first_seq", "discard_new_per_subject", "subject_delete_marker_ttl",
        "allow_msg_counter", "persist_mode", "metadata", "allow_msg_schedules", "allow_atomic",
    })

    name: Str = ""
    description: Str = ""
    subjects: list[Str] = Field(default_factory=list)
    retention: RetentionField = Retention.LIMITS
    max_consumers: Int = 0
    max_msgs: Int64 = 0
    max_bytes: Int64 = 0
    max_age: Duration = 0
    max_msgs_per_subject: Int64 = 0
    max_msg_size: Int32 = 0
    discard: DiscardField = Discard.OLD
    storage: StorageField = StorageType.FILE
    num_replicas: Int = 0
    no_ack: Bool = False
    duplicate_window: Duration = 0
    placement: Placement | None = None
    mirror: StreamSource | None = None
    sources: list[StreamSource] = Field(default_factory=list)
    compression: CompressionField = Compression.NONE
    first_seq: Uint64 = 0
    subject_transform: SubjectTransformConfig | None = None
    republish: RePublish | None = None
    allow_direct: Bool = False
    mirror_direct: Bool = False
    discard_new_per_subject: Bool = False
    sealed: Bool = False
    deny_delete: Bool = False
    deny_purge: Bool = False
    allow_rollup_hdrs: Bool = False
    consumer_limits: StreamConsumerLimits = Field(default_factory=StreamConsumerLimits)
    # 2.11+: per-message TTLs and delete markers.
    allow_msg_ttl: Bool = False
    subject_delete_marker_ttl: Duration = 0
    # 2.12+: every subject is a counter (``Nats-Incr`` publishes; API level 2).
    allow_msg_counter: Bool = False
    # 2.12+: atomic batch publish (API level 2).
    allow_atomic: Bool = False
    # 2.12+: message schedules (the Nats-Schedule header).
    allow_msg_schedules: Bool = False
    # 2.12+: accepted and echoed; the engine decides whether it supports them.
    persist_mode: PersistModeField = PersistMode.DEFAULT
    metadata: StrMap = Field(default_factory=dict)


class LostStreamData(WireModel):
    msgs: list[Uint64] = Field(default_factory=list)
    bytes: Uint64 = 0


class StreamState(WireModel):
    _omitempty = frozenset({"num_subjects", "subjects", "num_deleted", "deleted"})

    messages: Uint64 = 0
    bytes: Uint64 = 0
    first_seq: Uint64 = 0
    first_ts: Timestamp = ZERO_TIME_NS
    last_seq: Uint64 = 0
    last_ts: Timestamp = ZERO_TIME_NS
    num_subjects: Int = 0
    subjects: dict[Str, Uint64] = Field(default_factory=dict)
    num_deleted: Int = 0
    deleted: list[Uint64] = Field(default_factory=list)
    lost: LostStreamData | None = None
    consumer_count: Int = 0


class PeerInfo(WireModel):
    _omitempty = frozenset({"offline", "lag"})

    name: Str = ""
    current: Bool = False
    offline: Bool = False
    active: Duration = 0
    lag: Uint64 = 0
    peer: Str = ""


class ClusterInfo(WireModel):
    """Who leads the asset; a single server reports just ``leader`` (its name)."""

    _omitempty = frozenset({"name", "raft_group", "leader", "replicas"})

    name: Str = ""
    raft_group: Str = ""
    leader: Str = ""
    leader_since: Timestamp | None = None
    replicas: list[PeerInfo] = Field(default_factory=list)


class ErrorBody(WireModel):
    """An API error embedded in another shape (Go's ApiError)."""

    _go_name = "ApiError"
    _omitempty = frozenset({"err_code", "description"})

    code: Int = 0
    err_code: Uint16 = 0
    description: Str = ""


class StreamSourceInfo(WireModel):
    """How far a mirror or source is behind; ``active`` is -1 before first contact."""

    _omitempty = frozenset({"filter_subject", "subject_transforms"})

    name: Str = ""
    external: ExternalStream | None = None
    lag: Uint64 = 0
    active: Duration = -1
    error: ErrorBody | None = None
    filter_subject: Str = ""
    subject_transforms: list[SubjectTransformConfig] = Field(default_factory=list)


class StreamAlternate(WireModel):
    _omitempty = frozenset({"domain"})

    name: Str = ""
    domain: Str = ""
    cluster: Str = ""


class StreamInfo(WireModel):
    """STREAM.INFO / CREATE / UPDATE / LIST body; responses add ``type`` and extras."""

    _omitempty = frozenset({"domain", "sources", "alternates"})

    config: StreamConfig = Field(default_factory=StreamConfig)
    created: Timestamp = ZERO_TIME_NS
    state: StreamState = Field(default_factory=StreamState)
    domain: Str = ""
    cluster: ClusterInfo | None = None
    mirror: StreamSourceInfo | None = None
    sources: list[StreamSourceInfo] = Field(default_factory=list)
    alternates: list[StreamAlternate] = Field(default_factory=list)
    ts: Timestamp = ZERO_TIME_NS

