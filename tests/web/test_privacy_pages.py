"""Privacy on the pages: blocklisted sign-ups answered neutrally, the API's refusals, consent
recorded per path, the reader's data download and erasure, the admin's blocklist page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from newsletter.audience import blocklist, erasure, subscriptions
from newsletter.audience.consent import form_consent
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
)
from newsletter.audience.privacy_models import BlockedDomain
from newsletter.audience.tokens import manage_url
from newsletter.auth import tokens as api_tokens
from newsletter.auth.services import create_user, find_user
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin, token_for
from tests.web.api_client import Api, assert_error

BASE = "https://news.example.org"


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def post_form(client: FlaskClient, path: str, data: dict[str, Any], **headers: str) -> TestResponse:
    token = csrf_token_from(text(client.get(path)))
    return client.post(path, data={**data, "csrf_token": token},
                       headers={"Referer": f"{BASE}{path}", **headers})  # fmt: skip


def count(model: Any) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def api(app: Flask, client: FlaskClient) -> Api:
    create_user("robot@example.org", "a long enough password 123")
    user = find_user("robot@example.org")
    assert user is not None
    return Api(client, api_tokens.create_token(user, name="website form").secret)


# Sign-up and the API.


def test_a_blocklisted_domain_signing_up_gets_the_neutral_answer_and_nothing_happens(
    client: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    make_list("news")
    blocklist.block_domain("spam.example")
    blocklist.block_address("troll@example.org")
    ok = post_form(client, "/subscribe", {"email": "new@example.org", "lists": ["news"]})
    for email in ("someone@spam.example", "troll@example.org"):
        refused = post_form(client, "/subscribe", {"email": email, "lists": ["news"]})
        assert refused.status_code == ok.status_code == 200
        assert "Check your inbox" in text(refused)
        assert text(refused).replace(email, "X") == text(ok).replace("new@example.org", "X")
    run_jobs()
    assert [m.recipients for m in mailbox.messages] == [["new@example.org"]]
    emails = set(db.session.scalars(select(Subscriber.email)))
    assert emails == {"new@example.org", "troll@example.org"}  # troll: the block itself
    assert count(Subscription) == 1


def test_the_api_refuses_a_blocked_or_erased_address_saying_why(app: Flask, api: Api) -> None:
    make_list("news")
    blocklist.block_domain("spam.example")
    refused = api.post("/subscribers", json={"email": "x@spam.example", "lists": ["news"]})
    assert "blocklisted domain" in assert_error(refused, 422, "email")
    erasure.erase(make_subscriber("gone@example.org"))
    again = api.post("/subscribers", json={"email": "Gone@example.org", "lists": ["news"]})
    assert "erased at the person's request" in assert_error(again, 422, "email")
    assert count(Subscription) == 0


# Consent per path.


def test_each_path_records_how_consent_was_given(app: Flask, client: FlaskClient, api: Api) -> None:
    make_list("news", optin=OptIn.SINGLE)
    app.config["CONSENT_IP"] = "truncated"
    post_form(client, "/subscribe?lists=news", {"email": "form@example.org", "lists": ["news"]},
              **{"User-Agent": "TestBrowser/1.0"})  # fmt: skip
    api.post("/subscribers", json={"email": "api@example.org", "lists": ["news"],
                                   "ip": "198.51.100.23"})  # fmt: skip
    admin = logged_in_admin(app)
    admin.post("/admin/subscribers/new", data={
        "email": "admin@example.org", "lists": ["news"], "confirmed": "y",
        "csrf_token": token_for(admin, "/admin/subscribers/new"),
    })  # fmt: skip
    db.session.expire_all()
    records = {
        s.subscriber.email: (s.consent_source, s.consent_detail, s.consent_page, s.consent_ip,
                             s.consent_user_agent)
        for s in db.session.scalars(select(Subscription))
    }  # fmt: skip
    assert records["form@example.org"] == (
        ConsentSource.FORM, "signup form", "/subscribe", "127.0.0.0/24", "TestBrowser/1.0"
    )
    assert records["api@example.org"] == (
        ConsentSource.API, "API token 'website form'", None, "198.51.100.0/24", None
    )
    assert records["admin@example.org"][:3] == (
        ConsentSource.ADMIN, "added by editor@example.org", None
    )


def test_an_embedded_form_records_the_page_it_was_on_without_the_query(
    client: FlaskClient,
) -> None:
    make_list("news", optin=OptIn.SINGLE)
    post_form(client, "/subscribe", {
        "email": "ada@example.org", "lists": ["news"], "page": "https://org.example/join?ref=x",
    })  # fmt: skip
    db.session.expire_all()
    [subscription] = db.session.scalars(select(Subscription))
    assert subscription.consent_page == "https://org.example/join"
    assert subscription.consent_ip is None and subscription.consent_user_agent is None  # off


# The reader's own page.


def reader(**attributes: Any) -> tuple[Subscriber, str]:
    news, board = make_list("news", name="Movement News"), make_list("board", public=False)
    kept = {"city": "London", "_pending_name": "x", **attributes}
    ada = make_subscriber("ada@example.org", lists=(news, board), name="Ada", attributes=kept)
    for s in ada.subscriptions:
        s.consent_detail = "signup form"
        s.consent_page = "/subscribe"
    issue = make_issue((make_statement(),), (news,), subject="November")
    db.session.add(Delivery(issue_id=issue.id, subscriber_id=ada.id, status=DeliveryStatus.SENT))
    db.session.commit()
    return ada, urlsplit(manage_url(ada.id, version=ada.token_version)).path


def test_the_preferences_page_offers_the_download_and_erasure(client: FlaskClient) -> None:
    _, path = reader()
    page = text(client.get(path))
    assert f'href="{path}/export.json"' in page
    assert re.search(rf'<form method="post" action="{re.escape(path)}/erase">', page)
    assert "Erase my data now" in page


def test_the_data_download_holds_everything_about_the_reader(client: FlaskClient) -> None:
    ada, path = reader()
    response = client.get(f"{path}/export.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    data = json.loads(text(response))
    assert data["subscriber"]["email"] == "ada@example.org"
    assert data["subscriber"]["name"] == "Ada"
    assert data["attributes"] == {"city": "London"}
    assert [s["list"] for s in data["subscriptions"]] == ["news", "board"]
    consent = data["subscriptions"][0]["consent"]
    assert consent["source"] == "admin" and consent["page"] == "/subscribe"
    assert consent["detail"] == "signup form" and consent["ip"] is None
    assert [(d["subject"], d["status"]) for d in data["deliveries"]] == [("November", "sent")]
    assert client.get("/manage/forged-token/export.json").status_code == 400


def test_erasing_from_the_page_needs_its_csrf_token_then_erases_once(
    client: FlaskClient,
) -> None:
    ada, path = reader()
    ada_id = ada.id
    forged = client.post(f"{path}/erase", headers={"Referer": f"{BASE}{path}"})
    assert forged.status_code == 400 and db.session.get(Subscriber, ada_id) is not None

    confirm = client.get(f"{path}/erase")
    assert confirm.status_code == 200 and "Erase my data now" in text(confirm)
    token = csrf_token_from(text(client.get(path)))
    done = client.post(f"{path}/erase", data={"csrf_token": token},
                       headers={"Referer": f"{BASE}{path}"})  # fmt: skip
    assert done.status_code == 200 and "Your data is erased" in text(done)
    again = client.post(f"{path}/erase", data={"csrf_token": token},
                        headers={"Referer": f"{BASE}{path}"})  # fmt: skip
    assert text(again) == text(done)  # a double click answers the same
    db.session.expire_all()
    assert db.session.get(Subscriber, ada_id) is None
    assert count(Subscription) == 0
    [delivery] = db.session.scalars(select(Delivery))
    assert delivery.subscriber_id is None
    assert client.get(path).status_code == 400  # the page is gone, like any dead link
    assert client.get(f"{path}/export.json").status_code == 400


# The admin's blocklist page and consent table.


def test_the_blocklist_page_adds_and_removes_domains_and_addresses(app: Flask) -> None:
    admin = logged_in_admin(app)
    page = "/admin/blocklist"
    added = admin.post(page, data={
        "domain-domain": "Spam.Example", "domain-reason": "list broker",
        "csrf_token": token_for(admin, page),
    })  # fmt: skip
    assert added.status_code == 302
    admin.post(page, data={"address-email": "troll@example.org", "address-reason": "abuse",
                           "csrf_token": token_for(admin, page)})  # fmt: skip
    shown = text(admin.get(page))
    assert "spam.example" in shown and "list broker" in shown
    assert "troll@example.org" in shown and "abuse" in shown
    bad = admin.post(page, data={"domain-domain": "not a domain",
                                 "csrf_token": token_for(admin, page)})  # fmt: skip
    assert bad.status_code == 422 and "is not a domain" in text(bad)

    [domain] = db.session.scalars(select(BlockedDomain))
    assert domain.created_by == "editor@example.org"
    troll = db.session.scalar(select(Subscriber).where(Subscriber.email == "troll@example.org"))
    assert troll is not None and troll.status is SubscriberStatus.BLOCKLISTED
    troll_id = troll.id
    html = admin.get(page).get_data(as_text=True)
    for action in (f"/admin/blocklist/domains/{domain.id}/remove",
                   f"/admin/blocklist/addresses/{troll_id}/remove"):  # fmt: skip
        form = html.split(f'action="{action}"', 1)[1].split("</form>", 1)[0]
        assert 'name="csrf_token"' in form and ">Remove</button>" in form  # the row's button
        assert admin.post(action, data={"csrf_token": token_for(admin, page)}).status_code == 302
    assert count(BlockedDomain) == 0 and count(Subscriber) == 0


def test_the_consent_table_shows_each_subscription_and_the_ip_only_when_kept(
    app: Flask,
) -> None:
    make_list("news", optin=OptIn.SINGLE)
    app.config["CONSENT_IP"] = "full"
    ada = subscriptions.subscribe(
        "ada@example.org", list_slugs=["news"], source=ConsentSource.FORM,
        consent=form_consent("/subscribe", ip="192.0.2.9", user_agent="Lynx/2.9"),
    )
    with app.test_request_context():
        html = render_template("admin/_subscriber_consent.html", subscriber=ada)
    assert "form" in html and "signup form" in html and "/subscribe" in html
    assert "192.0.2.9" in html and "Lynx/2.9" in html
    bo = make_subscriber("bo@example.org", lists=(ada.subscriptions[0].list,))  # no IP kept
    with app.test_request_context():
        html = render_template("admin/_subscriber_consent.html", subscriber=bo)
    assert "<th>IP address</th>" not in html and "No IP address is kept" in html


def test_ticking_a_list_on_the_preferences_page_records_that_page_without_its_token(
    client: FlaskClient,
) -> None:
    ada, path = reader()
    make_list("events", name="Events")
    post_form(client, path, {"name": "Ada", "lists": ["news", "events"]})
    db.session.expire_all()
    events = next(s for s in db.session.get(Subscriber, ada.id).subscriptions
                  if s.list.slug == "events")  # fmt: skip
    assert events.consent_source is ConsentSource.FORM
    assert events.consent_detail == "preferences page"
    assert events.consent_page == "/manage/[redacted]"


def test_the_admin_add_form_says_why_an_address_is_refused(app: Flask) -> None:
    make_list("news")
    blocklist.block_domain("spam.example")
    admin = logged_in_admin(app)
    refused = admin.post("/admin/subscribers/new", data={
        "email": "x@spam.example", "lists": ["news"],
        "csrf_token": token_for(admin, "/admin/subscribers/new"),
    })  # fmt: skip
    assert refused.status_code == 422
    assert "blocklisted domain" in text(refused)
