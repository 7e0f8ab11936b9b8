"""Drives the real app against a real repository and saves each screen as an SVG."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from textual.widgets import Input, Tree

from kamal_backup.services.backup import run_backup
from kamal_backup.settings import load_settings
from tui import KamalBackupApp, make_app

SIZE = (110, 34)


def demo_environment(base: Path) -> dict[str, str]:
    storage = base / "rails" / "storage"
    (storage / "uploads" / "2026").mkdir(parents=True)
    (storage / "uploads" / "2026" / "invoice-0001.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * 40_000)
    (storage / "uploads" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    (base / "rails" / "db").mkdir(parents=True)
    with sqlite3.connect(base / "rails" / "db" / "shop.sqlite3") as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER)")
        db.executemany(
            "INSERT INTO orders (customer, total) VALUES (?, ?)",
            [(f"customer {i}", i * 137 % 10000) for i in range(5000)],
        )
    db.close()
    # What an earlier drill left in the scratch targets: the drill screen says it will go.
    (base / "drill" / "files" / str(storage).lstrip("/")).mkdir(parents=True)
    (base / "drill" / "files" / str(storage).lstrip("/") / "invoice-0001.pdf").write_bytes(
        b"%PDF-1.4\n" + b"0" * 40_000
    )
    with sqlite3.connect(base / "drill" / "shop.sqlite3") as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE leftover (note TEXT)")
    db.close()
    return {
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(base / "rails" / "db" / "shop.sqlite3"),
        "BACKUP_PATHS": str(storage),
        "RESTIC_REPOSITORY": str(base / "restic-repo"),
        "RESTIC_PASSWORD": "screenshots-only-password",
        "RESTIC_INIT_IF_MISSING": "true",
        "RESTIC_CHECK_AFTER_BACKUP": "true",
        "KAMAL_BACKUP_STATE_DIR": str(base / "state"),
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "RESTORE_SQLITE_DATABASE_PATH": str(base / "drill" / "shop.sqlite3"),
        "XDG_CACHE_HOME": str(base / "cache"),
        "HOME": str(base),
        "PATH": __import__("os").environ["PATH"],
    }


async def capture(app: KamalBackupApp, out: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:

        async def settle() -> None:
            await pilot.pause(0.3)  # let events start their workers first
            await app.workers.wait_for_complete()
            await pilot.pause(0.3)

        async def save(name: str, *showing: str) -> None:
            """Saves the screen; stops when it does not show what it is in the docs for."""
            await settle()
            svg = app.export_screenshot()
            for words in showing:
                if words.replace(" ", "&#160;") not in svg:
                    raise SystemExit(f"bin/screenshots: {name} does not show {words!r}")
            (out / f"{name}.svg").write_text(svg, encoding="utf-8")
            print(f"screenshots/{name}.svg")

        await pilot.press("s")
        await settle()
        await pilot.press("t", "t")
        await settle()
        tree = app.query_one("#snapshot-files", Tree)
        tree.root.children[0].expand()
        await settle()
        tree.root.children[0].children[0].expand()
        await save("snapshots")
        await pilot.press("e")
        await save("evidence")
        await pilot.press("d")
        await settle()
        await pilot.click("#kind-both")
        app.query_one("#drill-target", Input).value = str(
            Path(app.settings.state_dir).parent.parent / "drill" / "files"
        )
        app.query_one("#drill-confirm", Input).value = "shop"
        await save("drill", "has 2 tables", "dropped", "holds 1 file", "replaced")
        await pilot.press("ctrl+r")
        await pilot.pause(0.5)
        while app.operation is not None:
            await pilot.pause(0.2)
        await save("drill-result")
        # Last, so the overview shows the drill that was just made.
        await pilot.press("o", "r")
        await save("overview", "added/run", "duration", "outcomes")


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.gettempdir()) / "kamal-backup-screenshots"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    try:
        settings = load_settings(environ=demo_environment(base))
        # A few runs that each add something, so the overview's charts have a history to draw.
        for run in range(6):
            with sqlite3.connect(base / "rails" / "db" / "shop.sqlite3") as db:
                db.executemany(
                    "INSERT INTO orders (customer, total) VALUES (?, ?)",
                    [(f"new customer {run}-{i}", i) for i in range(500 * (run + 1))],
                )
            db.close()
            run_backup(settings)
        asyncio.run(capture(make_app(settings, show_log=True), out))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
