"""The subscribers list (search, filters, keyset pages) and one page per subscriber, with
what an admin may change there: name, attributes, subscriptions, blocklisting, the links in
mail already sent, deletion.

Every change is a POST with the page's CSRF token; the audit trail records it
(``web/audit_trail.py``). The role table names each endpoint (admins only).
"""

from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from newsletter.audience import directory, profile
from newsletter.audience.models import SubscriberStatus, SubscriptionStatus
from newsletter.audience.subscriptions import get_subscriber, revoke_links, visible_attributes
from newsletter.delivery.bounces import policy as bounce_policy
from newsletter.delivery.control.log import latest_for_subscriber
from newsletter.errors import NewsletterError
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm
from newsletter.web.admin.subscriber_forms import AddToListForm, SubscriberEditForm


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, type=int)
    return value if value is not None and value > 0 else None


@bp.get("/subscribers")
def subscribers() -> tuple[str, int]:
    """Subscribers, newest first: search by the start of an address or name, or by an
    attribute's value; filter by list, subscription status and status; keyset pages."""
    args = request.args
    error = None
    try:
        filters = directory.clean_filters(
            term=args.get("q", ""),
            list_id=_int_arg("list"),
            subscription_status=args.get("subscription", ""),
            status=args.get("status", ""),
            attribute_key=args.get("key", ""),
            attribute_value=args.get("value", ""),
        )
    except NewsletterError as refused:
        error, filters = refused.message, directory.Filters()
    page = directory.search(filters, after=_int_arg("after"), before=_int_arg("before"))
    kept = {
        "q": filters.term or None,
        "list": filters.list_id,
        "subscription": filters.subscription_status.value if filters.subscription_status
        else None,
        "status": filters.status.value if filters.status else None,
        "key": filters.attribute_key or None,
        "value": filters.attribute_value if filters.attribute_key else None,
    }
    html = render_template(
        "admin/subscribers.html",
        page=page,
        filters=filters,
        kept=kept,
        error=error,
        lists=directory.lists_for_filter(),
        subscription_statuses=[s.value for s in SubscriptionStatus],
        statuses=[s.value for s in SubscriberStatus],
        window=directory.SCAN_WINDOW,
    )
    return html, 422 if error else 200


def _page(subscriber_id: int, *, edit_form: SubscriberEditForm | None = None,
          status: int = 200) -> tuple[str, int]:
    subscriber = get_subscriber(subscriber_id)
    attributes = visible_attributes(subscriber.attributes)
    if edit_form is None:
        edit_form = SubscriberEditForm(
            formdata=None,
            data={
                "name": subscriber.name,
                "attributes": json.dumps(attributes, indent=2, ensure_ascii=False)
                if attributes else "",
            },
        )
    add_form = AddToListForm(formdata=None)
    add_form.list_slug.choices = [
        (lst.slug, lst.name) for lst in profile.subscriber_lists(subscriber)
    ]
    subscriptions = sorted(subscriber.subscriptions, key=lambda s: (s.list.name.lower(), s.list_id))
    html = render_template(
        "admin/subscriber.html",
        subscriber=subscriber,
        subscriptions=subscriptions,
        attributes=attributes,
        deliveries=latest_for_subscriber(subscriber.id, limit=50),
        bounce_events=bounce_policy.events_of(subscriber.id, limit=50),
        edit_form=edit_form,
        add_form=add_form,
        action_form=ActionForm(),
    )
    return html, status


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber(subscriber_id: int) -> tuple[str, int]:
    """One subscriber: details, subscriptions, consent, deliveries, and the edit forms."""
    return _page(subscriber_id)


@bp.post("/subscribers/<int:subscriber_id>/edit")
def subscriber_edit(subscriber_id: int) -> Response | tuple[str, int]:
    """Change the name and the attributes (a JSON object; the tool's own keys stay)."""
    get_subscriber(subscriber_id)
    form = SubscriberEditForm()
    if form.validate_on_submit():
        try:
            attributes = profile.parse_attributes(form.attributes.data or "")
            profile.update_subscriber(
                subscriber_id, name=form.name.data or "", attributes=attributes,
                replace_attributes=True,
            )
        except NewsletterError as error:
            field = getattr(form, error.field or "", None) or form.name
            field.errors = [*field.errors, error.message]
        else:
            flash("Saved.", "success")
            return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))
    return _page(subscriber_id, edit_form=form, status=422)


