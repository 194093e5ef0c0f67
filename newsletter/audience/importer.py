"""Importing subscribers from CSV or TSV: subscribe, subscribe unconfirmed, unsubscribe,
blocklist.

Columns: the address (``email``, ``Email Address``, …), ``name`` (or first and last name),
``lists`` (list slugs separated by ``|`` or ``;``, added to the chosen list), listmonk's JSON
``attributes`` column, and every other column as an attribute. The headers of listmonk and
Mailchimp exports are understood as they are; their bookkeeping columns (ids, timestamps,
the IP addresses of opt-ins) are left out.

The file is streamed (csvsource) and written in chunks, each in its own transaction: an
address already in the database, or earlier in the file, is merged into the one subscriber
(its name and attributes updated, or kept, as chosen), so running a chunk twice changes
nothing. Bad rows are reported with their line number and reason and the rest imported;
only a file that is not CSV at all, or has no address column, is refused whole.

On PostgreSQL each chunk is a handful of statements over arrays (``unnest``), and every
look-up goes through ``lower(email)``, the expression the unique index is on.
"""

from __future__ import annotations

import json
import queue as stdqueue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import IO, Any, BinaryIO

from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from flask import current_app
from sqlalchemy import BigInteger, Text, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from newsletter import queue
from newsletter.audience import csvsource, gate
from newsletter.audience.addresses import MAX_LENGTH, normalise_email
from newsletter.audience.consent import import_consent
from newsletter.audience.csvsource import FileRefused
from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import (
    ConsentSource,
    ImportMode,
    MailingList,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.subscriptions import NAME_MAX, clean_name
from newsletter.errors import InvalidEmail, ValidationError
from newsletter.extensions import db
from newsletter.models import UTCDateTime, utcnow

#: rows per chunk and transaction (two chunks are in memory at a time: 5,000 keeps an
#: import under 150 MB and is as fast as 10,000, measured with `newsletter bench import`)
CHUNK_SIZE = 5_000
#: bad rows kept in memory for the summary (all of them go to ``on_bad``)
KEPT_BAD_ROWS = 1000
#: the characters that make a spreadsheet read a cell as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

OnBad = Callable[[int, str, list[str]], None]
_TEXT_ARRAY = ARRAY(Text())
_INT_ARRAY = ARRAY(BigInteger())


@dataclass(frozen=True)
class ImportOptions:
    """What to do with a file.

    :param list_slug: the list (required to subscribe; for unsubscribe, none means every list).
    :param overwrite: names and attributes in the file replace those of people we have
        (otherwise theirs are kept).
    :param send_confirmations: in ``unconfirmed`` mode, mail each a confirmation link.
    :param encoding: the file's encoding, or None to detect it.
    :param delimiter: the file's delimiter, or None to detect it.
    :param file_name: the file's name and ``label`` what the importer said about how its
        people consented: both go into each new subscription's record of consent.
    """

    list_slug: str | None
    mode: ImportMode = ImportMode.SUBSCRIBE
    overwrite: bool = True
    send_confirmations: bool = True
    encoding: str | None = None
    delimiter: str | None = None
    file_name: str = ""
    label: str = ""


@dataclass
class ImportResult:
    """What an import did, counted in rows (``bad_rows`` holds the first bad ones)."""

    rows: int = 0  # records read after the header, blank lines left out
    imported: int = 0  # good rows applied
    created: int = 0  # new subscribers
    updated: int = 0  # people we had whose name or attributes changed
    merged: int = 0  # good rows for an address we had, or had earlier in the file
    subscribed: int = 0  # subscriptions made or confirmed
    already: int = 0  # subscriptions that were as asked already
    kept_unsubscribed: int = 0  # had unsubscribed from the list: an import does not undo that
    awaiting_confirmation: int = 0  # subscriptions left unconfirmed
    confirmations_queued: int = 0
    unsubscribed: int = 0
    blocklisted: int = 0
    not_found: int = 0  # unsubscribe: addresses we do not have
    bad: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""
    ignored_columns: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The numbers, for storing with a job."""
        return {
            key: value
            for key, value in asdict(self).items()
            if isinstance(value, int) and not isinstance(value, bool)
        }

    @classmethod
    def from_counts(cls, counts: dict[str, Any]) -> ImportResult:
        """A result that goes on from stored counts."""
        known = {key: int(value) for key, value in counts.items() if key in cls.__annotations__}
        return cls(**known)  # type: ignore[arg-type]

    def add_bad(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_rows) < KEPT_BAD_ROWS:
            self.bad_rows.append((line, reason))


@dataclass(frozen=True)
class Checkpoint:
    """Where the next chunk starts: a byte offset at a record boundary, and its line."""

    offset: int
    line: int


# --- columns ------------------------------------------------------------------------------


def _key(header: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", header.strip().lstrip("\ufeff").lower()).split())


EMAIL_COLUMNS = {"email", "e mail", "email address", "e mail address", "emailaddress", "mail"}
NAME_COLUMNS = {"name", "full name", "fullname", "display name"}
FIRST_NAME_COLUMNS = {"first name", "firstname", "fname", "given name"}
LAST_NAME_COLUMNS = {"last name", "lastname", "lname", "surname", "family name"}
LISTS_COLUMNS = {"lists", "list"}
JSON_COLUMNS = {"attributes", "attribs"}
#: listmonk's export (it has the JSON attributes column): its own bookkeeping; its
#: ``status`` column is read for one value, "blocklisted", which the import keeps
LISTMONK_IGNORED = {"uuid", "id", "status", "created at", "updated at"}
LISTMONK_STATUS = "status"
#: Mailchimp's export (its address column is "Email Address"): its bookkeeping, and the IP
#: addresses of the opt-in, which we store only when a setting says so
MAILCHIMP_IGNORED = {
    "member rating", "optin time", "optin ip", "confirm time", "confirm ip", "latitude",
    "longitude", "gmtoff", "dstoff", "timezone", "cc", "region", "last changed", "leid",
    "euid", "notes",
}  # fmt: skip
LIST_SEPARATORS = re.compile(r"[|;]")


@dataclass(frozen=True)
class Columns:
    """Where each thing is in a row."""

    headers: list[str]
    email: int
    name: int | None
    first_name: int | None
    last_name: int | None
    lists: int | None
    json_attributes: int | None
    attributes: list[tuple[int, str]]
    ignored: list[str]
    #: listmonk's ``status`` column, whose "blocklisted" rows are blocklisted, not subscribed
    listmonk_status: int | None = None


def read_header(cells: list[str]) -> Columns:
    """The columns of a header row.

    :raises FileRefused: no address column, or one named twice.
    """
    headers = [cell.strip().lstrip("\ufeff") for cell in cells]
    keys = [_key(header) for header in headers]
    where: dict[str, int] = {}
    for at, key in enumerate(keys):
        if key and key in where:
            raise FileRefused(f"the header names the column {headers[at]!r} twice")
        where[key] = at

    def first_of(names: set[str]) -> int | None:
        return min((where[name] for name in names if name in where), default=None)

    email = first_of(EMAIL_COLUMNS)
    if email is None:
        shown = ", ".join(headers[:6]) or "nothing"
        raise FileRefused(
            f"no address column: the header row needs one called email (or Email Address); "
            f"it has {shown}"
        )
    name = first_of(NAME_COLUMNS)
    first = first_of(FIRST_NAME_COLUMNS) if name is None else None
    last = first_of(LAST_NAME_COLUMNS) if name is None else None
    lists = first_of(LISTS_COLUMNS)
    json_attributes = first_of(JSON_COLUMNS)
    skip: set[str] = set()
    if json_attributes is not None:
        skip |= LISTMONK_IGNORED
    if keys[email] == "email address":
        skip |= MAILCHIMP_IGNORED
    listmonk_status = where.get(LISTMONK_STATUS) if json_attributes is not None else None
    taken = {email, name, first, last, lists, json_attributes, listmonk_status}
    attributes, ignored = [], []
    for at, (header, key) in enumerate(zip(headers, keys, strict=True)):
        if at in taken:
            continue
        if not key or key in skip or header.startswith("_"):  # "_…": the tool's own keys
            ignored.append(header)
        else:
            attributes.append((at, header))
    return Columns(headers, email, name, first, last, lists, json_attributes, attributes, ignored,
                   listmonk_status)


# --- rows ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    line: int
    email: str
    name: str
    attributes: dict[str, Any]
    list_ids: frozenset[int]  # often the one default set, shared by every row
    cells: list[str]
    blocklisted: bool = False  # blocklisted in the tool the file comes from (listmonk)


#: The common shape of an address, in ASCII, that email-validator accepts unchanged but for
#: the case of its domain. A fast path: email-validator takes ~120 µs an address here, too
#: slow for a million rows; anything this does not match (or any doubt: punycode, special-use
#: names, lengths) goes to email-validator, which stays the judge.
_FAST_ADDRESS = re.compile(
    r"[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+(?:\.[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_SPECIAL_USE = {"arpa", "invalid", "local", "localhost", "onion", "test"}
#: local parts email-validator lower-cases (RFC 2142 role mailboxes): its own list
_CASE_INSENSITIVE = set(CASE_INSENSITIVE_MAILBOX_NAMES)


def fast_address(candidate: str) -> str | None:
    """The normalised address when it is plainly valid, else None (ask email-validator)."""
    local, at, domain = candidate.rpartition("@")
    if not at or len(local) > 64 or len(candidate) > 254:
        return None
    domain = domain.lower()
    address = f"{local}@{domain}"
    if (
        _FAST_ADDRESS.fullmatch(address) is None
        or "--" in domain
        or domain.rpartition(".")[2] in _SPECIAL_USE
        or local.lower() in _CASE_INSENSITIVE
    ):
        return None
    return address


def valid_address(cell: str) -> str:
    """The address in the form we store.

    :raises InvalidEmail: not an address.
    """
    candidate = cell.strip()
    return fast_address(candidate) or normalise_email(candidate)


class _RowReader:
    """Turns records into rows, or into bad rows with their reason."""

    def __init__(self, columns: Columns, lists: dict[str, int], default_lists: set[int],
                 needs_list: bool) -> None:
        self.columns = columns
        self.lists = lists
        self.default_lists = frozenset(default_lists)
        self.needs_list = needs_list
        self.width = len(columns.headers)

    def row(self, line: int, cells: list[str]) -> Row | str:
        """The row, or why it is bad."""
        columns = self.columns
        if len(cells) > self.width:
            return f"has {len(cells)} fields but the header has {self.width}"
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        raw = cells[columns.email].strip()
        if not raw:
            return "has no email address"
        if len(raw) > MAX_LENGTH:
            return "the email address is too long"
        try:
            address = valid_address(raw)
        except InvalidEmail as error:
            return f"invalid email address {error.address!r}: {error.reason}"
        name = self._name(cells)
        # clean_name's regular expressions cost more than the rest of the row; a name that
        # is already clean (the usual) is taken as it is.
        if not (name.isprintable() and len(name) <= NAME_MAX and name == name.strip()
                and "  " not in name):
            try:
                name = clean_name(name)
            except ValidationError as error:
                return error.message
        attributes: dict[str, Any] = {}
        if columns.json_attributes is not None and cells[columns.json_attributes].strip():
            try:
                loaded = json.loads(cells[columns.json_attributes])
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                return "the attributes column is not a JSON object"
            attributes.update(
                (str(key), value) for key, value in loaded.items() if not str(key).startswith("_")
            )
        for at, header in columns.attributes:
            value = cells[at].strip()
            if value:
                attributes[header] = value
        list_ids = self.default_lists
        if columns.lists is not None:
            named: set[int] = set()
            for slug in LIST_SEPARATORS.split(cells[columns.lists]):
                slug = slug.strip()
                if not slug:
                    continue
                list_id = self.lists.get(slug)
                if list_id is None:
                    return f"names a list that does not exist or is archived: {slug!r}"
                named.add(list_id)
            if named - list_ids:
                list_ids = list_ids | named
        if self.needs_list and not list_ids:
            return "names no list to subscribe to"
        blocklisted = (columns.listmonk_status is not None
                       and cells[columns.listmonk_status].strip().lower() == "blocklisted")
        return Row(line, address, name, attributes, list_ids, cells, blocklisted)

    def _name(self, cells: list[str]) -> str:
        columns = self.columns
        if columns.name is not None:
            return cells[columns.name]
        parts = [cells[at] for at in (columns.first_name, columns.last_name) if at is not None]
        return " ".join(part.strip() for part in parts if part.strip())


# --- the import ---------------------------------------------------------------------------


def import_file(
    stream: BinaryIO,
    options: ImportOptions,
    *,
    on_bad: OnBad | None = None,
    progress: Callable[[int], None] | None = None,
    start: Checkpoint | None = None,
    result: ImportResult | None = None,
    on_chunk: Callable[[Checkpoint, ImportResult], None] | None = None,
) -> ImportResult:
    """Import a CSV or TSV file (a binary stream that can seek), committing chunk by chunk.

    :param on_bad: called with (line, reason, cells) for each bad row.
    :param progress: called with the bytes read so far, after each chunk.
    :param start: go on from here (a checkpoint of an earlier run) with ``result``'s counts.
    :param on_chunk: called inside each chunk's transaction, before its commit, with the
        checkpoint after it (a job records it there, so a resume starts at the next chunk).
    :raises FileRefused: not a CSV file, no address column, an unknown encoding.
    :raises NotFound: no such list.
    :raises ValidationError: a mode that needs a list without one (``field="list"``).
    """
    result = result or ImportResult()
    lists, default_lists = _lists(options)
    sample, complete = csvsource.read_sample(stream)
    fmt = csvsource.detect(
        sample, encoding=options.encoding, delimiter=options.delimiter, complete=complete
    )
    result.encoding, result.delimiter = fmt.label, fmt.delimiter
    header = next(csvsource.records(stream, fmt), None)
    if header is None or header.problem or not any(cell.strip() for cell in header.cells):
        raise FileRefused(
            "the first line must be a header row such as email,name"
            + (f" ({header.problem})" if header is not None and header.problem else "")
        )
    columns = read_header(header.cells)
    result.ignored_columns = columns.ignored
    subscribing = options.mode in (ImportMode.SUBSCRIBE, ImportMode.UNCONFIRMED)
    reader = _RowReader(columns, lists, default_lists, subscribing)
    writer = _ChunkWriter(options, result)
    position = start or Checkpoint(header.end, header.line + 1)
    records = csvsource.records(stream, fmt, offset=position.offset, line=position.line)
    for chunk in _prefetched(_chunks(records, reader)):
        result.rows += chunk.read
        for line, reason, cells in chunk.bad:
            result.add_bad(line, reason)
            if on_bad is not None:
                on_bad(line, reason, cells)
        try:
            pending = writer.write(chunk.rows, on_bad)
            result.confirmations_queued += len(pending)  # queued right after the commit
            if on_chunk is not None:
                on_chunk(chunk.checkpoint, result)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        _enqueue_confirmations(pending)
        if progress is not None:
            progress(chunk.checkpoint.offset)
    return result


def _lists(options: ImportOptions) -> tuple[dict[str, int], set[int]]:
    subscribing = options.mode in (ImportMode.SUBSCRIBE, ImportMode.UNCONFIRMED)
    # An archived list takes no new subscribers; leaving one (unsubscribe) is still fine.
    # A ``lists`` cell naming an archived list is then a bad row, like an unknown list.
    lists = {
        lst.slug: lst.id
        for lst in db.session.scalars(select(MailingList))
        if not (subscribing and lst.archived_at is not None)
    }
    if options.list_slug:
        target = get_list_by_slug(options.list_slug)
        if subscribing and target.archived_at is not None:
            raise ValidationError(
                f"the list {target.slug!r} is archived and takes no new subscribers; "
                "unarchive it first",
                field="list",
            )
        return lists, {target.id}
    if options.mode in (ImportMode.SUBSCRIBE, ImportMode.UNCONFIRMED):
        raise ValidationError("choose the list to import into", field="list")
    return lists, set()


@dataclass
class _Chunk:
    """Rows read and parsed, ready to be written: the good ones, the bad ones with their
    reason, how many records, and the checkpoint after the last."""

    rows: list[Row]
    bad: list[tuple[int, str, list[str]]]
    read: int
    checkpoint: Checkpoint


def _chunks(records: Iterable[csvsource.Record], reader: _RowReader) -> Iterator[_Chunk]:
    """The file in chunks (touching nothing but the file: it runs in a thread of its own)."""
    chunk: list[Row] = []
    bad: list[tuple[int, str, list[str]]] = []
    read = 0
    record = None
    for record in records:
        cells = record.cells
        if record.problem is None and (not cells or (len(cells) == 1 and not cells[0].strip())):
            continue  # a blank line
        read += 1
        parsed = reader.row(record.line, cells) if record.problem is None else None
        if isinstance(parsed, Row):
            chunk.append(parsed)
        else:
            bad.append((record.line, record.problem or str(parsed), cells))
        if read >= CHUNK_SIZE:
            yield _Chunk(chunk, bad, read, Checkpoint(record.end, _next_line(record)))
            chunk, bad, read = [], [], 0
    if record is not None and read:
        yield _Chunk(chunk, bad, read, Checkpoint(record.end, _next_line(record)))


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _prefetched(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """The chunks, read and parsed one ahead in a thread: parsing and validating the next
    chunk (Python) overlaps writing this one (waiting on the database).

    At most two chunks exist at a time: the reader starts a chunk only when one of two
    slots is free, and the consumer frees its slot when it asks for the next chunk (a
    plain queue of one would let a third be built while the queued one waits)."""
    ready: stdqueue.Queue[_Chunk | _Failed | None] = stdqueue.Queue()
    slots = threading.Semaphore(2)
    stop = threading.Event()

    def take_slot() -> bool:
        """Wait for a free slot, unless the consumer has stopped; whether one was taken."""
        while not stop.is_set():
            if slots.acquire(timeout=0.1):
                return True
        return False

    def produce() -> None:
        try:
            while take_slot():
                chunk = next(chunks, None)
                ready.put(chunk)
                if chunk is None:
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            ready.put(_Failed(error))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, _Failed):
                raise item.error
            yield item
            del item  # this chunk is written: drop it before the reader fills its slot
            slots.release()
    finally:
        stop.set()
        thread.join()


def _next_line(record: csvsource.Record) -> int:
    # Lines of a record: its first, plus the newlines inside its quoted cells.
    return record.line + 1 + sum(cell.count("\n") for cell in record.cells)


def _enqueue_confirmations(pending: list[tuple[int, int]]) -> None:
    for subscriber_id, list_id in pending:
        queue.enqueue("send_confirmation", subscriber_id, list_id)


class _ChunkWriter:
    """Writes one chunk of good rows in the session's transaction."""

    def __init__(self, options: ImportOptions, result: ImportResult) -> None:
        self.options = options
        self.result = result
        self.postgresql = db.engine.dialect.name == "postgresql"
        self.cooldown = timedelta(seconds=int(current_app.config["CONFIRMATION_COOLDOWN"]))

    def write(self, chunk: list[Row], on_bad: OnBad | None) -> list[tuple[int, int]]:
        """Apply the rows; return the (subscriber, list) pairs to mail a confirmation."""
        if not chunk:
            return []
        rows = self._merge(chunk)
        self.result.merged += len(chunk) - len(rows)  # repeats within the chunk
        mode = self.options.mode
        if mode is not ImportMode.UNSUBSCRIBE:
            refused = gate.refused([row.email for row in rows.values()], via="import")
            for key in [key for key in rows if key in refused]:
                row = rows.pop(key)
                self._bad(row, refused[key], on_bad)
        if not rows:
            return []
        if self.postgresql:
            _prepare_postgresql()
        if mode in (ImportMode.SUBSCRIBE, ImportMode.UNCONFIRMED):
            self._keep_blocklisted(rows)
            return self._subscribe_rows(rows, on_bad) if rows else []
        existing = self._existing(list(rows))
        if mode is ImportMode.UNSUBSCRIBE:
            self._unsubscribe(rows, existing)
            return []
        self._blocklist(rows, existing)
        return []

    def _keep_blocklisted(self, rows: dict[str, Row]) -> None:
        """Blocklist, rather than subscribe, the rows the exporting tool had blocklisted
        (listmonk's status column), and take them out of ``rows``."""
        flagged = {key: rows.pop(key) for key in [k for k, row in rows.items() if row.blocklisted]}
        if not flagged:
            return
        self._blocklist(flagged, self._existing(list(flagged)))
        if self.postgresql:
            db.session.execute(text("DELETE FROM import_stage"))  # the next insert's own

    def _subscribe_rows(self, rows: dict[str, Row], on_bad: OnBad | None
                        ) -> list[tuple[int, int]]:
        if self.postgresql:
            # Insert first, look up only the addresses that were there already: in a big
            # first import that is almost none, and one pass over the index is saved.
            ids = self._insert(rows, {})
            existing = self._existing([key for key in rows if key not in ids])
        else:
            existing = self._existing(list(rows))
            ids = self._insert(rows, existing)
        self.result.merged += len(existing)
        for key in [key for key, value in existing.items() if value[3] == "blocklisted"]:
            self._bad(rows.pop(key), "the address is blocklisted", on_bad)
        if self.options.overwrite:
            self._update(rows, existing)
        ids.update((key, value[0]) for key, value in existing.items())
        return self._subscribe(rows, ids, existing)

    def _bad(self, row: Row, reason: str, on_bad: OnBad | None) -> None:
        self.result.imported -= 1  # counted as imported by _merge
        self.result.add_bad(row.line, reason)
        if on_bad is not None:
            on_bad(row.line, reason, row.cells)

    def _merge(self, chunk: list[Row]) -> dict[str, Row]:
        """One row per address (lower-cased): later rows win when overwriting, earlier ones
        when keeping; the lists add up."""
        rows: dict[str, Row] = {}
        for row in chunk:
            key = row.email.lower()
            seen = rows.get(key)
            if seen is None:
                rows[key] = row
                continue
            if self.options.overwrite:
                seen.name = row.name or seen.name
                seen.attributes = {**seen.attributes, **row.attributes}
            else:
                seen.name = seen.name or row.name
                seen.attributes = {**row.attributes, **seen.attributes}
            seen.list_ids |= row.list_ids
            seen.blocklisted = seen.blocklisted or row.blocklisted
        self.result.imported += len(chunk)
        return rows

    # -- reading ----------------------------------------------------------------------

    def _existing(self, keys: list[str]) -> dict[str, tuple[int, str, dict[str, Any], str]]:
        """Subscribers we have among the addresses: lower(email) → (id, name, attributes,
        status)."""
        if not keys:
            return {}
        table = Subscriber.__table__
        lowered = func.lower(table.c.email)
        query = select(table.c.id, lowered, table.c.name, table.c.attributes, table.c.status)
        if self.postgresql:
            query = query.where(lowered == any_(bindparam("keys", keys, type_=_TEXT_ARRAY)))
        else:
            query = query.where(lowered.in_(keys))
        return {
            key: (int(id_), name or "", attributes or {}, _value(status))
            for id_, key, name, attributes, status in db.session.execute(query)
        }

    # -- subscribe --------------------------------------------------------------------

    def _update(self, rows: dict[str, Row], existing: dict[str, Any]) -> None:
        changes = []
        for key, row in rows.items():
            if key not in existing:
                continue
            id_, name, attributes, _status = existing[key]
            new_name = row.name or name
            new_attributes = {**attributes, **row.attributes}
            if new_name != name or new_attributes != attributes:
                changes.append(
                    {"b_id": id_, "b_name": new_name, "b_attributes": new_attributes}
                )
        if not changes:
            return
        table = Subscriber.__table__
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(name=bindparam("b_name"), attributes=bindparam("b_attributes"),
                    updated_at=utcnow()),
            changes,
        )
        self.result.updated += len(changes)

    def _insert(self, rows: dict[str, Row], existing: dict[str, Any],
                status: str = "active") -> dict[str, int]:
        """Insert the addresses we do not have; return lower(email) → id for every row."""
        ids = {key: value[0] for key, value in existing.items()}
        new = [row for key, row in rows.items() if key not in existing]
        if not new:
            return ids
        now = utcnow()
        if self.postgresql:
            statement = text(
                "INSERT INTO subscribers (email, name, attributes, status, created_at, "
                "updated_at, token_version) "
                "SELECT email, name, attributes::json, :status, :now, :now, 0 "
                "FROM import_stage ON CONFLICT DO NOTHING RETURNING id, lower(email)"
            ).bindparams(bindparam("now", type_=UTCDateTime()))
            values = [
                (row.email, row.name, json.dumps(row.attributes) if row.attributes else "{}")
                for row in new
            ]
            _copy("import_stage", _copy_text(values))
            inserted = db.session.execute(statement, {"status": status, "now": now}).all()
            ids.update((key, int(id_)) for id_, key in inserted)
            self.result.created += len(inserted)
        else:
            table = Subscriber.__table__
            inserted_count = _rowcount(db.session.execute(
                table.insert().prefix_with("OR IGNORE"),
                [
                    {"email": row.email, "name": row.name, "attributes": row.attributes,
                     "status": SubscriberStatus(status), "created_at": now, "updated_at": now,
                     "token_version": 0}
                    for row in new
                ],
            ))
            self.result.created += inserted_count  # executemany: the rows it inserted
        if not self.postgresql:  # no RETURNING with executemany: look the new ones up
            missing = [row.email.lower() for row in new if row.email.lower() not in ids]
            if missing:
                ids.update((key, value[0]) for key, value in self._existing(missing).items())
        return ids

    def _subscribe(self, rows: dict[str, Row], ids: dict[str, int],
                   existing: dict[str, Any]) -> list[tuple[int, int]]:
        confirmed = self.options.mode is ImportMode.SUBSCRIBE
        wanted = {(ids[key], list_id) for key, row in rows.items() for list_id in row.list_ids}
        known_ids = [ids[key] for key in rows if key in existing]
        current: dict[tuple[int, int], str] = {}
        if known_ids:
            table = Subscription.__table__
            query = select(table.c.subscriber_id, table.c.list_id, table.c.status)
            if self.postgresql:
                query = query.where(
                    table.c.subscriber_id == any_(bindparam("ids", known_ids, type_=_INT_ARRAY))
                )
            else:
                query = query.where(table.c.subscriber_id.in_(known_ids))
            current = {
                (int(s), int(lst)): _value(status) for s, lst, status in db.session.execute(query)
            }
        now = utcnow()
        new = sorted(pair for pair in wanted if pair not in current)
        upgrade = sorted(pair for pair in wanted if current.get(pair) == "unconfirmed")
        result = self.result
        result.kept_unsubscribed += sum(1 for p in wanted if current.get(p) == "unsubscribed")
        if new:
            self._insert_subscriptions(new, confirmed, now)
        if confirmed:
            result.already += sum(1 for p in wanted if current.get(p) == "confirmed")
            if upgrade:
                self._confirm(upgrade, now)
            result.subscribed += len(new) + len(upgrade)
            return []
        result.already += sum(1 for p in wanted if current.get(p) in ("confirmed", "unconfirmed"))
        result.subscribed += len(new)
        waiting = sorted([*new, *upgrade])
        result.awaiting_confirmation += len(waiting)
        if not self.options.send_confirmations or not waiting:
            return []
        claimed = self._claim_confirmations({subscriber for subscriber, _ in waiting}, now)
        return [pair for pair in waiting if pair[0] in claimed]

    def _insert_subscriptions(self, pairs: list[tuple[int, int]], confirmed: bool,
                              now: Any) -> None:
        status = SubscriptionStatus.CONFIRMED if confirmed else SubscriptionStatus.UNCONFIRMED
        source = ConsentSource.IMPORT
        detail = import_consent(self.options.file_name, self.options.label)["consent_detail"]
        if self.postgresql:
            statement = text(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, "
                "consent_detail, created_at, confirmed_at) "
                "SELECT subscriber_id, list_id, :status, :source, :detail, :now, :confirmed_at "
                "FROM import_pairs ON CONFLICT DO NOTHING"
            ).bindparams(
                bindparam("now", type_=UTCDateTime()),
                bindparam("confirmed_at", type_=UTCDateTime()),
            )
            _copy("import_pairs", "".join(f"{s}\t{lst}\n" for s, lst in pairs))
            db.session.execute(
                statement,
                {
                    "status": status.value,
                    "source": source.value,
                    "detail": detail,
                    "now": now,
                    "confirmed_at": now if confirmed else None,
                },
            )
            return
        db.session.execute(
            Subscription.__table__.insert().prefix_with("OR IGNORE"),
            [
                {"subscriber_id": s, "list_id": lst, "status": status, "consent_source": source,
                 "consent_detail": detail, "created_at": now,
                 "confirmed_at": now if confirmed else None}
                for s, lst in pairs
            ],
        )

    def _confirm(self, pairs: list[tuple[int, int]], now: Any) -> None:
        table = Subscription.__table__
        by_list: dict[int, list[int]] = {}
        for subscriber_id, list_id in pairs:
            by_list.setdefault(list_id, []).append(subscriber_id)
        for list_id, subscriber_ids in by_list.items():
            db.session.execute(
                update(table)
                .where(
                    table.c.list_id == list_id,
                    table.c.subscriber_id.in_(subscriber_ids),
                    table.c.status == SubscriptionStatus.UNCONFIRMED,
                )
                .values(status=SubscriptionStatus.CONFIRMED, confirmed_at=now)
            )

    def _claim_confirmations(self, subscriber_ids: set[int], now: Any) -> set[int]:
        """The subscribers who may be mailed a confirmation now (the same cool-down as the
        public form's), marked as mailed in this transaction: a chunk run again after a
        crash finds them marked and mails nobody twice."""
        table = Subscriber.__table__
        claimed: set[int] = set()
        ordered = sorted(subscriber_ids)
        for first in range(0, len(ordered), 1000):
            rows = db.session.execute(
                update(table)
                .where(
                    table.c.id.in_(ordered[first : first + 1000]),
                    table.c.status == SubscriberStatus.ACTIVE,
                    (table.c.confirmation_sent_at.is_(None))
                    | (table.c.confirmation_sent_at <= now - self.cooldown),
                )
                .values(confirmation_sent_at=now)
                .returning(table.c.id)
            )
            claimed.update(int(id_) for (id_,) in rows)
        return claimed

    # -- unsubscribe, blocklist ---------------------------------------------------------

    def _unsubscribe(self, rows: dict[str, Row], existing: dict[str, Any]) -> None:
        table = Subscription.__table__
        now = utcnow()
        self.result.not_found += sum(1 for key in rows if key not in existing)
        by_list: dict[int | None, list[int]] = {}
        for key, row in rows.items():
            if key in existing:
                targets: set[int | None] = set(row.list_ids) or {None}  # none: every list
                for target in targets:
                    by_list.setdefault(target, []).append(existing[key][0])
        for list_id, subscriber_ids in by_list.items():
            for first in range(0, len(subscriber_ids), 1000):
                statement = (
                    update(table)
                    .where(
                        table.c.subscriber_id.in_(subscriber_ids[first : first + 1000]),
                        table.c.status != SubscriptionStatus.UNSUBSCRIBED,
                    )
                    .values(status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now)
                )
                if list_id is not None:
                    statement = statement.where(table.c.list_id == list_id)
                self.result.unsubscribed += _rowcount(db.session.execute(statement))

    def _blocklist(self, rows: dict[str, Row], existing: dict[str, Any]) -> None:
        table = Subscriber.__table__
        known = [value[0] for key, value in existing.items() if value[3] != "blocklisted"]
        self.result.merged += sum(1 for key in rows if key in existing)
        # Unknown addresses get a blocklisted row, so that no later sign-up mails them.
        before = self.result.created
        new = {key: Row(row.line, row.email, "", {}, frozenset(), []) for key, row in rows.items()
               if key not in existing}
        self._insert(new, {}, status=SubscriberStatus.BLOCKLISTED.value)
        self.result.blocklisted += self.result.created - before
        for first in range(0, len(known), 1000):
            self.result.blocklisted += _rowcount(db.session.execute(
                update(table)
                .where(table.c.id.in_(known[first : first + 1000]))
                .values(status=SubscriberStatus.BLOCKLISTED, updated_at=utcnow())
            ))


