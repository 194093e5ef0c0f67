"""GET /openapi.json: the OpenAPI 3.1 document of the API, written out by hand.

Kept next to the routes it describes; a test checks that every route of the blueprint is in
``paths`` with the same methods, and that the document is valid OpenAPI.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from newsletter.web.api.blueprint import bp

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{description}"}


def _nullable(type_: str, **extra: Any) -> dict[str, Any]:
    return {"type": [type_, "null"], **extra}


_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATE_TIME = _nullable("string", format="date-time")
_SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "examples": ["weekly"]}


def _items(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(name)}},
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "field"],
                "properties": {
                    "message": {"type": "string"},
                    "field": {
                        **_nullable("string"),
                        "description": "the request field at fault, when there is one",
                    },
                },
            }
        },
    },
    "ListCreate": {
        "type": "object",
        "required": ["slug", "name"],
        "additionalProperties": False,
        "properties": {
            "slug": _SLUG,
            "name": {"type": "string"},
            "description": {"type": "string", "default": ""},
            "optin": {"enum": ["double", "single"], "default": "double"},
            "public": {"type": "boolean", "default": True},
        },
    },
    "List": {
        "type": "object",
        "required": ["id", "slug", "name", "description", "optin", "public", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "slug": _SLUG,
            "name": {"type": "string"},
            "description": {"type": "string"},
            "optin": {"enum": ["double", "single"]},
            "public": {"type": "boolean"},
            "created_at": _DATE_TIME,
        },
    },
    "SubscriberCreate": {
        "type": "object",
        "required": ["email", "lists"],
        "additionalProperties": False,
        "properties": {
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string", "default": ""},
            "lists": {"type": "array", "minItems": 1, "items": _SLUG},
            "confirmed": {
                "type": "boolean",
                "default": False,
                "description": "consent was confirmed elsewhere: skip the confirmation mail "
                "of double opt-in lists",
            },
            "ip": {
                "type": "string",
                "description": "the subscriber's IP address, kept as the record of consent",
            },
        },
    },
    "Subscription": {
        "type": "object",
        "required": ["list", "status"],
        "properties": {
            "list": _SLUG,
            "status": {"enum": ["unconfirmed", "confirmed", "unsubscribed"]},
            "source": {"enum": ["form", "api", "import", "admin"]},
            "created_at": _DATE_TIME,
            "confirmed_at": _NULLABLE_DATE_TIME,
            "unsubscribed_at": _NULLABLE_DATE_TIME,
        },
    },
    "Subscriber": {
        "type": "object",
        "required": ["id", "email", "name", "status", "subscriptions"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string"},
            "status": {"enum": ["active", "blocklisted"]},
            "attributes": {"type": "object"},
            "created_at": _DATE_TIME,
            "subscriptions": {"type": "array", "items": _ref("Subscription")},
        },
    },
    "SubscriberPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("Subscriber")},
            "next": {
                **_nullable("integer"),
                "description": "pass as `after` for the next page; null on the last page",
            },
        },
    },
    "StatementCreate": {
        "type": "object",
        "required": ["markdown"],
        "additionalProperties": False,
        "properties": {
            "markdown": {
                "type": "string",
                "description": "the Markdown file, YAML front matter included",
            },
            "filename": {
                "type": "string",
                "description": "a Jekyll file name (YYYY-MM-DD-slug.md) giving slug and date",
            },
        },
    },
    "StatementSummary": {
        "type": "object",
        "required": ["id", "slug", "title", "author", "date"],
        "properties": {
            "id": {"type": "integer"},
            "slug": {"type": "string"},
            "title": {"type": "string"},
            "author": {"type": "string"},
            "date": _nullable("string", format="date"),
            "created_at": _DATE_TIME,
            "updated_at": _DATE_TIME,
        },
    },
    "Statement": {
        "allOf": [
            _ref("StatementSummary"),
            {
                "type": "object",
                "required": ["markdown", "html", "front_matter"],
                "properties": {
                    "markdown": {"type": "string"},
                    "html": {"type": "string", "description": "the cleaned HTML rendering"},
                    "front_matter": {"type": "object"},
                },
            },
        ]
    },
    "IssueCreate": {
        "type": "object",
        "required": ["subject", "statements", "lists"],
        "additionalProperties": False,
        "properties": {
            "subject": {"type": "string", "minLength": 1},
            "statements": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "integer"},
                "description": "statement ids, in their order in the issue",
            },
            "lists": {"type": "array", "minItems": 1, "items": _SLUG},
            "template": {
                **_nullable("integer"),
                "description": "template id; the built-in template when absent",
            },
            "preheader": {"type": "string", "default": ""},
            "intro": {"type": "string", "default": "", "description": "Markdown"},
        },
    },
    "Counts": {
        "type": "object",
        "required": ["total", "sent", "failed", "pending"],
        "properties": {
            key: {"type": "integer", "minimum": 0}
            for key in ("total", "sent", "failed", "pending", "skipped")
        },
    },
    "Issue": {
        "type": "object",
        "required": [
            "id", "subject", "status", "counts", "statements", "lists",
            "created_at", "started_at", "finished_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "subject": {"type": "string"},
            "preheader": {"type": "string"},
            "intro": {"type": "string"},
            "template": _nullable("integer"),
            "status": {"enum": ["draft", "scheduled", "sending", "paused", "cancelled", "sent"]},
            "counts": _ref("Counts"),
            "statements": {"type": "array", "items": {"type": "integer"}},
            "lists": {"type": "array", "items": _SLUG},
            "send_at": _NULLABLE_DATE_TIME,
            "created_at": _DATE_TIME,
            "started_at": _NULLABLE_DATE_TIME,
            "finished_at": _NULLABLE_DATE_TIME,
        },
    },
    "TransactionalCreate": {
        "type": "object",
        "required": ["to", "template", "subject"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string", "format": "email", "description": "the one recipient"},
            "name": {"type": "string", "default": "", "maxLength": 200,
                     "description": "the recipient's name, for the To header and templates"},
            "template": {
                "type": ["string", "integer"],
                "description": "a template's name (or id); it sees `data`, `subject`, "
                "`to.email`, `to.name`, `subscriber.name`, `base_url` and `org_name`",
            },
            "subject": {
                "type": "string",
                "minLength": 1,
                "maxLength": 300,
                "description": "rendered like the template: `Order {{ data.order }}`",
            },
            "data": {
                "type": "object",
                "default": {},
                "description": "anything the template uses, as `data`; at most 64 KiB as JSON",
            },
        },
    },
    "Transactional": {
        "type": "object",
        "required": ["id", "status", "to", "subject", "attempts", "last_reply", "message_id"],
        "properties": {
            "id": {"type": "integer"},
            "status": {
                "enum": ["queued", "sent", "failed"],
                "description": "queued until the relay accepts it (sent) or refuses it for "
                "good or too often (failed)",
            },
            "to": {"type": "string", "format": "email"},
            "name": {"type": "string"},
            "subject": {"type": "string"},
            "template": _nullable("integer"),
            "attempts": {"type": "integer", "minimum": 0},
            "last_reply": {
                **_nullable("string"),
                "description": "the relay's last answer, e.g. `250 2.0.0 Ok` or a 4xx/5xx",
            },
            "message_id": {"type": "string", "description": "the Message-ID, without <>"},
            "created_at": _DATE_TIME,
            "next_attempt_at": _NULLABLE_DATE_TIME,
            "sent_at": _NULLABLE_DATE_TIME,
        },
    },
    "ListPage": _items("List"),
    "StatementPage": _items("StatementSummary"),
    "IssuePage": _items("Issue"),
}

RESPONSES: dict[str, Any] = {
    name: _json(_ref("Error"), description)
    for name, description in {
        "BadRequest": "malformed JSON, or a body that is not a JSON object",
        "Unauthorized": "no token, or a token that is not valid",
        "NotFound": "no such resource (or a list, statement or template named in the body)",
        "Conflict": "clashes with what exists (a taken slug, an issue already sending)",
        "UnsupportedMediaType": "the body is not of a type this call takes",
        "Unprocessable": "a field is missing, mistyped or not acceptable; `field` names it",
    }.items()
}
RESPONSES["Unauthorized"]["headers"] = {
    "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
}


def _id_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "integer"},
    }


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(name)}}}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    errors: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    all_responses = dict(responses)
    all_responses["401"] = _error("Unauthorized")
    codes = {
        "BadRequest": "400",
        "NotFound": "404",
        "Conflict": "409",
        "UnsupportedMediaType": "415",
        "Unprocessable": "422",
    }
    for name in errors:
        all_responses[codes[name]] = _error(name)
    return {"operationId": operation_id, "summary": summary, "responses": all_responses, **extra}


_WRITE_ERRORS = ("BadRequest", "UnsupportedMediaType", "Unprocessable")

PATHS: dict[str, Any] = {
    "/lists": {
        "get": _operation(
            "listLists", "All lists", {"200": _json(_ref("ListPage"), "the lists")}
        ),
        "post": _operation(
            "createList",
            "Create a list",
            {"201": _json(_ref("List"), "the new list")},
            errors=(*_WRITE_ERRORS, "Conflict"),
            requestBody=_body("ListCreate"),
        ),
    },
    "/lists/{slug}": {
        "get": _operation(
            "getList",
            "One list",
            {"200": _json(_ref("List"), "the list")},
            errors=("NotFound",),
            parameters=[
                {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        )
    },
    "/subscribers": {
        "get": _operation(
            "listSubscribers",
            "Find a subscriber by email, or page through subscribers by id",
            {"200": _json(_ref("SubscriberPage"), "a page of subscribers")},
            errors=("NotFound", "Unprocessable"),
            parameters=[
                {
                    "name": "email",
                    "in": "query",
                    "description": "find this address (case-insensitive); no paging then",
                    "schema": {"type": "string"},
                },
                {
                    "name": "after",
                    "in": "query",
                    "description": "subscribers with an id above this (the previous `next`)",
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
                {
                    "name": "list",
                    "in": "query",
                    "description": "only subscribers with a subscription on this list",
                    "schema": _SLUG,
                },
                {
                    "name": "status",
                    "in": "query",
                    "description": "with `list`: only subscriptions in this status",
                    "schema": {"enum": ["unconfirmed", "confirmed", "unsubscribed"]},
                },
            ],
        ),
        "post": _operation(
            "createSubscriber",
            "Subscribe an address to lists, under each list's opt-in rule",
            {
                "201": _json(_ref("Subscriber"), "a new subscriber"),
                "200": _json(_ref("Subscriber"), "a known address, now also on these lists"),
            },
            errors=(*_WRITE_ERRORS, "NotFound", "Conflict"),
            requestBody=_body("SubscriberCreate"),
        ),
    },
    "/subscribers/{subscriber_id}": {
        "get": _operation(
            "getSubscriber",
            "One subscriber",
            {"200": _json(_ref("Subscriber"), "the subscriber")},
            errors=("NotFound",),
            parameters=[_id_param("subscriber_id", "subscriber id")],
        )
    },
    "/statements": {
        "get": _operation(
            "listStatements",
            "All statements, newest first",
            {"200": _json(_ref("StatementPage"), "the statements")},
        ),
        "post": _operation(
            "importStatement",
            "Import a Markdown statement with front matter (upsert by slug)",
            {
                "201": _json(_ref("Statement"), "a new statement"),
                "200": _json(_ref("Statement"), "an existing statement (same slug), updated"),
            },
            errors=_WRITE_ERRORS,
            parameters=[
                {
                    "name": "filename",
                    "in": "query",
                    "description": "with text/markdown: a Jekyll file name for slug and date",
                    "schema": {"type": "string"},
                }
            ],
            requestBody={
                "required": True,
                "content": {
                    "text/markdown": {"schema": {"type": "string"}},
                    JSON: {"schema": _ref("StatementCreate")},
                },
            },
        ),
    },
    "/statements/{statement_id}": {
        "get": _operation(
            "getStatement",
            "One statement with its Markdown, cleaned HTML and front matter",
            {"200": _json(_ref("Statement"), "the statement")},
            errors=("NotFound",),
            parameters=[_id_param("statement_id", "statement id")],
        )
    },
    "/issues": {
        "get": _operation(
            "listIssues",
            "All issues, newest first",
            {"200": _json(_ref("IssuePage"), "the issues")},
        ),
        "post": _operation(
            "createIssue",
            "Compose a draft issue",
            {"201": _json(_ref("Issue"), "the new draft")},
            errors=(*_WRITE_ERRORS, "NotFound"),
            requestBody=_body("IssueCreate"),
        ),
    },
    "/issues/{issue_id}": {
        "get": _operation(
            "getIssue",
            "One issue with its status and delivery counts",
            {"200": _json(_ref("Issue"), "the issue")},
            errors=("NotFound",),
            parameters=[_id_param("issue_id", "issue id")],
        )
    },
    "/issues/{issue_id}/send": {
        "post": _operation(
            "sendIssue",
            "Start sending an issue; poll GET /issues/{issue_id} for progress",
            {"202": _json(_ref("Issue"), "sending has been requested")},
            errors=("NotFound", "Conflict"),
            parameters=[_id_param("issue_id", "issue id")],
        )
    },
    "/tx": {
        "post": _operation(
            "sendTransactional",
            "Send one templated message to one address, ahead of bulk sends; poll "
            "GET /tx/{tx_id} for the outcome",
            {
                "202": _json(_ref("Transactional"), "rendered and queued"),
                "503": _json(_ref("Error"), "the queue is not available; nothing was sent"),
            },
            errors=(*_WRITE_ERRORS, "NotFound"),
            requestBody=_body("TransactionalCreate"),
        )
    },
    "/tx/{tx_id}": {
        "get": _operation(
            "getTransactional",
            "One transactional message: status, attempts, the relay's last reply",
            {"200": _json(_ref("Transactional"), "the message")},
            errors=("NotFound",),
            parameters=[_id_param("tx_id", "transactional message id")],
        )
    },
    "/openapi.json": {
        "get": _operation(
            "getOpenapi",
            "This document",
            {"200": {"description": "the OpenAPI document", "content": {JSON: {}}}},
        )
    },
}

# --- send control and the delivery log (newsletter/web/api/control.py) --------------------

_ISSUE_ID = [_id_param("issue_id", "issue id")]
_PAGE_PARAMETERS = [
    {
        "name": "email",
        "in": "query",
        "description": "only deliveries to this address (whole address, any case)",
        "schema": {"type": "string"},
    },
    {
        "name": "status",
        "in": "query",
        "description": "only deliveries with this outcome",
        "schema": {"enum": ["pending", "sent", "failed", "skipped"]},
    },
    {
        "name": "after",
        "in": "query",
        "description": "deliveries with an id above this (the previous page's `next`)",
        "schema": {"type": "integer", "minimum": 0, "default": 0},
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    },
]

SCHEMAS["Issue"]["properties"].update(
    {
        "rate": {
            **_nullable("number", minimum=0),
            "description": "GET /issues/{issue_id} only: messages handed to the relay per "
            "second over the last minute, while sending; null when not measured",
        },
        "eta": {
            **_NULLABLE_DATE_TIME,
            "description": "GET /issues/{issue_id} only: when the pending deliveries should be "
            "done at the current pace",
        },
        "seconds_left": _nullable("integer", minimum=0),
    }
)
SCHEMAS.update(
    {
        "Schedule": {
            "type": "object",
            "required": ["send_at"],
            "additionalProperties": False,
            "properties": {
                "send_at": {
                    "type": "string",
                    "description": "ISO 8601 date and time, in the future. With an offset "
                    "(`2026-12-01T09:00+01:00`, `…Z`) it is that instant; without one it is a "
                    "wall-clock time in `timezone`",
                    "examples": ["2026-12-01T09:00"],
                },
                "timezone": {
                    "type": "string",
                    "description": "IANA timezone name; default: the token owner's timezone",
                    "examples": ["Europe/Berlin"],
                },
            },
        },
        "Retry": {
            "type": "object",
            "required": ["retried", "issue"],
            "properties": {
                "retried": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "failed deliveries sent again (hard bounces are not)",
                },
                "issue": _ref("Issue"),
            },
        },
        "Delivery": {
            "type": "object",
            "required": [
                "id", "issue", "email", "status", "attempts", "last_reply", "sent_at",
                "message_id",
            ],
            "properties": {
                "id": {"type": "integer"},
                "issue": {"type": "integer"},
                "subject": {"type": "string"},
                "subscriber": {"type": "integer"},
                "email": {"type": "string"},
                "status": {"enum": ["pending", "sent", "failed", "skipped"]},
                "attempts": {"type": "integer", "minimum": 0},
                "last_reply": {
                    **_nullable("string"),
                    "description": "the relay's last answer (or why it was skipped)",
                },
                "sent_at": _NULLABLE_DATE_TIME,
                "message_id": {**_nullable("string"), "description": "without <>"},
                "next_attempt_at": _NULLABLE_DATE_TIME,
            },
        },
        "DeliveryPage": {
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": {"type": "array", "items": _ref("Delivery")},
                "next": {
                    **_nullable("integer"),
                    "description": "pass as `after` for the next page; null on the last",
                },
            },
        },
    }
)


def _control(operation_id: str, summary: str, status: str = "200") -> dict[str, Any]:
    return {
        "post": _operation(
            operation_id,
            summary,
            {status: _json(_ref("Issue"), "the issue, changed")},
            errors=("NotFound", "Conflict"),
            parameters=_ISSUE_ID,
        )
    }


PATHS.update(
    {
        "/issues/{issue_id}/schedule": {
            "post": _operation(
                "scheduleIssue",
                "Send a draft (or move a scheduled issue) at a time, in a timezone",
                {"200": _json(_ref("Issue"), "the scheduled issue")},
                errors=(*_WRITE_ERRORS, "NotFound", "Conflict"),
                parameters=_ISSUE_ID,
                requestBody=_body("Schedule"),
            )
        },
        "/issues/{issue_id}/unschedule": _control(
            "unscheduleIssue", "A scheduled issue back to draft"
        ),
        "/issues/{issue_id}/pause": _control("pauseIssue", "Stop sending between two messages"),
        "/issues/{issue_id}/resume": _control(
            "resumeIssue", "Continue a paused send where it stopped", "202"
        ),
        "/issues/{issue_id}/cancel": _control(
            "cancelIssue", "Stop for good: pending deliveries become skipped"
        ),
        "/issues/{issue_id}/retry": {
            "post": _operation(
                "retryFailed",
                "Send the failed deliveries of a sent issue again (not hard bounces)",
                {"202": _json(_ref("Retry"), "how many are retried, and the issue")},
                errors=("NotFound", "Conflict"),
                parameters=_ISSUE_ID,
            )
        },
        "/issues/{issue_id}/deliveries": {
            "get": _operation(
                "listIssueDeliveries",
                "The issue's delivery log: who got it, and what the relay answered",
                {"200": _json(_ref("DeliveryPage"), "a page of deliveries, by id")},
                errors=("NotFound", "Unprocessable"),
                parameters=[*_ISSUE_ID, *_PAGE_PARAMETERS],
            )
        },
        "/deliveries": {
            "get": _operation(
                "listDeliveries",
                "The delivery log across issues (did this address get issue 12?)",
                {"200": _json(_ref("DeliveryPage"), "a page of deliveries, by id")},
                errors=("Unprocessable",),
                parameters=[
                    {
                        "name": "issue",
                        "in": "query",
                        "description": "only this issue",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    *_PAGE_PARAMETERS,
                ],
            )
        },
    }
)


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "newsletter API",
        "version": "1.0.0",
        "description": "Lists, subscribers, statements and issues of a newsletter. Every call "
        "takes `Authorization: Bearer TOKEN` (`newsletter tokens create EMAIL`). Errors are "
        '`{"error": {"message": …, "field": …}}`; dates are ISO 8601.',
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
}


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(DOCUMENT)
