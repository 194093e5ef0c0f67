"""Public pages: signup, confirm, manage, unsubscribe, archive.

Links that arrive by mail show a page on GET and act only on POST: mail scanners follow
links, people press buttons. The signed token in the URL is the authority for who and what;
CSRF protects every form a person submits. The one exception is the RFC 8058 one-click
unsubscribe, which a mail provider posts with no session at all.

CSRF here is checked by this blueprint rather than by ``CSRFProtect``: the token is always
required, and the Origin or Referer must be this site *when the browser sends one*.
``CSRFProtect`` refuses any HTTPS post without a Referer, which would lock out readers whose
browser or privacy extension strips it, on the one form strangers must be able to use.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, validate_csrf
from sqlalchemy import func, select
from werkzeug.exceptions import RequestEntityTooLarge, TooManyRequests
from werkzeug.wrappers import Response as BaseResponse
from wtforms import ValidationError as TokenMismatch

from newsletter.audience import erasure, subscriptions
from newsletter.audience.addresses import normalise_email
from newsletter.audience.consent import form_consent, page_of
from newsletter.audience.lists import list_lists
from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    OptIn,
    Subscriber,
    SubscriptionStatus,
)
from newsletter.audience.personal_data import personal_data
from newsletter.audience.tokens import manage_url, read_token
from newsletter.content.archive import public_condition
from newsletter.content.models import Issue
from newsletter.delivery.analytics.counters import record_unsubscribe
from newsletter.errors import (
    AddressRefused,
    InvalidEmail,
    InvalidToken,
    NotFound,
    ValidationError,
)
from newsletter.extensions import csrf, db
from newsletter.i18n import current_language, language_links, remember_choice
from newsletter.i18n import use_subscriber_language as _speak_to
from newsletter.models import utcnow
from newsletter.web import archive_page, signup_guard

bp = Blueprint("public", __name__)
csrf.exempt(bp)  # checked in _check_csrf below

FEED_SIZE = 50
#: the largest body a public form may send: a sign-up or preferences form naming a hundred
#: lists by the longest slugs (100 characters) is about 11 KiB; much more is not a form.
FORM_MAX_BYTES = 64 * 1024
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# The signed tokens in mailed links are keys to a reader's preferences, or to an admin's
# password (reset, invitation, setup): access logs, read by more people and kept longer
# than the mail, get the path without them. Every route with a secret argument must have
# its prefix here (tests/web/test_access_log.py walks the URL map to hold that).
#: the path prefixes whose next segment is a secret token (regular expressions)
TOKEN_PATHS = (
    "manage", "unsubscribe", "confirm",
    "admin/setup", "admin/reset", "admin/invite",
    "t/o", r"t/c/[^/\s?#\"]+",  # a tracked click: the link's own token is not a secret
)  # fmt: skip
_TOKEN_IN_PATH = re.compile(rf"(/(?:{'|'.join(TOKEN_PATHS)})/)[^/\s?#\"]+")
#: the loggers that write one line per request with its path (werkzeug: ``newsletter run``)
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


def redact_tokens(text: str) -> str:
    """``text`` with the token of every link path in it replaced by ``[redacted]``."""
    return _TOKEN_IN_PATH.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Takes link tokens out of every record of the logger it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


@bp.record_once
def _redact_access_logs(state: BlueprintSetupState) -> None:
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


@bp.context_processor
def _public_context() -> dict[str, Any]:
    return {
        "site_name": site_name(),
        "html_lang": current_language(),
        "language_links": language_links,
        "honeypot": signup_guard.HONEYPOT,
        "challenge_on": signup_guard.challenge_on(),
    }


@bp.after_request
def _remember_language(response: Response) -> Response:
    return remember_choice(response)


def site_name() -> str:
    """What the public pages call the newsletter (``SITE_NAME``, completed by the config)."""
    return str(current_app.config["SITE_NAME"])


@bp.before_request
def _cap_the_body() -> None:
    """Refuse a public form post larger than :data:`FORM_MAX_BYTES` before it is parsed.

    Registered before the CSRF check, the first reader of the form: werkzeug then answers
    413 from the Content-Length alone, or stops reading a chunked body at the cap.
    """
    app_cap = request.max_content_length  # the app-wide MAX_CONTENT_LENGTH, if any
    cap = FORM_MAX_BYTES if app_cap is None else min(FORM_MAX_BYTES, app_cap)
    request.max_content_length = cap
    request.max_form_memory_size = cap


@bp.before_request
def _check_csrf() -> None:
    """Every form post needs its CSRF token, except the RFC 8058 one-click unsubscribe."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    if (
        request.endpoint == "public.unsubscribe"
        and request.form.get("List-Unsubscribe") == "One-Click"
    ):
        return  # a mail provider's POST: no session; the signed token is the authority
    if request.endpoint == "public.subscribe_embed":
        return  # a form on another site (double opt-in only: the mailed link is the proof)
    try:
        validate_csrf(request.form.get("csrf_token"))
    except TokenMismatch as error:
        raise CSRFError(str(error.args[0]) if error.args else "CSRF token invalid") from None
    if not _same_origin(request.headers.get("Origin") or request.headers.get("Referer")):
        raise CSRFError("The form was sent from another site.")


