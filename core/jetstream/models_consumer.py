"""Consumer shapes: configuration, info, the create request and pull requests."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models_base import (
    AckPolicy,
    AckPolicyField,
    Bool,
    ConsumerAction,
    ConsumerActionField,
    DeliverPolicy,
    DeliverPolicyField,
    Duration,
    Int,
    PriorityPolicy,
    PriorityPolicyField,
    ReplayPolicy,
    ReplayPolicyField,
    Str,
    StrMap,
    Timestamp,
    Uint64,
    WireModel,
    parse_model,
)
from jetport.core.jetstream.models_stream import ClusterInfo
from jetport.core.timeutil import ZERO_TIME_NS


class ConsumerConfig(WireModel):
    """A consumer's configuration, as created, stored and echoed.

    Defaults are Go's zero values, so a config missing ``ack_policy`` means ``none``
    exactly as with nats-server (nats-py always sends ``explicit``).
    """

    _omitempty = frozenset({
        "durable_name", "name", "description", "opt_start_seq", "ack_wait", "max_deliver",
        "backoff", "filter_subject", "filter_subjects", "rate_limit_bps", "sample_freq",
        "max_waiting", "max_ack_pending", "flow_control", "headers_only", "max_batch",
        "max_expires", "max_bytes", "deliver_subject", "deliver_group", "idle_heartbeat",
        "inactive_threshold", "mem_storage", "direct", "metadata", "priority_groups",
        "priority_policy", "priority_timeout",
    })

    durable_name: Str = ""
    name: Str = ""
    description: Str = ""
    deliver_policy: DeliverPolicyField = DeliverPolicy.ALL
    opt_start_seq: Uint64 = 0
    opt_start_time: Timestamp | None = None
    ack_policy: AckPolicyField = AckPolicy.NONE
    ack_wait: Duration = 0
    max_deliver: Int = 0
    backoff: list[Duration] = Field(default_factory=list)
    filter_subject: Str = ""
    filter_subjects: list[Str] = Field(default_factory=list)
    replay_policy: ReplayPolicyField = ReplayPolicy.INSTANT
    rate_limit_bps: Uint64 = 0
    sample_freq: Str = ""
    max_waiting: Int = 0
    max_ack_pending: Int = 0
    flow_control: Bool = False
    headers_only: Bool = False
    # Pull consumers: ceilings for a single pull request.
    max_batch: Int = 0
    max_expires: Duration = 0
    max_bytes: Int = 0
    # Push consumers.
    deliver_subject: Str = ""
    deliver_group: Str = ""
    idle_heartbeat: Duration = 0
    inactive_threshold: Duration = 0
    num_replicas: Int = 0
    mem_storage: Bool = False
    direct: Bool = False
    metadata: StrMap = Field(default_factory=dict)
    pause_until: Timestamp | None = None
    # 2.11+ priority groups.
    priority_groups: list[Str] = Field(default_factory=list)
    priority_policy: PriorityPolicyField = PriorityPolicy.NONE
    priority_timeout: Duration = 0

    @property
    def is_pull(self) -> bool:
        return not self.deliver_subject

    def filters(self) -> list[str]:
        """``filter_subject`` and ``filter_subjects`` as one list (empty = everything)."""
        if self.filter_subject:
            return [self.filter_subject]
        return list(self.filter_subjects)


class SequenceInfo(WireModel):
    """A consumer/stream sequence pair; ``last_active`` when the pair last moved."""

    _omitempty = frozenset()

    consumer_seq: Uint64 = 0
    stream_seq: Uint64 = 0
    last_active: Timestamp | None = None


class PriorityGroupState(WireModel):
    _omitempty = frozenset({"pinned_client_id"})

    group: Str = ""
    pinned_client_id: Str = ""
    pinned_ts: Timestamp = ZERO_TIME_NS


class ConsumerInfo(WireModel):
    """CONSUMER.INFO / CREATE / LIST body; responses add ``type``."""

    _omitempty = frozenset({"push_bound", "paused", "pause_remaining", "priority_groups"})

    stream_name: Str = ""
    name: Str = ""
    created: Timestamp = ZERO_TIME_NS
    config: ConsumerConfig | None = None
    delivered: SequenceInfo = Field(default_factory=SequenceInfo)
    ack_floor: SequenceInfo = Field(default_factory=SequenceInfo)
    num_ack_pending: Int = 0
    num_redelivered: Int = 0
    num_waiting: Int = 0
    num_pending: Uint64 = 0
    cluster: ClusterInfo | None = None
    push_bound: Bool = False
    paused: Bool = False
    pause_remaining: Duration = 0
    ts: Timestamp = ZERO_TIME_NS
    priority_groups: list[PriorityGroupState] = Field(default_factory=list)


class CreateConsumerRequest(WireModel):
    """The body of CONSUMER.CREATE / CONSUMER.DURABLE.CREATE."""

    _omitempty = frozenset({"pedantic"})

    stream_name: Str = ""
    config: ConsumerConfig = Field(default_factory=ConsumerConfig)
    action: ConsumerActionField = ConsumerAction.CREATE_OR_UPDATE
    pedantic: Bool = False


class ConsumerPauseRequest(WireModel):
    """The body of CONSUMER.PAUSE: pause until then; none, zero or past resumes."""

    _go_name = "JSApiConsumerPauseRequest"
    _omitempty = frozenset({"pause_until"})

    pause_until: Timestamp | None = None


class ConsumerPauseResponse(WireModel):
    """CONSUMER.PAUSE's answer; responses add ``type``."""

    _go_name = "JSApiConsumerPauseResponse"
    _omitempty = frozenset({"pause_remaining"})

    paused: Bool = False
    pause_until: Timestamp = ZERO_TIME_NS
    pause_remaining: Duration = 0


