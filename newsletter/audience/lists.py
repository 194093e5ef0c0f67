"""Mailing lists: create, look up, list."""

from __future__ import annotations

import re

from sqlalchemy import select

from newsletter.audience.models import MailingList, OptIn
from newsletter.errors import Conflict, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")


def create_list(
    slug: str,
    name: str,
    *,
    description: str = "",
    optin: OptIn = OptIn.DOUBLE,
    public: bool = True,
) -> MailingList:
    """Make a list (double opt-in and public unless told otherwise).

    :raises ValidationError: a bad slug (``field="slug"``) or an empty name (``field="name"``).
    :raises Conflict: the slug is taken.
    """
    slug = (slug or "").strip()
    name = (name or "").strip()
    if not SLUG.match(slug):
        raise ValidationError(
            f"{slug!r} is not a valid slug: use lower-case letters, digits and hyphens "
            "(at most 100, not starting or ending with a hyphen)",
            field="slug",
        )
    if not name:
        raise ValidationError("a list needs a name", field="name")
    for field, value in (("name", name), ("description", description or "")):
        if "\x00" in value:  # PostgreSQL text cannot hold it
            raise ValidationError(f"the {field} contains a NUL character", field=field)
    if len(name) > 200:
        raise ValidationError("the name is longer than 200 characters", field="name")
    if db.session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise Conflict(f"a list with the slug {slug!r} already exists", field="slug")
    lst = MailingList(
        slug=slug, name=name, description=(description or "").strip(), optin=optin, public=public
    )
    db.session.add(lst)
    db.session.commit()
    return lst


def list_lists(public_only: bool = False) -> list[MailingList]:
    """Every list (or only the public ones that are not archived: the signup form's), by
    name."""
    query = select(MailingList).order_by(MailingList.name, MailingList.id)
    if public_only:
        query = query.where(MailingList.public.is_(True), MailingList.archived_at.is_(None))
    return list(db.session.scalars(query))


def get_list_by_slug(slug: str) -> MailingList:
    """The list with this slug.

    :raises NotFound: no such list.
    """
    # No slug holds NUL, and PostgreSQL refuses it in a query rather than finding nothing.
    lst = None if "\x00" in slug else db.session.scalar(
        select(MailingList).where(MailingList.slug == slug)
    )
    if lst is None:
        raise NotFound("list", slug)
    return lst


def get_list(list_id: int) -> MailingList:
    """The list with this id.

    :raises NotFound: no such list.
    """
    return get_or_raise(MailingList, list_id, "list")


def update_list(
    list_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    optin: OptIn | None = None,
    public: bool | None = None,
    archived: bool | None = None,
) -> MailingList:
    """Change what is given (the slug stays: links and API clients use it) and commit.

    Archiving keeps the list, its subscribers and past issues; it only leaves the signup
    form and the compose pickers. ``archived=False`` brings it back.

    :raises NotFound: no such list.
    :raises ValidationError: an empty or too long name (``field="name"``), NUL in a text.
    """
    lst = get_list(list_id)
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError("a list needs a name", field="name")
        if len(name) > 200:
            raise ValidationError("the name is longer than 200 characters", field="name")
    for field, value in (("name", name), ("description", description)):
        if value is not None and "\x00" in value:  # PostgreSQL text cannot hold it
            raise ValidationError(f"the {field} contains a NUL character", field=field)
    if name is not None:
        lst.name = name
    if description is not None:
        lst.description = description.strip()
    if optin is not None:
        lst.optin = optin
    if public is not None:
        lst.public = public
    if archived is not None and archived != (lst.archived_at is not None):
        lst.archived_at = utcnow() if archived else None
    db.session.commit()
    return lst
