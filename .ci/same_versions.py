"""Fail when the test extras would hold a runtime dependency below its newest version.

pip resolves ``.`` and ``.[test]`` from scratch (``--dry-run --ignore-installed``);
every runtime dependency must come out at the same version both ways, so the suite runs
with what a user's ``pip install jetport`` gets.

Usage: ``python .ci/same_versions.py`` from the repository root, with the pip to ask.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib


def resolve(target: str) -> dict[str, str]:
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--report", report.name, target],
            check=True,
        )
        with open(report.name) as f:
            data = json.load(f)
    return {
        _norm(item["metadata"]["name"]): item["metadata"]["version"] for item in data["install"]
    }


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
    with open("pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    names = [_norm(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]) for dep in deps]
    alone, with_tests = resolve("."), resolve(".[test]")
    held = [f"{n}: {alone[n]} alone, {with_tests.get(n)} with [test]"
            for n in names if alone.get(n) != with_tests.get(n)]
    for name in names:
        print(f"same_versions: {name} {alone.get(name)}")
    if held:
        print("same_versions: the test extras change runtime versions:\n  " + "\n  ".join(held))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
