"""The top-level keys of the config file: listeners, limits, logging, files."""

from __future__ import annotations

from jetport.core.config.keys import TOP_LEVEL_KEYS, Entry, KeyTable, listen_address, simple
from jetport.core.config.options import (
    DEFAULT_HOST,
    INT32_MAX,
    MIN_LAME_DUCK_DURATION,
    Options,
)

simple(TOP_LEVEL_KEYS, "host", "string", "host", "net")
simple(TOP_LEVEL_KEYS, "port", "integer", "port")
simple(TOP_LEVEL_KEYS, "server_name", "string", "server_name")
simple(TOP_LEVEL_KEYS, "http_port", "integer", "http_port", "monitor_port")
simple(TOP_LEVEL_KEYS, "max_pending", "integer", "max_pending")
simple(TOP_LEVEL_KEYS, "max_connections", "integer", "max_connections", "max_conn")
simple(TOP_LEVEL_KEYS, "max_closed_clients", "integer", "max_closed_clients")
simple(TOP_LEVEL_KEYS, "max_subscriptions", "integer", "max_subscriptions", "max_subs")
simple(TOP_LEVEL_KEYS, "ping_interval", "seconds", "ping_interval")
simple(TOP_LEVEL_KEYS, "ping_max", "integer", "ping_max")
simple(TOP_LEVEL_KEYS, "write_deadline", "seconds", "write_deadline")
simple(TOP_LEVEL_KEYS, "no_fast_producer_stall", "boolean", "no_fast_producer_stall")
simple(TOP_LEVEL_KEYS, "debug", "boolean", "debug")
simple(TOP_LEVEL_KEYS, "trace", "boolean", "trace")
simple(TOP_LEVEL_KEYS, "logtime", "boolean", "logtime")
simple(TOP_LEVEL_KEYS, "logtime_utc", "boolean", "logtime_utc")
simple(TOP_LEVEL_KEYS, "log_file", "string", "log_file", "logfile")
simple(TOP_LEVEL_KEYS, "log_size_limit", "integer", "log_size_limit", "logfile_size_limit")
simple(TOP_LEVEL_KEYS, "log_max_num", "integer", "logfile_max_num", "log_max_num")
simple(TOP_LEVEL_KEYS, "max_traced_msg_len", "integer", "max_traced_msg_len")
simple(TOP_LEVEL_KEYS, "pid_file", "string", "pid_file", "pidfile")
simple(TOP_LEVEL_KEYS, "ports_file_dir", "string", "ports_file_dir")


@TOP_LEVEL_KEYS.key("monitoring_auth")
def _monitoring_auth_key(opts: Options, entry: Entry) -> None:
    value = entry.string().lower()
    if value not in ("system", "none"):
        raise entry.error(f'monitoring_auth expects "system" or "none", got {entry.value!r}')
    opts.set("monitoring_auth", value)


@TOP_LEVEL_KEYS.key("listen")
def _listen_key(opts: Options, entry: Entry) -> None:
    host, port = listen_address(entry)
    opts.set("host", host or DEFAULT_HOST)
    opts.set("port", port)


@TOP_LEVEL_KEYS.key("http")
def _http_key(opts: Options, entry: Entry) -> None:
    host, port = listen_address(entry)
    if host:
        opts.set("http_host", host)
    opts.set("http_port", port)


@TOP_LEVEL_KEYS.key("max_payload", "max_control_line")
def _int32_key(opts: Options, entry: Entry) -> None:
    value = entry.integer()
    if value > INT32_MAX:
        raise entry.error(f"{entry.key} value is too big")
    opts.set(entry.key.lower(), value)


@TOP_LEVEL_KEYS.key("trace_verbose")
def _trace_verbose_key(opts: Options, entry: Entry) -> None:
    opts.set("trace_verbose", entry.boolean())
    opts.set("trace", opts.trace_verbose)


def _duration_at_least(entry: Entry, minimum: float) -> float:
    seconds = entry.seconds()
    if seconds < minimum:
        raise entry.error(f"invalid {entry.key} of {entry.value!r}, minimum is {minimum:g} seconds")
    return seconds


@TOP_LEVEL_KEYS.key("lame_duck_duration")
def _lame_duck_key(opts: Options, entry: Entry) -> None:
    opts.set("lame_duck_duration", _duration_at_least(entry, MIN_LAME_DUCK_DURATION))


@TOP_LEVEL_KEYS.key("lame_duck_grace_period")
def _lame_duck_grace_key(opts: Options, entry: Entry) -> None:
    opts.set("lame_duck_grace_period", _duration_at_least(entry, 0.0))


_NOT_SUPPORTED: tuple[tuple[KeyTable, str, str], ...] = (
    (TOP_LEVEL_KEYS, "clustering", "cluster connect_error_reports reconnect_error_reports"),
    (TOP_LEVEL_KEYS, "gateways", "gateway"),
    (
        TOP_LEVEL_KEYS,
        "subject mappings",
        "mappings maps default_js_domain",
    ),
    (
        TOP_LEVEL_KEYS,
        "operator mode",
        "resolver_tls resolver_pinned_accounts trusted trusted_keys",
    ),
    (TOP_LEVEL_KEYS, "HTTPS monitoring", "https https_port http_base_path"),
    (TOP_LEVEL_KEYS, "OCSP", "ocsp ocsp_cache"),
    (TOP_LEVEL_KEYS, "syslog", "syslog remote_syslog"),
    (TOP_LEVEL_KEYS, "profiling", "prof_port prof_block_rate"),
    (
        TOP_LEVEL_KEYS,
        "this tuning option",
        "client_advertise allow_non_tls max_sub_tokens "
        "max_subscription_tokens disable_sublist_cache no_sublist_cache no_header_support "
        "server_tags disable_short_first_ping",
    ),
)
for _table, _feature, _names in _NOT_SUPPORTED:
    _table.not_supported(_feature, *_names.split())
