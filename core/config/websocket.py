"""nats-server's ``websocket {}`` block: the WebSocket door's listener and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jetport.core.config.keys import TOP_LEVEL_KEYS, Entry, KeyTable, listen_address
from jetport.core.config.options import Options

#: The WebSocket port of the embedded default (``jetport serve`` with no arguments).
EMBEDDED_WEBSOCKET_PORT = 8080

WEBSOCKET_KEYS = KeyTable("websocket.")

#: Response headers a ``headers {}`` block may not set (nats-server refuses them too).
_RESERVED_HEADERS = {"host", "content-length", "connection", "upgrade", "nats-no-masking"}


@dataclass
class WebSocketOptions:
    """The WebSocket door's settings; ``port`` 0 means the door is off, -1 a free port."""

    host: str = ""  # "": the server's host
    port: int = 0
    no_tls: bool = False
    advertise: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_verify: bool = False
    tls_map: bool = False
    tls_min_version: str = ""
    #: The Origin header must name this listener (browsers send it; other clients may not).
    same_origin: bool = False
    #: When not empty, the only origins (scheme://host[:port]) browsers may connect from.
    allowed_origins: list[str] = field(default_factory=list)
    compression: bool = False
    handshake_timeout: float = 0.0  # 0: no limit beyond the TLS handshake's
    #: Cookie names whose values stand in for CONNECT's jwt, user, pass and auth_token.
    jwt_cookie: str = ""
    user_cookie: str = ""
    pass_cookie: str = ""
    token_cookie: str = ""
    no_auth_user: str = ""
    #: A user or token only WebSocket clients use (nats-server's override).
    username: str = ""
    password: str = ""
    token: str = ""
    auth_timeout: float = 0.0  # 0: the server's
    ping_interval: float = 0.0  # 0: the server's
    #: Extra headers for the upgrade response.
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def auth_override(self) -> bool:
        """Whether the block's own credentials or no_auth_user decide for its clients."""
        return bool(self.username or self.token or self.no_auth_user)

    def cookies(self) -> dict[str, str]:
        """Configured cookie name -> the CONNECT field its value fills."""
        pairs = ((self.jwt_cookie, "jwt"), (self.user_cookie, "user"),
                 (self.pass_cookie, "pass"), (self.token_cookie, "auth_token"))
        return {name: target for name, target in pairs if name}


def websocket_options(opts: Options) -> WebSocketOptions:
    if opts.websocket is None:
        opts.websocket = WebSocketOptions()
    return opts.websocket


@TOP_LEVEL_KEYS.key("websocket", "ws")
def _websocket_key(opts: Options, entry: Entry) -> None:
    w = websocket_options(opts)
    WEBSOCKET_KEYS.apply(opts, entry.block())
    if w.port != 0 and not w.tls and not w.no_tls:
        raise entry.error("websocket requires TLS configuration")
    if w.username and w.token:
        raise entry.error("websocket authorization: either a user or a token, not both")


@WEBSOCKET_KEYS.key("listen")
def _ws_listen(opts: Options, entry: Entry) -> None:
    host, port = listen_address(entry)
    w = websocket_options(opts)
    if host:
        w.host = host
    w.port = port


@WEBSOCKET_KEYS.key("host", "net")
def _ws_host(opts: Options, entry: Entry) -> None:
    websocket_options(opts).host = entry.string()


@WEBSOCKET_KEYS.key("port")
def _ws_port(opts: Options, entry: Entry) -> None:
    websocket_options(opts).port = entry.integer()


@WEBSOCKET_KEYS.key("no_tls")
def _ws_no_tls(opts: Options, entry: Entry) -> None:
    websocket_options(opts).no_tls = entry.boolean()


@WEBSOCKET_KEYS.key("advertise", "client_advertise")
def _ws_advertise(opts: Options, entry: Entry) -> None:
    websocket_options(opts).advertise = entry.string()


@WEBSOCKET_KEYS.key("same_origin")
def _ws_same_origin(opts: Options, entry: Entry) -> None:
    websocket_options(opts).same_origin = entry.boolean()


@WEBSOCKET_KEYS.key("allowed_origins", "allowed_origin", "allow_origins", "allow_origin",
                    "origins", "origin")
