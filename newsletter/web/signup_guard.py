"""What stands between the sign-up forms and a script: rate limits, a honeypot, a challenge.

- **Rate limits** (Flask-Limiter, already wired with Redis storage in production and memory
  on the embedded default, see ``config._limiter_storage``): per client, keyed by a keyed
  hash of the client's address (never the address itself: counters in Redis are data too,
  and the IP setting is off by default), and one ceiling for everyone together, so a
  botnet of many addresses still cannot mail thousands of strangers a confirmation link.
  The login throttle (``auth/throttle.py``) counts failures with backoff, a different job;
  a fixed window per client is what Flask-Limiter is made for.
- **Honeypot**: a text field people never see (hidden by ``style.css`` / ``embed.css``, out
  of the tab order, no autofill); whatever fills it gets the same neutral answer as a real
  sign-up, and nothing is stored or mailed.
- **Challenge** (``NEWSLETTER_SIGNUP_CHALLENGE=altcha``): ALTCHA's proof of work, made and
  checked by the ``altcha`` library (its v1 protocol: find ``n`` with
  ``SHA-256(salt + n) == challenge``), solved in the browser by ``static/challenge.js``
  from our own static folder. Each solution is accepted once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import altcha
from flask import current_app, request

from newsletter.auth.counters import counters
from newsletter.extensions import limiter

#: the honeypot's field name: a word a form-filling script is glad to fill
HONEYPOT = "website"
#: the field that carries the solved challenge (the name ALTCHA's widget uses)
CHALLENGE_FIELD = "altcha"
#: how long a challenge may take to be solved and sent
CHALLENGE_SECONDS = 10 * 60


def client_key() -> str:
    """The rate limiter's key for this client: a keyed hash of its address, not the address."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    address = (request.remote_addr or "unknown").encode()
    return "client-" + hmac.new(key, b"signup:" + address, hashlib.sha256).hexdigest()[:24]


def everyone() -> str:
    """The key shared by every client: the global ceiling."""
    return "everyone"


def _per_client() -> str:
    return str(current_app.config["RATELIMIT_SUBSCRIBE"])


def _global() -> str:
    return str(current_app.config["RATELIMIT_SUBSCRIBE_GLOBAL"])


#: both sign-up endpoints (the form and the embedded form) share these two limits
per_client_limit = limiter.shared_limit(
    _per_client, scope="signup", key_func=client_key, methods=["POST"]
)
global_limit = limiter.shared_limit(
    _global, scope="signup-all", key_func=everyone, methods=["POST"]
)


def honeypot_filled() -> bool:
    """True when the hidden field came back with something in it (a script, not a person)."""
    return bool(request.form.get(HONEYPOT, "").strip())


def challenge_on() -> bool:
    """Whether the sign-up forms carry the proof-of-work challenge."""
    return current_app.config["SIGNUP_CHALLENGE"] == "altcha"


def _hmac_key() -> str:
    # Derived, so a leak of challenge signatures says nothing about the secret key itself.
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, b"signup-challenge", hashlib.sha256).hexdigest()


def new_challenge() -> dict[str, Any]:
    """A fresh signed challenge, as ALTCHA's widgets expect it (JSON)."""
    options = altcha.ChallengeOptionsV1(
        algorithm="SHA-256",
        max_number=int(current_app.config["SIGNUP_CHALLENGE_COST"]),
        hmac_key=_hmac_key(),
        expires=datetime.now(UTC) + timedelta(seconds=CHALLENGE_SECONDS),
    )
    challenge = altcha.create_challenge_v1(options)
    return dict(challenge.to_dict())


def challenge_passed() -> bool:
    """True when the challenge is off, or the form carries a valid solution used once."""
    if not challenge_on():
        return True
    payload = request.form.get(CHALLENGE_FIELD, "").strip()
    if not payload or len(payload) > 2000:
        return False
    ok, _ = altcha.verify_solution_v1(payload, _hmac_key(), check_expires=True)
    if not ok:
        return False
    # One sign-up per solved challenge: its signature, claimed until the challenge expires.
    try:
        signature = str(json.loads(base64.b64decode(payload))["signature"])
    except (ValueError, TypeError, KeyError):
        return False
    digest = hashlib.sha256(signature.encode()).hexdigest()[:32]
    return counters().claim(f"signup-challenge:{digest}", CHALLENGE_SECONDS)
