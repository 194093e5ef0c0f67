"""Subscribing, confirming, unsubscribing and preferences, with consent on record."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from newsletter import tasks
from newsletter.audience import subscriptions
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.tokens import make_token
from newsletter.errors import AddressRefused, InvalidEmail, InvalidToken, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_list, make_subscriber

Queued = list[tuple[int, int]]


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> Queued:
    """Confirmation jobs the services queue, recorded instead of sent."""
    jobs: Queued = []
    monkeypatch.setattr(tasks.send_confirmation, "send", lambda *args: jobs.append(args))
    return jobs


def status_of(subscriber: Subscriber, slug: str) -> SubscriptionStatus:
    db.session.expire_all()
    return next(s.status for s in subscriber.subscriptions if s.list.slug == slug)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """These tests read the IP address kept with the consent: keep it whole."""
    return {**app_config, "CONSENT_IP": "full"}


def subscribe(email: str = "ada@example.org", *slugs: str, **options: object) -> Subscriber:
    options.setdefault("source", ConsentSource.FORM)
    return subscriptions.subscribe(email, list_slugs=list(slugs or ("news",)), **options)  # type: ignore[arg-type]


def test_double_opt_in_waits_for_confirmation_and_queues_the_mail(
    app: Flask, queued: Queued
) -> None:
    news = make_list("news")
    subscriber = subscribe("ada@example.org", name="Ada", ip="192.0.2.7")
    [subscription] = subscriber.subscriptions
    assert subscription.status is SubscriptionStatus.UNCONFIRMED
    assert subscription.consent_source is ConsentSource.FORM
    assert subscription.consent_ip == "192.0.2.7"
    assert isinstance(subscription.created_at, datetime)
    assert subscription.confirmed_at is None
    assert queued == [(subscriber.id, news.id)]


def test_single_opt_in_and_confirmed_subscribe_at_once_without_mail(
    app: Flask, queued: Queued
) -> None:
    make_list("open", optin=OptIn.SINGLE)
    make_list("news")
    ada = subscribe("ada@example.org", "open")
    bob = subscribe("bob@example.org", "news", source=ConsentSource.ADMIN, confirmed=True)
    assert status_of(ada, "open") is SubscriptionStatus.CONFIRMED
    assert status_of(bob, "news") is SubscriptionStatus.CONFIRMED
    assert bob.subscriptions[0].confirmed_at is not None
    assert queued == []


def test_the_same_address_in_another_case_is_the_same_subscriber(
    app: Flask, queued: Queued
) -> None:
    make_list("news")
    first = subscribe("Ada@Example.org")
    again = subscribe("ADA@example.ORG")
    assert first.id == again.id
    assert db.session.query(Subscriber).count() == 1


def test_a_confirmed_subscription_is_left_alone(app: Flask, queued: Queued) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    subscribe("ada@example.org")
    assert status_of(ada, "news") is SubscriptionStatus.CONFIRMED
    assert queued == []


def test_subscribing_again_after_unsubscribing_starts_over(app: Flask, queued: Queued) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.UNSUBSCRIBED)
    subscribe("ada@example.org", ip="198.51.100.1")
    subscription = db.session.get(Subscription, (ada.id, news.id))
    assert subscription is not None
    assert subscription.status is SubscriptionStatus.UNCONFIRMED
    assert subscription.unsubscribed_at is None
    assert subscription.consent_ip == "198.51.100.1"
    assert queued == [(ada.id, news.id)]


def test_a_single_opt_in_list_takes_back_an_unsubscribed_address_only_once_confirmed(
    app: Flask, queued: Queued
) -> None:
    open_list = make_list("open", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.org", lists=(open_list,))
    subscriptions.unsubscribe(ada.id, None)
    subscribe("ada@example.org", "open")
    assert status_of(ada, "open") is SubscriptionStatus.UNCONFIRMED
    assert queued == [(ada.id, open_list.id)]
    subscriptions.confirm(make_token("confirm", ada.id, open_list.id))
    assert status_of(ada, "open") is SubscriptionStatus.CONFIRMED


@pytest.mark.parametrize("source", [ConsentSource.FORM, ConsentSource.API])
def test_no_source_but_an_explicit_confirmation_undoes_an_unsubscribe(
    app: Flask, queued: Queued, source: ConsentSource
) -> None:
    open_list = make_list("open", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.org", lists=(open_list,))
    subscriptions.unsubscribe(ada.id, None)
    subscribe("ada@example.org", "open", source=source)
    assert status_of(ada, "open") is SubscriptionStatus.UNCONFIRMED
    # The operator who says the person confirmed (an import, the admin) is taken at its word.
    subscribe("ada@example.org", "open", source=ConsentSource.ADMIN, confirmed=True)
    assert status_of(ada, "open") is SubscriptionStatus.CONFIRMED


def test_a_name_from_the_form_is_kept_only_once_the_address_is_confirmed(
    app: Flask, queued: Queued
) -> None:
    news = make_list("news")
    open_list = make_list("open", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.org", name="Ada", lists=(open_list,))
    subscriptions.unsubscribe(ada.id, None)
    subscribe("ada@example.org", "open", "news", name="Ada King")
    db.session.expire_all()
    assert ada.name == "Ada"
    subscriptions.confirm(make_token("confirm", ada.id, news.id))
    db.session.expire_all()
    assert ada.name == "Ada King"
    assert "Ada King" not in str(ada.attributes)  # the pending name is gone once applied


def test_a_new_address_gets_its_name_when_it_confirms(app: Flask, queued: Queued) -> None:
    news = make_list("news")
    make_list("open", optin=OptIn.SINGLE)
    ada = subscribe("ada@example.org", "news", name="Ada")
    assert ada.name == ""
    subscriptions.confirm(make_token("confirm", ada.id, news.id))
    db.session.expire_all()
    assert ada.name == "Ada"
    # A new address on a single opt-in list is confirmed at once, and so is its name.
    assert subscribe("bob@example.org", "open", name="Bob").name == "Bob"


def test_a_form_post_that_mails_nothing_changes_no_name(app: Flask, queued: Queued) -> None:
    news = make_list("news")
    make_list("open", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.org", name="", lists=(news,))
    subscribe("ada@example.org", "open", "news", name="Mallory")
    db.session.expire_all()
    assert status_of(ada, "open") is SubscriptionStatus.CONFIRMED
    assert queued == []
    assert ada.name == ""
    assert "Mallory" not in str(ada.attributes)


def test_signing_up_again_within_the_cool_down_sends_no_second_mail(
    app: Flask, queued: Queued
) -> None:
    news = make_list("news")
    ada = subscribe("ada@example.org", ip="192.0.2.7")
    db.session.expire_all()
    assert ada.confirmation_sent_at is not None
    again = subscribe("ada@example.org", ip="198.51.100.1")
    assert queued == [(ada.id, news.id)]
    # The later request is still the consent on record; it only sends no mail.
    assert db.session.get(Subscription, (again.id, news.id)).consent_ip == "198.51.100.1"


def test_after_the_cool_down_a_sign_up_mails_the_link_again(app: Flask, queued: Queued) -> None:
    news = make_list("news")
    ada = subscribe("ada@example.org")
    ada.confirmation_sent_at = utcnow() - timedelta(
        seconds=app.config["CONFIRMATION_COOLDOWN"] + 1
    )
    db.session.commit()
    subscribe("ada@example.org")
    assert queued == [(ada.id, news.id)] * 2


def test_one_sign_up_for_several_lists_mails_each_link(app: Flask, queued: Queued) -> None:
    news, other = make_list("news"), make_list("other")
    ada = subscribe("ada@example.org", "news", "other")
    assert sorted(queued) == [(ada.id, news.id), (ada.id, other.id)]
    subscribe("ada@example.org", "news", "other")
    assert len(queued) == 2


def test_the_cool_down_is_a_setting(app: Flask, queued: Queued) -> None:
    make_list("news")
    app.config["CONFIRMATION_COOLDOWN"] = 0
    subscribe("ada@example.org")
    subscribe("ada@example.org")
    assert len(queued) == 2


def test_a_blocklisted_address_gets_no_confirmation_mail(app: Flask, queued: Queued) -> None:
    make_list("news")
    ada = make_subscriber("ada@example.org", status=SubscriptionStatus.CONFIRMED)
    ada.status = SubscriberStatus.BLOCKLISTED
    db.session.commit()
    with pytest.raises(AddressRefused) as refused:  # the form answers it like a success
        subscribe("ada@example.org")
    assert refused.value.reason == "blocklisted address"
    assert queued == []


def test_a_form_never_overwrites_a_name_but_the_admin_may(app: Flask, queued: Queued) -> None:
    make_list("news")
    make_subscriber("ada@example.org", name="Ada Lovelace")
    assert subscribe("ada@example.org", name="Mallory").name == "Ada Lovelace"
    renamed = subscribe("ada@example.org", name="Ada King", source=ConsentSource.ADMIN)
    assert renamed.name == "Ada King"


def test_subscribing_needs_a_valid_address_a_list_and_known_lists(
    app: Flask, queued: Queued
) -> None:
    make_list("news")
    with pytest.raises(InvalidEmail):
        subscribe("not an address")
    with pytest.raises(ValidationError) as raised:
        subscriptions.subscribe("ada@example.org", list_slugs=[], source=ConsentSource.FORM)
    assert raised.value.field == "lists"
    with pytest.raises(NotFound):
        subscribe("ada@example.org", "nope")
    assert db.session.query(Subscriber).count() == 0


def test_confirm_confirms_the_subscription_its_token_names(app: Flask, queued: Queued) -> None:
    news, other = make_list("news"), make_list("other")
    ada = subscribe("ada@example.org", "news", "other")
    subscription = subscriptions.confirm(make_token("confirm", ada.id, news.id))
    assert subscription.status is SubscriptionStatus.CONFIRMED
    assert subscription.confirmed_at is not None
    assert status_of(ada, "other") is SubscriptionStatus.UNCONFIRMED
    # Confirming twice is harmless.
    assert subscriptions.confirm(make_token("confirm", ada.id, news.id)).status is (
        SubscriptionStatus.CONFIRMED
    )
    assert other.id != news.id


def test_a_confirm_token_for_a_list_they_did_not_ask_for_is_refused(
    app: Flask, queued: Queued
) -> None:
    make_list("news")
    other = make_list("other")
    ada = subscribe("ada@example.org", "news")
    with pytest.raises(InvalidToken):
        subscriptions.confirm(make_token("confirm", ada.id, other.id))
    with pytest.raises(InvalidToken):
        subscriptions.confirm(make_token("unsubscribe", ada.id, other.id))
    assert db.session.get(Subscription, (ada.id, other.id)) is None


def test_an_old_confirm_link_cannot_undo_an_unsubscribe(app: Flask, queued: Queued) -> None:
    news = make_list("news")
    ada = subscribe("ada@example.org")
    token = make_token("confirm", ada.id, news.id)
    subscriptions.unsubscribe(ada.id, news.id)
    with pytest.raises(InvalidToken):
        subscriptions.confirm(token)
    assert status_of(ada, "news") is SubscriptionStatus.UNSUBSCRIBED


def test_revoking_links_refuses_every_manage_and_unsubscribe_link_sent_before(
    app: Flask,
) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    manage = make_token("manage", ada.id, version=ada.token_version)
    unsubscribe = make_token("unsubscribe", ada.id, news.id, version=ada.token_version)
    assert subscriptions.read_link("manage", manage).subscriber.id == ada.id

    subscriptions.revoke_links(ada.id)
    for purpose, token in (("manage", manage), ("unsubscribe", unsubscribe)):
        with pytest.raises(InvalidToken) as raised:
            subscriptions.read_link(purpose, token)
        assert raised.value.reason == "no longer valid"
    db.session.expire_all()
    fresh = make_token("manage", ada.id, version=ada.token_version)
    assert subscriptions.read_link("manage", fresh).subscriber.id == ada.id
    with pytest.raises(NotFound):
        subscriptions.revoke_links(9999)


def test_unsubscribe_from_one_list_or_all(app: Flask) -> None:
    news, other, third = make_list("news"), make_list("other"), make_list("third")
    ada = make_subscriber("ada@example.org", lists=(news, other, third))
    [changed] = subscriptions.unsubscribe(ada.id, news.id)
    assert changed.list_id == news.id and changed.unsubscribed_at is not None
    assert status_of(ada, "other") is SubscriptionStatus.CONFIRMED
    assert {s.list_id for s in subscriptions.unsubscribe(ada.id, None)} == {other.id, third.id}
    assert subscriptions.unsubscribe(ada.id, None) == []
    with pytest.raises(NotFound):
        subscriptions.unsubscribe(9999, None)


def test_preferences_set_the_name_and_exactly_the_ticked_lists(app: Flask) -> None:
    news, _extra = make_list("news"), make_list("extra")
    board = make_list("board", public=False)
    make_list("secret", public=False)
    ada = make_subscriber("ada@example.org", name="Ada", lists=(news, board))
    # Public lists and the private lists they are on; not other private lists.
    assert {lst.slug for lst in subscriptions.manageable_lists(ada)} == {"news", "extra", "board"}

    subscriptions.update_preferences(ada.id, name="Ada King", list_slugs=["extra", "board"])
    db.session.expire_all()
    assert ada.name == "Ada King"
    assert status_of(ada, "news") is SubscriptionStatus.UNSUBSCRIBED
    assert status_of(ada, "extra") is SubscriptionStatus.CONFIRMED
    assert status_of(ada, "board") is SubscriptionStatus.CONFIRMED

    with pytest.raises(ValidationError) as raised:
        subscriptions.update_preferences(ada.id, name="Ada", list_slugs=["secret"])
    assert raised.value.field == "lists"
