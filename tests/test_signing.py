"""Link tokens: ours are the tokens itsdangerous makes, made faster (``signing._FastSigner``),
so every link mailed before and after reads the same way."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import BadSignature, URLSafeTimedSerializer

from newsletter.errors import InvalidToken
from newsletter.signing import sign, unsign, unsign_timed

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


PURPOSES = ["unsubscribe", "manage", "confirm"]


def theirs(app: Flask, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=f"newsletter.{purpose}")


@pytest.mark.parametrize("purpose", PURPOSES)
def test_itsdangerous_reads_our_tokens_and_we_read_its(app: Flask, purpose: str) -> None:
    with app.test_request_context():
        payload = {"s": 12345, "l": 3, "v": 2, "i": 7}
        ours = sign(purpose, **payload)
        assert theirs(app, purpose).loads(ours, max_age=60) == {"p": purpose, **payload}
        made_there = theirs(app, purpose).dumps({"p": purpose, **payload})
        assert unsign(purpose, made_there, max_age=60) == {"p": purpose, **payload}
        # The same bytes as itsdangerous's own, when both are made in the same second.
        for _ in range(3):
            second = int(time.time())
            pair = sign(purpose, **payload), theirs(app, purpose).dumps({"p": purpose, **payload})
            if int(time.time()) == second:
                assert pair[0] == pair[1]
                break


def test_our_tokens_carry_the_time_they_were_made(app: Flask) -> None:
    with app.test_request_context():
        before = int(time.time())
        _, signed_at = unsign_timed("manage", sign("manage", s=1), max_age=60)
        assert before <= signed_at.timestamp() <= time.time()


def test_a_token_for_one_purpose_or_another_key_is_refused(app: Flask) -> None:
    with app.test_request_context():
        token = sign("manage", s=1)
        with pytest.raises(InvalidToken):
            unsign("unsubscribe", token, max_age=60)
        with pytest.raises(BadSignature):
            URLSafeTimedSerializer("another key", salt="newsletter.manage").loads(token)
        body, when, mac = token.split(".")
        with pytest.raises(InvalidToken):
            unsign("manage", f"{body}.{when}.{mac[:-2]}AA", max_age=60)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.text(max_size=40),
              st.none(), st.booleans()),
    max_size=6,
))
def test_any_payload_reads_back_as_itsdangerous_reads_it(
    app: Flask, payload: dict[str, Any]
) -> None:
    payload.pop("p", None)
    with app.test_request_context():
        token = sign("manage", **payload)
        assert theirs(app, "manage").loads(token, max_age=60) == {"p": "manage", **payload}
