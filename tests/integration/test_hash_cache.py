"""The manifest's file hashes come from the state directory's cache only for unchanged files."""

from __future__ import annotations

import hashlib
import json
import os
import time

from tests.conftest import App


def manifest_of(app: App, run: str) -> dict[str, object]:
    (snapshot_id,) = app.snapshot_ids("type:manifest", f"run:{run}")
    listing = app.restic("ls", "--json", snapshot_id).stdout.splitlines()
    path = next(
        entry["path"]
        for entry in map(json.loads, listing)
        if entry.get("type") == "file" and entry["path"].endswith(".json")
    )
    return dict(json.loads(app.restic("dump", snapshot_id, path).stdout))


def test_a_file_changed_behind_a_reset_mtime_is_hashed_again(app: App) -> None:
    time.sleep(2.1)  # files changed within 2 s of a backup are never remembered
    first = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert (app.root / "state" / "shop" / "file-hashes.sqlite3").is_file()
    note = app.files / "uploads" / "a.txt"
    before = note.stat()
    note.write_text("HELLO\n")  # same size; the mtime is put back, only the ctime moves
    os.utime(note, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = json.loads(app.cli("backup", "--json", check=True).stdout)
    entries = {
        run: manifest_of(app, run)["files"]["entries"]  # type: ignore[index]
        for run in (first["run"], second["run"])
    }
    old, new = (hashlib.sha256(text).hexdigest() for text in (b"hello\n", b"HELLO\n"))
    assert entries[first["run"]][str(note)] == f"6:{old}"
    assert entries[second["run"]][str(note)] == f"6:{new}"
    # The unchanged file keeps its hash (from the cache or read again, it is the same).
    photo = str(app.files / "uploads" / "ünï" / "photo.bin")
    assert entries[first["run"]][photo] == entries[second["run"]][photo]
