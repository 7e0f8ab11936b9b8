"""The `kamal-backup` command's entry point.

`kamal-backup version` (or `--version`, `-v`) answers here, before the CLI module is imported:
Typer, logging and the process helpers cost several times the answer itself. Every other
command goes to the CLI (kamal_backup.cli.main), which answers `version` the same way. Before
the CLI is imported, `restore-db` starts the restic processes it will need (prestart.py).

When the command is done, the process ends without Python's teardown (see `finish`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from kamal_backup import __version__

VERSION_ARGUMENTS = (["version"], ["--version"], ["-v"])

# Python's own exit status when it cannot flush stdout at exit (e.g. a closed pipe).
FLUSH_FAILED = 120
INTERRUPTED = 130  # errors.ExitCode.INTERRUPTED, without importing it here


def main() -> None:
    if sys.argv[1:] in VERSION_ARGUMENTS:
        sys.stdout.write(f"kamal-backup {__version__}\n")
        return
    try:
        if sys.argv[1:2] in (["restore-db"], ["--verbose"]):
            # restic opens the repository while the rest is imported (see prestart.py).
            from kamal_backup.prestart import prestart

            _prestart_then_signals(prestart)
        from kamal_backup.cli import main as cli_main

        cli_main()
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            _stop_prestarted()
            raise  # a message as the status: Python prints it and exits 1
        finish(exc.code or 0)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM, see _terminated) while Python still loads, before the CLI could
        # answer it: the CLI's own line and exit status, not a traceback.
        _stop_prestarted()
        sys.stderr.write("kamal-backup: interrupted\n")
        finish(INTERRUPTED)
    except BaseException:
        _stop_prestarted()
        raise
    finish(0)


def _prestart_then_signals(prestart: Callable[[list[str]], int]) -> None:
    """Runs prestart with Ctrl-C and SIGTERM held back, then answers one that came.

    Held back, not raised where they land: a KeyboardInterrupt inside subprocess.Popen, or
    between it and the registry, would leave a child nobody stops with SIGTERM (the parent-death
    SIGKILL would leave restic's lock behind). Not blocked either: a child inherits a blocked
    signal mask across exec. Afterwards, until the command installs its own handlers, SIGTERM
    ends the command as Ctrl-C does, through finish(), which stops what prestart started; when
    prestart started nothing, SIGTERM keeps its default.
    """
    held: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: held.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        started = prestart(sys.argv[1:])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if started:
        signal.signal(signal.SIGTERM, _terminated)
    if signal.SIGINT in held or (started and signal.SIGTERM in held):
        raise KeyboardInterrupt
    if signal.SIGTERM in held:
        signal.raise_signal(signal.SIGTERM)  # its default: the process ends by the signal


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM before the command has its own handlers: handled as Ctrl-C is (exit 130)."""
    raise KeyboardInterrupt


def _stop_prestarted() -> None:
    """Stops the processes prestart started that nothing took (restic removes its lock on
    SIGTERM; the parent-death signal alone would SIGKILL them and leave it behind). A second
    Ctrl-C or SIGTERM meanwhile is ignored: this takes a second at most."""
    process = sys.modules.get("kamal_backup.process")
    if process is None or not process.has_prestarted():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    process.stop_prestarted()


def finish(code: int) -> NoReturn:
    """Ends the process now, skipping the interpreter's teardown: freeing every module's objects
    (pydantic's validators, Typer's commands) took about 80 ms, the last cost of every command.

    What the teardown would do that matters is done here: logging shut down, stdout and stderr
    flushed. The command has returned, so its children are waited for and its files closed;
    every thread kamal-backup starts is a daemon, which Python would not wait for either, and
    no library it uses registers an exit handler but logging.
    """
    import logging

    _stop_prestarted()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and code == 0:
                code = FLUSH_FAILED
    os._exit(code)
