"""Object store buckets over HTTP, stored as nats.py and nats.go store them.

A bucket ``B`` is the stream ``OBJ_B``: an object's bytes are chunk messages on
``$O.B.C.<nuid>`` and its description the newest message on ``$O.B.M.<base64url(name)>``
(a rollup, so only the newest stays).  Uploads stream the request body into chunks as it
arrives and publish the description last, with the SHA-256 digest; replacing an object
purges the previous version's chunks.  Downloads stream chunks as they are read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from jetport.api.auth import caller
from jetport.api.domain import js_domain
from jetport.api.errors import ERRORS, HttpError, bad_request, not_found
from jetport.api.kv import BUCKET_NAME
from jetport.api.messages import ack_info, scan
from jetport.api.publish import commit
from jetport.api.session import DoorClient
from jetport.core import headers as H
from jetport.core.log import log
from jetport.core.tasks import spawn
from jetport.core.timeutil import NS_PER_S, rfc3339

router = APIRouter(prefix="/v1/objects", tags=["objects"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
CHUNK = 128 * 1024
#: Chunks published and not yet acknowledged during an upload.
WINDOW = 16


class ObjectBucketConfig(BaseModel):
    bucket: str
    description: str = ""
    ttl: float = Field(0, ge=0, le=10 * 365 * 86400)
    max_bytes: int = Field(-1, ge=-1)
    storage: Literal["file", "memory"] = "file"
    #: Copies kept by a clustered JetStream (``?domain=`` of a cluster); 1 on one server.
    replicas: int = Field(1, ge=1, le=5)


class ObjectInfo(BaseModel):
    """nats-server clients' ObjectInfo: the description message of an object."""

    name: str
    bucket: str
    nuid: str
    size: int = 0
    mtime: str = ""
    chunks: int = 0
    digest: str = ""
    deleted: bool = False
    description: str | None = None
    headers: dict[str, Any] | None = None
    options: dict[str, Any] | None = None


class ObjectList(BaseModel):
    objects: list[ObjectInfo]


def _bucket(name: str) -> str:
    if not BUCKET_NAME.match(name):
        raise bad_request(f"invalid bucket name {name!r}")
    return name


def _name(name: str) -> str:
    if not name or len(name) > 1024:
        raise bad_request("invalid object name")
    return name


def meta_subject(bucket: str, name: str) -> str:
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def _nuid() -> str:
    return secrets.token_urlsafe(16).replace("-", "A").replace("_", "B")


@router.post("", status_code=201, responses=ERRORS)
async def create_bucket(cfg: ObjectBucketConfig, client: Caller) -> JSONResponse:
    name = _bucket(cfg.bucket)
    config = {
        "name": f"OBJ_{name}", "description": cfg.description,
        "subjects": [f"$O.{name}.C.>", f"$O.{name}.M.>"], "max_age": int(cfg.ttl * NS_PER_S),
        "max_bytes": cfg.max_bytes, "storage": cfg.storage, "discard": "new",
        "num_replicas": cfg.replicas, "allow_rollup_hdrs": True, "allow_direct": True,
    }
    info = await client.js(f"STREAM.CREATE.OBJ_{name}", config)
    return JSONResponse({"bucket": name, "config": info.get("config")}, status_code=201)


@router.delete("/{bucket}", responses=ERRORS)
async def delete_bucket(bucket: str, client: Caller) -> JSONResponse:
    return JSONResponse(await client.js(f"STREAM.DELETE.OBJ_{_bucket(bucket)}"))


async def _info(client: DoorClient, bucket: str, name: str) -> ObjectInfo | None:
    try:
        doc = await client.js(f"STREAM.MSG.GET.OBJ_{bucket}",
                              {"last_by_subj": meta_subject(bucket, name)})
    except HttpError as exc:
        if exc.err_code == 10059:
            raise not_found(f"bucket {bucket!r}") from None
        if exc.status == 404:
            return None
        raise
    msg = doc["message"]
    try:
        info = ObjectInfo.model_validate_json(base64.b64decode(msg.get("data") or ""))
    except ValueError:  # not a description some client wrote: no object there
        return None
    info.mtime = msg.get("time", "")
    return info


@router.get("/{bucket}", response_model=ObjectList | ObjectInfo, responses=ERRORS)
async def list_objects(bucket: str, client: Caller, name: str | None = None,
                       deleted: bool = False,
                       limit: int | None = Query(None, ge=1, le=1_000_000)
                       ) -> ObjectList | ObjectInfo:
    """Every object's description (the first ``limit`` when given), or only ``name``'s."""
    _bucket(bucket)
    if name is not None:
        info = await _info(client, bucket, _name(name))
        if info is None or (info.deleted and not deleted):
            raise not_found(f"object {name!r}")
        return info
    out: list[ObjectInfo] = []
    config = {"deliver_policy": "last_per_subject", "filter_subject": f"$O.{bucket}.M.>"}
    # aclosing: stopping at ``limit`` deletes the scan's consumer at once.
    async with aclosing(scan(client, f"OBJ_{bucket}", config)) as pages:
        async for page in pages:
            for _s, reply, _h, payload in page:
                try:
                    info = ObjectInfo.model_validate_json(payload)
                except ValueError:
                    continue
                stamp = ack_info(reply)
                if stamp is not None:
                    info.mtime = rfc3339(ns=stamp[1])
                if deleted or not info.deleted:
                    out.append(info)
                    if len(out) == limit:
                        return ObjectList(objects=out)
    return ObjectList(objects=out)


