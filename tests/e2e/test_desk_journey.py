"""An editor's issue, in a real browser at a phone's width and a laptop's: log in, import the
seed statement, write a second one in the editor with its live preview, compose a digest of
both, preview it at phone width, send a test, schedule it.

Screenshots land in ``<basetemp>/…/shots/<width>/``; run with ``--basetemp=DIR`` to keep them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from PIL import Image

from newsletter.auth import services
from newsletter.auth.models import Role
from newsletter.content.models import Issue, IssueStatus
from newsletter.extensions import db
from tests.e2e.helpers import Console, log_in
from tests.factories import make_list
from tests.helpers import SEED_STATEMENT
from tests.smtp import CapturingSMTPServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

EDITOR, PASSWORD = "editor@example.org", "correct horse battery"
SEED_TITLE = "An Anarchist Call for Post-election Mobilization"


@pytest.mark.browser
def test_an_editor_writes_composes_previews_tests_and_schedules_a_digest(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    from playwright.sync_api import expect

    page = sized_page
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    def shot(name: str) -> None:
        page.screenshot(path=shots / f"{name}.png", full_page=True)

    make_list("news", name="Movement News")
    user = services.create_user(EDITOR, PASSWORD, Role.EDITOR)
    user.can_send = True  # scheduling a send to lists is the SEND permission
    db.session.commit()

    log_in(page, live_url, EDITOR, PASSWORD)

    # 1. the seed statement, imported as a file
    page.goto(live_url + "/admin/statements")
    page.set_input_files("input[name=file]", str(SEED_STATEMENT))
    with page.expect_navigation():
        page.get_by_role("button", name="Import").click()
    expect(page.locator("h1")).to_have_text(SEED_TITLE)

    # 2. a second one, written in the editor, its preview rendered by the server as typed
    page.goto(live_url + "/admin/statements")
    with page.expect_navigation():
        page.get_by_role("link", name="Write a statement").click()
    page.fill("input[name=title]", "Hold the line")
    page.fill("input[name=author]", "The Desk")
    body = page.locator("textarea[name=body]")
    body.fill("We hold the line, {{ name }}.\n\n> Together.\n\n")
    body.press("End")
    page.get_by_role("button", name="B").click()  # the toolbar: **text**
    preview = page.locator("#live-preview")
    expect(preview.locator("blockquote")).to_have_text("Together.")
    expect(preview).to_contain_text("We hold the line, Reader.")
    expect(preview.locator("strong")).to_have_text("text")
    poster = tmp_path / "poster.png"
    Image.new("RGB", (320, 120), (179, 38, 30)).save(poster)
    page.set_input_files("#image-upload", str(poster))  # the toolbar's Image button
    expect(page.locator(".upload-status")).to_contain_text("Image added")
    expect(preview.locator("img")).to_have_attribute("src", re.compile(r"/media/.+\.png$"))
    assert "![poster](http://127.0.0.1:" in body.input_value()
    shot("statement-editor")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Hold the line")
    page.goto(live_url + "/admin/media")
    expect(page.locator(".media-item")).to_have_count(1)
    shot("media")

    # 3. a digest of both: the second first, with the arrows
    page.goto(live_url + "/admin/issues/new")
    page.fill("input[name=subject]", "This week: two calls")
    page.fill("input[name=sender_name]", "The Desk")
    page.fill("textarea[name=intro]", "Two statements from this week.")
    rows = page.locator(".pick-row")
    expect(rows).to_have_count(2)
    for title in (SEED_TITLE, "Hold the line"):
        page.locator(".pick-row", has_text=title).locator("input[type=checkbox]").check()
    second = page.locator(".pick-row", has_text="Hold the line")
    second.get_by_role("button", name=re.compile("up")).click()
    expect(rows.first).to_contain_text("Hold the line")
    page.get_by_label("Movement News").check()
    options = page.locator("select[name=template] option").all_inner_texts()
    names = [text.strip() for text in options]
    digest = next((name for name in names if name.lower() == "digest"), None)
    if digest is not None:
        page.select_option("select[name=template]", label=digest)
    expect(page.locator(".template-note:visible")).to_contain_text("greets the reader by name")
    shot("compose")
    with page.expect_navigation():
        page.get_by_role("button", name="Save draft").click()
    issue = db.session.query(Issue).one()
    assert [s.title for s in issue.statements] == ["Hold the line", SEED_TITLE]

    # 4. previewed at a desktop's width, then at a phone's
    page.frame_locator("iframe#issue-preview").get_by_text("Hold the line").first.wait_for()
    page.locator("iframe#issue-preview").scroll_into_view_if_needed()
    page.screenshot(path=shots / "issue-desktop-preview.png")  # the frame in view
    page.get_by_role("link", name="Phone").click()
    frame = page.locator("iframe#issue-preview")
    expect(frame).to_have_class(re.compile("preview-phone"))
    assert frame.bounding_box()["width"] <= 376  # type: ignore[index]
    expect(page.frame_locator("iframe#issue-preview").locator("body")).to_contain_text(
        "Hold the line"
    )
    expect(page.locator(".preflight")).to_be_visible()
    shot("issue-phone-preview")

    # 5. a test, to the editor only
    mailbox.reset()
    page.locator("#test-send summary").click()
    page.get_by_label(re.compile(re.escape(EDITOR))).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Send the test").click()
    expect(page.locator(".flash-success")).to_contain_text("Test sent")
    run_jobs()
    [proof] = mailbox.messages
    assert proof.recipients == [EDITOR]
    assert proof.message["Subject"] == "[Test] This week: two calls"

    # 6. scheduled (an hour from now, the form's default)
    page.locator(".schedule-card summary").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.locator(".status-line .badge")).to_have_text("scheduled")
    expect(page.frame_locator("iframe#issue-preview").locator("body")).to_contain_text(
        "Hold the line"
    )
    shot("issue-scheduled")  # (a full-page shot leaves an iframe below the fold blank)
    db.session.expire_all()
    assert db.session.get(Issue, issue.id).status is IssueStatus.SCHEDULED  # type: ignore[union-attr]
    assert db.session.get(Issue, issue.id).total_count == 0  # type: ignore[union-attr]

    assert console.take() == []
    assert [url for url in requested if not url.startswith(live_url)] == []
