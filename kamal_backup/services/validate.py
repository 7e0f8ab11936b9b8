"""The preflight behind `validate`: every setting, tool, database, path and gate, writing nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from kamal_backup.databases import adapters_for
from kamal_backup.databases.sqlite import unconfigured_live_databases
from kamal_backup.errors import KamalBackupError, RepositoryMissing, WrongPassword
from kamal_backup.services import gates, restic_for
from kamal_backup.services.snapshots import list_snapshots
from kamal_backup.settings import Settings
from kamal_backup.tools import FALLBACK_TOOLS, tool_version, version_number

Status = Literal["ok", "warn", "fail"]
_OLDER_NAME = {preferred: older for older, preferred in FALLBACK_TOOLS.items()}


class Check(BaseModel):
    """One line of the checklist."""

    name: str
    status: Status
    detail: str


class ValidationReport(BaseModel):
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.checks)


def validate(settings: Settings) -> ValidationReport:
    """Runs every preflight check; a failing check is recorded, never raised."""
    checks: list[Check] = [_settings_check(settings)]
    checks += _tool_checks(settings)
    checks += _database_checks(settings)
    checks.append(_repository_check(settings))
    checks += _path_checks(settings)
    checks += _restore_target_checks(settings)
    checks.append(_safety_check(settings))
    return ValidationReport(checks=checks)


def _settings_check(settings: Settings) -> Check:
    databases = ", ".join(f"{d.name} ({d.adapter})" for d in settings.database_list) or "none"
    paths = ", ".join(str(p) for p in settings.backup_paths) or "none"
    return Check(
        name="settings",
        status="ok",
        detail=f"app {settings.app_name}; databases: {databases}; backup paths: {paths}; "
        f"repository {settings.repository_display}",
    )


def _tool_checks(settings: Settings) -> list[Check]:
    env = settings.restic_environment()
    checks = []
    restic = restic_for(settings)
    try:
        restic.require_supported_version()
        found = ".".join(str(part) for part in restic.version())
        checks.append(Check(name="tool restic", status="ok", detail=f"restic {found}"))
    except KamalBackupError as exc:
        checks.append(Check(name="tool restic", status="fail", detail=str(exc)))
    seen: set[str] = set()
    for adapter in adapters_for(settings):
        for tool in adapter.tools:
            if tool in seen:
                continue
            seen.add(tool)
            version = version_number(tool_version(tool, env)) or version_number(
                tool_version(_OLDER_NAME.get(tool), env)
            )
            if tool == "sqlite3" and version is None:
                # The adapter uses Python's own SQLite; the sqlite3 program is only for people.
                checks.append(
                    Check(
                        name="tool sqlite3",
                        status="warn",
                        detail="the sqlite3 program is not installed",
                    )
                )
                continue
            checks.append(
                Check(
                    name=f"tool {tool}",
                    status="ok" if version else "fail",
                    detail=f"{tool} {version}" if version else f"{tool} is not installed",
                )
            )
    return checks


def _database_checks(settings: Settings) -> list[Check]:
    checks = []
    for adapter in adapters_for(settings):
        name = f"database {adapter.database_name}"
        try:
            detail = adapter.probe()
        except KamalBackupError as exc:
            checks.append(Check(name=name, status="fail", detail=str(exc)))
        else:
            checks.append(Check(name=name, status="ok", detail=detail))
    return checks


def _repository_check(settings: Settings) -> Check:
    try:
        snapshots = list_snapshots(settings)
    except WrongPassword as exc:
        return Check(name="repository", status="fail", detail=f"wrong password: {exc}")
    except RepositoryMissing as exc:
        if settings.restic_init_if_missing:
            return Check(
                name="repository",
                status="warn",
                detail="does not exist yet; the first backup creates it (RESTIC_INIT_IF_MISSING)",
            )
        return Check(name="repository", status="fail", detail=str(exc))
    except KamalBackupError as exc:
        return Check(name="repository", status="fail", detail=str(exc))
    return Check(
        name="repository",
        status="ok",
        detail=f"{settings.repository_display} opened; {len(snapshots)} snapshots of this app",
    )


def _readable(path: Path) -> str | None:
    """Why the directory cannot be backed up, or None."""
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "is not a directory"
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and not os.access(entry.path, os.R_OK):
                    return f"cannot read {entry.path}"
    except OSError as exc:
        return f"cannot list it: {exc.strerror}"
    return None


def _path_checks(settings: Settings) -> list[Check]:
    if not settings.backup_paths:
        return [Check(name="backup paths", status="ok", detail="none: a database-only app")]
    checks = []
    for path in settings.backup_paths:
        problem = _readable(path)
        checks.append(
            Check(
                name=f"backup path {path}",
                status="fail" if problem else "ok",
                detail=problem or "readable",
            )
        )
    excludes = [p for adapter in adapters_for(settings) for p in adapter.excluded_paths()]
    readable = [path for path in settings.backup_paths if path.is_dir()]
    for live in unconfigured_live_databases(readable, excludes):
        checks.append(
            Check(
                name=f"live SQLite {live}",
                status="warn",
                detail="has a -wal file but is not a configured database: it is copied raw "
                "with the files and may be torn; add it to databases",
            )
        )
    return checks


def _restore_target_checks(settings: Settings) -> list[Check]:
    checks = []
    for adapter in adapters_for(settings):
        target = adapter.restore_target_label()
        name = f"restore target {adapter.database_name}"
        if target is None:
            checks.append(
                Check(name=name, status="warn", detail=f"{adapter.restore_setting} is not set")
            )
            continue
        reason = adapter.production_like_reason()
        detail = f"{target}" + (f"; looks like production: {reason}" if reason else "")
        checks.append(Check(name=name, status="warn" if reason else "ok", detail=detail))
    return checks


def _safety_check(settings: Settings) -> Check:
    flags = gates.safety_flags(settings)
    detail = ", ".join(f"{name}={'true' if value else 'false'}" for name, value in flags)
    dangerous = settings.kamal_backup_allow_production_restore
    return Check(name="safety flags", status="warn" if dangerous else "ok", detail=detail)