def _same_origin(source: str | None) -> bool:
    """True unless the browser names a different site as the source of the post."""
    if not source or source == "null":
        return True
    # Hosts only: behind a TLS-terminating proxy the app may see http for an https page.
    host = urlsplit(source).netloc.lower()
    ours = {request.host.lower(), urlsplit(current_app.config["BASE_URL"]).netloc.lower()}
    return host in ours


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(f"public/{template}", **context), status


# Errors: a person sees a page that says what happened and what to do next.


@bp.errorhandler(InvalidToken)
def _invalid_token(error: InvalidToken) -> tuple[str, int]:
    return _page("invalid_link.html", 400, purpose=error.purpose, reason=error.reason)


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError) -> tuple[str, int]:
    return _page(
        "message.html",
        400,
        title=_("Please try again"),
        message=_(
            "This form had expired or came from somewhere else, so we did not act on it. "
            "Go back, reload the page and send it again."
        ),
    )


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
    return _page(
        "message.html",
        413,
        title=_("Too much to send"),
        message=_("This form sent far more than it should, so we did not read it."),
    )


@bp.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> tuple[str, int]:
    return _page(
        "message.html",
        429,
        title=_("Too many attempts"),
        message=_("We've had a lot of sign-ups from your connection. Please try again later."),
    )


@bp.errorhandler(NotFound)
def _not_found(error: NotFound) -> tuple[str, int]:
    return _page(
        "message.html", 404, title=_("Not found"), message=_("There is nothing at this address.")
    )


# Signup.


@bp.route("/")
def index() -> BaseResponse:
    return redirect(url_for("public.subscribe"))


@bp.route("/subscribe", methods=["GET", "POST"])
@signup_guard.per_client_limit
@signup_guard.global_limit
def subscribe() -> tuple[str, int]:
    """The signup form; a valid post always answers with the same neutral page."""
    lists = list_lists(public_only=True)
    if request.method == "GET":
        # /subscribe?lists=news pre-ticks a list (links from a website); one list is ticked.
        public = {lst.slug for lst in lists}
        asked = [slug for slug in request.args.getlist("lists") if slug in public]
        preselected = asked or ([lists[0].slug] if len(lists) == 1 else [])
        return _page("subscribe.html", lists=lists, chosen=preselected, values={}, errors={})

    values = {
        "email": request.form.get("email", "").strip(),
        "name": request.form.get("name", "").strip(),
    }
    chosen = request.form.getlist("lists")
    errors = _subscribe_errors(values, chosen, {lst.slug for lst in lists})
    if not errors and not signup_guard.challenge_passed():
        errors["challenge"] = _("Please wait for the check below the form to finish, then send it.")
    # A filled honeypot is a script: the neutral answer below, and nothing stored or mailed.
    if not errors and not signup_guard.honeypot_filled():
        try:
            subscriptions.subscribe(
                values["email"],
                name=values["name"],
                list_slugs=chosen,
                source=ConsentSource.FORM,
                consent=form_consent(
                    _consent_page(), ip=request.remote_addr, user_agent=request.user_agent.string
                ),
                language=current_language(),
            )
        except AddressRefused:
            pass  # blocklisted: nothing stored, nothing sent, and the same answer as success
        except InvalidEmail as error:
            errors["email"] = _email_error(error)
        except ValidationError as error:
            errors[error.field or "email"] = error.message[:1].upper() + error.message[1:] + "."
    if errors:
        return _page(
            "subscribe.html", 400, lists=lists, chosen=chosen, values=values, errors=errors
        )
    # Known, new, confirmed or blocklisted: the same words, so the form tells nobody anything.
    by_slug = {lst.slug: lst for lst in lists}
    return _page(
        "check_inbox.html",
        email=values["email"],
        lists=[by_slug[slug] for slug in dict.fromkeys(chosen)],
    )


