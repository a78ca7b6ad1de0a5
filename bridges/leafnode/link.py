"""One solicited leaf node connection: this hub dials a nats-server (the hub of a
cluster) and shares one local account's interest and messages with it.

The link is a :class:`jetport.core.router.Link` on the account's router: it hears of
every local subscription (:class:`.interest.LocalInterest` turns them into ``LS+``/
``LS-``) and is offered every message published in the account, which it sends as one
``LMSG`` when the other side announced interest (:class:`.interest.RemoteInterest`).
What arrives as ``LMSG`` is published locally as the link's own client, so it never
goes back over the link it came from.  Life cycle: dial the remote's urls in turn,
INFO → CONNECT → the interest burst, pings both ways; on any loss, wait ``reconnect``
and dial again (30 s after a loop was detected, as nats-server does).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from jetport.bridges.leafnode.codec import LeafCodec
from jetport.bridges.leafnode.encoder import encode_connect, encode_err, encode_msgs
from jetport.bridges.leafnode.events import (
    Event,
    Info,
    LeafConnectOptions,
    LeafMsg,
    LeafMsgs,
    LeafSub,
    LeafUnsub,
    Ping,
    ProtocolViolation,
    RemoteError,
    ServerInfo,
)
from jetport.bridges.leafnode.interest import LocalInterest, RemoteInterest
from jetport.bridges.nats.codec import PING, PONG
from jetport.core import nkeys
from jetport.core.client import Client
from jetport.core.config.leafnode import LeafTlsOptions, split_leaf_url
from jetport.core.log import log
from jetport.core.permissions import Permissions, RuleList
from jetport.core.router import Subscription
from jetport.core.tasks import spawn
from jetport.core.tls import client_context

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

#: How long a link waits before dialling again after nats-server refused it for a loop.
LOOP_DELAY = 30.0
DIAL_TIMEOUT = 2.0
#: The longest wait between attempts the hub keeps refusing.
MAX_BACKOFF = 30.0
#: JetStream traffic that stays on its own side of a link.
JS_SUBJECTS = ("$JS.API.>", "$KV.>", "$OBJ.>")


def loop_subject() -> bytes:
    """A fresh loop-detection subject (one per account, as nats-server keeps)."""
    return b"$LDS." + secrets.token_hex(11).encode()


class LeafClient(Client):
    """The link's side of the account: what arrives over the link is published as it."""

    kind = "Leafnode"
    conn_type = "LEAFNODE"
    echo = False
    headers = True
    over_link = True

    def __init__(self, hub: Hub, account: Account, link: LeafLink) -> None:
        super().__init__(hub, account)
        self.link = link

    def close(self, reason: str = "") -> None:
        self.link.drop(reason)


