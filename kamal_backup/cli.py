"""The kamal-backup command line (Typer): renders service results, owns nothing about safety."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar, cast

import typer

from kamal_backup import __version__, process
from kamal_backup.console import LazyConsole, live_progress, setup_logging, stderr
from kamal_backup.entry import VERSION_ARGUMENTS
from kamal_backup.errors import (
    ConfigError,
    ExitCode,
    Interrupted,
    KamalBackupError,
    ToolMissing,
)
from kamal_backup.humanize import check_word, human_bytes
from kamal_backup.humanize import count as count_of
from kamal_backup.redact import redact

# `version` and `--help` need none of these: settings (pydantic-settings), models (pydantic)
# and rich are imported where a command uses them, so start-up stays short.
if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console
    from rich.table import Table

    from kamal_backup.models import RestoreResult, Snapshot, SnapshotRecord
    from kamal_backup.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


def _stdout_console() -> Console:
    from rich.console import Console

    # Every string printed is data (paths, names, restic's words): no markup, no emoji codes.
    return Console(
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        width=None if sys.stdout.isatty() else 160,
    )


# Typed as the Console it stands for: commands use it exactly like one.
stdout = cast("Console", LazyConsole(_stdout_console))
log = logging.getLogger("kamal_backup.cli")

app = typer.Typer(
    name="kamal-backup",
    help="Encrypted, restic-backed backups of a Kamal app's database and files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Options:
    env_file: Path | None = None
    config: Path | None = None

    def settings(self) -> Settings:
        from kamal_backup.settings import load_settings

        return load_settings(self.env_file, config=self.config)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"kamal-backup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="Load settings from a dotenv file (variables already set in the environment win).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Read settings from a YAML file (KAMAL_BACKUP_CONFIG); the environment and "
            "--env-file win over it.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log debug detail.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-v",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    setup_logging(verbose)
    ctx.obj = Options(env_file=env_file, config=config)


def _options(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Options) else Options()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def operation(func: Callable[P, R]) -> Callable[P, R]:
    """Runs a command under the signal handlers; turns typed errors into one line and an exit code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # SIGINT/SIGTERM cancel this command's scope: its children are killed and the
        # operation ends with Interrupted.
        with (
            process.cancel_scope(func.__name__) as scope,
            process.SignalWatcher(lambda signum: scope.cancel()),
        ):
            return func(*args, **kwargs)

    return wrapper


# Commands -----------------------------------------------------------------------------------


