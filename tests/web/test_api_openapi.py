"""GET /api/v1/openapi.json describes every route of the API, and the answers match it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.web.api.blueprint import CATCH_ALL_ENDPOINTS
from tests.factories import make_issue, make_list, make_statement, make_subscriber

API = "/api/v1"
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def headers(app: Flask) -> dict[str, str]:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return {"Authorization": f"Bearer {create_api_token('robot@example.org')}"}


@pytest.fixture
def document(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(API + "/openapi.json", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def api_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) for every route of the blueprint."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint in CATCH_ALL_ENDPOINTS:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix(API))
        for method in (rule.methods or set()) - IMPLICIT_METHODS:
            routes.add((path, method.lower()))
    return routes


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_every_route_is_documented_and_nothing_else(app: Flask, document: dict[str, Any]) -> None:
    routes = api_routes(app)
    assert len(routes) >= 12
    assert routes == documented(document)


def test_the_contract_paths_are_there(document: dict[str, Any]) -> None:
    assert {
        ("/lists", "post"), ("/lists", "get"), ("/subscribers", "post"), ("/subscribers", "get"),
        ("/statements", "post"), ("/statements/{statement_id}", "get"), ("/issues", "post"),
        ("/issues/{issue_id}/send", "post"), ("/issues/{issue_id}", "get"),
        ("/openapi.json", "get"),
    } <= documented(document)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert document["openapi"].startswith("3.1")
    validator.validate(document)


def test_operations_have_unique_ids_and_say_who_may_call(document: dict[str, Any]) -> None:
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    # A provider webhook takes no token (``security: []``); its provider's check refuses.
    assert all(
        "401" in op["responses"] or (op.get("security") == [] and "403" in op["responses"])
        for op in operations
    )
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_answers_match_their_schemas(
    client: FlaskClient, headers: dict[str, str], document: dict[str, Any]
) -> None:
    pytest.importorskip("openapi_spec_validator")
    from jsonschema.validators import validator_for
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    registry: Registry[Any] = Registry().with_resource(
        "urn:api", Resource.from_contents(document, default_specification=DRAFT202012)
    )

    def check(path: str, schema: str, status: int = 200) -> None:
        response = client.get(API + path, headers=headers)
        assert response.status_code == status, response.get_data(as_text=True)
        reference = {"$ref": f"urn:api#/components/schemas/{schema}"}
        validator_for(reference)(reference, registry=registry).validate(response.get_json())

    weekly = make_list("weekly")
    subscriber = make_subscriber(lists=(weekly,))
    statement = make_statement(front_matter={"layout": "post", "tags": ["a", "b"]})
    issue = make_issue((statement,), (weekly,))
    check("/lists", "ListPage")
    check("/lists/weekly", "List")
    check("/subscribers", "SubscriberPage")
    check(f"/subscribers/{subscriber.id}", "Subscriber")
    check("/statements", "StatementPage")
    check(f"/statements/{statement.id}", "Statement")
    check("/issues", "IssuePage")
    check(f"/issues/{issue.id}", "Issue")
    check("/issues/999999", "Error", status=404)
