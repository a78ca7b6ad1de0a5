"""The JetStream wire shapes and config rules, one import for the NATS and HTTP doors.

Shapes are pydantic models whose ``dump()`` / ``to_json()`` (and ``model_dump_json``)
produce the JSON nats-server sends; the ``normalize_*`` and ``check_*`` functions apply
its defaults and raise its errors (:mod:`jetport.core.jetstream.errors`).
"""

from jetport.core.gojson import go_json
from jetport.core.jetstream.models_api import (
    AccountInfo,
    AccountTier,
    ApiStats,
    JetStreamAccountLimits,
    ListRequest,
    MsgDeleteRequest,
    MsgGetRequest,
    NamesRequest,
    PubAck,
    PurgeRequest,
    StoredMessage,
    StreamInfoRequest,
    pub_ack_error,
    response,
)
from jetport.core.jetstream.models_base import (
    MAX_DESCRIPTION_LEN,
    MAX_METADATA_LEN,
    MAX_NAME_LEN,
    NS,
    AckPolicy,
    Bool,
    Compression,
    ConsumerAction,
    DeliverPolicy,
    Discard,
    GoEnum,
    PersistMode,
    PriorityPolicy,
    ReplayPolicy,
    Retention,
    StorageType,
    WireModel,
    format_time,
    parse_model,
    parse_time,
    valid_name,
)
from jetport.core.jetstream.models_consumer import (
    BadPullRequest,
    ConsumerConfig,
    ConsumerInfo,
    ConsumerPauseRequest,
    ConsumerPauseResponse,
    CreateConsumerRequest,
    PriorityGroupState,
    PullRequest,
    SequenceInfo,
    parse_consumer_request,
    parse_pull_request,
)
from jetport.core.jetstream.models_consumer_check import (
    check_consumer_update,
    check_workqueue_consumer,
    normalize_consumer_config,
)
from jetport.core.jetstream.models_stream import (
    ClusterInfo,
    ErrorBody,
    ExternalStream,
    LostStreamData,
    PeerInfo,
    Placement,
    RePublish,
    StreamAlternate,
    StreamConfig,
    StreamConsumerLimits,
    StreamInfo,
    StreamSource,
    StreamSourceInfo,
    StreamState,
    SubjectTransformConfig,
)
from jetport.core.jetstream.models_stream_check import (
    StreamLookup,
    check_stream_create,
    check_stream_update,
    mapping_error,
    normalize_stream_config,
)
from jetport.core.timeutil import ZERO_TIME_NS


class _StreamConfigRequest(StreamConfig):
    pedantic: Bool = False


def parse_stream_config(data: object, *, strict: bool = False) -> tuple[StreamConfig, bool]:
    """A STREAM.CREATE/UPDATE body as (config, pedantic), with nats-server's 10025 errors.

    ``strict`` rejects unknown fields as nats-server 2.11+ does; the default ignores
    them so configs from newer clients still load.
    """
    req = parse_model(_StreamConfigRequest, data, strict=strict, root="StreamConfigRequest")
    fields = {name: getattr(req, name) for name in StreamConfig.model_fields}
    return StreamConfig.model_construct(**fields), req.pedantic


__all__ = [
    "MAX_DESCRIPTION_LEN", "MAX_METADATA_LEN", "MAX_NAME_LEN", "NS",
    "ZERO_TIME_NS", "AccountInfo", "JetStreamAccountLimits", "AccountTier", "AckPolicy", "ApiStats",
    "BadPullRequest", "ClusterInfo", "Compression", "ConsumerAction", "ConsumerConfig",
    "ConsumerInfo", "ConsumerPauseRequest", "ConsumerPauseResponse", "CreateConsumerRequest",
    "DeliverPolicy", "Discard", "ErrorBody",
    "ExternalStream", "GoEnum", "ListRequest", "LostStreamData", "MsgDeleteRequest",
    "MsgGetRequest", "NamesRequest", "PeerInfo", "PersistMode", "Placement",
    "PriorityGroupState", "PriorityPolicy", "PubAck", "PullRequest", "PurgeRequest",
    "RePublish", "ReplayPolicy", "Retention", "SequenceInfo", "StorageType", "StoredMessage",
    "StreamAlternate", "StreamConfig", "StreamConsumerLimits",
    "StreamInfo", "StreamInfoRequest", "StreamLookup", "StreamSource", "StreamSourceInfo",
    "StreamState", "SubjectTransformConfig", "WireModel", "check_consumer_update",
    "check_stream_create", "check_stream_update", "check_workqueue_consumer", "format_time",
    "go_json", "mapping_error", "normalize_consumer_config", "normalize_stream_config",
    "parse_consumer_request", "parse_model", "parse_pull_request", "parse_stream_config",
    "parse_time", "pub_ack_error", "response", "valid_name",
]
