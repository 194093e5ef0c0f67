"""The second factor: TOTP codes (RFC 6238, via pyotp) and one-time recovery codes.

A user enrols by scanning a secret made here and typing a first code; from then on a login
needs a code after the password. Each code logs in once (a claim per user and time step in
the shared counters), wrong codes are counted per user, and ten recovery codes, shown once
and kept only as argon2 hashes, each stand in for a code one time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update

from newsletter.auth.counters import counters
from newsletter.auth.models import RecoveryCode, User
from newsletter.auth.services import MAX_PASSWORD_LENGTH, verify_password
from newsletter.errors import Conflict, InvalidCode, TooManyAttempts, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

PERIOD = 30  # seconds per code, what every authenticator app uses
DRIFT_STEPS = 1  # a code from the step before or after is accepted (clocks drift)
DIGITS = 6
RECOVERY_CODE_COUNT = 10
#: no 0/o, 1/l/i: the codes are read off paper
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 10  # about 50 bits, shown as "xxxxx-xxxxx"
MAX_ATTEMPTS = 5  # tries per user without a right code ...
ATTEMPT_WINDOW = 300  # ... in this many seconds; then codes are refused until it ends
MAX_CODE_LENGTH = 64  # longer input is refused before any work

# The recovery codes are random, so the hash need not be as slow as a password's: OWASP's
# minimum argon2id parameters (19 MiB, 2 passes) keep checking ten of them under a second.
_code_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

#: seconds since the epoch; tests replace it to stand still in one time step
clock = time.time


def is_enabled(user: User) -> bool:
    """True when the user logs in with a second factor."""
    return user.totp_enabled_at is not None and bool(user.totp_secret)


def pending_secret(user: User) -> str:
    """The secret to enrol with: the one enrolment already started with, else a new one.

    :raises Conflict: the second factor is already on.
    """
    if is_enabled(user):
        raise Conflict("two-factor authentication is already on", field="code")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
        db.session.commit()
    return user.totp_secret


def provisioning_uri(user: User, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    if not user.totp_secret:
        raise Conflict("two-factor enrolment has not started", field="code")
    return pyotp.TOTP(user.totp_secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=user.email, issuer_name=issuer
    )


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Turn the factor on once the first code from the app matches; the new recovery codes.

    :raises Conflict: already on, or enrolment has not started.
    :raises InvalidCode: the code does not match (or was used).
    :raises TooManyAttempts: too many wrong codes lately.
    """
    if is_enabled(user):
        raise Conflict("two-factor authentication is already on", field="code")
    if not user.totp_secret:
        raise Conflict("two-factor enrolment has not started", field="code")
    _check_totp(user, user.totp_secret, code)
    user.totp_enabled_at = utcnow()
    return _replace_recovery_codes(user)


def verify(user: User, code: str) -> str:
    """Accept a TOTP code or an unused recovery code as the user's second factor.

    :returns: ``"totp"`` or ``"recovery"``, what the code was.
    :raises InvalidCode: wrong, already used, or the factor is off.
    :raises TooManyAttempts: too many wrong codes lately.
    """
    if not is_enabled(user):
        raise InvalidCode("not expected: two-factor authentication is off")
    assert user.totp_secret is not None
    cleaned = _clean(code)
    if cleaned.isdigit() and len(cleaned) == DIGITS:
        _check_totp(user, user.totp_secret, cleaned)
        return "totp"
    _take_attempt(user, user.totp_secret)
    if not _use_recovery_code(user, cleaned):
        raise InvalidCode()
    _attempts_reset(user, user.totp_secret)
    return "recovery"


def disable(user: User, password: str, code: str) -> None:
    """Turn the second factor off; it takes the password and a current code.

    :raises ValidationError: the password is wrong (field ``password``).
    :raises InvalidCode: the code is wrong.
    :raises TooManyAttempts: too many wrong codes lately.
    """
    if len(password) > MAX_PASSWORD_LENGTH or not verify_password(user.password_hash, password):
        raise ValidationError("that password is wrong", field="password")
    verify(user, code)
    remove(user)


def remove(user: User) -> None:
    """Turn the factor off without asking (for an admin helping someone who lost both)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.commit()


def new_recovery_codes(user: User, code: str) -> list[str]:
    """Replace the recovery codes (the old ones stop working); it takes a current code.

    :raises InvalidCode, TooManyAttempts: see :func:`verify`.
    """
    verify(user, code)
    return _replace_recovery_codes(user)


def recovery_codes_left(user: User) -> int:
    """How many of the user's recovery codes are still unused."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


# --- TOTP ---------------------------------------------------------------------------------


def _check_totp(user: User, secret: str, code: str) -> None:
    _take_attempt(user, secret)
    cleaned = _clean(code)
    step = _matching_step(secret, cleaned) if cleaned.isdigit() else None
    if step is None:
        raise InvalidCode()
    # Only the first use of a step's code counts: one seen over a shoulder, or sent twice,
    # cannot log in again while it is still valid.
    window = PERIOD * (2 * DRIFT_STEPS + 2)
    if not counters().claim(f"{_key(user, secret)}:step:{step}", window):
        raise InvalidCode("used already; wait for the next one")
    _attempts_reset(user, secret)


def _matching_step(secret: str, code: str) -> int | None:
    """The time step whose code is ``code``, within the allowed drift, or None."""
    if len(code) != DIGITS:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(clock() // PERIOD)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# --- recovery codes -----------------------------------------------------------------------


def _replace_recovery_codes(user: User) -> list[str]:
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_code_hasher.hash(_clean(code))) for code in codes
    )
    db.session.commit()
    return codes


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    half = RECOVERY_CODE_LENGTH // 2
    return f"{raw[:half]}-{raw[half:]}"


def _use_recovery_code(user: User, cleaned: str) -> bool:
    if len(cleaned) != RECOVERY_CODE_LENGTH:
        return False
    unused = db.session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    for row in unused:
        try:
            _code_hasher.verify(row.code_hash, cleaned)
        except (VerificationError, InvalidHashError):
            continue
        # Conditional, so two logins racing with the same code cannot both have it.
        used = db.session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
        db.session.commit()
        return bool(used.rowcount)  # type: ignore[attr-defined]
    return False


# --- attempts -----------------------------------------------------------------------------


def _key(user: User, secret: str) -> str:
    # The secret's digest in the key: a new enrolment starts with a clean slate.
    return f"totp:{user.id}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


def _take_attempt(user: User, secret: str) -> None:
    # Every try counts and a right code resets the count, so that counting before checking
    # stays exact when tries arrive at once from several processes.
    if counters().hit(f"{_key(user, secret)}:tries", ATTEMPT_WINDOW) > MAX_ATTEMPTS:
        raise TooManyAttempts("code", ATTEMPT_WINDOW)


def _attempts_reset(user: User, secret: str) -> None:
    counters().reset(f"{_key(user, secret)}:tries")


def _clean(code: str) -> str:
    """The code as typed, without spaces or dashes, lowercased; overlong input is emptied."""
    if len(code) > MAX_CODE_LENGTH:
        return ""
    return "".join(code.split()).replace("-", "").lower()
