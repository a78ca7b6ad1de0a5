"""Building blocks for the JetStream wire shapes: Go's JSON conventions in pydantic.

nats-server marshals Go structs, so a shape's JSON depends on field order, on which
fields carry ``omitempty`` and on Go's types (int64 nanosecond durations, RFC 3339
timestamps, enums as strings).  :class:`WireModel` reproduces that: ``dump()`` (and
``model_dump``/``model_dump_json``) drop ``None`` and the zero value of ``omitempty``
fields, and :func:`parse_model` turns bad input into nats-server's ``invalid JSON``
error texts, so a Go client sees the same replies it would from the real server.
"""

from __future__ import annotations

import calendar
import datetime
import enum
import json
import re
import types
import typing
from base64 import b64decode, b64encode
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jetport.core import subjects as _subjects
from jetport.core.gojson import go_json
from jetport.core.jetstream import errors as E
from jetport.core.timeutil import ZERO_TIME, ZERO_TIME_NS, rfc3339

NS = 1_000_000_000
MS = 1_000_000
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Longest stream or consumer name (nats-server's JSMaxNameLen).
MAX_NAME_LEN = 255
#: Longest description in bytes (JSMaxDescriptionLen).
MAX_DESCRIPTION_LEN = 4 * 1024
#: Largest metadata map, keys plus values in bytes (JSMaxMetadataLen).
MAX_METADATA_LEN = 128 * 1024


@dataclass(frozen=True)
class GoType:
    """Annotation marker naming the Go type behind a field, for error texts."""

    name: str


def _go_error(detail: str) -> PydanticCustomError:
    return PydanticCustomError("go_json", "{detail}", {"detail": detail})


# -- time -------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_time(text: str) -> int:
    """RFC 3339 (nanoseconds optional, any offset) to Unix nanoseconds, as Go parses it."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(text)
    year, month, day, hour, minute, sec = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "")[:9].ljust(9, "0")
    zone = m.group(8)
    offset = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    # Validates month/day ranges the way a calendar does.
    datetime.datetime(year, month, day, hour, minute, sec)
    secs = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0)) - offset
    return secs * NS + int(frac)


def format_time(ns: int) -> str:
    """Unix nanoseconds as Go's RFC3339Nano in UTC; the zero time stays Go's zero time."""
    if ns == ZERO_TIME_NS:
        return ZERO_TIME
    if ns >= 0:
        return rfc3339(ns=ns)
    secs, frac = divmod(ns, NS)
    when = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
    base = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}"
    return (f"{base}.{frac:09d}".rstrip("0") if frac else base) + "Z"


def _time_in(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            quoted = E.go_quote(value)
            raise _go_error(
                f'parsing time {quoted} as "2006-01-02T15:04:05Z07:00": '
                f'cannot parse {quoted} as "2006"'
            ) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _go_error("Time.UnmarshalJSON: input is not a JSON string")


def _b64_in(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return b64decode(value, validate=True)
        except ValueError:
            raise _go_error("illegal base64 data at input byte 0") from None
    return value


# -- Go scalar types --------------------------------------------------------------------

Int = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX), GoType("int")]
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX), GoType("int64")]
Int32 = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1), GoType("int32")]
Uint16 = Annotated[StrictInt, Field(ge=0, le=2**16 - 1), GoType("uint16")]
Uint64 = Annotated[StrictInt, Field(ge=0, le=2**64 - 1), GoType("uint64")]
#: A ``time.Duration``: integer nanoseconds on the wire.
Duration = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX), GoType("time.Duration")]
Bool = Annotated[StrictBool, GoType("bool")]
Str = Annotated[StrictStr, GoType("string")]
#: A ``time.Time``: Unix nanoseconds in Python, RFC 3339 (UTC, ``Z``) on the wire.
Timestamp = Annotated[
    int, BeforeValidator(_time_in), PlainSerializer(format_time), GoType("time.Time")
]
#: A ``[]byte``: raw bytes in Python, standard base64 on the wire.
B64Bytes = Annotated[
    bytes,
    BeforeValidator(_b64_in),
    PlainSerializer(lambda b: b64encode(b).decode()),
    GoType("[]uint8"),
]
StrMap = Annotated[dict[StrictStr, StrictStr], GoType("map[string]string")]


# -- enums ------------------------------------------------------------------------------


class GoEnum(enum.StrEnum):
    """A Go int enum that marshals as a lowercase string; the first member is Go's zero."""

    @classmethod
    def _go_parse(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if member.value == value:
                    return member
        raise _go_error(cls._bad_value(value))

    @classmethod
    def _bad_value(cls, value: Any) -> str:
        return "can not unmarshal " + E.go_quote(json.dumps(value))

    @property
    def is_zero(self) -> bool:
        return self is next(iter(type(self)))


class Retention(GoEnum):
    LIMITS = "limits"
    INTEREST = "interest"
    WORKQUEUE = "workqueue"


class Discard(GoEnum):
    """Discard policy; nats-server accepts it in any letter case."""

    OLD = "old"
    NEW = "new"

    @classmethod
    def _go_parse(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, cls):
            value = value.lower()
        return super()._go_parse(value)


class StorageType(GoEnum):
    FILE = "file"
    MEMORY = "memory"


class Compression(GoEnum):
    NONE = "none"
    S2 = "s2"

    @classmethod
    def _bad_value(cls, value: Any) -> str:
        return "unknown compression algorithm"


class PersistMode(GoEnum):
    DEFAULT = "default"
    ASYNC = "async"


class DeliverPolicy(GoEnum):
    ALL = "all"
    LAST = "last"
    NEW = "new"
    BY_START_SEQUENCE = "by_start_sequence"
    BY_START_TIME = "by_start_time"
    LAST_PER_SUBJECT = "last_per_subject"


class AckPolicy(GoEnum):
    NONE = "none"
    ALL = "all"
    EXPLICIT = "explicit"


class ReplayPolicy(GoEnum):
    INSTANT = "instant"
    ORIGINAL = "original"


class PriorityPolicy(GoEnum):
    NONE = "none"
    OVERFLOW = "overflow"
    PINNED_CLIENT = "pinned_client"
    PRIORITIZED = "prioritized"

    @classmethod
    def _bad_value(cls, value: Any) -> str:
        return "unknown priority policy: " + json.dumps(value)


class ConsumerAction(GoEnum):
    CREATE_OR_UPDATE = ""
    CREATE = "create"
    UPDATE = "update"

    @classmethod
    def _bad_value(cls, value: Any) -> str:
        return "unknown consumer action: " + json.dumps(value)


# The enums as pydantic field types, with nats-server's unmarshal errors.
RetentionField = Annotated[Retention, BeforeValidator(Retention._go_parse)]
DiscardField = Annotated[Discard, BeforeValidator(Discard._go_parse)]
StorageField = Annotated[StorageType, BeforeValidator(StorageType._go_parse)]
CompressionField = Annotated[Compression, BeforeValidator(Compression._go_parse)]
PersistModeField = Annotated[PersistMode, BeforeValidator(PersistMode._go_parse)]
DeliverPolicyField = Annotated[DeliverPolicy, BeforeValidator(DeliverPolicy._go_parse)]
AckPolicyField = Annotated[AckPolicy, BeforeValidator(AckPolicy._go_parse)]
ReplayPolicyField = Annotated[ReplayPolicy, BeforeValidator(ReplayPolicy._go_parse)]
PriorityPolicyField = Annotated[PriorityPolicy, BeforeValidator(PriorityPolicy._go_parse)]
ConsumerActionField = Annotated[ConsumerAction, BeforeValidator(ConsumerAction._go_parse)]


# -- the model base ---------------------------------------------------------------------


def _is_zero(value: Any) -> bool:
    if isinstance(value, GoEnum):
        return value.is_zero
    if isinstance(value, bool | int | float | str | bytes | list | dict | tuple):
        return not value
    return False


class WireModel(BaseModel):
    """A JetStream JSON shape; field order and ``omitempty`` follow nats-server's struct."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    #: Fields nats-server tags ``omitempty``: left out when zero/empty.
    _omitempty: ClassVar[frozenset[str]] = frozenset()
    #: The Go type name, for error texts.
    _go_name: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        # Go leaves a field untouched on JSON null; only enums (custom unmarshalers) object.
        if isinstance(data, dict):
            keep = _enum_fields(cls)
            return {k: v for k, v in data.items() if v is not None or k in keep}
        return data

    @model_serializer(mode="wrap")
    def _go_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in list(data):
            raw = getattr(self, name, None)
            if raw is None or (name in self._omitempty and _is_zero(raw)):
                del data[name]
        out: dict[str, Any] = data
        return out

    @classmethod
    def go_name(cls) -> str:
        return cls._go_name or cls.__name__

    def dump(self) -> dict[str, Any]:
        """The JSON object nats-server would send for this value."""
        return self.model_dump(mode="json")

    to_dict = dump

    def to_json(self) -> bytes:
        return go_json(self.dump())


_M = TypeVar("_M", bound=WireModel)


@cache
def _enum_fields(cls: type[WireModel]) -> frozenset[str]:
    return frozenset(
        name for name, f in cls.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, GoEnum)
    )




# -- parsing with nats-server's error texts ---------------------------------------------


def parse_model(cls: type[_M], data: Any, *, strict: bool = False, root: str = "") -> _M:
    """Validate a request body (bytes, str, dict or None) into ``cls``.

    An empty body gives the defaults, as nats-server treats it.  Failures raise the
    ``invalid JSON`` API error (10025) with Go's texts; ``strict`` also rejects unknown
    fields, as nats-server 2.11+ does for stream and consumer configs.
    """
    root = root or cls.go_name()
    if data is None or (isinstance(data, bytes | bytearray | str) and not data.strip()):
        doc: Any = {}
    elif isinstance(data, bytes | bytearray | str):
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise E.invalid_json(err=_syntax_error(exc)) from None
        except UnicodeDecodeError:
            raise E.invalid_json(err="invalid character in string literal") from None
    else:
        doc = data
    if not isinstance(doc, dict):
        raise E.invalid_json(
            err=f"json: cannot unmarshal {_json_kind(doc)} into Go value of type server.{root}"
        )
    if strict:
        unknown = unknown_field(cls, doc)
        if unknown is not None:
            raise E.invalid_json(err=f"json: unknown field {json.dumps(unknown)}")
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        raise E.invalid_json(err=_type_error(cls, root, exc.errors()[0])) from None


def unknown_field(cls: type[WireModel], doc: dict[str, Any]) -> str | None:
    """The first key of ``doc`` (depth first) that ``cls`` does not define."""
    for key, value in doc.items():
        field = cls.model_fields.get(key)
        if field is None:
            return key
        inner = _model_in(field.annotation)
        if inner is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                found = unknown_field(inner, item)
                if found is not None:
                    return found
    return None


_SYNTAX_CONTEXT = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes":
        "looking for beginning of object key string",
    "Expecting ',' delimiter": "after object key:value pair",
    "Expecting ':' delimiter": "after object key",
    "Extra data": "after top-level value",
}


def _syntax_error(exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc.rstrip()):
        return "unexpected EOF"
    char = exc.doc[exc.pos]
    context = _SYNTAX_CONTEXT.get(exc.msg, "looking for beginning of value")
    shown = "'\\''" if char == "'" else f"'{char}'"
    return f"invalid character {shown} {context} at offset {exc.pos + 1}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(cls: type[WireModel], root: str, err: Any) -> str:
    if err["type"] == "go_json":
        return str(err["ctx"]["detail"])
    path, go_type = _locate(cls, err["loc"])
    what = _json_kind(err["input"])
    numeric = go_type.startswith(("int", "uint", "float", "time.Duration"))
    if what == "number" and numeric:
        what = f"number {json.dumps(err['input'])}"
    where = f"{root}.{path}" if path else root
    return f"json: cannot unmarshal {what} into Go struct field {where} of type {go_type}"


def _locate(cls: type[WireModel], loc: tuple[Any, ...]) -> tuple[str, str]:
    names: list[str] = []
    ann: Any = cls
    meta: list[Any] = []
    for part in loc:
        model = _model_in(ann)
        if isinstance(part, str) and model is not None and part in model.model_fields:
            field = model.model_fields[part]
            names.append(part)
            ann, meta = field.annotation, list(field.metadata)
        elif isinstance(part, int):
            ann, meta = _item_type(ann)
        else:
            break
    return ".".join(names), _go_type(ann, meta)


def _unwrap(ann: Any) -> tuple[Any, list[Any]]:
    """Strip ``Optional`` and ``Annotated``, collecting annotation metadata."""
    meta: list[Any] = []
    while True:
        if typing.get_origin(ann) is Annotated:
            ann, *extra = typing.get_args(ann)
            meta.extend(extra)
        elif typing.get_origin(ann) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann, meta
            ann = args[0]
        else:
            return ann, meta


def _item_type(ann: Any) -> tuple[Any, list[Any]]:
    base, _ = _unwrap(ann)
    args = typing.get_args(base)
    return _unwrap(args[-1]) if args else (Any, [])


def _model_in(ann: Any) -> type[WireModel] | None:
    base, _ = _unwrap(ann)
    if typing.get_origin(base) in (list, tuple):
        base, _ = _item_type(base)
    if isinstance(base, type) and issubclass(base, WireModel):
        return base
    return None


def _go_type(ann: Any, meta: list[Any]) -> str:
    base, more = _unwrap(ann)
    for m in [*meta, *more]:
        if isinstance(m, GoType):
            return m.name
    origin = typing.get_origin(base)
    if origin in (list, tuple):
        return "[]" + _go_type(*_item_type(base))
    if origin is dict:
        return "map[string]string"
    if isinstance(base, type):
        if issubclass(base, WireModel):
            return "server." + base.go_name()
        if issubclass(base, enum.Enum):
            return "server." + base.__name__
        return {bool: "bool", int: "int64", str: "string"}.get(base, base.__name__)
    return "interface {}"


# -- names and subjects -----------------------------------------------------------------

_NAME_FORBIDDEN = frozenset(" \t\r\n\f.*>/\\")


def valid_name(name: str) -> bool:
    """A stream or consumer name: non-empty, no whitespace, ``.``, ``*``, ``>``, ``/``, ``\\``."""
    return bool(name) and not any(c in _NAME_FORBIDDEN for c in name)


def byte_len(text: str) -> int:
    return len(text.encode())


def metadata_len(metadata: dict[str, str] | None) -> int:
    return sum(byte_len(k) + byte_len(v) for k, v in (metadata or {}).items())


def valid_subject(subject: str) -> bool:
    return _subjects.is_valid_subject(subject.encode())


def valid_publish_subject(subject: str) -> bool:
    """A subject without wildcard tokens (Go's IsValidPublishSubject)."""
    return _subjects.is_valid_literal_subject(subject.encode())


def is_literal(subject: str) -> bool:
    return _subjects.is_literal(subject.encode())


def subjects_collide(a: str, b: str) -> bool:
    return _subjects.subjects_overlap(a.encode(), b.encode())


def is_subset(subject: str, of: str) -> bool:
    """Is every subject matched by ``subject`` also matched by ``of``?"""
    return _subjects.is_subset(subject.encode(), of.encode())
