"""One JSON error shape for the whole door, mirroring JetStream's API errors.

``{"error": {"code": <HTTP status>, "err_code": <number>, "description": <text>}}``:
JetStream errors keep their own ``err_code`` and description, with ``code`` turned into
the HTTP status a web client expects (409 for a failed expectation, 429 for a limit, 413
for an oversize message).  Errors the door raises itself use ``10000 + status``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from jetport.core.log import log

#: Failed expectations and name clashes: the request was fine, the state was not.
_CONFLICT = {10071, 10070, 10060, 10058, 10148, 10013, 10164, 10201}
#: Limits of the account, the stream or the server.
_LIMITED = {10026, 10027, 10047, 10077, 10002, 10028}
#: "store failed" is a stream limit (maximum messages exceeded) or a failing disk; the
#: disk is 503, as is "insufficient resources" (10023: the server's storage is full).
_STORE_FAILED = 10077
_OVERSIZE = {10054, 10097}


class ErrorDetail(BaseModel):
    code: int
    err_code: int
    description: str


class ErrorResponse(BaseModel):
    """Every error the door returns."""

    error: ErrorDetail


#: For ``responses=`` in route declarations: the shape behind each error status.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse}
    for status in (400, 401, 403, 404, 409, 413, 429, 503, 504)
}


class HttpError(Exception):
    """An error answered with :data:`ErrorResponse`."""

    def __init__(self, status: int, err_code: int, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.err_code = err_code
        self.description = description
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.err_code, self.description, self.headers)


def error_response(status: int, err_code: int, description: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": status, "err_code": err_code, "description": description}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(code: int, err_code: int) -> int:
    """The HTTP status for a JetStream error."""
    if err_code in _CONFLICT:
        return 409
    if err_code in _LIMITED:
        return 429
    if err_code in _OVERSIZE:
        return 413
    if code in (400, 401, 403, 404, 408, 409, 413, 429, 503):
        return code
    # nats-server files most config errors under 500; only a failure of its own is one
    return 400


def from_api_error(err: dict[str, Any]) -> HttpError:
    code = int(err.get("code") or 500)
    err_code = int(err.get("err_code") or 0)
    text = str(err.get("description", ""))
    if text == "internal error":
        status = 500
    elif err_code == _STORE_FAILED and "exceeded" not in text:
        status = 503
    else:
        status = status_for(code, err_code)
    return HttpError(status, err_code, text)


def not_found(what: str) -> HttpError:
    return HttpError(404, 10404, f"{what} not found")


def bad_request(why: str) -> HttpError:
    return HttpError(400, 10400, why)


def utf8(text: str, what: str = "text") -> bytes:
    """``text`` as UTF-8; 400 for what JSON can carry and UTF-8 cannot (lone surrogates)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise bad_request(f"{what} is not valid UTF-8") from None


def install(app: FastAPI) -> None:
    """Route every failure, including the framework's own, through the one shape."""

    @app.exception_handler(HttpError)
    async def _http_error(request: Request, exc: HttpError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, 10400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _framework(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, 10000 + exc.status_code, str(exc.detail),
                              getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http %s %s failed", request.method, request.url.path)
        return error_response(500, 10500, "internal error")
