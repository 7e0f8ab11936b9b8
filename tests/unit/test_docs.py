"""The docs describe the code that exists: configuration table, commands."""

from __future__ import annotations

from pathlib import Path

from kamal_backup.cli import app
from kamal_backup.reference import (
    END,
    START,
    commands_help,
    end_marker,
    settings_table,
    start_marker,
)
from kamal_backup.settings import env_names

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_reference_is_generated_from_the_settings_model() -> None:
    text = (DOCS / "configuration.md").read_text()
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == settings_table(), "run: python -m kamal_backup.reference"
    for name in env_names():
        assert f"`{name}`" in block
    from kamal_backup.settings import Settings

    assert not [name for name, field in Settings.model_fields.items() if not field.examples]


def test_every_command_is_documented() -> None:
    text = (DOCS / "commands.md").read_text()
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    assert "backup" in names and "restore-files" in names
    for name in names:
        assert f"`{name}" in text, name


def test_commands_page_carries_each_commands_current_help() -> None:
    text = (DOCS / "commands.md").read_text()
    block = text.split(start_marker("commands"), 1)[1].split(end_marker("commands"), 1)[0].strip()
    assert block == commands_help(), "run: python -m kamal_backup.reference"
    assert "### `health`" in block and "Usage: kamal-backup tui" in block


def test_evidence_page_explains_every_field_and_its_example_is_current(tmp_path: Path) -> None:
    import json

    from kamal_backup.services.evidence import build_evidence
    from kamal_backup.settings import load_settings

    text = (DOCS / "evidence.md").read_text()
    example = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    settings = load_settings(
        environ={
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "sqlite",
            "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
            "RESTIC_REPOSITORY": str(tmp_path / "missing-repository"),
            "RESTIC_PASSWORD": "example-password",
            "KAMAL_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "PATH": "/nonexistent",
        }
    )
    document = build_evidence(settings).document()
    assert list(example) == list(document)
    table = text.split("## Example", 1)[0]
    for key in document:
        assert f"`{key}`" in table, f"evidence.md does not explain {key}"


def test_generating_the_help_leaves_logging_as_it_was() -> None:
    import logging

    logger = logging.getLogger("kamal_backup")
    before = (list(logger.handlers), logger.level, logger.propagate)
    commands_help()
    assert (list(logger.handlers), logger.level, logger.propagate) == before
