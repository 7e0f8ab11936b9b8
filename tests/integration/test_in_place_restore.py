"""In-place and partial file restores: the tree comes back exactly, or stays exactly as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamal_backup.services.restore import is_mount_point
from tests.conftest import App

pytestmark = pytest.mark.integration

ALLOW = {"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
IN_PLACE = {**ALLOW, "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE": "true"}


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under root: type, mode, mtime and content (or link target)."""
    found: dict[str, tuple[object, ...]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            found[relative] = ("dir", info.st_mode, info.st_mtime_ns)
        else:
            found[relative] = ("file", info.st_mode, info.st_mtime_ns, path.read_bytes())
    return found


def assert_same_tree(expected: Path, actual: Path) -> None:
    diff = subprocess.run(
        ["diff", "-r", "--no-dereference", str(expected), str(actual)],
        capture_output=True,
        text=True,
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert tree(actual) == tree(expected)


def populate(storage: Path) -> None:
    script = storage / "bin" / "run.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    (storage / "link-to-a").symlink_to("uploads/a.txt")
    (storage / "empty-dir").mkdir()
    (storage / "docs").mkdir()
    (storage / "docs" / "readme.txt").write_text("read me\n")
    (storage / "Ωmega – ☃.txt").write_bytes(b"\x00\x01binary\xff")  # noqa: RUF001
    os.utime(storage / "uploads" / "a.txt", (1_600_000_000, 1_600_000_000))


def damage(storage: Path) -> None:
    """After the backup: a file changed, one deleted, one created, a directory renamed."""
    (storage / "uploads" / "a.txt").write_text("overwritten by a bad deploy\n")
    (storage / "bin" / "run.sh").chmod(0o777)
    (storage / "uploads" / "ünï" / "photo.bin").unlink()
    (storage / "created-since.txt").write_text("not in the snapshot")
    (storage / "docs").rename(storage / "docs-renamed")


def back_up_then_damage(app: App, tmp_path: Path) -> tuple[Path, Path]:
    """Backs up, keeps a copy of the tree as backed up, damages it, keeps a copy of that too."""
    app.cli("backup", check=True)
    snapshot_tree = tmp_path / "as-backed-up"
    shutil.copytree(app.files, snapshot_tree, symlinks=True)
    damage(app.files)
    damaged = tmp_path / "damaged"
    shutil.copytree(app.files, damaged, symlinks=True)
    return snapshot_tree, damaged


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "kamal-backup" in p.name)


def test_in_place_restore_into_the_backup_path_gives_back_the_snapshot_exactly(
    app: App, tmp_path: Path
) -> None:
    populate(app.files)
    snapshot_tree, damaged = back_up_then_damage(app, tmp_path)

    refused = app.cli("restore-files", "latest", str(app.files), extra=ALLOW)
    assert refused.returncode == 3, refused.stderr
    assert "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true" in refused.stderr
    assert_same_tree(damaged, app.files)

    result = app.cli("restore-files", "latest", str(app.files), extra=IN_PLACE, check=True)
    assert f"in place: {app.files}" in result.stdout
    assert_same_tree(snapshot_tree, app.files)
    assert leftovers(app.files.parent) == []


def test_keep_previous_keeps_the_replaced_tree_and_prints_where(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    damage_marker = app.files / "created-since.txt"
    damage_marker.write_text("only in the damaged tree")
    result = app.cli("restore-files", "--in-place", "--keep-previous", extra=IN_PLACE, check=True)
    kept = Path(result.stdout.split("previous content kept at ", 1)[1].strip())
    assert kept.parent == app.files.parent
    assert (kept / "created-since.txt").read_text() == "only in the damaged tree"
    assert not damage_marker.exists()


def test_in_place_with_another_target_is_a_usage_error(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    result = app.cli("restore-files", "latest", str(tmp_path / "x"), "--in-place", extra=IN_PLACE)
    assert result.returncode == 2, result.stderr
    assert "TARGET" in result.stderr and "Traceback" not in result.stderr


def _start_restore(app: App, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "restore-files", *args],
        env={**app.env, **IN_PLACE},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "staging " in line:
            return proc
    raise AssertionError(f"restore-files exited ({proc.wait()}) before staging")


def _wait_for_staged_bytes(directory: Path, pattern: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for staging in directory.glob(pattern):
            if any(p.is_file() and p.stat().st_size for p in staging.rglob("*")):
                return
        time.sleep(0.02)
    raise AssertionError("restic never wrote into the staging directory")


def test_killing_the_restore_midway_leaves_the_tree_exactly_as_it_was(
    app: App, tmp_path: Path
) -> None:
    populate(app.files)
    for i in range(30):
        (app.files / "uploads" / f"big-{i}.bin").write_bytes(os.urandom(2_000_000))
    snapshot_tree, damaged = back_up_then_damage(app, tmp_path)

    proc = _start_restore(app, "latest", "--in-place")
    _wait_for_staged_bytes(app.files.parent, ".storage.kamal-backup-staging-*")
    proc.kill()
    proc.wait(timeout=20)
    time.sleep(1.0)  # restic dies with kamal-backup (parent-death signal)
    assert proc.returncode == -9
    assert_same_tree(damaged, app.files)

    # The next run removes the staging directory the killed one left, then restores.
    again = app.cli("restore-files", "--in-place", extra=IN_PLACE, check=True)
    assert "left by an interrupted restore" in again.stderr
    assert_same_tree(snapshot_tree, app.files)
    assert leftovers(app.files.parent) == []


@pytest.fixture
def bind_mounted(app: App, tmp_path: Path) -> Iterator[Path]:
    """The backup path is a bind mount of another directory (as a Docker volume is)."""
    source = tmp_path / "volume"
    shutil.copytree(app.files, source, symlinks=True)
    mounted = subprocess.run(
        ["mount", "--bind", str(source), str(app.files)], capture_output=True, text=True
    )
    if mounted.returncode != 0 or not is_mount_point(app.files):
        pytest.fail(f"cannot bind-mount for the test (run as root): {mounted.stderr.strip()}")
    try:
        yield source
    finally:
        subprocess.run(["umount", "-l", str(app.files)], check=False)


def test_in_place_restore_of_a_bind_mounted_backup_path(
    app: App, tmp_path: Path, bind_mounted: Path
) -> None:
    populate(app.files)
    app.files.chmod(0o750)
    app.cli("backup", check=True)
    snapshot_tree = tmp_path / "as-backed-up"
    shutil.copytree(app.files, snapshot_tree, symlinks=True)
    damage(app.files)
    app.files.chmod(0o700)

    app.cli("restore-files", "--in-place", extra=IN_PLACE, check=True)
    assert is_mount_point(app.files)  # the mount itself was not replaced
    assert_same_tree(snapshot_tree, app.files)
    assert leftovers(app.files) == []
    assert_same_tree(snapshot_tree, bind_mounted)  # the data landed on the mounted volume


def test_killed_restore_of_a_bind_mount_leaves_only_a_staging_directory_the_next_run_removes(
    app: App, tmp_path: Path, bind_mounted: Path
) -> None:
    for i in range(30):
        (app.files / f"big-{i}.bin").write_bytes(os.urandom(2_000_000))
    app.cli("backup", check=True)
    snapshot_tree = tmp_path / "as-backed-up"
    shutil.copytree(app.files, snapshot_tree, symlinks=True)
    (app.files / "uploads" / "a.txt").write_text("damaged")
    damaged = tmp_path / "damaged"
    shutil.copytree(app.files, damaged, symlinks=True)

    proc = _start_restore(app, "--in-place")
    _wait_for_staged_bytes(app.files, ".kamal-backup-staging-*")
    proc.kill()
    proc.wait(timeout=20)
    time.sleep(1.0)
    [staging] = leftovers(app.files)  # inside the mount: the only place on its filesystem
    shutil.copytree(app.files, tmp_path / "after-kill", symlinks=True)
    shutil.rmtree(tmp_path / "after-kill" / staging)
    subprocess.run(
        ["diff", "-r", "--no-dereference", str(damaged), str(tmp_path / "after-kill")], check=True
    )

    app.cli("restore-files", "--in-place", extra=IN_PLACE, check=True)
    assert_same_tree(snapshot_tree, app.files)


def test_path_restores_one_file_into_scratch_and_in_place(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    wanted = app.files / "uploads" / "ünï" / "photo.bin"
    original = wanted.read_bytes()
    other = app.files / "uploads" / "a.txt"
    other.write_text("changed after the backup, must stay")
    wanted.unlink()

    scratch = tmp_path / "scratch"
    app.cli("restore-files", "latest", str(scratch), "--path", str(wanted), extra=ALLOW, check=True)
    copy = scratch / str(wanted).lstrip("/")
    assert copy.read_bytes() == original
    restored = sorted(p.relative_to(scratch) for p in scratch.rglob("*") if p.is_file())
    assert restored == [copy.relative_to(scratch)]

    refused = app.cli("restore-files", "--in-place", "--path", str(wanted), extra=ALLOW)
    assert refused.returncode == 3 and "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE" in refused.stderr
    assert not wanted.exists()
    result = app.cli(
        "restore-files", "--in-place", "--path", str(wanted), "--json", extra=IN_PLACE, check=True
    )
    assert json.loads(result.stdout)["details"]["paths"] == [str(wanted)]
    assert wanted.read_bytes() == original
    assert other.read_text() == "changed after the backup, must stay"
    assert leftovers(wanted.parent) == []


def test_a_path_that_is_not_in_the_snapshot_is_refused_with_exit_2(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    for missing in (str(app.files / "uploads" / "never-there.txt"), "/etc/passwd"):
        result = app.cli(
            "restore-files", "latest", str(tmp_path / "s"), "--path", missing, extra=ALLOW
        )
        assert result.returncode == 2, result.stderr
        assert f"--path: {missing} is not in snapshot" in result.stderr
        assert not (tmp_path / "s").exists()


def test_backup_excludes_leave_patterns_out_of_the_file_snapshot_and_show_in_evidence(
    app: App,
) -> None:
    (app.files / "uploads" / "upload.tmp").write_text("half an upload")
    (app.files / "tmp" / "cache").mkdir(parents=True)
    (app.files / "tmp" / "cache" / "c.bin").write_text("cache")
    (app.files / "uploads" / "tmp-not-excluded.txt").write_text("kept")
    excludes = "*.tmp\ntmp/"
    run = json.loads(
        app.cli("backup", "--json", extra={"BACKUP_EXCLUDES": excludes}, check=True).stdout
    )
    listing = app.restic("ls", "--json", run["files_snapshot"]["id"]).stdout
    names = {json.loads(line).get("path") for line in listing.splitlines() if '"node"' in line}
    assert str(app.files / "uploads" / "a.txt") in names
    assert str(app.files / "uploads" / "tmp-not-excluded.txt") in names
    assert not [n for n in names if n and (n.endswith(".tmp") or "/storage/tmp" in n)]
    evidence = json.loads(app.cli("evidence", extra={"BACKUP_EXCLUDES": excludes}).stdout)
    assert evidence["backup_excludes"] == ["*.tmp", "tmp/"]


def test_what_a_restore_leaves_inside_a_backup_path_is_not_backed_up(app: App) -> None:
    (app.files / ".kamal-backup-previous-20260101T000000Z-1").mkdir()
    (app.files / ".kamal-backup-previous-20260101T000000Z-1" / "old.txt").write_text("old")
    (app.files / "uploads" / ".a.txt.kamal-backup-staging-x").mkdir()
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    listing = app.restic("ls", "--json", run["files_snapshot"]["id"]).stdout
    names = {json.loads(line).get("path") for line in listing.splitlines() if '"node"' in line}
    assert str(app.files / "uploads" / "a.txt") in names
    assert not [n for n in names if n and "kamal-backup-" in n]
