"""Segments through the API and the admin pages, issues that target them, and the CSV
export from the admin, the API and the CLI."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.audience.models import SubscriberStatus, SubscriptionStatus
from newsletter.auth.models import Role
from newsletter.auth.services import create_api_token, create_user
from newsletter.content.models import Issue
from newsletter.extensions import db
from tests.factories import make_list, make_statement, make_subscriber
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin, token_for
from tests.web.api_client import Api, assert_error


@pytest.fixture
def people(app: Flask) -> dict[str, int]:
    """news: ana (Madrid), bo (Lima), cy (Madrid, blocklisted), dee (Madrid, unsubscribed);
    events: eve (Madrid), fay (no city, a formula for a name)."""
    news, events = make_list("news"), make_list("events")
    ids = {}
    for name, lst, city, extra in [
        ("ana", news, "Madrid", {}),
        ("bo", news, "Lima", {}),
        ("cy", news, "Madrid", {"status": SubscriberStatus.BLOCKLISTED}),
        ("dee", news, "Madrid", {}),
        ("eve", events, "Madrid", {}),
        ("fay", events, None, {}),
    ]:
        attributes = {"city": city} if city else {"_internal": "x", "score": "-5"}
        status = (SubscriptionStatus.UNSUBSCRIBED if name == "dee"
                  else SubscriptionStatus.CONFIRMED)
        person = make_subscriber(f"{name}@example.org", lists=(lst,), status=status,
                                 attributes=attributes,
                                 name="=HYPERLINK(\"http://x\")" if name == "fay" else name)
        if extra:
            person.status = extra["status"]
            db.session.commit()
        ids[name] = person.id
    return ids


@pytest.fixture
def api(app: Flask) -> Api:
    create_user("robot@example.org", "a long enough password 123")
    return Api(app.test_client(), create_api_token("robot@example.org"))


# --- the API ------------------------------------------------------------------------------


def test_post_segments_answers_with_the_count(api: Api, people: dict[str, int]) -> None:
    made = api.post("/segments", {"name": "Madrid", "query": 'attributes.city = "Madrid"'})
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    assert {key: body[key] for key in ("name", "query", "count")} == {
        "name": "Madrid", "query": 'attributes.city = "Madrid"', "count": 4,
    }
    assert made.headers["Location"].endswith(f"/api/v1/segments/{body['id']}")
    assert api.get(f"/segments/{body['id']}").get_json()["count"] == 4
    listed = api.get("/segments").get_json()["items"]
    assert [item["name"] for item in listed] == ["Madrid"]

    changed = api.call("PATCH", f"/segments/{body['id']}",
                       json={"query": 'attributes.city = "Madrid" and not bounced'})
    assert changed.status_code == 200
    assert changed.get_json()["count"] == 3
    assert api.call("DELETE", f"/segments/{body['id']}").status_code == 204
    assert_error(api.get(f"/segments/{body['id']}"), 404, None)


def test_a_bad_query_is_a_422_with_the_position(api: Api, people: dict[str, int]) -> None:
    response = api.post("/segments", {"name": "x", "query": 'list = "news" and city = 1'})
    message = assert_error(response, 422, "query")
    assert response.get_json()["error"]["position"] == 19
    assert "column 19" in message
    made = api.post("/segments", {"name": "x", "query": "bounced"}).get_json()
    patched = api.call("PATCH", f"/segments/{made['id']}", json={"query": "bounced <"})
    assert_error(patched, 422, "query")
    assert patched.get_json()["error"]["position"] == 9
    assert_error(api.post("/segments", {"name": "x", "query": "bounced"}), 409, "name")


def test_segments_and_the_export_are_for_admins(app: Flask, people: dict[str, int]) -> None:
    # a query may name addresses: like the subscribers, only admins see segments
    create_user("ed@example.org", "a long enough password 123", role=Role.EDITOR)
    editor = Api(app.test_client(), create_api_token("ed@example.org"))
    assert_error(editor.get("/segments"), 403, None)
    assert_error(editor.post("/segments", {"name": "x", "query": "bounced"}), 403, None)
    assert_error(editor.get("/subscribers/export"), 403, None)


def test_an_issue_posted_with_segments_sends_only_to_matching_people(
    api: Api, people: dict[str, int], mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    statement = make_statement()
    madrid = api.post("/segments", {"name": "Madrid", "query": 'attributes.city = "Madrid"'})
    segment_id = madrid.get_json()["id"]
    issue = api.post("/issues", {"subject": "Madrid news", "statements": [statement.id],
                                 "lists": ["news"], "segments": [segment_id]})
    assert issue.status_code == 201, issue.get_data(as_text=True)
    assert issue.get_json()["segments"] == [segment_id]
    issue_id = issue.get_json()["id"]
    assert api.post(f"/issues/{issue_id}/send").status_code == 202
    run_jobs()
    received = Counter(r for m in mailbox.messages for r in m.recipients)
    # cy is blocklisted, dee unsubscribed, bo in Lima, eve not on news
    assert received == {"ana@example.org": 1}
    assert api.get(f"/issues/{issue_id}").get_json()["counts"]["sent"] == 1


def test_an_issue_with_segments_and_no_lists_goes_to_everyone_confirmed_who_matches(
    api: Api, people: dict[str, int], mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    statement = make_statement()
    madrid = api.post("/segments", {"name": "Madrid", "query": 'attributes.city = "Madrid"'})
    issue = api.post("/issues", {"subject": "Madrid", "statements": [statement.id],
                                 "segments": [madrid.get_json()["id"]]})
    assert issue.status_code == 201, issue.get_data(as_text=True)
    assert api.post(f"/issues/{issue.get_json()['id']}/send").status_code == 202
    run_jobs()
    received = Counter(r for m in mailbox.messages for r in m.recipients)
    assert received == {"ana@example.org": 1, "eve@example.org": 1}


def test_an_issue_needs_lists_or_segments(api: Api, people: dict[str, int]) -> None:
    statement = make_statement()
    none = api.post("/issues", {"subject": "S", "statements": [statement.id]})
    assert "at least one list or segment" in assert_error(none, 422, "lists")
    unknown = api.post("/issues", {"subject": "S", "statements": [statement.id],
                                   "segments": [999]})
    assert_error(unknown, 404, "segments")


def test_api_export_streams_csv(api: Api, people: dict[str, int]) -> None:
    segment = api.post("/segments", {"name": "M", "query": 'attributes.city = "Madrid"'})
    response = api.get(f"/subscribers/export?list=news&segment={segment.get_json()['id']}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["email"] for row in rows] == ["ana@example.org", "cy@example.org"]
    assert_error(api.get("/subscribers/export?list=nope"), 404, None)
    assert_error(api.get("/subscribers/export?segment=999"), 404, None)


# --- the admin pages ----------------------------------------------------------------------


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


def test_make_edit_and_delete_a_segment_in_the_admin(
    admin: FlaskClient, people: dict[str, int]
) -> None:
    page = admin.get("/admin/segments/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "segments.js" in html and "<script>" not in html
    bad = admin.post("/admin/segments/new", data={
        "csrf_token": token_for(admin, "/admin/segments/new"), "name": "Madrid",
        "query": 'attributes.city = "Madrid" or',
    })
    assert bad.status_code == 422
    assert "at column 30" in bad.get_data(as_text=True)
    made = admin.post("/admin/segments/new", data={
        "csrf_token": token_for(admin, "/admin/segments/new"), "name": "Madrid",
        "query": 'attributes.city = "Madrid"',
    })
    assert made.status_code == 302
    listing = admin.get("/admin/segments").get_data(as_text=True)
    assert "Madrid" in listing and "attributes.city = &#34;Madrid&#34;" in listing

    from newsletter.audience.segments.service import list_segments

    segment_id = list_segments()[0].id
    edited = admin.post(f"/admin/segments/{segment_id}/edit", data={
        "csrf_token": token_for(admin, f"/admin/segments/{segment_id}/edit"),
        "name": "Lima", "query": 'attributes.city = "Lima"',
    })
    assert edited.status_code == 302
    assert [s.query for s in list_segments()] == ['attributes.city = "Lima"']
    deleted = admin.post(f"/admin/segments/{segment_id}/delete",
                         data={"csrf_token": token_for(admin, "/admin/segments")})
    assert deleted.status_code == 302
    assert list_segments() == []


def test_the_live_count_answers_a_count_or_the_error_with_its_position(
    admin: FlaskClient, people: dict[str, int]
) -> None:
    token = token_for(admin, "/admin/segments/new")
    good = admin.post("/admin/segments/count",
                      data={"csrf_token": token, "query": 'list = "news"'})
    assert (good.status_code, good.get_json()) == (200, {"count": 3})
    bad = admin.post("/admin/segments/count",
                     data={"csrf_token": token, "query": 'list = "news" and ('})
    assert bad.status_code == 200  # a half-typed query is not a failed request
    assert bad.get_json()["error"]["position"] == 20
    assert "expected a field" in bad.get_json()["error"]["message"]
    no_token = admin.post("/admin/segments/count", data={"query": "bounced"})
    assert no_token.status_code == 400


def test_compose_with_a_segment_and_the_issue_page_counts_the_selection(
    admin: FlaskClient, people: dict[str, int]
) -> None:
    from newsletter.audience.segments.service import create_segment

    segment = create_segment("Madrid", 'attributes.city = "Madrid"')
    statement = make_statement()
    form = admin.get("/admin/issues/new").get_data(as_text=True)
    assert 'name="segments"' in form and "Narrow to segments" in form
    saved = admin.post("/admin/issues/new", data={
        "csrf_token": token_for(admin, "/admin/issues/new"), "subject": "Madrid",
        "statements": [str(statement.id)], "lists": ["news"], "segments": [str(segment.id)],
        "template": "",
    })
    assert saved.status_code == 302, saved.get_data(as_text=True)
    issue = db.session.scalars(db.select(Issue)).one()
    assert [s.name for s in issue.segments] == ["Madrid"]
    page = admin.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert 'narrowed to Madrid: about <strong data-field="audience">1</strong>' in page
    # segments only: everyone confirmed on a list in Madrid, not blocklisted
    edited = admin.post(f"/admin/issues/{issue.id}/edit", data={
        "csrf_token": token_for(admin, f"/admin/issues/{issue.id}/edit"), "subject": "Madrid",
        "statements": [str(statement.id)], "segments": [str(segment.id)], "template": "",
    })
    assert edited.status_code == 302, edited.get_data(as_text=True)
    page = admin.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert 'about <strong data-field="audience">2</strong>' in page


def test_admin_export_is_a_streamed_download_with_formulas_neutralised(
    admin: FlaskClient, people: dict[str, int]
) -> None:
    response = admin.get("/admin/subscribers/export.csv")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="subscribers.csv"'
    text = response.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["email", "name", "status", "lists", "created_at", "city", "score"]
    by_email = {row[0]: row for row in rows[1:]}
    assert len(by_email) == 6
    assert by_email["fay@example.org"][1] == "'=HYPERLINK(\"http://x\")"
    assert by_email["fay@example.org"][6] == "'-5"
    assert by_email["cy@example.org"][2:4] == ["blocklisted", "news"]
    assert by_email["dee@example.org"][3] == ""  # unsubscribed: on no list
    assert "_internal" not in text
    listed = admin.get("/admin/subscribers/export.csv?list=events").get_data(as_text=True)
    assert [row["email"] for row in csv.DictReader(io.StringIO(listed))] == [
        "eve@example.org", "fay@example.org",
    ]
    assert admin.get("/admin/subscribers/export.csv?list=nope").status_code == 404


def test_cli_export_writes_csv_to_stdout(app: Flask, people: dict[str, int]) -> None:
    from newsletter.audience.segments.service import create_segment

    segment = create_segment("Lima", 'attributes.city = "Lima"')
    runner = app.test_cli_runner()
    result = runner.invoke(args=["subscribers", "export", "--segment", str(segment.id)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["email"], row["lists"], row["city"]) for row in rows] == [
        ("bo@example.org", "news", "Lima"),
    ]
    everyone = runner.invoke(args=["subscribers", "export"])
    assert len(list(csv.DictReader(io.StringIO(everyone.stdout)))) == 6
    missing = runner.invoke(args=["subscribers", "export", "--list", "nope"])
    assert missing.exit_code != 0 and "no list 'nope'" in missing.output


def test_export_reads_in_keyset_pages(app: Flask, people: dict[str, int]) -> None:
    from newsletter.audience.export import export_csv

    pieces = list(export_csv(chunk=2))
    assert len(pieces) == 1 + 3  # the header, then three pages of two
    assert sum(piece.count("\r\n") for piece in pieces) == 7
