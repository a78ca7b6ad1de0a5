"""Consumer config defaults and validation, rule for rule and text for text as nats-server.

``normalize_consumer_config`` is nats-server's setConsumerConfigDefaults followed by
checkConsumerCfg (and the single-server replica rule and ephemeral inactivity default
of its create path); ``check_consumer_update`` is checkNewConsumerConfig and
``check_workqueue_consumer`` the work-queue rules that need the stream's other
consumers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models_base import (
    MAX_DESCRIPTION_LEN,
    MAX_METADATA_LEN,
    MAX_NAME_LEN,
    MS,
    NS,
    AckPolicy,
    DeliverPolicy,
    PriorityPolicy,
    Retention,
    is_literal,
    is_subset,
    metadata_len,
    subjects_collide,
    valid_name,
    valid_subject,
)
from jetport.core.jetstream.models_consumer import ConsumerConfig
from jetport.core.jetstream.models_stream import StreamConfig
from jetport.core.timeutil import go_duration

ACK_WAIT_DEFAULT = 30 * NS
MAX_ACK_PENDING_DEFAULT = 1000
MAX_WAITING_DEFAULT = 512
EPHEMERAL_INACTIVE_THRESHOLD = 5 * NS
PINNED_TTL_DEFAULT = 120 * NS
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9/_=-]{1,16}$")
_ATOI = re.compile(r"^[+-]?[0-9]+$")


def normalize_consumer_config(cfg: ConsumerConfig, stream_cfg: StreamConfig,
                              pull: bool | None = None, *,
                              pedantic: bool = False,
                              account_max_ack_pending: int = -1) -> ConsumerConfig:
    """``cfg`` with nats-server's defaults applied, or the ApiError it would reply.

    ``stream_cfg`` must be the normalised config of the consumer's stream; ``pull``, if
    given, must agree with ``deliver_subject``.  Unnamed configs stay unnamed (the engine
    picks the name); a durable's ``name`` is set to its durable name.
    ``account_max_ack_pending`` is the account's JetStream limit (-1: none): it lowers the
    default and caps what a consumer may ask for.
    """
    if pull is not None and pull != cfg.is_pull:
        raise ValueError("pull does not match deliver_subject")
    c = cfg.model_copy(deep=True)
    if c.num_replicas > 1:
        raise E.stream_replicas_not_supported()
    _apply_defaults(c, stream_cfg, pedantic, account_max_ack_pending)
    _check_basics(c, stream_cfg)
    if c.is_pull:
        _check_pull(c, stream_cfg)
    else:
        _check_push(c, stream_cfg)
    _check_limits(c, stream_cfg, account_max_ack_pending)
    _check_filters(c)
    _check_start(c)
    _check_rest(c)
    if len(c.durable_name.encode()) > MAX_NAME_LEN:
        raise E.consumer_name_too_long(max=MAX_NAME_LEN)
    if not c.durable_name and c.inactive_threshold <= 0:
        c.inactive_threshold = EPHEMERAL_INACTIVE_THRESHOLD
    if c.durable_name and not c.name:
        c.name = c.durable_name
    return c


def _apply_defaults(c: ConsumerConfig, stream_cfg: StreamConfig, pedantic: bool,
                    account_max_ack_pending: int) -> None:
    if c.max_deliver == 0 or c.max_deliver < -1:
        if pedantic and c.max_deliver < -1:
            raise E.pedantic(err="max_deliver must be set to -1")
        c.max_deliver = -1
    for field, floor, text in (
        ("max_waiting", 0, "max_waiting must not be negative"),
        ("max_ack_pending", -1, "max_ack_pending must be set to -1"),
        ("max_batch", 0, "max_batch must not be negative"),
        ("max_expires", 0, "max_expires must not be negative"),
        ("max_bytes", 0, "max_bytes must not be negative"),
        ("idle_heartbeat", 0, "idle_heartbeat must not be negative"),
        ("inactive_threshold", 0, "inactive_threshold must not be negative"),
        ("priority_timeout", 0, "priority_timeout must not be negative"),
    ):
        if getattr(c, field) < floor:
            if pedantic:
                raise E.pedantic(err=text)
            setattr(c, field, floor)
    if c.is_pull and c.max_waiting == 0:
        c.max_waiting = MAX_WAITING_DEFAULT
    if c.ack_wait == 0 and c.ack_policy in (AckPolicy.EXPLICIT, AckPolicy.ALL):
        c.ack_wait = ACK_WAIT_DEFAULT
    if c.backoff:
        if pedantic and c.ack_wait != c.backoff[0]:
            raise E.pedantic(err="first backoff value has to equal batch AckWait")
        c.ack_wait = c.backoff[0]
    limits = stream_cfg.consumer_limits
    if c.max_ack_pending == 0:
        if pedantic and limits.max_ack_pending > 0:
            raise E.pedantic(err="max_ack_pending must be set if it's configured in stream limits")
        c.max_ack_pending = limits.max_ack_pending
    if c.inactive_threshold == 0:
        if pedantic and limits.inactive_threshold > 0:
            raise E.pedantic(
                err="inactive_threshold must be set if it's configured in stream limits")
        c.inactive_threshold = limits.inactive_threshold
    if c.max_ack_pending == 0 and c.ack_policy is not AckPolicy.NONE:
        c.max_ack_pending = MAX_ACK_PENDING_DEFAULT
        if 0 < account_max_ack_pending < MAX_ACK_PENDING_DEFAULT:
            c.max_ack_pending = account_max_ack_pending
    if c.priority_policy is PriorityPolicy.PINNED_CLIENT and c.priority_timeout == 0:
        c.priority_timeout = PINNED_TTL_DEFAULT


def _check_basics(c: ConsumerConfig, stream_cfg: StreamConfig) -> None:
    if c.name and not valid_name(c.name):
        raise E.stream_invalid_config(
            err="consumer name can not contain '.', '*', '>', '\\', '/'")
    if c.durable_name and not valid_name(c.durable_name):
        raise E.stream_invalid_config(
            err="consumer durable name can not contain '.', '*', '>', '\\', '/'")
    if c.num_replicas > 0 and c.num_replicas > stream_cfg.num_replicas:
        raise E.consumer_replicas_exceeds_stream()
    if c.num_replicas < 0:
        raise E.replicas_negative()
    if (stream_cfg.retention is not Retention.LIMITS and c.num_replicas != 0
            and c.num_replicas != stream_cfg.num_replicas):
        raise E.consumer_replicas_should_match_stream()
    if any(b < 0 for b in c.backoff):
        raise E.consumer_backoff_negative()
    if c.ack_wait < 0:
        raise E.consumer_ack_wait_negative()
        if c.max_deliver > 0:
            raise E.consumer_ack_fc_requires_no_max_deliver()
    if c.backoff and c.max_deliver != -1 and len(c.backoff) > c.max_deliver:
        raise E.consumer_max_deliver_backoff()
    if len(c.description.encode()) > MAX_DESCRIPTION_LEN:
        raise E.consumer_description_too_long(max=MAX_DESCRIPTION_LEN)


def _check_push(c: ConsumerConfig, stream_cfg: StreamConfig) -> None:
    if not is_literal(c.deliver_subject):
        raise E.consumer_deliver_to_wildcards()
    if not valid_subject(c.deliver_subject):
        raise E.consumer_invalid_deliver_subject()
    if any(is_subset(c.deliver_subject, s) for s in stream_cfg.subjects):
        raise E.consumer_deliver_cycle()
    if c.max_waiting != 0:
        raise E.consumer_push_max_waiting()
    if c.max_ack_pending > 0 and c.ack_policy is AckPolicy.NONE:
        raise E.consumer_max_pending_ack_policy_required()
    if 0 < c.idle_heartbeat < 100 * MS:
        raise E.consumer_small_heartbeat()


def _check_pull(c: ConsumerConfig, stream_cfg: StreamConfig) -> None:
    if c.ack_policy is AckPolicy.NONE and stream_cfg.retention is Retention.WORKQUEUE:
        raise E.consumer_pull_requires_ack()
    if c.rate_limit_bps > 0:
        raise E.consumer_pull_with_rate_limit()
    if c.max_waiting < 0:
        raise E.consumer_max_waiting_negative()
    if c.idle_heartbeat > 0:
        raise E.consumer_hb_requires_push()
    if c.flow_control:
        raise E.consumer_fc_requires_push()
    if c.max_batch < 0:
        raise E.consumer_max_request_batch_negative()
    if 0 < c.max_expires < MS:
        raise E.consumer_max_request_expires_too_small()


def _check_limits(c: ConsumerConfig, stream_cfg: StreamConfig,
                  account_max_ack_pending: int) -> None:
    # nats-server checks the account's cap before the stream's
    if 0 < account_max_ack_pending < c.max_ack_pending:
        raise E.consumer_max_ack_pending_excess(limit=account_max_ack_pending)
    limits = stream_cfg.consumer_limits
    if 0 < limits.max_ack_pending < c.max_ack_pending:
        raise E.consumer_max_ack_pending_excess(limit=limits.max_ack_pending)
    if 0 < limits.inactive_threshold < c.inactive_threshold:
        raise E.consumer_inactive_threshold_excess(
            limit=go_duration(limits.inactive_threshold / NS))
    if c.direct:
        if c.is_pull:
            raise E.consumer_direct_requires_push()
        if c.durable_name:
            raise E.consumer_direct_requires_ephemeral()


def _check_filters(c: ConsumerConfig) -> None:
    if c.filter_subject and c.filter_subjects:
        raise E.consumer_duplicate_filter_subjects()
    if c.filter_subject and not valid_subject(c.filter_subject):
        raise E.stream_invalid_config(err="invalid subject")
    if any(not f for f in c.filter_subjects):
        raise E.consumer_empty_filter()
    filters = c.filters()
    for i, subject in enumerate(filters):
        if not valid_subject(subject):
            raise E.stream_invalid_config(err="invalid subject")
        if any(i != j and is_subset(subject, other) for j, other in enumerate(filters)):
            raise E.consumer_overlapping_filters()


_POLICY_NAMES = {
    DeliverPolicy.ALL: "all",
    DeliverPolicy.LAST: "last",
    DeliverPolicy.LAST_PER_SUBJECT: "last per subject",
    DeliverPolicy.NEW: "new",
    DeliverPolicy.BY_START_SEQUENCE: "by start sequence",
    DeliverPolicy.BY_START_TIME: "by start time",
}


def _check_start(c: ConsumerConfig) -> None:
    """Deliver policy versus the optional start sequence/time (10094)."""
    dp = _POLICY_NAMES[c.deliver_policy]
    has_seq, has_time = c.opt_start_seq > 0, c.opt_start_time is not None

    def also(start: str) -> E.ApiError:
        return E.consumer_invalid_policy(
            err=f"consumer delivery policy is deliver {dp}, but optional start {start} "
                "is also set")

    def missing(what: str) -> E.ApiError:
        return E.consumer_invalid_policy(
            err=f"consumer delivery policy is deliver {dp}, but optional {what} is not set")

    if c.deliver_policy is DeliverPolicy.BY_START_SEQUENCE:
        if not has_seq:
            raise missing("start sequence")
        if has_time:
            raise also("time")
    elif c.deliver_policy is DeliverPolicy.BY_START_TIME:
        if not has_time:
            raise missing("start time")
        if c.opt_start_seq != 0:
            raise also("start sequence")
    else:
        if has_seq:
            raise also("sequence")
        if has_time:
            raise also("time")
        if c.deliver_policy is DeliverPolicy.LAST_PER_SUBJECT and not c.filters():
            raise missing("filter subject")


def _check_rest(c: ConsumerConfig) -> None:
    if c.sample_freq:
        text = c.sample_freq.removesuffix("%")
        if not _ATOI.match(text):
            raise E.consumer_invalid_sampling(
                err=f'strconv.Atoi: parsing {E.go_quote(text)}: invalid syntax')
        value = int(text)
        if not -(2**63) <= value < 2**63:
            raise E.consumer_invalid_sampling(
                err=f'strconv.Atoi: parsing {E.go_quote(text)}: value out of range')
        if value < 0:
            raise E.consumer_invalid_sampling(err="<nil>")
    if c.flow_control and c.idle_heartbeat == 0:
        raise E.consumer_fc_needs_heartbeats()
    if c.durable_name and c.name and c.name != c.durable_name:
        raise E.consumer_durable_name_mismatch()
    if metadata_len(c.metadata) > MAX_METADATA_LEN:
        raise E.consumer_metadata_too_long(limit=f"{MAX_METADATA_LEN // 1024}KB")
    if c.priority_policy is not PriorityPolicy.NONE:
        if not c.is_pull:
            raise E.consumer_push_with_priority_group()
        if not c.priority_groups:
            raise E.consumer_priority_policy_without_group()
        for group in c.priority_groups:
            if not group:
                raise E.consumer_empty_group_name()
            if not _GROUP_NAME.match(group):
                raise E.consumer_invalid_group_name()
    else:
        if c.priority_groups:
            raise E.consumer_priority_group_with_policy_none()
        if c.priority_timeout > 0:
            raise E.consumer_pinned_ttl_without_priority_policy()


# -- updates and work queues --------------------------------------------------------------


def check_consumer_update(old: ConsumerConfig, new: ConsumerConfig, *,
                          deliver_bound: bool = False) -> None:
    """Raise the error nats-server gives when ``old`` may not become ``new``.

    Both configs are normalised.  ``deliver_bound`` says whether someone still listens
    on the old deliver subject (then it cannot move: 10013).
    """
    if old == new:
        return
    for field, what in (
        ("deliver_policy", "deliver policy"),
        ("mem_storage", "storage type"),
        ("direct", "direct"),
        ("opt_start_seq", "start sequence"),
        ("opt_start_time", "start time"),
        ("ack_policy", "ack policy"),
        ("replay_policy", "replay policy"),
        ("idle_heartbeat", "heart beats"),
        ("flow_control", "flow control"),
    ):
        if getattr(old, field) != getattr(new, field):
            raise E.consumer_create_failed(err=f"{what} can not be updated")
    if old.deliver_subject != new.deliver_subject:
        if not old.deliver_subject:
            raise E.consumer_create_failed(err="can not update pull consumer to push based")
        if not new.deliver_subject:
            raise E.consumer_create_failed(err="can not update push consumer to pull based")
        if deliver_bound:
            raise E.consumer_name_in_use()
    if old.max_waiting != new.max_waiting:
        raise E.consumer_create_failed(err="max waiting can not be updated")
    if new.backoff and new.max_deliver != -1 and len(new.backoff) > new.max_deliver:
        raise E.consumer_max_deliver_backoff()


def check_workqueue_consumer(cfg: ConsumerConfig, others: Iterable[ConsumerConfig], *,
                             update: bool = False) -> None:
    """Work-queue stream rules for ``cfg`` given the stream's ``others`` consumers.

    ``others`` excludes the consumer itself.  A new consumer must ack explicitly,
    deliver all and not share any subject with another; an update only re-checks that
    its filters stay disjoint (overlap, not just containment, counts).
    """
    if cfg.direct:
        return
    others = list(others)
    if not update:
        if cfg.ack_policy is not AckPolicy.EXPLICIT:
            raise E.consumer_wq_requires_explicit_ack()
        if cfg.deliver_policy is not DeliverPolicy.ALL:
            raise E.consumer_wq_not_deliver_all()
        if others and not cfg.filters():
            raise E.consumer_wq_multiple_unfiltered()
    for mine in cfg.filters():
        for other in others:
            theirs = other.filters()
            if not theirs or any(subjects_collide(mine, t) for t in theirs):
                raise E.consumer_wq_not_unique()
