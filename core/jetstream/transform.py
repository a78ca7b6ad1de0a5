"""Subject transforms: ``src`` with wildcards mapped onto ``dest``.

Used by streams (``subject_transform``, ``republish``, source transforms).  A dest token
``$N`` or ``{{wildcard(N)}}`` is the N-th wildcard token of the source, ``*`` the next
one in order, and a final ``>`` the rest of the subject.
"""

from __future__ import annotations

import re

from jetport.core.subjects import FWC, PWC, tokens_match

_REF = re.compile(rb"^(?:\$(\d+)|\{\{\s*wildcard\s*\(\s*(\d+)\s*\)\s*\}\})$")


class SubjectTransform:
    def __init__(self, src: str, dest: str) -> None:
        self.src = (src or ">").encode()
        self.src_tokens = self.src.split(b".")
        self.dest_tokens = dest.encode().split(b".") if dest else []

    def apply(self, subject: bytes) -> bytes | None:
        """The mapped subject, or None when ``subject`` does not match ``src``."""
        toks = subject.split(b".")
        if not tokens_match(self.src_tokens, toks):
            return None
        if not self.dest_tokens:
            return subject
        captures: list[bytes] = []
        rest = b""
        for i, t in enumerate(self.src_tokens):
            if t == PWC:
                captures.append(toks[i])
            elif t == FWC:
                rest = b".".join(toks[i:])
        out: list[bytes] = []
        nxt = 0
        for t in self.dest_tokens:
            m = _REF.match(t)
            if m:
                n = int(m.group(1) or m.group(2)) - 1
                out.append(captures[n] if 0 <= n < len(captures) else t)
            elif t == PWC:
                out.append(captures[nxt] if nxt < len(captures) else t)
                nxt += 1
            elif t == FWC:
                out.append(rest)
            else:
                out.append(t)
        return b".".join(out)
