"""nats-server's ``leafnodes {}`` block, solicit side: the hubs this server dials.

Read here: ``reconnect`` and ``remotes``, each remote with its URLs, local account,
credentials file or nkey seed, ``tls {}``, deny lists, ``no_randomize`` and ``hub``.
Refused with file and line, as in every other block: the keys of nats-server's leafnode
listener (the accept side, among them the block's own ``tls {}``, which nats-server
never uses when dialling) and the remote settings Jetport has no counterpart for yet.

The checks are nats-server's, in its words where it has them.  Two it makes only when
it starts (a remote mixing WebSocket and plain URLs, a local account that does not
exist) are made here while reading, so ``-t`` reports them as well.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from jetport.core.accounts import GLOBAL_ACCOUNT
from jetport.core.config.auth import auth_config
from jetport.core.config.file import ConfDict
from jetport.core.config.keys import TLS_KEYS, TOP_LEVEL_KEYS, Entry, KeyTable
from jetport.core.config.options import Options, OptionsError
from jetport.core.jetstream.errors import go_quote
from jetport.core.nkeys import decode_seed, is_public_key
from jetport.core.subjects import is_valid_subject

DEFAULT_LEAF_PORT = 7422
DEFAULT_RECONNECT = 1.0  # seconds between two attempts at a remote
DEFAULT_LEAF_TLS_TIMEOUT = 2.0

LEAFNODE_KEYS = KeyTable("leafnodes.")
REMOTE_KEYS = KeyTable("leafnodes.remotes.")
#: The client port's ``tls {}`` keys (one parser for both), with the remote's section
#: in messages.
REMOTE_TLS_KEYS = KeyTable("leafnodes.remotes.tls.")
REMOTE_TLS_KEYS.handlers, REMOTE_TLS_KEYS.unsupported = TLS_KEYS.handlers, TLS_KEYS.unsupported


@dataclass(frozen=True)
class LeafUrl:
    """One remote URL, split; the userinfo is what the leaf's CONNECT carries."""

    scheme: str  # lower case
    host: str  # without the brackets of an IPv6 address
    port: int
    user: str | None = None
    #: None when the userinfo has no ":" (nats-server then also sends the user as a token).
    password: str | None = None
    path: str = ""  # a WebSocket remote upgrades at path + "/leafnode"

    @property
    def websocket(self) -> bool:
        return self.scheme.startswith("ws")  # nats-server's test: ws, wss, ...

    def redacted(self) -> str:
        """The URL as nats-server shows it in errors: the port filled in, no password."""
        auth = ""
        if self.user is not None:
            auth = self.user + ("" if self.password is None else ":xxxxx") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}{self.path}"


@dataclass(frozen=True)
class LeafTlsOptions:
    """A remote's ``tls {}``: its presence alone makes the connection use TLS.

    ``verify`` and ``verify_and_map`` are accepted, as nats-server accepts them here,
    but ask a server for client certificates: the dialling side has no use for them.
    """

    cert_file: str = ""  # a client certificate, for hubs that verify their leaf nodes
    key_file: str = ""
    ca_file: str = ""  # "": the system's roots
    timeout: float = DEFAULT_LEAF_TLS_TIMEOUT
    min_version: str = ""  # "": TLS 1.2


@dataclass
class RemoteLeafOptions:
    """One entry of ``remotes``: a hub (or one of several URLs of the same hub cluster)."""

    #: As written (whitespace trimmed); :func:`split_leaf_url` reads one.
    urls: list[str] = field(default_factory=list)
    account: str = GLOBAL_ACCOUNT  # the local account the connection binds to
    credentials: str | None = None  # a user JWT and seed file, "~" expanded
    nkey: str | None = None  # a user seed ("SU...")
    tls: LeafTlsOptions | None = None
    #: Subjects not taken from the hub (no interest in them goes up to it) ...
    deny_imports: list[str] = field(default_factory=list)
    #: ... and subjects not sent to it, whatever interest it has.
    deny_exports: list[str] = field(default_factory=list)
    no_randomize: bool = False  # try the URLs in the order written
    hub: bool = False  # this side plays the hub on this connection
    #: Where the remote is written, for messages about it.
    where: str = field(default="", compare=False)


