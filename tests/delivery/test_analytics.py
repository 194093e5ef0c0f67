"""Analytics of an issue: counts per kind over time, and opt-in open and click tracking that
keeps no more than the editor chose, filters machines, and never redirects elsewhere."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from newsletter.audience.models import Subscriber
from newsletter.content.models import Issue, IssueStatus, TrackingMode
from newsletter.delivery.analytics.models import AnalyticsCount, Metric, TrackingEvent
from newsletter.delivery.analytics.report import issue_analytics
from newsletter.delivery.analytics.rollup import fold_bounces, folded_up_to
from newsletter.delivery.analytics.settings import set_tracking
from newsletter.delivery.analytics.tracking import (
    link_token,
    read_link_token,
    read_recipient_token,
    recipient_token,
)
from newsletter.delivery.bounces.models import BounceEvent, BounceKind, BounceSource
from newsletter.delivery.models import Delivery
from newsletter.delivery.send import dispatcher
from newsletter.errors import IssueStateError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import Audience
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PIXEL = re.compile(r"https://news\.example\.org(/t/o/[^\"'\s]+)")
CLICK = re.compile(r"https://news\.example\.org(/t/c/[^\"'\s]+)")


@pytest.fixture
def reader(app: Flask) -> FlaskClient:
    """A reader's mail app: no cookies kept, a browser's agent."""
    client = app.test_client(use_cookies=False)
    client.environ_base["HTTP_USER_AGENT"] = BROWSER
    return client


def send(issue_id: int, run_jobs: Callable[[], None], mode: TrackingMode | None = None) -> None:
    if mode is not None:
        set_tracking(issue_id, mode)
    dispatcher.request_send(issue_id)
    run_jobs()
    # Under load the last batch's look may be left to the sweeper (not run here): do it.
    dispatcher.finish_if_done(issue_id)
    assert db.session.get(Issue, issue_id).status is IssueStatus.SENT


def html_parts(mailbox: CapturingSMTPServer) -> dict[str, str]:
    """Each recipient's HTML part, by address."""
    parts = {}
    for captured in mailbox.messages:
        body = captured.message.get_body(preferencelist=("html",))
        assert body is not None
        parts[captured.recipients[0].lower()] = html_lib.unescape(body.get_content())
    return parts


def metric(issue_id: int, which: Metric) -> int:
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(AnalyticsCount.count), 0)).where(
                AnalyticsCount.issue_id == issue_id, AnalyticsCount.metric == which
            )
        )
    )


def click_path(html: str, url: str = "https://example.org/more") -> str:
    """The path of the tracked link that stands for ``url`` in a message's HTML."""
    for match in CLICK.finditer(html):
        if read_link_token(match.group(1).split("/")[3]).url == url:
            return match.group(1)
    raise AssertionError(f"no tracked link to {url}")


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # a click is "too fast" only within this many seconds: 0 unless a test says otherwise
    return {**app_config, "TRACKING_SCANNER_SECONDS": 0}


# Tracking off, the default.


