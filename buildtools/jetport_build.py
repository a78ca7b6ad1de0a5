"""The PEP 517 backend: setuptools', plus mypy in the build requirements when
``JETPORT_MYPYC=1`` asks for the compiled build (setup.py then compiles the hot-path
modules with mypyc). Without it, the build is setuptools' own: pure Python, no compiler.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the hooks this module does not change)

#: The mypy versions the compiled build is tested with.
MYPY = "mypy>=2.4,<2.5"
SWITCH = "JETPORT_MYPYC"


def get_requires_for_build_wheel(
    config_settings: dict[str, str | list[str]] | None = None,
) -> list[str]:
    if os.environ.get(SWITCH) != "1":
        return _setuptools.get_requires_for_build_wheel(config_settings)
    # setuptools runs setup.py to list its requirements, before mypy is there to compile.
    os.environ[SWITCH] = "0"
    try:
        return [*_setuptools.get_requires_for_build_wheel(config_settings), MYPY]
    finally:
        os.environ[SWITCH] = "1"


def get_requires_for_build_editable(
    config_settings: dict[str, str | list[str]] | None = None,
) -> list[str]:
    if os.environ.get(SWITCH) == "1":
        # Built in place, the extensions would sit beside the sources and shadow them for
        # every environment that imports this checkout.
        raise RuntimeError(f"{SWITCH}=1 builds wheels only, not editable installs")
    return _setuptools.get_requires_for_build_editable(config_settings)
