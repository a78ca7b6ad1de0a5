"""The subject grammar: validity, wildcard matching, overlap.

Subjects are ``bytes`` throughout: they arrive as bytes on every wire and leave as
bytes again, so the hot path never decodes them.  A subject is a list of non-empty
tokens separated by ``.``; in a subscription a token that is exactly ``*`` matches one
token and a final ``>`` matches one or more.

Everyone needs these: the core routes by them and the stores filter by them, so they
live here, below both (storage imports nothing of the core).
"""

from __future__ import annotations

PWC = b"*"
FWC = b">"
_WHITESPACE_BYTES = b" \t\r\n\f"


def is_valid_publish_subject(subject: bytes) -> bool:
    """No whitespace and no empty token: what any published subject must be.

    Wildcard tokens are allowed; they are literal when published.
    """
    return (
        bool(subject) and subject[0] != 0x2E and subject[-1] != 0x2E
        and b".." not in subject
        and len(subject.translate(None, _WHITESPACE_BYTES)) == len(subject)
    )


def is_valid_subject(subject: bytes) -> bool:
    """A subscription subject: wildcards allowed as whole tokens, ``>`` only last."""
    if not is_valid_publish_subject(subject):
        return False
    if b">" in subject:
        tokens = subject.split(b".")
        return all(t != FWC for t in tokens[:-1])
    return True


def is_literal(subject: bytes) -> bool:
    """True when no token is a wildcard (``foo*`` is a literal token)."""
    if b"*" not in subject and b">" not in subject:
        return True
    return all(t != PWC and t != FWC for t in subject.split(b"."))


def is_valid_literal_subject(subject: bytes) -> bool:
    """A publish subject: valid and without wildcard tokens."""
    return is_valid_publish_subject(subject) and is_literal(subject)


def tokens_match(pattern: list[bytes], subject: list[bytes]) -> bool:
    """Does the tokenized literal ``subject`` match the tokenized ``pattern``?"""
    n = len(pattern)
    for i, tok in enumerate(pattern):
        if tok == FWC and i == n - 1:
            return len(subject) > i
        if i >= len(subject) or (tok != PWC and tok != subject[i]):
            return False
    return n == len(subject)


def subject_matches(pattern: bytes, subject: bytes) -> bool:
    """Does the literal ``subject`` match the subscription ``pattern``?"""
    if pattern == subject:
        return True
    return tokens_match(pattern.split(b"."), subject.split(b"."))


def subjects_overlap(a: bytes, b: bytes) -> bool:
    """Could some literal subject match both patterns ``a`` and ``b``?"""
    ta, tb = a.split(b"."), b.split(b".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == FWC or y == FWC:
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and x != PWC and y != PWC:
            return False
    return True


def is_subset(pattern: bytes, of: bytes) -> bool:
    """Is every subject matched by ``pattern`` also matched by ``of``?"""
    tp, to = pattern.split(b"."), of.split(b".")
    for i, t in enumerate(to):
        if t == FWC:
            return len(tp) > i
        if i >= len(tp):
            return False
        if tp[i] == FWC:
            return False
        if t != PWC and (tp[i] == PWC or tp[i] != t):
            return False
    return len(tp) == len(to)
