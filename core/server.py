"""Server assembly: a hub, the doors the options ask for, signals, life cycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
from collections.abc import Coroutine
from typing import Any

from jetport.core import portsfile
from jetport.core.config import EMBEDDED_HOST, Options
from jetport.core.doors import Door, door_classes
from jetport.core.hub import JETPORT_VERSION, Hub
from jetport.core.log import configure, fatal, log, reopen
from jetport.core.tasks import spawn
from jetport.storage.base import StorageError

#: Longest one part of the shutdown (a door, storage) may take, in seconds.
STOP_TIMEOUT = 15.0


class StartupError(Exception):
    """Why the server cannot start; one fatal log line, exit status 1."""


def _raise_fd_limit() -> None:
    """Allow as many sockets as the system lets this process have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One hub and its doors."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.hub = Hub(options)
        self.doors: list[Door] = [cls(self.hub) for cls in door_classes() if cls.wanted(options)]
        self._stop = asyncio.Event()
        self._lame_duck: asyncio.Task[None] | None = None

    def door(self, name: str) -> Door | None:
        return next((d for d in self.doors if d.name == name), None)

    async def start(self) -> None:
        opts, hub = self.options, self.hub
        log.info("Starting jetport, nats-server %s compatible", hub.version)
        log.info("  Version:  %s", JETPORT_VERSION)
        log.info("  Name:     %s", hub.server_name)
        log.info("  ID:       %s", hub.server_id)
        if opts.config_file:
            log.info("Using configuration file: %s", opts.config_file)
        if opts.jetstream:
            from jetport.core.jetstream.engine import JetStream

            hub.jetstream = JetStream(hub)
            try:
                await hub.jetstream.start()
            except (OSError, StorageError) as exc:
                raise StartupError(f"Can't start JetStream: {exc}") from exc
        from jetport.core.system import SystemService

        self.system = SystemService(hub)
        self.system.start()
        for door in self.doors:
            try:
                await door.start()
            except OSError as exc:
                raise StartupError(f"Error listening on port: {exc}") from exc
        if opts.pid_file:
            with open(opts.pid_file, "w") as f:
                f.write(str(os.getpid()))
        if opts.ports_file_dir:
            try:
                portsfile.write(opts.ports_file_dir, hub.urls)
            except OSError as exc:
                log.error("Error writing ports file (%s): %s", opts.ports_file_dir, exc)
        if opts.embedded and opts.host == EMBEDDED_HOST:
            log.info("Listening on %s only: the embedded default has no authorization. "
                     "To accept other machines, run `jetport serve --open` (or configure "
                     "users and use -a 0.0.0.0)", EMBEDDED_HOST)
        hub.ready = True
        log.info("Server is ready")

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.shutdown)
        loop.add_signal_handler(signal.SIGUSR2, self.enter_lame_duck)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGUSR1, reopen)

    def reload(self) -> None:
        """Read the configuration again and apply users, permissions and accounts."""
        spawn(self._reload(), "configuration reload")

    async def _reload(self) -> None:
        from jetport.core import security
        from jetport.core.config import OptionsError, parse_args

        if not self.options.argv:
            log.error("Failed to reload server configuration: no configuration file")
            return
        try:
            options = parse_args(self.options.argv)
        except OptionsError as exc:
            log.error("Failed to reload server configuration: %s", exc)
            return
        await security.reload(self.hub, options)
        log.info("Reloaded server configuration")

    def shutdown(self) -> None:
        log.info("Initiating Shutdown...")
        self._stop.set()

    def enter_lame_duck(self) -> None:
        if self._lame_duck is None:
            self._lame_duck = spawn(self._lame_duck_mode(), "lame duck mode")

    async def _lame_duck_mode(self) -> None:
        opts = self.options
        log.info("Entering lame duck mode, stop accepting new clients")
        self.hub.lame_duck = True
        await asyncio.gather(*(
            d.lame_duck(opts.lame_duck_duration, opts.lame_duck_grace_period)
            for d in self.doors
        ))
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Close the doors, then commit and close storage; every step is bounded, so a
        broken door or store cannot keep the process from exiting."""
        for door in reversed(self.doors):
            await self._bounded(door.stop(), f"{door.name} door")
        if self.hub.jetstream is not None:
            await self._bounded(self.hub.jetstream.stop(), "JetStream")
        if self.options.pid_file:
            with contextlib.suppress(OSError):
                os.unlink(self.options.pid_file)
        if self.options.ports_file_dir:
            try:
                os.unlink(portsfile.path(self.options.ports_file_dir))
            except OSError as exc:
                log.error("Error cleaning up ports file: %s", exc)
        log.info("Server Exiting..")

    @staticmethod
    async def _bounded(step: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await asyncio.wait_for(step, STOP_TIMEOUT)
        except TimeoutError:
            log.error("%s: shutdown did not finish within %gs, going on", what, STOP_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - logged: the rest must still shut down
            log.error("%s: shutdown failed: %s", what, exc, exc_info=exc)

    async def serve(self) -> None:
        """Start, run until a signal asks to stop, stop."""
        await self.start()
        self.install_signals()
        await self.wait()
        await self.stop()


#: Allocations between collections of the youngest generation (Python's default: 700).
GC_THRESHOLD = 50_000


def _tune_gc() -> None:
    """Collect cyclic garbage less often.

    Each message allocates a few short-lived objects, so with the default thresholds
    the collector runs every few dozen messages, and its older generations walk every
    cached message and pending ack each time: a fifth of the CPU of a busy stream.  The
    hub makes little cyclic garbage; collecting it less often costs some memory, not
    correctness.  What exists at startup (modules, configuration) is never collected.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 50, 1000)


def run(options: Options) -> int:
    """Run a server to completion in this process; the exit status."""
    import uvloop

    configure(options.debug, options.trace, options.logtime, options.log_file,
              utc=options.logtime_utc, size_limit=options.log_size_limit,
              max_backups=options.log_max_num)
    _raise_fd_limit()
    _tune_gc()

    async def main() -> int:
        server = Server(options)
        try:
            await server.serve()
        except StartupError as exc:
            fatal(str(exc))
            await server.stop()
            return 1
        return 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            return runner.run(main())
        except KeyboardInterrupt:
            return 0
        except Exception as exc:  # noqa: BLE001 - startup failures: one fatal line, as nats-server
            fatal(str(exc))
            return 1
