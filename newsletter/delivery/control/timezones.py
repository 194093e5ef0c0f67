"""Editors' timezones: send times are typed and shown in the editor's zone, stored in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from newsletter.errors import ValidationError

DEFAULT_TIMEZONE = "UTC"
#: longest IANA name the users.timezone column holds
MAX_NAME_LENGTH = 64


@lru_cache(maxsize=1)
def timezone_names() -> list[str]:
    """Every IANA timezone name this machine knows, sorted (UTC first)."""
    names = sorted(name for name in available_timezones() if len(name) <= MAX_NAME_LENGTH)
    return [DEFAULT_TIMEZONE, *(name for name in names if name != DEFAULT_TIMEZONE)]


@lru_cache(maxsize=1)
def _known_names() -> frozenset[str]:
    return frozenset(timezone_names())


def get_zone(name: str | None, *, field: str = "timezone") -> ZoneInfo:
    """The zone called ``name`` (blank: UTC).

    :raises ValidationError: not an IANA timezone name (``field`` names the input).
    """
    name = (name or "").strip() or DEFAULT_TIMEZONE
    # ZoneInfo would also open paths like "../x"; only names from the database count.
    if name not in _known_names():
        raise ValidationError(
            f"{name!r} is not a timezone name (like Europe/Berlin or UTC)", field=field
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name!r} is not a timezone name", field=field) from None


def check_timezone(name: str | None, *, field: str = "timezone") -> str:
    """``name`` cleaned up, once known to be an IANA timezone name.

    :raises ValidationError: it is not one.
    """
    return str(get_zone(name, field=field).key)


def local_to_utc(local: datetime, zone: ZoneInfo, *, field: str = "send_at") -> datetime:
    """A wall-clock time in ``zone`` (naive) as an aware UTC datetime.

    A time the clocks skip (the hour lost to summer time) is refused; a time they pass twice
    (the hour repeated in autumn) is its first occurrence.

    :raises ValidationError: the time does not exist in the zone.
    """
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    aware = local.replace(tzinfo=zone, fold=0)
    in_utc = aware.astimezone(UTC)
    if in_utc.astimezone(zone).replace(tzinfo=None) != local:
        raise ValidationError(
            f"{local:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip it)",
            field=field,
        )
    return in_utc


def parse_when(text: str, zone: ZoneInfo, *, field: str = "send_at") -> datetime:
    """An ISO 8601 date and time (``2026-12-01 09:00``, ``2026-12-01T09:00+01:00``) as an
    aware UTC datetime; without an offset it is a wall-clock time in ``zone``.

    :raises ValidationError: not a date and time, or one that does not exist in the zone.
    """
    cleaned = (text or "").strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValidationError(
            f"{text!r} is not a date and time like 2026-12-01 09:00", field=field
        ) from None
    if len(cleaned) <= 10:  # a bare date: ambiguous about the hour, so say so
        raise ValidationError(f"{text!r} needs a time of day, like {cleaned} 09:00", field=field)
    return local_to_utc(value, zone, field=field)


def in_zone(value: datetime | None, name: str | None) -> datetime | None:
    """``value`` on the clocks of timezone ``name`` (unknown names: UTC)."""
    if value is None:
        return None
    try:
        zone = get_zone(name)
    except ValidationError:
        zone = ZoneInfo(DEFAULT_TIMEZONE)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(zone)
