"""Server settings, read from nats-server's config file format and its command-line flags.

An existing ``nats-server -c FILE ...`` launch must mean the same to Jetport, so keys,
aliases, flag spellings, defaults and override rules follow nats-server. Anything
nats-server understands but Jetport cannot honour yet is rejected with the file and line
rather than ignored: a half-applied config is worse than a refused one.

Config keys are dispatched through :class:`KeyTable` instances (one per block), so a new
block is added by registering a handler, e.g.::

    @TOP_LEVEL_KEYS.key("websocket", "ws")
    def _websocket(opts: Options, entry: Entry) -> None: ...

Registering a name also removes it from that table's "not supported" list.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jetport.core.conf import SIZE_MULTIPLIERS, ConfDict, ConfError, load
from jetport.core.tls import min_tls_version

__all__ = [
    "AUTHORIZATION_KEYS",
    "JETSTREAM_KEYS",
    "TLS_KEYS",
    "TOP_LEVEL_KEYS",
    "Entry",
    "KeyTable",
    "Options",
    "OptionsError",
    "accepted_flags",
    "default_store_dir",
    "from_config",
    "parse_args",
    "parse_duration",
    "parse_size",
    "usage",
]

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 4222
DEFAULT_MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_CONTROL_LINE = 4096
DEFAULT_MAX_PENDING = 64 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 64 * 1024
#: Closed connections /connz?state=closed remembers (nats-server's default).
DEFAULT_MAX_CLOSED_CLIENTS = 10_000
DEFAULT_PING_INTERVAL = 120.0
DEFAULT_PING_MAX = 2
DEFAULT_WRITE_DEADLINE = 10.0
DEFAULT_AUTH_TIMEOUT = 2.0
DEFAULT_TLS_TIMEOUT = 2.0
DEFAULT_LAME_DUCK_DURATION = 120.0
DEFAULT_LAME_DUCK_GRACE_PERIOD = 10.0
MIN_LAME_DUCK_DURATION = 30.0
EMBEDDED_STORE_DIR = "./data"
EMBEDDED_HTTP_PORT = 8222
#: The embedded default has no authorization, so it serves this machine only ...
EMBEDDED_HOST = "127.0.0.1"
#: ... unless started with this flag (``jetport serve --open``).
OPEN_FLAG = "open"
_INT32_MAX = 2**31 - 1


class OptionsError(ValueError):
    """Settings that cannot be used; config problems are prefixed with ``file:line``."""


def default_store_dir() -> str:
    """Where ``-js`` without ``-sd`` keeps data: ``<os temp dir>/nats``, as nats-server does.

    nats-server then writes inside a ``jetstream`` subdirectory of the store dir.
    """
    return os.path.join(tempfile.gettempdir(), "nats")


@dataclass
class Options:
    """Every server setting, defaulting to nats-server's defaults."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # -1: pick a free port
    server_name: str = ""
    http_host: str = DEFAULT_HOST  # follows ``host`` unless set itself
    http_port: int = 0  # 0: monitoring off, -1: pick a free port
    jetstream: bool = False
    store_dir: str = ""  # default_store_dir() once JetStream is on
    jetstream_max_memory: int = -1  # -1: no configured limit
    jetstream_max_store: int = -1
    #: ``jetstream { sync_interval: always }``: fsync every commit before its ack.
    jetstream_sync_always: bool = False
    #: Who may read the HTTP door's monitoring pages that name clients, users, streams
    #: and accounts once authorization is configured: "system" (the system account's
    #: users) or "none" (anyone).  Jetport's own key: nats-server's monitoring port is
    #: private, this door also serves REST to browsers and devices.
    monitoring_auth: str = "system"
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_control_line: int = DEFAULT_MAX_CONTROL_LINE
    max_pending: int = DEFAULT_MAX_PENDING
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_closed_clients: int = DEFAULT_MAX_CLOSED_CLIENTS  # negative: keep none
    max_subscriptions: int = 0  # per connection; 0: unlimited
    ping_interval: float = DEFAULT_PING_INTERVAL  # seconds
    ping_max: int = DEFAULT_PING_MAX
    write_deadline: float = DEFAULT_WRITE_DEADLINE  # seconds
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT  # seconds; tls_timeout + 1 with TLS
    username: str = ""
    password: str = ""
    token: str = ""
    #: The command line these options came from (a reload reads it again).
    argv: list[str] = field(default_factory=list, repr=False, compare=False)
    #: The MQTT and WebSocket doors' blocks (:mod:`jetport.core.options_mqtt`,
    #: :mod:`jetport.core.options_websocket`); None when absent.
    mqtt: Any = field(default=None, repr=False, compare=False)
    websocket: Any = field(default=None, repr=False, compare=False)
    #: Users, permissions and accounts (:class:`jetport.core.authconf.AuthConfig`).
    auth_config: Any = field(default=None, repr=False, compare=False)
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_verify: bool = False
    tls_timeout: float = DEFAULT_TLS_TIMEOUT  # seconds
    tls_min_version: str = ""  # "1.2" | "1.3"; empty: 1.2
    tls_map: bool = False  # verify_and_map: the client certificate names the user
    debug: bool = False
    trace: bool = False
    trace_verbose: bool = False
    logtime: bool = True
    logtime_utc: bool = False
    log_file: str = ""
    log_size_limit: int = 0  # bytes; 0: no rotation
    log_max_num: int = 0  # rotated files kept; 0: all
    max_traced_msg_len: int = 0  # 0: unlimited
    pid_file: str = ""
    ports_file_dir: str = ""
    lame_duck_duration: float = DEFAULT_LAME_DUCK_DURATION  # seconds
    lame_duck_grace_period: float = DEFAULT_LAME_DUCK_GRACE_PERIOD  # seconds
    config_file: str = ""
    embedded: bool = False  # no arguments at all: every door on its default port
    action: str = "serve"  # "serve" | "version" | "help" | "test_config"
    #: Names of the fields a config file or flag set (defaults depend on it).
    explicit: set[str] = field(default_factory=set, repr=False, compare=False)

    def set(self, name: str, value: Any) -> None:
        """Assign a field and remember it was chosen rather than defaulted."""
        setattr(self, name, value)
        self.explicit.add(name)


