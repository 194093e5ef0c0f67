"""Logs as an operator reads them: JSON lines with the request or job, no address or token."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from newsletter import create_app
from newsletter.delivery.transactional import queue_message
from newsletter.ops import logs
from tests.smtp import CapturingSMTPServer

pytestmark = pytest.mark.usefixtures("keep_logging")

TOKEN = "IjEyMyI.Zx9f2Q.c2lnbmF0dXJlLW9mLWEtbGluaw"


def logged_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_json_lines_carry_the_request_id_and_hide_addresses_and_tokens(
    app_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app({**app_config, "LOG_FORMAT": "json"})
    logs.setup(app)

    @app.get("/_log_something")
    def log_something() -> str:
        logging.getLogger("newsletter.test").warning(
            "550 5.1.1 <ann.lee+news@example.org>: unknown; link /manage/%s", TOKEN
        )
        return "ok"

    response = app.test_client().get("/_log_something", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    entries = [json.loads(line) for line in logged_lines(capsys)]
    entry = next(e for e in entries if e["logger"] == "newsletter.test")
    assert entry["level"] == "warning"
    assert entry["request_id"] == "req-42"
    assert entry["job_id"] is None
    assert "ann.lee" not in entry["message"] and "example.org" not in entry["message"]
    assert TOKEN not in entry["message"]
    assert entry["message"] == "550 5.1.1 <[address]>: unknown; link /manage/[token]"


def test_the_debug_setting_shows_addresses_and_text_is_the_default(
    app_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app({**app_config, "LOG_SENSITIVE": True})
    logs.setup(app)
    logging.getLogger("newsletter.test").warning("to ann@example.org")
    assert "WARNING [newsletter.test] to ann@example.org" in logged_lines(capsys)


def test_a_tracebacks_addresses_are_hidden_too(
    app_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup(create_app(app_config))
    try:
        raise ValueError("bad address bob@example.org")
    except ValueError:
        logging.getLogger("newsletter.test").exception("failed")
    text = "\n".join(logged_lines(capsys))
    assert "ValueError: bad address [address]" in text
    assert "bob@example.org" not in text


def test_a_jobs_log_lines_name_the_job(
    app: Flask, mailbox: CapturingSMTPServer, capsys: pytest.CaptureFixture[str],
    run_jobs: Callable[[], None],
) -> None:
    app.config["LOG_FORMAT"] = "json"
    logs.setup(app)
    mailbox.handler.refuse["gone@example.org"] = "550 5.1.1 no such user"
    queue_message(to="gone@example.org", subject="Hello", text="Hi", html="<p>Hi</p>")
    run_jobs()
    entries = [json.loads(line) for line in logged_lines(capsys) if line.startswith("{")]
    failed = [e for e in entries if e["logger"] == "newsletter.delivery.transactional"]
    assert failed and "(failed)" in failed[0]["message"]
    assert re.fullmatch(r"[0-9a-f-]{36}", failed[0]["job_id"])  # the Dramatiq message's id
    assert "gone@example.org" not in failed[0]["message"]
