"""The JSON API under /api/v1: bearer tokens, the contract of DESIGN.md, one error shape."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from newsletter.audience.models import OptIn, SubscriptionStatus
from newsletter.content.models import Template, TemplateKind
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import SEED_STATEMENT
from tests.smtp import CapturingSMTPServer
from tests.web.api_client import API, Api, assert_error


@pytest.fixture
def token(app: Flask) -> str:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return create_api_token("robot@example.org")


@pytest.fixture
def api(client: FlaskClient, token: str) -> Api:
    return Api(client, token)


# --- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer nlt_not-a-real-token", "Basic cm9ib3Q6cGFzc3dvcmQ=", "token"],
)
def test_every_call_needs_a_valid_bearer_token(
    client: FlaskClient, token: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/lists"), ("POST", "/lists"), ("GET", "/openapi.json")]:
        response = client.open(API + path, method=method, headers=headers, json={})
        assert_error(response, 401, "Authorization")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_is_accepted_and_a_wrong_one_names_the_error(
    client: FlaskClient, token: str
) -> None:
    right = client.get(API + "/lists", headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200
    wrong = client.get(API + "/lists", headers={"Authorization": f"Bearer {token}x"})
    assert_error(wrong, 401, "Authorization")
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


def test_no_csrf_token_is_needed_with_a_bearer_token(app: Flask, token: str) -> None:
    app.config["WTF_CSRF_ENABLED"] = True  # as in production
    api = Api(app.test_client(), token)
    assert api.post("/lists", {"slug": "news", "name": "News"}).status_code == 201


# --- errors -------------------------------------------------------------------------------


def test_unknown_routes_and_wrong_methods_answer_in_json(api: Api) -> None:
    assert_error(api.get("/nothing/here"), 404, None)
    assert_error(api.get("/"), 404, None)
    wrong_method = api.call("DELETE", "/lists")
    assert_error(wrong_method, 405, None)
    assert set(wrong_method.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert_error(api.call("PUT", "/issues/1/send"), 405, None)


def test_options_says_which_methods_a_path_takes_and_opens_no_cors(api: Api) -> None:
    response = api.client.options(API + "/issues", headers={
        **api.headers, "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "POST",
    })

    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers  # nothing to type, and never html
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert not [name for name, _ in response.headers if name.startswith("Access-Control-")]
    # Without a token: the same 401 as every call (a browser's preflight carries none).
    assert_error(api.client.options(API + "/issues"), 401, "Authorization")
    # An unknown path stays a JSON 404.
    assert_error(api.call("OPTIONS", "/nothing/here"), 404, None)


def test_pages_outside_the_api_keep_their_own_error_pages(client: FlaskClient) -> None:
    for path in ("/no-such-page", "/admin/no-such-page"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"


def test_malformed_json_is_a_400(api: Api) -> None:
    response = api.client.post(
        API + "/lists", data="{not json", content_type="application/json", headers=api.headers
    )
    assert_error(response, 400, None)
    assert_error(api.post("/lists", ["a", "list"]), 400, None)


def test_a_body_that_is_not_json_is_refused(api: Api) -> None:
    response = api.client.post(API + "/lists", data={"slug": "news"}, headers=api.headers)
    assert_error(response, 415, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "News"}, "slug"),
        ({"slug": "news"}, "name"),
        ({"slug": 7, "name": "News"}, "slug"),
        ({"slug": "news", "name": "News", "optin": "triple"}, "optin"),
        ({"slug": "news", "name": "News", "public": "yes"}, "public"),
        ({"slug": "News Letter", "name": "News"}, "slug"),
        ({"slug": "news", "name": "News", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_list_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    assert_error(api.post("/lists", body), 422, field)


# --- lists --------------------------------------------------------------------------------


def test_lists_are_created_and_listed(api: Api) -> None:
    created = api.post(
        "/lists",
        {"slug": "weekly", "name": "Weekly", "optin": "single", "public": False,
         "description": "Every Friday"},
    )
    assert created.status_code == 201
    weekly = created.get_json()
    assert weekly["id"] > 0
    assert (weekly["slug"], weekly["name"], weekly["optin"], weekly["public"]) == (
        "weekly", "Weekly", "single", False,
    )
    assert weekly["description"] == "Every Friday"
    assert created.headers["Location"].endswith("/api/v1/lists/weekly")

    default = api.post("/lists", {"slug": "alerts", "name": "Alerts"}).get_json()
    assert (default["optin"], default["public"]) == ("double", True)

    items = api.get("/lists").get_json()["items"]
    assert {item["slug"] for item in items} == {"weekly", "alerts"}
    assert api.get("/lists/weekly").get_json() == weekly


def test_a_taken_list_slug_is_a_conflict(api: Api) -> None:
    make_list("weekly")
    assert_error(api.post("/lists", {"slug": "weekly", "name": "Again"}), 409, "slug")


def test_an_unknown_list_is_a_404(api: Api) -> None:
    assert_error(api.get("/lists/nope"), 404, None)


# --- subscribers --------------------------------------------------------------------------


def test_a_subscriber_on_a_double_opt_in_list_is_unconfirmed_and_mailed(
    api: Api, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    make_list("weekly", optin=OptIn.DOUBLE)
    response = api.post(
        "/subscribers", {"email": "Ada@Example.com", "name": "Ada", "lists": ["weekly"]}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    ada = response.get_json()
    assert ada["id"] > 0
    assert ada["status"] == "active"
    assert ada["name"] == "Ada"
    assert [(s["list"], s["status"], s["source"]) for s in ada["subscriptions"]] == [
        ("weekly", "unconfirmed", "api")
    ]
    run_jobs()
    mails = mailbox.to("Ada@example.com")
    assert len(mails) == 1
    assert "/confirm/" in mails[0].message.get_body(("plain",)).get_content()


def test_a_subscriber_on_a_single_opt_in_list_is_confirmed_without_mail(
    api: Api, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    make_list("alerts", optin=OptIn.SINGLE)
    ada = api.post("/subscribers", {"email": "ada@example.com", "lists": ["alerts"]}).get_json()
    assert ada["subscriptions"][0]["status"] == "confirmed"
    assert ada["subscriptions"][0]["confirmed_at"] is not None
    run_jobs()
    assert mailbox.to("ada@example.com") == []


def test_confirmed_true_skips_the_confirmation_mail(
    api: Api, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    make_list("weekly", optin=OptIn.DOUBLE)
    ada = api.post(
        "/subscribers", {"email": "ada@example.com", "lists": ["weekly"], "confirmed": True}
    ).get_json()
    assert ada["subscriptions"][0]["status"] == "confirmed"
    run_jobs()
    assert mailbox.to("ada@example.com") == []


def test_subscribing_a_known_address_adds_lists_and_answers_201_as_for_a_new_one(api: Api) -> None:
    weekly = make_list("weekly", optin=OptIn.SINGLE)
    make_list("alerts", optin=OptIn.SINGLE)
    known = make_subscriber("ada@example.com", lists=(weekly,))
    response = api.post("/subscribers", {"email": "ADA@example.com", "lists": ["alerts"]})
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] == known.id
    assert [s["list"] for s in body["subscriptions"]] == ["alerts", "weekly"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"lists": ["weekly"]}, 422, "email"),
        ({"email": "not an address", "lists": ["weekly"]}, 422, "email"),
        ({"email": "ada@example.com"}, 422, "lists"),
        ({"email": "ada@example.com", "lists": []}, 422, "lists"),
        ({"email": "ada@example.com", "lists": "weekly"}, 422, "lists"),
        ({"email": "ada@example.com", "lists": ["weekly"], "confirmed": "no"}, 422, "confirmed"),
        ({"email": "ada@example.com", "lists": ["weekly"], "name": 3}, 422, "name"),
        ({"email": "ada@example.com", "lists": ["weekly"], "ip": "nowhere"}, 422, "ip"),
        ({"email": "ada@example.com", "lists": ["nope"]}, 404, "lists"),
    ],
)
def test_a_bad_subscriber_names_the_field(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    make_list("weekly")
    assert_error(api.post("/subscribers", body), status, field)
    assert api.get("/subscribers").get_json()["items"] == []


def test_a_subscriber_is_found_by_id_and_by_email(api: Api) -> None:
    weekly = make_list("weekly")
    ada = make_subscriber("ada@example.com", lists=(weekly,), name="Ada")
    by_id = api.get(f"/subscribers/{ada.id}")
    assert by_id.status_code == 200
    assert by_id.get_json()["email"] == "ada@example.com"
    assert by_id.get_json()["subscriptions"] == [
        {
            "list": "weekly",
            "status": "confirmed",
            "source": "admin",
            "created_at": ada.subscriptions[0].created_at.isoformat(),
            "confirmed_at": None,
            "unsubscribed_at": None,
        }
    ]
    found = api.get("/subscribers", query_string={"email": "ADA@example.com"}).get_json()
    assert [item["id"] for item in found["items"]] == [ada.id]
    assert found["next"] is None
    missing = api.get("/subscribers", query_string={"email": "bob@example.com"}).get_json()
    assert missing == {"items": [], "next": None}
    assert_error(api.get("/subscribers/999999"), 404, None)


def test_subscribers_are_paged_by_id(api: Api) -> None:
    weekly = make_list("weekly")
    ids = [make_subscriber(lists=(weekly,)).id for _ in range(5)]

    first = api.get("/subscribers", query_string={"limit": 2}).get_json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert first["next"] == ids[1]
    assert all(item["subscriptions"][0]["list"] == "weekly" for item in first["items"])

    second = api.get("/subscribers", query_string={"after": first["next"], "limit": 2}).get_json()
    assert [item["id"] for item in second["items"]] == ids[2:4]
    last = api.get("/subscribers", query_string={"after": second["next"], "limit": 2}).get_json()
    assert [item["id"] for item in last["items"]] == ids[4:]
    assert last["next"] is None

    everyone = api.get("/subscribers").get_json()
    assert [item["id"] for item in everyone["items"]] == ids
    assert everyone["next"] is None


def test_subscribers_can_be_paged_within_a_list_and_status(api: Api) -> None:
    weekly, alerts = make_list("weekly"), make_list("alerts")
    on_weekly = make_subscriber(lists=(weekly,))
    make_subscriber(lists=(alerts,))
    waiting = make_subscriber(lists=(weekly,), status=SubscriptionStatus.UNCONFIRMED)
    page = api.get("/subscribers", query_string={"list": "weekly"}).get_json()
    assert [item["id"] for item in page["items"]] == [on_weekly.id, waiting.id]
    page = api.get("/subscribers", query_string={"list": "weekly", "status": "unconfirmed"})
    assert [item["id"] for item in page.get_json()["items"]] == [waiting.id]
    assert_error(api.get("/subscribers", query_string={"list": "nope"}), 404, None)
    bad_status = api.get("/subscribers", query_string={"list": "weekly", "status": "happy"})
    assert_error(bad_status, 422, "status")


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"),
     ({"after": -1}, "after"), ({"after": "x"}, "after")],
)
def test_bad_paging_parameters_name_the_parameter(
    api: Api, query: dict[str, Any], field: str
) -> None:
    assert_error(api.get("/subscribers", query_string=query), 422, field)


def test_the_page_size_is_capped_at_1000(api: Api) -> None:
    assert api.get("/subscribers", query_string={"limit": 1000}).status_code == 200


# --- statements ---------------------------------------------------------------------------


def test_a_statement_is_imported_from_a_markdown_body(api: Api) -> None:
    response = api.client.post(
        API + "/statements",
        data=SEED_STATEMENT.read_bytes(),
        content_type="text/markdown; charset=utf-8",
        headers=api.headers,
        query_string={"filename": SEED_STATEMENT.name},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["id"] > 0
    assert created["slug"] == "post-election-mobilization"
    assert created["title"] == "An Anarchist Call for Post-election Mobilization"

    statement = api.get(f"/statements/{created['id']}").get_json()
    assert set(statement) >= {
        "id", "slug", "title", "author", "date", "markdown", "html", "front_matter",
    }
    assert statement["author"] == "MACC"
    assert statement["date"] == "2020-11-03"
    assert statement["front_matter"]["layout"] == "post"
    assert "Everybody Out!" in statement["markdown"]
    html = statement["html"]
    everybody_out = "https://itsgoingdown.org/everybody-out-resources-for-a-season-of-post-election-unrest/"
    assert f'href="{everybody_out}"' in html
    assert "https://twitter.com/macc_nyc/status/1323661176732004356/photo/1" in html
    assert "<script" not in html.lower()

    listed = api.get("/statements").get_json()["items"]
    assert [(item["id"], item["slug"]) for item in listed] == [(created["id"], created["slug"])]


def test_a_statement_posted_without_a_filename_takes_its_slug_from_the_title(api: Api) -> None:
    # The README's curl --data-binary example: no file name, so no Jekyll slug or date from it.
    response = api.client.post(
        API + "/statements",
        data=SEED_STATEMENT.read_bytes(),
        headers={**api.headers, "Content-Type": "text/markdown"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["slug"] == "an-anarchist-call-for-post-election-mobilization"
    assert response.get_json()["date"] == "2020-11-03"  # from the front matter


def test_a_statement_is_imported_from_json_and_cleaned(api: Api) -> None:
    markdown = (
        "---\ntitle: Hello\nslug: hello\nauthor: Us\ndate: 2021-05-01\n---\n\n"
        "Read [this](https://example.org/read).\n\n<script>alert('x')</script>\n"
        "<a href=\"javascript:alert(1)\">bad</a>\n"
    )
    response = api.post("/statements", {"markdown": markdown})
    assert response.status_code == 201
    statement = api.get(f"/statements/{response.get_json()['id']}").get_json()
    assert statement["slug"] == "hello"
    assert statement["date"] == "2021-05-01"
    assert 'href="https://example.org/read"' in statement["html"]
    assert "<script" not in statement["html"]
    assert "javascript:" not in statement["html"]


def test_importing_the_same_slug_again_updates_it(api: Api) -> None:
    first = api.post("/statements", {"markdown": "---\ntitle: One\nslug: same\n---\nOne"})
    again = api.post("/statements", {"markdown": "---\ntitle: Two\nslug: same\n---\nTwo"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["title"] == "Two"


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"json": {}}, 422, "markdown"),
        ({"json": {"markdown": 5}}, 422, "markdown"),
        ({"json": {"markdown": "   "}}, 422, "markdown"),
        ({"data": "---\ntitle: [unclosed\n---\nx", "content_type": "text/markdown"}, 422,
         "markdown"),
        ({"data": "<p>hi</p>", "content_type": "text/html"}, 415, "markdown"),
    ],
)
def test_a_bad_statement_names_the_markdown_field(
    api: Api, kwargs: dict[str, Any], status: int, field: str
) -> None:
    response = api.client.post(API + "/statements", headers=api.headers, **kwargs)
    assert_error(response, status, field)


def test_an_unknown_statement_is_a_404(api: Api) -> None:
    assert_error(api.get("/statements/424242"), 404, None)


# --- issues -------------------------------------------------------------------------------


def test_an_issue_is_created_sent_and_reaches_sent(
    api: Api, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    weekly = make_list("weekly")
    make_subscriber("ada@example.com", lists=(weekly,))
    make_subscriber("bob@example.com", lists=(weekly,))
    make_subscriber("eve@example.com", lists=(weekly,), status=SubscriptionStatus.UNCONFIRMED)
    first, second = make_statement(), make_statement()

    response = api.post(
        "/issues",
        {"subject": "This week", "statements": [second.id, first.id], "lists": ["weekly"],
         "preheader": "Two statements", "intro": "Hello *all*"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    issue = response.get_json()
    assert issue["status"] == "draft"
    assert issue["statements"] == [second.id, first.id]
    assert issue["lists"] == ["weekly"]
    assert issue["counts"] == {"total": 0, "sent": 0, "failed": 0, "pending": 0, "skipped": 0}
    assert issue["started_at"] is None and issue["finished_at"] is None
    assert response.headers["Location"].endswith(f"/api/v1/issues/{issue['id']}")

    sending = api.post(f"/issues/{issue['id']}/send")
    assert sending.status_code == 202, sending.get_data(as_text=True)
    assert sending.get_json()["status"] in {"scheduled", "sending"}

    run_jobs()
    done = api.get(f"/issues/{issue['id']}").get_json()
    assert done["status"] == "sent"
    assert done["counts"] == {"total": 2, "sent": 2, "failed": 0, "pending": 0, "skipped": 0}
    assert done["started_at"] is not None and done["finished_at"] is not None
    recipients = sorted(rcpt for message in mailbox.messages for rcpt in message.recipients)
    assert recipients == ["ada@example.com", "bob@example.com"]

    assert_error(api.post(f"/issues/{issue['id']}/send"), 409, "status")
    listed = api.get("/issues").get_json()["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(issue["id"], "sent")]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"statements": ["S"], "lists": ["weekly"]}, 422, "subject"),
        ({"subject": "", "statements": ["S"], "lists": ["weekly"]}, 422, "subject"),
        ({"subject": "Hi", "lists": ["weekly"]}, 422, "statements"),
        ({"subject": "Hi", "statements": [], "lists": ["weekly"]}, 422, "statements"),
        ({"subject": "Hi", "statements": ["one"], "lists": ["weekly"]}, 422, "statements"),
        ({"subject": "Hi", "statements": [True], "lists": ["weekly"]}, 422, "statements"),
        ({"subject": "Hi", "statements": ["S"]}, 422, "lists"),
        ({"subject": "Hi", "statements": ["S"], "lists": [1]}, 422, "lists"),
        ({"subject": "Hi", "statements": ["S"], "lists": ["weekly"], "template": "x"}, 422,
         "template"),
        ({"subject": "Hi", "statements": [424242], "lists": ["weekly"]}, 404, "statements"),
        ({"subject": "Hi", "statements": ["S"], "lists": ["nope"]}, 404, "lists"),
        ({"subject": "Hi", "statements": ["S"], "lists": ["weekly"], "template": 424242}, 404,
         "template"),
    ],
)
def test_a_bad_issue_names_the_field(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    make_list("weekly")
    statement = make_statement()
    if "statements" in body:  # "S" stands for a statement that exists
        body = {**body, "statements": [statement.id if s == "S" else s for s in body["statements"]]}
    assert_error(api.post("/issues", body), status, field)
    assert api.get("/issues").get_json()["items"] == []


def test_an_unknown_issue_is_a_404(api: Api) -> None:
    assert_error(api.get("/issues/424242"), 404, None)
    assert_error(api.post("/issues/424242/send"), 404, None)


def test_the_answer_to_a_send_has_the_same_status_and_counts_as_the_issue(api: Api) -> None:
    weekly = make_list("weekly")
    make_subscriber("ada@example.com", lists=(weekly,))
    issue = make_issue((make_statement(),), (weekly,))

    sent = api.post(f"/issues/{issue.id}/send").get_json()
    polled = api.get(f"/issues/{issue.id}").get_json()

    assert set(sent) == set(polled)  # rate, eta and seconds_left too
    assert (sent["status"], sent["counts"]) == (polled["status"], polled["counts"])


def test_an_issue_shows_its_counts(api: Api) -> None:
    weekly = make_list("weekly")
    issue = make_issue((make_statement(),), (weekly,), subject="Old news")
    body = api.get(f"/issues/{issue.id}").get_json()
    assert body["subject"] == "Old news"
    assert body["status"] == "draft"
    assert set(body["counts"]) == {"total", "sent", "failed", "pending", "skipped"}
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", body["created_at"])


def test_a_path_the_converter_refuses_is_a_json_404(api: Api) -> None:
    assert_error(api.post("/issues/x/retry"), 404, None)
    assert_error(api.get("/subscribers/ada"), 404, None)
    assert_error(api.get(""), 404, None)  # /api/v1 itself, not a redirect to /api/v1/


# --- limits: what is parsed is capped before it is parsed ---------------------------------


def test_a_body_over_the_api_cap_is_refused_before_it_is_read(api: Api) -> None:
    markdown = "---\ntitle: Big\n---\n" + "word " * 220_000  # over 1 MiB, the largest call's cap
    response = api.post("/statements", {"markdown": markdown})
    assert_error(response, 413, None)
    assert api.get("/statements").get_json()["items"] == []


def test_a_call_caps_its_body_below_the_api_cap(api: Api) -> None:
    body = {"slug": "news", "name": "News", "description": "x" * 20_000}  # lists: 16 KiB
    assert_error(api.post("/lists", body), 413, None)
    assert api.get("/lists").get_json()["items"] == []


def test_json_nested_too_deeply_is_a_400(api: Api) -> None:
    response = api.client.post(
        API + "/statements", data="[" * 200_000, content_type="application/json",
        headers=api.headers,
    )
    assert_error(response, 400, None)


def test_a_long_array_is_refused_before_its_items_are_looked_up(
    app: Flask, api: Api
) -> None:
    make_list("weekly")
    with statements_counted(app) as statements:
        response = api.post(
            "/subscribers", {"email": "ada@example.com", "lists": ["weekly"] * 4000}
        )
    assert_error(response, 422, "lists")
    assert not [sql for sql in statements if "lists" in sql]


def test_repeated_entries_are_looked_up_once(app: Flask, api: Api) -> None:
    make_list("weekly", optin=OptIn.SINGLE)
    with statements_counted(app) as statements:
        response = api.post(
            "/subscribers", {"email": "ada@example.com", "lists": ["weekly"] * 100}
        )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert [s["list"] for s in response.get_json()["subscriptions"]] == ["weekly"]
    list_lookups = [sql for sql in statements if re.search(r"\bFROM lists\b", sql)]
    assert len(list_lookups) <= 3


@contextmanager
def statements_counted(app: Flask) -> Iterator[list[str]]:
    """The SQL statements run inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@pytest.fixture
