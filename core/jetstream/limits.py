"""JetStream account limits: how a config spells them and the checks nats-server makes.

An account's ``jetstream`` value is ``enabled``/``disabled``, a boolean, or a block of
limits; the block's values must be integers (the config reader already turns ``1M`` or
``1GB`` into one) and ``max_bytes_required`` a boolean, exactly as nats-server accepts.
The reservation arithmetic follows nats-server: a stream reserves its ``max_bytes`` against
the account's and the server's memory or storage, and a stream without one counts as 1 byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models import JetStreamAccountLimits

#: Each spelling nats-server accepts (lower-cased) and the JetStreamAccountLimits field it sets.
KEYS: dict[str, str] = {
    **dict.fromkeys(("max_memory", "max_mem", "mem", "memory"), "max_memory"),
    **dict.fromkeys(("max_store", "max_file", "max_disk", "store", "disk"), "max_storage"),
    **dict.fromkeys(("max_streams", "streams"), "max_streams"),
    **dict.fromkeys(("max_consumers", "consumers"), "max_consumers"),
    **dict.fromkeys(("max_bytes_required", "max_stream_bytes", "max_bytes"),
                    "max_bytes_required"),
    **dict.fromkeys(("mem_max_stream_bytes", "memory_max_stream_bytes"),
                    "memory_max_stream_bytes"),
    **dict.fromkeys(("disk_max_stream_bytes", "store_max_stream_bytes"),
                    "storage_max_stream_bytes"),
    "max_ack_pending": "max_ack_pending",
}
_GO_TYPES = {int: "int64", float: "float64", list: "[]interface {}"}
_ENABLE = {"enabled": True, "enable": True, "disabled": False, "disable": False}


def account_limits_from_conf(value: Any) -> JetStreamAccountLimits | None:
    """An account's ``jetstream`` value as limits; None when JetStream is off for it.

    Raises ValueError, worded like nats-server's config errors, for anything else.
    """
    if isinstance(value, bool):
        return JetStreamAccountLimits() if value else None
    if isinstance(value, str):
        enabled = _ENABLE.get(value.lower())
        if enabled is None:
            raise ValueError(f"Expected 'enabled' or 'disabled' for string value, got '{value}'")
        return JetStreamAccountLimits() if enabled else None
    if not isinstance(value, Mapping):
        kind = _GO_TYPES.get(type(value), type(value).__name__)
        raise ValueError(f"Expected map, bool or string to define JetStream, got {kind}")
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for key, item in value.items():
        name = KEYS.get(key.lower())
        if name is None:
            used = getattr(value, "used_as_variable", None)
            if used is None or not used(key):  # nats-server: variables are not fields
                problems.append(f'unknown field "{key}"')
        elif name == "max_bytes_required":
            if not isinstance(item, bool):
                problems.append(f'Expected a parseable bool for "{key}", got {item}')
            else:
                fields[name] = item
        elif isinstance(item, bool) or not isinstance(item, int):
            problems.append(f'Expected a parseable size for "{key}", got {item}')
        else:
            fields[name] = item
    if problems:
        raise ValueError("; ".join(problems))
    return JetStreamAccountLimits(**fields)


# -- the checks ------------------------------------------------------------------------


def reservation_error(storage: str, add: int, *, account_max: int, account_reserved: int,
                      server_max: int, server_reserved: int) -> E.ApiError | None:
    """10028 / 10047 when reserving ``add`` more bytes goes over the account or the server.

    A negative ``add`` (no ``max_bytes``) reserves 1 byte; a negative maximum is no limit.
    """
    if add < 0:
        add = 1
    over = (0 <= account_max < account_reserved + add) or (0 <= server_max < server_reserved + add)
    if not over:
        return None
    return E.memory_resources_exceeded() if storage == "memory" else E.storage_resources_exceeded()


def publish_error(size: int, *, account_max: int, account_used: int, server_max: int,
                  server_used: int) -> E.ApiError | None:
    """What a publish of ``size`` stored bytes gets when storage is full.

    The server is full once its usage is already over its maximum (10023); the account
    refuses a message that would take it over its maximum (10002).
    """
    if 0 <= server_max < server_used:
        return E.insufficient_resources()
    if 0 <= account_max < account_used + size:
        return E.account_resources_exceeded()
    return None


def consumers_cap(stream_max: int, limits: JetStreamAccountLimits) -> int:
    """Consumers one stream may have: its own cap unless the account's is smaller."""
    if stream_max <= 0 or 0 < limits.max_consumers < stream_max:
        return limits.max_consumers
    return stream_max
