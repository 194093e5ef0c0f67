"""Signed links: bound to a purpose, a subscriber and a list; they expire."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from newsletter.audience.tokens import (
    TokenData,
    confirm_url,
    make_token,
    manage_url,
    read_token,
    unsubscribe_url,
)
from newsletter.errors import InvalidToken

DAY = 24 * 3600


def made_days_ago(monkeypatch: pytest.MonkeyPatch, days: int, *args: int) -> str:
    """A confirm token signed ``days`` ago."""
    real = time.time()
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real - days * DAY)
        return make_token("confirm", *args)


def test_a_token_reads_back_as_what_it_was_made_for(app: Flask) -> None:
    token = make_token("confirm", 7, 3)
    assert read_token("confirm", token, max_age=DAY) == TokenData(subscriber_id=7, list_id=3)
    assert read_token("manage", make_token("manage", 7), max_age=DAY) == TokenData(7, None)


@pytest.mark.parametrize(("made_for", "used_for"), [("unsubscribe", "confirm"),
                                                    ("manage", "unsubscribe"),
                                                    ("confirm", "manage")])
def test_a_token_for_one_purpose_is_refused_for_another(
    app: Flask, made_for: str, used_for: str
) -> None:
    with pytest.raises(InvalidToken) as raised:
        read_token(used_for, make_token(made_for, 7, 3), max_age=DAY)
    assert (raised.value.purpose, raised.value.reason) == (used_for, "invalid")


def test_a_tampered_token_is_refused(app: Flask) -> None:
    token = make_token("unsubscribe", 7, 3)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken) as raised:
        read_token("unsubscribe", forged, max_age=DAY)
    assert raised.value.reason == "invalid"


def test_a_token_signed_with_another_secret_is_refused(app: Flask) -> None:
    token = make_token("confirm", 7, 3)
    app.config["SECRET_KEY"] = "another-secret"
    with pytest.raises(InvalidToken):
        read_token("confirm", token, max_age=DAY)


def test_an_old_token_has_expired(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    token = made_days_ago(monkeypatch, 8, 7, 3)
    with pytest.raises(InvalidToken) as raised:
        read_token("confirm", token, max_age=7 * DAY)
    assert raised.value.reason == "expired"
    assert read_token("confirm", made_days_ago(monkeypatch, 6, 7, 3), max_age=7 * DAY)


def test_links_are_absolute_on_the_base_url_even_outside_a_request(app: Flask) -> None:
    assert confirm_url(7, 3).startswith("https://news.example.org/confirm/")
    assert unsubscribe_url(7, 3, version=0).startswith("https://news.example.org/unsubscribe/")
    assert manage_url(7, version=0).startswith("https://news.example.org/manage/")
    token = unsubscribe_url(7, None, version=0).rsplit("/", 1)[1]
    assert read_token("unsubscribe", token, max_age=DAY) == TokenData(7, None)


def test_manage_and_unsubscribe_links_carry_the_subscriber_s_token_version(app: Flask) -> None:
    manage = manage_url(7, version=3).rsplit("/", 1)[1]
    unsubscribe = unsubscribe_url(7, 2, version=3).rsplit("/", 1)[1]
    assert read_token("manage", manage, max_age=DAY) == TokenData(7, None, version=3)
    assert read_token("unsubscribe", unsubscribe, max_age=DAY) == TokenData(7, 2, version=3)


def test_a_link_signed_before_token_versions_reads_as_version_0(app: Flask) -> None:
    from newsletter.signing import sign

    old = sign("unsubscribe", s=7, l=2)  # what every mail sent before carried
    assert read_token("unsubscribe", old, max_age=DAY).version == 0


def test_a_token_knows_when_it_was_signed(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    data = read_token("confirm", made_days_ago(monkeypatch, 3, 7, 3), max_age=7 * DAY)
    assert data.issued_at is not None
    assert 3 * DAY - 60 < time.time() - data.issued_at.timestamp() < 3 * DAY + 60
