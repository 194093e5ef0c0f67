"""The API token pages in a real browser, at a phone's width and a laptop's: an admin's own
tokens and every user's, with an owner's long address and a long token name, then revoking
another user's token.

Screenshots land in ``<basetemp>/…/shots/<width>``; run with ``--basetemp=DIR`` to look at
them. Nothing on either page may be wider than the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from newsletter.auth import services, tokens
from newsletter.auth.models import Role
from newsletter.extensions import db
from tests.e2e.helpers import Shots, log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN, PASSWORD = "admin@example.org", "correct horse battery"


@pytest.mark.browser
def test_every_user_s_tokens_fit_and_an_admin_revokes_one(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    admin = services.create_user(ADMIN, PASSWORD)
    editor = services.create_user(
        "margaret.hamilton-apollo@guidance-computer.example.org", "an editor's long password",
        role=Role.EDITOR,
    )
    tokens.create_token(admin, name="nightly export", scope_names=["read"], expires_days=30)
    theirs = tokens.create_token(
        editor, name="the website's signup form on the campaign pages", scope_names=["write"]
    )
    tokens.token_for(theirs.secret)  # a last use to show
    tokens.create_token(editor, name="old script", expires_days=7)
    shot = Shots(page, tmp_path / "shots")

    log_in(page, live_url, ADMIN, PASSWORD)

    page.goto(f"{live_url}/admin/profile/tokens")
    assert "nightly export" in page.inner_text("main")
    assert "campaign pages" not in page.inner_text("main")
    shot("own-tokens")

    with page.expect_navigation():
        page.get_by_role("link", name="Every user’s tokens").click()
    assert page.locator("table.tokens tbody tr").count() == 3
    shot("every-token")
    with page.expect_navigation():
        page.locator(f"form[action$='/users/tokens/{theirs.row.id}/revoke'] button").click()
    assert "is revoked" in page.inner_text("body")
    shot("revoked")
    db.session.remove()  # the server changed the row in its own session
    assert tokens.token_for(theirs.secret) is None