#: the staging tables: kept by the connection, emptied at every commit (and rollback)
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS import_stage (email text, name text, attributes text) "
    "ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS import_pairs (subscriber_id bigint, list_id bigint) "
    "ON COMMIT DELETE ROWS",
)


def _driver_connection() -> Any:
    """The session's psycopg connection, in the session's transaction."""
    return db.session.connection().connection.driver_connection


def _prepare_postgresql() -> None:
    """Start a chunk's transaction on PostgreSQL in one round trip (on a busy server each
    round trip costs a wait for the scheduler, more than the work in it)."""
    with _driver_connection().cursor() as cursor:
        # The chunk's transaction holds its checkpoint too: if the server loses the last
        # few commits in a crash, the job resumes before them. No flush to wait for.
        cursor.execute("; ".join(("SET LOCAL synchronous_commit = off", *_STAGING)))


def _copy(table: str, data: str) -> None:
    """PostgreSQL: fill a staging table (empty: see ``_STAGING``) with COPY, far cheaper
    than binding arrays of ten thousand strings."""
    with _driver_connection().cursor() as cursor:
        with cursor.copy(f"COPY {table} FROM STDIN") as copy:
            copy.write(data)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(rows: list[tuple[str, str, str]]) -> str:
    """Rows in COPY's text format."""
    text = "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows)
    if text.count("\t") == 2 * len(rows) and text.count("\n") == len(rows) and not (
        "\\" in text or "\r" in text
    ):
        return text  # nothing to escape: the usual case, checked at C speed
    return "".join(
        f"{a.translate(_COPY_ESCAPES)}\t{b.translate(_COPY_ESCAPES)}\t"
        f"{c.translate(_COPY_ESCAPES)}\n"
        for a, b, c in rows
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _value(status: Any) -> str:
    return str(getattr(status, "value", status))


# --- the report ---------------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP's advice: a
    leading quote)."""
    return f"'{cell}" if cell.startswith(FORMULA_START) else cell


def report_row(line: int, reason: str, cells: list[str]) -> list[str]:
    """One row of the bad-rows report: line, problem, then the row's cells as read."""
    return [str(line), neutralise(reason), *(neutralise(cell) for cell in cells)]


