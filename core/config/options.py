"""Every server setting in one typed object, with nats-server's defaults.

The file parser (:mod:`.file`), the key tables (:mod:`.keys`), one module per block and
the command line (:mod:`.flags`) all fill an :class:`Options`; the server is built from
it once (a reload builds a new one).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jetport.core.config.auth import AuthConfig
    from jetport.core.config.leafnode import LeafNodeOptions
    from jetport.core.config.mqtt import MqttOptions
    from jetport.core.config.websocket import WebSocketOptions

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
INT32_MAX = 2**31 - 1



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
    #: ``jetstream { domain }``: this server's JetStream also answers ``$JS.<domain>.API``.
    jetstream_domain: str = ""
    #: ``jetstream { limits { batch { ... } } }``: atomic batch publish limits (seconds a
    #: batch may wait for its next message, messages per batch, open batches per stream
    #: and on the server), nats-server's defaults.
    jetstream_batch_timeout: float = 10.0
    jetstream_batch_max_msgs: int = 1000
    jetstream_batch_max_inflight_per_stream: int = 50
    jetstream_batch_max_inflight_total: int = 1000
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
    #: Never hold a publisher back for a slow reader: the reader is cut off sooner.
    no_fast_producer_stall: bool = False
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT  # seconds; tls_timeout + 1 with TLS
    username: str = ""
    password: str = ""
    token: str = ""
    #: The command line these options came from (a reload reads it again).
    argv: list[str] = field(default_factory=list, repr=False, compare=False)
    #: The MQTT and WebSocket doors' blocks (:mod:`.mqtt`, :mod:`.websocket`); None
    #: when absent.
    mqtt: MqttOptions | None = field(default=None, repr=False, compare=False)
    websocket: WebSocketOptions | None = field(default=None, repr=False, compare=False)
    #: The ``leafnodes {}`` block's remotes (:mod:`.leafnode`); None when absent.
    leafnode: LeafNodeOptions | None = field(default=None, repr=False, compare=False)
    #: Users, permissions and accounts (:class:`.auth.AuthConfig`).
    auth_config: AuthConfig | None = field(default=None, repr=False, compare=False)
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
