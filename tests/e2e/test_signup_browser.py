"""The signup page in Spanish in a real browser, with the proof-of-work challenge on.

Headless Chromium asks for Spanish (``Accept-Language: es-ES``), at a phone's width and a
laptop's; the page must be in Spanish, our own script must solve the challenge and send the
form (no request leaves 127.0.0.1, nothing breaks the Content-Security-Policy), and the
answer is the neutral page, in Spanish too. Screenshots land in ``<basetemp>/…/shots``; run
with ``--basetemp=DIR`` to look at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.audience.models import Subscriber
from newsletter.extensions import db
from tests.e2e.helpers import WIDTHS, Console
from tests.factories import make_list

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_config,
        "SMTP_URL": None,
        "SIGNUP_CHALLENGE": "altcha",
        "SIGNUP_CHALLENGE_COST": 3000,
    }


@pytest.fixture(params=sorted(WIDTHS), ids=sorted(WIDTHS))
def spanish_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A fresh browser that prefers Spanish, at each width."""
    context = browser.new_context(
        viewport={"width": WIDTHS[request.param], "height": 900}, locale="es-ES"
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_the_signup_page_in_spanish_solves_its_challenge_and_signs_up(
    app: Flask, live_url: str, spanish_page: Page, tmp_path: Path
) -> None:
    make_list("noticias", name="Noticias del movimiento", description="Comunicados, cada semana.")
    page = spanish_page
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    response = page.goto(f"{live_url}/subscribe")
    assert response is not None and response.ok
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.locator("h1").inner_text() == "Suscríbete a Example News"
    assert page.locator("label[for=email]").inner_text() == "Correo electrónico"
    # Our script solves the challenge while the person types.
    page.wait_for_selector("form[data-challenge-solved]")
    assert "Comprobación terminada." in page.inner_text("[data-challenge-status]")
    box = page.locator("div.hp").bounding_box()  # the honeypot: off the page, no person sees it
    assert box is not None and box["x"] + box["width"] <= 0
    page.fill("#email", "ana@example.org")
    page.fill("#name", "Ana")
    page.screenshot(path=shots / "subscribe-es.png", full_page=True)

    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Revisa tu bandeja de entrada"
    page.screenshot(path=shots / "check-inbox-es.png", full_page=True)

    # The switch leads to the same page in English, and stays there.
    page.click("a[hreflang=en]")
    assert page.locator("h1").inner_text() == "Subscribe to Example News"

    assert console.take() == []
    assert [url for url in requested if urlsplit(url).hostname != "127.0.0.1"] == []
    db.session.expire_all()
    [ana] = db.session.scalars(select(Subscriber)).all()
    assert (ana.email, ana.language) == ("ana@example.org", "es")
