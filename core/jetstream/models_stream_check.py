"""Stream config defaults and validation, rule for rule and text for text as nats-server.

``normalize_stream_config`` is nats-server's checkStreamCfg (plus the single-server
replica rule); ``check_stream_create`` holds the checks its create handler makes first,
and ``check_stream_update`` its configUpdateCheck.  Checks that need the other streams
(subject overlap, name in use, limits) stay with the engine; mirror and source checks
that read other streams' configs use the optional ``lookup``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models_api import JetStreamAccountLimits
from jetport.core.jetstream.models_base import (
    MAX_DESCRIPTION_LEN,
    MAX_METADATA_LEN,
    MAX_NAME_LEN,
    MS,
    NS,
    Discard,
    PersistMode,
    Retention,
    StorageType,
    byte_len,
    is_subset,
    metadata_len,
    subjects_collide,
    valid_name,
    valid_publish_subject,
    valid_subject,
)
from jetport.core.jetstream.models_stream import StreamConfig, StreamSource

#: Returns the current config of another stream in the account, or None.
StreamLookup = Callable[[str], StreamConfig | None]

DEFAULT_DUPLICATE_WINDOW = 120 * NS
MAX_REPLICAS = 5
API_PREFIX = "$JS.API"
_API_NAMESPACES = ("$JS.>", "$JSC.>", "$NRG.>")


def _invalid(text: str) -> E.ApiError:
    return E.stream_invalid_config(err=text)


def check_stream_create(cfg: StreamConfig) -> None:
    """What STREAM.CREATE rejects before looking at the config proper."""
    if "/" in cfg.name or "\\" in cfg.name:
        raise E.stream_name_path_separators()
    if cfg.sealed:
        raise _invalid("stream configuration for create can not be sealed")
    if cfg.mirror_direct and cfg.mirror is None:
        raise _invalid("stream has no mirror but does have mirror direct")


def normalize_stream_config(cfg: StreamConfig, *, pedantic: bool = False,
                            lookup: StreamLookup | None = None,
                            account_limits: JetStreamAccountLimits | None = None) -> StreamConfig:
    """``cfg`` with nats-server's defaults applied, or the ApiError it would reply.

    Idempotent, so stored configs can be re-normalised on recovery.  In ``pedantic``
    mode a default that would silently change the request is an error (10157).
    ``account_limits`` adds the account's ``max_bytes`` rules (10113, 10122).
    """
    c = cfg.model_copy(deep=True)
    _check_identity(c)
    _apply_limits(c, pedantic)
    _check_features(c, pedantic)
    _check_origins(c, pedantic, lookup)
    _check_subjects(c)
    if account_limits is not None:
        check_account_max_bytes(c, account_limits)
    _check_transforms(c, pedantic)
    if c.placement is not None and not (c.placement.cluster or c.placement.tags
                                        or c.placement.preferred):
        c.placement = None
    if c.placement is not None and c.placement.preferred:
        raise _invalid("preferred server not permitted in placement")
    # A single server cannot replicate.
    if c.num_replicas > 1:
        raise E.stream_replicas_not_supported()
    return c


def _check_identity(c: StreamConfig) -> None:
    if not valid_name(c.name):
        raise _invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'")
    if byte_len(c.name) > MAX_NAME_LEN:
        raise _invalid(f"stream name is too long, maximum allowed is {MAX_NAME_LEN}")
    if byte_len(c.description) > MAX_DESCRIPTION_LEN:
        raise _invalid(
            f"stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}")
    if metadata_len(c.metadata) > MAX_METADATA_LEN:
        raise _invalid(f"stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes")


def _apply_limits(c: StreamConfig, pedantic: bool) -> None:
    if c.num_replicas == 0:
        c.num_replicas = 1
    if c.num_replicas > MAX_REPLICAS:
        raise _invalid(f"maximum replicas is {MAX_REPLICAS}")
    if c.num_replicas < 0:
        raise E.replicas_negative()
    for field in ("max_msgs", "max_msgs_per_subject", "max_bytes", "max_msg_size",
                  "max_consumers"):
        value = getattr(c, field)
        if value == 0 or value < -1:
            if pedantic and value < -1:
                raise E.pedantic(err=f"{field} must be set to -1")
            setattr(c, field, -1)
    if c.max_age < 0:
        raise _invalid("max age can not be negative")
    if 0 < c.max_age < 100 * MS:
        raise _invalid("max age needs to be >= 100ms")
    if c.duplicate_window == 0 and c.mirror is None and not c.sources:
        if c.max_age != 0 and c.max_age < DEFAULT_DUPLICATE_WINDOW:
            if pedantic:
                raise E.pedantic(err="duplicate window cannot be bigger than max age")
            c.duplicate_window = c.max_age
        else:
            c.duplicate_window = DEFAULT_DUPLICATE_WINDOW
    if c.duplicate_window < 0:
        raise _invalid("duplicates window can not be negative")
    if c.max_age != 0 and c.duplicate_window > c.max_age:
        raise _invalid("duplicates window can not be larger then max age")
    if 0 < c.duplicate_window < 100 * MS:
        raise _invalid("duplicates window needs to be >= 100ms")


def _check_features(c: StreamConfig, pedantic: bool) -> None:
    if c.deny_purge and c.allow_rollup_hdrs:
        raise _invalid("roll-ups require the purge permission")
    if c.allow_msg_counter:
        _check_counter(c)
    if c.discard_new_per_subject:
        _check_discard_new_per_subject(c)
    if c.subject_delete_marker_ttl > 0:
        if c.subject_delete_marker_ttl < NS:
            raise _invalid("subject delete marker TTL must be at least 1 second")
        if not c.allow_msg_ttl:
            if pedantic:
                raise _invalid("subject delete marker cannot be set if message TTLs are disabled")
            c.allow_msg_ttl = True
        if not c.allow_rollup_hdrs:
            if pedantic:
                raise _invalid("subject delete marker cannot be set if roll-ups are disabled")
            c.allow_rollup_hdrs, c.deny_purge = True, False
    elif c.subject_delete_marker_ttl < 0:
        raise _invalid("subject delete marker TTL must not be negative")
    if c.allow_msg_schedules:
        if c.discard is Discard.NEW:
            raise _invalid("message scheduling cannot use discard new")
        if not c.allow_rollup_hdrs:
            if pedantic:
                raise _invalid("message scheduling cannot be set if roll-ups are disabled")
            c.allow_rollup_hdrs, c.deny_purge = True, False
    if c.persist_mode is PersistMode.ASYNC:
        if c.storage is not StorageType.FILE:
            raise _invalid("async persist mode is only supported on file storage")
        if c.num_replicas > 1:
            raise _invalid("async persist mode is not supported on replicated streams")
        if c.allow_atomic:
            raise _invalid("async persist mode is not supported with atomic batch publish")


def _check_counter(c: StreamConfig) -> None:
    """A counter's total lives in its subject's last message: interest or work-queue
    retention and message TTLs would drop it behind the counter's back, discard new
    would refuse increments once full.  Checked before delete markers turn message TTLs
    on, as nats-server does (so markers may go with a counter)."""
    if c.discard is Discard.NEW:
        raise _invalid("counter stream cannot use discard new")
    if c.allow_msg_ttl:
        raise _invalid("counter stream cannot use message TTLs")
    if c.allow_msg_schedules:
        raise _invalid("counter stream cannot use message schedules")
    if c.retention is not Retention.LIMITS:
        raise _invalid("counter stream can only use limits retention")


def _check_discard_new_per_subject(c: StreamConfig) -> None:
    if c.discard is not Discard.NEW:
        raise _invalid("discard new per subject requires discard new policy to be set")
    if c.max_msgs_per_subject <= 0:
        raise _invalid("discard new per subject requires max msgs per subject > 0")


def _check_origins(c: StreamConfig, pedantic: bool, lookup: StreamLookup | None) -> None:
    """Mirror and sources: shape rules, external prefixes and cycles."""
    others: list[str] = []  # subjects of the streams we read from
    deliver_prefixes: list[str] = []
    api_prefixes: list[str] = []
    if c.mirror is not None:
        _check_mirror(c, c.mirror, pedantic, lookup, others, deliver_prefixes, api_prefixes)
    if c.sources and c.allow_msg_schedules:
        raise E.source_with_msg_schedules()
    seen: set[tuple[str, ...]] = set()
    for src in c.sources:
        if not valid_name(src.name):
            raise E.source_invalid_stream_name()
        if src.identity() in seen:
            raise E.source_duplicate()
        seen.add(src.identity())
        if src.filter_subject and src.subject_transforms:
            raise E.source_multiple_filters()
        for tr in src.subject_transforms:
            if tr.src and not valid_subject(tr.src):
                raise E.source_invalid_subject_filter(err=f"invalid subject {tr.src}")
            problem = mapping_error(tr.src, tr.dest)
            if problem:
                raise E.source_invalid_transform_destination(err=problem)
        trs = src.subject_transforms
        for i, a in enumerate(trs):
            if any(i != j and is_subset(a.src, b.src) for j, b in enumerate(trs)):
                raise E.source_overlapping_subject_filters()
        if src.external is None:
            origin = lookup(src.name) if lookup else None
            if origin is not None:
                others.extend(origin.subjects)
                if 0 < c.max_msg_size < origin.max_msg_size:
                    raise E.source_max_message_size_too_big()
        else:
            if src.external.deliver:
                deliver_prefixes.append(src.external.deliver)
            if src.external.api:
                api_prefixes.append(src.external.api)
    for pfx in deliver_prefixes:
        if not valid_publish_subject(pfx):
            raise E.stream_invalid_external_delivery_subject(prefix=pfx)
        for sub in others:
            if subjects_collide(sub, f"{pfx}.{sub}"):
                raise E.stream_external_del_prefix_overlaps(prefix=pfx, subject=sub)
    for pfx in api_prefixes:
        if not valid_publish_subject(pfx):
            raise _invalid(f'stream external api prefix "{pfx}" must be a valid subject '
                           "without wildcards")
        if subjects_collide(pfx, API_PREFIX):
            raise E.stream_external_api_overlap(prefix=pfx, subject=API_PREFIX)
    if lookup is not None:
        _check_cycles(c, lookup)


def _check_mirror(c: StreamConfig, m: StreamSource, pedantic: bool,
                  lookup: StreamLookup | None, others: list[str],
                  deliver_prefixes: list[str], api_prefixes: list[str]) -> None:
    if c.first_seq > 0:
        raise E.mirror_with_first_seq()
    if c.allow_atomic:
        raise E.mirror_with_atomic_publish()
    if c.subjects:
        raise E.mirror_with_subjects()
    if c.sources:
        raise E.mirror_with_sources()
    if c.allow_msg_counter:
        raise E.mirror_with_counters()
    if c.allow_msg_schedules:
        raise E.mirror_with_msg_schedules()
    if m.filter_subject and m.subject_transforms:
        raise E.mirror_multiple_filters()
    if c.subject_delete_marker_ttl > 0:
        raise _invalid("subject delete markers forbidden on mirrors")
    for i, tr in enumerate(m.subject_transforms):
        if tr.src and not valid_subject(tr.src):
            raise E.mirror_invalid_subject_filter(err=f"invalid subject {tr.src}")
        problem = mapping_error(tr.src, tr.dest)
        if problem:
            raise E.mirror_invalid_transform_destination(err=problem)
        for j, other in enumerate(m.subject_transforms):
            if i != j and subjects_collide(tr.src, other.src):
                raise E.mirror_overlapping_subject_filters()
    if m.external is None:
        if not valid_name(m.name):
            raise E.mirror_invalid_stream_name()
        origin = lookup(m.name) if lookup else None
        if origin is not None:
            others.extend(origin.subjects)
            if 0 < c.max_msg_size < origin.max_msg_size:
                raise E.mirror_max_message_size_too_big()
            if pedantic and c.mirror_direct != origin.allow_direct:
                raise E.pedantic(err="origin stream has direct get set, mirror has it disabled")
            c.mirror_direct = origin.allow_direct
    else:
        if m.external.deliver:
            deliver_prefixes.append(m.external.deliver)
        if m.external.api:
            api_prefixes.append(m.external.api)


def _check_cycles(c: StreamConfig, lookup: StreamLookup) -> None:
    to_visit = [c]
    visited: set[str] = set()
    while to_visit and len(visited) < 10_000:
        cur = to_visit.pop(0)
        visited.add(cur.name)
        for src in cur.sources:
            if src.external is not None:
                continue
            if src.name in visited:
                if not src.filter_subject or any(
                        subjects_collide(s, src.filter_subject) for s in cur.subjects):
                    raise _invalid("detected cycle")
            elif (origin := lookup(src.name)) is not None:
                to_visit.append(origin)
        m = cur.mirror
        if m is not None and m.external is None:
            if m.name in visited:
                raise _invalid("detected cycle")
            if (origin := lookup(m.name)) is not None:
                to_visit.append(origin)


def check_account_max_bytes(c: StreamConfig, limits: JetStreamAccountLimits) -> None:
    """10113 when the account wants every stream sized, 10122 when this one is too big."""
    if limits.max_bytes_required and c.max_bytes <= 0:
        raise E.stream_max_bytes_required()
    cap = (limits.memory_max_stream_bytes if c.storage == StorageType.MEMORY
           else limits.storage_max_stream_bytes)
    if cap > 0 and c.max_bytes > cap:
        raise E.stream_max_stream_bytes_exceeded()


def _check_subjects(c: StreamConfig) -> None:
    if not c.subjects:
        if c.mirror is None and not c.sources:
            c.subjects = [c.name]
        return
    if c.mirror is not None:
        raise E.mirror_with_subjects()
    seen: set[str] = set()
    for i, subj in enumerate(c.subjects):
        if not valid_subject(subj):
            raise _invalid("invalid subject")
        if subj in seen:
            raise _invalid("duplicate subjects detected")
        if subj == ">":
            if not c.no_ack:
                raise _invalid("capturing all subjects requires no-ack to be true")
            if c.num_replicas != 1:
                raise _invalid("capturing all subjects requires replicas of 1")
        if not c.no_ack:
            for namespace in _API_NAMESPACES:
                if subjects_collide(subj, namespace) and not is_subset(subj, "$JS.EVENT.>"):
                    raise _invalid(
                        "subjects that overlap with jetstream api require no-ack to be true")
            if subjects_collide(subj, "$SYS.>") and not is_subset(subj, "$SYS.ACCOUNT.>"):
                raise _invalid("subjects that overlap with system api require no-ack to be true")
        for other in c.subjects[i + 1:]:
            if subjects_collide(other, subj):
                raise _invalid(f'subject "{subj}" overlaps with "{other}"')
        seen.add(subj)


def _check_transforms(c: StreamConfig, pedantic: bool) -> None:
    st = c.subject_transform
    if st is not None:
        if st.src and not valid_subject(st.src):
            raise E.stream_transform_invalid_source(err=f"invalid subject {st.src}")
        problem = mapping_error(st.src, st.dest)
        if problem:
            raise E.stream_transform_invalid_destination(err=problem)
    rp = c.republish
    if rp is None:
        return
    if not rp.src:
        if pedantic:
            raise E.pedantic(err="republish source can not be empty")
        rp.src = ">"
    if (rp.dest == ">" and rp.src == ">" and st is not None and len(c.subjects) == 1
            and st.src == c.subjects[0]):
        if pedantic:
            raise E.pedantic(err="implicit republish based on subject transform")
        rp.src = rp.dest = st.dest
    if any(subjects_collide(rp.dest, subj) for subj in c.subjects):
        raise _invalid("stream configuration for republish destination forms a cycle")
    if mapping_error(rp.src, rp.dest) or not valid_subject(rp.src):
        raise _invalid(f"stream configuration for republish with transform from '{rp.src}' "
                       f"to '{rp.dest}' not valid")


# -- subject mappings ---------------------------------------------------------------------

_FUNCTION = re.compile(r"^\{\{\s*([A-Za-z]+)\s*\((.*)\)\s*\}\}$")
_LEGACY = re.compile(r"^\$(\d+)$")
# Mapping functions and whether their first argument is a wildcard index.
_FUNCTIONS = {
    "wildcard": True, "partition": False, "split": True, "splitfromleft": True,
    "splitfromright": True, "slicefromleft": True, "slicefromright": True, "left": True,
    "right": True, "random": False,
}
_BAD = "invalid mapping destination"


def mapping_error(src: str, dest: str) -> str | None:
    """Why ``src`` → ``dest`` is not a valid subject mapping, in nats-server's words."""
    if not dest:
        return None
    src = src or ">"
    if not valid_subject(src):
        return "invalid subject"
    wildcards = sum(1 for t in src.split(".") if t == "*")
    after_fwc = False
    for token in dest.split("."):
        if not token or after_fwc:
            return f"{_BAD}: invalid transform in {token}"
        if token == ">":
            after_fwc = True
            continue
        if any(ws in token for ws in " \t\r\n\f"):
            return f"{_BAD}: invalid transform in {token}"
        legacy = _LEGACY.match(token)
        if legacy and not 1 <= int(legacy.group(1)) <= wildcards:
            return f"{_BAD}: wildcard index out of range in {token}"
        if "{{" not in token or "}}" not in token:
            continue
        fn = _FUNCTION.match(token)
        if fn is None or fn.group(1).lower() not in _FUNCTIONS:
            return f"{_BAD}: unknown function in {token}"
        name, args = fn.group(1).lower(), [a.strip() for a in fn.group(2).split(",")]
        indexes = args[:1] if _FUNCTIONS[name] else (args[1:] if name == "partition" else [])
        for idx in indexes:
            if not idx.isdigit() or not 1 <= int(idx) <= wildcards:
                return f"{_BAD}: wildcard index out of range in {token}"
    return None


