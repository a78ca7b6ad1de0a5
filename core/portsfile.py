"""``ports_file_dir``: where the doors listen, written as nats-server writes it.

Scripts and test harnesses that start a server on port -1 read
``<dir>/<program>_<pid>.ports`` to find it: a JSON object of URL lists by listener,
``{"nats": [...], "monitoring": [...], "websocket": [...]}``, plus ``"mqtt"`` for
Jetport's MQTT door.  A listener on every interface lists each address of the host.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from urllib.parse import urlsplit

#: Door name -> the key nats-server uses for that listener.
_KEYS = {"nats": "nats", "http": "monitoring", "websocket": "websocket", "mqtt": "mqtt"}


def path(directory: str, pid: int | None = None) -> str:
    program = os.path.basename(sys.argv[0]) or "jetport"
    return os.path.join(directory, f"{program}_{os.getpid() if pid is None else pid}.ports")


def _addresses(host: str) -> list[str]:
    if host not in ("", "0.0.0.0", "::"):
        return [host]
    found = ["127.0.0.1"]
    try:
        found += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    return list(dict.fromkeys(found))


def contents(urls: dict[str, str]) -> dict[str, list[str]]:
    """The ports file's object for the doors' listen URLs (see ``Hub.urls``)."""
    out: dict[str, list[str]] = {}
    for door, url in urls.items():
        key = _KEYS.get(door, door)
        parts = urlsplit(url)
        host = parts.hostname or ""
        out[key] = [
            f"{parts.scheme}://{f'[{a}]' if ':' in a else a}:{parts.port}" for a in _addresses(host)
        ]
    return out


def write(directory: str, urls: dict[str, str]) -> str:
    """Write the ports file; its path."""
    target = path(directory)
    with open(target, "w") as f:
        json.dump(contents(urls), f)
    return target