def test_tracking_is_off_by_default_no_pixel_and_links_as_written(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    assert db.session.get(Issue, issue_id).tracking is TrackingMode.OFF
    send(issue_id, run_jobs)

    parts = html_parts(mailbox)
    assert sorted(parts) == audience.emails
    for html in parts.values():
        assert "/t/o/" not in html and "/t/c/" not in html
        assert 'href="https://example.org/more"' in html
        assert "%%NL-" not in html


# Aggregate: counts only.


def test_aggregate_mode_counts_opens_and_clicks_and_keeps_no_row_per_person(
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
    reader: FlaskClient,
) -> None:
    send(issue_id, run_jobs, TrackingMode.AGGREGATE)

    parts = html_parts(mailbox)
    for html in parts.values():
        assert "https://example.org/more" not in html  # the link goes through us now
        pixel = PIXEL.search(html)
        assert pixel is not None
        # the token names no delivery: only the issue and the second it was sent in
        token = pixel.group(1).rsplit("/", 1)[1]
        assert read_recipient_token(token).delivery_id is None
        answer = reader.get(pixel.group(1))
        assert answer.status_code == 200 and answer.mimetype == "image/gif"
        assert "Set-Cookie" not in answer.headers
        assert "no-store" in answer.headers["Cache-Control"]
    answer = reader.get(click_path(next(iter(parts.values()))))
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://example.org/more"
    assert "Set-Cookie" not in answer.headers

    assert metric(issue_id, Metric.OPEN) == len(audience.emails)
    assert metric(issue_id, Metric.CLICK) == 1
    assert db.session.scalar(select(func.count()).select_from(TrackingEvent)) == 0
    assert metric(issue_id, Metric.OPEN_UNIQUE) == 0  # nobody's own: no unique counts
    report = issue_analytics(issue_id)
    assert report.totals["opens"] == 4 and report.totals["clicks"] == 1
    clicks = {link.url: link.clicks for link in report.links}
    assert clicks["https://example.org/more"] == 1
    assert set(clicks.values()) == {0, 1}


# Individual.


def test_individual_mode_records_each_delivery_once_as_unique(
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
    reader: FlaskClient,
) -> None:
    send(issue_id, run_jobs, TrackingMode.INDIVIDUAL)

    html = html_parts(mailbox)["ada@example.com"]
    pixel, link = PIXEL.search(html), click_path(html)
    assert pixel is not None
    for _ in range(2):  # opened twice, clicked twice
        assert reader.get(pixel.group(1)).status_code == 200
        assert reader.get(link).status_code == 302

    events = db.session.execute(select(TrackingEvent.kind, TrackingEvent.delivery_id)).all()
    assert len(events) == 4
    delivery_ids = {delivery_id for _, delivery_id in events}
    assert len(delivery_ids) == 1
    delivery = db.session.get(Delivery, delivery_ids.pop())
    assert delivery.issue_id == issue_id
    assert db.session.get(Subscriber, delivery.subscriber_id).email == "ada@example.com"
    totals = issue_analytics(issue_id).totals
    assert (totals["opens"], totals["unique_opens"]) == (2, 1)
    assert (totals["clicks"], totals["unique_clicks"]) == (2, 1)


def test_turning_tracking_down_after_sending_holds_for_mail_already_out(
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
    reader: FlaskClient,
) -> None:
    send(issue_id, run_jobs, TrackingMode.INDIVIDUAL)
    html = html_parts(mailbox)["bo@example.com"]
    pixel = PIXEL.search(html)
    assert pixel is not None

    set_tracking(issue_id, TrackingMode.AGGREGATE)
    reader.get(pixel.group(1))
    assert metric(issue_id, Metric.OPEN) == 1
    assert db.session.scalar(select(func.count()).select_from(TrackingEvent)) == 0

    set_tracking(issue_id, TrackingMode.OFF)
    assert reader.get(pixel.group(1)).status_code == 200  # the image still loads
    assert metric(issue_id, Metric.OPEN) == 1
    with pytest.raises(IssueStateError):
        set_tracking(issue_id, TrackingMode.INDIVIDUAL)


# Scanners and proxies.


@pytest.mark.parametrize(
    ("method", "agent"),
    [
        ("HEAD", BROWSER),
        ("GET", "Mozilla/5.0 (compatible; Proofpoint URL Defense)"),
        ("GET", "Mimecast-URL-Scanner/1.0"),
        ("GET", "Barracuda Sentinel (EE)"),
        ("GET", "python-requests/2.32"),
        ("GET", ""),
    ],
)
def test_link_scanners_are_counted_apart(
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
    reader: FlaskClient,
    method: str,
    agent: str,
) -> None:
    send(issue_id, run_jobs, TrackingMode.AGGREGATE)
    link = click_path(html_parts(mailbox)["cy@example.com"])

    answer = reader.open(link, method=method, headers={"User-Agent": agent})

    assert answer.status_code == 302  # a scanner is sent on, as anyone: it only is not counted
    assert metric(issue_id, Metric.CLICK) == 0
    assert metric(issue_id, Metric.CLICK_FILTERED) == 1
    assert issue_analytics(issue_id).totals["clicks_filtered"] == 1


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "Mozilla/5.0",
    ],
)
def test_image_proxies_opens_are_counted_apart(
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
    reader: FlaskClient,
    agent: str,
) -> None:
    send(issue_id, run_jobs, TrackingMode.AGGREGATE)
    pixel = PIXEL.search(html_parts(mailbox)["cy@example.com"])
    assert pixel is not None

    assert reader.get(pixel.group(1), headers={"User-Agent": agent}).status_code == 200

    assert (metric(issue_id, Metric.OPEN), metric(issue_id, Metric.OPEN_FILTERED)) == (0, 1)


