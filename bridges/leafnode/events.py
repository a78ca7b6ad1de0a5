"""What one leafnode connection says, as values: the events :class:`LeafCodec` returns and
the two JSON records they carry (a CONNECT's options, an INFO).

Events are frozen dataclasses whose fields are checked when built, so an event made by
hand is as valid as one the parser made.  The JSON records are read the way nats-server's
``encoding/json`` reads them into ``leafConnectInfo``/``ClientOpts`` and ``Info``: keys
match without regard to case (the last one wins), ``null`` leaves a field at its zero
value, unknown keys are ignored, and a value of the wrong type is an error.  They are
written the way ``json.Marshal`` writes them: the struct's field order, ``omitempty``
fields left out when zero, ``<``, ``>`` and ``&`` escaped as ``\\u003c``, ``\\u003e``,
``\\u0026``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from jetport.core.gojson import go_json

_TOKEN = re.compile(rb"[^ \t\r\n]+")


def is_token(value: object) -> bool:
    """A protocol argument: non-empty bytes without space, tab, CR or LF (the bytes
    nats-server splits arguments on)."""
    return isinstance(value, bytes) and _TOKEN.fullmatch(value) is not None


def _check_token(name: str, value: object) -> None:
    if not is_token(value):
        raise ValueError(f"{name} must be non-empty bytes without whitespace: {value!r}")


# -- the JSON records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectPermission:
    """``import``/``export`` of an INFO: subjects allowed and denied (None: not given)."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class LeafConnectOptions:
    """The JSON of a leafnode CONNECT: nats-server's ``leafConnectInfo``, in its order.

    A soliciting server sends it; ``password`` is the JSON key ``pass``.  Every field is
    ``omitempty`` on the wire.
    """

    version: str = ""
    nkey: str = ""
    jwt: str = ""
    sig: str = ""
    user: str = ""
    password: str = ""
    auth_token: str = ""
    server_id: str = ""
    domain: str = ""
    name: str = ""
    is_hub: bool = False
    cluster: str = ""
    headers: bool = False
    jetstream: bool = False
    deny_pub: tuple[str, ...] = ()
    isolate: bool = False
    compress_mode: str = ""
    gateway: str = ""
    remote_account: str = ""
    protocol: int = 0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """The fields of nats-server's ``Info`` that a leafnode connection uses, in its order.

    ``leafnode_urls`` is None when absent: a soliciting nats-server takes an INFO
    without it (or without ``client_id``) as a sign it dialled the wrong port.
    """

    server_id: str = ""
    server_name: str = ""
    version: str = ""
    proto: int = 0
    git_commit: str = ""
    go: str = ""
    host: str = ""
    port: int = 0
    headers: bool = False
    auth_required: bool = False
    tls_required: bool = False
    tls_verify: bool = False
    max_payload: int = 0
    jetstream: bool = False
    ip: str = ""
    client_id: int = 0
    nonce: str = ""
    cluster: str = ""
    domain: str = ""
    ws_connect_urls: tuple[str, ...] | None = None
    ldm: bool = False
    compression: str = ""
    connect_info: bool = False
    remote_account: str = ""
    acc_is_sys: bool = False
    api_lvl: int = 0
    import_perms: SubjectPermission | None = None
    export_perms: SubjectPermission | None = None
    info_on_connect: bool = False
    leafnode_urls: tuple[str, ...] | None = None


# JSON key of each record field, where it differs from the field name.
_CONNECT_KEYS = {"password": "pass"}
_INFO_KEYS = {"import_perms": "import", "export_perms": "export"}
# Info fields nats-server writes even when zero (no ``omitempty``).
_INFO_ALWAYS = frozenset({"server_id", "server_name", "version", "proto", "go", "host",
                          "port", "headers", "max_payload"})

