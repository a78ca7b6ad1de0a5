"""Exports and imports: the only ways a message crosses from one account to another.

A stream import is a subscription in the exporting account that republishes what it
gets into the importer under the importer's subject.  A service import is the
reverse: a subscription in the importer on the local subject sends each request into
the exporter with a fresh ``_R_.`` reply subject, and what the service answers there
travels back to the requester's own reply subject (once for ``singleton`` services,
until the response threshold for ``stream`` and ``chunked`` ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from jetport.core.config.auth import export_for
from jetport.core.ids import base62
from jetport.core.internal import InternalClient
from jetport.core.log import log
from jetport.core.subjects import FWC, PWC

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.config.auth import ExportSpec, ImportSpec
    from jetport.core.hub import Hub

#: Imports may chain (A -> B -> C) but not loop forever.
MAX_HOPS = 4


def mapper(source: bytes, target: bytes) -> Callable[[bytes], bytes]:
    """A function taking subjects matching ``source`` to ``target``: wildcard tokens
    fill the target's wildcards in order; a target that only adds a prefix keeps the
    whole subject after it."""
    if source == target:
        return lambda s: s
    if target.endswith(b"." + source):
        prefix = target[: -len(source)]
        return lambda s: prefix + s
    stoks, ttoks = source.split(b"."), target.split(b".")
    wild = [i for i, t in enumerate(stoks) if t in (PWC, FWC)]
    slots = [i for i, t in enumerate(ttoks) if t in (PWC, FWC)]
    if not wild:
        return lambda s: target

    def apply(subject: bytes) -> bytes:
        toks = subject.split(b".")
        values = [toks[i] if stoks[i] == PWC else b".".join(toks[i:]) for i in wild]
        out = list(ttoks)
        for slot, value in zip(slots, values, strict=False):
            out[slot] = value
        return b".".join(out)

    return apply


class _Link(InternalClient):
    """Base of both import kinds: tracks how deep the current crossing is."""

    kind = "Account"
    depth = 0

    def forward(self, account: Account, subject: bytes, reply: bytes | None,
                hdr: bytes | None, payload: bytes) -> None:
        if _Link.depth >= MAX_HOPS:
            return
        _Link.depth += 1
        try:
            self.in_msgs += 1
            self.in_bytes += len(payload)
            account.router.publish(None, subject, reply, hdr, payload)
        except ValueError:
            pass  # a mapped subject that is not valid there: nothing to deliver
        finally:
            _Link.depth -= 1


class StreamImport(_Link):
    """Messages published in the exporter on the import's subject, seen in the importer."""

    def __init__(self, hub: Hub, exporter: Account, importer: Account, imp: ImportSpec) -> None:
        super().__init__(hub, exporter, f"import:{importer.name}")
        self.importer = importer
        self._map = mapper(imp.subject.encode(), imp.local.encode())
        self.listen(imp.subject.encode(), self._on_message)

    def _on_message(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                    payload: bytes) -> None:
        self.forward(self.importer, self._map(subject), reply, hdr, payload)


class ServiceImport(_Link):
    """Requests made in the importer on the local subject, served by the exporter."""

    def __init__(self, hub: Hub, exporter: Account, importer: Account, imp: ImportSpec,
                 exp: ExportSpec) -> None:
        super().__init__(hub, importer, f"service:{exporter.name}")
        self.exporter = exporter
        self.singleton = exp.response_type == "singleton"
        self.threshold = exp.response_threshold
        self._map = mapper(imp.local.encode(), imp.subject.encode())
        self._prefix = b"_R_." + base62(6).encode()
        self._n = 0
        #: token -> (requester's reply, deadline)
        self._pending: dict[bytes, tuple[bytes, float]] = {}
        self.listen(imp.local.encode(), self._on_request)
        self.answers = InternalClient(hub, exporter, f"responses:{importer.name}")
        self.answers.listen(self._prefix + b".>", self._on_response)

    def _on_request(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                    payload: bytes) -> None:
        mapped_reply = None
        if reply:
            self._n += 1
            mapped_reply = b"%s.%d" % (self._prefix, self._n)
            self._pending[mapped_reply] = (reply, time.monotonic() + self.threshold)
            if len(self._pending) > 1024 and self._n % 1024 == 0:
                self._prune()
        self.forward(self.exporter, self._map(subject), mapped_reply, hdr, payload)

    def _on_response(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                     payload: bytes) -> None:
        entry = self._pending.get(subject)
        if entry is None:
            return
        target, deadline = entry
        if time.monotonic() > deadline:
            del self._pending[subject]
            return
        if self.singleton:
            del self._pending[subject]
        self.forward(self.account, target, reply, hdr, payload)

    def _prune(self) -> None:
        now = time.monotonic()
        for token in [t for t, (_, d) in self._pending.items() if now > d]:
            del self._pending[token]

    def close(self, reason: str = "") -> None:
        self.answers.release()
        super().close(reason)


def link_imports(hub: Hub, specs: dict[str, list[ImportSpec]],
                 exports: dict[str, list[ExportSpec]]) -> list[str]:
    """Wire every account's imports; returns the problems of the ones refused."""
    problems = []
    for name, imports in specs.items():
        importer = hub.accounts[name]
        for imp in imports:
            exporter = hub.accounts.get(imp.account)
            if exporter is None:
                problems.append(f"import from unknown account {imp.account!r}")
                continue
            exp = export_for(exports.get(imp.account, []), imp, name)
            if exp is None:
                kind = "service" if imp.service else "stream"
                problems.append(f'{kind} import "{imp.subject}" into {name!r} not authorized')
                continue
            if imp.service:
                link: _Link = ServiceImport(hub, exporter, importer, imp, exp)
            else:
                link = StreamImport(hub, exporter, importer, imp)
            importer.links.append(link)
    for problem in problems:
        log.warning("%s", problem)
    return problems


def unlink(account: Account) -> None:
    for link in account.links:
        link.close()
    account.links.clear()