class TestFastClicks:
    @pytest.fixture
    def app_config(self, app_config: dict[str, Any]) -> dict[str, Any]:
        return {**app_config, "TRACKING_SCANNER_SECONDS": 3600}

    def test_a_click_within_seconds_of_the_send_is_a_scanners(
        self,
        audience: Audience,
        issue_id: int,
        mailbox: CapturingSMTPServer,
        run_jobs: Callable[[], None],
        reader: FlaskClient,
    ) -> None:
        send(issue_id, run_jobs, TrackingMode.INDIVIDUAL)
        html = html_parts(mailbox)["di@example.com"]
        link, pixel = click_path(html), PIXEL.search(html)
        assert pixel is not None

        assert reader.get(link).status_code == 302
        assert reader.get(pixel.group(1)).status_code == 200  # opens have no such window

        assert (metric(issue_id, Metric.CLICK), metric(issue_id, Metric.CLICK_FILTERED)) == (0, 1)
        assert metric(issue_id, Metric.OPEN) == 1
        kinds = db.session.scalars(select(TrackingEvent.kind)).all()
        assert [kind.value for kind in kinds] == ["open"]  # a filtered click names no one


# The redirector is never an open redirect.


def test_a_tampered_or_unsigned_target_is_refused_never_followed(
    app: Flask, issue_id: int, reader: FlaskClient
) -> None:
    set_tracking(issue_id, TrackingMode.AGGREGATE)
    good = link_token(issue_id, 1, "https://example.org/more")
    who = recipient_token(issue_id, None)
    assert reader.get(f"/t/c/{good}/{who}").headers["Location"] == "https://example.org/more"

    payload, signature = good.rsplit(".", 1)[0], good.rsplit(".", 1)[1]
    forged = link_token(issue_id, 1, "https://evil.example/phish")
    tampered = [
        forged.rsplit(".", 1)[0] + "." + signature,  # another target under the old signature
        payload + "." + signature[::-1],  # a wrong signature
        "https%3A%2F%2Fevil.example",  # no signature at all
        who,  # a recipient token is not a link token
    ]
    for token in tampered:
        answer = reader.get(f"/t/c/{token}/{who}")
        assert answer.status_code == 404, token
        assert "Location" not in answer.headers
    assert reader.get("/t/c/").status_code == 404
    assert metric(issue_id, Metric.CLICK) == 1
    # a link token signed for a target that is not http(s) is refused too
    script = link_token(issue_id, 2, "javascript:alert(1)")
    assert reader.get(f"/t/c/{script}/{who}").status_code == 404


def test_a_forged_pixel_is_not_counted(app: Flask, issue_id: int, reader: FlaskClient) -> None:
    set_tracking(issue_id, TrackingMode.AGGREGATE)
    token = recipient_token(issue_id, None)
    assert reader.get(f"/t/o/{token[:-2]}xx").status_code == 404
    assert metric(issue_id, Metric.OPEN) == 0


# Counts per kind per issue over time.