# Go types of every key the server decodes, so a wrong type fails as it does in Go.
_I64 = (-(1 << 63), (1 << 63) - 1)
_I32 = (-(1 << 31), (1 << 31) - 1)
_U64 = (0, (1 << 64) - 1)
_U8 = (0, 255)
_CONNECT_TYPES: dict[str, object] = {
    # leafConnectInfo
    "version": str, "nkey": str, "jwt": str, "sig": str, "user": str, "pass": str,
    "auth_token": str, "server_id": str, "domain": str, "name": str, "is_hub": bool,
    "cluster": str, "headers": bool, "jetstream": bool, "deny_pub": list, "isolate": bool,
    "compress_mode": str, "gateway": str, "remote_account": str, "protocol": _I64,
    # ClientOpts, which processConnect decodes the same bytes into first
    "echo": bool, "verbose": bool, "pedantic": bool, "tls_required": bool, "lang": str,
    "account": str, "new_account": bool, "no_responders": bool, "import": SubjectPermission,
    "export": SubjectPermission, "proxy_sig": str,
}
_INFO_TYPES: dict[str, object] = {
    "server_id": str, "server_name": str, "version": str, "proto": _I64, "git_commit": str,
    "go": str, "host": str, "port": _I64, "headers": bool, "auth_required": bool,
    "tls_required": bool, "tls_verify": bool, "tls_available": bool, "max_payload": _I32,
    "jetstream": bool, "ip": str, "client_id": _U64, "client_ip": str, "nonce": str,
    "cluster": str, "cluster_dynamic": bool, "domain": str, "connect_urls": list,
    "ws_connect_urls": list, "ldm": bool, "compression": str, "connect_info": bool,
    "remote_account": str, "acc_is_sys": bool, "api_lvl": _I64, "import": SubjectPermission,
    "export": SubjectPermission, "lnoc": bool, "lnocu": bool, "info_on_connect": bool,
    "route_pool_size": _I64, "route_pool_idx": _I64, "route_account": str,
    "route_acc_add_reqid": str, "gossip_mode": _U8, "gateway": str, "gateway_urls": list,
    "gateway_url": str, "gateway_cmd": _U8, "gateway_cmd_payload": str,
    "gateway_nrp": bool, "gateway_iom": bool, "leafnode_urls": list, "xkey": str,
}


class JsonError(ValueError):
    """The JSON of a CONNECT or INFO that nats-server's decoder would refuse."""


