"""nats-server's ``websocket {}`` block: the WebSocket door's listener and settings."""

from __future__ import annotations

from dataclasses import dataclass

from core.options import TOP_LEVEL_KEYS, Entry, KeyTable, Options, _listen

#: The WebSocket port of the embedded default (``jetport serve`` with no arguments).
EMBEDDED_WEBSOCKET_PORT = 8080

WEBSOCKET_KEYS = KeyTable("websocket.")


@dataclass
class WebSocketOptions:
    """The WebSocket door's settings; ``port`` 0 means the door is off, -1 a free port."""

    host: str = ""  # "": the server's host
    port: int = 0
    no_tls: bool = False


def websocket_options(opts: Options) -> WebSocketOptions:
    if opts.websocket is None:
        opts.websocket = WebSocketOptions()
    return opts.websocket


@TOP_LEVEL_KEYS.key("websocket", "ws")
def _websocket_key(opts: Options, entry: Entry) -> None:
    websocket_options(opts)
    WEBSOCKET_KEYS.apply(opts, entry.block())


@WEBSOCKET_KEYS.key("listen")
def _ws_listen(opts: Options, entry: Entry) -> None:
    host, port = _listen(entry)
    w = websocket_options(opts)
    if host:
        w.host = host
    w.port = port


@WEBSOCKET_KEYS.key("host", "net")
def _ws_host(opts: Options, entry: Entry) -> None:
    websocket_options(opts).host = entry.string()


@WEBSOCKET_KEYS.key("port")
def _ws_port(opts: Options, entry: Entry) -> None:
    websocket_options(opts).port = entry.integer()


@WEBSOCKET_KEYS.key("no_tls")
def _ws_no_tls(opts: Options, entry: Entry) -> None:
    websocket_options(opts).no_tls = entry.boolean()


def embedded(opts: Options) -> None:
    """The embedded default opens the WebSocket door on its standard port."""
    websocket_options(opts).port = EMBEDDED_WEBSOCKET_PORT
