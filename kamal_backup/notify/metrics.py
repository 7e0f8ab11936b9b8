"""Prometheus metrics in the text exposition format, from the state directory's records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kamal_backup import state
from kamal_backup.errors import ConfigError
from kamal_backup.models import SNAPSHOT_TYPES, SnapshotRecord
from kamal_backup.notify import records
from kamal_backup.settings import Settings

NAME = "prometheus"


@dataclass
class _Family:
    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metrics:
    def __init__(self, app: str) -> None:
        self.app = app
        self.families: dict[str, _Family] = {}

    def add(self, name: str, help_text: str, kind: str, value: float | None) -> None:
        if value is None:
            return
        family = self.families.setdefault(name, _Family(f"kamal_backup_{name}", help_text))
        family.samples.append(({"app": self.app, "type": kind}, value))

    def render(self) -> str:
        lines: list[str] = []
        for family in self.families.values():
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} gauge")
            for labels, value in family.samples:
                text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
                lines.append(f"{family.name}{{{text}}} {_number(value)}")
        return "\n".join(lines) + "\n"


def render(settings: Settings) -> str:
    """Every metric kamal-backup knows, from its state files (no repository access)."""
    metrics = _Metrics(settings.app_name)
    state_dir = settings.state_dir

    success = state.last_success(state_dir)
    snapshots: dict[str, SnapshotRecord | None] = {
        "database": success.database_snapshot if success else None,
        "files": success.files_snapshot if success else None,
    }
    kept = {r.type: r.kept for r in success.retention} if success else {}
    for kind in SNAPSHOT_TYPES:
        snapshot = snapshots[kind]
        metrics.add(
            "last_success_timestamp_seconds",
            "When the snapshot of the last successful backup run was taken (Unix time).",
            kind,
            snapshot.time.timestamp() if snapshot else None,
        )
        metrics.add(
            "last_added_bytes",
            "Bytes the last successful backup added to the repository.",
            kind,
            snapshot.data_added if snapshot else None,
        )
        metrics.add(
            "last_processed_bytes",
            "Bytes the last successful backup read (the dump or the files).",
            kind,
            snapshot.total_bytes_processed if snapshot else None,
        )
        metrics.add(
            "snapshots",
            "Snapshots of this app and type kept after the last successful backup's retention.",
            kind,
            kept.get(kind),
        )

    for operation, outcome in sorted(records.outcomes(state_dir).items()):
        metrics.add(
            "last_run_success",
            "1 if the operation's last run succeeded, else 0.",
            operation,
            1 if outcome.status == "success" else 0,
        )
        metrics.add(
            "last_run_timestamp_seconds",
            "When the operation's last run finished (Unix time).",
            operation,
            outcome.finished_at.timestamp(),
        )
        metrics.add(
            "last_duration_seconds",
            "How long the operation's last run took.",
            operation,
            outcome.duration_seconds,
        )
        for measure, number in sorted(outcome.measures.items()):
            metric = re.sub(r"[^a-z0-9_]", "_", f"last_{operation}_{measure}".lower())
            metrics.add(
                metric,
                f"{measure} of the last {operation} run.",
                operation,
                number,
            )

    check = state.last_check(state_dir)
    if check is not None:
        metrics.add(
            "last_check_success",
            "1 if the last repository check passed, else 0.",
            "check",
            1 if check.status == "success" else 0,
        )
        metrics.add(
            "last_check_timestamp_seconds",
            "When the last repository check started (Unix time).",
            "check",
            check.checked_at.timestamp(),
        )
    return metrics.render()


def write_file(settings: Settings) -> str:
    """Replaces KAMAL_BACKUP_METRICS_FILE atomically (a reader never sees half a file)."""
    path = settings.kamal_backup_metrics_file
    if path is None:
        raise ConfigError("KAMAL_BACKUP_METRICS_FILE", "is not set")
    if not path.parent.is_dir():
        problem = "is not a directory" if path.parent.exists() else "does not exist"
        raise ConfigError("KAMAL_BACKUP_METRICS_FILE", f"{path.parent} {problem}")
    # World-readable: node_exporter usually runs as another user.
    state.write_text_atomic(path, render(settings), mode=0o644)
    return str(path)


__all__ = ["NAME", "render", "write_file"]
