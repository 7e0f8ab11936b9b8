"""One-page evidence reports for a reviewer, in Markdown and HTML; every name is escaped."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime

from kamal_backup.humanize import describe_age, human_bytes
from kamal_backup.models import SnapshotRecord
from kamal_backup.services.evidence import Evidence

Row = Sequence[str]
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def markdown_escape(text: str) -> str:
    """Text as literal Markdown inline content (a table cell: no line breaks, no pipes)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else describe_age(value)


def _snapshot(record: SnapshotRecord | None) -> str:
    if record is None:
        return "none"
    return (
        f"{record.short_id} at {_when(record.time)}, run {record.run or '-'}, "
        f"{human_bytes(record.total_bytes_processed)}"
    )


def sections(evidence: Evidence) -> list[tuple[str, list[str], list[Row]]]:
    """(title, header, rows) of every part of the report, as plain text."""
    retention = ", ".join(f"{k.removeprefix('keep_')} {v}" for k, v in evidence.retention.items())
    facts: list[Row] = [
        ("App", evidence.app_name),
        *(
            [
                (f"Database {database.name}", f"{database.adapter} {database.source}")
                for database in evidence.databases
            ]
            if len(evidence.databases) > 1
            else [
                (
                    "Database",
                    f"{evidence.database_adapter} {evidence.database_source}"
                    if evidence.database_adapter
                    else "(none)",
                )
            ]
        ),
        ("Backup paths", ", ".join(evidence.backup_paths) or "(none)"),
        ("Repository", evidence.restic_repository),
        ("Schedule", f"every {describe_age(evidence.schedule_seconds)}"),
        (
            "Retention",
            f"{retention or 'none'}"
            + ("" if evidence.client_side_forget_prune else " (applied elsewhere)"),
        ),
        ("Generated", _when(evidence.generated_at)),
        ("kamal-backup", evidence.kamal_backup_version),
    ]
    if evidence.repository_error:
        facts.append(("Repository error", evidence.repository_error))
    backups: list[Row] = [
        *(
            [
                (f"Latest snapshot of database {d.name}", _snapshot(d.latest_snapshot))
                for d in evidence.databases
            ]
            if len(evidence.databases) > 1
            else [("Latest database snapshot", _snapshot(evidence.latest_database_snapshot))]
        ),
        ("Latest file snapshot", _snapshot(evidence.latest_files_snapshot)),
        ("Incomplete runs", ", ".join(evidence.incomplete_runs) or "none"),
        ("Suspicious runs (not latest)", ", ".join(evidence.suspicious_runs) or "none"),
        *(
            (f"Accepted run {a.run}", f"by {a.accepted_by} at {_when(a.accepted_at)}")
            for a in evidence.accepted_runs
        ),
        ("Good runs retention keeps", ", ".join(evidence.kept_good_runs) or "none"),
    ]
    if evidence.last_backup is not None:
        last = evidence.last_backup
        backups.append(
            (
                "Last backup run",
                f"{last.status} {last.run} at {_when(last.started_at)}"
                + (f": {last.error}" if last.error else ""),
            )
        )
        if last.suspicious:
            backups.append((f"Shrank against run {last.baseline_run}", "; ".join(last.suspicious)))
    check = evidence.last_check
    checks: list[Row] = [
        (
            "Last repository check",
            "never run"
            if check is None
            else f"{check.status} at {_when(check.checked_at)}"
            + (f", read {check.read_data_subset} of the data" if check.read_data_subset else ""),
        )
    ]
    drills: list[Row] = [
        (
            _when(item.started_at),
            item.status,
            (item.run or "-") + (" (suspicious)" if item.suspicious_run else ""),
            _seconds(item.rto_seconds),
            _seconds(item.rpo_seconds),
            item.verification,
            item.check or "-",
            item.ran_by,
        )
        for item in evidence.drills.history
    ]
    result = [
        ("Backups of " + evidence.app_name, ["", ""], facts),
        ("Last backups", ["", ""], backups),
        ("Repository check", ["", ""], checks),
        (
            "Restore drills",
            ["started", "status", "run", "RTO", "RPO", "verification", "check", "by"],
            drills or [("none recorded", "", "", "", "", "", "", "")],
        ),
    ]
    last_drill = evidence.drills.last
    if last_drill is not None and last_drill.verification.tables:
        result.append(
            (
                f"Last drill verification ({last_drill.id})",
                ["table", "rows backed up", "rows restored", "verdict"],
                [
                    (
                        f"{check_row.database}.{check_row.table}"
                        if len(last_drill.verification.databases) > 1 and check_row.database
                        else check_row.table,
                        "-" if check_row.rows_expected is None else str(check_row.rows_expected),
                        "-" if check_row.rows_restored is None else str(check_row.rows_restored),
                        check_row.verdict + (f": {check_row.detail}" if check_row.detail else ""),
                    )
                    for check_row in last_drill.verification.tables
                ],
            )
        )
    return result


def markdown_report(evidence: Evidence) -> str:
    lines = [f"# Backup evidence: {markdown_escape(evidence.app_name)}", ""]
    for title, header, rows in sections(evidence):
        lines += [f"## {markdown_escape(title)}", ""]
        lines.append("| " + " | ".join(markdown_escape(cell) for cell in header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in rows:
            lines.append("| " + " | ".join(markdown_escape(cell) for cell in row) + " |")
        lines.append("")
    return "\n".join(lines)


def html_report(evidence: Evidence) -> str:
    def escape(text: str) -> str:
        return html.escape(str(text), quote=True)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Backup evidence: {escape(evidence.app_name)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}"
        "td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}</style>",
        "</head><body>",
        f"<h1>Backup evidence: {escape(evidence.app_name)}</h1>",
    ]
    for title, header, rows in sections(evidence):
        parts.append(f"<h2>{escape(title)}</h2><table>")
        if any(header):
            parts.append("<tr>" + "".join(f"<th>{escape(cell)}</th>" for cell in header) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