async def _purge_chunks(client: DoorClient, bucket: str, nuid: str) -> None:
    await client.js(f"STREAM.PURGE.OBJ_{bucket}", {"filter": f"$O.{bucket}.C.{nuid}"})


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body in chunks of exactly :data:`CHUNK` bytes (the last one shorter)."""
    buf = bytearray()
    async for part in request.stream():
        buf += part
        while len(buf) >= CHUNK:
            yield bytes(buf[:CHUNK])
            del buf[:CHUNK]
    if buf:
        yield bytes(buf)


@router.put("/{bucket}/{name:path}", status_code=201, response_model=ObjectInfo,
            responses=ERRORS, openapi_extra={"requestBody": {"content": {"*/*": {"schema": {
                "type": "string", "format": "binary"}}}}})
async def upload(bucket: str, name: str, request: Request, client: Caller,
                 description: str | None = None) -> ObjectInfo:
    """Store the request body as object ``name``, replacing any previous version."""
    _bucket(bucket)
    _name(name)
    door = request.app.state.door
    old = await _info(client, bucket, name)
    nuid = _nuid()
    subject = f"$O.{bucket}.C.{nuid}".encode()
    client.check_publish(subject)
    client.check_publish(meta_subject(bucket, name))
    digest = hashlib.sha256()
    size = chunks = 0
    pending: set[asyncio.Task[Any]] = set()
    try:
        async for chunk in _chunks(request):
            digest.update(chunk)
            size += len(chunk)
            chunks += 1
            pending.add(spawn(commit(door, client, subject, None, chunk),
                              f"http: object chunk of {subject!r}", report=False))
            if len(pending) >= WINDOW:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        if pending:
            for result in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result
        info = ObjectInfo(
            name=name, bucket=bucket, nuid=nuid, size=size, chunks=chunks,
            digest="SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
            description=description, options={"max_chunk_size": CHUNK},
        )
        meta = json.dumps(info.model_dump(exclude={"mtime"}, exclude_none=True)).encode()
        ack = await commit(door, client, meta_subject(bucket, name).encode(),
                           H.build([(b"Nats-Rollup", b"sub")]), meta)
    except BaseException as exc:
        for task in pending:
            task.cancel()
        await _purge_chunks(client, bucket, nuid)
        if isinstance(exc, HttpError) and exc.err_code == 10404:
            raise not_found(f"bucket {bucket!r}") from None
        raise
    if old is not None and old.nuid and old.nuid != nuid:
        await _purge_chunks(client, bucket, old.nuid)
    info.mtime = rfc3339()
    log.debug("http: stored object %s/%s (%d bytes, seq %s)", bucket, name, size, ack["seq"])
    return info


@router.get("/{bucket}/{name:path}", response_class=StreamingResponse, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the object"},
    **ERRORS})
async def download(bucket: str, name: str, client: Caller) -> StreamingResponse:
    """The object's bytes, streamed as they are read; its digest in ``Digest``."""
    info = await _info(client, _bucket(bucket), _name(name))
    if info is None or info.deleted:
        raise not_found(f"object {name!r}")
    try:
        digest = base64.b64encode(base64.urlsafe_b64decode(
            info.digest.removeprefix("SHA-256="))).decode()
    except ValueError:
        digest = ""

    async def body() -> AsyncIterator[bytes]:
        if not info.chunks:
            return
        config = {"deliver_policy": "all", "filter_subject": f"$O.{bucket}.C.{info.nuid}"}
        async for page in scan(client, f"OBJ_{bucket}", config, page=64):
            for msg in page:
                yield msg[3]

    headers = {"Content-Length": str(info.size),
               "Digest": f"sha-256={digest}" if digest else "",
               "Last-Modified": info.mtime}
    return StreamingResponse(body(), media_type="application/octet-stream",
                             headers={k: v for k, v in headers.items() if v})


@router.delete("/{bucket}/{name:path}", response_model=ObjectInfo, responses=ERRORS)
async def delete(bucket: str, name: str, request: Request, client: Caller) -> ObjectInfo:
    info = await _info(client, _bucket(bucket), _name(name))
    if info is None or info.deleted:
        raise not_found(f"object {name!r}")
    gone = info.model_copy(update={"deleted": True, "size": 0, "chunks": 0, "digest": ""})
    meta = json.dumps(gone.model_dump(exclude={"mtime"}, exclude_none=True)).encode()
    await commit(request.app.state.door, client, meta_subject(bucket, name).encode(),
                 H.build([(b"Nats-Rollup", b"sub")]), meta)
    await _purge_chunks(client, bucket, info.nuid)
    return gone


