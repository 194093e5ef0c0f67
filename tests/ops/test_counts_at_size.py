"""Pages at size: counts the dashboard and the lists page show past ``EXACT_BELOW`` rows come
from PostgreSQL's statistics and say "about"; sent issues' counts come from their counters;
issue listings come in keyset pages.

The threshold is lowered for the test, so a few hundred rows stand for a million.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from newsletter.audience.models import SubscriptionStatus
from newsletter.auth.services import create_api_token, create_user
from newsletter.content.models import IssueStatus
from newsletter.delivery.control.progress import progress, progress_many
from newsletter.extensions import db
from newsletter.models import utcnow
from newsletter.ops import estimates
from newsletter.ops.estimates import Tally
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import TEST_DATABASE_URL
from tests.web.admin_browser import logged_in_admin
from tests.web.api_client import Api

on_postgresql = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="estimates are PostgreSQL's (NEWSLETTER_TEST_DATABASE_URL)"
)


def test_a_tally_reads_as_a_number_and_an_estimate_says_about() -> None:
    assert str(Tally(1234)) == "1234"
    assert str(Tally(1_234_567, exact=False)) == "about 1,230,000"
    assert str(Tally(98_765, exact=False)) == "about 98,800"


def test_small_tables_are_counted_exactly(app: Flask) -> None:
    news = make_list("news")
    for number in range(3):
        make_subscriber(f"reader{number}@example.org", lists=(news,))
    client = logged_in_admin(app)
    page = client.get("/admin/").get_data(as_text=True)
    assert "<b>3</b> subscribers" in page
    assert "about" not in page


def _seed(count: int) -> tuple[int, int]:
    big, small = make_list("big"), make_list("small")
    db.session.execute(
        text(
            "INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at, "
            "token_version) SELECT 'reader' || g || '@example.org', '', '{}', 'active', now(), "
            "now(), 0 FROM generate_series(1, :count) AS g"
        ),
        {"count": count},
    )
    db.session.execute(
        text(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, "
            "created_at) SELECT id, :big, CASE WHEN id % 100 = 0 THEN 'unsubscribed' "
            "ELSE 'confirmed' END, 'import', now() FROM subscribers"
        ),
        {"big": big.id},
    )
    db.session.execute(
        text(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, "
            "created_at) SELECT id, :small, 'unconfirmed', 'import', now() FROM subscribers "
            "WHERE id % 50 = 0"
        ),
        {"small": small.id},
    )
    db.session.commit()
    db.session.execute(text("ANALYZE subscribers"))
    db.session.execute(text("ANALYZE subscriptions"))
    db.session.commit()
    return big.id, small.id


@on_postgresql
def test_large_counts_are_estimates_from_the_statistics_small_ones_exact(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.audience import list_counts

    monkeypatch.setattr(estimates, "EXACT_BELOW", 500)
    monkeypatch.setattr(list_counts, "EXACT_BELOW", 500)
    big, small = _seed(5000)

    client = logged_in_admin(app)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert "<b>about 5,000</b> subscribers" in dashboard

    counts = list_counts.subscription_counts()
    confirmed = counts[big][SubscriptionStatus.CONFIRMED.value]
    assert not confirmed.exact and abs(confirmed.value - 4950) < 250
    # few rows: counted exactly, through the index
    assert counts[big][SubscriptionStatus.UNSUBSCRIBED.value] == Tally(50)
    assert counts[small][SubscriptionStatus.UNCONFIRMED.value] == Tally(100)
    lists_page = client.get("/admin/lists").get_data(as_text=True)
    assert "about 4," in lists_page and ">50<" in lists_page and ">100<" in lists_page


def _sent_issue(sent: int, failed: int, skipped: int) -> int:
    news = make_list(f"news-{sent}")
    issue = make_issue((make_statement(),), (news,), subject=f"Sent {sent}")
    issue.status = IssueStatus.SENT
    issue.total_count, issue.sent_count, issue.failed_count = sent + failed + skipped, sent, failed
    issue.started_at = issue.finished_at = utcnow()
    db.session.commit()
    return int(issue.id)


def test_a_sent_issue_counts_from_its_counters_without_reading_deliveries(app: Flask) -> None:
    first, second = _sent_issue(90, 7, 3), _sent_issue(10, 0, 0)
    draft = int(make_issue((make_statement(),), (make_list("drafts"),)).id)
    # No delivery rows at all: the counters written at the finish are the answer.
    one = progress(first)
    assert (one.counts.sent, one.counts.failed, one.counts.skipped, one.counts.pending) == (
        90,
        7,
        3,
        0,
    )
    many = progress_many([first, second, draft, 10_000])
    assert set(many) == {first, second, draft}
    assert many[first].counts == one.counts
    assert many[second].counts.total == 10
    assert many[draft].counts.total == 0


def test_the_issues_api_pages_newest_first(app: Flask, client: FlaskClient) -> None:
    create_user("robot@example.org", "a long enough password 123")
    api = Api(client, create_api_token("robot@example.org"))
    ids = [_sent_issue(number, 0, 0) for number in (1, 2, 3)]

    first = api.get("/issues", query_string={"limit": 2}).get_json()
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    assert first["items"][0]["counts"]["sent"] == 3
    rest = api.get("/issues", query_string={"limit": 2, "before": first["next"]}).get_json()
    assert [item["id"] for item in rest["items"]] == [ids[0]]
    assert rest["next"] is None
    assert [item["id"] for item in api.get("/issues").get_json()["items"]] == ids[::-1]


def test_the_issues_page_pages_newest_first(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.web.admin import issues as issues_page

    monkeypatch.setattr(issues_page, "ISSUES_PER_PAGE", 2)
    ids = [_sent_issue(number, 0, 0) for number in (1, 2, 3)]
    client = logged_in_admin(app)
    page = client.get("/admin/issues").get_data(as_text=True)
    assert "Sent 3" in page and "Sent 2" in page and "Sent 1" not in page
    assert f"before={ids[1]}" in page
    older = client.get(f"/admin/issues?before={ids[1]}").get_data(as_text=True)
    assert "Sent 1" in older and "Sent 3" not in older