class LeafLink(asyncio.Protocol):
    """A leaf node connection to one remote, kept up until :meth:`stop`."""

    def __init__(self, hub: Hub, account: Account, urls: list[str], *,
                 reconnect: float = 1.0, deny_imports: Iterable[str] = (),
                 deny_exports: Iterable[str] = (), randomize: bool = True,
                 nkey: str | None = None, jwt: str | None = None,
                 tls: LeafTlsOptions | None = None, lds: bytes = b"") -> None:
        self.hub = hub
        self.account = account
        self.urls = list(urls)
        if randomize:
            random.shuffle(self.urls)
        self.reconnect = reconnect
        #: A user seed to sign the server's nonce with, and the user JWT sent with the
        #: signature when the remote names a credentials file.
        self.nkey, self.jwt = nkey, jwt
        #: The remote's ``tls {}``: TLS on every connection (else only when the hub's
        #: INFO requires it, with default settings).
        self.tls = tls
        self.deny_imports = list(deny_imports)
        self.client = LeafClient(hub, account, self)
        # The other side as a client of this account: what it may publish here is
        # what this side imports, what it may subscribe to is what this side exports.
        # Each side's JetStream API stays its own, as nats-server arranges for a leaf
        # link of an account (only a system-account link of one domain extends
        # JetStream, which Jetport does not do); the other's is reached by its domain.
        # Requests for this server's own domain are answered here, never sent on.
        own = [f"$JS.{hub.jetstream.domain}.API.>"] if hub.jetstream and \
            hub.jetstream.domain else []
        self.perms = self.client.perms = Permissions(
            pub_deny=RuleList([*JS_SUBJECTS, *self.deny_imports]),
            sub_deny=RuleList([*JS_SUBJECTS, *own, *deny_exports]))
        self.local = LocalInterest()
        self.remote = RemoteInterest()
        #: This account's loop-detection subject, the same on all its links: seen back
        #: from the other side, it means the other side reaches this account again by
        #: another path (possibly another of its links).
        self.lds = lds or loop_subject()
        self.codec = LeafCodec(max_payload=hub.options.max_payload)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.peer_name = ""
        self.peer_headers = True
        #: CONNECT sent: interest and messages go over the link.
        self.connected = False
        #: The hub answered the PING after CONNECT: it accepted the link (/leafz lists it).
        self.established = False
        self._failures = 0  # attempts in a row refused before the link was up
        self._securing = False
        self._lost: asyncio.Future[None] | None = None
        self._delay = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._pings_out = 0
        self._out: list[bytes] = []
        self.in_msgs = self.out_msgs = self.in_bytes = self.out_bytes = 0

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        self._task = spawn(self._run(), f"leafnode link {self.account.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self.transport is not None:
            self.transport.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopping:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            where = split_leaf_url(url)
            host, port = where.host, where.port
            self._lost = loop.create_future()
            self.peer = url
            try:
                await asyncio.wait_for(loop.create_connection(lambda: self, host, port),
                                       DIAL_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                log.debug("Error trying to connect as leafnode to remote server %r: %s",
                          url, exc)
                await asyncio.sleep(self.reconnect + random.uniform(0, self.reconnect))
                continue
            await self._lost
            if self.established:
                self.established, self._failures = False, 0
            else:
                # Refused before it was up (a wrong credential, a hub refusing the
                # account): wait longer after each such attempt, up to MAX_BACKOFF.
                self._failures += 1
            backoff = min(self.reconnect * 2 ** max(self._failures - 1, 0), MAX_BACKOFF)
            delay, self._delay = max(backoff, self._delay), 0.0
            if not self._stopping:
                if self._failures:
                    log.info("Leafnode connection to %s: next attempt in %.0fs", self.peer,
                             delay)
                await asyncio.sleep(delay)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._securing = False
        self._out = []
        self.codec = LeafCodec(max_payload=self.hub.options.max_payload)
        self._pings_out = 0

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connected:
            self.account.router.links.remove(self)
        if self.established:
            log.info("Leafnode connection to %s closed%s", self.peer,
                     f": {exc}" if exc else "")
            self.hub.leaf_links.remove(self)
        self.connected = False
        self.transport = None
        self.remote = RemoteInterest()
        self.local = LocalInterest()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def drop(self, reason: str, err: str | None = None, delay: float = 0.0) -> None:
        """End the connection (the run loop dials again), with ``-ERR`` first if given."""
        if reason:
            log.error("Leafnode connection to %s: %s", self.peer, reason)
        self._delay = max(self._delay, delay)
        if self.transport is not None:
            self._flush()
            if err:
                self.transport.write(encode_err(err))
            self.transport.close()

    # -- input ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.codec.receive_data(data)
        except ValueError as exc:
            self.drop(f"protocol error: {exc}")
            return
        for event in events:
            if type(event) is LeafMsgs:
                self._messages(event.subject, event.reply, None, event.payloads, ())
                continue
            if type(event) is LeafMsg:
                self._messages(event.subject, event.reply, event.headers, [event.payload],
                               event.queues)
                continue
            self._handle(event)
            if self.transport is None or self.transport.is_closing():
                return

    def _handle(self, event: Event) -> None:
        if isinstance(event, LeafSub):
            if event.subject == self.lds:
                why = (f'Loop detected for leafnode account="{self.account.name}". '
                       "Delaying attempt to reconnect for 30s")
                self.drop(why, why, LOOP_DELAY)
            elif self.client.may_subscribe(event.subject, event.queue):
                self.remote.add(event.subject, event.queue, event.weight)
        elif isinstance(event, LeafUnsub):
            self.remote.remove(event.subject, event.queue)
        elif isinstance(event, Ping):
            self._write(PONG)
        elif isinstance(event, Info):
            if not self.connected and not self._securing:
                self._first_info(event)
        elif isinstance(event, RemoteError):
            log.error("Leafnode connection to %s: remote error: %s", self.peer, event.text)
        elif isinstance(event, ProtocolViolation):
            self.drop(f"protocol violation: {event.err or 'closed'}", event.err)
        else:  # Pong, Ok
            self._pings_out = 0
            if self.connected and not self.established:
                self._established()

    def _first_info(self, event: Info) -> None:
        info = event.info
        if not info.client_id or info.leafnode_urls is None:
            self.drop(f"attempted to connect to wrong port: {self.peer}")
            return
        if self.tls is not None or info.tls_required:
            self._securing = True  # (no second first INFO while the handshake runs)
            spawn(self._secure(info), f"leafnode TLS handshake with {self.peer}")
            return
        self._connect(info)

    async def _secure(self, info: ServerInfo) -> None:
        """TLS over the connection after the hub's first INFO, as nats-server's leaf
        does, then CONNECT over it."""
        transport, tls = self.transport, self.tls or LeafTlsOptions()
        if transport is None:
            return
        where = split_leaf_url(self.peer)
        try:
            context = client_context(tls.ca_file, tls.cert_file, tls.key_file,
                                     tls.min_version)
            secured = await asyncio.wait_for(asyncio.get_running_loop().start_tls(
                transport, self, context, server_hostname=where.host), tls.timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self._securing = False
            self.drop(f"TLS handshake error: {exc}")
            transport.close()
            return
        if secured is None:
            return
        self.transport = secured
        self._securing = False
        self._connect(info)

    def _connect(self, info: ServerInfo) -> None:
        hub, opts = self.hub, self.hub.options
        where = split_leaf_url(self.peer)
        user, password = where.user or "", where.password or ""
        # A url with a user and no password names a token: nats-server sends it as both.
        token = user if where.user is not None and where.password is None else ""
        domain = hub.jetstream.domain if hub.jetstream is not None else ""
        self.peer_headers = info.headers
        public = sig = ""
        if self.nkey:
            public, sig = nkeys.sign(self.nkey, info.nonce.encode())
        connect = LeafConnectOptions(
            version=hub.version, server_id=hub.server_id, name=hub.server_name,
            cluster=hub.server_name.replace(" ", "_"), domain=domain,
            headers=True, jetstream=hub.jetstream is not None, user=user,
            password=password, auth_token=token, jwt=self.jwt or "", sig=sig,
            nkey="" if self.jwt else public,
            deny_pub=tuple(self.deny_imports),
            remote_account=self.account.name, protocol=1)
        self._write(encode_connect(connect))
        self.connected = True
        router = self.account.router
        for sub in router.index:
            if sub.client is not self.client:
                self.local.add(sub.subject, sub.queue)
        frames = self.local.burst(self._imports)
        frames.append(b"LS+ " + self.lds + b"\r\n")
        self._write(b"".join(frames))
        # The hub answers this PING after it accepted the CONNECT: the link is up then.
        self._write(PING)
        router.links.append(self)
        self.peer_name = info.server_name
        spawn(self._ping(opts.ping_interval, opts.ping_max), f"leafnode pings {self.peer}")

    def _established(self) -> None:
        self.established = True
        self.hub.leaf_links.append(self)
        log.info("Connected leafnode to %r (%s%s) for account %s", self.peer_name, self.peer,
                 ", TLS" if self.transport is not None and
                 self.transport.get_extra_info("ssl_object") is not None else "",
                 self.account.name)

    def _messages(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                  payloads: list[bytes], queues: tuple[bytes, ...]) -> None:
        """Messages from the other side, published here as the link."""
        n = len(payloads)
        self.in_msgs += n
        self.in_bytes += sum(map(len, payloads)) + n * len(hdr or b"")
        if self.client.may_publish(subject):
            self.account.router.publish_remote(self.client, subject, reply, hdr, payloads,
                                               queues)

    async def _ping(self, interval: float, most: int) -> None:
        transport = self.transport
        first = min(interval, 1.0)
        await asyncio.sleep(first + random.uniform(0, first / 5))
        while self.transport is transport and transport is not None:
            if self._pings_out >= most:
                self.drop("Stale Connection", "Stale Connection")
                return
            self._pings_out += 1
            self._write(PING)
            await asyncio.sleep(interval)

    # -- output: the router's Link ---------------------------------------------------

    def local_interest(self, sub: Subscription, added: bool) -> None:
        frame = (self.local.add if added else self.local.remove)(sub.subject, sub.queue)
        if frame is not None and self.connected and self._imports(sub.subject):
            self._write(frame)

    def forward(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                payloads: list[bytes], local_groups: frozenset[bytes]) -> int:
        if not self.connected or not self.remote.keys:
            return 0
        wanted, queues = self.remote.wants(subject, local_groups)
        if not wanted or not self.perms.can_receive(subject):
            return 0
        self._write(encode_msgs(subject, reply, queues, hdr, payloads,
                                peer_headers=self.peer_headers))
        n = len(payloads)
        self.out_msgs += n
        self.out_bytes += sum(map(len, payloads)) + n * len(hdr or b"")
        return n

    def describe(self, subs: bool) -> dict[str, Any]:
        where = split_leaf_url(self.peer)
        doc: dict[str, Any] = {
            "id": self.client.cid, "name": self.peer_name, "is_spoke": True,
            "account": self.account.name, "ip": where.host, "port": where.port, "rtt": "0s",
            "in_msgs": self.in_msgs, "out_msgs": self.out_msgs, "in_bytes": self.in_bytes,
            "out_bytes": self.out_bytes, "subscriptions": len(self.remote),
            "compression": "not supported"}
        if subs:
            doc["subscriptions_list"] = sorted(
                (s.subject + b" " + s.queue if s.queue else s.subject).decode()
                for s in self.remote.keys.values())
        return doc

    # -- helpers ------------------------------------------------------------------------

    def _imports(self, subject: bytes) -> bool:
        """Whether interest in ``subject`` is announced: not for what is never taken in."""
        return self.client.may_publish(subject)

    def _write(self, data: bytes) -> None:
        """Queue ``data``; everything queued in one loop turn goes out in one write (a
        run of forwarded messages costs one system call, as the NATS door's output)."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

