"""Finding subscribers for the admin: prefix search, filters, keyset pages both ways."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.audience import directory
from newsletter.audience.models import MailingList, SubscriberStatus, SubscriptionStatus
from newsletter.errors import ValidationError
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber


def walk(filters: directory.Filters, per_page: int) -> list[int]:
    """Every id, page after page (older), as a person clicking "Older" would see them."""
    seen: list[int] = []
    page = directory.search(filters, per_page=per_page)
    seen += [s.id for s in page.items]
    while page.next_after is not None:
        page = directory.search(filters, after=page.next_after, per_page=per_page)
        seen += [s.id for s in page.items]
    return seen


@pytest.fixture
def people(app: Flask) -> dict[str, MailingList]:
    news = make_list("news", name="News")
    small = make_list("small", name="Small")
    for number in range(23):
        make_subscriber(
            f"reader{number:02d}@example.org", name=f"Reader {number}",
            lists=(news,) + ((small,) if number % 5 == 0 else ()),
            status=SubscriptionStatus.UNCONFIRMED if number % 4 == 0
            else SubscriptionStatus.CONFIRMED,
            attributes={"city": "Madrid" if number % 3 == 0 else "Lima", "_own": "x"},
        )
    make_subscriber("ada@example.org", name="Ada Lovelace", lists=(news,))
    grace = make_subscriber("Grace@Example.org", name="Grace Hopper")
    grace.status = SubscriberStatus.BLOCKLISTED
    db.session.commit()
    return {"news": news, "small": small}


def test_keyset_pages_cover_everyone_once_newest_first(people: dict[str, MailingList]) -> None:
    ids = walk(directory.Filters(), per_page=4)
    assert len(ids) == 25 and len(set(ids)) == 25
    assert ids == sorted(ids, reverse=True)


def test_the_newer_pages_lead_back_without_gaps(people: dict[str, MailingList]) -> None:
    everyone = walk(directory.Filters(), per_page=4)
    # From below the 13th newest, walk "Newer" to the top: the 12 above it, none twice.
    page = directory.search(directory.Filters(), after=everyone[12], per_page=4)
    assert [s.id for s in page.items] == everyone[13:17]
    collected = [s.id for s in page.items]
    while page.prev_before is not None:
        page = directory.search(directory.Filters(), before=page.prev_before, per_page=4)
        collected = [s.id for s in page.items if s.id not in collected] + collected
        if page.items and page.items[0].id == everyone[0]:
            break
    assert collected == everyone[: len(collected)]
    assert everyone[0] in collected


def test_the_first_page_has_no_newer_page(people: dict[str, MailingList]) -> None:
    page = directory.search(directory.Filters(), per_page=10)
    assert page.prev_before is None and page.next_after is not None
    back = directory.search(directory.Filters(), before=page.items[2].id, per_page=10)
    assert [s.id for s in back.items] == [s.id for s in page.items]  # the first page, full


def test_search_matches_the_start_of_an_address_or_a_name_in_any_case(
    people: dict[str, MailingList],
) -> None:
    def emails(term: str) -> set[str]:
        found = directory.search(directory.clean_filters(term=term)).items
        return {s.email for s in found}

    assert emails("GRACE@") == {"Grace@Example.org"}
    assert emails("ada lov") == {"ada@example.org"}
    assert emails("reader1") == {f"reader{n}@example.org" for n in range(10, 20)}
    assert emails("example") == set()  # the start, not the middle
    assert emails("%") == set() and emails("_") == set()  # searched for, not wildcards
    assert emails("ada@example.org\x00") == {"ada@example.org"}


def test_filters_by_list_subscription_status_status_and_attribute(
    people: dict[str, MailingList],
) -> None:
    small = people["small"].id
    on_small = walk(directory.Filters(list_id=small), per_page=2)
    assert len(on_small) == 5 and len(set(on_small)) == 5
    unconfirmed = directory.clean_filters(list_id=people["news"].id,
                                          subscription_status="unconfirmed")
    assert len(walk(unconfirmed, per_page=2)) == 6  # 0, 4, 8, 12, 16, 20
    blocked = directory.search(directory.clean_filters(status="blocklisted")).items
    assert [s.email for s in blocked] == ["Grace@Example.org"]
    madrid = walk(directory.clean_filters(attribute_key="city", attribute_value="madrid"), 3)
    assert len(madrid) == 8 and len(set(madrid)) == 8


def test_an_attribute_search_reads_a_window_at_a_time_and_misses_nothing(
    people: dict[str, MailingList], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(directory, "SCAN_WINDOW", 4)
    filters = directory.clean_filters(attribute_key="city", attribute_value="Madrid")
    found = walk(filters, per_page=3)
    assert len(found) == 8 and len(set(found)) == 8
    first = directory.search(filters, per_page=50)
    assert first.scanned_to is not None and len(first.items) < 8


def test_bad_filters_are_refused_with_the_field(app: Flask) -> None:
    with pytest.raises(ValidationError) as status:
        directory.clean_filters(status="gone")
    assert status.value.field == "status"
    with pytest.raises(ValidationError) as own:
        directory.clean_filters(attribute_key="_pending_name", attribute_value="x")
    assert own.value.field == "attribute_key"
