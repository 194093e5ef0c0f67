"""The public pages as a reader meets them: signup, confirm, unsubscribe, preferences, archive.

Forms are posted the way a browser posts them from our own pages: with the CSRF token read
from the page and a same-origin Referer (Flask-WTF checks it on HTTPS).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from newsletter.audience import subscriptions
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.tokens import confirm_url, make_token, manage_url, unsubscribe_url
from newsletter.content.models import IssueStatus
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer

BASE = "https://news.example.org"
ATOM = "{http://www.w3.org/2005/Atom}"


def page(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def words(response: TestResponse) -> str:
    """The page's text, tags dropped and spaces squeezed, for reading like a person."""
    return " ".join(re.sub(r"<[^>]+>", " ", page(response)).split())


def path_of(url: str) -> str:
    return urlsplit(url).path


def submit(
    client: FlaskClient, path: str, data: dict[str, Any], *, csrf: bool = True
) -> TestResponse:
    """Open ``path``, then post its form with ``data`` (and its CSRF token) like a browser."""
    if csrf:
        data = {**data, "csrf_token": csrf_token_from(page(client.get(path)))}
    return client.post(path, data=data, headers={"Referer": f"{BASE}{path}"})


def subscription(email: str, slug: str) -> Subscription:
    db.session.expire_all()
    subscriber = db.session.query(Subscriber).filter_by(email=email).one()
    return next(s for s in subscriber.subscriptions if s.list.slug == slug)


def status(email: str, slug: str) -> SubscriptionStatus:
    return subscription(email, slug).status


def token_made_days_ago(monkeypatch: pytest.MonkeyPatch, days: int, purpose: str,
                        *ids: int) -> str:
    real = time.time()
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real - days * 24 * 3600)
        return make_token(purpose, *ids)


@pytest.fixture
def news(app: Flask) -> Any:
    return make_list("news", name="Movement News", description="Statements, weekly.")


# Signup.


