"""Every shape of the API, once: these schemas validate the requests, turn the answers into
JSON and make the OpenAPI document (``GET /api/v1/openapi.json``).

``…CreateSchema`` and ``…QuerySchema`` read what a client sends (unknown fields in a body are
refused; a ``null`` counts as absent). The others describe what the API answers; their
class names, less "Schema", are the names in ``components/schemas``.

The caps on lengths and item counts hold before a service sees anything: what is parsed is
bounded before it is parsed (the body size is capped even earlier, see ``edge.py``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validates
from marshmallow.validate import Length, OneOf, Range, Regexp

from newsletter.audience.lists import SLUG
from newsletter.audience.models import ConsentSource, OptIn, SubscriberStatus, SubscriptionStatus
from newsletter.content import statements as statement_service
from newsletter.content.models import IssueStatus, TemplateKind
from newsletter.delivery.control.log import MAX_LIMIT as MAX_LOG_LIMIT
from newsletter.delivery.models import DeliveryStatus
from newsletter.delivery.transactional import MAX_NAME, MAX_SUBJECT, TransactionalStatus
from newsletter.events import EVENT_KINDS
from newsletter.web.api.fields import (
    AttributesObject,
    Choice,
    Flag,
    Id,
    JsonObject,
    QueryInt,
    SortedList,
    TemplateKey,
    Text,
    UniqueList,
)
from newsletter.web.ids import MAX_ID

#: the most lists or statements one request may name
MAX_ITEMS = 100
#: the most subscribers one page may hold
MAX_PAGE = 1000
MAX_EMAIL = 320
MAX_SLUG = 100


def _enum(enum: Any, **kwargs: Any) -> fields.Enum:
    return fields.Enum(enum, by_value=fields.String, **kwargs)


def _slug(**kwargs: Any) -> Text:
    return Text(
        strip=True, not_blank=True,
        validate=[Length(max=MAX_SLUG), Regexp(SLUG, error="must be a slug: a-z, 0-9 and -")],
        metadata={"examples": ["weekly"]}, **kwargs,
    )


#: issues per page of ``GET /issues`` unless ``limit`` says otherwise
ISSUE_PAGE = 50


def _next(description: str) -> fields.Integer:
    return fields.Integer(allow_none=True, metadata={"description": description})


class Body(Schema):
    """A JSON request body: fields it does not name are refused (usually a typo)."""

    class Meta:
        unknown = RAISE


class Query(Schema):
    """Query-string parameters: others are ignored, and an empty one counts as absent."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        return {key: data[key] for key in data if data[key] != ""}


