"""Rules of the code base that no linter states exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HUB = ("core", "bridges", "api", "storage")


def hub_sources() -> list[Path]:
    return [p for top in HUB for p in (ROOT / top).rglob("*.py")]


def test_background_work_starts_only_through_spawn() -> None:
    """``loop.create_task`` and ``ensure_future`` keep no reference and log nothing;
    ruff's banned-api rule catches ``asyncio.create_task``, this the method forms."""
    bare = re.compile(r"\.create_task\(|ensure_future\(")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in hub_sources() if p.name != "tasks.py"
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if bare.search(line) and not line.lstrip().startswith(("#", '"', "``"))]
    assert found == []


#: What each package may import of Jetport's own: doors and the HTTP door build on the
#: core, the core on the storage interface, storage on nothing of Jetport's above it.
MAY_IMPORT = {
    "storage": {"storage"},
    "core": {"core", "storage"},
    "bridges": {"bridges", "core", "storage"},
    "api": {"api", "core", "storage"},
}


def test_dependencies_point_one_way() -> None:
    imported = re.compile(r"^\s*(?:from|import) jetport\.(\w+)", re.M)
    wrong = [f"{p.relative_to(ROOT)} imports jetport.{pkg}"
             for top, allowed in MAY_IMPORT.items() for p in (ROOT / top).rglob("*.py")
             for pkg in imported.findall(p.read_text()) if pkg not in allowed]
    assert wrong == []


def test_tests_get_servers_one_way() -> None:
    """Servers come from the ``launch`` fixture and differential tests from the marker:
    no test module starts a server by hand or reads a target switch of its own, no unit
    test starts a process, and ``tests/`` is importable through pytest's ``pythonpath``."""
    tests = ROOT / "tests"
    by_hand = re.compile(r"\b(?:jetport|nats_server)\(tmp|JETPORT_TEST_TARGET|sys\.path\.insert")
    process = re.compile(r"\bsubprocess\b|^from servers import|"
                         r"def test_\w+\([^)]*\b(?:launch|hub|js_hub|raw_clients)\b")
    found = []
    for p in tests.rglob("test_*.py"):
        rel = p.relative_to(ROOT)
        if "node_modules" in p.parts or p.name == "test_house_rules.py":
            continue
        text = p.read_text()
        found += [f"{rel}:{n}" for n, line in enumerate(text.splitlines(), 1)
                  if by_hand.search(line)]
        if p.parent.name == "unit":
            found += [f"{rel}:{n} (a unit test)" for n, line in enumerate(text.splitlines(), 1)
                      if process.search(line) and not line.lstrip().startswith("#")]
    assert found == []
