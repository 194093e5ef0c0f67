"""Start-up stops with one line naming the setting whose service cannot be reached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from newsletter import create_app
from newsletter.checks import check_services
from newsletter.errors import ConfigError
from tests.helpers import free_port


def test_unreachable_database_names_its_setting(tmp_path: Path) -> None:
    app = create_app({
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x",
    })
    with app.app_context(), pytest.raises(ConfigError) as raised:
        check_services(app)
    assert raised.value.setting == "NEWSLETTER_DATABASE_URL"
    assert "cannot connect" in raised.value.reason


def test_unreachable_broker_names_its_setting(tmp_path: Path) -> None:
    app = create_app({
        "INSTANCE_PATH": str(tmp_path), "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
    })
    with app.app_context(), pytest.raises(ConfigError) as raised:
        check_services(app)
    assert raised.value.setting == "NEWSLETTER_BROKER_URL"


def test_worker_without_schema_says_to_upgrade(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter.cli", "worker"],
        env={"NEWSLETTER_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin",
             "NEWSLETTER_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "newsletter: configuration error: NEWSLETTER_DATABASE_URL: "
        "the database has no tables yet; run `newsletter db upgrade`"
    ]


def test_wrong_setting_stops_the_command_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter.cli", "run"],
        env={"NEWSLETTER_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin",
             "NEWSLETTER_BASE_URL": "news.example.org"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "newsletter: configuration error: NEWSLETTER_BASE_URL: "
        "'news.example.org' is not an http(s) URL"
    ]
