"""Schemathesis against GET /api/v1/openapi.json, through the app in-process (WSGI): with a
valid token and a few rows to find, no call answers a 5xx, and every answer's status, content
type, headers and body are ones the document allows.

Bounded: ``EXAMPLES`` valid and as many invalid cases per operation, derandomized so that
every run tries the same ones (``NEWSLETTER_SCHEMATHESIS_EXAMPLES`` raises the number for a
deeper look). Driven through Hypothesis directly (``as_strategy``): schemathesis's own pytest
loader does not run under pytest 9.2.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from newsletter.audience.models import OptIn
from newsletter.audience.segments.service import create_segment
from newsletter.content.models import Template, TemplateKind
from newsletter.delivery.send import dispatcher
from newsletter.delivery.transactional import queue_message
from newsletter.delivery.webhooks.service import create_endpoint
from newsletter.events import EVENT_KINDS
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber

EXAMPLES = int(os.environ.get("NEWSLETTER_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: path parameters that find the seeded rows; a third of the cases use each
SEEDED = {
    "issue_id": [1, 2],
    "statement_id": [1, 2],
    "subscriber_id": [1, 3],
    "tx_id": [1, 1],
    "slug": ["weekly", "alerts"],
    "list_id": [1, 2],
    "template_id": [5, 1],
    "segment_id": [1, 2],
    "endpoint_id": [1, 2],
}
MJML = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>Thanks, {{ to.name }}.</mj-text>"
    "</mj-column></mj-section></mj-body></mjml>"
)
#: bodies that succeed on the seeded rows, so that success answers are checked too
GOOD_BODIES = {
    "POST /issues": {"subject": "This week", "statements": [2, 1], "lists": ["weekly"]},
    "POST /subscribers": {"email": "dee@example.org", "lists": ["weekly", "alerts"]},
    "POST /statements": {"markdown": "---\ntitle: Hello\nauthor: Us\n---\nHello *you*.\n"},
    "POST /tx": {"to": "ada@example.org", "template": "Receipt", "subject": "Hi {{ to.email }}",
                 "data": {"order": 7}},
    "POST /issues/{issue_id}/schedule": {"send_at": "2999-01-01T09:00", "timezone": "UTC"},
    "PATCH /subscribers/{subscriber_id}": {
        "name": "Bo", "attributes": {"city": "Lima"},
        "subscriptions": [{"list": "alerts", "status": "unsubscribed"}],
    },
    "PATCH /lists/{list_id}": {"description": "Now and then", "archived": False},
    "POST /templates": {"name": "Thanks", "kind": "transactional", "mjml": MJML,
                        "text": "Thanks.\n"},
    "PATCH /templates/{template_id}": {"name": "Renamed"},
    "POST /segments": {"name": "Weekly readers", "query": 'list = "weekly" and not bounced'},
    "PATCH /segments/{segment_id}": {"query": 'attributes.city contains "mad"'},
    "POST /webhooks": {"url": "https://hooks.example.org/news", "events": ["issue.sent"]},
}


@pytest.fixture
def authorization(app: Flask) -> dict[str, str]:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return {"Authorization": f"Bearer {create_api_token('robot@example.org')}"}


@pytest.fixture
def seeded(app: Flask) -> None:
    """A few rows of each kind, so that the ids in ``SEEDED`` find something."""
    weekly = make_list("weekly", optin=OptIn.SINGLE)
    alerts = make_list("alerts")
    for name in ("ada", "bo", "cy"):
        make_subscriber(f"{name}@example.org", lists=(weekly, alerts))
    statements = [make_statement(front_matter={"layout": "post", "tags": ["a"]}) for _ in "12"]
    draft = make_issue(statements, (weekly,), subject="Draft")
    sending = make_issue(statements[:1], (weekly, alerts), subject="Sending")
    make_issue(statements[1:], (alerts,), subject="Another draft")
    dispatcher.request_send(sending.id)
    dispatcher.start_issue(sending.id)
    create_segment("Alerts", 'list = "alerts"')
    create_segment("Ada", 'email = "ada@example.org" or attributes.age > 30')
    for path in ("a", "b"):
        create_endpoint(f"https://hooks.example.org/{path}", ["issue.sent"], known=EVENT_KINDS)
    db.session.add(Template(name="Receipt", mjml=MJML, text="Thanks, {{ to.name }}.\n",
                            kind=TemplateKind.TRANSACTIONAL))
    db.session.commit()
    queue_message(to="ada@example.org", subject="Your receipt", text="Thanks.\n",
                  html="<p>Thanks.</p>")
    assert draft.id == 1


@pytest.fixture
def api_schema(app: Flask, authorization: dict[str, str], seeded: None) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=authorization)


def test_every_answer_is_one_the_document_allows(
    api_schema: Any, authorization: dict[str, str]
) -> None:
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=cases(operation, mode))
            @settings(
                max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                case.call_and_validate(headers=authorization, checks=CHECKS)

            try:
                call()
            except Exception as error:  # noqa: BLE001 - report every operation, then fail
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)


def cases(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Generated cases for the operation, some with ids of seeded rows or a body that works."""
    names = [parameter.name for parameter in operation.path_parameters]
    strategies = [operation.as_strategy(generation_mode=mode)]
    good = GOOD_BODIES.get(operation.label)
    if good is not None and mode is GenerationMode.POSITIVE:
        strategies.append(operation.as_strategy(
            generation_mode=mode, body=good, media_type="application/json",
            path_parameters={name: SEEDED[name][0] for name in names},
        ))
    if names:
        strategies += [
            operation.as_strategy(
                generation_mode=mode,
                path_parameters={name: SEEDED[name][i] for name in names},
            )
            for i in range(2)
        ]
    return st.one_of(strategies)
