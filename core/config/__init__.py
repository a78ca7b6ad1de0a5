"""Configuration: nats-server's config file format and command-line flags, into one
typed :class:`Options`.

An existing ``nats-server -c FILE ...`` launch must mean the same to Jetport, so keys,
aliases, flag spellings, defaults and override rules follow nats-server.

Modules, lowest first: :mod:`.file` (the file format), :mod:`.options` (the settings and
their defaults), :mod:`.values` (durations, sizes, addresses), :mod:`.keys` (the key
tables), then one module per block, which registers its keys when imported, in this
order: :mod:`.server` (top level), :mod:`.jetstream`, :mod:`.tls`, :mod:`.auth`
(authorization, accounts, users), :mod:`.mqtt`, :mod:`.websocket`, :mod:`.leafnode`
(the remotes a leaf node dials); and last :mod:`.flags`, the command line and the
defaults that depend on what was set.
"""

from __future__ import annotations

import importlib

#: The blocks, each registering its keys when imported, in this order: before anything
#: else of the package is used, every key is known.
BLOCKS = ("server", "jetstream", "tls", "auth", "mqtt", "websocket", "leafnode")
for _block in BLOCKS:
    importlib.import_module(f"{__name__}.{_block}")

# The public names, after the registrations above.
from jetport.core.config.file import ConfDict, ConfError  # noqa: E402
from jetport.core.config.flags import accepted_flags, from_config, parse_args, usage  # noqa: E402
from jetport.core.config.options import (  # noqa: E402
    EMBEDDED_HOST,
    Options,
    OptionsError,
    default_store_dir,
)
from jetport.core.config.values import parse_duration, parse_size  # noqa: E402

__all__ = [
    "EMBEDDED_HOST",
    "ConfDict",
    "ConfError",
    "Options",
    "OptionsError",
    "accepted_flags",
    "default_store_dir",
    "from_config",
    "parse_args",
    "parse_duration",
    "parse_size",
    "usage",
]