def tx_template(app: Flask) -> str:
    db.session.add(Template(name="Receipt", mjml=TX_MJML, text="Thanks, {{ to.name }}.\n",
                            kind=TemplateKind.TRANSACTIONAL))
    db.session.commit()
    return "Receipt"


TX_MJML = "<mjml><mj-body><mj-section><mj-column><mj-text>Thanks.</mj-text></mj-column>" \
    "</mj-section></mj-body></mjml>"


def test_a_tx_subject_is_checked_for_length_before_it_is_rendered(
    api: Api, tx_template: str
) -> None:
    subject = "{# " + "x" * 300 + " #}Your receipt"  # renders short, but is not short
    body = {"to": "ada@example.com", "template": tx_template, "subject": subject}
    assert_error(api.post("/tx", body), 422, "subject")


def test_a_tx_subject_that_would_render_huge_is_refused_without_rendering_it(
    api: Api, tx_template: str
) -> None:
    body = {"to": "ada@example.com", "template": tx_template, "subject": "{{ 'a'*(10**8) }}"}
    tracemalloc.start()
    try:
        response = api.post("/tx", body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A subject that does not render is the template's fault, as for {{ data.missing }}.
    assert "(subject)" in assert_error(response, 422, "template")
    assert peak < 20 * 1024 * 1024


def test_a_name_waiting_for_its_confirmation_is_not_shown_as_an_attribute(
    api: Api, app: Flask
) -> None:
    from newsletter.audience.models import ConsentSource
    from newsletter.audience.subscriptions import subscribe

    make_list(slug="news", optin=OptIn.DOUBLE)
    subscriber = subscribe(
        "ada@example.com", name="Ada", list_slugs=["news"], source=ConsentSource.FORM
    )
    db.session.commit()

    answer = api.get(f"/subscribers/{subscriber.id}").get_json()

    assert answer["name"] == ""
    assert answer["attributes"] == {}
