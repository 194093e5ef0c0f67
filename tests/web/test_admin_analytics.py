"""The Analytics tab of an issue: SVG charts drawn on the server with tables beside them,
the tracking form (CSRF, roles), and the same numbers from the API."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth.models import Role
from newsletter.content.models import Issue, TrackingMode
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement
from tests.helpers import csrf_token_from
from tests.web.admin_browser import logged_in_admin
from tests.web.analytics_data import browser_as, seed_sent_issue, token_as


@pytest.fixture
def sent_issue(app: Flask) -> int:
    return seed_sent_issue()


def test_the_page_draws_each_kind_as_svg_with_a_table(app: Flask, sent_issue: int) -> None:
    client = logged_in_admin(app)

    page = client.get(f"/admin/issues/{sent_issue}/analytics")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('<svg class="chart"') == 6  # delivery, and five kinds over time
    for key in ("bounced", "complained", "unsubscribed", "opens", "clicks"):
        assert f'data-chart="{key}"' in html
    totals = dict(re.findall(r'data-total="(\w+)">(\d+)<', html))
    assert totals == {"delivered": "2", "failed": "1", "bounced": "1", "complained": "1",
                      "unsubscribed": "1", "opens": "5", "clicks": "2"}  # fmt: skip
    assert 'data-filtered-opens="7"' in html and 'data-filtered-clicks="3"' in html
    assert "<table" in html and "<caption" in html  # the numbers for those who cannot see
    assert 'role="img"' in html and "<title id=" in html
    assert "Weekly &lt;b&gt;news&lt;/b&gt;" in html
    assert re.search(r"<script[^>]+src=\"(?!/)", html) is None  # no script from elsewhere
    assert "https://example.org/more" in html  # the link, with its clicks
    # the SVG holds numbers and escaped text only: no attribute comes from outside
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        assert "<script" not in svg and "style=" not in svg


def test_tracking_is_off_until_an_editor_turns_it_on(app: Flask) -> None:
    news = make_list("news")
    issue_id = make_issue((make_statement(),), (news,)).id
    client = logged_in_admin(app)
    page = client.get(f"/admin/issues/{issue_id}/analytics").get_data(as_text=True)
    assert re.search(r'value="off"[^>]*checked|checked[^>]*value="off"', page)

    refused = client.post(f"/admin/issues/{issue_id}/tracking", data={"mode": "aggregate"})
    assert refused.status_code == 400  # no CSRF token
    answer = client.post(
        f"/admin/issues/{issue_id}/tracking",
        data={"mode": "aggregate", "csrf_token": csrf_token_from(page)},
    )
    assert answer.status_code == 302
    db.session.expire_all()
    assert db.session.get(Issue, issue_id).tracking is TrackingMode.AGGREGATE


def test_a_viewer_reads_the_page_and_cannot_change_tracking(app: Flask, sent_issue: int) -> None:
    viewer = browser_as(app, Role.VIEWER)
    page = viewer.get(f"/admin/issues/{sent_issue}/analytics")
    assert page.status_code == 200
    assert 'action="/admin/issues/' not in page.get_data(as_text=True)
    token = csrf_token_from(viewer.get("/admin/").get_data(as_text=True))
    answer = viewer.post(
        f"/admin/issues/{sent_issue}/tracking", data={"mode": "individual", "csrf_token": token}
    )
    assert answer.status_code == 403


def test_the_api_gives_the_same_numbers(client: FlaskClient, sent_issue: int) -> None:
    answer = client.get(f"/api/v1/issues/{sent_issue}/analytics", headers=token_as(Role.VIEWER))

    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["tracking"] == "aggregate"
    assert {k: body["totals"][k] for k in ("delivered", "failed", "bounced", "complained",
                                           "unsubscribed", "opens", "clicks", "opens_filtered",
                                           "clicks_filtered")} == {
        "delivered": 2, "failed": 1, "bounced": 1, "complained": 1, "unsubscribed": 1,
        "opens": 5, "clicks": 2, "opens_filtered": 7, "clicks_filtered": 3,
    }  # fmt: skip
    # the timeline as the send sampled it (a sent issue is read from its counters, never
    # counted again, so looking now adds no point)
    assert [p["sent"] for p in body["delivery"]] == [1, 2]
    assert [p["failed"] for p in body["delivery"]] == [0, 1]
    assert sum(p["opens"] for p in body["events"]) == 5
    assert body["links"] == [{"position": 1, "url": "https://example.org/more", "clicks": 2,
                              "filtered": 3}]  # fmt: skip
    missing = client.get("/api/v1/issues/999999/analytics", headers=token_as(Role.ADMIN))
    assert missing.status_code == 404
