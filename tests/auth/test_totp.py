"""The second factor: TOTP enrolment and codes, replay, throttling, recovery codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.auth import services, totp
from newsletter.auth.models import RecoveryCode, User
from newsletter.errors import Conflict, InvalidCode, TooManyAttempts, ValidationError
from newsletter.extensions import db

PASSWORD = "correct horse battery"
#: the middle of a time step, so that "the step before" and "after" are exact
T0 = 1_900_000_000 // totp.PERIOD * totp.PERIOD + totp.PERIOD / 2


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Stand still at T0; calling the result moves the clock to T0 + offset seconds."""
    now = {"t": T0}
    monkeypatch.setattr(totp, "clock", lambda: now["t"])

    def move(offset: float) -> None:
        now["t"] = T0 + offset

    yield move


@pytest.fixture
def user(app: Flask) -> User:
    return services.create_user("ed@example.org", PASSWORD)


def code_at(user: User, offset: float = 0) -> str:
    assert user.totp_secret
    return pyotp.TOTP(user.totp_secret).at(T0 + offset)


def wrong_code(user: User) -> str:
    """Six digits that are none of the codes valid around T0."""
    valid = {code_at(user, offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


def enrolled(user: User) -> list[str]:
    totp.pending_secret(user)
    return totp.confirm_enrolment(user, code_at(user, -30))


def test_enrolment_keeps_one_secret_until_confirmed_by_a_first_code(
    user: User, clock: Callable[[float], None]
) -> None:
    secret = totp.pending_secret(user)
    assert secret == totp.pending_secret(user)  # reloading the page shows the same secret
    assert len(secret) == 32 and not totp.is_enabled(user)
    uri = totp.provisioning_uri(user, "Example News")
    assert uri.startswith("otpauth://totp/Example%20News:ed%40example.org?secret=" + secret)

    with pytest.raises(InvalidCode):
        totp.confirm_enrolment(user, wrong_code(user))
    assert not totp.is_enabled(user)

    codes = totp.confirm_enrolment(user, code_at(user))
    assert totp.is_enabled(db.session.get(User, user.id))  # type: ignore[arg-type]
    assert len(codes) == 10 and len(set(codes)) == 10
    with pytest.raises(Conflict):
        totp.pending_secret(user)  # no new secret once on


def test_recovery_codes_are_kept_only_as_argon2_hashes(
    user: User, clock: Callable[[float], None]
) -> None:
    codes = enrolled(user)
    rows = db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    assert len(rows) == 10
    for row in rows:
        assert row.code_hash.startswith("$argon2id$")
        assert not any(code.replace("-", "") in row.code_hash for code in codes)
    assert all(len(code) == 11 and code[5] == "-" for code in codes)


def test_a_code_logs_in_once_then_is_refused_within_its_window(
    user: User, clock: Callable[[float], None]
) -> None:
    enrolled(user)
    code = code_at(user)
    assert totp.verify(user, code) == "totp"
    with pytest.raises(InvalidCode) as raised:
        totp.verify(user, code)
    assert raised.value.reason.startswith("used already")
    clock(totp.PERIOD)  # still accepted as "the step before" by drift, but used: refused
    with pytest.raises(InvalidCode):
        totp.verify(user, code)
    assert totp.verify(user, code_at(user, totp.PERIOD)) == "totp"  # the next one is fine


def test_codes_one_step_off_are_accepted_and_two_steps_off_refused(
    user: User, clock: Callable[[float], None]
) -> None:
    enrolled(user)  # with the code of the step before T0
    assert totp.verify(user, code_at(user, +30)) == "totp"
    with pytest.raises(InvalidCode):
        totp.verify(user, code_at(user, -60))
    with pytest.raises(InvalidCode):
        totp.verify(user, code_at(user, +60))


def test_spaces_in_a_typed_code_do_not_matter(user: User, clock: Callable[[float], None]) -> None:
    enrolled(user)
    code = code_at(user)
    assert totp.verify(user, f" {code[:3]} {code[3:]} ") == "totp"


def test_after_five_wrong_codes_even_the_right_one_is_refused(
    user: User, clock: Callable[[float], None]
) -> None:
    enrolled(user)
    for _ in range(totp.MAX_ATTEMPTS):
        with pytest.raises(InvalidCode):
            totp.verify(user, wrong_code(user))
    with pytest.raises(TooManyAttempts) as raised:
        totp.verify(user, code_at(user))
    assert raised.value.retry_after == totp.ATTEMPT_WINDOW
    with pytest.raises(TooManyAttempts):  # recovery codes count against the same limit
        totp.verify(user, "aaaaa-aaaaa")


def test_a_right_code_clears_the_count_of_wrong_ones(
    user: User, clock: Callable[[float], None]
) -> None:
    enrolled(user)
    for _ in range(totp.MAX_ATTEMPTS - 1):
        with pytest.raises(InvalidCode):
            totp.verify(user, wrong_code(user))
    totp.verify(user, code_at(user))
    for _ in range(totp.MAX_ATTEMPTS - 1):
        with pytest.raises(InvalidCode):
            totp.verify(user, wrong_code(user))
    assert totp.verify(user, code_at(user, 30)) == "totp"


def test_each_recovery_code_stands_in_for_a_code_once(
    user: User, clock: Callable[[float], None]
) -> None:
    codes = enrolled(user)
    assert totp.verify(user, codes[3].upper()) == "recovery"  # typed in capitals: fine
    assert totp.recovery_codes_left(user) == 9
    with pytest.raises(InvalidCode):
        totp.verify(user, codes[3])
    assert totp.verify(user, codes[4].replace("-", "")) == "recovery"
    assert totp.recovery_codes_left(user) == 8


def test_new_recovery_codes_replace_the_old_ones(
    user: User, clock: Callable[[float], None]
) -> None:
    old = enrolled(user)
    new = totp.new_recovery_codes(user, code_at(user))
    assert not set(old) & set(new)
    with pytest.raises(InvalidCode):
        totp.verify(user, old[0])
    assert totp.verify(user, new[0]) == "recovery"


def test_turning_off_takes_the_password_and_a_code(
    user: User, clock: Callable[[float], None]
) -> None:
    codes = enrolled(user)
    with pytest.raises(ValidationError) as raised:
        totp.disable(user, "not the password", code_at(user))
    assert raised.value.field == "password"
    with pytest.raises(InvalidCode):
        totp.disable(user, PASSWORD, wrong_code(user))
    assert totp.is_enabled(user)

    totp.disable(user, PASSWORD, codes[0])  # a recovery code will do, for a lost phone
    stored = db.session.get(User, user.id)
    assert stored is not None and not totp.is_enabled(stored)
    assert stored.totp_secret is None
    assert db.session.scalars(select(RecoveryCode)).all() == []


def test_a_code_is_refused_when_the_factor_is_off(user: User) -> None:
    with pytest.raises(InvalidCode):
        totp.verify(user, "123456")


def test_an_overlong_code_is_refused(user: User, clock: Callable[[float], None]) -> None:
    enrolled(user)
    with pytest.raises(InvalidCode):
        totp.verify(user, "a" * 10_000)