def _checked() -> None:
    """Stop unless the action carries the page's CSRF token."""
    if not ActionForm().validate_on_submit():
        abort(400)


def _back(subscriber_id: int) -> Response:
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/subscriptions")
def subscriber_add_list(subscriber_id: int) -> Response:
    """Put the subscriber on a list, confirmed or awaiting their confirmation."""
    subscriber = get_subscriber(subscriber_id)
    form = AddToListForm()
    form.list_slug.choices = [
        (lst.slug, lst.name) for lst in profile.subscriber_lists(subscriber)
    ]
    if not form.validate_on_submit():
        flash("Choose a list to add them to.", "error")
        return _back(subscriber_id)
    wanted = SubscriptionStatus(form.status.data or "unconfirmed")
    try:
        profile.update_subscriber(
            subscriber_id, subscriptions=[(form.list_slug.data or "", wanted)]
        )
    except NewsletterError as error:
        flash(error.message, "error")
    else:
        flash(f"Added as {wanted.value}.", "success")
    return _back(subscriber_id)


_SUBSCRIPTION_ACTIONS = {
    "confirm": SubscriptionStatus.CONFIRMED,
    "unsubscribe": SubscriptionStatus.UNSUBSCRIBED,
    "resubscribe": SubscriptionStatus.UNCONFIRMED,
}


@bp.post("/subscribers/<int:subscriber_id>/subscriptions/<int:list_id>")
def subscriber_subscription(subscriber_id: int, list_id: int) -> Response:
    """Confirm, unsubscribe, ask again (unconfirmed, with a mail) or remove one subscription."""
    _checked()
    action = request.form.get("action", "")
    try:
        if action == "remove":
            profile.remove_subscription(subscriber_id, list_id)
            flash("Removed from the list.", "success")
        elif action in _SUBSCRIPTION_ACTIONS:
            profile.change_subscription(subscriber_id, list_id, _SUBSCRIPTION_ACTIONS[action])
            flash("Subscription changed.", "success")
        else:
            abort(400)
    except NewsletterError as error:
        flash(error.message, "error")
    return _back(subscriber_id)


@bp.post("/subscribers/<int:subscriber_id>/blocklist")
def subscriber_blocklist(subscriber_id: int) -> Response:
    """Never mail this address again, whatever its subscriptions say."""
    _checked()
    profile.set_status(subscriber_id, SubscriberStatus.BLOCKLISTED)
    flash("Blocklisted: no mail goes to this address.", "success")
    return _back(subscriber_id)


@bp.post("/subscribers/<int:subscriber_id>/unblocklist")
def subscriber_unblocklist(subscriber_id: int) -> Response:
    """Mail this address again, on the lists it is confirmed on."""
    _checked()
    profile.set_status(subscriber_id, SubscriberStatus.ACTIVE)
    flash("Taken off the blocklist.", "success")
    return _back(subscriber_id)


@bp.post("/subscribers/<int:subscriber_id>/revoke-links")
def subscriber_revoke_links(subscriber_id: int) -> Response:
    """Make the manage and unsubscribe links in every mail sent to them so far open nothing
    (someone else holds them: a forwarded mail, a shared inbox); the next mail has new ones."""
    _checked()
    revoke_links(subscriber_id)
    flash("Their links are revoked: the links in mail already sent no longer work; "
          "the next mail carries new ones.", "success")
    return _back(subscriber_id)


@bp.route("/subscribers/<int:subscriber_id>/delete", methods=["GET", "POST"])
def subscriber_delete(subscriber_id: int) -> Response | str:
    """Ask first (GET), then delete the subscriber with their subscriptions and deliveries."""
    subscriber = get_subscriber(subscriber_id)
    if request.method == "GET":
        return render_template(
            "admin/subscriber_delete.html", subscriber=subscriber, action_form=ActionForm()
        )
    _checked()
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the deletion.", "error")
        return redirect(url_for("admin.subscriber_delete", subscriber_id=subscriber_id))
    email = profile.delete_subscriber(subscriber_id)
    flash(f"{email} deleted.", "success")
    return redirect(url_for("admin.subscribers"))

