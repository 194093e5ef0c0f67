"""Sign-up abuse and embedding: rate limits, the honeypot, the proof-of-work challenge, the
daily cap on confirmation mail, the same answer whatever we know, and the form for other
sites (double opt-in only, answered with a redirect to the neutral page).

The rate limits run on the storage the configuration picks: memory on the embedded default,
Redis on the PostgreSQL + Redis pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from newsletter.audience.models import (
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.extensions import db, limiter
from newsletter.models import utcnow
from tests.factories import make_list
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin

BASE = "https://news.example.org"
ELSEWHERE = "https://www.organisation.example"
_CSRF = re.compile(r'(name="csrf_token" value=")[^"]*(")')


def page(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def without_csrf(html: str) -> str:
    return _CSRF.sub(r"\1…\2", html)


def post_form(
    client: FlaskClient, data: dict[str, Any], *, path: str = "/subscribe", addr: str = "127.0.0.1"
) -> TestResponse:
    """Open the form, then post it with its CSRF token like a browser at ``addr``."""
    token = csrf_token_from(page(client.get(path, environ_base={"REMOTE_ADDR": addr})))
    return client.post(
        path,
        data={**data, "csrf_token": token},
        headers={"Referer": f"{BASE}{path}"},
        environ_base={"REMOTE_ADDR": addr},
    )


def post_from_elsewhere(
    client: FlaskClient, data: dict[str, Any], addr: str = "127.0.0.1"
) -> TestResponse:
    """What a browser posts from the organisation's own site: no CSRF token, its Origin."""
    return client.post(
        "/subscribe/embed",
        data=data,
        headers={"Origin": ELSEWHERE, "Referer": f"{ELSEWHERE}/join"},
        environ_base={"REMOTE_ADDR": addr},
    )


def subscribers() -> list[Subscriber]:
    db.session.expire_all()
    return list(db.session.scalars(select(Subscriber).order_by(Subscriber.id)))


@pytest.fixture
def news(app: Flask) -> Any:
    return make_list("news", name="Movement News")


# Rate limits.


@pytest.fixture
def limited(app_config: dict[str, Any], request: pytest.FixtureRequest) -> FlaskClient:
    """Limits on, on the storage the configuration chooses (Redis when there is one)."""
    app_config.update(
        RATELIMIT_ENABLED=True, RATELIMIT_SUBSCRIBE="3 per hour",
        RATELIMIT_SUBSCRIBE_GLOBAL="5 per hour",
    )
    app: Flask = request.getfixturevalue("app")
    return app.test_client()


