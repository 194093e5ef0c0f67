"""CSV import: good rows in, bad rows reported by line, one transaction, any size."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask

from newsletter import tasks
from newsletter.audience import importer
from newsletter.audience.importer import import_csv
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber


def csv_text(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def subscriber(email: str) -> Subscriber:
    db.session.expire_all()
    return db.session.query(Subscriber).filter_by(email=email).one()


def status(email: str, slug: str = "news") -> SubscriptionStatus:
    return next(s.status for s in subscriber(email).subscriptions if s.list.slug == slug)


@pytest.fixture
def news(app: Flask) -> Any:
    return make_list("news")


def test_good_rows_are_imported_and_bad_rows_reported_by_line(app: Flask, news: Any) -> None:
    result = import_csv(
        csv_text(
            "email,name,city",
            "ada@example.org,Ada Lovelace,London",
            "not-an-address,Nobody,",
            ",No Address,Paris",
            "grace@example.org,Grace Hopper,",
            "ADA@example.org,Ada Again,",
            "bob@example.org,Bob,Berlin,extra",
            "",
            "leser@bücher.example,,Wien",
        ),
        list_slug="news",
    )
    assert (result.created, result.updated, result.subscribed) == (3, 0, 3)
    lines = dict(result.bad_rows)
    assert sorted(lines) == [3, 4, 6, 7]
    assert "not-an-address" in lines[3]
    assert "no email" in lines[4]
    assert "line 2" in lines[6]  # the same address as line 2, in another case
    assert "4 fields" in lines[7]
    ada = subscriber("ada@example.org")
    assert (ada.name, ada.attributes) == ("Ada Lovelace", {"city": "London"})
    assert subscriber("grace@example.org").attributes == {}
    assert subscriber("leser@bücher.example").attributes == {"city": "Wien"}
    [subscription] = ada.subscriptions
    assert subscription.status is SubscriptionStatus.UNCONFIRMED  # double opt-in list
    assert subscription.consent_source is ConsentSource.IMPORT


def test_confirmed_imports_and_single_opt_in_lists_are_confirmed(app: Flask, news: Any) -> None:
    make_list("open", optin=OptIn.SINGLE)
    import_csv(csv_text("email", "ada@example.org"), list_slug="news", confirmed=True)
    import_csv(csv_text("email", "grace@example.org"), list_slug="open")
    assert status("ada@example.org") is SubscriptionStatus.CONFIRMED
    assert status("grace@example.org", "open") is SubscriptionStatus.CONFIRMED


def test_known_subscribers_are_updated_and_unsubscribes_respected(app: Flask, news: Any) -> None:
    other = make_list("other")
    ada = make_subscriber("ada@example.org", name="Ada", lists=(other,))
    ada.attributes = {"city": "London", "lang": "en"}
    db.session.commit()
    make_subscriber("quit@example.org", lists=(news,), status=SubscriptionStatus.UNSUBSCRIBED)
    make_subscriber("on@example.org", lists=(news,))

    result = import_csv(
        csv_text("Email,Name,city", "Ada@Example.org,Ada King,Paris", "quit@example.org,,",
                 "on@example.org,,"),
        list_slug="news",
        confirmed=True,
    )
    assert (result.created, result.updated, result.subscribed) == (0, 3, 1)
    assert (result.kept_unsubscribed, result.already) == (1, 1)
    ada = subscriber("ada@example.org")
    assert ada.name == "Ada King"
    assert ada.attributes == {"city": "Paris", "lang": "en"}
    assert status("ada@example.org") is SubscriptionStatus.CONFIRMED
    assert status("quit@example.org") is SubscriptionStatus.UNSUBSCRIBED


def test_confirmation_mail_is_queued_only_when_asked(
    app: Flask, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[int, int]] = []
    monkeypatch.setattr(tasks.send_confirmation, "send", lambda *args: queued.append(args))
    quiet = import_csv(csv_text("email", "ada@example.org"), list_slug="news")
    assert (quiet.awaiting_confirmation, queued) == (1, [])
    asked = import_csv(
        csv_text("email", "grace@example.org"), list_slug="news", send_confirmations=True
    )
    assert asked.confirmations_queued == 1
    assert queued == [(subscriber("grace@example.org").id, news.id)]


def test_a_big_file_goes_in_chunks_with_progress(
    app: Flask, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_SIZE", 3)
    rows = [f"reader{n}@example.org,Reader {n}" for n in range(10)] + ["bad,Bad"]
    progress: list[int] = []
    result = import_csv(csv_text("email,name", *rows), list_slug="news", progress=progress.append)
    assert result.created == 10 and result.bad_rows == [(12, result.bad_rows[0][1])]
    assert sum(progress) == 11  # every row read, the bad one too
    assert len(progress) >= 4
    assert db.session.query(Subscription).count() == 10


def test_the_file_is_one_transaction(
    app: Flask, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_SIZE", 2)
    real_write = importer._write_chunk
    calls = []

    def fail_on_second_chunk(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        real_write(*args)

    monkeypatch.setattr(importer, "_write_chunk", fail_on_second_chunk)
    with pytest.raises(RuntimeError):
        import_csv(csv_text("email", *(f"r{n}@example.org" for n in range(4))), list_slug="news")
    assert db.session.query(Subscriber).count() == 0


@pytest.mark.parametrize("text", ["", "name,city\nAda,London\n", "email,Email\na@b.org,x\n"])
def test_a_file_without_a_usable_header_is_refused(app: Flask, news: Any, text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        import_csv(io.StringIO(text), list_slug="news")
    assert raised.value.field == "file"


def test_an_unknown_list_is_refused(app: Flask) -> None:
    with pytest.raises(NotFound):
        import_csv(csv_text("email", "ada@example.org"), list_slug="nope")
