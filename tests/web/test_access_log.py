"""The tokens in mailed links stay out of the access log: a log line is read by more people,
and kept longer, than the mail it came from."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.routing.converters import NumberConverter
from werkzeug.serving import make_server

from newsletter.audience.tokens import confirm_url, manage_url, unsubscribe_url
from newsletter.auth import accounts, services
from newsletter.auth.models import Role
from newsletter.web.headers import is_secret
from newsletter.web.public import redact_tokens
from tests.delivery.processes import kill_group, newsletter_env, wait_until
from tests.factories import make_list, make_subscriber

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind werkzeug's own server (what ``newsletter run`` uses), on loopback."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def fetch(url: str, referer: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Referer": referer} if referer else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
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
    paths += admin_link_paths(app)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        statuses = [fetch(served + path) for path in paths]
    assert statuses == [200, 200, 200, 200, 200]
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
        ("POST /admin/reset/tok HTTP/1.1", "POST /admin/reset/[redacted] HTTP/1.1"),
        ("GET /admin/invite/tok HTTP/1.1", "GET /admin/invite/[redacted] HTTP/1.1"),
        ('"https://news.example.org/admin/reset/tok"', '"https://news.example.org/admin/reset/[redacted]"'),
        ("GET /t/c/link/tok HTTP/1.1", "GET /t/c/link/[redacted] HTTP/1.1"),
        ("GET /archive/12 HTTP/1.1", "GET /archive/12 HTTP/1.1"),
        ("GET /subscribe HTTP/1.1", "GET /subscribe HTTP/1.1"),
    ],
)
def test_redaction_takes_the_token_and_leaves_the_rest(line: str, expected: str) -> None:
    assert redact_tokens(line) == expected


def admin_link_paths(app: Flask) -> list[str]:
    """The paths of a password-reset link and of an invitation, for two new users."""
    user = services.create_user("ops@example.org", "correct horse battery")
    invited = accounts.invite("new@example.org", Role.EDITOR)
    return [
        urlsplit(accounts.site_url_for_reset(user)).path,
        urlsplit(accounts.site_url_for_invite(invited)).path,
    ]


SECRET = "Secret0123456789abcdefXYZ"


def test_every_route_with_a_secret_in_its_path_is_redacted(app: Flask) -> None:
    """A new route with a ``<token>`` (or ``<secret>``, ``<code>`` …) cannot be forgotten."""
    checked = []
    for rule in app.url_map.iter_rules():
        converters = rule._converters
        numbers = {a for a in rule.arguments if isinstance(converters.get(a), NumberConverter)}
        secrets = {
            a for a in rule.arguments - numbers  # an id (``<int:token_id>``) is no secret
            if is_secret(a) and a not in (rule.defaults or {})
        }
        if not secrets:
            continue
        values = {name: 7 if name in numbers else SECRET if name in secrets else "x"
                  for name in rule.arguments}  # fmt: skip
        built = rule.build(values)
        assert built is not None, rule.rule
        path = built[1]
        for line in (f"GET {path} HTTP/1.1", f'"https://news.example.org{path}?a=b"'):
            assert SECRET not in redact_tokens(line), f"{rule.rule} is not redacted"
        assert SECRET not in nginx_redacted(path), f"docs/deployment.md misses {rule.rule}"
        checked.append(rule.endpoint)
    assert {"public.manage", "admin.reset_password", "admin.accept_invite"} <= set(checked)


def nginx_redacted(uri: str) -> str:
    """``uri`` as the ``map`` in docs/deployment.md gives it to nginx's log format."""
    docs = (ROOT / "docs" / "deployment.md").read_text()
    found = re.search(r'map \$request_uri \$newsletter_uri \{\n\s*"~(.+)" "(.+)";', docs)
    assert found, "docs/deployment.md has no map for the log"
    pattern = re.compile(found.group(1).replace("(?<", "(?P<"))  # PCRE's names, Python's
    replacement = re.sub(r"\$\{(\w+)\}", r"\\g<\1>", found.group(2))
    return pattern.sub(replacement, uri)


def test_gunicorn_s_access_log_shows_no_token_in_the_path_or_the_referer(
    app: Flask, tmp_path: Path
) -> None:
    """gunicorn as docs/deployment.md runs it, with its access log on (default format, which
    includes the Referer): a reset link's token is in neither the request nor the Referer
    of the stylesheet the page loads."""
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    reset, _invite = admin_link_paths(app)
    manage = urlsplit(manage_url(ada.id, version=0)).path
    log = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(gunicorn), "--bind", "127.0.0.1:0", "--workers", "1",
             "--access-logfile", "-", "wsgi:app"],
            cwd=ROOT, env=newsletter_env(app), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        listening = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
        wait_until(lambda: bool(listening.search(log.read_text())) or server.poll() is not None,
                   what="gunicorn to listen")  # fmt: skip
        found = listening.search(log.read_text())
        assert found, log.read_text()
        base = f"http://127.0.0.1:{found.group(1)}"
        wait_until(lambda: fetch(base + "/healthz") == 200, what="the app to answer")
        assert fetch(base + reset, referer=f"https://news.example.org{manage}") == 200
        assert fetch(base + "/static/style.css", referer=f"https://news.example.org{reset}") == 200
        wait_until(lambda: "style.css" in log.read_text(), what="the access log lines")
    finally:
        kill_group(server, signal.SIGTERM)
    text = log.read_text()
    for token in (reset.rsplit("/", 1)[1], manage.rsplit("/", 1)[1]):
        assert token not in text
    assert '"GET /admin/reset/[redacted] HTTP/1.1" 200' in text
    assert '"https://news.example.org/manage/[redacted]"' in text
    assert '"https://news.example.org/admin/reset/[redacted]"' in text
