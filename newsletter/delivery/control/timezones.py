"""Editors' timezones: send times are typed and shown in the editor's zone, stored in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError, available_timezones

from newsletter.errors import ValidationError

DEFAULT_TIMEZONE = "UTC"
#: longest IANA name the users.timezone column holds
MAX_NAME_LENGTH = 64


#: the zones most editors look for, offered first in the picker (those this machine knows)
COMMON_TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "America/Bogota",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
#: folders of tzdata's ``backward`` file: old names kept for compatibility only
BACKWARD_FOLDERS = frozenset({"US", "Canada", "Brazil", "Chile", "Mexico", "SystemV"})


@lru_cache(maxsize=1)
def timezone_names() -> list[str]:
    """Every IANA timezone name this machine knows, sorted (UTC first): the names accepted
    when typed or stored, aliases included."""
    names = sorted(name for name in available_timezones() if len(name) <= MAX_NAME_LENGTH)
    return [DEFAULT_TIMEZONE, *(name for name in names if name != DEFAULT_TIMEZONE)]


def _zone_tab_names() -> frozenset[str] | None:
    """The canonical zones of ``zone1970.tab``/``zone.tab`` (one or more per country), when
    the system's tz database has the file; None otherwise."""
    for folder in TZPATH:
        names: set[str] = set()
        for filename in ("zone.tab", "zone1970.tab"):
            path = Path(folder, filename)
            if path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    fields = line.split("\t")
                    if not line.startswith("#") and len(fields) >= 3:
                        names.add(fields[2].strip())
        if names:
            return frozenset(names)
    return None


def is_alias(name: str) -> bool:
    """True for a name kept only for compatibility (``Factory``, ``EST5EDT``, ``Etc/GMT+3``,
    ``US/Eastern``, ``Asia/Calcutta`` …); UTC is not one."""
    if name == DEFAULT_TIMEZONE:
        return False
    if "/" not in name or name.startswith(("Etc/", "posix/", "right/")):
        return True
    if name.split("/", 1)[0] in BACKWARD_FOLDERS:
        return True
    canonical = _zone_tab_names()
    return canonical is not None and name not in canonical


@lru_cache(maxsize=1)
def picker_names() -> tuple[list[str], list[str]]:
    """The picker's zones: (common ones first, every other real zone sorted), no aliases."""
    known = set(timezone_names())
    common = [name for name in COMMON_TIMEZONES if name in known]
    rest = sorted(name for name in known if name not in common and not is_alias(name))
    return common, rest


def picker_choices(current: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Choices for a timezone select box, as option groups: common zones, then the others.
    ``current`` (a stored name, perhaps an alias) is offered too, so it stays selected."""
    common, rest = picker_names()
    groups = {
        "Common time zones": [(name, name.replace("_", " ")) for name in common],
        "All time zones": [(name, name.replace("_", " ")) for name in rest],
    }
    if current and current not in common and current not in rest:
        groups["Common time zones"].insert(0, (current, current.replace("_", " ")))
    return groups


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