# --- the old entry point ------------------------------------------------------------------


def import_csv(
    stream: IO[str] | IO[bytes],
    *,
    list_slug: str,
    confirmed: bool = False,
    send_confirmations: bool = False,
    mode: ImportMode | None = None,
    overwrite: bool = True,
    progress: Callable[[int], None] | None = None,
    on_bad: OnBad | None = None,
) -> ImportResult:
    """Import CSV text or bytes into ``list_slug`` (see :func:`import_file`).

    Without a ``mode``: ``confirmed``, or a single opt-in list, subscribes as confirmed;
    otherwise unconfirmed, with confirmation mail only if ``send_confirmations``.
    """
    import tempfile

    chosen = mode or default_mode(list_slug, confirmed)
    options = ImportOptions(
        list_slug=list_slug,
        mode=chosen,
        overwrite=overwrite,
        send_confirmations=send_confirmations or mode is ImportMode.UNCONFIRMED,
    )
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        while block := stream.read(64 * 1024):
            spool.write(block.encode("utf-8") if isinstance(block, str) else block)
        spool.seek(0)
        return import_file(spool, options, progress=progress, on_bad=on_bad)  # type: ignore[arg-type]


def default_mode(list_slug: str, confirmed: bool) -> ImportMode:
    """The mode when none is chosen: confirmed when asked, or on a single opt-in list;
    otherwise unconfirmed."""
    if confirmed:
        return ImportMode.SUBSCRIBE
    lst = get_list_by_slug(list_slug)
    return ImportMode.SUBSCRIBE if lst.optin is OptIn.SINGLE else ImportMode.UNCONFIRMED