def _consent_page() -> str | None:
    """The page the form was on: its hidden ``page`` field (an embedded form says where it
    is), else the Referer; a path on our own site, with any link token taken out."""
    ours = {request.host.lower(), urlsplit(current_app.config["BASE_URL"]).netloc.lower()}
    page = page_of(request.form.get("page") or request.referrer, ours)
    return redact_tokens(page) if page else None


def _email_error(error: InvalidEmail) -> str:
    return _("That doesn't look like an email address we can use: %(reason)s",
             reason=error.reason)


@bp.route("/subscribe/embed", methods=["POST"])
@signup_guard.per_client_limit
@signup_guard.global_limit
def subscribe_embed() -> BaseResponse | tuple[str, int]:
    """The form an organisation pastes into its own site (see ``admin/embed.py``).

    Posted from another origin, so without our CSRF token: accepted for double opt-in lists
    only, where nothing happens until the address's owner presses the mailed link. Valid
    posts, known or new addresses, and a filled honeypot all get the same 303 to the neutral
    page.
    """
    slug = request.form.get("list", "").strip()
    lst = db.session.scalar(select(MailingList).where(MailingList.slug == slug))
    if lst is None or lst.optin is not OptIn.DOUBLE:
        return _page(
            "message.html",
            400,
            title=_("This form can't sign you up"),
            message=_("This list can't be joined from another website. Please use our own "
                      "signup page."),
        )
    email = request.form.get("email", "").strip()
    name = request.form.get("name", "").strip()
    problem = _subscribe_errors({"email": email, "name": name}, [slug], {slug})
    if not problem and not signup_guard.challenge_passed():
        problem["challenge"] = _("The form was sent before its check had finished. Go back "
                                 "and send it again.")
    if problem:
        return _page(
            "message.html", 400, title=_("Please try again"), message=next(iter(problem.values()))
        )
    if not signup_guard.honeypot_filled():
        try:
            subscriptions.subscribe(
                email,
                name=name,
                list_slugs=[slug],
                source=ConsentSource.FORM,
                consent=form_consent(
                    _consent_page(), ip=request.remote_addr, user_agent=request.user_agent.string
                ),
                language=current_language(),
            )
        except AddressRefused:
            pass  # blocklisted: nothing stored, nothing sent, and the same answer as success
        except (InvalidEmail, ValidationError) as error:
            return _page("message.html", 400, title=_("Please try again"), message=str(error))
    return redirect(url_for("public.subscribed"), code=303)


@bp.route("/subscribe/thanks")
def subscribed() -> tuple[str, int]:
    """The neutral page after a sign-up from another site: it names no address."""
    return _page("check_inbox.html", email=None, lists=[])


@bp.route("/subscribe/challenge")
def signup_challenge() -> Response:
    """A fresh proof-of-work challenge for a sign-up form (ours or an embedded one)."""
    if not signup_guard.challenge_on():
        raise NotFound("challenge", 0)
    response = jsonify(signup_guard.new_challenge())
    response.headers["Cache-Control"] = "no-store"
    # Embedded forms fetch it from their own site's pages; it holds nothing private.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _subscribe_errors(
    values: dict[str, str], chosen: list[str], public: set[str]
) -> dict[str, str]:
    errors = {}
    if not values["email"]:
        errors["email"] = _("Enter your email address.")
    else:
        try:  # syntax only here, so every mistake shows at once; subscribe() checks again
            normalise_email(values["email"])
        except InvalidEmail as error:
            errors["email"] = _email_error(error)
    if len(values["name"]) > subscriptions.NAME_MAX:
        errors["name"] = _("Keep the name under %(max)s characters.", max=subscriptions.NAME_MAX)
    if not chosen:
        errors["lists"] = _("Choose at least one list.")
    elif not set(chosen) <= public:
        errors["lists"] = _("Choose from the lists shown.")
    return errors


