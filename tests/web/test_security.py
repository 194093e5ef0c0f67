"""Security review: attacks and odd input on the web layer get a safe, clear answer.

Each test names what an attacker (or a clumsy client) tries and what must happen instead.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.audience.models import Subscriber
from newsletter.audience.tokens import manage_url
from newsletter.auth import services
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.helpers import csrf_token_from
from tests.web.admin_browser import EMAIL, PASSWORD, as_browser, token_for

API = "/api/v1"
BASE = "https://news.example.org"


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    """A browser on this site, not logged in, with an admin account to log in to."""
    services.create_user(EMAIL, PASSWORD)
    return as_browser(app.test_client())


@pytest.fixture
def admin(browser: FlaskClient) -> FlaskClient:
    """A browser logged in as an admin."""
    assert log_in_to(browser).status_code == 302
    return browser


def log_in_to(client: FlaskClient, next_url: str | None = None) -> object:
    token = csrf_token_from(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login",
        query_string={"next": next_url} if next_url is not None else {},
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
    )


# Open redirects: after logging in, ``next`` only ever leads to a page of this site.


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "///evil.example/",
        "////evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "/\t//evil.example/",
        "/\n//evil.example/",
    ],
)
def test_login_never_redirects_to_another_site(browser: FlaskClient, target: str) -> None:
    response = log_in_to(browser, target)
    assert response.status_code == 302  # type: ignore[attr-defined]
    location = response.headers["Location"]  # type: ignore[attr-defined]
    assert "evil.example" not in location
    assert location == "/admin/"


def test_login_still_returns_to_the_page_asked_for(browser: FlaskClient) -> None:
    response = log_in_to(browser, "/admin/issues?x=1")
    assert response.headers["Location"] == "/admin/issues?x=1"  # type: ignore[attr-defined]


# Unbounded input: a huge body is refused before anything reads it.


def test_request_bodies_have_a_size_limit_above_the_largest_upload(app: Flask) -> None:
    from newsletter.web.admin.forms import MAX_UPLOAD_BYTES

    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit is not None
    assert MAX_UPLOAD_BYTES * 4 < limit <= 64 * 1024 * 1024  # the CSV import fits, no more


def test_a_body_over_the_limit_is_a_413(app: Flask, admin: FlaskClient) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    services.create_user("robot@example.org", "a long enough password 123")
    bearer = {"Authorization": f"Bearer {services.create_api_token('robot@example.org')}"}
    response = admin.post(
        API + "/statements",
        data=b"---\ntitle: Big\n---\n" + b"x" * 2000,
        content_type="text/markdown",
        headers=bearer,
    )
    assert response.status_code == 413
    assert response.json == {"error": {"message": "the request body is too large", "field": None}}
    response = admin.post(
        "/subscribe", data={"email": "a" * 2000 + "@example.org", "csrf_token": "x"}
    )
    assert response.status_code == 413


def test_a_public_form_post_of_a_mebibyte_is_refused_before_it_is_read(
    app: Flask, client: FlaskClient
) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    manage = urlsplit(manage_url(ada.id, version=0)).path
    token = csrf_token_from(client.get("/subscribe").get_data(as_text=True))
    big = {"email": "bob@example.org", "lists": "news", "csrf_token": token,
           "name": "x" * 1024 * 1024}  # fmt: skip
    for path in ("/subscribe", "/subscribe/embed", manage):
        response = client.post(path, data=big, headers={"Referer": f"{BASE}{path}"})
        assert response.status_code == 413, path
        page = response.get_data(as_text=True)
        assert "Too much to send" in page and 'href="/static/style.css' in page  # our layout
    assert [s.email for s in db.session.scalars(select(Subscriber))] == ["ada@example.org"]
    assert db.session.get(Subscriber, ada.id).name != big["name"]


def test_a_sign_up_for_a_hundred_long_named_lists_fits_the_public_form_cap(
    client: FlaskClient,
) -> None:
    slugs = [f"{n:03d}" + "x" * 97 for n in range(100)]
    for slug in slugs:
        make_list(slug)
    token = csrf_token_from(client.get("/subscribe").get_data(as_text=True))
    data = {"email": "bob@example.org", "name": "Bob", "lists": slugs, "csrf_token": token}
    response = client.post("/subscribe", data=data, headers={"Referer": f"{BASE}/subscribe"})
    assert response.status_code == 200
    assert len(urlencode(data, doseq=True)) > 10 * 1024
    assert db.session.scalar(select(Subscriber).filter_by(email="bob@example.org")) is not None


# Ids beyond what the database holds (INTEGER) are simply not there: 404, not a 500.

TOO_BIG = [str(2**31), str(2**63), "9" * 30]


@pytest.fixture
def bearer(app: Flask) -> dict[str, str]:
    services.create_user("robot@example.org", "a long enough password 123")
    return {"Authorization": f"Bearer {services.create_api_token('robot@example.org')}"}


@pytest.mark.parametrize("number", TOO_BIG)
def test_an_id_too_big_for_the_database_is_not_found(
    admin: FlaskClient, bearer: dict[str, str], number: str
) -> None:
    assert admin.get(f"/archive/{number}").status_code == 404
    assert admin.get(f"/admin/issues/{number}").status_code == 404
    assert admin.get(f"/admin/statements/{number}").status_code == 404
    for path in ("subscribers", "statements", "issues"):
        response = admin.get(f"{API}/{path}/{number}", headers=bearer)
        assert response.status_code == 404
        assert response.json["error"]["message"]


@pytest.mark.parametrize("number", TOO_BIG)
def test_the_answer_for_an_id_too_big_names_the_id_asked_for(
    client: FlaskClient, bearer: dict[str, str], number: str
) -> None:
    response = client.get(f"{API}/issues/{number}", headers=bearer)

    assert response.status_code == 404
    assert response.json == {"error": {"message": f"no issue {number}", "field": None}}


@pytest.mark.parametrize("number", TOO_BIG)
def test_a_page_number_too_big_shows_the_last_page(admin: FlaskClient, number: str) -> None:
    response = admin.get("/admin/subscribers", query_string={"page": number})
    assert response.status_code == 200


@pytest.mark.parametrize("number", TOO_BIG)
def test_api_ids_too_big_are_a_clear_error(
    admin: FlaskClient, bearer: dict[str, str], number: str
) -> None:
    from tests.factories import make_list

    make_list("news")
    response = admin.get(f"{API}/subscribers", query_string={"after": number}, headers=bearer)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "after"
    response = admin.post(
        f"{API}/issues",
        json={"subject": "S", "statements": [int(number)], "lists": ["news"]},
        headers=bearer,
    )
    assert response.status_code in {404, 422}
    assert response.json["error"]["field"] == "statements"
    response = admin.post(
        f"{API}/issues",
        json={"subject": "S", "statements": [], "lists": ["news"], "template": int(number)},
        headers=bearer,
    )
    assert response.status_code in {404, 422}
    assert response.json["error"]["field"] in {"statements", "template"}


# NUL characters: PostgreSQL text cannot hold them, so they are refused at the edge with a
# clear error (SQLite would store them; the answer is the same on both).


def test_nul_characters_in_api_strings_are_a_422(
    admin: FlaskClient, bearer: dict[str, str]
) -> None:
    from tests.factories import make_list, make_statement

    make_list("news")
    statement = make_statement("one")
    response = admin.post(f"{API}/lists", json={"slug": "ok", "name": "x\x00"}, headers=bearer)
    assert (response.status_code, response.json["error"]["field"]) == (422, "name")
    response = admin.post(
        f"{API}/issues",
        json={"subject": "S\x00", "statements": [statement.id], "lists": ["news"]},
        headers=bearer,
    )
    assert (response.status_code, response.json["error"]["field"]) == (422, "subject")
    response = admin.post(
        f"{API}/statements", json={"markdown": "---\ntitle: T\n---\nA\x00B"}, headers=bearer
    )
    assert (response.status_code, response.json["error"]["field"]) == (422, "markdown")
    response = admin.post(
        f"{API}/statements",
        data=b"---\ntitle: T\n---\nA\x00B",
        content_type="text/markdown",
        headers=bearer,
    )
    assert (response.status_code, response.json["error"]["field"]) == (422, "markdown")


def test_nul_characters_in_api_lookups_find_nothing(
    admin: FlaskClient, bearer: dict[str, str]
) -> None:
    assert admin.get(f"{API}/lists/a%00b", headers=bearer).status_code == 404
    response = admin.get(f"{API}/subscribers", query_string={"list": "a\x00b"}, headers=bearer)
    assert response.status_code == 404


def test_nul_characters_in_admin_forms_are_refused(admin: FlaskClient) -> None:
    assert admin.get("/admin/subscribers", query_string={"q": "a\x00b"}).status_code == 200
    response = admin.post(
        "/admin/lists",
        data={"csrf_token": token_for(admin, "/admin/lists"), "slug": "ok", "name": "x\x00",
              "optin": "double"},
    )
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    response = admin.post(
        "/admin/statements",
        data={"csrf_token": token_for(admin, "/admin/statements"),
              "markdown": "---\ntitle: T\n---\nA\x00B"},
    )
    assert response.status_code == 422


def test_a_markdown_file_holding_nul_is_refused_beside_the_field(admin: FlaskClient) -> None:
    import io

    response = admin.post(
        "/admin/statements",
        data={"csrf_token": token_for(admin, "/admin/statements"),
              "file": (io.BytesIO(b"---\ntitle: T\n---\nA\x00B\n"), "2020-01-01-t.md")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)


def test_a_csv_with_an_overlong_line_imports_the_rest(admin: FlaskClient) -> None:
    import io

    from newsletter.audience.models import ImportJob
    from newsletter.extensions import db
    from tests.factories import make_list

    make_list("news")
    body = b"email,name\na@example.org," + b"x" * 200_000 + b"\nb@example.org,B\n"
    response = admin.post(
        "/admin/subscribers/import",
        data={"csrf_token": token_for(admin, "/admin/subscribers/import"),
              "file": (io.BytesIO(body), "people.csv"), "list_slug": "news",
              "mode": "subscribe", "overwrite": "keep"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302  # a bad row, not a refusal: a worker imports the rest
    assert db.session.query(ImportJob).count() == 1


@pytest.mark.parametrize("position", ["\u00b2", "\u0663", "-1", "x", "9" * 30])
def test_an_odd_statement_position_puts_it_at_the_end(admin: FlaskClient, position: str) -> None:
    from tests.factories import make_list, make_statement

    make_list("news")
    first, second = make_statement("first"), make_statement("second")
    response = admin.post(
        "/admin/issues/new",
        data={"csrf_token": token_for(admin, "/admin/issues/new"), "subject": "S",
              "statements": [str(first.id), str(second.id)], "lists": ["news"],
              "template": "", f"position-{first.id}": position,
              f"position-{second.id}": "1"},
    )
    assert response.status_code == 302


# Public forms: regression checks of the blueprint's own CSRF and token rules.


def test_a_csrf_token_from_another_session_is_refused(app: Flask) -> None:
    from newsletter.audience.models import Subscriber
    from newsletter.extensions import db
    from tests.factories import make_list

    make_list("news")
    attacker, victim = app.test_client(), app.test_client()
    stolen = csrf_token_from(attacker.get("/subscribe").get_data(as_text=True))
    victim.get("/subscribe")
    response = victim.post(
        "/subscribe", data={"email": "ada@example.org", "lists": ["news"], "csrf_token": stolen}
    )
    assert response.status_code == 400
    assert db.session.query(Subscriber).count() == 0


def test_one_click_is_only_for_unsubscribe_links(app: Flask) -> None:
    from newsletter.audience.models import SubscriptionStatus
    from newsletter.audience.tokens import make_token
    from tests.factories import make_list, make_subscriber

    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    provider = app.test_client(use_cookies=False)
    body = {"List-Unsubscribe": "One-Click", "action": "unsubscribe-all"}
    # The preferences page is a form a person sends: it still needs its CSRF token.
    response = provider.post(f"/manage/{make_token('manage', ada.id)}", data=body)
    assert response.status_code == 400
    # A token made for another purpose is no unsubscribe link.
    response = provider.post(f"/unsubscribe/{make_token('manage', ada.id)}", data=body)
    assert response.status_code == 400
    response = provider.post(f"/unsubscribe/{make_token('confirm', ada.id, news.id)}", data=body)
    assert response.status_code == 400
    # Without the RFC 8058 body, the unsubscribe link needs the CSRF token too.
    response = provider.post(f"/unsubscribe/{make_token('unsubscribe', ada.id, news.id)}")
    assert response.status_code == 400
    from newsletter.extensions import db

    db.session.expire_all()
    assert ada.subscriptions[0].status is SubscriptionStatus.CONFIRMED


def test_issue_subjects_are_escaped_in_the_archive_and_its_feed(app: Flask) -> None:
    import xml.etree.ElementTree as ET

    from newsletter.content.models import IssueStatus
    from tests.factories import make_issue, make_list, make_statement

    subject = '<script>alert(1)</script> & "quotes"'
    make_issue((make_statement("one"),), (make_list("news"),), subject=subject,
               status=IssueStatus.SENT)
    client = app.test_client()
    page = client.get("/archive").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    feed = ET.fromstring(client.get("/archive.atom").get_data())
    titles = [e.text for e in feed.iter("{http://www.w3.org/2005/Atom}title")]
    assert subject in titles
