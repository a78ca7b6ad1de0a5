"""The ``jetport`` command: ``serve`` runs the hub, ``bench`` measures one."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points

USAGE = """\
usage: jetport <command> [options]

commands:
  serve [nats-server flags]   run the hub (no flags: every door on its default port of
                              127.0.0.1, JetStream on SQLite in ./data; --open: the same
                              on every interface)
  bench [options]             load generator; compare Jetport with nats-server
  version                     print the version

nats-server's flags without a command run serve: "jetport -c nats.conf" is
"jetport serve -c nats.conf", so Jetport can stand in for nats-server in scripts.
"""


def _commands() -> dict[str, Callable[[list[str]], int]]:
    """Subcommands other packages provide (``jetport bench``), found by entry point as
    doors are, so the core imports none of them."""
    return {ep.name: ep.load() for ep in entry_points(group="jetport.commands")}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd.startswith("-") and cmd not in ("-v", "--version"):
        return serve(args)
    if cmd == "serve":
        return serve(rest)
    command = _commands().get(cmd)
    if command is not None:
        return int(command(rest))
    if cmd in ("version", "-v", "--version"):
        from jetport.core.hub import JETPORT_VERSION, NATS_VERSION

        print(f"jetport {JETPORT_VERSION} (nats-server {NATS_VERSION} compatible)")
        return 0
    print(f"jetport: unknown command {cmd!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


def serve(argv: list[str]) -> int:
    from jetport.core.config import OptionsError, parse_args, usage
    from jetport.core.hub import JETPORT_VERSION, NATS_VERSION
    from jetport.core.log import configure, fatal
    from jetport.core.server import run

    try:
        options = parse_args(argv)
    except OptionsError as exc:
        configure()
        fatal(str(exc))
        return 1
    if options.action == "version":
        print(f"jetport: v{JETPORT_VERSION} (nats-server v{NATS_VERSION} compatible)")
        return 0
    if options.action == "help":
        print(usage(), end="")
        return 0
    if options.action == "test_config":
        print(f"jetport: configuration file {options.config_file} test is successful")
        return 0
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
