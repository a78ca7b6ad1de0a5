"""Everything but the mypyc build is in pyproject.toml.

With ``JETPORT_MYPYC=1`` (buildtools/jetport_build.py then adds mypy to the build
requirements) the modules ``[tool.jetport.mypyc]`` lists are compiled with mypyc; their
.py files are installed beside the extensions, which Python imports first.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent
#: The compiled build's own build folder, so that no extension built here can end up in
#: a later pure build's wheel (setuptools packs what its build/lib holds).
BUILD = ROOT / "build" / "mypyc"


def mypyc_extensions() -> list[Any]:
    """mypyc names a module after its path, so it compiles links laid out as the
    installed package (``build/mypyc/src/jetport/<folder>``), as mypy reads them."""
    from mypyc.build import mypycify

    with open(ROOT / "pyproject.toml", "rb") as f:
        tool = tomllib.load(f)["tool"]
    # setuptools packs whatever its build/lib holds: an extension left from an earlier
    # build of a module no longer listed would shadow that module's .py.
    for old in BUILD.glob("lib.*"):
        shutil.rmtree(old)
    package = BUILD / "src" / "jetport"
    package.mkdir(parents=True, exist_ok=True)
    # A package marker for mypy's view only; the installed jetport has none.
    (package / "__init__.py").touch()
    for name, folder in tool["setuptools"]["package-dir"].items():
        link = package / name.removeprefix("jetport.")
        link.unlink(missing_ok=True)
        link.symlink_to(ROOT / folder)
    # The build has none of the runtime dependencies: modules it does not compile are
    # read for their types, their own errors are mypy's business (`make lint`), not this.
    config = BUILD / "mypy.ini"
    config.write_text("[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n")
    paths = [str(package / path) for path in tool["jetport"]["mypyc"]["modules"]]
    return list(mypycify([f"--config-file={config}", *paths], opt_level="3",
                         group_name="jetport", target_dir=str(BUILD / "c")))


if os.environ.get("JETPORT_MYPYC") == "1":
    setup(ext_modules=mypyc_extensions(), options={"build": {"build_base": str(BUILD)}})
else:
    setup()
