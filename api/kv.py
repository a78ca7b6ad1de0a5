"""Key-value buckets over HTTP, stored as nats.py and nats.go store them.

A bucket ``B`` is the stream ``KV_B`` on ``$KV.B.>``; a key's revision is the stream
sequence of its newest entry; deletes and purges are entries with a ``KV-Operation``
header.  Buckets made here are read and written by NATS KV clients and the other way round.
"""

from __future__ import annotations

import base64
import re
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from jetport.api.auth import caller
from jetport.api.domain import js_domain
from jetport.api.errors import ERRORS, HttpError, bad_request, not_found
from jetport.api.messages import ack_info, encode_data, scan
from jetport.api.publish import commit
from jetport.api.session import DoorClient
from jetport.core import headers as H
from jetport.core.timeutil import NS_PER_S, rfc3339

router = APIRouter(prefix="/v1/kv", tags=["kv"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
BUCKET_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
_WRONG_LAST = 10071


class BucketConfig(BaseModel):
    bucket: str
    description: str = ""
    history: int = Field(1, ge=1, le=64)
    #: Seconds an entry lives (0: forever).
    ttl: float = Field(0, ge=0, le=10 * 365 * 86400)
    max_bytes: int = Field(-1, ge=-1)
    max_value_size: int = Field(-1, ge=-1, le=2**31 - 1)
    storage: Literal["file", "memory"] = "file"
    #: Copies kept by a clustered JetStream (``?domain=`` of a cluster); 1 on one server.
    replicas: int = Field(1, ge=1, le=5)
    #: Seconds the hub keeps a marker when a key's entry expires (0: no markers), so
    #: watchers learn of expiries; at least 1.
    limit_marker_ttl: float = Field(0, ge=0, le=10 * 365 * 86400)


class BucketStatus(BaseModel):
    bucket: str
    values: int
    history: int
    ttl: float
    bytes: int
    limit_marker_ttl: float = 0


class Revision(BaseModel):
    revision: int


class KvEntry(BaseModel):
    key: str
    revision: int
    created: str | None = None
    operation: Literal["PUT", "DEL", "PURGE"] = "PUT"
    value: str = ""
    encoding: Literal["utf-8", "base64"] = "utf-8"


class Keys(BaseModel):
    keys: list[str]


class History(BaseModel):
    entries: list[KvEntry]


def _bucket(name: str) -> str:
    if not BUCKET_NAME.match(name):
        raise bad_request(f"invalid bucket name {name!r}")
    return name


def _key(key: str) -> str:
    if not _KEY.match(key) or key.startswith(".") or key.endswith("."):
        raise bad_request(f"invalid key {key!r}")
    return key


def _status(info: dict[str, Any]) -> BucketStatus:
    cfg, state = info.get("config") or {}, info.get("state") or {}
    return BucketStatus(bucket=str(cfg.get("name", ""))[3:], values=state.get("messages", 0),
                        history=cfg.get("max_msgs_per_subject", 1),
                        ttl=cfg.get("max_age", 0) / NS_PER_S, bytes=state.get("bytes", 0),
                        limit_marker_ttl=cfg.get("subject_delete_marker_ttl", 0) / NS_PER_S)


@router.get("", response_model=list[str], responses=ERRORS)
async def buckets(client: Caller) -> list[str]:
    doc = await client.js("STREAM.NAMES", {"subject": "$KV.>"})
    return sorted(n[3:] for n in doc.get("streams") or [] if n.startswith("KV_"))


@router.post("", status_code=201, response_model=BucketStatus, responses=ERRORS)
async def create_bucket(cfg: BucketConfig, client: Caller) -> BucketStatus:
    name = _bucket(cfg.bucket)
    ttl = int(cfg.ttl * NS_PER_S)
    window = min(ttl, 120 * NS_PER_S) if ttl else 120 * NS_PER_S
    config = {
        "name": f"KV_{name}", "description": cfg.description, "subjects": [f"$KV.{name}.>"],
        "max_msgs_per_subject": cfg.history, "max_bytes": cfg.max_bytes, "max_age": ttl,
        "max_msg_size": cfg.max_value_size, "storage": cfg.storage, "discard": "new",
        "num_replicas": cfg.replicas, "allow_rollup_hdrs": True, "deny_delete": True,
        "allow_direct": True, "duplicate_window": window, "max_msgs": -1,
        "max_consumers": -1, "allow_msg_ttl": True,
    }
    if cfg.limit_marker_ttl:
        if cfg.limit_marker_ttl < 1:
            raise bad_request("limit_marker_ttl must be at least 1 second")
        config["subject_delete_marker_ttl"] = int(cfg.limit_marker_ttl * NS_PER_S)
    return _status(await client.js(f"STREAM.CREATE.KV_{name}", config))


@router.get("/{bucket}", response_model=BucketStatus, responses=ERRORS)
async def bucket_status(bucket: str, client: Caller) -> BucketStatus:
    return _status(await client.js(f"STREAM.INFO.KV_{_bucket(bucket)}"))


@router.delete("/{bucket}", responses=ERRORS)
async def delete_bucket(bucket: str, client: Caller) -> JSONResponse:
    return JSONResponse(await client.js(f"STREAM.DELETE.KV_{_bucket(bucket)}"))


async def _last(client: DoorClient, bucket: str, key: str,
                revision: int | None = None) -> dict[str, Any] | None:
    """The newest entry of a key (or the one at ``revision``), deletes included."""
    body: dict[str, Any] = ({"seq": revision} if revision
                            else {"last_by_subj": f"$KV.{bucket}.{key}"})
    try:
        doc = await client.js(f"STREAM.MSG.GET.KV_{bucket}", body)
    except HttpError as exc:
        if exc.err_code in (10037, 10043) or (exc.status == 404 and exc.err_code != 10059):
            return None
        if exc.err_code == 10059:
            raise not_found(f"bucket {bucket!r}") from None
        raise
    msg: dict[str, Any] = doc["message"]
    if msg.get("subject") != f"$KV.{bucket}.{key}":
        return None
    return msg


def _operation(msg: dict[str, Any]) -> str:
    return operation(base64.b64decode(msg.get("hdrs") or ""))


Operation = Literal["PUT", "DEL", "PURGE"]


def operation(hdr: bytes | None) -> Operation:
    """PUT, DEL or PURGE; a marker the hub left for an expiry or purge reads as PURGE."""
    op = H.get(hdr, b"KV-Operation")
    if op == b"DEL":
        return "DEL"
    if op == b"PURGE":
        return "PURGE"
    marker = H.get(hdr, b"Nats-Marker-Reason")
    if marker is not None:
        return "DEL" if marker == b"Remove" else "PURGE"
    return "PUT"


@router.get("/{bucket}/keys", response_model=Keys, responses=ERRORS)
async def keys(bucket: str, client: Caller,
               limit: int | None = Query(None, ge=1, le=1_000_000)) -> Keys:
    """Keys whose newest entry is a value (not deleted or purged); the first ``limit``
    of them when given."""
    _bucket(bucket)
    prefix = f"$KV.{bucket}."
    out: list[str] = []
    config = {"deliver_policy": "last_per_subject", "filter_subject": prefix + ">",
              "headers_only": True}
    # aclosing: stopping at ``limit`` deletes the scan's consumer at once.
    async with aclosing(scan(client, f"KV_{bucket}", config)) as pages:
        async for page in pages:
            for subject, _reply, hdr, _ in page:
                if operation(hdr) != "PUT":
                    continue
                out.append(subject.decode()[len(prefix):])
                if len(out) == limit:
                    return Keys(keys=out)
    return Keys(keys=out)


@router.get("/{bucket}/keys/{key:path}", response_class=Response, responses={
    200: {"content": {"application/octet-stream": {}},
          "description": "the value; its revision in KV-Revision"}, **ERRORS})
async def get(bucket: str, key: str, client: Caller,
              revision: int | None = Query(None, ge=1, le=2**63 - 1)) -> Response:
    msg = await _last(client, _bucket(bucket), _key(key), revision)
    if msg is None or _operation(msg) != "PUT":
        raise not_found(f"key {key!r}")
    return Response(base64.b64decode(msg.get("data") or ""),
                    media_type="application/octet-stream",
                    headers={"KV-Revision": str(msg["seq"]), "KV-Created": msg.get("time", ""),
                             "ETag": f'"{msg["seq"]}"'})


def _expected(revision: int | None, if_match: str | None) -> int | None:
    if revision is not None:
        return revision
    if if_match:
        text = if_match.strip().strip('"')
        if not text.isdigit():
            raise bad_request("If-Match must be a revision")
        return int(text)
    return None


async def _write(request: Request, client: DoorClient, bucket: str, key: str, value: bytes,
                 pairs: list[tuple[bytes, bytes]], expect: int | None) -> int:
    if expect is not None:
        pairs = [*pairs, (b"Nats-Expected-Last-Subject-Sequence", b"%d" % expect)]
    subject = f"$KV.{bucket}.{key}".encode()
    try:
        ack = await commit(request.app.state.door, client, subject,
                           H.build(pairs) if pairs else None, value)
    except HttpError as exc:
        if exc.status == 404 and exc.err_code == 10404:
            raise not_found(f"bucket {bucket!r}") from None
        raise
    return int(ack["seq"])


@router.put("/{bucket}/keys/{key:path}", response_model=Revision, responses=ERRORS,
            openapi_extra={"requestBody": {"content": {"*/*": {"schema": {
                "type": "string", "format": "binary"}}}}})
async def put(bucket: str, key: str, request: Request, client: Caller,
              revision: int | None = Query(None, ge=0, le=2**63 - 1),
              if_match: Annotated[str | None, Header()] = None) -> Revision:
    """Set a value; with ``revision`` (or ``If-Match``) only if that is still the key's
    newest revision (409 otherwise)."""
    value = await request.body()
    expect = _expected(revision, if_match)
    return Revision(revision=await _write(request, client, _bucket(bucket), _key(key), value,
                                          [], expect))


@router.post("/{bucket}/keys/{key:path}", status_code=201, response_model=Revision,
             responses=ERRORS, openapi_extra={"requestBody": {"content": {"*/*": {"schema": {
                 "type": "string", "format": "binary"}}}}})
async def create(bucket: str, key: str, request: Request, client: Caller,
                 ttl: int = Query(0, ge=0, le=10 * 365 * 86400)) -> Revision:
    """Set a value only if the key has none (409 if it has); with ``ttl`` (seconds, at
    least 1) this entry alone expires then."""
    _bucket(bucket)
    _key(key)
    value = await request.body()
    pairs = _ttl(ttl)
    try:
        rev = await _write(request, client, bucket, key, value, pairs, 0)
    except HttpError as exc:
        if exc.err_code != _WRONG_LAST:
            raise
        last = await _last(client, bucket, key)
        if last is None or _operation(last) == "PUT":
            raise HttpError(409, _WRONG_LAST, f"key {key!r} exists") from None
        rev = await _write(request, client, bucket, key, value, pairs, int(last["seq"]))
    return Revision(revision=rev)


def _ttl(seconds: int) -> list[tuple[bytes, bytes]]:
    return [(b"Nats-TTL", b"%d" % seconds)] if seconds else []


@router.delete("/{bucket}/keys/{key:path}", response_model=Revision, responses=ERRORS)
async def delete(bucket: str, key: str, request: Request, client: Caller,
                 purge: bool = False,
                 revision: int | None = Query(None, ge=0, le=2**63 - 1),
                 ttl: int = Query(0, ge=0, le=10 * 365 * 86400)) -> Revision:
    """Mark a key deleted; ``purge`` also drops its history, and with ``ttl`` (seconds)
    the purge marker itself goes then."""
    pairs = [(b"KV-Operation", b"PURGE"), (b"Nats-Rollup", b"sub"), *_ttl(ttl)] if purge else [
        (b"KV-Operation", b"DEL")]
    return Revision(revision=await _write(request, client, _bucket(bucket), _key(key), b"",
                                          pairs, revision))


@router.get("/{bucket}/history/{key:path}", response_model=History, responses=ERRORS)
async def history(bucket: str, key: str, client: Caller) -> History:
    _bucket(bucket)
    _key(key)
    entries: list[KvEntry] = []
    config = {"deliver_policy": "all", "filter_subject": f"$KV.{bucket}.{key}"}
    async for page in scan(client, f"KV_{bucket}", config):
        for _subject, reply, hdr, payload in page:
            seq, ts = ack_info(reply) or (0, 0)
            value, enc = encode_data(payload)
            entries.append(KvEntry(key=key, revision=seq, created=rfc3339(ns=ts),
                                 operation=operation(hdr), value=value, encoding=enc))
    if not entries:
        raise not_found(f"key {key!r}")
    return History(entries=entries)