def limiter_keys(app: Flask) -> list[str]:
    """Every key the rate limiter holds now, wherever it keeps them."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    if uri.startswith("memory"):
        return [str(key) for key in limiter.storage.storage]  # type: ignore[attr-defined]
    client = redis.Redis.from_url(uri)
    try:
        return [key.decode() for key in client.scan_iter(f"*{app.config['REDIS_PREFIX']}*")]
    finally:
        client.close()


def test_signups_are_limited_per_client_then_for_everyone(
    limited: FlaskClient, app: Flask, news: Any
) -> None:
    form = {"lists": ["news"]}
    for n in range(3):
        assert post_form(limited, {**form, "email": f"a{n}@example.org"},
                         addr="198.51.100.7").status_code == 200
    # Another client still may, on our form or an embedded one, up to the global ceiling.
    assert post_form(limited, {**form, "email": "b@example.org"}, addr="203.0.113.9").status_code \
        == 200
    assert post_from_elsewhere(limited, {"email": "c@example.org", "list": "news"},
                               addr="192.0.2.1").status_code == 303
    refused = post_form(limited, {**form, "email": "a4@example.org"}, addr="198.51.100.7")
    assert refused.status_code == 429 and "Too many attempts" in page(refused)  # per client
    ceiling = post_form(limited, {**form, "email": "d@example.org"}, addr="192.0.2.2")
    assert ceiling.status_code == 429  # a new client, but everyone together had their fill
    assert post_from_elsewhere(limited, {"email": "e@example.org", "list": "news"},
                               addr="192.0.2.3").status_code == 429
    assert len(subscribers()) == 5
    assert limited.get("/subscribe").status_code == 200  # reading the form is not limited

    keys = limiter_keys(app)
    assert keys and any("client-" in key for key in keys)
    for address in ("198.51.100.7", "203.0.113.9", "192.0.2.1"):
        assert not any(address in key for key in keys), keys  # hashed, never the address


# The honeypot.


def test_a_filled_honeypot_gets_the_neutral_answer_and_nothing_is_stored(
    client: FlaskClient, news: Any, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    html = page(client.get("/subscribe"))
    assert re.search(r'<div class="hp" aria-hidden="true">', html)
    assert re.search(r'<input type="text" id="website" name="website" value="" tabindex="-1"', html)
    robot = post_form(client, {"email": "ada@example.org", "lists": ["news"], "website": "x.biz"})
    person = post_form(client, {"email": "ada@example.org", "lists": ["news"]})
    assert robot.status_code == person.status_code == 200
    assert without_csrf(page(robot)) == without_csrf(page(person))
    db.session.expire_all()
    assert len(subscribers()) == 1  # the person's
    from_elsewhere = post_from_elsewhere(
        client, {"email": "bob@example.org", "list": "news", "website": "spam"}
    )
    assert from_elsewhere.status_code == 303
    assert [s.email for s in subscribers()] == ["ada@example.org"]
    run_jobs()
    assert [m.message["To"] for m in mailbox.messages] == ["ada@example.org"]


def test_the_honeypot_is_hidden_by_the_stylesheet(client: FlaskClient) -> None:
    css = client.get("/static/style.css").get_data(as_text=True)
    assert re.search(r"\.hp \{ position: absolute; left: -10000px;", css)


# The proof-of-work challenge.


def test_with_the_challenge_off_there_is_none(client: FlaskClient, news: Any) -> None:
    html = page(client.get("/subscribe"))
    assert "data-challenge" not in html and "challenge.js" not in html
    assert client.get("/subscribe/challenge").status_code == 404
    assert post_form(client, {"email": "ada@example.org", "lists": ["news"]}).status_code == 200


@pytest.fixture
def challenged(app_config: dict[str, Any], request: pytest.FixtureRequest) -> FlaskClient:
    app_config.update(SIGNUP_CHALLENGE="altcha", SIGNUP_CHALLENGE_COST=2000)
    app: Flask = request.getfixturevalue("app")
    return app.test_client()


def solve_like_the_widget(challenge: dict[str, Any]) -> str:
    """What static/challenge.js does: find n with SHA-256(salt + n) == challenge."""
    for number in range(challenge["maxNumber"] + 1):
        digest = hashlib.sha256(f"{challenge['salt']}{number}".encode()).hexdigest()
        if digest == challenge["challenge"]:
            fields = ("algorithm", "challenge", "salt", "signature")
            solved = {key: challenge[key] for key in fields}
            return base64.b64encode(json.dumps({**solved, "number": number}).encode()).decode()
    raise AssertionError("no solution")


def test_with_the_challenge_on_only_a_solved_form_signs_up(
    challenged: FlaskClient, news: Any
) -> None:
    html = page(challenged.get("/subscribe"))
    assert 'data-challenge="/subscribe/challenge"' in html
    assert '<script src="/static/challenge.js" defer></script>' in html
    assert challenged.get("/static/challenge.js").status_code == 200

    unsolved = post_form(challenged, {"email": "ada@example.org", "lists": ["news"]})
    assert unsolved.status_code == 400 and subscribers() == []

    response = challenged.get("/subscribe/challenge")
    assert response.headers["Cache-Control"] == "no-store"
    challenge = response.get_json()
    assert challenge["algorithm"] == "SHA-256" and challenge["maxNumber"] == 2000
    solution = solve_like_the_widget(challenge)
    form = {"email": "ada@example.org", "lists": ["news"], "altcha": solution}
    assert post_form(challenged, form).status_code == 200
    assert [s.email for s in subscribers()] == ["ada@example.org"]

    replayed = post_form(challenged, {**form, "email": "bob@example.org"})
    assert replayed.status_code == 400  # one sign-up per solved challenge
    forged = json.loads(base64.b64decode(solution))
    forged["number"] += 1
    tampered = base64.b64encode(json.dumps(forged).encode()).decode()
    assert post_form(challenged, {**form, "email": "eve@example.org",
                                  "altcha": tampered}).status_code == 400
    assert [s.email for s in subscribers()] == ["ada@example.org"]


def test_the_challenge_holds_for_embedded_forms_too(challenged: FlaskClient, news: Any) -> None:
    data = {"email": "ada@example.org", "list": "news"}
    assert post_from_elsewhere(challenged, data).status_code == 400
    response = challenged.get("/subscribe/challenge", headers={"Origin": ELSEWHERE})
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # fetched from their page
    solved = post_from_elsewhere(
        challenged, {**data, "altcha": solve_like_the_widget(response.get_json())}
    )
    assert solved.status_code == 303
    assert [s.email for s in subscribers()] == ["ada@example.org"]


# The daily cap on confirmation mail.


def test_confirmation_mail_is_capped_per_address_and_day(
    app: Flask, client: FlaskClient, news: Any, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    app.config.update(CONFIRMATION_COOLDOWN=0, CONFIRMATIONS_PER_DAY=3)
    form = {"email": "ada@example.org", "lists": ["news"]}
    answers = set()
    for _ in range(5):
        answers.add(without_csrf(page(post_form(client, form))))
        run_jobs()  # each mail goes out before the next request (no "still queued" merging)
    assert len(answers) == 1  # nothing tells that the mail was held back
    assert len(mailbox.to("ada@example.org")) == 3

    # The next day (UTC) the address may be mailed again.
    ada = subscribers()[0]
    ada.confirmations_day = (utcnow() - timedelta(days=1)).date()
    db.session.commit()
    post_form(client, form)
    run_jobs()
    assert len(mailbox.to("ada@example.org")) == 4


# The same answer whatever we know.


def test_the_answers_are_byte_for_byte_the_same_for_known_and_unknown_addresses(
    app: Flask, news: Any
) -> None:
    other = make_list("daily", name="Daily")

    def state(email: str, how: str) -> None:
        if how == "unknown":
            return
        subscriber = Subscriber(email=email, name="Known", attributes={})
        if how == "blocklisted":
            subscriber.status = SubscriberStatus.BLOCKLISTED
        db.session.add(subscriber)
        db.session.flush()
        status = {"unconfirmed": SubscriptionStatus.UNCONFIRMED,
                  "unsubscribed": SubscriptionStatus.UNSUBSCRIBED}.get(
            how, SubscriptionStatus.CONFIRMED)
        from newsletter.audience.models import ConsentSource

        db.session.add(Subscription(subscriber_id=subscriber.id, list_id=news.id, status=status,
                                    consent_source=ConsentSource.FORM))
        db.session.add(Subscription(subscriber_id=subscriber.id, list_id=other.id,
                                    status=SubscriptionStatus.CONFIRMED,
                                    consent_source=ConsentSource.FORM))
        db.session.commit()

    forms, embeds = {}, {}
    for how in ("unknown", "unconfirmed", "confirmed", "unsubscribed", "blocklisted"):
        # The same address length, so that only what we know could differ.
        form_address, embed_address = f"f-{how[:5]}@example.org", f"e-{how[:5]}@example.org"
        state(form_address, how)
        state(embed_address, how)
        client = app.test_client()  # a fresh browser each time: no session shared
        g.pop("csrf_token", None)  # Flask-WTF keeps the last browser's token in the app context
        answer = post_form(client, {"email": form_address, "name": "Ada", "lists": ["news"]})
        forms[how] = (answer.status_code, without_csrf(page(answer)).replace(form_address, "@"))
        embedded = post_from_elsewhere(app.test_client(),
                                       {"email": embed_address, "name": "Ada", "list": "news"})
        embeds[how] = (embedded.status_code, embedded.headers.get("Location"),
                       embedded.get_data())
    for how, answer in forms.items():
        assert answer == forms["unknown"], how
    assert forms["unknown"][0] == 200
    assert len(set(embeds.values())) == 1, embeds
    assert embeds["unknown"][:2] == (303, "/subscribe/thanks")


# Embedding.


def test_the_admin_shows_a_snippet_to_paste_for_a_double_opt_in_list(app: Flask,
                                                                    news: Any) -> None:
    make_list("open", name="Open <list>", optin=OptIn.SINGLE)
    admin = logged_in_admin(app)
    assert 'href="/admin/lists/news/signup"' in page(admin.get("/admin/lists"))
    html = page(admin.get("/admin/lists/news/signup"))
    snippet = re.search(r'<textarea id="embed-snippet"[^>]*>(.*?)</textarea>', html, re.S)
    assert snippet
    # Shown as text (escaped once), pasted as HTML.
    code = snippet.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"') \
        .replace("&quot;", '"').replace("&amp;", "&")
    assert f'<form class="newsletter-signup" method="post" action="{BASE}/subscribe/embed">' \
        in code
    assert '<input type="email" name="email" required' in code
    assert '<input type="text" name="name"' in code
    assert '<input type="hidden" name="list" value="news">' in code
    assert 'name="website" tabindex="-1"' in code and f"{BASE}/static/embed.css" in code
    assert "<script" not in code  # no challenge: no script
    single = page(admin.get("/admin/lists/open/signup"))
    assert "embed-snippet" not in single and "single opt-in" in single


def test_the_snippet_carries_our_challenge_script_when_the_challenge_is_on(
    app: Flask, news: Any
) -> None:
    app.config["SIGNUP_CHALLENGE"] = "altcha"
    html = page(logged_in_admin(app).get("/admin/lists/news/signup"))
    assert f'data-challenge=&#34;{BASE}/subscribe/challenge&#34;' in html \
        or f"data-challenge=&quot;{BASE}/subscribe/challenge&quot;" in html
    assert f"{BASE}/static/challenge.js" in html


def test_a_post_from_another_site_signs_up_to_a_double_opt_in_list(
    client: FlaskClient, news: Any, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    response = post_from_elsewhere(client, {"email": "ada@example.org", "name": "Ada",
                                            "list": "news"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200 and "Check your inbox" in page(thanks)
    assert "ada@" not in page(thanks)  # the neutral page names nobody
    [ada] = subscribers()
    assert [s.status for s in ada.subscriptions] == [SubscriptionStatus.UNCONFIRMED]
    run_jobs()
    assert len(mailbox.to("ada@example.org")) == 1  # nothing happens without her answer


def test_a_post_from_another_site_to_a_single_opt_in_list_is_refused(client: FlaskClient) -> None:
    make_list("open", optin=OptIn.SINGLE)
    response = post_from_elsewhere(client, {"email": "ada@example.org", "list": "open"})
    assert response.status_code == 400
    assert "can&#39;t be joined from another website" in page(response)
    assert post_from_elsewhere(client, {"email": "ada@example.org", "list": "nope"}).status_code \
        == 400
    assert subscribers() == []


def test_our_own_form_still_refuses_posts_from_other_sites(client: FlaskClient,
                                                           news: Any) -> None:
    token = csrf_token_from(page(client.get("/subscribe")))
    response = client.post("/subscribe", data={"email": "ada@example.org", "lists": ["news"],
                                               "csrf_token": token},
                           headers={"Origin": ELSEWHERE})
    assert response.status_code == 400 and subscribers() == []