@dataclass
class LeafNodeOptions:
    """The block: the remotes, and how long to wait before dialling one again."""

    reconnect: float = DEFAULT_RECONNECT  # seconds before dialling a lost remote again
    remotes: list[RemoteLeafOptions] = field(default_factory=list)


def leafnode_options(opts: Options) -> LeafNodeOptions:
    if opts.leafnode is None:
        opts.leafnode = LeafNodeOptions()
    return opts.leafnode


def _remote(opts: Options) -> RemoteLeafOptions:
    """The remote being read: ``remotes`` appends it before running its keys."""
    return leafnode_options(opts).remotes[-1]


# -- URLs: what Go's url.Parse accepts, as nats-server parses remote URLs with it ----------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USERINFO = re.compile(r"[A-Za-z0-9\-._:~!$&'()*+,;=%@]*")
_HOST_CHAR = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%\x80-\U0010ffff]")
#: Go accepts an escape in a host name only for a byte of a UTF-8 sequence, or "%25".
_HOST_ESCAPE = re.compile(r"%(?!25|[89A-Fa-f][0-9A-Fa-f])")


def split_leaf_url(url: str) -> LeafUrl:
    """Split a remote URL the way nats-server reads it; the port defaults to 7422.

    Raises ValueError saying what is wrong.  One difference: a URL without a host is
    refused, where nats-server would dial port 7422 of this machine.
    """
    text = url.strip()
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ValueError("invalid control character in URL")
    if text.startswith(":"):
        raise ValueError("missing protocol scheme")
    text, _, fragment = text.partition("#")
    base = text.partition("?")[0]
    if _BAD_ESCAPE.search(base) or _BAD_ESCAPE.search(fragment):
        raise ValueError("invalid URL escape")
    scheme = match.group()[:-1].lower() if (match := _SCHEME.match(base)) else ""
    rest = base[match.end():] if match else base
    if not scheme and ":" in rest.partition("/")[0]:
        raise ValueError("first path segment in URL cannot contain colon")
    if not rest.startswith("//"):
        raise ValueError("missing host")
    authority, slash, path = rest[2:].partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if at and not _USERINFO.fullmatch(userinfo):
        raise ValueError("invalid userinfo")
    host, port = _split_host(hostport)
    if not host:
        raise ValueError("missing host")
    user, colon, password = userinfo.partition(":")
    return LeafUrl(scheme, host, port, unquote(user) if at else None,
                   unquote(password) if colon else None, slash + path)


