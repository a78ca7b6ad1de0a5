"""The ``jetstream {}`` block (and the top-level ``store_dir``)."""

from __future__ import annotations

from collections.abc import Callable

from jetport.core.config.file import ConfDict
from jetport.core.config.keys import JETSTREAM_KEYS, TOP_LEVEL_KEYS, Entry, KeyTable, simple
from jetport.core.config.options import Options
from jetport.core.config.values import storage_size


def _set_store_dir(opts: Options, entry: Entry) -> None:
    # nats-server accepts the directory at top level or in the jetstream block, not both.
    if opts.store_dir:
        raise entry.error("duplicate 'store_dir' configuration")
    opts.set("store_dir", entry.string())


TOP_LEVEL_KEYS.key("store_dir", "storedir")(_set_store_dir)


@TOP_LEVEL_KEYS.key("jetstream")
def _jetstream_key(opts: Options, entry: Entry) -> None:
    value = entry.value
    if isinstance(value, bool):
        opts.set("jetstream", value)
    elif isinstance(value, str):
        word = value.lower()
        if word not in ("enabled", "enable", "disabled", "disable"):
            raise entry.error(f"expected 'enabled' or 'disabled' for jetstream, got {value!r}")
        opts.set("jetstream", word.startswith("enable"))
    elif isinstance(value, ConfDict):
        opts.set("jetstream", True)  # a block turns JetStream on unless it says otherwise
        JETSTREAM_KEYS.apply(opts, value)
    else:
        raise entry.error(f"expected a block, boolean or 'enabled' for jetstream, got {value!r}")


JETSTREAM_KEYS.key("store_dir", "store", "storedir")(_set_store_dir)
simple(JETSTREAM_KEYS, "jetstream", "boolean", "enabled", "enable")


@JETSTREAM_KEYS.key("max_memory_store", "max_mem_store", "max_mem", "max_file_store", "max_file")
def _jetstream_limit_key(opts: Options, entry: Entry) -> None:
    try:
        size = storage_size(entry.value)
    except ValueError as exc:
        raise entry.error(f"{entry.key}: {exc}") from exc
    memory = "mem" in entry.key.lower()
    opts.set("jetstream_max_memory" if memory else "jetstream_max_store", size)


@JETSTREAM_KEYS.key("sync_interval", "sync")
def _jetstream_sync_key(opts: Options, entry: Entry) -> None:
    """Only ``always`` is honoured: between checkpoints SQLite's WAL is not synced on a
    timer, so a period would be a promise Jetport does not keep."""
    if not (isinstance(entry.value, str) and entry.value.lower() == "always"):
        raise entry.error(
            f"{entry.key}: Jetport supports only \"always\" (fsync every commit before its "
            "acknowledgement); without it, acknowledged messages survive the process being "
            "killed, and the last ones before a WAL checkpoint may be lost on power failure"
        )
    opts.set("jetstream_sync_always", True)


@JETSTREAM_KEYS.key("domain")
def _jetstream_domain_key(opts: Options, entry: Entry) -> None:
    """A subject token naming this server's JetStream across leaf node links."""
    value = entry.string()
    if not value or any(c in value for c in ".*> \t\r\n"):
        raise entry.error(f"invalid domain name: {value!r} (must be one subject token)")
    opts.set("jetstream_domain", value)


LIMITS_KEYS = KeyTable("jetstream.limits.")
BATCH_KEYS = KeyTable("jetstream.limits.batch.")


@JETSTREAM_KEYS.key("limits")
def _jetstream_limits_key(opts: Options, entry: Entry) -> None:
    LIMITS_KEYS.apply(opts, entry.block())


@LIMITS_KEYS.key("batch")
def _batch_limits_key(opts: Options, entry: Entry) -> None:
    BATCH_KEYS.apply(opts, entry.block())


def _positive(target: str) -> Callable[[Options, Entry], None]:
    def handler(opts: Options, entry: Entry) -> None:
        value = entry.integer()
        if value <= 0:
            raise entry.error(f"{entry.key} must be positive, got {value}")
        opts.set(target, value)

    return handler


@BATCH_KEYS.key("timeout")
def _batch_timeout_key(opts: Options, entry: Entry) -> None:
    seconds = entry.seconds()
    if seconds <= 0:
        raise entry.error(f"timeout must be positive, got {entry.value!r}")
    opts.set("jetstream_batch_timeout", seconds)


for _name in ("max_msgs", "max_inflight_per_stream", "max_inflight_total"):
    BATCH_KEYS.key(_name)(_positive(f"jetstream_batch_{_name}"))


_NOT_SUPPORTED: tuple[tuple[KeyTable, str, str], ...] = (
    (
        JETSTREAM_KEYS,
        "JetStream encryption",
        "key ek encryption_key prev_key prev_ek prev_encryption_key cipher",
    ),
    (
        JETSTREAM_KEYS,
        "this JetStream option",
        "extension_hint max_outstanding_catchup max_buffered_msgs max_buffered_size "
        "request_queue_limit unique_tag strict tpm max_ack_pending",
    ),
    (LIMITS_KEYS, "this JetStream limit",
     "max_request_batch max_ack_pending max_ha_assets duplicate_window"),
)
for _table, _feature, _names in _NOT_SUPPORTED:
    _table.not_supported(_feature, *_names.split())