def _ws_allowed_origins(opts: Options, entry: Entry) -> None:
    value = entry.value
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise entry.error(f"error parsing allowed origins: unsupported type {value!r}")
    for origin in values:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            raise entry.error(
                f"unable to parse allowed origin {origin!r}: allowed origins must be "
                "absolute URLs with http or https scheme"
            )
        if not parts.hostname:
            raise entry.error(f"unable to parse allowed origin {origin!r}: host is required")
    websocket_options(opts).allowed_origins = list(values)


@WEBSOCKET_KEYS.key("compression", "compress")
def _ws_compression(opts: Options, entry: Entry) -> None:
    websocket_options(opts).compression = entry.boolean()


@WEBSOCKET_KEYS.key("handshake_timeout")
def _ws_handshake_timeout(opts: Options, entry: Entry) -> None:
    websocket_options(opts).handshake_timeout = entry.seconds()


@WEBSOCKET_KEYS.key("ping_interval")
def _ws_ping_interval(opts: Options, entry: Entry) -> None:
    websocket_options(opts).ping_interval = entry.seconds()


def _cookie(attr: str) -> Callable[[Options, Entry], None]:
    def handler(opts: Options, entry: Entry) -> None:
        setattr(websocket_options(opts), attr, entry.string())

    return handler


for _attr in ("jwt_cookie", "user_cookie", "pass_cookie", "token_cookie"):
    WEBSOCKET_KEYS.key(_attr)(_cookie(_attr))


@WEBSOCKET_KEYS.key("no_auth_user")
def _ws_no_auth_user(opts: Options, entry: Entry) -> None:
    websocket_options(opts).no_auth_user = entry.string()


@WEBSOCKET_KEYS.key("authorization", "authentication")
def _ws_authorization(opts: Options, entry: Entry) -> None:
    """A user or token only WebSocket clients use, as in nats-server's websocket block."""
    w = websocket_options(opts)
    block = entry.block()
    for key, value in block.items():
        sub = Entry(key, value, block.where(key))
        name = key.lower()
        if name in ("user", "username"):
            w.username = sub.string()
        elif name in ("pass", "password"):
            w.password = sub.string()
        elif name == "token":
            w.token = sub.string()
        elif name == "timeout":
            w.auth_timeout = sub.seconds()
        elif not block.used_as_variable(key):
            raise sub.error(f'unknown field "websocket.authorization.{key}"')


@WEBSOCKET_KEYS.key("headers")
def _ws_headers(opts: Options, entry: Entry) -> None:
    block = entry.block()
    headers: dict[str, str] = {}
    for key, value in block.items():
        sub = Entry(key, value, block.where(key))
        name = key.lower()
        if name in _RESERVED_HEADERS:
            raise sub.error(f'websocket: invalid header "{key}" not allowed')
        if name.startswith("sec-websocket-"):
            raise sub.error(f'websocket: invalid header "{key}", "Sec-WebSocket-" prefix '
                            "not allowed")
        headers[key] = sub.string()
    websocket_options(opts).headers = headers


@WEBSOCKET_KEYS.key("tls")
def _ws_tls(opts: Options, entry: Entry) -> None:
    """The listener's own TLS (wss): cert_file, key_file, ca_file, verify, verify_and_map,
    timeout, min_version."""
    w = websocket_options(opts)
    block = entry.block()
    for key, value in block.items():
        sub = Entry(key, value, block.where(key))
        name = key.lower()
        if name == "cert_file":
            w.tls_cert = sub.string()
        elif name == "key_file":
            w.tls_key = sub.string()
        elif name == "ca_file":
            w.tls_ca = sub.string()
        elif name == "verify":
            w.tls_verify = sub.boolean()
        elif name == "verify_and_map":
            w.tls_map = sub.boolean()
            w.tls_verify = w.tls_verify or w.tls_map
        elif name == "timeout":
            sub.seconds()  # the handshake_timeout key bounds the TLS handshake here
        elif name == "min_version":
            from jetport.core.tls import min_tls_version

            try:
                min_tls_version(value)
            except ValueError as exc:
                raise sub.error(f"error parsing tls config: {exc}") from exc
            w.tls_min_version = value
        else:
            raise sub.error(f'error parsing tls config, unknown field ["{key}"]')
    if bool(w.tls_cert) != bool(w.tls_key):
        missing = "key_file" if w.tls_cert else "cert_file"
        raise entry.error(f"missing '{missing}' in TLS configuration")


def embedded(opts: Options) -> None:
    """The embedded default opens the WebSocket door on its standard port."""
    w = websocket_options(opts)
    w.port = EMBEDDED_WEBSOCKET_PORT
    w.no_tls = True
