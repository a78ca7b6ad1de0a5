"""NATS header blocks: ``NATS/1.0[ status[ description]]\\r\\nKey: value\\r\\n...\\r\\n``.

Keys are matched exactly (case-sensitive), as nats-server matches ``Nats-Msg-Id`` and
friends; the block itself is passed on untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

PREFIX = b"NATS/1.0"
EMPTY = b"NATS/1.0\r\n\r\n"


def parse(hdr: bytes | None) -> dict[bytes, bytes]:
    """Header lines as a dict (the first value wins for a repeated key)."""
    out: dict[bytes, bytes] = {}
    if not hdr:
        return out
    for line in hdr.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key and key not in out:
            out[key] = value.strip()
    return out


def get(hdr: bytes | None, key: bytes) -> bytes | None:
    """One header's value, without building the whole dict."""
    if not hdr or key not in hdr:
        return None
    return parse(hdr).get(key)


def build(items: Sequence[tuple[bytes, bytes]] | dict[bytes, bytes] = (),
          code: int | None = None, description: str = "") -> bytes:
    """A header block; ``code`` makes a status line like nats-server's."""
    first = PREFIX
    if code is not None:
        first += b" %d" % code
        if description:
            first += b" " + description.encode()
    pairs = items.items() if isinstance(items, dict) else items
    return first + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in pairs) + b"\r\n"


def add(hdr: bytes | None, items: list[tuple[bytes, bytes]]) -> bytes:
    """Append header lines to a block (or start one)."""
    base = hdr if hdr else EMPTY
    return base[:-2] + b"".join(k + b": " + v + b"\r\n" for k, v in items) + b"\r\n"


def replace(hdr: bytes, key: bytes, value: bytes) -> bytes:
    """The block with the first ``key`` line's value set to ``value``."""
    lines = hdr.split(b"\r\n")
    for i, line in enumerate(lines[1:], 1):
        name, sep, _ = line.partition(b":")
        if sep and name == key:
            lines[i] = key + b": " + value
            break
    return b"\r\n".join(lines)


def remove(hdr: bytes | None,
           unwanted: Collection[bytes] | Callable[[bytes], bool]) -> bytes | None:
    """The block less the lines whose key is in ``unwanted`` (or that it picks); None
    when neither a line nor a status is left."""
    if not hdr:
        return hdr
    if callable(unwanted):
        drop = unwanted
    elif not any(key in hdr for key in unwanted):
        return hdr
    else:
        drop = unwanted.__contains__
    lines = hdr.split(b"\r\n")
    kept = [line for line in lines[1:] if line and not drop(line.partition(b":")[0])]
    if not kept and lines[0] == PREFIX:
        return None
    return lines[0] + b"\r\n" + b"".join(line + b"\r\n" for line in kept) + b"\r\n"
