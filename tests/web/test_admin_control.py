"""Admin pages controlling a send: schedule in the editor's timezone, pause, resume, cancel,
retry failed (all POST with CSRF), live progress, the delivery log, the settings page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.auth.models import User
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.control import actions as control
from newsletter.delivery.models import Delivery
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import EMAIL, logged_in_admin


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser logged in as an admin."""
    return logged_in_admin(app)


@pytest.fixture
def issue_id(app: Flask) -> int:
    news = make_list("news", name="News")
    make_subscriber("ada@example.org", lists=(news,))
    make_subscriber("grace@example.org", lists=(news,))
    return int(make_issue((make_statement(),), (news,), subject="Weekly").id)


def page_of(client: FlaskClient, issue_id: int) -> str:
    return client.get(f"/admin/issues/{issue_id}").get_data(as_text=True)


def press(client: FlaskClient, issue_id: int, action: str, **data: str) -> str:
    """Press a button on the issue page (with the page's CSRF token); the page it leads to."""
    token = csrf_token_from(page_of(client, issue_id))
    response = client.post(
        f"/admin/issues/{issue_id}/{action}", data={"csrf_token": token, **data}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == f"/admin/issues/{issue_id}"
    return client.get(response.headers["Location"]).get_data(as_text=True)


def status_of(issue_id: int) -> IssueStatus:
    db.session.expire_all()
    return db.session.get(Issue, issue_id).status


def set_timezone(name: str) -> None:
    user = db.session.scalars(select(User).where(User.email == EMAIL)).one()
    user.timezone = name
    db.session.commit()


def test_schedule_in_the_editors_timezone_shows_the_time_on_their_clock(
    client: FlaskClient, issue_id: int
) -> None:
    set_timezone("America/New_York")
    next_year = utcnow().year + 1
    page = page_of(client, issue_id)
    assert 'type="datetime-local"' in page
    assert re.search(r'<option selected value="America/New_York">|'
                     r'<option value="America/New_York" selected', page)

    page = press(client, issue_id, "schedule", send_at=f"{next_year}-01-15T09:00",
                 timezone="America/New_York")

    issue = db.session.get(Issue, issue_id)
    assert issue.status is IssueStatus.SCHEDULED
    assert issue.send_at == datetime(next_year, 1, 15, 14, 0, tzinfo=UTC)  # EST is UTC-5
    assert f"{next_year}-01-15 09:00 America/New_York" in page
    assert "badge-scheduled" in page and "Unschedule" in page and "Cancel send" in page


def test_scheduling_in_another_zone_makes_it_the_editors_default(
    client: FlaskClient, issue_id: int
) -> None:
    next_year = utcnow().year + 1
    press(client, issue_id, "schedule", send_at=f"{next_year}-07-01T09:00",
          timezone="Europe/Berlin")

    assert db.session.get(Issue, issue_id).send_at == datetime(next_year, 7, 1, 7, 0, tzinfo=UTC)
    user = db.session.scalars(select(User).where(User.email == EMAIL)).one()
    assert user.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("send_at", "timezone", "message"),
    [
        ("2001-01-01T09:00", "UTC", "has passed"),
        ("tomorrow", "UTC", "is not a date and time"),
        ("{year}-03-29T02:30", "Europe/Berlin", "does not exist in Europe/Berlin"),
        ("{year}-06-01T09:00", "Mars/Olympus_Mons", "is not a timezone name"),
    ],
)
def test_a_time_that_cannot_be_scheduled_is_refused_with_the_reason(
    client: FlaskClient, issue_id: int, send_at: str, timezone: str, message: str
) -> None:
    # 2:30 on the last Sunday of March does not exist in Berlin; find that Sunday next year.
    year = utcnow().year + 1
    last_sunday = max(
        day for day in range(25, 32) if datetime(year, 3, day).weekday() == 6
    )
    value = send_at.format(year=year).replace("-03-29", f"-03-{last_sunday:02d}")

    page = press(client, issue_id, "schedule", send_at=value, timezone=timezone)

    assert "Not scheduled" in page and message in page
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_unschedule_makes_it_a_draft_again(client: FlaskClient, issue_id: int) -> None:
    control.schedule(issue_id, utcnow() + timedelta(days=1))

    page = press(client, issue_id, "unschedule")

    assert "a draft again" in page
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_pause_resume_and_the_send_completes(
    client: FlaskClient, issue_id: int, run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    dispatcher.request_send(issue_id)
    page = page_of(client, issue_id)
    assert "Pause" in page and "Cancel send" in page and "Resume" not in page

    page = press(client, issue_id, "pause")
    assert "Paused." in page and "badge-paused" in page and "Resume" in page
    run_jobs()
    assert mailbox.messages == []

    page = press(client, issue_id, "resume")
    assert "Resumed." in page
    run_jobs()

    assert status_of(issue_id) is IssueStatus.SENT
    assert len(mailbox.messages) == 2


def test_start_and_finish_are_shown_on_the_editors_clock(
    client: FlaskClient, issue_id: int, run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    set_timezone("Asia/Tokyo")
    dispatcher.request_send(issue_id)
    run_jobs()

    issue = db.session.get(Issue, issue_id)
    assert issue is not None and issue.started_at is not None
    tokyo = issue.started_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M")
    assert f"Started {tokyo} Asia/Tokyo" in page_of(client, issue_id)


def test_cancel_stops_the_send(
    client: FlaskClient, issue_id: int, run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    dispatcher.request_send(issue_id)

    page = press(client, issue_id, "cancel")
    run_jobs()

    assert "Cancelled." in page and "badge-cancelled" in page
    assert "Pause" not in page and "Cancel send" not in page
    assert status_of(issue_id) is IssueStatus.CANCELLED
    assert mailbox.messages == []


def test_an_action_the_status_no_longer_allows_is_a_message_not_an_error(
    client: FlaskClient, issue_id: int
) -> None:
    page = press(client, issue_id, "resume")  # a stale page: it is a draft

    assert "Not resumed: issue" in page and "is draft" in page


def test_retry_failed_is_offered_after_failures_and_resends_them(
    client: FlaskClient, issue_id: int, run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    mailbox.handler.refuse["grace@example.org"] = "452 4.2.2 mailbox full"
    client.application.config.update(MAX_ATTEMPTS=1)
    dispatcher.request_send(issue_id)
    run_jobs()
    page = page_of(client, issue_id)
    assert "Retry failed" in page
    assert "/admin/deliveries?issue=" in page
    mailbox.handler.refuse.clear()

    page = press(client, issue_id, "retry")
    run_jobs()

    assert "Retrying 1 failed delivery." in page
    assert status_of(issue_id) is IssueStatus.SENT
    assert len(mailbox.to("grace@example.org")) == 1
    assert "Retry failed" not in page_of(client, issue_id)


def test_actions_need_the_csrf_token(client: FlaskClient, issue_id: int) -> None:
    dispatcher.request_send(issue_id)
    for action in ("pause", "cancel", "resume", "retry", "unschedule", "schedule"):
        response = client.post(f"/admin/issues/{issue_id}/{action}", data={})
        assert response.status_code == 400, action
    assert status_of(issue_id) is IssueStatus.SENDING


def test_actions_need_a_login(app: Flask, issue_id: int) -> None:
    dispatcher.request_send(issue_id)
    anonymous = app.test_client()
    response = anonymous.post(f"/admin/issues/{issue_id}/pause", data={})
    assert response.status_code in (302, 400, 401)
    assert status_of(issue_id) is IssueStatus.SENDING


def test_progress_shows_rate_and_finish_while_sending(
    client: FlaskClient, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    data = client.get(f"/admin/issues/{issue_id}/progress").get_json()

    assert {key: data[key] for key in ("status", "total", "sent", "pending")} == {
        "status": "sending", "total": 2, "sent": 0, "pending": 2,
    }
    assert "rate" in data and "eta" in data and "seconds_left" in data
    page = page_of(client, issue_id)
    assert 'data-field="rate"' in page and "messages/s" in page


# --- the delivery log ---------------------------------------------------------------------


def test_the_log_answers_did_this_address_get_the_issue_and_what_the_relay_said(
    client: FlaskClient, issue_id: int, run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    mailbox.handler.refuse["grace@example.org"] = "550 5.1.1 no such user"
    dispatcher.request_send(issue_id)
    run_jobs()

    page = client.get(f"/admin/deliveries?email=ADA@example.org&issue={issue_id}")
    html = page.get_data(as_text=True).replace("<wbr>", "")  # where addresses may wrap

    assert page.status_code == 200
    assert "ada@example.org" in html and "grace@example.org" not in html
    assert "badge-sent" in html and "Ok: queued" in html
    message_ids = db.session.scalars(
        select(Delivery.message_id).where(Delivery.issue_id == issue_id)
    ).all()
    assert sum(1 for m in message_ids if m and f"<code>{m}</code>" in html) == 1

    failed = client.get(f"/admin/deliveries?issue={issue_id}&status=failed").get_data(
        as_text=True).replace("<wbr>", "")
    assert "grace@example.org" in failed and "550 5.1.1 no such user" in failed
    assert "ada@example.org" not in failed.split("<table", 1)[1]


def test_the_log_pages_by_keyset(client: FlaskClient, issue_id: int) -> None:
    from newsletter.delivery.control import log

    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    first = log.search(issue_id=issue_id, limit=1)
    assert first.next is not None

    html = client.get(f"/admin/deliveries?issue={issue_id}&after={first.next}").get_data(
        as_text=True
    ).replace("<wbr>", "")

    assert first.items[0].email not in html.split("<table", 1)[1]
    assert "First page" in html


def test_the_log_explains_bad_filters(client: FlaskClient) -> None:
    response = client.get("/admin/deliveries?issue=twelve&status=lost")

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Issue must be an issue number." in html
    assert "status must be one of" in html


def test_an_address_never_mailed_says_so(client: FlaskClient, issue_id: int) -> None:
    html = client.get("/admin/deliveries?email=nobody@example.org").get_data(as_text=True)
    assert "No delivery to nobody@example.org" in html


# --- settings -----------------------------------------------------------------------------


def test_the_settings_page_changes_the_editors_timezone(client: FlaskClient) -> None:
    page = client.get("/admin/profile").get_data(as_text=True)
    assert "Your timezone" in page

    response = client.post(
        "/admin/profile",
        data={"csrf_token": csrf_token_from(page), "timezone": "Asia/Kolkata"},
    )

    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.email == EMAIL)).one()
    assert user.timezone == "Asia/Kolkata"


def test_the_settings_page_refuses_an_unknown_timezone(client: FlaskClient) -> None:
    page = client.get("/admin/profile").get_data(as_text=True)

    response = client.post(
        "/admin/profile",
        data={"csrf_token": csrf_token_from(page), "timezone": "../../etc/passwd"},
    )

    assert response.status_code == 422
    assert "is not a timezone name" in response.get_data(as_text=True)
    user = db.session.scalars(select(User).where(User.email == EMAIL)).one()
    assert user.timezone == "UTC"
