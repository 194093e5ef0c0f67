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
    ],
)
def test_wrong_setting_names_itself(tmp_path: Path, setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        create_app({"INSTANCE_PATH": str(tmp_path), setting: value})
    assert raised.value.setting == f"NEWSLETTER_{setting}"
