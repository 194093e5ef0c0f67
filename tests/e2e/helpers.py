"""Helpers for journeys in a real browser (the fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request


@dataclass
class BrowserSession:
    """A page in a fresh browser context, and every URL the context asked for."""

    page: Page
    requested: list[str] = field(default_factory=list)

    def foreign_requests(self, allowed_host: str = "127.0.0.1") -> list[str]:
        """Requests that went anywhere but ``allowed_host`` (data: and blob: URLs are local)."""
        return [
            url
            for url in self.requested
            if urlsplit(url).scheme not in {"data", "blob", "about"}
            and urlsplit(url).hostname != allowed_host
        ]


def submit(session: BrowserSession, button_selector: str) -> None:
    """Click a form's submit button and wait for the page it leads to."""
    with session.page.expect_navigation():
        session.page.locator(button_selector).first.click()


def page_text(session: BrowserSession) -> str:
    return " ".join(session.page.inner_text("body").split()).lower()


WIDTHS = {"phone": 390, "laptop": 1280}


class Console:
    """Everything the browser complained about, in any frame of the page."""

    def __init__(self, page: Page) -> None:
        self.complaints: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.complaints.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Request) -> None:
        # The browser drops the favicon's request when the page it was for is left at
        # once (a quick click or submit): not a failure of the site.
        if request.failure == "net::ERR_ABORTED" and request.url.endswith("/favicon.svg"):
            return
        self.complaints.append(f"failed: {request.url} {request.failure}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            self.complaints.append(f"{message.type}: {message.text}")

    def take(self) -> list[str]:
        complaints, self.complaints = self.complaints, []
        return complaints


def log_in(page: Page, live_url: str, email: str, password: str) -> None:
    """Log in through the admin's login form and wait for the page it leads to."""
    page.goto(f"{live_url}/admin/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.locator("form [type=submit]").first.click()


class Shots:
    """Screenshots of a page into ``folder/<width>/``, each one checked as a reader would:
    nothing the browser complained about, and no sideways scrolling at this width."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.console = Console(page)
        self.width = page.viewport_size["width"] if page.viewport_size else 0
        self.folder = folder / str(self.width)

    def __call__(self, name: str) -> None:
        self.page.screenshot(path=self.folder / f"{name}.png", full_page=True)
        assert self.console.take() == [], f"the browser complained on {name}"
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {self.width}px"
