"""The app factory and its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter import create_app
from newsletter.errors import ConfigError


def test_embedded_default_uses_the_instance_folder(tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'newsletter.db'}"
    assert app.config["OUTBOX_PATH"] == str(tmp_path / "outbox")
    assert app.config["BROKER_URL"] is None


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = create_app({"INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    second = create_app({"INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    assert len(first) >= 32
    assert first == second
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("DATABASE_URL", "mysql://localhost/x"),
        ("BROKER_URL", "kafka://localhost"),
        ("SMTP_URL", "http://relay.example.org"),
        ("BASE_URL", "news.example.org"),
        ("FROM_ADDRESS", "nobody"),
        ("LEASE_SECONDS", 50),  # shorter than two SMTP timeouts of 30 s
    ],
)
def test_wrong_setting_names_itself(tmp_path: Path, setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        create_app({"INSTANCE_PATH": str(tmp_path), setting: value})
    assert raised.value.setting == f"NEWSLETTER_{setting}"


def test_cookies_are_secure_when_served_over_https(tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path), "BASE_URL": "https://news.example.org"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    plain = create_app({"INSTANCE_PATH": str(tmp_path), "BASE_URL": "http://127.0.0.1:5000"})
    assert plain.config["SESSION_COOKIE_SECURE"] is False


def test_trusted_proxy_gives_the_visitors_address(tmp_path: Path) -> None:
    from flask import request

    for proxies, expected in ((0, "127.0.0.1"), (1, "203.0.113.9")):
        app = create_app({"INSTANCE_PATH": str(tmp_path), "TRUSTED_PROXIES": proxies})
        app.add_url_rule("/whoami", "whoami", lambda: request.remote_addr or "")
        answer = app.test_client().get(
            "/whoami", headers={"X-Forwarded-For": "203.0.113.9"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        assert answer.get_data(as_text=True) == expected
