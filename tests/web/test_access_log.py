"""The tokens in mailed links stay out of the access log: a log line is read by more people,
and kept longer, than the mail it came from."""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Iterator
from urllib.error import HTTPError

import pytest
from flask import Flask
from werkzeug.serving import make_server

from newsletter.audience.tokens import confirm_url, manage_url, unsubscribe_url
from newsletter.web.public import redact_tokens
from tests.factories import make_list, make_subscriber


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind werkzeug's own server (what ``newsletter run`` uses), on loopback."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except HTTPError as error:
        return error.code


def test_the_server_s_request_log_shows_no_link_token(
    app: Flask, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    paths = [
        manage_url(ada.id, version=0).removeprefix(app.config["BASE_URL"]),
        unsubscribe_url(ada.id, news.id, version=0).removeprefix(app.config["BASE_URL"]),
        confirm_url(ada.id, news.id).removeprefix(app.config["BASE_URL"]),
    ]
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        statuses = [fetch(served + path) for path in paths]
    assert statuses == [200, 200, 200]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for path in paths:
        token = path.rsplit("/", 1)[1]
        assert token not in logged
        assert f'GET {path.rsplit("/", 1)[0]}/[redacted] HTTP/1.1' in logged


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"GET /manage/abc.def-ghi HTTP/1.1" 200 -', '"GET /manage/[redacted] HTTP/1.1" 200 -'),
        ("POST /unsubscribe/tok?x=1 HTTP/1.1", "POST /unsubscribe/[redacted]?x=1 HTTP/1.1"),
        ("GET /manage/tok/export.json", "GET /manage/[redacted]/export.json"),
        ("GET /confirm/tok", "GET /confirm/[redacted]"),
        ("GET /admin/setup/tok HTTP/1.1", "GET /admin/setup/[redacted] HTTP/1.1"),
        ("GET /archive/12 HTTP/1.1", "GET /archive/12 HTTP/1.1"),
        ("GET /subscribe HTTP/1.1", "GET /subscribe HTTP/1.1"),
    ],
)
def test_redaction_takes_the_token_and_leaves_the_rest(line: str, expected: str) -> None:
    assert redact_tokens(line) == expected
