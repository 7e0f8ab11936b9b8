"""The redactor: planted secrets and credential-shaped text never survive it."""

from __future__ import annotations

from kamal_backup.redact import MASK, Redactor, is_secret_name


def test_url_credentials_are_masked_but_user_and_host_stay() -> None:
    redactor = Redactor()
    text = redactor.redact("connecting to postgres://app:p%40ss-w0rd@db:5432/app_production failed")
    assert "p%40ss-w0rd" not in text
    assert f"postgres://app:{MASK}@db:5432/app_production" in text


def test_known_secret_values_are_masked_anywhere() -> None:
    redactor = Redactor(["hunter2-secret"])
    assert (
        redactor.redact("Fatal: wrong password hunter2-secret!") == f"Fatal: wrong password {MASK}!"
    )


def test_url_passwords_are_learned_and_masked_when_seen_alone() -> None:
    redactor = Redactor()
    redactor.add_environment({"DATABASE_URL": "mysql2://app:zz-top-1@db/app"})
    assert redactor.redact("access denied for zz-top-1") == f"access denied for {MASK}"


def test_environment_secret_names() -> None:
    for name in (
        "RESTIC_PASSWORD",
        "PGPASSWORD",
        "MYSQL_PWD",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "B2_ACCOUNT_KEY",
        "AZURE_ACCOUNT_KEY",
        "RESTORE_PGPASSWORD",
        "RCLONE_CONFIG_REMOTE_PASS",
    ):
        assert is_secret_name(name), name
    for name in ("PWD", "APP_NAME", "RESTIC_PASSWORD_FILE", "BACKUP_PATHS"):
        assert not is_secret_name(name), name


def test_key_value_secrets_are_masked() -> None:
    redactor = Redactor()
    assert "abc123xyz" not in redactor.redact("host=db password=abc123xyz sslmode=require")
    assert "abc123xyz" not in redactor.redact("https://x/y?password=abc123xyz&z=1")


def test_short_values_are_not_treated_as_secrets() -> None:
    redactor = Redactor(["1", "ab"])
    assert redactor.redact("1 ab") == "1 ab"


def test_nested_structures_are_redacted() -> None:
    redactor = Redactor(["topsecret"])
    assert redactor.redact_obj({"a": ["x topsecret", {"b": "topsecret"}], "n": 3}) == {
        "a": [f"x {MASK}", {"b": MASK}],
        "n": 3,
    }