# Confirmation.


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> tuple[str, int]:
    """GET shows a button; only the POST from that button confirms."""
    subscription = subscriptions.subscription_to_confirm(token)
    _speak_to(subscription.subscriber.language)
    if request.method == "POST":
        subscription = subscriptions.confirm(token)
        return _page(
            "confirmed.html",
            subscription=subscription,
            manage_url=_manage_url(subscription.subscriber),
        )
    return _page(
        "confirm.html",
        subscription=subscription,
        already=subscription.status is SubscriptionStatus.CONFIRMED,
        manage_url=_manage_url(subscription.subscriber),
    )


def _manage_url(subscriber: Subscriber) -> str:
    return manage_url(subscriber.id, version=subscriber.token_version)


def _manage_url_from(link: subscriptions.Link) -> str | None:
    """A fresh link to the preferences page, for a link no older than a manage link may be.

    An unsubscribe link works for more than a year and travels with every forwarded mail;
    minting manage links from it would make their shorter life pointless.
    """
    if not link.younger_than(int(current_app.config["MANAGE_MAX_AGE"])):
        return None
    return _manage_url(link.subscriber)


# Unsubscribe.


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> tuple[str, int]:
    """GET shows a button; POST unsubscribes: from that button (with its CSRF token), or the
    RFC 8058 one-click POST of a mail provider (no session, no CSRF token)."""
    link = subscriptions.read_link("unsubscribe", token)
    subscriber, lst = link.subscriber, link.list
    _speak_to(subscriber.language)
    if request.method == "POST":
        if subscriptions.unsubscribe(subscriber.id, lst.id if lst else None):
            _count_unsubscribe(link)
        return _page(
            "unsubscribed.html",
            subscriber=subscriber,
            list=lst,
            manage_url=_manage_url_from(link),
        )
    active = [
        s for s in subscriber.subscriptions
        if s.status is not SubscriptionStatus.UNSUBSCRIBED and (lst is None or s.list_id == lst.id)
    ]
    return _page(
        "unsubscribe.html",
        subscriber=subscriber,
        list=lst,
        already=not active,
        manage_url=_manage_url_from(link),
    )


def _count_unsubscribe(link: subscriptions.Link) -> None:
    """One unsubscribe for the issue the link came with (once per person, however many of
    their lists it ended); links from before issues rode along count for none."""
    if link.issue_id is not None and db.session.get(Issue, link.issue_id) is not None:
        record_unsubscribe(link.issue_id)


# Preferences.


@bp.route("/manage/<token>", methods=["GET", "POST"])
def manage(token: str) -> BaseResponse | tuple[str, int]:
    """Change the name, tick and untick lists, or leave every list."""
    link = subscriptions.read_link("manage", token)
    subscriber = link.subscriber
    _speak_to(subscriber.language)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if request.form.get("action") == "unsubscribe-all":
            if subscriptions.unsubscribe(subscriber.id, None):
                _count_unsubscribe(link)
            flash(_("You're unsubscribed from every list. We won't email you again."), "success")
            return redirect(url_for("public.manage", token=token))
        try:
            subscriptions.update_preferences(
                subscriber.id,
                name=request.form.get("name", subscriber.name),  # a form without it keeps the name
                list_slugs=request.form.getlist("lists"),
                consent=form_consent(
                    redact_tokens(request.path), ip=request.remote_addr,
                    user_agent=request.user_agent.string, detail="preferences page",
                ),
            )
        except ValidationError as error:
            errors[error.field or "lists"] = error.message[:1].upper() + error.message[1:] + "."
        else:
            # The page they saved was in the language they read us in: write to them in it.
            subscriber.language = current_language()
            db.session.commit()
            flash(_("Your preferences are saved."), "success")
            return redirect(url_for("public.manage", token=token))
    states = {s.list_id: s.status for s in subscriber.subscriptions}
    return _page(
        "manage.html",
        400 if errors else 200,
        subscriber=subscriber,
        lists=subscriptions.manageable_lists(subscriber),
        states=states,
        statuses=SubscriptionStatus,
        name=request.form.get("name", subscriber.name) if errors else subscriber.name,
        errors=errors,
    )


@bp.get("/manage/<token>/export.json")
def manage_export(token: str) -> Response:
    """Everything we hold about the reader, as a JSON download."""
    subscriber = subscriptions.read_link("manage", token).subscriber
    body = json.dumps(personal_data(subscriber), indent=2, ensure_ascii=False)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="my-newsletter-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/manage/<token>/erase", methods=["GET", "POST"])
