"""JetStream API errors exactly as nats-server reports them.

Clients key off ``err_code`` (and sometimes the text), so every kind carries the
HTTP-like ``code``, the ``err_code`` and the description from nats-server's errors
table verbatim; ``{placeholders}`` are filled when the error is raised.  Each kind is a
module-level callable: ``raise stream_not_found()``, ``raise wrong_last_sequence(7)``,
``raise stream_invalid_config(err="max age needs to be >= 100ms")``.
"""

from __future__ import annotations

import re
from typing import Any

API_TYPE_PREFIX = "io.nats.jetstream.api.v1."
_PLACEHOLDER = re.compile(r"\{([a-z]+)\}")


class ApiError(Exception):
    """An error reply: ``{"code", "err_code", "description"}`` on the wire."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.err_code = err_code
        self.description = description

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "err_code": self.err_code, "description": self.description}

    def __str__(self) -> str:
        # nats-server's ApiError.Error() format.
        return f"{self.description} ({self.err_code})"

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.err_code}, {self.description!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiError) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.code, self.err_code, self.description))


class ErrorKind:
    """One row of the errors table; call it to build the :class:`ApiError`."""

    __slots__ = ("name", "code", "err_code", "description", "fields")

    def __init__(self, name: str, code: int, err_code: int, description: str) -> None:
        self.name = name  # nats-server's constant, for cross-reference
        self.code = code
        self.err_code = err_code
        self.description = description
        self.fields = tuple(_PLACEHOLDER.findall(description))

    def __call__(self, *args: object, **kwargs: object) -> ApiError:
        values = dict(zip(self.fields, args, strict=False)) | kwargs
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise TypeError(f"{self.name} needs {', '.join(missing)}")
        text = self.description
        for key, value in values.items():
            text = text.replace("{" + key + "}", str(value))
        return ApiError(self.code, self.err_code, text)

    def wrap(self, err: BaseException | str) -> ApiError:
        """Fill ``{err}`` from ``err`` unless it already is an API error (Go's ``Unless``)."""
        if isinstance(err, ApiError):
            return err
        return self(err=err)

    def __repr__(self) -> str:
        return f"<ErrorKind {self.name} {self.err_code}>"


BY_CODE: dict[int, ErrorKind] = {}


def _k(name: str, code: int, err_code: int, description: str) -> ErrorKind:
    kind = ErrorKind(name, code, err_code, description)
    BY_CODE[err_code] = kind
    return kind


def error_response(type_suffix: str, err: ApiError) -> dict[str, Any]:
    """The reply to a failed API call: ``{"type": ..., "error": {...}}``."""
    return {"type": API_TYPE_PREFIX + type_suffix, "error": err.to_dict()}


def go_quote(text: str) -> str:
    """Go's ``%q`` for the printable-ASCII texts errors quote (JSON escaping is close)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# -- general ------------------------------------------------------------------------------

bad_request = _k("JSBadRequestErr", 400, 10003, "bad request")
invalid_json = _k("JSInvalidJSONErr", 400, 10025, "invalid JSON: {err}")
not_empty_request = _k("JSNotEmptyRequestErr", 400, 10038, "expected an empty request payload")
not_enabled = _k("JSNotEnabledErr", 503, 10076, "JetStream not enabled")
not_enabled_for_account = _k(
    "JSNotEnabledForAccountErr", 503, 10039, "JetStream not enabled for account")
cluster_not_available = _k(
    "JSClusterNotAvailErr", 503, 10008, "JetStream system temporarily unavailable")
cluster_required = _k(
    "JSClusterRequiredErr", 503, 10010, "JetStream clustering support required")
cluster_unsupported = _k(
    "JSClusterUnSupportFeatureErr", 503, 10036, "not currently supported in clustered mode")
no_account = _k("JSNoAccountErr", 503, 10035, "account not found")
account_resources_exceeded = _k(
    "JSAccountResourcesExceededErr", 400, 10002, "resource limits exceeded for account")
insufficient_resources = _k("JSInsufficientResourcesErr", 503, 10023, "insufficient resources")
storage_resources_exceeded = _k(
    "JSStorageResourcesExceededErr", 500, 10047, "insufficient storage resources available")
memory_resources_exceeded = _k(
    "JSMemoryResourcesExceededErr", 500, 10028, "insufficient memory resources available")
no_limits = _k(
    "JSNoLimitsErr", 400, 10120, "no JetStream default or applicable tiered limit present")
maximum_consumers = _k("JSMaximumConsumersLimitErr", 400, 10026, "maximum consumers limit reached")
maximum_streams = _k("JSMaximumStreamsLimitErr", 400, 10027, "maximum number of streams reached")
replicas_negative = _k(
    "JSReplicasCountCannotBeNegative", 400, 10133, "replicas count cannot be negative")
pedantic = _k("JSPedanticErrF", 400, 10157, "pedantic mode: {err}")
required_api_level = _k("JSRequiredApiLevelErr", 412, 10185, "JetStream minimum api level required")
too_many_requests = _k("JSStreamTooManyRequests", 429, 10167, "too many requests")

# -- streams ------------------------------------------------------------------------------

stream_not_found = _k("JSStreamNotFoundErr", 404, 10059, "stream not found")
stream_name_in_use = _k(
    "JSStreamNameExistErr", 400, 10058, "stream name already in use with a different configuration")
stream_name_mismatch = _k(
    "JSStreamMismatchErr", 400, 10056, "stream name in subject does not match request")
stream_name_path_separators = _k(
    "JSStreamNameContainsPathSeparatorsErr", 400, 10128,
    "Stream name can not contain path separators")
subjects_overlap = _k(
    "JSStreamSubjectOverlapErr", 400, 10065, "subjects overlap with an existing stream")
stream_invalid_config = _k("JSStreamInvalidConfigF", 500, 10052, "{err}")
stream_create_failed = _k("JSStreamCreateErrF", 500, 10049, "{err}")
stream_update_failed = _k("JSStreamUpdateErrF", 500, 10069, "{err}")
stream_delete_failed = _k("JSStreamDeleteErrF", 500, 10050, "{err}")
stream_general_error = _k("JSStreamGeneralErrorF", 500, 10051, "{err}")
stream_limits = _k("JSStreamLimitsErrF", 500, 10053, "{err}")
stream_invalid = _k("JSStreamInvalidErr", 500, 10096, "stream not valid")
stream_offline = _k("JSStreamOfflineErr", 500, 10118, "stream is offline")
stream_offline_reason = _k("JSStreamOfflineReasonErrF", 500, 10194, "stream is offline: {err}")
stream_replicas_not_supported = _k(
    "JSStreamReplicasNotSupportedErr", 500, 10074,
    "replicas > 1 not supported in non-clustered mode")
stream_replicas_not_updatable = _k(
    "JSStreamReplicasNotUpdatableErr", 400, 10061, "Replicas configuration can not be updated")
stream_max_bytes_required = _k(
    "JSStreamMaxBytesRequired", 400, 10113,
    "account requires a stream config to have max bytes set")
stream_max_stream_bytes_exceeded = _k(
    "JSStreamMaxStreamBytesExceeded", 400, 10122,
    "stream max bytes exceeds account limit max stream bytes")
stream_info_max_subjects = _k(
    "JSStreamInfoMaxSubjectsErr", 500, 10117, "subject details would exceed maximum allowed")
stream_transform_invalid_source = _k(
    "JSStreamTransformInvalidSource", 400, 10155, "stream transform source: {err}")
stream_transform_invalid_destination = _k(
    "JSStreamTransformInvalidDestination", 400, 10156, "stream transform: {err}")
stream_snapshot_failed = _k("JSStreamSnapshotErrF", 500, 10064, "snapshot failed: {err}")
stream_restore_failed = _k("JSStreamRestoreErrF", 500, 10062, "restore failed: {err}")
stream_name_exist_restore_failed = _k(
    "JSStreamNameExistRestoreFailedErr", 400, 10130, "stream name already in use, cannot restore")
stream_external_api_overlap = _k(
    "JSStreamExternalApiOverlapErrF", 400, 10021,
    "stream external api prefix {prefix} must not overlap with {subject}")
stream_external_del_prefix_overlaps = _k(
    "JSStreamExternalDelPrefixOverlapsErrF", 400, 10022,
    "stream external delivery prefix {prefix} overlaps with stream subject {subject}")
stream_invalid_external_delivery_subject = _k(
    "JSStreamInvalidExternalDeliverySubjErrF", 400, 10024,
    "stream external delivery prefix {prefix} must not contain wildcards")

# mirrors and sources
mirror_not_updatable = _k(
    "JSStreamMirrorNotUpdatableErr", 400, 10055, "stream mirror configuration can not be updated")
mirror_with_subjects = _k(
    "JSMirrorWithSubjectsErr", 400, 10034, "stream mirrors can not contain subjects")
mirror_with_sources = _k(
    "JSMirrorWithSourcesErr", 400, 10031, "stream mirrors can not also contain other sources")
mirror_with_start_seq_and_time = _k(
    "JSMirrorWithStartSeqAndTimeErr", 400, 10032,
    "stream mirrors can not have both start seq and start time configured")
mirror_with_subject_filters = _k(
    "JSMirrorWithSubjectFiltersErr", 400, 10033, "stream mirrors can not contain filtered subjects")
mirror_with_first_seq = _k(
    "JSMirrorWithFirstSeqErr", 400, 10143, "stream mirrors can not have first sequence configured")
mirror_max_message_size_too_big = _k(
    "JSMirrorMaxMessageSizeTooBigErr", 400, 10030,
    "stream mirror must have max message size >= source")
mirror_invalid_stream_name = _k(
    "JSMirrorInvalidStreamName", 400, 10142, "mirrored stream name is invalid")
mirror_multiple_filters = _k(
    "JSMirrorMultipleFiltersNotAllowed", 400, 10150,
    "mirror with multiple subject transforms cannot also have a single subject filter")
mirror_invalid_subject_filter = _k(
    "JSMirrorInvalidSubjectFilter", 400, 10151, "mirror transform source: {err}")
mirror_overlapping_subject_filters = _k(
    "JSMirrorOverlappingSubjectFilters", 400, 10152, "mirror subject filters can not overlap")
mirror_invalid_transform_destination = _k(
    "JSMirrorInvalidTransformDestination", 400, 10154, "mirror transform: {err}")
mirror_with_counters = _k(
    "JSMirrorWithCountersErr", 400, 10173, "stream mirrors can not also calculate counters")
mirror_with_atomic_publish = _k(
    "JSMirrorWithAtomicPublishErr", 400, 10198,
    "stream mirrors can not also use atomic publishing")
mirror_with_batch_publish = _k(
    "JSMirrorWithBatchPublishErr", 400, 10209, "stream mirrors can not also use batch publishing")
mirror_with_msg_schedules = _k(
    "JSMirrorWithMsgSchedulesErr", 400, 10186, "stream mirrors can not also schedule messages")
mirror_consumer_cfg_invalid = _k(
    "JSMirrorDurableConsumerCfgInvalid", 400, 10213, "stream mirror consumer config is invalid")
mirror_consumer_setup_failed = _k("JSMirrorConsumerSetupFailedErrF", 500, 10029, "{err}")
source_consumer_setup_failed = _k("JSSourceConsumerSetupFailedErrF", 500, 10045, "{err}")
source_max_message_size_too_big = _k(
    "JSSourceMaxMessageSizeTooBigErr", 400, 10046,
    "stream source must have max message size >= target")
source_duplicate = _k(
    "JSSourceDuplicateDetected", 400, 10140, "duplicate source configuration detected")
source_invalid_stream_name = _k(
    "JSSourceInvalidStreamName", 400, 10141, "sourced stream name is invalid")
source_multiple_filters = _k(
    "JSSourceMultipleFiltersNotAllowed", 400, 10144,
    "source with multiple subject transforms cannot also have a single subject filter")
source_invalid_subject_filter = _k(
    "JSSourceInvalidSubjectFilter", 400, 10145, "source transform source: {err}")
source_invalid_transform_destination = _k(
    "JSSourceInvalidTransformDestination", 400, 10146, "source transform: {err}")
source_overlapping_subject_filters = _k(
    "JSSourceOverlappingSubjectFilters", 400, 10147, "source filters can not overlap")
source_with_msg_schedules = _k(
    "JSSourceWithMsgSchedulesErr", 400, 10187, "stream source can not also schedule messages")
source_consumer_cfg_invalid = _k(
    "JSSourceDurableConsumerCfgInvalid", 400, 10215, "stream source consumer config is invalid")
source_consumer_duplicate = _k(
    "JSSourceDurableConsumerDuplicateDetected", 400, 10216,
    "duplicate stream source consumer detected")

# -- publishing and stored messages -------------------------------------------------------

message_size_exceeded = _k(
    "JSStreamMessageExceedsMaximumErr", 400, 10054, "message size exceeds maximum allowed")
header_size_exceeded = _k(
    "JSStreamHeaderExceedsMaximumErr", 400, 10097, "header size exceeds maximum allowed of 64k")
expected_stream_mismatch = _k(
    "JSStreamNotMatchErr", 400, 10060, "expected stream does not match")
wrong_last_sequence = _k("JSStreamWrongLastSequenceErrF", 400, 10071, "wrong last sequence: {seq}")
wrong_last_sequence_constant = _k(
    "JSStreamWrongLastSequenceConstantErr", 400, 10164, "wrong last sequence")
wrong_last_msg_id = _k("JSStreamWrongLastMsgIDErrF", 400, 10070, "wrong last msg ID: {id}")
expected_last_seq_per_subject_not_ready = _k(
    "JSStreamExpectedLastSeqPerSubjectNotReady", 503, 10163,
    "expected last sequence per subject temporarily unavailable")
expected_last_seq_per_subject_invalid = _k(
    "JSStreamExpectedLastSeqPerSubjectInvalid", 400, 10193,
    "missing sequence for expected last sequence per subject")
sequence_mismatch = _k(
    "JSStreamSequenceNotMatchErr", 503, 10063, "expected stream sequence does not match")
duplicate_message_in_process = _k(
    "JSStreamDuplicateMessageConflict", 409, 10158, "duplicate message id is in process")
store_failed = _k("JSStreamStoreFailedF", 503, 10077, "{err}")
stream_sealed = _k("JSStreamSealedErr", 400, 10109, "invalid operation on sealed stream")
purge_failed = _k("JSStreamPurgeFailedF", 500, 10110, "{err}")
rollup_failed = _k("JSStreamRollupFailedF", 500, 10111, "{err}")
msg_delete_failed = _k("JSStreamMsgDeleteFailedF", 500, 10057, "{err}")
no_message_found = _k("JSNoMessageFoundErr", 404, 10037, "no message found")
sequence_not_found = _k("JSSequenceNotFoundErrF", 400, 10043, "sequence {seq} not found")
msg_ttl_invalid = _k("JSMessageTTLInvalidErr", 400, 10165, "invalid per-message TTL")
msg_ttl_disabled = _k("JSMessageTTLDisabledErr", 400, 10166, "per-message TTL is disabled")
min_last_sequence = _k("JSStreamMinLastSeqErr", 412, 10180, "min last sequence")
msg_counters_disabled = _k("JSMessageIncrDisabledErr", 400, 10168, "message counters is disabled")
msg_incr_missing = _k("JSMessageIncrMissingErr", 400, 10169, "message counter increment is missing")
msg_incr_payload = _k("JSMessageIncrPayloadErr", 400, 10170, "message counter has payload")
msg_incr_invalid = _k("JSMessageIncrInvalidErr", 400, 10171, "message counter increment is invalid")
msg_counter_broken = _k("JSMessageCounterBrokenErr", 400, 10172, "message counter is broken")
atomic_publish_disabled = _k("JSAtomicPublishDisabledErr", 400, 10174, "atomic publish is disabled")
atomic_publish_missing_seq = _k(
    "JSAtomicPublishMissingSeqErr", 400, 10175, "atomic publish sequence is missing")
atomic_publish_incomplete = _k(
    "JSAtomicPublishIncompleteBatchErr", 400, 10176, "atomic publish batch is incomplete")
atomic_publish_unsupported_header = _k(
    "JSAtomicPublishUnsupportedHeaderBatchErr", 400, 10177,
    "atomic publish unsupported header used: {header}")
atomic_publish_invalid_id = _k(
    "JSAtomicPublishInvalidBatchIDErr", 400, 10179, "atomic publish batch ID is invalid")
atomic_publish_too_large = _k(
    "JSAtomicPublishTooLargeBatchErrF", 400, 10199, "atomic publish batch is too large: {size}")
atomic_publish_invalid_commit = _k(
    "JSAtomicPublishInvalidBatchCommitErr", 400, 10200, "atomic publish batch commit is invalid")
atomic_publish_duplicate_msg_id = _k(
    "JSAtomicPublishContainsDuplicateMessageErr", 400, 10201,
    "atomic publish batch contains duplicate message id")
atomic_publish_too_many_inflight = _k(
    "JSAtomicPublishTooManyInflight", 429, 10210, "atomic publish too many inflight")
msg_schedules_disabled = _k(
    "JSMessageSchedulesDisabledErr", 400, 10188, "message schedules is disabled")
msg_schedules_pattern_invalid = _k(
    "JSMessageSchedulesPatternInvalidErr", 400, 10189, "message schedules pattern is invalid")
msg_schedules_target_invalid = _k(
    "JSMessageSchedulesTargetInvalidErr", 400, 10190, "message schedules target is invalid")
msg_schedules_ttl_invalid = _k(
    "JSMessageSchedulesTTLInvalidErr", 400, 10191, "message schedules invalid per-message TTL")
msg_schedules_rollup_invalid = _k(
    "JSMessageSchedulesRollupInvalidErr", 400, 10192, "message schedules invalid rollup")
msg_schedules_source_invalid = _k(
    "JSMessageSchedulesSourceInvalidErr", 400, 10203, "message schedules source is invalid")
msg_schedules_scheduler_invalid = _k(
    "JSMessageSchedulesSchedulerInvalidErr", 400, 10212, "message schedules invalid scheduler")
msg_schedules_time_zone_invalid = _k(
    "JSMessageSchedulesTimeZoneInvalidErr", 400, 10223, "message schedules time zone is invalid")


def purge_not_permitted() -> ApiError:
    """A purge on a ``deny_purge`` stream (10110)."""
    return purge_failed(err="stream purge not permitted")


def delete_not_permitted() -> ApiError:
    """A message delete on a ``deny_delete`` stream (10057)."""
    return msg_delete_failed(err="message delete not permitted")


def rollup_not_permitted() -> ApiError:
    """A ``Nats-Rollup`` header on a stream without ``allow_rollup_hdrs`` (10111)."""
    return rollup_failed(err="rollup not permitted")


def rollup_invalid(value: str) -> ApiError:
    """A ``Nats-Rollup`` header that is neither ``sub`` nor ``all`` (10111)."""
    return rollup_failed(err=f"rollup value invalid: {go_quote(value)}")


# -- consumers ----------------------------------------------------------------------------

consumer_not_found = _k("JSConsumerNotFoundErr", 404, 10014, "consumer not found")
consumer_create_failed = _k("JSConsumerCreateErrF", 500, 10012, "{err}")
consumer_name_in_use = _k("JSConsumerNameExistErr", 400, 10013, "consumer name already in use")
consumer_already_exists = _k("JSConsumerAlreadyExists", 400, 10148, "consumer already exists")
consumer_does_not_exist = _k("JSConsumerDoesNotExist", 400, 10149, "consumer does not exist")
consumer_existing_active = _k(
    "JSConsumerExistingActiveErr", 400, 10105, "consumer already exists and is still active")
consumer_replacement_different = _k(
    "JSConsumerReplacementWithDifferentNameErr", 400, 10106,
    "consumer replacement durable config not the same")
consumer_config_required = _k(
    "JSConsumerConfigRequiredErr", 400, 10078, "consumer config required")
consumer_durable_not_in_subject = _k(
    "JSConsumerDurableNameNotInSubjectErr", 400, 10016,
    "consumer expected to be durable but no durable name set in subject")
consumer_name_mismatch = _k(
    "JSConsumerDurableNameNotMatchSubjectErr", 400, 10017,
    "consumer name in subject does not match durable name in request")
consumer_durable_not_set = _k(
    "JSConsumerDurableNameNotSetErr", 400, 10018,
    "consumer expected to be durable but a durable name was not set")
consumer_ephemeral_with_durable_in_subject = _k(
    "JSConsumerEphemeralWithDurableInSubjectErr", 400, 10019,
    "consumer expected to be ephemeral but detected a durable name set in subject")
consumer_ephemeral_with_durable = _k(
    "JSConsumerEphemeralWithDurableNameErr", 400, 10020,
    "consumer expected to be ephemeral but a durable name was set in request")
consumer_filter_mismatch = _k(
    "JSConsumerCreateFilterSubjectMismatchErr", 400, 10131,
    "Consumer create request did not match filtered subject from create subject")
consumer_durable_name_mismatch = _k(
    "JSConsumerCreateDurableAndNameMismatch", 400, 10132,
    "Consumer Durable and Name have to be equal if both are provided")
consumer_name_path_separators = _k(
    "JSConsumerNameContainsPathSeparatorsErr", 400, 10127,
    "Consumer name can not contain path separators")
consumer_name_too_long = _k(
    "JSConsumerNameTooLongErrF", 400, 10102, "consumer name is too long, maximum allowed is {max}")
consumer_bad_durable_name = _k(
    "JSConsumerBadDurableNameErr", 400, 10103, "durable name can not contain '.', '*', '>'")
consumer_description_too_long = _k(
    "JSConsumerDescriptionTooLongErrF", 400, 10107,
    "consumer description is too long, maximum allowed is {max}")
consumer_metadata_too_long = _k(
    "JSConsumerMetadataLengthErrF", 400, 10135, "consumer metadata exceeds maximum size of {limit}")
consumer_store_failed = _k(
    "JSConsumerStoreFailedErrF", 500, 10104, "error creating store for consumer: {err}")
consumer_offline = _k("JSConsumerOfflineErr", 500, 10119, "consumer is offline")
consumer_deliver_to_wildcards = _k(
    "JSConsumerDeliverToWildcardsErr", 400, 10079, "consumer deliver subject has wildcards")
consumer_invalid_deliver_subject = _k(
    "JSConsumerInvalidDeliverSubject", 400, 10112, "invalid push consumer deliver subject")
consumer_deliver_cycle = _k(
    "JSConsumerDeliverCycleErr", 400, 10081, "consumer deliver subject forms a cycle")
consumer_push_max_waiting = _k(
    "JSConsumerPushMaxWaitingErr", 400, 10080, "consumer in push mode can not set max waiting")
consumer_max_pending_ack_policy_required = _k(
    "JSConsumerMaxPendingAckPolicyRequiredErr", 400, 10082,
    "consumer requires ack policy for max ack pending")
consumer_small_heartbeat = _k(
    "JSConsumerSmallHeartbeatErr", 400, 10083, "consumer idle heartbeat needs to be >= 100ms")
consumer_pull_requires_ack = _k(
    "JSConsumerPullRequiresAckErr", 400, 10084,
    "consumer in pull mode requires explicit ack policy on workqueue stream")
consumer_pull_not_durable = _k(
    "JSConsumerPullNotDurableErr", 400, 10085, "consumer in pull mode requires a durable name")
consumer_pull_with_rate_limit = _k(
    "JSConsumerPullWithRateLimitErr", 400, 10086,
    "consumer in pull mode can not have rate limit set")
consumer_max_waiting_negative = _k(
    "JSConsumerMaxWaitingNegativeErr", 400, 10087, "consumer max waiting needs to be positive")
consumer_hb_requires_push = _k(
    "JSConsumerHBRequiresPushErr", 400, 10088,
    "consumer idle heartbeat requires a push based consumer")
consumer_fc_requires_push = _k(
    "JSConsumerFCRequiresPushErr", 400, 10089,
    "consumer flow control requires a push based consumer")
consumer_direct_requires_push = _k(
    "JSConsumerDirectRequiresPushErr", 400, 10090, "consumer direct requires a push based consumer")
consumer_direct_requires_ephemeral = _k(
    "JSConsumerDirectRequiresEphemeralErr", 400, 10091,
    "consumer direct requires an ephemeral consumer")
consumer_on_mapped = _k("JSConsumerOnMappedErr", 400, 10092, "consumer direct on a mapped consumer")
consumer_filter_not_subset = _k(
    "JSConsumerFilterNotSubsetErr", 400, 10093,
    "consumer filter subject is not a valid subset of the interest subjects")
consumer_invalid_policy = _k("JSConsumerInvalidPolicyErrF", 400, 10094, "{err}")
consumer_invalid_sampling = _k(
    "JSConsumerInvalidSamplingErrF", 400, 10095,
    "failed to parse consumer sampling configuration: {err}")
consumer_wq_requires_explicit_ack = _k(
    "JSConsumerWQRequiresExplicitAckErr", 400, 10098, "workqueue stream requires explicit ack")
consumer_wq_multiple_unfiltered = _k(
    "JSConsumerWQMultipleUnfilteredErr", 400, 10099,
    "multiple non-filtered consumers not allowed on workqueue stream")
consumer_wq_not_unique = _k(
    "JSConsumerWQConsumerNotUniqueErr", 400, 10100,
    "filtered consumer not unique on workqueue stream")
consumer_wq_not_deliver_all = _k(
    "JSConsumerWQConsumerNotDeliverAllErr", 400, 10101,
    "consumer must be deliver all on workqueue stream")
consumer_fc_needs_heartbeats = _k(
    "JSConsumerWithFlowControlNeedsHeartbeats", 400, 10108,
    "consumer with flow control also needs heartbeats")
consumer_max_request_batch_negative = _k(
    "JSConsumerMaxRequestBatchNegativeErr", 400, 10114,
    "consumer max request batch needs to be > 0")
consumer_max_request_expires_too_small = _k(
    "JSConsumerMaxRequestExpiresTooSmall", 400, 10115,
    "consumer max request expires needs to be >= 1ms")
consumer_max_deliver_backoff = _k(
    "JSConsumerMaxDeliverBackoffErr", 400, 10116,
    "max deliver is required to be > length of backoff values")
consumer_max_ack_pending_excess = _k(
    "JSConsumerMaxPendingAckExcessErrF", 400, 10121,
    "consumer max ack pending exceeds system limit of {limit}")
consumer_max_request_batch_exceeded = _k(
    "JSConsumerMaxRequestBatchExceededF", 400, 10125,
    "consumer max request batch exceeds server limit of {limit}")
consumer_replicas_exceeds_stream = _k(
    "JSConsumerReplicasExceedsStream", 400, 10126,
    "consumer config replica count exceeds parent stream")
consumer_replicas_should_match_stream = _k(
    "JSConsumerReplicasShouldMatchStream", 400, 10134,
    "consumer config replicas must match interest retention stream's replicas")
consumer_duplicate_filter_subjects = _k(
    "JSConsumerDuplicateFilterSubjects", 400, 10136,
    "consumer cannot have both FilterSubject and FilterSubjects specified")
consumer_multiple_filters_not_allowed = _k(
    "JSConsumerMultipleFiltersNotAllowed", 400, 10137,
    "consumer with multiple subject filters cannot use subject based API")
consumer_overlapping_filters = _k(
    "JSConsumerOverlappingSubjectFilters", 400, 10138, "consumer subject filters cannot overlap")
consumer_empty_filter = _k(
    "JSConsumerEmptyFilter", 400, 10139, "consumer filter in FilterSubjects cannot be empty")
consumer_inactive_threshold_excess = _k(
    "JSConsumerInactiveThresholdExcess", 400, 10153,
    "consumer inactive threshold exceeds system limit of {limit}")
consumer_priority_policy_without_group = _k(
    "JSConsumerPriorityPolicyWithoutGroup", 400, 10159,
    "Setting PriorityPolicy requires at least one PriorityGroup to be set")
consumer_invalid_priority_group = _k(
    "JSConsumerInvalidPriorityGroupErr", 400, 10160,
    "Provided priority group does not exist for this consumer")
consumer_empty_group_name = _k(
    "JSConsumerEmptyGroupName", 400, 10161, "Group name cannot be an empty string")
consumer_invalid_group_name = _k(
    "JSConsumerInvalidGroupNameErr", 400, 10162,
    "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters")
consumer_push_with_priority_group = _k(
    "JSConsumerPushWithPriorityGroupErr", 400, 10178,
    "priority groups can not be used with push consumers")
consumer_priority_group_with_policy_none = _k(
    "JSConsumerPriorityGroupWithPolicyNone", 400, 10196,
    "consumer can not have priority groups when policy is none")
consumer_pinned_ttl_without_priority_policy = _k(
    "JSConsumerPinnedTTLWithoutPriorityPolicyNone", 400, 10197,
    "PinnedTTL cannot be set when PriorityPolicy is none")
consumer_ack_policy_invalid = _k(
    "JSConsumerAckPolicyInvalidErr", 400, 10181, "consumer ack policy invalid")
consumer_replay_policy_invalid = _k(
    "JSConsumerReplayPolicyInvalidErr", 400, 10182, "consumer replay policy invalid")
consumer_ack_wait_negative = _k(
    "JSConsumerAckWaitNegativeErr", 400, 10183, "consumer ack wait needs to be positive")
consumer_backoff_negative = _k(
    "JSConsumerBackOffNegativeErr", 400, 10184, "consumer backoff needs to be positive")
consumer_ack_fc_requires_push = _k(
    "JSConsumerAckFCRequiresPushErr", 400, 10218,
    "flow control ack policy requires a push based consumer")
consumer_ack_fc_requires_fc = _k(
    "JSConsumerAckFCRequiresFCErr", 400, 10219, "flow control ack policy requires flow control")
consumer_ack_fc_requires_max_ack_pending = _k(
    "JSConsumerAckFCRequiresMaxAckPendingErr", 400, 10220,
    "flow control ack policy requires max ack pending")
consumer_ack_fc_requires_no_ack_wait = _k(
    "JSConsumerAckFCRequiresNoAckWaitErr", 400, 10221,
    "flow control ack policy requires unset ack wait")
consumer_ack_fc_requires_no_max_deliver = _k(
    "JSConsumerAckFCRequiresNoMaxDeliverErr", 400, 10222,
    "flow control ack policy requires unset max deliver")
consumer_invalid_reset = _k("JSConsumerInvalidResetErr", 400, 10204, "invalid reset: {err}")


def from_storage(exc: BaseException, what: str) -> ApiError:
    """A storage failure as nats-server reports its store's: 10023 when the disk is
    full, else 10077 with what failed (``what``: "stream 'ORDERS'", ...)."""
    if getattr(exc, "out_of_space", False):
        return insufficient_resources()
    return store_failed(err=f"storage of {what} failed: {exc}")