@app.command()
@operation
def backup(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run one backup now: a database snapshot and a file snapshot of all BACKUP_PATHS.

    Then apply retention (RESTIC_FORGET_AFTER_BACKUP) and, if RESTIC_CHECK_AFTER_BACKUP, check.
    """
    from kamal_backup.errors import SuspiciousRun
    from kamal_backup.services.backup import describe_snapshots, run_backup

    settings = _options(ctx).settings()
    try:
        with live_progress() as on_status:
            run = run_backup(settings, on_status=on_status)
    except SuspiciousRun as exc:
        # Exit 1 with one line per finding; the run is saved, kept and tagged suspicious.
        if as_json and exc.run is not None:
            _print_json(exc.run.model_dump(mode="json"))
        _error_line(f"error: {exc.message}")
        for finding in exc.findings:
            _error_line(f"suspicious: {finding}")
        raise typer.Exit(ExitCode.FAILED) from None
    if as_json:
        _print_json(run.model_dump(mode="json"))
        return
    stdout.print(f"backup {run.run} saved: {describe_snapshots(run)} ({run.duration_seconds:.1f}s)")
    for warning in run.warnings:
        stderr.print(f"warning: {warning}", markup=False, highlight=False)


@app.command("restore-db")
@operation
def restore_db(
    ctx: typer.Context,
    snapshot: Annotated[
        str, typer.Argument(help="'latest' or a database snapshot id of this app.")
    ] = "latest",
    database: Annotated[
        str | None,
        typer.Option("--database", help="Restore only this database (by name, e.g. primary)."),
    ] = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Restore into the source database (DATABASE_URL / SQLITE_DATABASE_PATH) "
            "after a safety snapshot of it.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore database dumps into their restore targets.

    With several databases and no --database, every database of the run is restored, and the
    command refuses first if any of them has no restore target. Needs
    KAMAL_BACKUP_ALLOW_RESTORE=true and RESTORE_DATABASE_URL (postgres, mysql) or
    RESTORE_SQLITE_DATABASE_PATH (sqlite) for primary, restore_url or restore_path for the
    others. Production-like targets also need KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=true. When
    the target is the source database (or with --in-place), a safety snapshot of it is taken
    first (tagged pre-restore); if that fails, nothing is restored. On a terminal, the app name
    must be typed to confirm.
    """
    from kamal_backup.services import gates
    from kamal_backup.services.restore import (
        restore_all_databases,
        restore_database,
        targeting_source,
    )

    settings = _options(ctx).settings()
    several = database is None and len(settings.database_list) > 1
    chosen = targeting_source(settings) if in_place else settings
    for name in [database] if database else [d.name for d in chosen.database_list]:
        gates.enforce(gates.database_restore_verdicts(chosen, name))
    if gates.production_database_restore(chosen, database) and sys.stdin.isatty():
        _confirm_production(chosen, "the production database")

    settings = _options(ctx).settings()
    several = database is None and len(settings.database_list) > 1
    with live_progress() as on_status:
        if several:
            results = restore_all_databases(
                settings,
                snapshot,
                on_status=on_status,
                into_source=in_place,
                on_safety_snapshot=_print_safety_snapshot,
            )
        else:
            results = [
                restore_database(
                    settings,
                    snapshot,
                    on_status=on_status,
                    database=database,
                    into_source=in_place,
                    on_safety_snapshot=_print_safety_snapshot,
                )
            ]
    if as_json:
        dumped = [result.model_dump(mode="json") for result in results]
        _print_json(dumped if several else dumped[0])
        return
    for result in results:
        if result.safety_snapshot is not None:
            stdout.print(
                f"safety snapshot {result.safety_snapshot.short_id} holds the database as it was "
                "before this restore"
            )
        stdout.print(
            f"restored database snapshot {result.snapshot.short_id} "
            f"({result.snapshot.database or 'primary'}) into {result.target} "
            f"({result.duration_seconds:.1f}s)"
        )


def _confirm_production(settings: Settings, what: str) -> None:
    from kamal_backup.services import gates

    # On stderr: stdout stays data (--json).
    typed = typer.prompt(
        f"This replaces {what}. Type the app name ({settings.app_name}) to go on", err=True
    )
    gates.confirm_app_name(settings, typed)


@app.command("restore-files")
@operation
def restore_files_command(
    ctx: typer.Context,
    snapshot: Annotated[
        str, typer.Argument(help="'latest' or a file snapshot id of this app.")
    ] = "latest",
    target: Annotated[
        str | None,
        typer.Argument(
            help="Directory to restore into (default /restore/files); a backup path restores "
            "in place.",
            show_default=False,
        ),
    ] = None,
    paths: Annotated[
        list[str] | None,
        typer.Option(
            "--path", help="Restore only this file or directory of the snapshot (repeatable)."
        ),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Put every path back at its original location.")
    ] = False,
    keep_previous: Annotated[
        bool,
        typer.Option(
            "--keep-previous", help="Keep the replaced content beside it and print where."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore a file snapshot, or parts of it, into a scratch directory or in place.

    Into a scratch directory files land at TARGET/<original path>. With --in-place (or a TARGET
    that is a backup path) each path comes back at its original location, exactly as in the
    snapshot; this needs KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true. Each path is staged
    beside its destination and swapped in when complete. Needs KAMAL_BACKUP_ALLOW_RESTORE=true.
    """
    from kamal_backup.services.restore import restore_files

    with live_progress() as on_status:
        result = restore_files(
            _options(ctx).settings(),
            snapshot,
            target,
            on_status=on_status,
            paths=paths or (),
            in_place=in_place,
            keep_previous=keep_previous,
        )
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    stdout.print(_restored(result))
    for kept in result.details["previous_kept"]:
        stdout.print(f"previous content kept at {kept}")


@app.command("restore")
@operation
def restore_command(
    ctx: typer.Context,
    run: Annotated[
        str,
        typer.Argument(
            help="'latest' (the newest complete run) or a run such as 20260101T030000Z."
        ),
    ] = "latest",
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Restore into production: the source database (after a safety snapshot) and "
            "the files at their original paths.",
        ),
    ] = False,
    target: Annotated[
        str, typer.Option("--target", help="Scratch directory for the files.")
    ] = "/restore/files",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore the database and the files of one backup run together.

    Into the scratch targets (RESTORE_DATABASE_URL / RESTORE_SQLITE_DATABASE_PATH and --target),
    or with --in-place into production, which needs KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=true and
    KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true. Every gate is checked before anything is
    restored; a failure part-way says which parts were restored.
    """
    from kamal_backup.services import gates
    from kamal_backup.services.restore import restore_run, targeting_source

    settings = _options(ctx).settings()
    if in_place and sys.stdin.isatty():
        gates.enforce(gates.database_restore_verdicts(targeting_source(settings)))
        gates.enforce(gates.in_place_file_restore_verdicts(settings))
        _confirm_production(settings, "the production database and files")
    with live_progress() as on_status:
        result = restore_run(
            settings,
            run,
            in_place=in_place,
            files_target=target,
            on_status=on_status,
            on_safety_snapshot=_print_safety_snapshot,
        )
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    for part in result.parts:
        stdout.print(f"run {result.run}: {_restored(part)}")
        if part.safety_snapshot is not None:
            stdout.print(
                f"safety snapshot {part.safety_snapshot.short_id} holds the database as it was "
                "before this restore"
            )


def _restored(part: RestoreResult) -> str:
    """One line for a restored part: what, and where it went."""
    kind = "file" if part.kind == "files" else part.kind
    if part.details.get("in_place"):
        where = "in place: " + ", ".join(part.details.get("paths", []))
    else:
        where = f"into {part.target}"
    return (
        f"restored {kind} snapshot {part.snapshot.short_id} {where} ({part.duration_seconds:.1f}s)"
    )


def _print_safety_snapshot(record: SnapshotRecord) -> None:
    stderr.print(
        f"safety snapshot {record.short_id} of the current database saved (tag pre-restore)",
        markup=False,
        highlight=False,
    )


@app.command()
@operation
def drill(
    ctx: typer.Context,
    snapshot: Annotated[
        str,
        typer.Argument(
            help="'latest', a run (20260101T020000Z) or a snapshot id of the run to drill."
        ),
    ] = "latest",
    database_target: Annotated[
        str | None,
        typer.Option(
            "--database-target",
            help="Scratch database URL (or SQLite path) of an app with one database; default "
            "its restore target (RESTORE_DATABASE_URL / RESTORE_SQLITE_DATABASE_PATH).",
        ),
    ] = None,
    files_target: Annotated[
        str | None,
        typer.Option("--files-target", help="Scratch directory; default RESTORE_FILES_PATH."),
    ] = None,
    check_command: Annotated[
        str | None,
        typer.Option(
            "--check",
            help="Command run after verification (default KAMAL_BACKUP_DRILL_CHECK_COMMAND).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the drill record as JSON.")
    ] = False,
) -> None:
    """Restore a run into scratch targets, verify it against its manifest, and record the drill.

    Exit 0 passed; 1 failed (restore, verification mismatch or check); 2 configuration or
    usage; 3 refused by a gate; 130 interrupted (recorded as such). Needs
    KAMAL_BACKUP_ALLOW_RESTORE=true; never writes to the backup source.
    """
    from kamal_backup.services.drill import run_drill

    with live_progress() as on_status:
        record = run_drill(
            _options(ctx).settings(),
            snapshot,
            database_target=database_target,
            files_target=files_target,
            check=check_command,
            on_status=on_status,
        )
    if as_json:
        _print_json(redact_json(record.model_dump(mode="json", exclude={"stored_in_repository"})))
    else:
        render_drill(record)
    if record.status != "passed":
        _error_line(f"error: drill failed: {drill_failure(record)}")
        raise typer.Exit(ExitCode.FAILED)


def drill_failure(record: Any) -> str:
    """Why a drill failed, in one line naming the tables and paths that did not match."""
    if record.error:
        return str(record.error)
    if record.check is not None and record.check.status == "failed":
        return str(record.check.error or "the check command failed")
    verification = record.verification
    found = []
    if verification.mismatched_tables:
        found.append("tables " + ", ".join(verification.mismatched_tables))
    if verification.files_mismatched:
        paths = ", ".join(m.path for m in verification.file_mismatches[:5])
        found.append(f"{verification.files_mismatched} files ({paths})")
    return "verification found mismatches: " + "; ".join(found)


def redact_json(data: Any) -> Any:
    from kamal_backup import redact as redaction

    return redaction.current().redact_obj(data)


def render_drill(record: Any) -> None:
    from rich.table import Table

    verification = record.verification
    named = len(verification.databases) > 1
    columns = ("database", "table") if named else ("table",)
    table = Table(*columns, "rows backed up", "rows restored", "verdict")
    for check_row in verification.tables:
        table.add_row(
            *((check_row.database or "-",) if named else ()),
            check_row.table,
            "-" if check_row.rows_expected is None else str(check_row.rows_expected),
            "-" if check_row.rows_restored is None else str(check_row.rows_restored),
            check_row.verdict + (f": {check_row.detail}" if check_row.detail else ""),
        )
    if verification.tables:
        stdout.print(table)
    from kamal_backup.models import LEGACY_DATABASE

    # Only the parts that finished are in record.parts: a failed restore is not "restored".
    restored = {
        part.database or LEGACY_DATABASE for part in record.parts if part.kind == "database"
    }
    for name, target in record.database_targets.items():
        if name in restored:
            stdout.print(f"database {name} restored into {target}")
        else:
            stdout.print(f"database {name} not restored (target {target})")
    for mismatch in verification.file_mismatches:
        stdout.print(f"file mismatch: {mismatch.path}: {mismatch.detail}")
    if record.check is not None:
        stdout.print(
            f"check {' '.join(record.check.command)}: {record.check.status}"
            + (f" ({record.check.error})" if record.check.error else "")
        )
    rto = f"{record.rto_seconds:.1f}s" if record.rto_seconds is not None else "-"
    rpo = f"{record.rpo_seconds:.0f}s" if record.rpo_seconds is not None else "-"
    stdout.print(
        f"drill {record.status.upper()} run {record.run or '-'}: "
        f"{verification.summary()}; RTO {rto}, RPO {rpo}"
    )
    if record.suspicious_run:
        stdout.print(
            f"run {record.run} is suspicious (it shrank against the last good run): the drill "
            "proves the restore, not that the data is right"
        )


class SnapshotKind(StrEnum):
    database = "database"
    files = "files"


@app.command("list")
@operation
def list_command(
    ctx: typer.Context,
    kind: Annotated[
        SnapshotKind | None, typer.Option("--type", help="Only database or files snapshots.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the snapshots as JSON.")] = False,
) -> None:
    """List this app's snapshots, newest first."""
    from kamal_backup.models import SnapshotRecord
    from kamal_backup.services.snapshots import list_snapshots

    snapshots = list_snapshots(_options(ctx).settings(), kind.value if kind else None)
    if as_json:
        _print_json([SnapshotRecord.from_snapshot(s).model_dump(mode="json") for s in snapshots])
        return
    table = snapshot_table(snapshots, stdout.width)
    stdout.print(table)
    if not snapshots:
        stderr.print("no snapshots yet")


# Below this width `list` leaves out the paths and the adapter and names the database with
# the type: the full table needs about 130 columns, and at 80 rich squeezed those columns to
# nothing.
WIDE_LIST = 120


def snapshot_table(snapshots: Sequence[Snapshot], width: int) -> Table:
    """The `list` table. Ids, times and runs are what an operator copies into restore commands:
    never cut. Every cell is Text, so a path is never markup."""
    from rich import box
    from rich.table import Column, Table
    from rich.text import Text

    wide = width >= WIDE_LIST
    if wide:
        table = Table(
            Column("id", no_wrap=True, min_width=8),
            Column("time (UTC)", no_wrap=True, min_width=19),
            Column("type", no_wrap=True),
            "database",
            "adapter",
            Column("run", no_wrap=True, min_width=16),
            Column("size", no_wrap=True),
            Column("paths", overflow="fold"),
        )
    else:
        table = Table(
            Column("id", no_wrap=True, min_width=8),
            Column("time (UTC)", no_wrap=True, min_width=16),
            Column("snapshot", overflow="fold"),
            Column("run", no_wrap=True, min_width=16),
            Column("size", no_wrap=True),
            box=box.SIMPLE_HEAD,
        )
    for s in snapshots:
        size = human_bytes(s.summary.total_bytes_processed if s.summary else None)
        label = s.kind or "-"
        if not wide and s.database:
            label += f" {s.database}"
        if s.pre_restore:
            label += " (pre-restore safety)"
        if s.suspicious:
            label += " (suspicious)"
        if wide:
            cells: tuple[str, ...] = (
                s.short,
                s.time.strftime("%Y-%m-%d %H:%M:%S"),
                label,
                s.database or "",
                s.adapter or "",
                s.run or "",
                size,
                ", ".join(s.paths),
            )
        else:
            cells = (s.short, s.time.strftime("%Y-%m-%d %H:%M"), label, s.run or "", size)
        table.add_row(*(Text(cell) for cell in cells))
    return table


@app.command()
@operation
def check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run restic check (reading RESTIC_CHECK_READ_DATA_SUBSET) and record the result for evidence."""
    from kamal_backup.services.check import run_check

    result = run_check(_options(ctx).settings())
    if as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        word = check_word(result.status)
        stdout.print(f"repository check {word} ({result.duration_seconds:.1f}s)")
        if result.status != "success":
            stderr.print(result.output, markup=False, highlight=False)
    if result.status != "success":
        raise typer.Exit(ExitCode.FAILED)


class EvidenceFormat(StrEnum):
    json = "json"
    markdown = "markdown"
    html = "html"


@app.command()
@operation
def evidence(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the document to this file.")
    ] = None,
    output_format: Annotated[
        EvidenceFormat,
        typer.Option(
            "--format", help="json (default), or a one-page markdown or html report for a reviewer."
        ),
    ] = EvidenceFormat.json,
) -> None:
    """Print redacted evidence: configuration, latest snapshots, last check and backup, drills, tools."""
    from kamal_backup.services.evidence import build_evidence, evidence_json, write_evidence
    from kamal_backup.services.report import html_report, markdown_report

    document = build_evidence(_options(ctx).settings())
    render = {
        EvidenceFormat.json: evidence_json,
        EvidenceFormat.markdown: markdown_report,
        EvidenceFormat.html: html_report,
    }[output_format]
    text = render(document)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if output is not None:
        write_evidence(document, output, text)
    if document.repository_error:
        raise typer.Exit(ExitCode.FAILED)


@app.command()
@operation
def notify(
    ctx: typer.Context,
    test: Annotated[
        bool,
        typer.Option("--test", help="Send a test event to each channel and report each result."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the channels as JSON.")] = False,
) -> None:
    """Show the notification channels and their last delivery; with --test, send a test event.

    Channels: KAMAL_BACKUP_HEALTHCHECK_URL, KAMAL_BACKUP_NTFY_URL, KAMAL_BACKUP_WEBHOOK_URL and
    KAMAL_BACKUP_METRICS_FILE. URLs are shown as their host only. --test exits 1 if any fails.
    """
    from rich.table import Table

    from kamal_backup import notify as channels

    settings = _options(ctx).settings()
    if not channels.channel_status(settings):
        raise ConfigError(
            "KAMAL_BACKUP_HEALTHCHECK_URL",
            "no notification channel is configured (set it, KAMAL_BACKUP_NTFY_URL, "
            "KAMAL_BACKUP_WEBHOOK_URL or KAMAL_BACKUP_METRICS_FILE)",
        )
    failed = False
    if test:
        failed = not all(result.ok for result in channels.send_test(settings))
    # With --test: what the test just delivered (it never replaces the last real delivery).
    status = channels.channel_status(settings, test=test)
    if as_json:
        _print_json([entry.model_dump(mode="json") for entry in status])
    else:
        table = Table("channel", "destination", "last delivery", "result", "at (UTC)")
        for entry in status:
            last = entry.last_delivery
            table.add_row(
                entry.channel,
                entry.destination,
                f"{last.operation} {last.event}" if last else "-",
                ("ok: " if last.ok else "FAILED: ") + last.detail if last else "never",
                last.at.strftime("%Y-%m-%d %H:%M:%S") if last else "",
            )
        stdout.print(table)
    if failed:
        raise typer.Exit(ExitCode.FAILED)


@app.command()
@operation
def validate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Preflight that writes nothing: settings, tools, databases, repository, paths, targets.

    Exit 0 when no check fails (warnings allowed), 1 when one fails, 2 for a configuration error.
    """
    from rich.table import Table
    from rich.text import Text

    from kamal_backup.services.validate import validate as run_validation

    report = run_validation(_options(ctx).settings())
    if as_json:
        _print_json(report.model_dump(mode="json"))
    else:
        marks = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}
        table = Table(show_header=False, box=None, pad_edge=False)
        for check in report.checks:
            mark, style = marks[check.status]
            table.add_row(Text(mark, style=style), Text(check.name), Text(check.detail))
        stdout.print(table)
    if report.failed:
        raise typer.Exit(ExitCode.FAILED)


@app.command()
def metrics(ctx: typer.Context) -> None:
    """Print the Prometheus metrics (the text KAMAL_BACKUP_METRICS_FILE holds) from the state directory."""
    from kamal_backup.notify import metrics as prometheus

    sys.stdout.write(prometheus.render(_options(ctx).settings()))


@app.command()
def init(
    ctx: typer.Context,
    app_name: Annotated[str, typer.Option("--app", help="The app's name (APP_NAME).")],
    adapter: Annotated[
        str,
        typer.Option(
            "--adapter",
            help="postgres, mysql, sqlite (Rails 8's four databases) or none (files only).",
        ),
    ],
    paths: Annotated[
        list[str] | None,
        typer.Option("--path", help="A directory to back up (repeat; default /rails/storage)."),
    ] = None,
    no_paths: Annotated[
        bool, typer.Option("--no-paths", help="A database-only app: no directories.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="The file to write (default config/kamal-backup.yml)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented YAML config for an app and print its Kamal accessory block and aliases.

    Refuses to overwrite an existing file without --force. Nothing else is read or written.
    """
    from kamal_backup.services.init import (
        DEFAULT_CONFIG,
        AppDescription,
        render_accessory,
        render_config,
        write_config,
    )

    chosen = [] if no_paths else (paths or ["/rails/storage"])
    description = AppDescription(app=app_name, adapter=adapter, paths=chosen)
    target = config or _options(ctx).config or DEFAULT_CONFIG
    write_config(target, render_config(description), force=force)
    stderr.print(f"wrote {target}", markup=False, highlight=False)
    sys.stdout.write(render_accessory(description, target))


@app.command()
def schedule(ctx: typer.Context) -> None:
    """Run backups in the foreground every BACKUP_SCHEDULE_SECONDS (the container's default command)."""
    from kamal_backup.scheduler import run_schedule

    settings = _options(ctx).settings()
    stop = threading.Event()

    def stop_on(signum: int) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()  # the scheduler cancels the run in progress

    with process.SignalWatcher(stop_on):
        run_schedule(settings, stop)


@app.command()
@operation
def prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Apply this app's retention (RESTIC_KEEP_*) per snapshot type, then prune the data.

    For the trusted machine of an append-only set-up. Safety snapshots of production restores
    (tag pre-restore) are kept for 30 days and never count against the backups' retention.
    """
    from kamal_backup.services.prune import prune as prune_repository

    result = prune_repository(_options(ctx).settings(), dry_run=dry_run)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    verb = "would remove" if result.dry_run else "removed"
    several = sum(part.type == "database" for part in result.retention) > 1
    for part in result.retention:
        ids = " ".join(i[:8] for i in part.removed_ids)
        label = f"{part.type} {part.database}" if several and part.database else part.type
        stdout.print(
            f"{label}: kept {part.kept}, {verb} {part.removed}" + (f" ({ids})" if ids else "")
        )
    if not result.retention:
        stdout.print("every RESTIC_KEEP_* is 0: nothing removed")


@app.command()
@operation
def accept(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="The suspicious run, such as 20260101T030000Z.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Accept a suspicious run as intended (a big cleanup): it can become `latest`.

    Removes its suspicious tag and records who accepted it and when (in tags, shown by
    evidence); later backups compare against it.
    """
    from rich.text import Text

    from kamal_backup.services.baseline import accept_run

    result = accept_run(_options(ctx).settings(), run)
    if as_json:
        _print_json(result.model_dump(mode="json"))
    elif not result.changed:
        stdout.print(Text(f"run {result.run} is not suspicious: nothing to accept"))
    else:
        when = f"{result.accepted_at:%Y-%m-%d %H:%M:%S} UTC" if result.accepted_at else ""
        stdout.print(Text(f"run {result.run} accepted by {result.accepted_by} at {when}"))


@app.command()
@operation
def adopt(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be rewritten; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rewrite this app's snapshots made under other hosts to RESTIC_HOST.

    For repositories of the original kamal-backup, whose containers backed up under random
    host names: retention, `latest` and evidence then see one history. Uses restic rewrite
    --new-host --forget, which deletes: run it from a trusted machine on append-only
    repositories.
    """
    from rich.text import Text

    from kamal_backup.services.adopt import adopt as adopt_snapshots

    result = adopt_snapshots(_options(ctx).settings(), dry_run=dry_run)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    verb = "would rewrite" if result.dry_run else "rewrote"
    for snapshot in result.snapshots:
        stdout.print(
            Text(
                f"{snapshot.id[:8]} {snapshot.time:%Y-%m-%d %H:%M:%S} {snapshot.type or '-'} "
                f"{snapshot.run or '-'}: host {snapshot.hostname} -> {result.host}"
            )
        )
    count = len(result.snapshots)
    if count:
        stdout.print(Text(f"{verb} {count_of(count, 'snapshot')} to host {result.host}"))
    else:
        stdout.print(Text(f"every snapshot of this app is already under host {result.host}"))


@app.command()
@operation
def unlock(ctx: typer.Context) -> None:
    """Remove stale restic locks (left by a killed process); live locks are kept."""
    from kamal_backup.services import restic_for

    restic = restic_for(_options(ctx).settings())
    restic.require_supported_version()
    restic.unlock()
    stdout.print("stale locks removed")


@app.command()
@operation
def health(
    ctx: typer.Context,
    repository: Annotated[
        bool,
        typer.Option(
            "--repository",
            help="Judge by the repository's newest complete run instead of the state directory.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Exit 0 while the last successful backup is younger than twice BACKUP_SCHEDULE_SECONDS, else 1.

    The image's HEALTHCHECK. Reads the state directory (no repository access) unless --repository.
    """
    from kamal_backup.services.health import check_health

    report = check_health(_options(ctx).settings(), from_repository=repository)
    if as_json:
        _print_json(report.model_dump(mode="json"))
    else:
        stdout.print(f"{'healthy' if report.healthy else 'unhealthy'}: {report.reason}")
        if report.last_drill_at is not None:
            overdue = " (overdue)" if report.drill_overdue else ""
            stdout.print(
                f"last drill {report.last_drill_status} at "
                f"{report.last_drill_at:%Y-%m-%d %H:%M} UTC{overdue}"
            )
        elif report.drill_overdue:
            stdout.print(
                "no restore drill recorded yet (KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS is set)"
            )
    if not report.healthy:
        raise typer.Exit(ExitCode.FAILED)


@app.command()
def tui(ctx: typer.Context) -> None:
    """Open the terminal UI: overview, snapshots, evidence and guarded restore drills."""
    settings = _options(ctx).settings()
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError(
            "tui",
            "needs an interactive terminal; in the accessory run "
            '`bin/kamal accessory exec -i backup "kamal-backup tui"` (docker exec -it)',
        )
    try:
        # Imported here: the headless commands (and the container's scheduler) never load Textual.
        from tui import make_app
    except ImportError as exc:
        raise ToolMissing(
            f"the terminal UI needs Textual, which is not installed ({exc.name})"
        ) from None
    make_app(settings).run()


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"kamal-backup {__version__}")


def _error_line(message: str) -> None:
    """One redacted line on stderr: the whole of what an operator sees of a failure."""
    text = " ".join(redact(message).split())
    sys.stderr.write(f"kamal-backup: {text}\n")
    sys.stderr.flush()


def _from_ctrl_c(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the exceptions `exc` was raised from."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def main() -> None:
    """Entry point: typed errors become one redacted line and their exit code; never a traceback."""
    if sys.argv[1:] in VERSION_ARGUMENTS:
        # Answered before Typer parses anything (kamal_backup.entry answers before this module
        # is even imported): parsing coerces the root options through pydantic, which costs
        # more than the whole answer. The output is the command's own.
        sys.stdout.write(f"kamal-backup {__version__}\n")
        return
    try:
        app(prog_name="kamal-backup")
    except SystemExit as exc:
        if exc.code == int(ExitCode.INTERRUPTED) and _from_ctrl_c(exc):
            # Typer turns a Ctrl-C that comes before the command's own handlers into a silent
            # exit 130: said in one line, as every other interruption is.
            _error_line("interrupted")
        raise
    except KamalBackupError as exc:
        _error_line(f"error: {exc}")
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        _error_line("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:
        if os.environ.get("KAMAL_BACKUP_DEBUG"):
            stderr.print(redact(traceback.format_exc()), markup=False, highlight=False)
        _error_line(f"internal error: {exc.__class__.__name__}: {exc}")
        sys.exit(int(ExitCode.FAILED))


__all__ = ["Interrupted", "app", "main"]
