"""The build under test is the one asked for: with ``JETPORT_MYPYC=1`` (`make compiled`)
every module ``[tool.jetport.mypyc]`` lists must be a mypyc extension, otherwise each
must be its plain .py, so neither suite can pass on the other build by mistake."""

from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def compiled_modules() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        paths = tomllib.load(f)["tool"]["jetport"]["mypyc"]["modules"]
    return ["jetport." + p.removesuffix(".py").replace("/", ".") for p in paths]


def test_listed_modules_are_compiled_exactly_when_asked() -> None:
    wanted = os.environ.get("JETPORT_MYPYC") == "1"
    files = {name: importlib.import_module(name).__file__ or "" for name in compiled_modules()}
    wrong = {name: path for name, path in files.items() if path.endswith(".so") != wanted}
    assert wrong == {}