class PullRequest(WireModel):
    """A CONSUMER.MSG.NEXT request (Go's JSApiConsumerGetNextRequest)."""

    _omitempty = frozenset({
        "expires", "batch", "max_bytes", "no_wait", "idle_heartbeat", "group",
        "min_pending", "min_ack_pending", "id", "priority",
    })

    expires: Duration = 0
    batch: Int = 0
    max_bytes: Int = 0
    no_wait: Bool = False
    idle_heartbeat: Duration = 0
    # 2.11+ priority group fields.
    group: Str = ""
    min_pending: Int = 0
    min_ack_pending: Int = 0
    id: Str = ""
    priority: Int = 0

    @classmethod
    def go_name(cls) -> str:
        """Empty: nats-server's type errors for a pull request name no struct
        (``Go struct field .batch``)."""
        return ""


def parse_consumer_request(data: Any, *, strict: bool = False) -> CreateConsumerRequest:
    """Parse a consumer create body with nats-server's ``invalid JSON`` errors (10025)."""
    return parse_model(CreateConsumerRequest, data, strict=strict)


class BadPullRequest(ValueError):
    """A pull request nats-server answers with ``400 Bad Request - <reason>``."""


def parse_pull_request(data: bytes | str | None) -> PullRequest:
    """A pull request body: empty (one message), a JSON object, or a bare batch size.

    Like nats-server, text that is neither JSON nor an integer means one message, and a
    batch below one is served as one.  Bad JSON, or an idle heartbeat more than half of
    ``expires``, raises :class:`BadPullRequest` carrying nats-server's reason text.
    """
    raw = data.decode(errors="replace") if isinstance(data, bytes | bytearray) else data or ""
    text = raw.strip()
    if text.startswith("{"):
        try:
            req = parse_model(PullRequest, text)
        except E.ApiError as exc:
            raise BadPullRequest(exc.description.removeprefix("invalid JSON: ")) from None
        if req.idle_heartbeat > 0 and req.idle_heartbeat * 2 > req.expires:
            raise BadPullRequest("heartbeat value too large")
    else:
        try:
            req = PullRequest(batch=int(text)) if text.lstrip("+-").isdigit() else PullRequest()
        except ValueError:
            req = PullRequest()
    if req.batch <= 0:
        req.batch = 1
    return req