def test_counts_per_kind_per_issue_over_time(
    app: Flask,
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    send(issue_id, run_jobs)
    started = db.session.get(Issue, issue_id).started_at
    base = started.replace(minute=0, second=0, microsecond=0)
    ada, bo, cy = (
        db.session.scalar(select(Subscriber.id).where(Subscriber.email == email))
        for email in ("ada@example.com", "bo@example.com", "cy@example.com")
    )
    other_issue = Issue(subject="Another", status=IssueStatus.SENT)
    db.session.add(other_issue)
    db.session.flush()
    for subscriber, kind, hours, issue in [
        (ada, BounceKind.HARD, 1, issue_id),
        (bo, BounceKind.SOFT, 1, issue_id),
        (cy, BounceKind.COMPLAINT, 5, issue_id),
        (cy, BounceKind.HARD, 2, other_issue.id),  # another issue's: not counted here
    ]:
        at = base + timedelta(hours=hours, minutes=7)
        db.session.add(
            BounceEvent(
                subscriber_id=subscriber,
                issue_id=issue,
                kind=kind,
                source=BounceSource.IMPORT,
                reason="seeded",
                occurred_at=at,
            )
        )
    db.session.commit()

    report = issue_analytics(issue_id)

    assert report.totals["delivered"] == 4 and report.totals["failed"] == 0
    assert (report.totals["bounced"], report.totals["complained"]) == (2, 1)
    assert (report.totals["hard_bounces"], report.totals["soft_bounces"]) == (1, 1)
    by_hour = {point.at: point.values for point in report.events}
    assert report.bucket == timedelta(hours=1)
    assert by_hour[base + timedelta(hours=1)]["bounced"] == 2
    assert by_hour[base + timedelta(hours=5)]["complained"] == 1
    assert sum(values["bounced"] for values in by_hour.values()) == 2
    assert min(by_hour) == base  # the chart starts with the send
    assert report.delivery[-1].values == {"sent": 4, "failed": 0}


def test_folding_bounces_into_the_counts_changes_no_number_and_counts_each_once(
    app: Flask, audience: Audience, issue_id: int
) -> None:
    ada = audience.recipients[0].id
    start = utcnow().replace(minute=0, second=0, microsecond=0)

    def add(kind: BounceKind, hours: int) -> None:
        db.session.add(BounceEvent(subscriber_id=ada, issue_id=issue_id, kind=kind,
                                   source=BounceSource.API, reason="",
                                   occurred_at=start - timedelta(hours=hours)))  # fmt: skip
        db.session.commit()

    def seen() -> tuple[dict[str, int], list[tuple[Any, int, int]]]:
        report = issue_analytics(issue_id)
        series = [(p.at, p.values["bounced"], p.values["complained"]) for p in report.events]
        return {k: report.totals[k] for k in ("bounced", "complained")}, series

    add(BounceKind.HARD, 3)
    add(BounceKind.COMPLAINT, 1)
    before = seen()
    assert before[0] == {"bounced": 1, "complained": 1}
    now = utcnow()
    assert fold_bounces(now) == 0  # the first look only notes the highest id
    assert fold_bounces(now + timedelta(seconds=10)) == 0  # not settled yet
    add(BounceKind.SOFT, 3)  # arrives after the note: left for the next fold
    assert fold_bounces(now + timedelta(seconds=61)) == 2
    assert folded_up_to() > 0
    after = seen()
    assert after[0] == {"bounced": 2, "complained": 1}
    assert fold_bounces(now + timedelta(seconds=200)) == 1
    assert fold_bounces(now + timedelta(seconds=400)) == 0  # nothing counted twice
    assert seen() == after
    assert sum(c.count for c in db.session.scalars(select(AnalyticsCount))) == 3


def test_unsubscribes_count_for_the_issue_whose_link_was_used_once_per_person(
    app: Flask,
    audience: Audience,
    issue_id: int,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
    reader: FlaskClient,
) -> None:
    send(issue_id, run_jobs)
    message = next(m for m in mailbox.messages if m.recipients[0].lower() == "ada@example.com")
    link = message.message["List-Unsubscribe"].split(",")[0].strip(" <>")
    path = link.removeprefix("https://news.example.org")

    for _ in range(2):  # a one-click POST from the provider, then the reader again
        assert reader.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    assert issue_analytics(issue_id).totals["unsubscribed"] == 1
    by_hour = [p.values["unsubscribed"] for p in issue_analytics(issue_id).events]
    assert sum(by_hour) == 1


def test_unsubscribe_links_from_before_still_work_and_count_for_no_issue(
    app: Flask, audience: Audience, issue_id: int
) -> None:
    from newsletter.audience.tokens import unsubscribe_url

    ada = audience.recipients[0]
    old = unsubscribe_url(ada.id, audience.news.id, version=ada.token_version)  # no issue
    client = app.test_client()
    page = client.get(old.removeprefix("https://news.example.org"))
    assert page.status_code == 200
    token = csrf_token_from(page.get_data(as_text=True))
    answer = client.post(old.removeprefix("https://news.example.org"), data={"csrf_token": token})
    assert answer.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(AnalyticsCount)) == 0