def manage_erase(token: str) -> tuple[str, int]:
    """GET asks to confirm; the POST (with the page's CSRF token) erases the reader.

    A second POST of the same link (a double click, a reload) answers as the first did.
    """
    data = read_token("manage", token, int(current_app.config["MANAGE_MAX_AGE"]))
    if request.method == "POST" and db.session.get(Subscriber, data.subscriber_id) is None:
        return _erased_page()
    subscriber = subscriptions.read_link("manage", token).subscriber
    if request.method == "POST":
        erasure.erase(subscriber)
        return _erased_page()
    return _page("manage_erase.html", subscriber=subscriber)


def _erased_page() -> tuple[str, int]:
    return _page(
        "message.html",
        title=_("Your data is erased"),
        message=_(
            "We deleted your address, your name and your subscriptions, and we will not "
            "email you again. Nobody can add your address back except you, by signing up again."
        ),
    )


# Archive.


# Archive: what is public is decided in content/archive.py.


def _sent_issues(limit: int | None = None) -> list[Issue]:
    query = (
        select(Issue)
        .where(public_condition())
        .order_by(func.coalesce(Issue.finished_at, Issue.created_at).desc(), Issue.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def issue_date(issue: Issue) -> datetime:
    """When an issue went out (the best we know)."""
    return issue.finished_at or issue.started_at or issue.created_at


def issue_path(issue: Issue) -> str:
    """The issue's permalink on this site (by slug; by id for one that has none)."""
    if issue.slug:
        return url_for("public.archive_issue", slug=issue.slug)
    return url_for("public.archive_issue_by_id", issue_id=issue.id)


@bp.route("/archive")
def archive() -> tuple[str, int]:
    """Every public issue, newest first."""
    return _page("archive.html", issues=_sent_issues(), issue_date=issue_date,
                 issue_path=issue_path)


@bp.route("/archive/<int:issue_id>")
def archive_issue_by_id(issue_id: int) -> BaseResponse | tuple[str, int]:
    """An old link by id: to the permalink, for public issues only."""
    issue = db.session.scalar(select(Issue).where(Issue.id == issue_id, public_condition()))
    if issue is None:
        raise NotFound("issue", issue_id)  # the same page as for an id that never existed
    if issue.slug:
        return redirect(url_for("public.archive_issue", slug=issue.slug), 301)
    return _archived_page(issue)


@bp.route("/archive/<slug>")
def archive_issue(slug: str) -> tuple[str, int]:
    """One public issue as a page of the site: its statements, a way back to the archive."""
    issue = db.session.scalar(select(Issue).where(Issue.slug == slug, public_condition()))
    if issue is None:
        raise NotFound("issue", slug)
    return _archived_page(issue)


def _archived_page(issue: Issue) -> tuple[str, int]:
    return _page("archive_issue.html", issue=issue, when=issue_date(issue),
                 **archive_page.contents(issue))


@bp.route("/archive/image")
def archive_image() -> Response:
    """A remote image of an archived issue, through this site (``ARCHIVE_REMOTE_IMAGES``
    ``proxy``), for signed URLs only."""
    if current_app.config["ARCHIVE_REMOTE_IMAGES"] != "proxy":
        raise NotFound("image", "")
    return archive_page.proxy_image(request.args.get("u", ""), request.args.get("s", ""))


@bp.route("/archive.atom")
def archive_feed() -> Response:
    """An Atom feed of the newest sent issues."""
    base = current_app.config["BASE_URL"]
    issues = _sent_issues(FEED_SIZE)
    entries = [
        {
            "title": _xml_text(issue.subject),
            "url": f"{base}{issue_path(issue)}",
            "date": _rfc3339(issue_date(issue)),
            "summary": _xml_text(_summary(issue)),
        }
        for issue in issues
    ]
    updated = entries[0]["date"] if entries else _rfc3339(utcnow())
    body = render_template(
        "public/archive.atom.xml",
        title=_xml_text(site_name()),
        base_url=base,
        updated=updated,
        entries=entries,
    )
    return Response(body, mimetype="application/atom+xml")


def _summary(issue: Issue) -> str:
    if issue.preheader:
        return issue.preheader
    return " · ".join(statement.title for statement in issue.statements)


def _rfc3339(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _xml_text(value: str) -> str:
    # Autoescaping handles <, & and quotes; these characters are not allowed in XML at all.
    return _XML_UNSAFE.sub("", value or "")
