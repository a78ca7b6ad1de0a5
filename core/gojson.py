"""JSON as Go's encoder writes it, for bytes nats-server clients compare with."""

from __future__ import annotations

import json
from typing import Any


def go_json(obj: Any) -> bytes:
    """Compact JSON escaped like Go's encoder (``<``, ``>``, ``&`` as ``\\u00XX``)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                     ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text.encode()
