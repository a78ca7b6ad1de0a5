"""Generic mutators: what turns a valid input into the inputs that find bugs.

Each target builds valid inputs from its grammar and hands them here to be damaged the
ways peers and typos damage them: bits flipped, bytes dropped or repeated, numbers
changed to their neighbours and to absurd sizes, tokens of the protocol dropped in
where they do not belong, long runs of one character (what makes backtracking regular
expressions and recursive parsers blow up), and truncation.  Reads are then cut at
random points, since every parser here keeps state between reads.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T", bytes, str)

INTERESTING_BYTES = b"\x00\x01\x7f\x80\xff\r\n \t{}[]\"'\\"
INTERESTING_CHARS = "\x00\t\n\r {}[]()\"'\\$#/:=,;-.*>é\u2028\ufeff\U0001f600\ud800"
#: Sizes around the limits of the parsers here (buffers, varints, u16, int32, int64);
#: long runs are slow to parse, so they are drawn less often than short ones.
SHORT_RUNS = (16, 100, 127, 128, 255, 256, 300)
LONG_RUNS = (1000, 1023, 1024, 2000, 4095, 4096, 4097, 4200, 5000, 16384, 65535, 65536, 70000)
_DIGITS_B = re.compile(rb"\d+")
_DIGITS_S = re.compile(r"\d+")


def pick_number(rng: random.Random, near: int) -> int | str:
    """A number to put where ``near`` was: a neighbour, a limit, or absurdly large."""
    roll = rng.random()
    if roll < 0.4:
        return max(near + rng.choice((-2, -1, 1, 2)), 0)
    if roll < 0.6:
        return rng.choice((0, 1, 127, 128, 255, 256, 4095, 4096, 4097, 65535, 65536,
                           1 << 20, (1 << 20) + 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63,
                           2**64))
    if roll < 0.8:
        return near * rng.choice((2, 10, 1000))
    if roll < 0.95:
        return rng.randrange(10 ** rng.randint(1, 30))
    return "9" * rng.choice((20, 400, 4301, 5000))  # past int()'s digit limit


def renumber(rng: random.Random, data: T) -> T:
    """Replace one decimal number in ``data`` (a length, a size, a port...)."""
    pattern = _DIGITS_B if isinstance(data, bytes) else _DIGITS_S
    found = list(pattern.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    text = str(pick_number(rng, int(m.group()[:18] or 0)))
    new = text.encode() if isinstance(data, bytes) else text
    return data[: m.start()] + new + data[m.end():]


def run_of(rng: random.Random, unit: T) -> T:
    """A long run of one character (or a short token): what blows up backtracking."""
    n = rng.choice(SHORT_RUNS if rng.random() < 0.8 else LONG_RUNS) + rng.randint(-1, 1)
    return unit * max(n // max(len(unit), 1), 1)


def _span(rng: random.Random, size: int) -> tuple[int, int]:
    start = rng.randrange(size + 1)
    length = rng.choice((1, 1, 2, 4, 8, rng.randint(1, max(size // 2, 1))))
    return start, min(start + length, size)


def mutate_bytes(rng: random.Random, data: bytes, tokens: Sequence[bytes],
                 rounds: int | None = None) -> bytes:
    """``data`` damaged ``rounds`` times (1-4 by default) by the byte operators."""
    for _ in range(rng.randint(1, 4) if rounds is None else rounds):
        data = rng.choice(_BYTE_OPS)(rng, data, tokens)
    return data


def mutate_text(rng: random.Random, text: str, tokens: Sequence[str],
                rounds: int | None = None) -> str:
    """``text`` damaged ``rounds`` times (1-4 by default) by the text operators."""
    for _ in range(rng.randint(1, 4) if rounds is None else rounds):
        text = rng.choice(_TEXT_OPS)(rng, text, tokens)
    return text


def _flip_bit(rng: random.Random, data: bytes, tokens: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]


def _set_byte(rng: random.Random, data: bytes, tokens: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    new = rng.choice(INTERESTING_BYTES) if rng.random() < 0.5 else rng.randrange(256)
    return data[:i] + bytes([new]) + data[i + 1:]


def _delete(rng: random.Random, data: T, tokens: Sequence[T]) -> T:
    a, b = _span(rng, len(data))
    return data[:a] + data[b:]


def _duplicate(rng: random.Random, data: T, tokens: Sequence[T]) -> T:
    a, b = _span(rng, len(data))
    return data[:b] + data[a:b] * rng.choice((1, 1, 2, 8)) + data[b:]


def _insert_random_bytes(rng: random.Random, data: bytes, tokens: Sequence[bytes]) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.randbytes(rng.randint(1, 16)) + data[i:]


def _insert_token(rng: random.Random, data: T, tokens: Sequence[T]) -> T:
    if not tokens:
        return data
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(tokens) + data[i:]


def _truncate(rng: random.Random, data: T, tokens: Sequence[T]) -> T:
    return data[: rng.randrange(len(data) + 1)]


def _insert_run_bytes(rng: random.Random, data: bytes, tokens: Sequence[bytes]) -> bytes:
    i = rng.randrange(len(data) + 1)
    unit = rng.choice(tokens) if tokens and rng.random() < 0.3 else \
        bytes([data[i - 1] if i and rng.random() < 0.5 else rng.choice(INTERESTING_BYTES)])
    return data[:i] + run_of(rng, unit) + data[i:]


def _renumber(rng: random.Random, data: T, tokens: Sequence[T]) -> T:
    return renumber(rng, data)


def _set_char(rng: random.Random, text: str, tokens: Sequence[str]) -> str:
    if not text:
        return text
    i = rng.randrange(len(text))
    new = rng.choice(INTERESTING_CHARS) if rng.random() < 0.7 else chr(rng.randrange(0x80))
    return text[:i] + new + text[i + 1:]


def _insert_chars(rng: random.Random, text: str, tokens: Sequence[str]) -> str:
    i = rng.randrange(len(text) + 1)
    extra = "".join(rng.choice(INTERESTING_CHARS) for _ in range(rng.randint(1, 6)))
    return text[:i] + extra + text[i:]


def _insert_run_text(rng: random.Random, text: str, tokens: Sequence[str]) -> str:
    i = rng.randrange(len(text) + 1)
    unit = rng.choice(tokens) if tokens and rng.random() < 0.3 else \
        (text[i - 1] if i and rng.random() < 0.5 else rng.choice(INTERESTING_CHARS))
    return text[:i] + run_of(rng, unit) + text[i:]


_BYTE_OPS: tuple[Callable[[random.Random, bytes, Sequence[bytes]], bytes], ...] = (
    _flip_bit, _set_byte, _set_byte, _delete, _duplicate, _insert_random_bytes,
    _insert_token, _insert_token, _truncate, _insert_run_bytes, _renumber, _renumber,
)
_TEXT_OPS: tuple[Callable[[random.Random, str, Sequence[str]], str], ...] = (
    _set_char, _set_char, _delete, _duplicate, _insert_chars, _insert_token,
    _insert_token, _truncate, _insert_run_text, _renumber, _renumber,
)


def random_cuts(rng: random.Random, size: int) -> tuple[int, ...]:
    """Where to cut ``size`` bytes into reads: none, a few random points, or every byte."""
    roll = rng.random()
    if size < 2 or roll < 0.35:
        return ()
    if roll < 0.9:
        return tuple(sorted(rng.randrange(1, size) for _ in range(rng.randint(1, 4))))
    if size <= 64:
        return tuple(range(1, size))  # one byte per read
    return tuple(sorted(rng.sample(range(1, size), min(size - 1, 32))))


#: Inputs up to this size are sometimes read in every possible pair of reads.
EVERY_SPLIT_MAX = 48


def wants_every_split(rng: random.Random, size: int, rate: float = 0.1) -> bool:
    """Whether to try each two-read cut of a short input (rather than one cut pattern)."""
    return size <= EVERY_SPLIT_MAX and rng.random() < rate


def every_split(data: T) -> list[list[T]]:
    """Each way to cut ``data`` into two reads."""
    return [[data[:i], data[i:]] for i in range(len(data) + 1)]