def _go_object(raw: bytes) -> dict[str, Any]:
    """Decode as Go's ``json.Unmarshal`` into a struct: an object or ``null``; invalid
    UTF-8 inside strings becomes U+FFFD; NaN and Infinity are not JSON."""
    try:
        value = json.loads(raw.decode("utf-8", "replace"), object_pairs_hook=_lower_keys,
                           parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeper than Python nests
        raise JsonError(str(exc)) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JsonError("not an object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _lower_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k.lower(): v for k, v in pairs}


def _typed(key: str, value: Any, kind: object) -> Any:
    """``value`` checked against the Go type ``kind``; None (JSON null) stays None."""
    if value is None:
        return None
    if kind is str or kind is bool:
        if type(value) is not kind:
            raise JsonError(f"{key}: expected {kind.__name__}")
        return value
    if isinstance(kind, tuple):
        low, high = kind
        if type(value) is not int or not low <= value <= high:
            raise JsonError(f"{key}: expected an integer in [{low}, {high}]")
        return value
    if kind is list:
        if not isinstance(value, list) or not all(v is None or type(v) is str for v in value):
            raise JsonError(f"{key}: expected a list of strings")
        return tuple("" if v is None else v for v in value)
    # SubjectPermission
    if not isinstance(value, dict):
        raise JsonError(f"{key}: expected an object")
    allow = _typed(f"{key}.allow", value.get("allow"), list)
    deny = _typed(f"{key}.deny", value.get("deny"), list)
    return SubjectPermission(allow, deny)


def _checked(raw: bytes, types: Mapping[str, object]) -> dict[str, Any]:
    obj = _go_object(raw)
    return {k: v for k, v in ((k, _typed(k, v, types[k])) for k, v in obj.items()
                              if k in types) if v is not None}


def decode_connect(raw: bytes) -> tuple[LeafConnectOptions, str]:
    """A CONNECT's JSON → its options and ``lang`` (which only a client sends)."""
    values = _checked(raw, _CONNECT_TYPES)
    kwargs = {f.name: values[_CONNECT_KEYS.get(f.name, f.name)]
              for f in fields(LeafConnectOptions) if _CONNECT_KEYS.get(f.name, f.name) in values}
    return LeafConnectOptions(**kwargs), values.get("lang", "")


def decode_info(raw: bytes) -> ServerInfo:
    """An INFO's JSON → the fields a leafnode connection uses."""
    values = _checked(raw, _INFO_TYPES)
    kwargs = {f.name: values[_INFO_KEYS.get(f.name, f.name)]
              for f in fields(ServerInfo) if _INFO_KEYS.get(f.name, f.name) in values}
    return ServerInfo(**kwargs)


def _perm_json(perm: SubjectPermission) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if perm.allow:
        out["allow"] = list(perm.allow)
    if perm.deny:
        out["deny"] = list(perm.deny)
    return out


def connect_json(options: LeafConnectOptions) -> bytes:
    """The JSON a soliciting nats-server sends: every ``leafConnectInfo`` field is
    ``omitempty``."""
    out: dict[str, Any] = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if value:
            out[_CONNECT_KEYS.get(f.name, f.name)] = list(value) if f.name == "deny_pub" else value
    return go_json(out)


def info_json(info: ServerInfo) -> bytes:
    """The JSON of ``Info``: the fields without ``omitempty`` always, the others when
    not zero (an empty list is left out, as Go's ``omitempty`` does)."""
    out: dict[str, Any] = {}
    for f in fields(info):
        value = getattr(info, f.name)
        if not value and f.name not in _INFO_ALWAYS:
            continue
        if isinstance(value, SubjectPermission):
            value = _perm_json(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[_INFO_KEYS.get(f.name, f.name)] = value
    return go_json(out)


# -- events -----------------------------------------------------------------------------


class Event:
    """Base of everything :meth:`LeafCodec.receive_data` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Info(Event):
    """``INFO {json}``: the accepting server's description (first INFO, the one after
    CONNECT with ``connect_info``, and asynchronous updates of ``leafnode_urls``)."""

    info: ServerInfo


@dataclass(frozen=True, slots=True)
class Connect(Event):
    """``CONNECT {json}`` from a soliciting server.  ``lang`` is set only by a client that
    dialled the leafnode port (nats-server answers ``attempted to connect to leaf node
    port``)."""

    options: LeafConnectOptions
    lang: str = ""


@dataclass(frozen=True, slots=True)
class Ping(Event):
    """``PING``: answer with ``PONG``."""


@dataclass(frozen=True, slots=True)
class Pong(Event):
    """``PONG``."""


@dataclass(frozen=True, slots=True)
class Ok(Event):
    """``+OK`` (leafnode connections are never verbose; nats-server ignores it)."""


@dataclass(frozen=True, slots=True)
class RemoteError(Event):
    """``-ERR '<text>'`` from the peer; ``text`` without the quotes.  Only some texts
    close the connection (the peer closes it itself); nats-server logs the rest."""

    text: str


@dataclass(frozen=True, slots=True)
class LeafSub(Event):
    """``LS+ <subject> [<queue> <weight>]``: the peer has interest in ``subject``.  For a
    queue group ``weight`` is the peer's number of members, resent whenever it changes."""

    subject: bytes
    queue: bytes | None = None
    weight: int = 1

    def __post_init__(self) -> None:
        _check_token("subject", self.subject)
        if self.queue is not None:
            _check_token("queue", self.queue)
        if type(self.weight) is not int or self.weight < 1:
            raise ValueError(f"weight must be an int >= 1: {self.weight!r}")
        if self.queue is None and self.weight != 1:
            raise ValueError("a weight needs a queue")


@dataclass(frozen=True, slots=True)
class LeafUnsub(Event):
    """``LS- <subject> [<queue>]``: the peer's interest is gone."""

    subject: bytes
    queue: bytes | None = None

    def __post_init__(self) -> None:
        _check_token("subject", self.subject)
        if self.queue is not None:
            _check_token("queue", self.queue)


@dataclass(frozen=True, slots=True)
class LeafMsg(Event):
    """``LMSG``/``HMSG``: a message for this side's subscribers.

    ``queues`` are the queue groups the sender picked this side for: deliver to one
    member of each, and to no queue subscriber when it is empty.  ``headers`` is the
    ``NATS/1.0`` block, None when there is none (a header size of 0 is none, as in
    nats-server).
    """

    subject: bytes
    reply: bytes | None
    queues: tuple[bytes, ...]
    headers: bytes | None
    payload: bytes

    def __post_init__(self) -> None:
        _check_token("subject", self.subject)
        if self.reply is not None:
            _check_token("reply", self.reply)
        if type(self.queues) is not tuple:
            raise ValueError("queues must be a tuple")
        for q in self.queues:
            _check_token("queue", q)
        if self.headers is not None and (type(self.headers) is not bytes or not self.headers):
            raise ValueError("headers must be non-empty bytes or None")
        if type(self.payload) is not bytes:
            raise ValueError("payload must be bytes")


@dataclass(frozen=True, slots=True)
class LeafMsgs(Event):
    """Consecutive ``LMSG`` without headers or queue groups, to one subject with one
    reply, read together: one event for the run, so the receiver routes it with one
    lookup and a subscriber encodes it at once (as the NATS door's ``OP_PUBS``).  The
    same bytes read in other pieces may give shorter runs or single :class:`LeafMsg`
    events; :meth:`messages` is what they all come to.  Only the codec makes these.
    """

    subject: bytes
    reply: bytes | None
    payloads: list[bytes]

    def messages(self) -> list[LeafMsg]:
        return [LeafMsg(self.subject, self.reply, (), None, p) for p in self.payloads]


@dataclass(frozen=True, slots=True)
class ProtocolViolation(Event):
    """The peer broke the protocol: send ``-ERR '<err>'`` when ``err`` is set, then close.
    Always the last event; the codec reads nothing after it."""

    err: str | None = None