class Answer(Schema):
    """A response body: every field is always there (``null`` when it has no value)."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.required = True


# --- errors ---------------------------------------------------------------------------------


class ErrorDetailSchema(Answer):
    message = fields.String()
    field = fields.String(
        allow_none=True, metadata={"description": "the request field at fault, when there is one"}
    )
    position = fields.Integer(
        required=False, validate=Range(min=1),
        metadata={"description": "a segment query's error: the 1-based column at fault"},
    )

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.required = field_name != "position"


class ErrorSchema(Answer):
    """The one error shape: ``{"error": {"message": …, "field": …}}``."""

    error = fields.Nested(ErrorDetailSchema)


# --- lists ----------------------------------------------------------------------------------


class ListCreateSchema(Body):
    slug = _slug(required=True)
    name = Text(required=True, strip=True, not_blank=True, validate=Length(max=200))
    description = Text(load_default="", validate=Length(max=5000))
    optin = _enum(OptIn, load_default=OptIn.DOUBLE)
    public = Flag(load_default=True)


class ListUpdateSchema(Body):
    """What ``PATCH /lists/{id}`` changes; fields left out stay as they are (the slug always)."""

    name = Text(strip=True, not_blank=True, validate=Length(max=200))
    description = Text(validate=Length(max=5000))
    optin = _enum(OptIn)
    public = Flag()
    archived = Flag(
        metadata={"description": "true: off the signup form and the compose pickers, "
                  "subscribers and past issues kept; false: back"},
    )


class ListSchema(Answer):
    id = fields.Integer()
    slug = fields.String(metadata={"examples": ["weekly"]})
    name = fields.String()
    description = fields.String()
    optin = _enum(OptIn)
    public = fields.Boolean()
    created_at = fields.DateTime()
    archived_at = fields.DateTime(
        allow_none=True, metadata={"description": "when it was archived; null when it is not"}
    )


class ListPageSchema(Answer):
    items = fields.List(fields.Nested(ListSchema))


# --- subscribers ----------------------------------------------------------------------------


class SubscriberCreateSchema(Body):
    email = Text(required=True, not_blank=True, validate=Length(max=MAX_EMAIL),
                 metadata={"format": "email"})
    name = Text(strip=True, load_default="", validate=Length(max=200))
    lists = UniqueList(
        _slug(), required=True, max_items=MAX_ITEMS,
        metadata={"description": "list slugs; a repeated one counts once"},
    )
    confirmed = Flag(
        load_default=False,
        metadata={"description": "consent was confirmed elsewhere: skip the confirmation mail "
                  "of double opt-in lists"},
    )
    ip = Text(
        strip=True, load_default="", validate=Length(max=45),
        metadata={"description": "the subscriber's IP address, kept as the record of consent"},
    )

    @validates("ip")
    def _ip_address(self, value: str, **kwargs: Any) -> None:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValidationError("must be an IPv4 or IPv6 address") from None


class SubscriptionChangeSchema(Body):
    list = _slug(required=True)
    status = _enum(
        SubscriptionStatus, required=True,
        metadata={"description": "confirmed: at once (consent gathered elsewhere); "
                  "unconfirmed: (re)started, and a confirmation link is mailed; "
                  "unsubscribed: off the list, the consent kept on record"},
    )


class SubscriberUpdateSchema(Body):
    """What ``PATCH /subscribers/{id}`` changes; fields left out stay as they are."""

    name = Text(strip=True, validate=Length(max=200))
    attributes = fields.Dict(
        keys=fields.String(validate=Length(min=1, max=100)),
        metadata={"description": "merged into the attributes (a key set to null is removed), "
                  "or with `attributes_mode: replace` the whole set; names starting with _ "
                  "are refused"},
    )
    attributes_mode = Choice(
        ["merge", "replace"], load_default="merge",
        metadata={"description": "how `attributes` applies (default merge)"},
    )
    subscriptions = fields.List(
        fields.Nested(SubscriptionChangeSchema), validate=Length(max=MAX_ITEMS),
        metadata={"description": "one status per list slug; lists not named are left alone"},
    )
    status = Choice(
        [s.value for s in SubscriberStatus],
        metadata={"description": "blocklisted: never mailed again; active: mailed again"},
    )


class SubscriberQuerySchema(Query):
    email = Text(
        validate=Length(max=MAX_EMAIL),
        metadata={"description": "find this address (case-insensitive); no paging then"},
    )
    after = QueryInt(
        load_default=0, validate=Range(0, MAX_ID),
        metadata={"description": "subscribers with an id above this (the previous `next`)"},
    )
    limit = QueryInt(load_default=100, validate=Range(1, MAX_PAGE))
    list = Text(
        validate=Length(max=MAX_SLUG), allow_nul=True,  # a slug with NUL: no such list, 404
        metadata={"description": "only subscribers with a subscription on this list"},
    )
    status = Choice(
        [s.value for s in SubscriptionStatus],
        metadata={"description": "with `list`: only subscriptions in this status"},
    )


class SubscriptionSchema(Answer):
    list = fields.String(attribute="list.slug")
    status = _enum(SubscriptionStatus)
    source = _enum(ConsentSource, attribute="consent_source")
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    unsubscribed_at = fields.DateTime(allow_none=True)


class SubscriberSchema(Answer):
    id = fields.Integer()
    email = fields.String(metadata={"format": "email"})
    name = fields.String()
    status = _enum(SubscriberStatus)
    attributes = AttributesObject()
    created_at = fields.DateTime()
    subscriptions = SortedList(fields.Nested(SubscriptionSchema), key=lambda s: s.list.slug)


class SubscriberAcceptedSchema(Answer):
    """What a token that cannot read subscribers learns from subscribing an address: that
    the request was taken, never whether the address was known."""

    accepted = fields.Boolean(metadata={"description": "always true"})
    email = fields.String(metadata={"format": "email", "description": "as normalised"})
    lists = fields.List(fields.String(), metadata={"description": "the list slugs asked for"})


class SubscriberPageSchema(Answer):
    items = fields.List(fields.Nested(SubscriberSchema))
    next = _next("pass as `after` for the next page; null on the last page")


# --- statements -----------------------------------------------------------------------------


class StatementCreateSchema(Body):
    markdown = Text(
        required=True, not_blank=True,
        metadata={"description": "the Markdown file, YAML front matter included"},
    )
    filename = Text(
        strip=True, validate=Length(max=255),
        metadata={"description": "a Jekyll file name (YYYY-MM-DD-slug.md) giving slug and date"},
    )


class StatementQuerySchema(Query):
    filename = Text(
        strip=True, validate=Length(max=255),
        metadata={"description": "with text/markdown: a Jekyll file name for slug and date"},
    )


class StatementSummarySchema(Answer):
    id = fields.Integer()
    slug = fields.String()
    title = fields.String()
    author = fields.String()
    date = fields.Date(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class StatementSchema(StatementSummarySchema):
    markdown = fields.String(attribute="body")
    html = fields.Function(
        statement_service.statement_html,
        metadata={"type": "string", "description": "the cleaned HTML rendering"},
    )
    front_matter = JsonObject()


class StatementImportSchema(StatementSchema):
    changes = fields.List(
        fields.String(),
        metadata={"description": "what an update changed: title, author, date, body, "
                                 "front matter (its keys); empty when created or unchanged"},
    )
    warnings = fields.List(
        fields.String(),
        metadata={"description": "Liquid tags removed and why, links that cannot be resolved"},
    )


class ImportErrorSchema(Answer):
    source = fields.String(metadata={"description": "the file in the zip"})
    reason = fields.String()


class StatementZipImportSchema(Answer):
    items = fields.List(fields.Nested(StatementImportSchema))
    created = fields.Integer(metadata={"description": "how many statements are new"})
    updated = fields.Integer(metadata={"description": "how many existed (changed or not)"})
    errors = fields.List(fields.Nested(ImportErrorSchema))


class StatementPageSchema(Answer):
    items = fields.List(fields.Nested(StatementSummarySchema))


# --- issues ---------------------------------------------------------------------------------


class IssueCreateSchema(Body):
    subject = Text(required=True, strip=True, not_blank=True, validate=Length(max=300))
    statements = UniqueList(
        Id(), required=True, max_items=MAX_ITEMS,
        metadata={"description": "statement ids, in their order in the issue"},
    )
    lists = UniqueList(
        _slug(), load_default=list, max_items=MAX_ITEMS, min_items=0,
        metadata={"description": "list slugs; at least one list or one segment"},
    )
    segments = UniqueList(
        Id(), load_default=list, max_items=MAX_ITEMS, min_items=0,
        metadata={"description": "segment ids: the audience is narrowed by every one; with "
                  "no lists, everyone confirmed on some list who matches them"},
    )
    template = Id(
        load_default=None,
        metadata={"description": "template id; the built-in template when absent"},
    )
    preheader = Text(strip=True, load_default="", validate=Length(max=300))
    intro = Text(load_default="", validate=Length(max=50_000),
                 metadata={"description": "Markdown"})


class CountsSchema(Answer):
    """Deliveries by outcome; skipped: unsubscribed or blocklisted before their turn."""

    total = fields.Integer(validate=Range(min=0))
    sent = fields.Integer(validate=Range(min=0))
    failed = fields.Integer(validate=Range(min=0))
    pending = fields.Integer(validate=Range(min=0))
    skipped = fields.Integer(validate=Range(min=0))


class IssueSchema(Answer):
    """An issue with where its send stands (``IssueAnswer`` in ``issues.py``)."""

    id = fields.Integer(attribute="issue.id")
    subject = fields.String(attribute="issue.subject")
    preheader = fields.String(attribute="issue.preheader")
    intro = fields.String(attribute="issue.intro")
    template = fields.Integer(attribute="issue.template_id", allow_none=True)
    status = _enum(IssueStatus, attribute="progress.status")
    counts = fields.Nested(CountsSchema, attribute="progress.counts")
    statements = fields.List(fields.Integer(), attribute="statement_ids")
    lists = fields.List(fields.String(), attribute="list_slugs")
    segments = fields.List(fields.Integer(), attribute="segment_ids")
    send_at = fields.DateTime(attribute="issue.send_at", allow_none=True)
    slug = fields.String(
        attribute="issue.slug", allow_none=True,
        metadata={"description": "the archive permalink's slug, made when sending starts"},
    )
    kept_out = fields.Boolean(attribute="issue.kept_out",
                              metadata={"description": "kept out of the public archive"})
    send_error = fields.String(
        attribute="issue.send_error", allow_none=True,
        metadata={"description": "why the last send stopped before anyone got mail"},
    )
    created_at = fields.DateTime(attribute="issue.created_at")
    started_at = fields.DateTime(attribute="issue.started_at", allow_none=True)
    finished_at = fields.DateTime(attribute="issue.finished_at", allow_none=True)
    rate = fields.Float(
        allow_none=True, validate=Range(min=0),
        metadata={"description": "messages handed to the relay per second over the last "
                  "minute, while sending; null when not measured"},
    )
    eta = fields.DateTime(
        attribute="progress.eta", allow_none=True,
        metadata={"description": "when the pending deliveries should be done at the "
                  "current pace"},
    )
    seconds_left = fields.Integer(allow_none=True, validate=Range(min=0))


class IssueQuerySchema(Query):
    before = QueryInt(
        validate=Range(1, MAX_ID),
        metadata={"description": "issues with an id below this (the previous `next`); "
                                 "the newest when absent"},
    )
    limit = QueryInt(load_default=ISSUE_PAGE, validate=Range(1, MAX_PAGE))


class IssuePageSchema(Answer):
    items = fields.List(fields.Nested(IssueSchema))
    next = _next("pass as `before` for the next (older) page; null on the last page")


# --- templates ------------------------------------------------------------------------------

_TEMPLATE_KINDS = [kind.value for kind in TemplateKind]
#: the most characters either part of a template may hold (``content/template_editing.py``)
MAX_TEMPLATE_SOURCE = 200_000


class TemplateCreateSchema(Body):
    name = Text(required=True, strip=True, not_blank=True, validate=Length(max=100))
    kind = Choice(_TEMPLATE_KINDS, load_default="issue",
                  metadata={"description": "issue (the default) or transactional"})
    mjml = Text(required=True, not_blank=True, validate=Length(max=MAX_TEMPLATE_SOURCE),
                metadata={"description": "the MJML part, a Jinja template"})
    text = Text(required=True, not_blank=True, validate=Length(max=MAX_TEMPLATE_SOURCE),
                metadata={"description": "the plain-text part, a Jinja template"})


class TemplateUpdateSchema(Body):
    name = Text(strip=True, not_blank=True, validate=Length(max=100))
    kind = Choice(_TEMPLATE_KINDS)
    mjml = Text(not_blank=True, validate=Length(max=MAX_TEMPLATE_SOURCE))
    text = Text(not_blank=True, validate=Length(max=MAX_TEMPLATE_SOURCE))


class TemplateCopySchema(Body):
    name = Text(strip=True, not_blank=True, validate=Length(max=100),
                metadata={"description": "the copy's name; \"Copy of …\" when absent"})


class TemplateQuerySchema(Query):
    kind = Choice(_TEMPLATE_KINDS, metadata={"description": "only templates of this kind"})


class TemplateSummarySchema(Answer):
    id = fields.Integer()
    name = fields.String()
    kind = _enum(TemplateKind)
    builtin = fields.Boolean(metadata={"description": "built in: read-only, copy to change"})
    created_at = fields.DateTime()


class TemplateSchema(TemplateSummarySchema):
    mjml = fields.String()
    text = fields.String()


class TemplatePageSchema(Answer):
    items = fields.List(fields.Nested(TemplateSummarySchema))


# --- send control and the delivery log ------------------------------------------------------


class ScheduleSchema(Body):
    send_at = Text(
        required=True, not_blank=True, validate=Length(max=64),
        metadata={
            "description": "ISO 8601 date and time, in the future. With an offset "
            "(`2026-12-01T09:00+01:00`, `…Z`) it is that instant; without one it is a "
            "wall-clock time in `timezone`",
            "examples": ["2026-12-01T09:00"],
        },
    )
    timezone = Text(
        strip=True, validate=Length(max=64),
        metadata={"description": "IANA timezone name; default: the token owner's timezone",
                  "examples": ["Europe/Berlin"]},
    )


class RetrySchema(Answer):
    retried = fields.Integer(
        validate=Range(min=0),
        metadata={"description": "failed deliveries sent again (hard bounces are not)"},
    )
    issue = fields.Nested(IssueSchema)


_DELIVERY_STATUSES = [s.value for s in DeliveryStatus]


class DeliveryQuerySchema(Query):
    email = Text(
        validate=Length(max=MAX_EMAIL),
        metadata={"description": "only deliveries to this address (whole address, any case)"},
    )
    status = Choice(_DELIVERY_STATUSES,
                    metadata={"description": "only deliveries with this outcome"})
    after = QueryInt(
        load_default=0, validate=Range(0, MAX_ID),
        metadata={"description": "deliveries with an id above this (the previous `next`)"},
    )
    limit = QueryInt(load_default=50, validate=Range(1, MAX_LOG_LIMIT))


class DeliveriesQuerySchema(DeliveryQuerySchema):
    issue = QueryInt(
        load_default=0, validate=Range(0, MAX_ID),
        metadata={"description": "only this issue (0: every issue)"},
    )


class DeliverySchema(Answer):
    """One recipient of one issue (``log.LogEntry``), and what the relay said."""

    id = fields.Integer(attribute="delivery_id")
    issue = fields.Integer(attribute="issue_id")
    subject = fields.String(attribute="issue_subject")
    subscriber = fields.Integer(attribute="subscriber_id")
    email = fields.String()
    status = _enum(DeliveryStatus)
    attempts = fields.Integer(validate=Range(min=0))
    last_reply = fields.String(
        allow_none=True,
        metadata={"description": "the relay's last answer (or why it was skipped)"},
    )
    sent_at = fields.DateTime(allow_none=True)
    message_id = fields.String(allow_none=True, metadata={"description": "without <>"})
    next_attempt_at = fields.DateTime(allow_none=True)


class DeliveryPageSchema(Answer):
    items = fields.List(fields.Nested(DeliverySchema))
    next = _next("pass as `after` for the next page; null on the last")


# --- transactional mail ---------------------------------------------------------------------


class TransactionalCreateSchema(Body):
    to = Text(required=True, not_blank=True, validate=Length(max=MAX_EMAIL),
              metadata={"format": "email", "description": "the one recipient"})
    name = Text(
        load_default="", validate=Length(max=MAX_NAME),
        metadata={"description": "the recipient's name, for the To header and templates"},
    )
    template = TemplateKey(
        required=True,
        metadata={"description": "a template's name (or id); it sees `data`, `subject`, "
                  "`to.email`, `to.name`, `subscriber.name`, `base_url` and `org_name`"},
    )
    # The length is checked here, before the subject is rendered as a template.
    subject = Text(
        required=True, not_blank=True, validate=Length(max=MAX_SUBJECT),
        metadata={"description": "rendered like the template: `Order {{ data.order }}`"},
    )
    data = JsonObject(
        load_default=dict,
        metadata={"description": "anything the template uses, as `data`; at most 64 KiB as "
                  "JSON"},
    )


class TransactionalSchema(Answer):
    id = fields.Integer()
    status = _enum(
        TransactionalStatus,
        metadata={"description": "queued until the relay accepts it (sent) or refuses it for "
                  "good or too often (failed)"},
    )
    to = fields.String(attribute="to_address", metadata={"format": "email"})
    name = fields.String(attribute="to_name")
    subject = fields.String()
    template = fields.Integer(attribute="template_id", allow_none=True)
    attempts = fields.Integer(validate=Range(min=0))
    last_reply = fields.String(
        allow_none=True,
        metadata={"description": "the relay's last answer, e.g. `250 2.0.0 Ok` or a 4xx/5xx"},
    )
    message_id = fields.String(metadata={"description": "the Message-ID, without <>"})
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)


# --- segments -------------------------------------------------------------------------------

MAX_QUERY = 4000


class SegmentCreateSchema(Body):
    name = Text(required=True, strip=True, not_blank=True, validate=Length(max=200))
    query = Text(
        required=True, strip=True, not_blank=True, validate=Length(max=MAX_QUERY),
        metadata={"description": "the segment query language, e.g. "
                  '`list = "news" and attributes.city = "Madrid" and not bounced`',
                  "examples": ['attributes.city = "Madrid"']},
    )


class SegmentUpdateSchema(Body):
    name = Text(strip=True, not_blank=True, validate=Length(max=200))
    query = Text(strip=True, not_blank=True, validate=Length(max=MAX_QUERY))


class SegmentSummarySchema(Answer):
    id = fields.Integer()
    name = fields.String()
    query = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SegmentSchema(SegmentSummarySchema):
    count = fields.Integer(
        validate=Range(min=0),
        metadata={"description": "how many subscribers (of any status) match now"},
    )


class SegmentPageSchema(Answer):
    items = fields.List(fields.Nested(SegmentSummarySchema))


class ExportQuerySchema(Query):
    list = Text(
        validate=Length(max=MAX_SLUG), allow_nul=True,  # no such list: 404
        metadata={"description": "only the members of this list (any subscription status)"},
    )
    segment = QueryInt(
        validate=Range(1, MAX_ID),
        metadata={"description": "only the subscribers this segment matches"},
    )


# --- bounces ----------------------------------------------------------------------------------

MAX_BOUNCE_REASON = 1000
BOUNCE_KINDS = ["hard", "soft", "complaint"]


class BounceReportSchema(Body):
    email = Text(required=True, not_blank=True, validate=Length(max=MAX_EMAIL),
                 metadata={"format": "email", "description": "the address that bounced"})
    kind = Choice(
        BOUNCE_KINDS, required=True,
        metadata={"description": "hard: stop at once; soft: scored (at most one a day); "
                  "complaint: unsubscribed from every list"},
    )
    reason = Text(load_default="", validate=Length(max=MAX_BOUNCE_REASON),
                  metadata={"description": "the reply or the report's diagnostic"})


class BounceTakenSchema(Answer):
    kind = fields.String(
        metadata={"description": "what the report says: hard, soft, complaint or ignored (a "
                  "delay, an auto-reply, or a message kept for an editor to read)"},
    )
    kept = fields.Boolean(
        metadata={"description": "true: the message could not be read and waits on the "
                  "admin's Bounces page"},
    )
# --- webhooks ---------------------------------------------------------------------------------


class WebhookCreateSchema(Body):
    url = Text(
        required=True, strip=True, not_blank=True, validate=Length(max=2000),
        metadata={"format": "uri", "examples": ["https://crm.example.org/hooks/news"],
                  "description": "http(s); private, loopback and link-local addresses are "
                  "refused unless NEWSLETTER_WEBHOOKS_ALLOW_PRIVATE is on"},
    )  # fmt: skip
    events = UniqueList(
        Choice(list(EVENT_KINDS)), required=True, max_items=len(EVENT_KINDS),
        metadata={"description": "the event kinds it receives"},
    )  # fmt: skip
    description = Text(load_default="", strip=True, validate=Length(max=200))


class WebhookSchema(Answer):
    id = fields.Integer()
    url = fields.String()
    description = fields.String()
    events = fields.List(fields.String(metadata={"enum": list(EVENT_KINDS)}))
    active = fields.Boolean()
    disabled_reason = fields.String(
        allow_none=True, metadata={"description": "why it is off (an admin, a 410 Gone)"}
    )
    created_at = fields.DateTime()


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(
        metadata={"description": "the signing secret (whsec_…): given here once, and on the "
                  "endpoint's admin page", "examples": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    )  # fmt: skip


class WebhookPageSchema(Answer):
    items = fields.List(fields.Nested(WebhookSchema))
# --- analytics ------------------------------------------------------------------------------


class AnalyticsTotalsSchema(Answer):
    """What happened to an issue's mail, in all (``delivery/analytics/report.py``)."""

    delivered = fields.Integer(validate=Range(min=0))
    failed = fields.Integer(validate=Range(min=0))
    bounced = fields.Integer(validate=Range(min=0), metadata={"description": "hard and soft"})
    hard_bounces = fields.Integer(validate=Range(min=0))
    soft_bounces = fields.Integer(validate=Range(min=0))
    complained = fields.Integer(validate=Range(min=0))
    unsubscribed = fields.Integer(
        validate=Range(min=0),
        metadata={"description": "left from a link mailed with this issue"},
    )
    opens = fields.Integer(validate=Range(min=0))
    opens_filtered = fields.Integer(
        validate=Range(min=0), metadata={"description": "by image proxies, scanners, HEAD"}
    )
    unique_opens = fields.Integer(validate=Range(min=0), metadata={"description": "individual"})
    clicks = fields.Integer(validate=Range(min=0))
    clicks_filtered = fields.Integer(
        validate=Range(min=0), metadata={"description": "by link scanners: too fast, HEAD, agent"}
    )
    unique_clicks = fields.Integer(validate=Range(min=0), metadata={"description": "individual"})


