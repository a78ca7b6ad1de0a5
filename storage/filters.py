"""Subject filters as both stores apply them.

A filter list is normalised once per call: ``None`` means "every subject", which lets
the stores skip matching entirely on the common unfiltered path.
"""

from __future__ import annotations

from collections.abc import Callable

from jetport.storage.subjects import FWC, PWC, is_literal, tokens_match

Matcher = Callable[[bytes], bool]


def normalize(subjects: list[bytes] | None) -> list[bytes] | None:
    """Drop duplicates; None when any filter (or no filter at all) matches everything."""
    if not subjects or FWC in subjects:
        return None
    return list(dict.fromkeys(subjects))


def normalize_one(subject: bytes | None) -> bytes | None:
    """A single filter: None for "everything"."""
    return None if subject is None or subject == FWC else subject


def matcher(patterns: list[bytes]) -> Matcher:
    """A predicate for "matches any of ``patterns``", cheapest form first."""
    literals = {p for p in patterns if is_literal(p)}
    wild = [p.split(b".") for p in patterns if p not in literals]
    if not wild:
        if len(literals) == 1:
            (only,) = literals
            return only.__eq__
        return literals.__contains__
    if len(wild) == 1 and not literals:
        (toks,) = wild
        return lambda s: tokens_match(toks, s.split(b"."))

    def match(subject: bytes) -> bool:
        if subject in literals:
            return True
        parts = subject.split(b".")
        return any(tokens_match(t, parts) for t in wild)

    return match


def literal_prefix(pattern: bytes) -> bytes:
    """The bytes every subject matching ``pattern`` starts with (``a.b.`` for
    ``a.b.*.c``); empty when the first token is a wildcard."""
    out: list[bytes] = []
    for tok in pattern.split(b"."):
        if tok in (PWC, FWC):
            break
        out.append(tok)
    return b".".join(out) + b"." if out else b""
