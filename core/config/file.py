"""Reader for the nats-server configuration file format.

Existing nats-server configs must load unchanged, so this follows nats-server's lexer
rather than any stricter grammar: three key separators (``:``, ``=``, whitespace), maps
and arrays with comma or newline separators, ``#`` and ``//`` comments, quoted and bare
strings, size suffixes on integers (``1K`` = 1000, ``1KB``/``1Ki``/``1KiB`` = 1024),
``include`` files and block-scoped ``$VARIABLE`` references with environment fallback.

Values come back as ``str``, ``int``, ``float``, ``bool``, ``list``, :class:`ConfDict`
or, for ISO-8601 Zulu timestamps, :class:`datetime.datetime`. Durations such as ``2m``
stay strings; the options layer converts them.

One deliberate difference: nats-server rejects an integer written directly before the
``]`` that closes an array (``[1, 2]``); here it is read as an integer.
"""

from __future__ import annotations

import bisect
import os
from datetime import UTC, datetime
from typing import Any

__all__ = ["SIZE_MULTIPLIERS", "ConfDict", "ConfError", "load", "parse"]

#: Integer suffixes (lower-cased) and their multipliers: bare letters are powers of
#: 1000, ``b``/``i``/``ib`` forms are powers of 1024, as in nats-server's parser.
SIZE_MULTIPLIERS: dict[str, int] = {"": 1}
for _power, _letter in enumerate("kmgtpe", start=1):
    SIZE_MULTIPLIERS[_letter] = 1000**_power
    for _tail in ("b", "i", "ib"):
        SIZE_MULTIPLIERS[_letter + _tail] = 1024**_power

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Blocks and arrays inside one another, at most (deeper is a parse error: the reader
#: recurses, and no real configuration comes close).
MAX_DEPTH = 64
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
_BCRYPT_PREFIX = "2a$"  # "$2a$..." is a bcrypt hash, never a variable
_NL = "\n\r"
# Characters that end a bare string; a number ends on the same set minus "]".
_STRING_END = frozenset(_NL + " \t;,]}")
_NUMBER_END = frozenset(_NL + " \t;,}")


class ConfError(ValueError):
    """A configuration text that cannot be read; the message starts with ``file:line``."""


class ConfDict(dict[str, Any]):
    """A parsed block: a plain dict that also remembers where each key was defined.

    Keys keep their spelling; nats-server matches them case-insensitively, which is
    the options layer's business.
    """

    __slots__ = ("used", "_where", "source")

    def __init__(self, source: str = "<string>") -> None:
        super().__init__()
        self.source = source
        self._where: dict[str, str] = {}
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        """Return ``"file:line"`` of the definition of ``key`` (the included file's, if any)."""
        return self._where.get(key, self.source)

    def used_as_variable(self, key: str) -> bool:
        """Whether a ``$key`` reference read this key.

        nats-server does not report such keys as unknown fields: they are variables.
        """
        return key in self.used

    def define(self, key: str, value: Any, where: str, *, used: bool = False) -> None:
        """Set ``key`` and record its origin; later definitions replace earlier ones."""
        self[key] = value
        self._where[key] = where
        if used:
            self.used.add(key)
        else:
            self.used.discard(key)


def parse(text: str, filename: str = "<string>") -> ConfDict:
    """Parse configuration ``text``; ``filename`` names it in errors and anchors includes."""
    return _Parser(text, filename, ()).document()


def load(path: str | os.PathLike[str]) -> ConfDict:
    """Read and parse the configuration file at ``path``."""
    return _load(os.fspath(path), ())


def _load(path: str, chain: tuple[str, ...]) -> ConfDict:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) else None
        shown = path.replace("\x00", "\\x00")
        raise ConfError(f"{shown}: cannot open config file: {reason or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfError(f"{path}: config file is not valid UTF-8: {exc.reason}") from exc
    return _Parser(text, path, chain).document()


class _Parser:
    """Recursive-descent reader mirroring the states of nats-server's lexer."""

    def __init__(self, text: str, filename: str, chain: tuple[str, ...]) -> None:
        self.text = text
        self.filename = filename
        self.chain = (*chain, os.path.abspath(filename))
        self.pos = 0
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self.scopes: list[ConfDict] = []
        #: Arrays being read inside one another (blocks count through ``scopes``).
        self.arrays = 0
        self.resolving: set[str] = set()
        bad = next((i for i, ch in enumerate(text) if "\ud800" <= ch <= "\udfff"), None)
        if bad is not None:  # a lone surrogate: not text any file can hold
            raise self.error("invalid character (a lone UTF-16 surrogate)", bad)

    # -- positions and errors -------------------------------------------------------

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def here(self, pos: int | None = None) -> str:
        return f"{self.filename}:{self.line_at(self.pos if pos is None else pos)}"

    def error(self, message: str, pos: int | None = None) -> ConfError:
        return ConfError(f"{self.here(pos)}: {message}")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def describe(self, ch: str) -> str:
        return "end of file" if ch == "" else repr(ch)

    # -- skipping -------------------------------------------------------------------

    def skip_blank(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def skip_space(self) -> None:
        while self.peek() and self.peek().isspace():
            self.pos += 1

    def at_comment(self) -> bool:
        ch = self.peek()
        return ch == "#" or (ch == "/" and self.peek(1) == "/")

    def skip_comment(self) -> None:
        while self.peek() and self.peek() not in _NL:
            self.pos += 1

    # -- document and blocks --------------------------------------------------------

    def document(self) -> ConfDict:
        root = ConfDict(self.filename)
        self.scopes.append(root)
        while True:
            self.skip_space()
            ch = self.peek()
            if ch == "":
                return root
            if ch in "{}":  # a JSON-style outer brace pair is allowed and ignored
                self.pos += 1
            elif self.at_comment():
                self.skip_comment()
            elif ch == "/":
                raise self.error("unexpected '/' (comments start with '#' or '//')")
            else:
                self.entry(root, top=True)
                self.top_value_end()

    def top_value_end(self) -> None:
        while True:
            self.skip_blank()
            ch = self.peek()
            if self.at_comment():
                self.skip_comment()
                return
            if ch == "/":  # nats-server skips a lone '/' here
                self.pos += 1
                continue
            if ch == "":
                return
            if ch in _NL or ch in ";,}":
                self.pos += 1
                return
            raise self.error(
                f"expected a top-level value to end with a new line, comment or end of "
                f"file, got {self.describe(ch)}"
            )

    def block(self) -> ConfDict:
        start = self.pos
        self.pos += 1  # "{"
        block = ConfDict(self.filename)
        self.scopes.append(block)
        try:
            while True:
                self.skip_space()
                ch = self.peek()
                if ch == "}":
                    self.pos += 1
                    return block
                if self.at_comment():
                    self.skip_comment()
                    continue
                if ch == "":
                    raise self.error(
                        f"unexpected end of file in block opened on line {self.line_at(start)}"
                    )
                if ch in "=:":
                    raise self.error(f"unexpected key separator {ch!r}")
                if ch == "]":
                    raise self.error("unexpected ']' in block")
                self.entry(block, top=False)
                if self.block_value_end():
                    return block
        finally:
            self.scopes.pop()

    def block_value_end(self) -> bool:
        """Consume what follows a value in a block; True when the block closed."""
        while True:
            self.skip_blank()
            ch = self.peek()
            if self.at_comment():
                self.skip_comment()
                continue
            if ch == "}":
                self.pos += 1
                return True
            if ch == "/" or (ch and ch in _NL + ";,"):
                self.pos += 1
                return False
            raise self.error(f"expected ',' or '}}' after a block value, got {self.describe(ch)}")

    def array(self) -> list[Any]:
        start = self.pos
        self.pos += 1  # "["
        items: list[Any] = []
        while True:
            self.skip_space()
            ch = self.peek()
            if self.at_comment():
                self.skip_comment()
                continue
            if ch == "]":
                self.pos += 1
                return items
            if ch == "":
                raise self.error(
                    f"unexpected end of file in array opened on line {self.line_at(start)}"
                )
            if ch in ",/":
                raise self.error(f"unexpected {ch!r} in array")
            items.append(self.value(in_array=True))
            if self.array_value_end():
                return items

    def array_value_end(self) -> bool:
        """Consume what follows an array element; True when the array closed."""
        while True:
            self.skip_blank()
            ch = self.peek()
            if self.at_comment():
                self.skip_comment()
                continue
            if ch == "]":
                self.pos += 1
                return True
            if ch == "/" or (ch and ch in _NL + ","):
                self.pos += 1
                return False
            raise self.error(f"expected ',' or ']' after an array value, got {self.describe(ch)}")

    # -- keys -----------------------------------------------------------------------

    def entry(self, target: ConfDict, *, top: bool) -> None:
        key_pos = self.pos
        key, quoted = self.key(top=top)
        if not quoted and key.lower() == "include" and self.peek().isspace():
            self.include(target, key_pos)
            return
        self.skip_space()
        ch = self.peek()
        if ch == "":
            raise self.error(f"key {key!r} has no value", key_pos)
        if ch in "=:":
            self.pos += 1
            if top:
                self.skip_blank()
                if self.peek() and self.peek() in _NL:
                    raise self.error(f"expected a value for {key!r} but found a new line")
        if not top:
            self.skip_space()
            if self.peek() in ("", ",", "}"):
                raise self.error(f"key {key!r} has no value", key_pos)
        value = self.value(in_array=False)
        target.define(key, value, self.here(key_pos))

    def key(self, *, top: bool) -> tuple[str, bool]:
        ch = self.peek()
        if ch in ('"', "'"):
            end = self.text.find(ch, self.pos + 1)
            if end < 0:
                raise self.error("unexpected end of file in quoted key")
            key = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return key, True
        start = self.pos
        while True:
            ch = self.peek()
            if ch == "" and not top:
                raise self.error("unexpected end of file in block key")
            if ch == "" or ch.isspace() or ch in "=:":
                return self.text[start : self.pos], False
            self.pos += 1

    def include(self, target: ConfDict, key_pos: int) -> None:
        self.skip_blank()
        ch = self.peek()
        if ch in ('"', "'"):
            end = self.text.find(ch, self.pos + 1)
            if end < 0:
                raise self.error("unexpected end of file in include path")
            name = self.text[self.pos + 1 : end]
            self.pos = end + 1
        elif ch == "" or ch in _NL or ch in "[{(-\\" or ch.isdigit():
            raise self.error(f"expected an include path, got {self.describe(ch)}")
        else:
            start = self.pos
            while self.peek() and self.peek() not in _NL + " \t;}'":
                self.pos += 1
            name = self.text[start : self.pos]
            if self.peek() == "'":
                self.pos += 1
        # Like nats-server (Go's filepath.Join), even an absolute include path is taken
        # relative to the including file's directory.
        base = os.path.dirname(self.filename) or "."
        path = os.path.normpath(os.path.join(base, name.lstrip("/")))
        if os.path.abspath(path) in self.chain:
            raise self.error(f"include cycle: {name!r} includes itself", key_pos)
        try:
            included = _load(path, self.chain)
        except ConfError as exc:
            raise ConfError(f"{exc} (included from {self.here(key_pos)})") from exc
        for key, value in included.items():
            target.define(key, value, included.where(key), used=included.used_as_variable(key))

    # -- values ---------------------------------------------------------------------

    def value(self, *, in_array: bool) -> Any:
        ch = self.peek()
        if ch in "[{" and ch:
            if len(self.scopes) + self.arrays >= MAX_DEPTH:
                raise self.error(f"blocks and arrays nested deeper than {MAX_DEPTH}")
            if ch == "{":
                return self.block()
            self.arrays += 1
            try:
                return self.array()
            finally:
                self.arrays -= 1
        if ch == "'":
            end = self.text.find("'", self.pos + 1)
            if end < 0:
                raise self.error("string is never closed")
            text = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return text
        if ch == '"':
            return self.quoted()
        if ch == "(":
            return self.raw_block()
        if ch == "-" or ch.isdigit():
            return self.number(in_array=in_array)
        if ch == ".":
            raise self.error("floats must start with a digit")
        if ch and ch in _NL:
            raise self.error("expected a value but found a new line")
        return self.bare()

    def escape(self) -> str:
        """Decode the escape after a backslash (``self.pos`` is on the backslash)."""
        code = self.peek(1)
        if code == "x":
            digits = self.text[self.pos + 2 : self.pos + 4]
            try:
                if len(digits) != 2 or any(d in _NL for d in digits):
                    raise ValueError
                decoded = chr(int(digits, 16))
            except ValueError:
                raise self.error(
                    f"expected two hexadecimal digits after '\\x', got {digits!r}") from None
            self.pos += 4
            return decoded
        if code not in _ESCAPES:
            raise self.error(
                f'invalid escape {self.describe(code)}; allowed: \\xXX, \\t, \\n, \\r, \\", \\\\'
            )
        self.pos += 2
        return _ESCAPES[code]

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        parts: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise self.error("string is never closed", start)
            if ch == '"':
                self.pos += 1
                return "".join(parts)
            if ch == "\\":
                parts.append(self.escape())
            else:
                parts.append(ch)
                self.pos += 1

    def raw_block(self) -> str:
        """``( ... )`` holds text verbatim up to a line holding only ``)``."""
        start = self.pos + 1
        search = start
        while True:
            close = self.text.find("\n)", search)
            if close < 0:
                raise self.error("unexpected end of file in '(' block")
            after = close + 2
            if after == len(self.text) or self.text[after] == "\n":
                self.pos = after
                return self.text[start : close + 1]
            search = close + 1

    def bare(self, start: int | None = None) -> Any:
        """An unquoted string, boolean or ``$variable``; ``start`` rewinds to a number's start."""
        if start is not None:
            self.pos = start
        begin = self.pos
        parts: list[str] = []
        escaped = False
        while True:
            ch = self.peek()
            if ch == "\\":
                escaped = True
                parts.append(self.escape())
                continue
            if ch == "" or ch in _STRING_END:
                break
            if ch == "'":  # nats-server ends a bare string at a quote and drops it
                self.pos += 1
                break
            parts.append(ch)
            self.pos += 1
        text = "".join(parts)
        if escaped:
            return text
        if text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
        if text.startswith("$"):
            return self.variable(text[1:], begin)
        return text

    def number(self, *, in_array: bool) -> Any:
        start = self.pos
        ends = _NUMBER_END | {"]"} if in_array else _NUMBER_END
        negative = self.peek() == "-"
        if negative:
            self.pos += 1
            if not self.peek().isdigit():
                raise self.error(f"expected a digit after '-', got {self.describe(self.peek())}")
        while self.peek().isdigit():
            self.pos += 1
        ch = self.peek()
        if ch == "-" and not negative:
            if self.pos - start != 4:
                raise self.error("dates must be ISO-8601 in full Zulu form")
            return self.timestamp(start)
        if ch == ".":
            return self.decimal(start)
        if ch and ch.lower() in "kmgtpe":
            self.pos += 1
            while self.peek() and self.peek() in "bBiI":
                self.pos += 1
            if self.peek() == "" or self.peek() in ends:
                return self.integer(start)
            return self.bare(start)
        if negative or ch == "" or ch in ends:
            return self.integer(start)
        return self.bare(start)  # e.g. "3secret" or "12:30"

    def integer(self, start: int) -> int:
        token = self.text[start : self.pos]
        digits_end = len(token.rstrip("kKmMgGtTpPeEbBiI"))
        digits, suffix = token[:digits_end], token[digits_end:].lower()
        if suffix not in SIZE_MULTIPLIERS:
            raise self.error(f"invalid size suffix in {token!r}", start)
        if len(digits.lstrip("+-")) > 19:
            raise self.error(f"integer {token!r} is out of range", start)
        number = int(digits)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise self.error(f"integer {token!r} is out of range", start)
        number *= SIZE_MULTIPLIERS[suffix]
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise self.error(f"integer {token!r} is out of range", start)
        return number

    def decimal(self, start: int) -> float | str:
        self.pos += 1  # "."
        if not self.peek().isdigit():
            raise self.error(
                f"floats must have a digit after the '.', got {self.describe(self.peek())}"
            )
        while self.peek().isdigit():
            self.pos += 1
        if self.peek() == ".":  # an IP address such as 127.0.0.1:4222
            while self.peek() and (self.peek().isdigit() or self.peek() in ".:-"):
                self.pos += 1
            return self.text[start : self.pos]
        return float(self.text[start : self.pos])

    def timestamp(self, start: int) -> datetime:
        token = self.text[start : start + 20]
        try:
            if len(token) != 20 or token[10] != "T" or token[19] != "Z":
                raise ValueError
            stamp = datetime.strptime(token, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise self.error(f"expected an ISO-8601 Zulu timestamp, got {token!r}", start) from None
        self.pos = start + 20
        return stamp

    # -- variables ------------------------------------------------------------------

    def variable(self, name: str, pos: int) -> Any:
        if name.startswith(_BCRYPT_PREFIX):
            return "$" + name
        for scope in reversed(self.scopes):
            if name in scope:
                scope.used.add(name)
                return scope[name]
        raw = os.environ.get(name)
        if raw is None:
            raise self.error(f"variable reference for {name!r} can not be found", pos)
        if name in self.resolving:
            raise self.error(f"variable {name!r} refers to itself through the environment", pos)
        sub = _Parser(f"pk={raw}", f"${name}", ())
        sub.resolving = self.resolving | {name}
        try:
            return sub.document()["pk"]
        except (ConfError, KeyError) as exc:
            raise self.error(f"variable reference for {name!r} could not be parsed: {exc}",
                             pos) from exc