class DeliveryPointSchema(Answer):
    at = fields.DateTime(metadata={"description": "the minute (UTC)"})
    sent = fields.Integer(validate=Range(min=0), metadata={"description": "so far"})
    failed = fields.Integer(validate=Range(min=0), metadata={"description": "so far"})


class EventPointSchema(Answer):
    at = fields.DateTime(metadata={"description": "the bucket's start (UTC)"})
    bounced = fields.Integer(validate=Range(min=0))
    complained = fields.Integer(validate=Range(min=0))
    unsubscribed = fields.Integer(validate=Range(min=0))
    opens = fields.Integer(validate=Range(min=0))
    clicks = fields.Integer(validate=Range(min=0))


class LinkClicksSchema(Answer):
    position = fields.Integer(validate=Range(min=1))
    url = fields.String()
    clicks = fields.Integer(validate=Range(min=0))
    filtered = fields.Integer(validate=Range(min=0))


class AnalyticsSchema(Answer):
    """An issue's analytics: totals, the delivery timeline and the counts per bucket."""

    issue_id = fields.Integer()
    status = _enum(IssueStatus)
    tracking = fields.String(
        validate=OneOf(["off", "aggregate", "individual"]),
        metadata={"description": "open and click tracking (off by default)"},
    )
    totals = fields.Nested(AnalyticsTotalsSchema)
    bucket_seconds = fields.Integer(validate=Range(min=1))
    delivery = fields.List(fields.Nested(DeliveryPointSchema))
    events = fields.List(fields.Nested(EventPointSchema))
    links = fields.List(fields.Nested(LinkClicksSchema))
