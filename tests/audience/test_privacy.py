"""The gate, the blocklist, erasure and consent records, at the service level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from newsletter.audience import blocklist, erasure, subscriptions
from newsletter.audience.consent import Consent, form_consent, import_consent, page_of
from newsletter.audience.gate import refused
from newsletter.audience.models import (
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.privacy_models import ErasedAddress, address_hash
from newsletter.config import configure
from newsletter.content.models import Issue
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.transactional import TransactionalMessage, TransactionalStatus
from newsletter.errors import AddressRefused, ConfigError, Conflict, ValidationError
from newsletter.extensions import db
from newsletter.mail.transport import MaildirTransport
from tests.factories import make_issue, make_list, make_statement, make_subscriber


def subscribe(email: str, source: ConsentSource = ConsentSource.API, **options: Any) -> Subscriber:
    return subscriptions.subscribe(email, list_slugs=["news"], source=source, **options)


# The gate.


def test_the_gate_names_each_reason_and_passes_the_rest(app: Flask) -> None:
    make_list("news")
    blocklist.block_domain("Spam.Example", reason="a list broker", by="admin@example.org")
    blocklist.block_address("troll@example.org", reason="abuse")
    erasure.erase(make_subscriber("gone@example.org"))

    asked = ["Troll@Example.org", "anyone@spam.example", "gone@example.org", "ok@example.org"]
    for via in ("import", "api", "admin"):
        assert refused(asked, via=via) == {
            "troll@example.org": "blocklisted address",
            "anyone@spam.example": "blocklisted domain",
            "gone@example.org": "erased at the person's request",
        }
    # Signing up again through the form is the person's own, new consent.
    assert refused(asked, via="form") == {
        "troll@example.org": "blocklisted address",
        "anyone@spam.example": "blocklisted domain",
    }
    assert refused([], via="api") == {}
    with pytest.raises(ValueError):
        refused(asked, via="carrier pigeon")


def test_the_gate_answers_a_chunk_of_five_thousand_in_a_few_queries(app: Flask) -> None:
    from sqlalchemy import event

    blocklist.block_domain("spam.example")
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        addresses = [f"reader{n}@example.org" for n in range(5000)] + ["x@spam.example"]
        assert refused(addresses, via="import") == {"x@spam.example": "blocklisted domain"}
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) <= 6  # a probe and at most one look-up per kind of refusal


def test_api_and_admin_subscribe_refuse_with_the_reason_and_store_nothing(app: Flask) -> None:
    make_list("news")
    blocklist.block_domain("spam.example")
    for source in (ConsentSource.API, ConsentSource.ADMIN, ConsentSource.FORM):
        with pytest.raises(AddressRefused) as error:
            subscribe("someone@SPAM.example", source)
        assert error.value.reason == "blocklisted domain"
        assert error.value.field == "email"
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


# The blocklist.


def test_an_address_blocked_before_it_is_known_is_refused_and_unblocking_forgets_it(
    app: Flask,
) -> None:
    make_list("news")
    row = blocklist.block_address("Troll@example.org", reason="abuse", by="admin@example.org")
    assert row.status is SubscriberStatus.BLOCKLISTED and row.subscriptions == []
    [listed] = blocklist.blocked_addresses()
    assert (listed.email, listed.reason, listed.by, listed.placeholder) == (
        "Troll@example.org", "abuse", "admin@example.org", True,
    )
    with pytest.raises(AddressRefused):
        subscribe("troll@example.org")
    blocklist.unblock_address(row.id)
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert subscribe("troll@example.org").status is SubscriberStatus.ACTIVE


def test_a_known_subscriber_blocked_and_unblocked_keeps_their_subscriptions(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    blocklist.block_address("ada@example.org", reason="asked by phone")
    assert ada.status is SubscriberStatus.BLOCKLISTED
    assert subscriptions.visible_attributes(ada.attributes) == {}  # the record is hidden
    blocklist.unblock_address(ada.id)
    assert ada.status is SubscriberStatus.ACTIVE
    assert [s.status for s in ada.subscriptions] == [SubscriptionStatus.CONFIRMED]
    assert blocklist.BLOCKLIST_KEY not in ada.attributes


@pytest.mark.parametrize("domain", ["", "a@b.example", "not a domain", "localhost"])
def test_a_blocked_domain_must_be_a_domain(app: Flask, domain: str) -> None:
    with pytest.raises(ValidationError) as error:
        blocklist.block_domain(domain)
    assert error.value.field == "domain"


def test_domains_are_kept_normalised_and_once(app: Flask) -> None:
    assert blocklist.block_domain(" @Bücher.Example. ").domain == "bücher.example"
    assert refused(["leser@bücher.example"], via="api") == {
        "leser@bücher.example": "blocklisted domain"
    }
    with pytest.raises(Conflict):
        blocklist.block_domain("BÜCHER.example")


# Erasure.


def test_erasure_deletes_the_person_and_keeps_only_a_keyed_hash(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("Ada@Example.org", lists=(news,), attributes={"city": "London"})
    issue = make_issue((make_statement(),), (news,))
    sent = Delivery(issue_id=issue.id, subscriber_id=ada.id, status=DeliveryStatus.SENT,
                    last_reply="250 ok, queued for <ada@example.org>")  # fmt: skip
    db.session.add(sent)
    db.session.add(TransactionalMessage(
        status=TransactionalStatus.SENT, to_address="ada@example.org", subject="Confirm",
        message_id="x@example.org",
    ))  # fmt: skip
    db.session.commit()
    ada_id, issue_id = ada.id, issue.id

    erasure.erase(ada)

    db.session.expire_all()
    assert db.session.get(Subscriber, ada_id) is None
    assert db.session.scalars(select(Subscription)).all() == []
    assert db.session.scalars(select(TransactionalMessage)).all() == []
    [kept] = db.session.scalars(select(Delivery).where(Delivery.issue_id == issue_id)).all()
    assert kept.subscriber_id is None and kept.status is DeliveryStatus.SENT  # counts hold
    assert "ada@example.org" not in (kept.last_reply or "").lower()
    [hashed] = db.session.scalars(select(ErasedAddress)).all()
    assert hashed.address_hash == address_hash("ada@example.org")
    assert "ada" not in hashed.address_hash
    assert db.session.get(Issue, issue_id) is not None


def test_erasure_takes_the_persons_mail_out_of_the_outbox(app: Flask) -> None:
    outbox = app.config["OUTBOX_PATH"]
    app.config["SMTP_URL"] = None  # the embedded default: the Maildir outbox
    transport = MaildirTransport(outbox)
    for recipient in ("Ada@Example.org", "grace@example.org", "ada@example.org.evil"):
        transport.send("news@example.org", recipient, b"Subject: Hello\r\n\r\nHi\r\n")
    ada = make_subscriber("ada@example.org", lists=(make_list("news"),))

    erasure.erase(ada)

    left = [path.read_bytes() for path in Path(outbox, "new").iterdir()]
    assert sorted(message.split(b"\r\n")[1] for message in left) == [
        b"Delivered-To: ada@example.org.evil", b"Delivered-To: grace@example.org"
    ]


def test_an_erased_address_comes_back_only_through_the_form(app: Flask) -> None:
    make_list("news", optin=subscriptions.OptIn.SINGLE)
    erasure.erase(subscribe("ada@example.org"))
    for source in (ConsentSource.API, ConsentSource.IMPORT, ConsentSource.ADMIN):
        with pytest.raises(AddressRefused) as error:
            subscribe("ADA@example.org", source)
        assert error.value.reason == "erased at the person's request"
        assert "erased" in error.value.message
    again = subscribe("ada@example.org", ConsentSource.FORM)
    assert [s.status for s in again.subscriptions] == [SubscriptionStatus.CONFIRMED]
    # Their own confirmed sign-up is a new consent: the suppression is lifted.
    assert not erasure.is_erased("ada@example.org")
    assert refused(["ada@example.org"], via="import") == {}


def test_erasing_during_a_send_skips_the_pending_row_and_keeps_the_total(app: Flask) -> None:
    news = make_list("news")
    ada, bo = (make_subscriber(e, lists=(news,)) for e in ("ada@example.org", "bo@example.org"))
    issue = make_issue((make_statement(),), (news,))
    db.session.add_all([Delivery(issue_id=issue.id, subscriber_id=s.id) for s in (ada, bo)])
    db.session.commit()
    issue_id = issue.id
    erasure.erase(ada)
    rows = db.session.execute(
        select(Delivery.subscriber_id, Delivery.status).where(Delivery.issue_id == issue_id)
        .order_by(Delivery.id)
    ).all()
    assert [(sid, status) for sid, status in rows] == [
        (None, DeliveryStatus.SKIPPED), (bo.id, DeliveryStatus.PENDING),
    ]


# Consent.


def test_import_consent_names_the_file_and_label(app: Flask) -> None:
    columns = import_consent("/uploads/2026/fair.csv", "signed up at the fair")
    assert columns == {
        "consent_source": ConsentSource.IMPORT,
        "consent_detail": "import of fair.csv: signed up at the fair",
        "consent_page": None,
        "consent_ip": None,
        "consent_user_agent": None,
    }
    assert import_consent("list.csv", "")["consent_detail"] == "import of list.csv"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://news.example.org/subscribe?lists=news#x", "/subscribe"),
        ("https://ORG.example/join/?utm=1", "https://org.example/join/"),
        ("/subscribe?x=1", "/subscribe"),
        ("javascript:alert(1)", None),
        ("", None),
    ],
)
def test_the_page_kept_is_a_path_on_our_site_or_another_sites_url(
    url: str, kept: str | None
) -> None:
    assert page_of(url, {"news.example.org"}) == kept


@pytest.mark.parametrize(
    ("mode", "ipv4", "ipv6", "agent"),
    [
        ("off", None, None, None),
        ("truncated", "203.0.113.0/24", "2001:db8:1::/48", "Firefox/140"),
        ("full", "203.0.113.77", "2001:db8:1:2::9", "Firefox/140"),
    ],
)
def test_the_consent_ip_setting_decides_what_is_kept(
    app: Flask, mode: str, ipv4: str | None, ipv6: str | None, agent: str | None
) -> None:
    make_list("news")
    app.config["CONSENT_IP"] = mode
    for email, ip, expected in (("a@example.org", "203.0.113.77", ipv4),
                                ("b@example.org", "2001:db8:1:2::9", ipv6)):  # fmt: skip
        subscriber = subscriptions.subscribe(
            email, list_slugs=["news"], source=ConsentSource.FORM,
            consent=form_consent("/subscribe", ip=ip, user_agent="Firefox/140"),
        )
        [subscription] = subscriber.subscriptions
        assert subscription.consent_ip == expected
        assert subscription.consent_user_agent == agent
        assert subscription.consent_page == "/subscribe"
        assert subscription.consent_detail == "signup form"


def test_the_consent_ip_setting_is_checked_at_start_up(app_config: dict[str, Any]) -> None:
    from flask import Flask as Bare

    for good, stored in (("OFF", "off"), ("truncated", "truncated"), ("full", "full")):
        bare = Bare("check", instance_path=app_config["INSTANCE_PATH"])
        configure(bare, {**app_config, "CONSENT_IP": good})
        assert bare.config["CONSENT_IP"] == stored
    with pytest.raises(ConfigError) as error:
        configure(Bare("check", instance_path=app_config["INSTANCE_PATH"]),
                  {**app_config, "CONSENT_IP": "sometimes"})  # fmt: skip
    assert error.value.setting == "NEWSLETTER_CONSENT_IP"


def test_consent_columns_apply_the_setting_whoever_calls(app: Flask) -> None:
    app.config["CONSENT_IP"] = "off"
    assert Consent(ConsentSource.API, detail="API token 'site'", ip="192.0.2.1").columns()[
        "consent_ip"
    ] is None


def test_erasing_oneself_is_no_way_around_a_block(app: Flask) -> None:
    make_list("news")
    troll = blocklist.block_address("troll@example.org", reason="abuse")
    erasure.erase(troll)
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    for via in ("form", "api", "import", "admin"):
        assert refused(["troll@example.org"], via=via) == {
            "troll@example.org": "blocklisted address"
        }
