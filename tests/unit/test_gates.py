"""Restore gates: each one refusing and allowing, with the variable that would allow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kamal_backup.errors import ConfigError, ExitCode, GateRefused
from kamal_backup.services import gates
from kamal_backup.settings import load_settings


def settings_for(tmp_path: Path, **extra: str):  # type: ignore[no-untyped-def]
    storage = tmp_path / "storage"
    storage.mkdir(exist_ok=True)
    values = {
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        "BACKUP_PATHS": str(storage),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "pw-1234",
        "HOME": str(tmp_path),
    }
    values.update(extra)
    return load_settings(environ=values)


@pytest.mark.parametrize(
    "word",
    [
        "app_production",
        "/data/prod/db.sqlite3",
        "prod",
        "shop-live.sqlite3",
        "db.prod.internal",
        "live:5432",
        "PRODUCTION",
        "x_Prod_y",
    ],
)
def test_production_like_targets(word: str) -> None:
    assert gates.production_like_reason([word], is_source=False) is not None


@pytest.mark.parametrize(
    "word",
    [
        "app_restore",
        "/restore/db/restore.sqlite3",
        "product_catalog",
        "deliver",
        "olive",
        "reproduce",
        "staging",
    ],
)
def test_not_production_like(word: str) -> None:
    assert gates.production_like_reason([word], is_source=False) is None


def test_restores_need_allow_restore(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, RESTORE_SQLITE_DATABASE_PATH=str(tmp_path / "restore.sqlite3")
    )
    with pytest.raises(GateRefused) as caught:
        gates.enforce(gates.database_restore_verdicts(settings))
    assert caught.value.exit_code == ExitCode.REFUSED
    assert "KAMAL_BACKUP_ALLOW_RESTORE=true" in str(caught.value)


def test_database_restore_needs_a_restore_target(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, KAMAL_BACKUP_ALLOW_RESTORE="true")
    with pytest.raises(ConfigError) as caught:
        gates.enforce(gates.database_restore_verdicts(settings))
    assert caught.value.setting == "RESTORE_SQLITE_DATABASE_PATH"


def test_restoring_over_the_source_is_production_like(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_SQLITE_DATABASE_PATH=str(tmp_path / "." / "db.sqlite3"),
    )
    verdicts = gates.database_restore_verdicts(settings)
    refused = [v for v in verdicts if not v.allowed]
    assert [v.variable for v in refused] == ["KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE"]
    assert "backup source" in refused[0].reason
    with pytest.raises(GateRefused, match="KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=true"):
        gates.enforce(verdicts)


def test_production_gate_can_be_opened(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE="1",
        RESTORE_SQLITE_DATABASE_PATH=str(tmp_path / "production.sqlite3"),
    )
    verdicts = gates.database_restore_verdicts(settings)
    assert all(v.allowed for v in verdicts)
    gates.enforce(verdicts)


@pytest.mark.parametrize("target", ["storage", "storage/sub", "."])
def test_in_place_file_restores_are_refused(tmp_path: Path, target: str) -> None:
    settings = settings_for(tmp_path, KAMAL_BACKUP_ALLOW_RESTORE="true")
    verdicts = gates.file_restore_verdicts(settings, str(tmp_path / target))
    refused = [v for v in verdicts if not v.allowed]
    assert [v.variable for v in refused] == ["KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE"]
    allowed = gates.file_restore_verdicts(
        settings_for(
            tmp_path,
            KAMAL_BACKUP_ALLOW_RESTORE="true",
            KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE="true",
        ),
        str(tmp_path / target),
    )
    assert all(v.allowed for v in allowed)


def test_in_place_detection_follows_symlinks(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, KAMAL_BACKUP_ALLOW_RESTORE="true")
    (tmp_path / "sneaky").symlink_to(tmp_path / "storage")
    verdicts = gates.file_restore_verdicts(settings, str(tmp_path / "sneaky" / "x"))
    assert not all(v.allowed for v in verdicts)


@pytest.mark.parametrize(
    "target", ["", "  ", "/", "//", "/etc", "/var/../etc", "relative/dir", "/usr"]
)
def test_bad_file_targets_are_always_refused(tmp_path: Path, target: str) -> None:
    settings = settings_for(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE="1",
        KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE="1",
    )
    with pytest.raises(GateRefused) as caught:
        gates.enforce(gates.file_restore_verdicts(settings, target))
    assert caught.value.variable is None


def test_a_separate_target_passes_every_gate(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, KAMAL_BACKUP_ALLOW_RESTORE="true")
    verdicts = gates.file_restore_verdicts(settings, str(tmp_path / "restore"))
    assert [v.gate for v in verdicts] == [
        "restores enabled",
        "restore target",
        "production-like target",
        "in-place file restore",
    ]
    assert all(v.allowed for v in verdicts)


def test_a_target_that_is_a_backup_path_is_judged_as_an_in_place_restore(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    refused = gates.file_restore_verdicts(
        settings_for(tmp_path, KAMAL_BACKUP_ALLOW_RESTORE="true"), storage + "/"
    )
    assert [(v.gate, v.allowed) for v in refused] == [
        ("restores enabled", True),
        ("in-place file restore", False),
    ]
    with pytest.raises(GateRefused) as caught:
        gates.enforce(refused)
    assert caught.value.variable == gates.ALLOW_IN_PLACE
    allowed = settings_for(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE="true",
    )
    assert all(v.allowed for v in gates.file_restore_verdicts(allowed, storage))


def test_in_place_restores_write_only_inside_the_backup_paths(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE="true",
    )
    inside = tmp_path / "storage" / "uploads" / "a.png"
    assert all(v.allowed for v in gates.in_place_file_restore_verdicts(settings, [inside]))
    for outside in (tmp_path / "elsewhere", Path("/etc"), tmp_path / "storage-other"):
        verdicts = gates.in_place_file_restore_verdicts(settings, [outside])
        refused = [v for v in verdicts if not v.allowed]
        assert refused and "not inside a configured backup path" in refused[0].reason
        with pytest.raises(GateRefused) as caught:
            gates.enforce(verdicts)
        assert caught.value.exit_code == ExitCode.REFUSED


def test_the_production_restore_confirmation_is_the_exact_app_name(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    gates.confirm_app_name(settings, " shop \n")
    for typed in ("", "Shop", "shop2", "yes"):
        with pytest.raises(GateRefused):
            gates.confirm_app_name(settings, typed)