# -- updates ------------------------------------------------------------------------------


def check_stream_update(old: StreamConfig, new: StreamConfig, *, pedantic: bool = False,
                        lookup: StreamLookup | None = None) -> StreamConfig:
    """The config to store when ``old`` is updated to the requested ``new``.

    Raises the error nats-server gives for a change it forbids; sealing also forces
    ``max_age`` 0, discard new, deny delete/purge and no roll-ups, as it does.
    """
    c = normalize_stream_config(new, pedantic=pedantic, lookup=lookup)
    if c.name != old.name:
        raise _invalid("stream configuration name must match original")
    if c.storage != old.storage:
        raise _invalid("stream configuration update can not change storage type")
    if c.retention != old.retention and Retention.WORKQUEUE in (c.retention, old.retention):
        raise _invalid(
            "stream configuration update can not change retention policy to/from workqueue")
    if old.sealed and not c.sealed:
        raise _invalid("stream configuration update can not unseal a sealed stream")
    if old.deny_delete and not c.deny_delete:
        raise _invalid("stream configuration update can not cancel deny message deletes")
    if old.deny_purge and not c.deny_purge:
        raise _invalid("stream configuration update can not cancel deny purge")
    # Dropping the mirror promotes it to a normal stream; changing it is not allowed.
    if c.mirror is not None and c.mirror != old.mirror:
        raise E.mirror_not_updatable()
    if c.discard_new_per_subject:
        _check_discard_new_per_subject(c)
    if old.allow_msg_ttl and not c.allow_msg_ttl:
        raise _invalid("message TTL status can not be disabled")
    if c.allow_msg_counter != old.allow_msg_counter:
        raise _invalid("stream configuration update can not change message counter setting")
    if old.allow_msg_schedules and not c.allow_msg_schedules:
        raise _invalid("message schedules can not be disabled")
    if c.persist_mode != old.persist_mode:
        raise _invalid("stream configuration update can not change persist mode")
    if c.sealed:
        c.max_age = 0
        c.discard = Discard.NEW
        c.deny_delete = c.deny_purge = True
        c.allow_rollup_hdrs = False
    return c
