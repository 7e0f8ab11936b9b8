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


def test_mariadbs_using_password_yes_is_not_a_password() -> None:
    redactor = Redactor()
    message = "Access denied for user 'shop'@'127.0.0.1' (using password: YES)"
    assert redactor.redact(message) == message
    assert redactor.redact("(using password: NO)") == "(using password: NO)"
    # A value that merely starts with YES is still masked.
    assert "YESsecret" not in redactor.redact("password: YESsecret)")


def test_short_values_are_not_treated_as_secrets() -> None:
    redactor = Redactor(["1", "ab"])
    assert redactor.redact("1 ab") == "1 ab"


def test_nested_structures_are_redacted() -> None:
    redactor = Redactor(["topsecret"])
    assert redactor.redact_obj({"a": ["x topsecret", {"b": "topsecret"}], "n": 3}) == {
        "a": [f"x {MASK}", {"b": MASK}],
        "n": 3,
    }


def test_a_dictionary_word_password_does_not_garble_the_messages() -> None:
    redactor = Redactor(["password", "wrong"])
    message = "listing snapshots: wrong restic repository password (check RESTIC_PASSWORD)"
    assert redactor.redact(message) == message
    # In credential positions they are masked all the same.
    assert redactor.redact("postgres://app:password@db/app") == f"postgres://app:{MASK}@db/app"
    assert redactor.redact("host=db password=wrong") == f"host=db password={MASK}"


def test_a_weak_secret_is_masked_as_a_token_but_not_inside_other_words() -> None:
    redactor = Redactor(["pass", "hunter", "ab12"])
    assert redactor.redact("password passes") == "password passes"
    assert redactor.redact("user hunter: denied (ab12)") == f"user {MASK}: denied ({MASK})"
    assert redactor.redact("hunters ab123") == "hunters ab123"


def test_a_strong_secret_is_masked_even_inside_other_text() -> None:
    redactor = Redactor(["zz-top-1x", "correcthorsebatterystaple"])
    assert redactor.redact("Xzz-top-1xY") == f"X{MASK}Y"
    assert redactor.redact("pre_correcthorsebatterystaple_post") == f"pre_{MASK}_post"


def test_a_short_url_password_is_learned_and_masked_everywhere_it_stands_alone() -> None:
    redactor = Redactor()
    redactor.add_environment({"DATABASE_URL": "postgres://app:pw9x@db/app"})
    assert redactor.redact("connecting to postgres://app:pw9x@db/app") == (
        f"connecting to postgres://app:{MASK}@db/app"
    )
    assert redactor.redact("access denied for pw9x") == f"access denied for {MASK}"