def test_the_home_page_leads_to_the_signup_form(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert path_of(response.headers["Location"]) == "/subscribe"


def test_the_signup_form_offers_the_public_lists_by_slug(client: FlaskClient, news: Any) -> None:
    make_list("daily", name="Daily Digest")
    make_list("board", name="Board Only", public=False)
    html = page(client.get("/subscribe"))
    assert re.search(r'<input[^>]+name="email"', html)
    assert re.search(r'<input[^>]+name="name"', html)
    assert csrf_token_from(html)
    assert sorted(re.findall(r'name="lists" value="([^"]+)"', html)) == ["daily", "news"]
    assert "Board Only" not in html
    assert "checked" not in html  # two lists: the reader chooses


def test_a_single_public_list_comes_pre_checked(client: FlaskClient, news: Any) -> None:
    assert re.search(r'value="news" checked', page(client.get("/subscribe")))


def test_a_link_can_pre_check_a_list(client: FlaskClient, news: Any) -> None:
    make_list("daily")
    html = page(client.get("/subscribe?lists=daily&lists=nope"))
    assert re.search(r'value="daily" checked', html)
    assert not re.search(r'value="news" checked', html)


def test_no_public_list_says_so(client: FlaskClient) -> None:
    response = client.get("/subscribe")
    assert response.status_code == 200
    assert "no lists to subscribe to yet" in words(response)


def test_posting_the_form_subscribes_with_consent_on_record(
    client: FlaskClient, news: Any
) -> None:
    response = submit(
        client, "/subscribe", {"email": "ada@example.org", "name": "Ada", "lists": ["news"]}
    )
    assert response.status_code == 200
    assert "Check your inbox" in page(response)
    record = subscription("ada@example.org", "news")
    assert record.status is SubscriptionStatus.UNCONFIRMED
    assert record.consent_source is ConsentSource.FORM
    assert record.consent_ip is None  # NEWSLETTER_CONSENT_IP is off unless set
    assert record.subscriber.name == ""  # anyone may type a name: it waits for the confirmation


def test_the_answer_is_the_same_whatever_we_know_about_the_address(
    app: Flask, client: FlaskClient, news: Any
) -> None:
    form = {"email": "ada@example.org", "name": "", "lists": ["news"]}
    unknown = submit(client, "/subscribe", form)
    pending = submit(client, "/subscribe", form)  # now known, unconfirmed
    subscription("ada@example.org", "news").status = SubscriptionStatus.CONFIRMED
    db.session.commit()
    confirmed = submit(client, "/subscribe", form)
    ada = db.session.query(Subscriber).filter_by(email="ada@example.org").one()
    ada.status = SubscriberStatus.BLOCKLISTED
    db.session.commit()
    blocklisted = submit(client, "/subscribe", form)
    answers = {(r.status_code, page(r)) for r in (unknown, pending, confirmed, blocklisted)}
    assert len(answers) == 1


def test_a_stranger_cannot_undo_an_unsubscribe_from_the_signup_form(
    client: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    open_list = make_list("open-too", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.org", name="Ada", lists=(open_list,))
    subscriptions.unsubscribe(ada.id, None)  # "Unsubscribe from all" on her preferences page

    # Anyone may post the public form, with any address and any name.
    form = {"name": "Mallory", "lists": ["open-too"]}
    known = submit(client, "/subscribe", {"email": "ada@example.org", **form})
    fresh = submit(client, "/subscribe", {"email": "bob@example.org", **form})
    assert known.status_code == fresh.status_code == 200
    assert page(known).replace("ada@", "bob@") == page(fresh)  # the same neutral answer
    assert status("ada@example.org", "open-too") is not SubscriptionStatus.CONFIRMED
    assert subscription("ada@example.org", "open-too").subscriber.name == "Ada"

    # Coming back takes Ada's own confirmation, from the mail only she receives.
    run_jobs()
    [mail] = mailbox.to("ada@example.org")
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(rf"{re.escape(BASE)}(/confirm/\S+)", text)
    assert link, text
    assert submit(client, link.group(1), {}).status_code == 200
    assert status("ada@example.org", "open-too") is SubscriptionStatus.CONFIRMED


def test_signing_up_again_and_again_mails_the_link_once_per_cool_down(
    client: FlaskClient, news: Any, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    form = {"email": "ada@example.org", "name": "", "lists": ["news"]}
    answers = {page(submit(client, "/subscribe", form)) for _ in range(3)}
    assert len(answers) == 1  # the same page each time: nothing says a mail was held back
    run_jobs()
    assert len(mailbox.to("ada@example.org")) == 1


def test_a_post_without_csrf_token_is_refused(client: FlaskClient, news: Any) -> None:
    response = submit(
        client, "/subscribe", {"email": "ada@example.org", "lists": ["news"]}, csrf=False
    )
    assert response.status_code == 400
    assert db.session.query(Subscriber).count() == 0


def test_a_post_from_another_site_is_refused_but_a_missing_referer_is_fine(
    client: FlaskClient, news: Any
) -> None:
    token = csrf_token_from(page(client.get("/subscribe")))
    form = {"email": "ada@example.org", "lists": ["news"], "csrf_token": token}
    foreign = client.post("/subscribe", data=form, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 400
    assert db.session.query(Subscriber).count() == 0
    # Privacy tools strip the Referer; the token alone still lets the reader subscribe.
    assert client.post("/subscribe", data=form).status_code == 200


def test_an_internationalised_address_is_accepted(client: FlaskClient, news: Any) -> None:
    response = submit(client, "/subscribe", {"email": "leser@bücher.example", "lists": ["news"]})
    assert response.status_code == 200
    assert status("leser@bücher.example", "news") is SubscriptionStatus.UNCONFIRMED


@pytest.mark.parametrize("address", ["ada", "ada@example", "ada@@example.org", ""])
def test_a_bad_address_shows_the_form_again_with_the_error(
    client: FlaskClient, news: Any, address: str
) -> None:
    response = submit(client, "/subscribe", {"email": address, "name": "Ada", "lists": ["news"]})
    assert response.status_code == 400
    html = page(response)
    assert 'id="email-error"' in html
    assert 'aria-invalid="true"' in html
    assert 'value="Ada"' in html  # what they typed is kept
    assert csrf_token_from(html)
    assert db.session.query(Subscriber).count() == 0


def test_every_mistake_shows_at_once(client: FlaskClient, news: Any) -> None:
    response = submit(client, "/subscribe", {"email": "ada@"})
    assert response.status_code == 400
    assert 'id="email-error"' in page(response)
    assert "Choose at least one list" in page(response)


def test_choosing_no_list_or_a_private_one_is_an_error(client: FlaskClient, news: Any) -> None:
    make_list("board", public=False)
    none = submit(client, "/subscribe", {"email": "ada@example.org"})
    assert none.status_code == 400 and "Choose at least one list" in page(none)
    private = submit(client, "/subscribe", {"email": "ada@example.org", "lists": ["board"]})
    assert private.status_code == 400 and "Choose from the lists shown" in page(private)
    assert db.session.query(Subscriber).count() == 0


@pytest.fixture
def limited_client(app_config: dict[str, Any], request: pytest.FixtureRequest) -> FlaskClient:
    app_config.update(
        RATELIMIT_ENABLED=True, RATELIMIT_SUBSCRIBE="2 per minute",
        RATELIMIT_STORAGE_URI="memory://",
    )
    app: Flask = request.getfixturevalue("app")
    return app.test_client()


def test_posting_the_form_is_rate_limited(limited_client: FlaskClient) -> None:
    make_list("news")
    form = {"email": "ada@example.org", "lists": ["news"]}
    assert submit(limited_client, "/subscribe", form).status_code == 200
    assert submit(limited_client, "/subscribe", form).status_code == 200
    refused = submit(limited_client, "/subscribe", form)
    assert refused.status_code == 429
    assert "Too many attempts" in page(refused)
    assert limited_client.get("/subscribe").status_code == 200  # reading the form is not limited


# Confirmation.


def test_the_confirmation_mail_arrives_and_only_the_button_confirms(
    client: FlaskClient, news: Any, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    submit(client, "/subscribe", {"email": "ada@example.org", "name": "Ada", "lists": ["news"]})
    run_jobs()
    [mail] = mailbox.to("ada@example.org")
    message = mail.message
    assert "Movement News" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(rf"{re.escape(BASE)}/confirm/\S+", text)
    assert link, text

    shown = client.get(path_of(link.group(0)))
    assert shown.status_code == 200
    assert "Confirm my subscription" in page(shown)
    assert status("ada@example.org", "news") is SubscriptionStatus.UNCONFIRMED  # GET: nothing

    confirmed = submit(client, path_of(link.group(0)), {})
    assert confirmed.status_code == 200
    assert "You're subscribed" in page(confirmed)
    assert status("ada@example.org", "news") is SubscriptionStatus.CONFIRMED
    assert subscription("ada@example.org", "news").subscriber.name == "Ada"


def test_confirming_needs_the_csrf_token(client: FlaskClient, news: Any) -> None:
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.UNCONFIRMED)
    response = submit(client, path_of(confirm_url(ada.id, news.id)), {}, csrf=False)
    assert response.status_code == 400
    assert status("ada@example.org", "news") is SubscriptionStatus.UNCONFIRMED


def test_a_confirm_link_for_another_list_or_purpose_is_refused(
    client: FlaskClient, news: Any
) -> None:
    other = make_list("other")
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.UNCONFIRMED)
    for path in (
        path_of(confirm_url(ada.id, other.id)),  # a list they never asked for
        f"/confirm/{make_token('unsubscribe', ada.id, news.id)}",  # an unsubscribe token
        "/confirm/not-a-token",
    ):
        response = client.get(path)
        assert response.status_code == 400, path
        assert "This link doesn't work" in words(response).replace("&#39;", "'")
        assert 'href="/subscribe"' in page(response)
        assert client.post(path, data={}).status_code == 400
    assert status("ada@example.org", "news") is SubscriptionStatus.UNCONFIRMED


def test_an_expired_confirm_link_explains_and_offers_to_subscribe_again(
    client: FlaskClient, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.UNCONFIRMED)
    token = token_made_days_ago(monkeypatch, 8, "confirm", ada.id, news.id)
    response = client.get(f"/confirm/{token}")
    assert response.status_code == 400
    assert "expired" in page(response)
    assert 'href="/subscribe"' in page(response)


# Unsubscribe.


def test_an_unsubscribe_link_shows_a_button_and_the_button_unsubscribes(
    client: FlaskClient, news: Any
) -> None:
    ada = make_subscriber("ada@example.org", lists=(news,))
    path = path_of(unsubscribe_url(ada.id, news.id, version=ada.token_version))
    shown = client.get(path)
    assert shown.status_code == 200
    assert "Movement News" in page(shown)
    assert status("ada@example.org", "news") is SubscriptionStatus.CONFIRMED

    refused = submit(client, path, {}, csrf=False)
    assert refused.status_code == 400
    assert status("ada@example.org", "news") is SubscriptionStatus.CONFIRMED

    done = submit(client, path, {})
    assert done.status_code == 200
    assert "You're unsubscribed" in page(done)
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED
    assert subscription("ada@example.org", "news").unsubscribed_at is not None


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_unsubscribe_needs_no_session_and_no_csrf(
    app: Flask, news: Any, multipart: bool
) -> None:
    other = make_list("other")
    ada = make_subscriber("ada@example.org", lists=(news, other))
    mail_provider = app.test_client(use_cookies=False)
    path = path_of(unsubscribe_url(ada.id, news.id, version=ada.token_version))
    if multipart:
        response = mail_provider.post(path, data={"List-Unsubscribe": "One-Click"},
                                      content_type="multipart/form-data")
    else:
        response = mail_provider.post(path, data="List-Unsubscribe=One-Click",
                                      content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED
    assert status("ada@example.org", "other") is SubscriptionStatus.CONFIRMED


def test_a_forged_one_click_post_changes_nothing(app: Flask, news: Any) -> None:
    make_subscriber("ada@example.org", lists=(news,))
    response = app.test_client().post(
        "/unsubscribe/forged", data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert status("ada@example.org", "news") is SubscriptionStatus.CONFIRMED


def test_an_unsubscribe_link_without_a_list_leaves_every_list(app: Flask, news: Any) -> None:
    other = make_list("other")
    ada = make_subscriber("ada@example.org", lists=(news, other))
    response = app.test_client().post(
        path_of(unsubscribe_url(ada.id, None, version=ada.token_version)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED
    assert status("ada@example.org", "other") is SubscriptionStatus.UNSUBSCRIBED


# Preferences.


def test_the_preferences_page_changes_name_and_lists(client: FlaskClient, news: Any) -> None:
    make_list("extra", name="Extra Edition")
    make_list("secret", name="Secret Board", public=False)
    ada = make_subscriber("ada@example.org", name="Ada", lists=(news,))
    path = path_of(manage_url(ada.id, version=ada.token_version))

    html = page(client.get(path))
    assert 'value="Ada"' in html
    assert re.search(r'value="news"\s+checked', html)
    assert re.search(r'value="extra">', html)
    assert "Secret Board" not in html

    saved = submit(client, path, {"name": "Ada King", "lists": ["extra"]})
    assert saved.status_code == 302
    assert "Your preferences are saved" in page(client.get(path))
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED
    assert status("ada@example.org", "extra") is SubscriptionStatus.CONFIRMED
    assert subscription("ada@example.org", "extra").subscriber.name == "Ada King"


def test_the_preferences_form_without_a_name_keeps_the_name(
    client: FlaskClient, news: Any
) -> None:
    ada = make_subscriber("ada@example.org", name="Ada", lists=(news,))
    path = path_of(manage_url(ada.id, version=ada.token_version))
    assert submit(client, path, {"lists": ["news"]}).status_code == 302
    assert subscription("ada@example.org", "news").subscriber.name == "Ada"


def test_the_preferences_page_can_leave_every_list(client: FlaskClient, news: Any) -> None:
    extra = make_list("extra")
    ada = make_subscriber("ada@example.org", lists=(news, extra))
    path = path_of(manage_url(ada.id, version=ada.token_version))
    assert submit(client, path, {"action": "unsubscribe-all"}).status_code == 302
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED
    assert status("ada@example.org", "extra") is SubscriptionStatus.UNSUBSCRIBED


def test_the_preferences_page_needs_csrf_and_a_good_token(
    client: FlaskClient, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = make_subscriber("ada@example.org", lists=(news,))
    path = path_of(manage_url(ada.id, version=ada.token_version))
    assert submit(client, path, {"action": "unsubscribe-all"}, csrf=False).status_code == 400
    assert status("ada@example.org", "news") is SubscriptionStatus.CONFIRMED
    assert client.get(f"/manage/{make_token('unsubscribe', ada.id, news.id)}").status_code == 400
    monkeypatch.setitem(client.application.config, "MANAGE_MAX_AGE", 3600)
    old = token_made_days_ago(monkeypatch, 1, "manage", ada.id)
    assert client.get(f"/manage/{old}").status_code == 400


def test_the_preferences_page_shows_private_lists_only_to_their_members(
    client: FlaskClient, news: Any
) -> None:
    board = make_list("board", name="Board Members", public=False)
    make_list("staff", name="Staff Room", public=False)
    ada = make_subscriber("ada@example.org", lists=(news, board))
    bob = make_subscriber("bob@example.org", lists=(news,))
    ada_page = page(client.get(path_of(manage_url(ada.id, version=0))))
    bob_page = page(client.get(path_of(manage_url(bob.id, version=0))))
    assert "Board Members" in ada_page and "Board Members" not in bob_page
    assert "Staff Room" not in ada_page and "Staff Room" not in bob_page
    # Bob cannot join a private list by posting its slug either.
    refused = submit(client, path_of(manage_url(bob.id, version=0)), {"lists": ["news", "board"]})
    assert refused.status_code == 400
    db.session.expire_all()
    assert [s.list.slug for s in bob.subscriptions] == ["news"]
    # Once Ada leaves it, the private list is gone from her page too.
    submit(client, path_of(manage_url(ada.id, version=0)), {"lists": ["news"]})
    assert "Board Members" not in page(client.get(path_of(manage_url(ada.id, version=0))))


def test_revoked_links_open_nothing_and_unsubscribe_nobody(
    app: Flask, client: FlaskClient, news: Any
) -> None:
    ada = make_subscriber("ada@example.org", lists=(news,))
    manage = path_of(manage_url(ada.id, version=ada.token_version))
    unsubscribe = path_of(unsubscribe_url(ada.id, news.id, version=ada.token_version))
    subscriptions.revoke_links(ada.id)

    for path in (manage, unsubscribe):
        response = client.get(path)
        assert response.status_code == 400
        assert "no longer valid" in page(response)
    one_click = app.test_client(use_cookies=False).post(
        unsubscribe, data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 400
    assert status("ada@example.org", "news") is SubscriptionStatus.CONFIRMED
    db.session.expire_all()
    assert client.get(path_of(manage_url(ada.id, version=ada.token_version))).status_code == 200


def test_manage_links_expire_after_30_days_unsubscribe_links_after_more_than_a_year(
    app: Flask, client: FlaskClient, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = make_subscriber("ada@example.org", lists=(news,))
    assert client.get(f"/manage/{token_made_days_ago(monkeypatch, 29, 'manage', ada.id)}"
                      ).status_code == 200
    expired = client.get(f"/manage/{token_made_days_ago(monkeypatch, 31, 'manage', ada.id)}")
    assert expired.status_code == 400 and "too old" in page(expired)
    # One-click unsubscribe from mail a year old still works.
    old = token_made_days_ago(monkeypatch, 366, "unsubscribe", ada.id, news.id)
    response = app.test_client(use_cookies=False).post(
        f"/unsubscribe/{old}", data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED


def test_an_old_unsubscribe_link_does_not_open_the_preferences_page(
    client: FlaskClient, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsubscribe link outlives a manage link; it must not hand out fresh ones."""
    ada = make_subscriber("ada@example.org", lists=(news,))
    recent = token_made_days_ago(monkeypatch, 2, "unsubscribe", ada.id, news.id)
    old = token_made_days_ago(monkeypatch, 40, "unsubscribe", ada.id, news.id)
    assert "/manage/" in page(client.get(f"/unsubscribe/{recent}"))
    shown = client.get(f"/unsubscribe/{old}")
    assert shown.status_code == 200 and "/manage/" not in page(shown)
    done = submit(client, f"/unsubscribe/{old}", {})
    assert done.status_code == 200 and "/manage/" not in page(done)
    assert status("ada@example.org", "news") is SubscriptionStatus.UNSUBSCRIBED


def test_the_links_in_an_issue_carry_the_reader_s_token_version(
    client: FlaskClient, news: Any, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    ada_id = make_subscriber("ada@example.org", lists=(news,), token_version=4).id
    issue = make_issue((make_statement(),), (news,))
    dispatcher.request_send(issue.id)
    run_jobs()
    [mail] = mailbox.to("ada@example.org")
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    manage = re.search(rf"{re.escape(BASE)}(/manage/\S+)", text)
    unsubscribe = re.search(r"<https://news\.example\.org(/unsubscribe/[^>]+)>",
                            mail.message["List-Unsubscribe"])
    assert manage and unsubscribe, text
    assert client.get(manage.group(1)).status_code == 200
    assert client.get(unsubscribe.group(1)).status_code == 200
    subscriptions.revoke_links(ada_id)
    assert client.get(manage.group(1)).status_code == 400
    assert client.get(unsubscribe.group(1)).status_code == 400


# Archive.


def sent_issue(
    subject: str, finished: datetime, lists: tuple[Any, ...] | None = None, **fields: Any
) -> Any:
    """A sent issue; by default to a public list of its own."""
    if lists is None:
        lists = (make_list(name=f"Readers of {subject}"),)
    return make_issue(
        (make_statement(title=f"Statement for {subject}"),), lists,
        subject=subject, status=IssueStatus.SENT, finished_at=finished,
        rendered_html=f"<html><body><h1>{subject}</h1><p>Hello %%NL-NAME%%</p></body></html>",
        **fields,
    )


@pytest.fixture
def issues(app: Flask) -> dict[str, Any]:
    return {
        "old": sent_issue("Autumn statement", datetime(2024, 10, 1, tzinfo=UTC)),
        "new": sent_issue("Winter <news> & more", datetime(2024, 12, 1, tzinfo=UTC),
                          preheader="What happened"),
        "draft": make_issue((make_statement(),), (), subject="Unpublished draft"),
    }


def test_the_archive_lists_sent_issues_newest_first_and_links_its_feed(
    client: FlaskClient, issues: dict[str, Any]
) -> None:
    html = page(client.get("/archive"))
    assert html.index("Winter &lt;news&gt; &amp; more") < html.index("Autumn statement")
    assert "Unpublished draft" not in html
    assert f'href="/archive/{issues["new"].id}"' in html
    assert re.search(
        r'<link rel="alternate" type="application/atom\+xml"[^>]*href="https://news\.example\.org'
        r'/archive\.atom"', html.split("</head>")[0]
    )


def test_an_archived_issue_is_a_page_of_the_site(
    client: FlaskClient, issues: dict[str, Any]
) -> None:
    response = client.get(f"/archive/{issues['old'].id}")
    assert response.status_code == 200
    assert "<h1>Autumn statement</h1>" in page(response)
    assert "Statement for Autumn statement" in page(response)
    assert "%%NL-" not in page(response)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert client.get(f"/archive/{issues['draft'].id}").status_code == 404
    assert client.get("/archive/9999").status_code == 404


def test_the_atom_feed_is_valid_and_lists_the_sent_issues(
    client: FlaskClient, issues: dict[str, Any]
) -> None:
    response = client.get("/archive.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.get_data())
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "Winter <news> & more", "Autumn statement"
    ]
    newest = entries[0]
    assert newest.findtext(f"{ATOM}id") == f"{BASE}/archive/{issues['new'].id}"
    assert newest.find(f"{ATOM}link").get("href") == f"{BASE}/archive/{issues['new'].id}"
    assert newest.findtext(f"{ATOM}updated") == "2024-12-01T00:00:00Z"
    assert newest.findtext(f"{ATOM}summary") == "What happened"
    assert feed.findtext(f"{ATOM}updated") == "2024-12-01T00:00:00Z"


@pytest.fixture
def private_issue(app: Flask, issues: dict[str, Any]) -> Any:
    """A sent issue meant only for the members of a private list."""
    board = make_list("board", name="Board", public=False)
    return sent_issue("Board minutes", datetime(2025, 1, 1, tzinfo=UTC), lists=(board,))


def test_an_issue_sent_only_to_private_lists_stays_out_of_the_archive(
    client: FlaskClient, private_issue: Any
) -> None:
    assert "Board minutes" not in page(client.get("/archive"))
    hidden = client.get(f"/archive/{private_issue.id}")
    unknown = client.get("/archive/9999")
    assert hidden.status_code == unknown.status_code == 404
    assert page(hidden) == page(unknown)  # nothing tells that the issue exists
    feed = ET.fromstring(client.get("/archive.atom").get_data())
    titles = [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]
    assert titles == ["Winter <news> & more", "Autumn statement"]


def test_an_issue_sent_to_a_private_and_a_public_list_is_in_the_archive(
    client: FlaskClient, issues: dict[str, Any]
) -> None:
    both = sent_issue(
        "For everyone", datetime(2025, 2, 1, tzinfo=UTC),
        lists=(make_list("staff", public=False), make_list("open")),
    )
    assert "For everyone" in page(client.get("/archive"))
    assert client.get(f"/archive/{both.id}").status_code == 200
    assert "For everyone" in page(client.get("/archive.atom"))


def test_an_issue_sent_to_no_list_stays_out_of_the_archive(
    client: FlaskClient, issues: dict[str, Any]
) -> None:
    listless = sent_issue("Test send", datetime(2025, 3, 1, tzinfo=UTC), lists=())
    assert "Test send" not in page(client.get("/archive"))
    assert client.get(f"/archive/{listless.id}").status_code == 404
    assert "Test send" not in page(client.get("/archive.atom"))


def test_pages_read_well_on_a_phone(client: FlaskClient, news: Any) -> None:
    html = page(client.get("/subscribe"))
    assert 'name="viewport" content="width=device-width' in html
    assert "/static/style.css" in html
    assert "https://" not in html.split("<body")[0].replace(BASE, "")  # nothing from elsewhere