def _split_host(hostport: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        if not bracket:
            raise ValueError("missing ']' in host")
    elif ":" in hostport:
        host, _, digits = hostport.rpartition(":")
        port = ":" + digits
    else:
        host, port = hostport, ""
    if port and not re.fullmatch(r":[0-9]*", port):
        raise ValueError(f"invalid port {go_quote(port)} after host")
    if bad := _HOST_CHAR.search(host):
        raise ValueError(f"invalid character {go_quote(bad.group())} in host name")
    if _HOST_ESCAPE.search(host):
        raise ValueError("invalid URL escape in host name")
    return unquote(host), int(port[1:]) if port[1:] else DEFAULT_LEAF_PORT


# -- the block ------------------------------------------------------------------------------


@TOP_LEVEL_KEYS.key("leafnodes", "leaf")
def _leafnodes_key(opts: Options, entry: Entry) -> None:
    leafnode_options(opts)
    LEAFNODE_KEYS.apply(opts, entry.block())


@LEAFNODE_KEYS.key("reconnect", "reconnect_delay", "reconnect_interval")
def _reconnect(opts: Options, entry: Entry) -> None:
    seconds = entry.seconds()
    if seconds < 0:
        raise entry.error(f"{entry.key} cannot be negative, got {entry.value!r}")
    leafnode_options(opts).reconnect = seconds or DEFAULT_RECONNECT  # 0: the default


@LEAFNODE_KEYS.key("remotes")
def _remotes(opts: Options, entry: Entry) -> None:
    """Each remote is read on its own, so one message lists every remote's problems."""
    if not isinstance(entry.value, list):
        raise entry.error(f"Expected remotes field to be an array, got {entry.value!r}")
    problems: list[str] = []
    for item in entry.value:
        try:
            if not isinstance(item, ConfDict):
                raise entry.error(
                    f"Expected remote leafnode entry to be a map/struct, got {item!r}")
            first = next(iter(item), None)
            where = entry.where if first is None else item.where(first)
            leafnode_options(opts).remotes.append(RemoteLeafOptions(where=where))
            REMOTE_KEYS.apply(opts, item)
            _check_remote(item, _remote(opts))
        except OptionsError as exc:
            problems.append(str(exc))
    if problems:
        raise OptionsError("\n".join(problems))


def _where_last(block: ConfDict, *names: str) -> str:
    """Where the last of ``names`` is written in ``block`` (a check's natural culprit)."""
    return [block.where(key) for key in block if key.lower() in names][-1]


def _check_remote(block: ConfDict, remote: RemoteLeafOptions) -> None:
    if remote.credentials and remote.nkey:
        where = _where_last(block, "credentials", "creds", "nkey", "seed")
        raise OptionsError(f"{where}: Remote leafnode can not have both creds and nkey defined")
    urls = [split_leaf_url(url) for url in remote.urls]
    if any(url.websocket != urls[0].websocket for url in urls):
        shown = " ".join(go_quote(url.redacted()) for url in urls)
        raise OptionsError(
            f"{_where_last(block, 'url', 'urls')}: remote leaf node configuration cannot "
            f"have a mix of websocket and non-websocket urls: [{shown}]"
        )


# -- one remote's keys ----------------------------------------------------------------------


@REMOTE_KEYS.key("url", "urls")
def _remote_urls(opts: Options, entry: Entry) -> None:
    """A string adds a URL, a list replaces those read so far (nats-server's rule)."""
    value = entry.value
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        raise entry.error(f"Expected remote leafnode url to be an array or string, got {value!r}")
    for url in urls:
        try:
            split_leaf_url(url)
        except ValueError as exc:
            raise entry.error(f"error parsing leafnode url [{go_quote(url)}]: {exc}") from exc
    remote = _remote(opts)
    kept = remote.urls if isinstance(value, str) else []
    remote.urls = kept + [url.strip() for url in urls]


@REMOTE_KEYS.key("account", "local")
def _remote_account(opts: Options, entry: Entry) -> None:
    _remote(opts).account = entry.string() or GLOBAL_ACCOUNT


@REMOTE_KEYS.key("credentials", "creds")
def _remote_credentials(opts: Options, entry: Entry) -> None:
    """The file is only named here; nats-server too reads it when it connects."""
    path = entry.string()
    if path.startswith("~"):  # nats-server expands a leading "~" (and only that)
        path = os.path.normpath(os.path.join(os.path.expanduser("~"), path[1:].lstrip("/")))
    _remote(opts).credentials = path or None


@REMOTE_KEYS.key("nkey", "seed")
def _remote_nkey(opts: Options, entry: Entry) -> None:
    """The message leaves the seed out: a mistyped seed is still mostly a secret."""
    seed = entry.string()
    try:
        decode_seed(seed, "U")
    except ValueError as exc:
        raise entry.error(
            'Remote leafnode nkey is not a valid seed (a user seed starts with "SU")'
        ) from exc
    _remote(opts).nkey = seed


@REMOTE_KEYS.key("tls")
def _remote_tls(opts: Options, entry: Entry) -> None:
    """Read with the client port's ``tls {}`` keys into a scratch :class:`Options`."""
    scratch = Options()
    REMOTE_TLS_KEYS.apply(scratch, entry.block())
    if bool(scratch.tls_cert) != bool(scratch.tls_key):
        missing = "key_file" if scratch.tls_cert else "cert_file"
        raise entry.error(f"missing '{missing}' in TLS configuration")
    _remote(opts).tls = LeafTlsOptions(
        cert_file=scratch.tls_cert,
        key_file=scratch.tls_key,
        ca_file=scratch.tls_ca,
        timeout=scratch.tls_timeout or DEFAULT_LEAF_TLS_TIMEOUT,
        min_version=scratch.tls_min_version,
    )


def _subjects(entry: Entry) -> list[str]:
    value = entry.value
    subjects = [value] if isinstance(value, str) else value
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        raise entry.error("Expected subject permissions to be a subject, or array of "
                          f"subjects, got {value!r}")
    for subject in subjects:
        if not is_valid_subject(subject.encode()):
            raise entry.error(f"subject {go_quote(subject)} is not a valid subject")
    return list(subjects)


@REMOTE_KEYS.key("deny_imports", "deny_import")
def _remote_deny_imports(opts: Options, entry: Entry) -> None:
    _remote(opts).deny_imports = _subjects(entry)


@REMOTE_KEYS.key("deny_exports", "deny_export")
def _remote_deny_exports(opts: Options, entry: Entry) -> None:
    _remote(opts).deny_exports = _subjects(entry)


@REMOTE_KEYS.key("no_randomize", "dont_randomize")
def _remote_no_randomize(opts: Options, entry: Entry) -> None:
    _remote(opts).no_randomize = entry.boolean()


@REMOTE_KEYS.key("hub")
def _remote_hub(opts: Options, entry: Entry) -> None:
    _remote(opts).hub = entry.boolean()


# -- after the whole file ------------------------------------------------------------------


def check(opts: Options) -> None:
    """Each remote binds to an account that exists; the accounts may come later in the
    file, so this runs once everything is read (nats-server checks when it starts)."""
    if opts.leafnode is None:
        return
    conf = auth_config(opts)
    known = {GLOBAL_ACCOUNT, *conf.accounts}
    if not conf.no_system_account:
        known.add(conf.system_account)
    for remote in opts.leafnode.remotes:
        if conf.operator and not is_public_key(remote.account, "A"):
            raise OptionsError(f"{remote.where}: operator mode requires account nkeys in "
                               "remotes (an account public key, starting with 'A')")
        if not conf.operator and remote.account not in known:
            raise OptionsError(f"{remote.where}: cannot find local account "
                               f"{go_quote(remote.account)} specified in leafnode remote")


_NOT_SUPPORTED: tuple[tuple[KeyTable, str, str], ...] = (
    (
        LEAFNODE_KEYS,
        "leafnode listener",
        "listen port host net advertise leafnode_advertise no_advertise authorization "
        "min_version minimum_version tls",
    ),
    (LEAFNODE_KEYS, "leafnode compression", "compression"),
    (LEAFNODE_KEYS, "leafnode interest isolation", "isolate_leafnode_interest isolate"),
    (LEAFNODE_KEYS, "this leafnode tuning option", "write_deadline write_timeout dial_timeout"),
    (REMOTE_KEYS, "leafnode compression", "compression"),
    (
        REMOTE_KEYS,
        "this WebSocket option",
        "ws_compress ws_compression websocket_compress websocket_compression ws_no_masking "
        "websocket_no_masking",
    ),
    (
        REMOTE_KEYS,
        "leafnode interest isolation",
        "isolate isolate_leafnode_interest request_isolation",
    ),
    (REMOTE_KEYS, "this leafnode tuning option", "first_info_timeout dial_timeout"),
    (REMOTE_KEYS, "clustering", "jetstream_cluster_migrate js_cluster_migrate"),
    (REMOTE_KEYS, "leafnode proxies", "proxy"),
    (REMOTE_KEYS, "this leafnode remote option", "disabled ignore_discovered_servers"),
)
for _table, _feature, _names in _NOT_SUPPORTED:
    _table.not_supported(_feature, *_names.split())
