"""Fixtures for journeys in a real browser: the app served over HTTP, headless Chromium.

Chromium is Debian's ``/usr/bin/chromium`` (``apt-get install chromium``), driven through
Playwright's Python API; Playwright's own browser downloads are never used. Without Chromium
these tests skip with a clear message, or fail when ``CI`` is set.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.e2e.helpers import WIDTHS, BrowserSession
from tests.helpers import free_port, require_service

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium phones home (updates, safe browsing, sync) unless told not to; the test
    # asserts that nothing leaves 127.0.0.1.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live_port() -> int:
    """The loopback port the app will be served on (known before the app is created)."""
    return free_port()


@pytest.fixture
def app_config(
    app_config: dict[str, Any], live_port: int, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """For a test served live (it asks for ``live_url``): links in mail point at the live
    server, and without ``SERVER_NAME`` it answers to 127.0.0.1. A module adds its own
    settings on top."""
    if "live_url" not in request.fixturenames:
        return app_config
    return {
        **app_config,
        "BASE_URL": f"http://127.0.0.1:{live_port}",
        "SERVER_NAME": None,
        "PREFERRED_URL_SCHEME": "http",
    }


@pytest.fixture
def live_url(app: Flask, live_port: int) -> Iterator[str]:
    """Serve ``app`` for real on 127.0.0.1 in a thread; the base URL to open in the browser
    (``app_config`` above points the app's links at it)."""
    server = make_server("127.0.0.1", live_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{live_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium, or a skip (a failure in CI) saying how to install it."""
    executable = chromium_path()
    if executable is None:
        require_service("Chromium", "no chromium on PATH (install it: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        require_service("Playwright", f"{error}; install the dev extras: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def session(browser: Browser) -> Iterator[BrowserSession]:
    """A fresh context (no cookies), recording every request any of its pages makes."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    recorded = BrowserSession(page)

    def record(request: Any) -> None:
        recorded.requested.append(request.url)

    context.on("request", record)
    yield recorded
    context.close()


@pytest.fixture(params=sorted(WIDTHS), ids=sorted(WIDTHS))
def sized_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page in a fresh context at each width of ``WIDTHS`` (phone and laptop)."""
    context = browser.new_context(viewport={"width": WIDTHS[request.param], "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
