"""Helpers for journeys in a real browser (the fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Page


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