# -- durations and sizes ------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``"1h2m"``, ``"1.5s"`` or ``"300ms"``."""
    rest = text
    sign = 1.0
    if rest[:1] in ("+", "-"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern matches the empty string
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        if not unit:
            raise ValueError(f"missing unit in duration {text!r}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(f"{whole or 0}.{frac or 0}") * _DURATION_UNITS[unit]
        rest = rest[match.end() :]
    return sign * total


_SIZE = re.compile(r"(-?\d+)([A-Za-z]*)")


def parse_size(value: int | str) -> int:
    """Bytes in an integer or a size string, with the config file's suffix rules.

    ``1K`` is 1000 and ``1KB``/``1Ki``/``1KiB`` are 1024 (likewise M, G, T, P, E).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    suffix = match.group(2).lower() if match else ""
    if match is None or suffix not in SIZE_MULTIPLIERS:
        raise ValueError(f"invalid size {value!r}")
    return int(match.group(1)) * SIZE_MULTIPLIERS[suffix]


def _storage_size(value: Any) -> int:
    """JetStream limits: an integer, or a string ending in K, M, G or T (powers of 1024).

    This string form is nats-server's own, separate from the integer suffixes above:
    ``max_mem: 1G`` is 10^9 bytes while ``max_mem: "1G"`` is 2^30.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an integer or a string")
    if value == "":
        return 0
    shift = {"K": 10, "M": 20, "G": 30, "T": 40}.get(value[-1])
    if shift is None:
        raise ValueError("sizes defined as strings must end in K, M, G or T")
    if not re.fullmatch(r"[+-]?\d+", value[:-1]):
        raise ValueError(f"invalid size {value!r}")
    return int(value[:-1]) << shift


def _split_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` like Go's net.SplitHostPort (``[v6]:port`` included)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"could not parse address string {text!r}")
        host, port = text[1:end], text[end + 2 :]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"could not parse address string {text!r}: missing port")
        if ":" in host:
            raise ValueError(f"could not parse address string {text!r}: too many colons")
    if not re.fullmatch(r"[+-]?\d+", port):
        raise ValueError(f"could not parse port {port!r}")
    return host, int(port)


# -- config file ---------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a config block, with typed accessors that report file:line."""

    key: str
    value: Any
    where: str

    def error(self, message: str) -> OptionsError:
        return OptionsError(f"{self.where}: {message}")

    def _wrong(self, expected: str) -> OptionsError:
        return self.error(f"{self.key!r} expects {expected}, got {self.value!r}")

    def string(self) -> str:
        if not isinstance(self.value, str):
            raise self._wrong("a string")
        return self.value

    def integer(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self._wrong("an integer")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._wrong("a boolean")
        return self.value

    def block(self) -> ConfDict:
        if not isinstance(self.value, ConfDict):
            raise self._wrong("a block { ... }")
        return self.value

    def seconds(self) -> float:
        """A duration string (``"2m"``) or a number of seconds."""
        value = self.value
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise self.error(f"error parsing {self.key}: {exc}")
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise self._wrong('a duration such as "2m" or a number of seconds')


Handler = Callable[[Options, Entry], None]


class KeyTable:
    """The keys one config block accepts, and those known but not supported yet."""

    def __init__(self, section: str) -> None:
        self.section = section  # prefix for messages, e.g. "tls."
        self.handlers: dict[str, Handler] = {}
        self.unsupported: dict[str, str] = {}

    def key(self, *names: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler under ``names`` (matched case-insensitively)."""

        def register(handler: Handler) -> Handler:
            for name in names:
                self.handlers[name.lower()] = handler
                self.unsupported.pop(name.lower(), None)
            return handler

        return register

    def not_supported(self, feature: str, *names: str) -> None:
        """Mark nats-server keys Jetport refuses, naming the missing ``feature``."""
        for name in names:
            if name.lower() not in self.handlers:
                self.unsupported[name.lower()] = feature

    def apply(self, opts: Options, block: ConfDict) -> None:
        """Run every key of ``block`` through its handler; report all problems at once."""
        problems: list[str] = []
        for key, value in block.items():
            entry = Entry(key, value, block.where(key))
            name = key.lower()
            try:
                if name in self.handlers:
                    self.handlers[name](opts, entry)
                elif name in self.unsupported:
                    raise entry.error(
                        f'"{self.section}{key}" is not supported by Jetport '
                        f"({self.unsupported[name]})"
                    )
                elif not block.used_as_variable(key):  # nats-server: variables are not fields
                    raise entry.error(f'unknown field "{self.section}{key}"')
            except OptionsError as exc:
                problems.append(str(exc))
        if problems:
            raise OptionsError("\n".join(problems))


TOP_LEVEL_KEYS = KeyTable("")
AUTHORIZATION_KEYS = KeyTable("authorization.")
TLS_KEYS = KeyTable("tls.")
JETSTREAM_KEYS = KeyTable("jetstream.")


def from_config(conf: ConfDict) -> Options:
    """Options from a parsed config file, nats-server defaults elsewhere."""
    opts = Options()
    TOP_LEVEL_KEYS.apply(opts, conf)
    _finish(opts)
    return opts


def _listen(entry: Entry) -> tuple[str, int]:
    if isinstance(entry.value, int) and not isinstance(entry.value, bool):
        return "", entry.value
    if not isinstance(entry.value, str):
        raise entry.error(f"{entry.key!r} expects a port or host:port, got {entry.value!r}")
    try:
        return _split_host_port(entry.value)
    except ValueError as exc:
        raise entry.error(str(exc))


def _simple(table: KeyTable, target: str, kind: str, *names: str) -> None:
    """Register keys that copy a string/integer/boolean/seconds value into one field."""

    def handler(opts: Options, entry: Entry) -> None:
        opts.set(target, getattr(entry, kind)())

    table.key(*names)(handler)


_simple(TOP_LEVEL_KEYS, "host", "string", "host", "net")
_simple(TOP_LEVEL_KEYS, "port", "integer", "port")
_simple(TOP_LEVEL_KEYS, "server_name", "string", "server_name")
_simple(TOP_LEVEL_KEYS, "http_port", "integer", "http_port", "monitor_port")
_simple(TOP_LEVEL_KEYS, "max_pending", "integer", "max_pending")
_simple(TOP_LEVEL_KEYS, "max_connections", "integer", "max_connections", "max_conn")
_simple(TOP_LEVEL_KEYS, "max_closed_clients", "integer", "max_closed_clients")
_simple(TOP_LEVEL_KEYS, "max_subscriptions", "integer", "max_subscriptions", "max_subs")
_simple(TOP_LEVEL_KEYS, "ping_interval", "seconds", "ping_interval")
_simple(TOP_LEVEL_KEYS, "ping_max", "integer", "ping_max")
_simple(TOP_LEVEL_KEYS, "write_deadline", "seconds", "write_deadline")
_simple(TOP_LEVEL_KEYS, "debug", "boolean", "debug")
_simple(TOP_LEVEL_KEYS, "trace", "boolean", "trace")
_simple(TOP_LEVEL_KEYS, "logtime", "boolean", "logtime")
_simple(TOP_LEVEL_KEYS, "logtime_utc", "boolean", "logtime_utc")
_simple(TOP_LEVEL_KEYS, "log_file", "string", "log_file", "logfile")
_simple(TOP_LEVEL_KEYS, "log_size_limit", "integer", "log_size_limit", "logfile_size_limit")
_simple(TOP_LEVEL_KEYS, "log_max_num", "integer", "logfile_max_num", "log_max_num")
_simple(TOP_LEVEL_KEYS, "max_traced_msg_len", "integer", "max_traced_msg_len")
_simple(TOP_LEVEL_KEYS, "pid_file", "string", "pid_file", "pidfile")
_simple(TOP_LEVEL_KEYS, "ports_file_dir", "string", "ports_file_dir")


@TOP_LEVEL_KEYS.key("monitoring_auth")
def _monitoring_auth_key(opts: Options, entry: Entry) -> None:
    value = entry.string().lower()
    if value not in ("system", "none"):
        raise entry.error(f'monitoring_auth expects "system" or "none", got {entry.value!r}')
    opts.set("monitoring_auth", value)


@TOP_LEVEL_KEYS.key("listen")
def _listen_key(opts: Options, entry: Entry) -> None:
    host, port = _listen(entry)
    opts.set("host", host or DEFAULT_HOST)
    opts.set("port", port)


@TOP_LEVEL_KEYS.key("http")
def _http_key(opts: Options, entry: Entry) -> None:
    host, port = _listen(entry)
    if host:
        opts.set("http_host", host)
    opts.set("http_port", port)


@TOP_LEVEL_KEYS.key("max_payload", "max_control_line")
def _int32_key(opts: Options, entry: Entry) -> None:
    value = entry.integer()
    if value > _INT32_MAX:
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
_simple(JETSTREAM_KEYS, "jetstream", "boolean", "enabled", "enable")


@JETSTREAM_KEYS.key("max_memory_store", "max_mem_store", "max_mem", "max_file_store", "max_file")
def _jetstream_limit_key(opts: Options, entry: Entry) -> None:
    try:
        size = _storage_size(entry.value)
    except ValueError as exc:
        raise entry.error(f"{entry.key}: {exc}")
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


@TOP_LEVEL_KEYS.key("authorization")
def _authorization_key(opts: Options, entry: Entry) -> None:
    AUTHORIZATION_KEYS.apply(opts, entry.block())
    if (opts.username or opts.password) and opts.token:
        raise entry.error("cannot have a user/password and a token in authorization")


_simple(AUTHORIZATION_KEYS, "username", "string", "user", "username")
_simple(AUTHORIZATION_KEYS, "password", "string", "pass", "password")
_simple(AUTHORIZATION_KEYS, "token", "string", "token")
_simple(AUTHORIZATION_KEYS, "auth_timeout", "seconds", "timeout")


@TOP_LEVEL_KEYS.key("tls")
def _tls_key(opts: Options, entry: Entry) -> None:
    TLS_KEYS.apply(opts, entry.block())
    if not opts.tls_cert or not opts.tls_key:
        raise entry.error("tls needs both cert_file and key_file")
    opts.set("tls", True)


_simple(TLS_KEYS, "tls_cert", "string", "cert_file")
_simple(TLS_KEYS, "tls_key", "string", "key_file")
_simple(TLS_KEYS, "tls_ca", "string", "ca_file")
_simple(TLS_KEYS, "tls_verify", "boolean", "verify")
_simple(TLS_KEYS, "tls_timeout", "seconds", "timeout")


@TLS_KEYS.key("min_version")
def _tls_min_version_key(opts: Options, entry: Entry) -> None:
    try:
        min_tls_version(entry.value)
    except ValueError as exc:
        raise entry.error(f"error parsing tls config: {exc}")
    opts.set("tls_min_version", entry.value)


@TLS_KEYS.key("verify_and_map")
def _tls_map_key(opts: Options, entry: Entry) -> None:
    # As in nats-server, "true" also turns verify on; "false" leaves verify alone.
    mapped = entry.boolean()
    if mapped:
        opts.set("tls_verify", True)
    opts.set("tls_map", mapped)

_NOT_SUPPORTED: tuple[tuple[KeyTable, str, str], ...] = (
    (TOP_LEVEL_KEYS, "clustering", "cluster connect_error_reports reconnect_error_reports"),
    (TOP_LEVEL_KEYS, "gateways", "gateway"),
    (TOP_LEVEL_KEYS, "leaf nodes", "leaf leafnodes"),
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
    (AUTHORIZATION_KEYS, "auth callout", "auth_callout"),
    (
        TLS_KEYS,
        "this TLS option",
        "insecure verify_cert_and_check_known_urls cipher_suites "
        "curve_preferences pinned_certs connection_rate_limit handshake_first first cert_store "
        "cert_match cert_match_by ocsp_peer certs",
    ),
    (JETSTREAM_KEYS, "JetStream domains", "domain"),
    (
        JETSTREAM_KEYS,
        "JetStream encryption",
        "key ek encryption_key prev_key prev_ek prev_encryption_key cipher",
    ),
    (
        JETSTREAM_KEYS,
        "this JetStream option",
        "extension_hint max_outstanding_catchup max_buffered_msgs max_buffered_size "
        "request_queue_limit limits unique_tag strict tpm max_ack_pending",
    ),
)
for _table, _feature, _names in _NOT_SUPPORTED:
    _table.not_supported(_feature, *_names.split())


def _finish(opts: Options) -> None:
    """Fill derived defaults the way nats-server does once every source is read."""
    if not opts.host:
        opts.host = DEFAULT_HOST
    if "http_host" not in opts.explicit or not opts.http_host:
        opts.http_host = opts.host
    # nats-server treats zero as "use the default" for these.
    for name, default in (
        ("port", DEFAULT_PORT),
        ("max_payload", DEFAULT_MAX_PAYLOAD),
        ("max_control_line", DEFAULT_MAX_CONTROL_LINE),
        ("max_pending", DEFAULT_MAX_PENDING),
        ("max_connections", DEFAULT_MAX_CONNECTIONS),
        ("max_closed_clients", DEFAULT_MAX_CLOSED_CLIENTS),
        ("ping_interval", DEFAULT_PING_INTERVAL),
        ("ping_max", DEFAULT_PING_MAX),
        ("write_deadline", DEFAULT_WRITE_DEADLINE),
        ("tls_timeout", DEFAULT_TLS_TIMEOUT),
        ("lame_duck_duration", DEFAULT_LAME_DUCK_DURATION),
        ("lame_duck_grace_period", DEFAULT_LAME_DUCK_GRACE_PERIOD),
    ):
        if not getattr(opts, name):
            setattr(opts, name, default)
    if "auth_timeout" not in opts.explicit or not opts.auth_timeout:
        opts.auth_timeout = opts.tls_timeout + 1.0 if opts.tls else DEFAULT_AUTH_TIMEOUT
    if opts.jetstream and not opts.store_dir:
        opts.store_dir = default_store_dir()
    authconf.check(opts)
    if opts.max_payload > opts.max_pending:
        raise OptionsError(
            f"max_payload ({opts.max_payload}) cannot be higher than "
            f"max_pending ({opts.max_pending})"
        )


# -- command line --------------------------------------------------------------------

# Go's flag package spells every flag with one or two dashes; "kind" decides whether a
# flag takes the next argument. Targets starting with "@" are handled specially.
_FLAGS: dict[str, tuple[str, str]] = {}


def _flag(kind: str, target: str, *names: str) -> None:
    for name in names:
        _FLAGS[name] = (kind, target)


_flag("str", "host", "a", "addr", "net")
_flag("int", "port", "p", "port")
_flag("str", "server_name", "n", "name", "server_name")
_flag("int", "http_port", "m", "http_port")
_flag("str", "@config", "c", "config")
_flag("bool", "@test", "t")
_flag("bool", "@version", "v", "version")
_flag("bool", "@help", "h", "help")
_flag("bool", "jetstream", "js", "jetstream")
_flag("str", "store_dir", "sd", "store_dir")
_flag("str", "username", "user")
_flag("str", "password", "pass")
_flag("str", "token", "auth")
_flag("bool", "tls", "tls")
_flag("str", "tls_cert", "tlscert")
_flag("str", "tls_key", "tlskey")
_flag("str", "tls_ca", "tlscacert")
_flag("bool", "tls_verify", "tlsverify")
_flag("bool", "debug", "D", "debug")
_flag("bool", "trace", "V", "trace")
_flag("bool", "@DV", "DV")
_flag("bool", "@VV", "VV")
_flag("bool", "@DVV", "DVV")
_flag("bool", "logtime", "T", "logtime")
_flag("bool", "logtime_utc", "logtime_utc")
_flag("str", "log_file", "l", "log")
_flag("int", "log_size_limit", "log_size_limit")
_flag("int", "max_traced_msg_len", "max_traced_msg_len")
_flag("str", "pid_file", "P", "pid")
_flag("str", "ports_file_dir", "ports_file_dir")

_UNSUPPORTED_FLAGS: dict[str, str] = {
    name: feature
    for feature, names in (
        ("clustering", "routes cluster cluster_listen cluster_name cluster_advertise"),
        ("clustering", "no_advertise connect_retries"),
        ("HTTPS monitoring", "ms https_port"),
        ("client advertise", "client_advertise"),
        ("syslog", "s syslog r remote_syslog"),
        ("profiling", "profile"),
        ("signals to a running server", "sl signal"),
        ("TLS help", "help_tls"),
    )
    for name in names.split()
}

_COMBINED_FLAGS = (
    ("@DV", ("debug", "trace")),
    ("@DVV", ("debug", "trace", "trace_verbose")),
    ("@VV", ("trace", "trace_verbose")),
)
_TLS_FLAGS = ("tls", "tlscert", "tlskey", "tlscacert", "tlsverify")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def accepted_flags() -> list[str]:
    """Every flag name ``jetport serve`` takes (each with one or two dashes)."""
    return sorted([*_FLAGS, OPEN_FLAG])


def _go_int(text: str) -> int:
    """Parse like Go's strconv.ParseInt(text, 0, 64): 0x/0o/0b prefixes, leading-0 octal."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    body = text[len(sign) :]
    if not body or body != body.strip():
        raise ValueError(text)
    if re.fullmatch(r"0[0-7_]+", body):
        body = "0o" + body[1:]
    value = int(sign + body, 0)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def _scan_flags(argv: list[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Read flags the way Go's flag package does; return them in order, plus the rest."""
    given: list[tuple[str, Any]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        if arg == "--":
            i += 1
            break
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name[0] in "-=":
            raise OptionsError(f"bad flag syntax: {arg}")
        name, has_value, raw = name.partition("=")
        if name in _UNSUPPORTED_FLAGS:
            raise OptionsError(
                f"flag -{name} is not supported by Jetport ({_UNSUPPORTED_FLAGS[name]})"
            )
        if name not in _FLAGS:
            raise OptionsError(f"flag provided but not defined: -{name}")
        kind = _FLAGS[name][0]
        if kind == "bool":
            if not has_value:
                value: Any = True
            elif raw in _GO_TRUE or raw in _GO_FALSE:
                value = raw in _GO_TRUE
            else:
                raise OptionsError(f"invalid boolean value {raw!r} for -{name}: parse error")
        else:
            if not has_value:
                i += 1
                if i >= len(argv):
                    raise OptionsError(f"flag needs an argument: -{name}")
                raw = argv[i]
            value = raw
            if kind == "int":
                try:
                    value = _go_int(raw)
                except ValueError:
                    raise OptionsError(f"invalid value {raw!r} for flag -{name}: parse error")
        given.append((name, value))
        i += 1
    return given, argv[i:]


def parse_args(argv: list[str]) -> Options:
    """Options from nats-server style arguments; ``-c FILE`` is read first, flags win.

    No arguments at all selects the embedded default: JetStream on with data in
    ``./data`` and monitoring on port 8222, every door on its default port of
    127.0.0.1; ``--open`` alone is the same on every interface.
    """
    opening = [a for a in argv if a.lstrip("-") == OPEN_FLAG and a.startswith("-")]
    if opening and len(opening) != len(argv):
        raise OptionsError(
            f"-{OPEN_FLAG} opens the embedded default to other machines and takes no other "
            "flag; with flags or a config file, choose the address with -a (e.g. -a 0.0.0.0)"
        )
    if not argv or opening:
        opts = Options(
            host=DEFAULT_HOST if opening else EMBEDDED_HOST,
            embedded=True,
            jetstream=True,
            store_dir=EMBEDDED_STORE_DIR,
            http_port=EMBEDDED_HTTP_PORT,
        )
        options_mqtt.embedded(opts)
        options_websocket.embedded(opts)
        _finish(opts)
        return opts
    given, rest = _scan_flags(argv)
    by_target = {_FLAGS[name][1]: value for name, value in given}
    config_file = by_target.get("@config", "")
    if by_target.get("@version"):
        return Options(action="version", config_file=config_file)
    if by_target.get("@help"):
        return Options(action="help", config_file=config_file)
    if rest:
        command = rest[0].lower()
        if command in ("version", "help"):
            return Options(action=command, config_file=config_file)
        raise OptionsError(f"unrecognized command: {rest[0]!r}")
    testing = bool(by_target.get("@test"))
    opts = Options()
    if config_file:
        try:
            TOP_LEVEL_KEYS.apply(opts, load(config_file))
        except ConfError as exc:
            raise OptionsError(str(exc)) from exc
    elif testing:
        raise OptionsError("-t tests a configuration file: give one with -c/--config")
    opts.config_file = config_file
    for name, value in given:
        target = _FLAGS[name][1]
        if not target.startswith("@"):
            opts.set(target, value)
    # Combined flags win over -D/-V whatever the order, as in nats-server.
    for combo, fields in _COMBINED_FLAGS:
        if combo in by_target:
            for name in fields:
                opts.set(name, by_target[combo])
    _apply_tls_flags(opts, given)
    _finish(opts)
    opts.action = "test_config" if testing else "serve"
    opts.argv = list(argv)
    return opts


def _apply_tls_flags(opts: Options, given: list[tuple[str, Any]]) -> None:
    """Any --tls* flag turns TLS on (and then needs a cert and key); -tls=false turns it off."""
    names = {name for name, _ in given}
    if "tls" in names and not opts.tls:
        opts.set("tls", False)
        return
    if not names.intersection(_TLS_FLAGS):
        return
    if not opts.tls_cert:
        raise OptionsError("TLS server certificate must be present and valid (--tlscert)")
    if not opts.tls_key:
        raise OptionsError("TLS server private key must be present and valid (--tlskey)")
    opts.set("tls", True)


def usage() -> str:
    """Help text for ``jetport serve``: the nats-server flags Jetport understands."""
    return """\
usage: jetport serve [options]

With no options at all, every door listens on its default port of 127.0.0.1 only
(no authorization is configured), JetStream is on with data in ./data and monitoring
is on port 8222.  "jetport serve --open" is the same on every interface.  With any
other option, Jetport does what nats-server does with it.

Server:
      --open                       the embedded default, on every interface
  -a, --addr, --net <host>         bind to host (default 0.0.0.0)
  -p, --port <port>                client port (default 4222, -1 for a free port)
  -n, --name, --server_name <name> server name
  -m, --http_port <port>           monitoring port (-1 for a free port)
  -c, --config <file>              nats-server configuration file
  -t                               test the configuration file and exit
  -P, --pid <file>                 write the process id to file
      --ports_file_dir <dir>       write the listening ports into dir

Logging:
  -l, --log <file>                 log to file
  -T, --logtime                    timestamp log lines (default true)
      --logtime_utc                timestamps in UTC
      --log_size_limit <bytes>     rotate the log file at this size
      --max_traced_msg_len <len>   cut traced messages at this length
  -D, --debug                      debug output
  -V, --trace                      protocol trace
  -VV                              verbose trace
  -DV                              debug and trace
  -DVV                             debug and verbose trace

JetStream:
  -js, --jetstream                 enable JetStream
  -sd, --store_dir <dir>           storage directory

Authorization:
      --user <user>                user required of clients
      --pass <password>            password required of clients
      --auth <token>               token required of clients

TLS:
      --tls                        enable TLS
      --tlscert <file>             server certificate
      --tlskey <file>              server private key
      --tlsverify                  require and verify client certificates
      --tlscacert <file>           CA for client certificates

  -h, --help                       this message
  -v, --version                    version

Flags take one or two dashes and "-flag value" or "-flag=value"; boolean flags take
only "-flag" or "-flag=false". Clustering, gateway and leaf node flags are refused.
"""


# The security keys and the MQTT and WebSocket blocks live in their own modules,
# which register them on these tables.
from jetport.core import authconf, options_mqtt, options_websocket  # noqa: E402
