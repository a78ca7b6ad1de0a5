"""How imported subjects are renamed between accounts."""

from __future__ import annotations

import pytest

from jetport.core.imports import mapper


@pytest.mark.parametrize(
    ("source", "target", "subject", "expected"),
    [
        ("puba.>", "puba.>", "puba.x.y", "puba.x.y"),
        ("puba.>", "from_a.puba.>", "puba.x.y", "from_a.puba.x.y"),
        ("q.b", "QB", "q.b", "QB"),
        ("QB", "q.b", "QB", "q.b"),
        ("svc.*", "local.*", "svc.7", "local.7"),
        ("a.*.b.>", "x.*.>", "a.1.b.c.d", "x.1.c.d"),
    ],
)
def test_mapper(source: str, target: str, subject: str, expected: str) -> None:
    assert mapper(source.encode(), target.encode())(subject.encode()) == expected.encode()
