"""CSV import: encodings, delimiters, exports of other tools, the four modes, merging,
bad rows by line, hostile files."""

from __future__ import annotations

import io
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from email_validator import EmailNotValidError, validate_email
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience import gate, importer
from newsletter.audience.csvsource import FileRefused
from newsletter.audience.importer import (
    ImportMode,
    ImportOptions,
    ImportResult,
    fast_address,
    import_csv,
    import_file,
    report_row,
)
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer

Bad = list[tuple[int, str, list[str]]]


def csv_text(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def run(data: bytes, mode: ImportMode = ImportMode.SUBSCRIBE, slug: str | None = "news",
        **options: Any) -> tuple[ImportResult, Bad]:
    bad: Bad = []
    result = import_file(
        io.BytesIO(data),
        ImportOptions(list_slug=slug, mode=mode, **options),
        on_bad=lambda line, reason, cells: bad.append((line, reason, cells)),
    )
    return result, bad


def subscriber(email: str) -> Subscriber:
    db.session.expire_all()
    return db.session.query(Subscriber).filter_by(email=email).one()


def status(email: str, slug: str = "news") -> SubscriptionStatus:
    return next(s.status for s in subscriber(email).subscriptions if s.list.slug == slug)


@pytest.fixture
def news(app: Flask) -> Any:
    return make_list("news")


def test_good_rows_are_imported_and_bad_rows_reported_by_line(app: Flask, news: Any) -> None:
    result = import_csv(
        csv_text(
            "email,name,city",
            "ada@example.org,Ada Lovelace,London",
            "not-an-address,Nobody,",
            ",No Address,Paris",
            "grace@example.org,Grace Hopper,",
            "ADA@example.org,,",
            "bob@example.org,Bob,Berlin,extra",
            "",
            "leser@bücher.example,,Wien",
        ),
        list_slug="news",
    )
    assert (result.created, result.subscribed, result.merged) == (3, 3, 1)
    lines = dict(result.bad_rows)
    assert sorted(lines) == [3, 4, 7]
    assert "not-an-address" in lines[3]
    assert "no email" in lines[4]
    assert "4 fields" in lines[7]
    ada = subscriber("ada@example.org")
    assert (ada.name, ada.attributes) == ("Ada Lovelace", {"city": "London"})  # merged, kept
    assert subscriber("leser@bücher.example").attributes == {"city": "Wien"}
    [subscription] = ada.subscriptions
    assert subscription.status is SubscriptionStatus.UNCONFIRMED  # double opt-in list
    assert subscription.consent_source is ConsentSource.IMPORT


def test_subscribe_mode_confirms_and_single_opt_in_lists_confirm_by_default(
    app: Flask, news: Any
) -> None:
    make_list("open", optin=OptIn.SINGLE)
    make_subscriber("waiting@example.org", lists=(news,), status=SubscriptionStatus.UNCONFIRMED)
    import_csv(csv_text("email", "ada@example.org", "waiting@example.org"), list_slug="news",
               confirmed=True)
    import_csv(csv_text("email", "grace@example.org"), list_slug="open")
    assert status("ada@example.org") is SubscriptionStatus.CONFIRMED
    assert status("waiting@example.org") is SubscriptionStatus.CONFIRMED
    assert subscriber("waiting@example.org").subscriptions[0].confirmed_at is not None
    assert status("grace@example.org", "open") is SubscriptionStatus.CONFIRMED


def test_unconfirmed_mode_mails_a_confirmation_once_within_the_cool_down(
    app: Flask, news: Any, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    result, bad = run(b"email\nada@example.org\ngrace@example.org\nADA@example.org\n",
                      ImportMode.UNCONFIRMED)
    assert (bad, result.confirmations_queued, result.awaiting_confirmation) == ([], 2, 2)
    again, _ = run(b"email\nada@example.org\n", ImportMode.UNCONFIRMED)
    assert again.confirmations_queued == 0  # mailed a moment ago: the cool-down holds
    run_jobs()
    assert len(mailbox.to("ada@example.org")) == 1
    assert len(mailbox.to("grace@example.org")) == 1
    assert "confirm" in mailbox.to("ada@example.org")[0].message.get("Subject", "").lower()
    assert status("ada@example.org") is SubscriptionStatus.UNCONFIRMED


def test_unsubscribe_mode_ends_subscriptions_and_creates_nobody(app: Flask, news: Any) -> None:
    other = make_list("other")
    make_subscriber("ada@example.org", lists=(news, other))
    make_subscriber("grace@example.org", lists=(news, other))
    one, _ = run(b"email\nADA@example.org\nnobody@example.org\n", ImportMode.UNSUBSCRIBE)
    assert (one.unsubscribed, one.not_found) == (1, 1)
    assert status("ada@example.org") is SubscriptionStatus.UNSUBSCRIBED
    assert status("ada@example.org", "other") is SubscriptionStatus.CONFIRMED
    every, _ = run(b"email\ngrace@example.org\n", ImportMode.UNSUBSCRIBE, slug=None)
    assert every.unsubscribed == 2
    assert db.session.query(Subscriber).count() == 2


def test_an_archived_list_takes_no_new_subscribers_but_can_be_left(
    app: Flask, news: Any
) -> None:
    make_subscriber("ada@example.org", lists=(news,))
    news.archived_at = utcnow()
    old = make_list("old")
    old.archived_at = utcnow()
    db.session.commit()
    for mode in (ImportMode.SUBSCRIBE, ImportMode.UNCONFIRMED):
        with pytest.raises(ValidationError, match="archived"):
            run(b"email\ngrace@example.org\n", mode)
    open_list = make_list("open")
    _, bad = run(b"email,lists\ngrace@example.org,old\nlin@example.org,\n", slug="open")
    assert [(line, reason) for line, reason, _ in bad] == [
        (2, "names a list that does not exist or is archived: 'old'")
    ]
    assert [s.list_id for s in subscriber("lin@example.org").subscriptions] == [open_list.id]
    left, _ = run(b"email\nada@example.org\n", ImportMode.UNSUBSCRIBE)
    assert left.unsubscribed == 1
    assert status("ada@example.org") is SubscriptionStatus.UNSUBSCRIBED


def test_blocklist_mode_blocklists_known_and_unknown_addresses(app: Flask, news: Any) -> None:
    make_subscriber("ada@example.org", lists=(news,))
    result, _ = run(b"email\nada@example.org\nspam@example.org\n", ImportMode.BLOCKLIST,
                    slug=None)
    assert result.blocklisted == 2
    assert subscriber("ada@example.org").status is SubscriberStatus.BLOCKLISTED
    assert subscriber("spam@example.org").status is SubscriberStatus.BLOCKLISTED
    assert subscriber("spam@example.org").subscriptions == []
    # A later subscribe import leaves a blocklisted address alone, and says so.
    later, bad = run(b"email\nspam@example.org\n")
    assert later.subscribed == 0 and "blocklisted" in bad[0][1]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("email,name\nzoe@example.org,Zoë\n".encode("utf-8-sig"), "utf-8"),
        ("email,name\nzoe@example.org,Zoë\n".encode("cp1252"), "cp1252"),
        ("email\tname\r\nzoe@example.org\tZoë\r\n".encode("utf-16"), "utf-16"),
        ("email\tname\r\nzoe@example.org\tZoë\r\n".encode("utf-16-be"), "utf-16-be"),
    ],
    ids=["utf-8-bom", "cp1252", "utf-16-tsv", "utf-16-be-no-bom"],
)
def test_encodings_are_detected(app: Flask, news: Any, data: bytes, encoding: str) -> None:
    result, bad = run(data)
    assert bad == [] and result.created == 1
    assert result.encoding.startswith(encoding)
    assert subscriber("zoe@example.org").name == "Zoë"


def test_one_latin1_line_in_a_utf8_file_is_one_bad_row(app: Flask, news: Any) -> None:
    data = (
        "email,name\nzoe@example.org,Zoë\nlena@example.org,Léna\n".encode()
        + "jose@example.org,José\n".encode("latin-1")
        + "bjork@example.org,Björk\n".encode()
    )
    result, bad = run(data)
    assert result.encoding == "utf-8" and result.created == 3
    assert [(line, reason) for line, reason, _ in bad] == [(4, "line 4 is not valid utf-8 text")]
    assert subscriber("bjork@example.org").name == "Björk"


def test_a_chosen_delimiter_and_encoding_win(app: Flask, news: Any) -> None:
    result, bad = run("email|name\nzoe@example.org|Zoë\n".encode("cp1252"),
                      encoding="latin-1", delimiter="|")
    assert bad == [] and subscriber("zoe@example.org").name == "Zoë"
    with pytest.raises(FileRefused):
        run(b"email\na@example.org\n", encoding="no-such-codec")


def test_semicolons_and_tabs_are_detected(app: Flask, news: Any) -> None:
    run(b"email;name;city\nada@example.org;Ada;London\n")
    run(b"email\tname\ngrace@example.org\tGrace\n")
    assert subscriber("ada@example.org").attributes == {"city": "London"}
    assert subscriber("grace@example.org").name == "Grace"


def test_a_mailchimp_export_is_understood(app: Flask, news: Any) -> None:
    data = (
        b'"Email Address","First Name","Last Name","Birthday","MEMBER_RATING","OPTIN_TIME",'
        b'"OPTIN_IP","CONFIRM_IP","LEID","TAGS"\n'
        b'"ada@example.org","Ada","Lovelace","12/10","2","2020-01-01 10:00:00","192.0.2.1",'
        b'"192.0.2.1","123","vip"\n'
    )
    result, bad = run(data)
    assert bad == [] and result.created == 1
    ada = subscriber("ada@example.org")
    assert ada.name == "Ada Lovelace"
    assert ada.attributes == {"Birthday": "12/10", "TAGS": "vip"}  # no IP, no bookkeeping
    assert "OPTIN_IP" in result.ignored_columns


def test_a_listmonk_export_is_understood(app: Flask, news: Any) -> None:
    make_list("events")
    data = (
        b"uuid,email,name,attributes,status,created_at,updated_at,lists\n"
        b'5e3c,ada@example.org,Ada,"{""city"": ""London"", ""_pending_name"": ""x""}",enabled,'
        b"2020-01-01,2020-01-02,events\n"
        b'c0ff,bob@example.org,Bob,"not json",enabled,2020-01-01,2020-01-02,\n'
    )
    result, bad = run(data)
    assert result.created == 1
    ada = subscriber("ada@example.org")
    assert ada.attributes == {"city": "London"}  # the tool's own "_" keys never come in
    assert {s.list.slug for s in ada.subscriptions} == {"news", "events"}
    assert [(line, reason) for line, reason, _ in bad] == [
        (3, "the attributes column is not a JSON object")
    ]


def test_a_person_listmonk_had_blocklisted_is_blocklisted_not_subscribed(
    app: Flask, news: Any
) -> None:
    make_subscriber("cy@example.org", name="Cy")  # someone we have already, now blocklisted
    data = (
        b"uuid,email,name,attributes,status,created_at,updated_at\n"
        b"5e3c,ada@example.org,Ada,{},enabled,2020-01-01,2020-01-02\n"
        b"c0ff,bob@example.org,Bob,{},blocklisted,2020-01-01,2020-01-02\n"
        b"c0fe,CY@example.org,Cy,{},Blocklisted,2020-01-01,2020-01-02\n"
    )
    result, bad = run(data)
    assert bad == []
    assert result.blocklisted == 2 and result.subscribed == 1
    assert "status" not in result.ignored_columns  # it was read
    assert [s.list.slug for s in subscriber("ada@example.org").subscriptions] == ["news"]
    for email in ("bob@example.org", "cy@example.org"):
        person = subscriber(email)
        assert person.status is SubscriberStatus.BLOCKLISTED
        assert person.subscriptions == []


def test_the_lists_column_adds_lists_and_an_unknown_one_is_a_bad_row(
    app: Flask, news: Any
) -> None:
    make_list("events")
    make_list("board")
    _, bad = run(b"email,lists\nada@example.org,events|board\nbob@example.org,events;nope\n")
    assert {s.list.slug for s in subscriber("ada@example.org").subscriptions} == {
        "news", "events", "board"
    }
    assert "'nope'" in bad[0][1]


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "keep"])
def test_duplicates_in_the_file_and_in_the_database_are_merged(
    app: Flask, news: Any, overwrite: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_SIZE", 2)  # repeats across chunks too
    known = make_subscriber("ada@example.org", name="Ada", lists=(news,))
    known.attributes = {"city": "London", "lang": "en"}
    db.session.commit()
    result, bad = run(
        b"email,name,city\nAda@Example.org,Ada King,Paris\ngrace@example.org,Grace,Oslo\n"
        b"bob@example.org,Bob,\nGRACE@example.org,Grace Hopper,Rome\n",
        overwrite=overwrite,
    )
    assert bad == []
    assert (result.created, result.merged) == (2, 2)
    assert db.session.query(Subscriber).count() == 3
    assert db.session.query(Subscription).count() == 3
    ada, grace = subscriber("ada@example.org"), subscriber("grace@example.org")
    if overwrite:
        assert (ada.name, ada.attributes) == ("Ada King", {"city": "Paris", "lang": "en"})
        assert (grace.name, grace.attributes) == ("Grace Hopper", {"city": "Rome"})
        assert result.updated == 2
    else:
        assert (ada.name, ada.attributes) == ("Ada", {"city": "London", "lang": "en"})
        assert (grace.name, grace.attributes) == ("Grace", {"city": "Oslo"})
        assert result.updated == 0


def test_an_import_does_not_undo_an_unsubscribe(app: Flask, news: Any) -> None:
    make_subscriber("quit@example.org", lists=(news,), status=SubscriptionStatus.UNSUBSCRIBED)
    result, _ = run(b"email\nquit@example.org\n")
    assert result.kept_unsubscribed == 1
    assert status("quit@example.org") is SubscriptionStatus.UNSUBSCRIBED


def test_addresses_the_gate_refuses_are_bad_rows(
    app: Flask, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[set[str], str]] = []

    def refused(emails: Any, *, via: str) -> dict[str, str]:
        asked.append(({e.lower() for e in emails}, via))
        return {"gone@example.org": "erased at the person's request"}

    monkeypatch.setattr(gate, "refused", refused)
    result, bad = run(b"email\nGone@example.org\nada@example.org\n")
    assert asked == [({"gone@example.org", "ada@example.org"}, "import")]  # once, in bulk
    assert [(line, reason) for line, reason, _ in bad] == [(2, "erased at the person's request")]
    assert (result.created, result.bad, result.imported) == (1, 1, 1)


def test_a_hostile_file_imports_its_good_rows_and_reports_the_bad(
    app: Flask, news: Any, tmp_path: Path
) -> None:
    huge = b"x" * (50 * 1024 * 1024)
    data = b"".join([
        b"email,name,note\n",
        "zoe@example.org,Zoë,\nlena@example.org,Léna,\n".encode(),  # lines 2-3: UTF-8
        b'ada@example.org,Ada,"=HYPERLINK(""http://evil.example"",""click"")"\n',  # line 4
        b"grace@example.org,Gr\xe9ce,\n",  # line 5: Latin-1, not UTF-8
        b"bob@example.org,\"Bob \"the\" Builder,\n",  # line 6: broken quoting, still read
        b"nope@,Nobody,\n",  # line 7: invalid
        b"ADA@example.org,Ada again,\n",  # line 8: repeat, merged
        b"huge@example.org," + huge + b"\n",  # line 9: 50 MB
        b"=cmd|' /C calc'!A0@example.org,x,\n",  # line 10: a formula as address
        b"carol@example.org,Carol,\0\n",  # line 11: NUL
        b"dave@example.org,\"Dave\n",  # line 12: an unclosed quote
    ] + [b"eve%d@example.org,Eve,\n" % n for n in range(60)])
    path = tmp_path / "hostile.csv"
    path.write_bytes(data)
    del data, huge
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bad: Bad = []
    with path.open("rb") as stream:
        result = import_file(stream, ImportOptions(list_slug="news"),
                             on_bad=lambda line, reason, cells: bad.append((line, reason, cells)))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 40  # the 50 MB line (and the file) were never held whole
    reasons = {line: reason for line, reason, _ in bad}
    assert reasons[5] == "line 5 is not valid utf-8 text"
    assert "nope@" in reasons[7]
    assert reasons[9] == "line 9 is longer than 64 KiB"
    assert "invalid email address" in reasons[10]
    assert "NUL" in reasons[11]
    assert "unclosed quote" in reasons[12]
    assert not {2, 3, 4, 6, 8} & set(reasons)
    ada = subscriber("ada@example.org")
    assert ada.attributes["note"].startswith("=HYPERLINK")  # kept as text; neutralised on export
    assert subscriber("bob@example.org").name.startswith("Bob")
    assert result.created >= 3
    # The report neutralises what a spreadsheet would run.
    ten = next(cells for line, _, cells in bad if line == 10)
    row = report_row(10, reasons[10], ten)
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    assert row[2].startswith("'=cmd")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", bytes(range(256)) * 50,
     b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00"],
    ids=["empty", "png", "noise", "xlsx"],
)
def test_a_file_that_is_not_csv_is_refused_whole(app: Flask, news: Any, data: bytes) -> None:
    with pytest.raises(FileRefused) as raised:
        run(data)
    assert raised.value.field == "file"
    assert db.session.query(Subscriber).count() == 0


@pytest.mark.parametrize("text", ["name,city\nAda,London\n", "email,Email\na@b.org,x\n"])
def test_a_file_without_a_usable_header_is_refused(app: Flask, news: Any, text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        import_csv(io.StringIO(text), list_slug="news")
    assert raised.value.field == "file"


def test_an_unknown_list_is_refused(app: Flask) -> None:
    with pytest.raises(NotFound):
        import_csv(csv_text("email", "ada@example.org"), list_slug="nope")


def test_a_big_file_goes_in_chunks_with_progress(
    app: Flask, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_SIZE", 3)
    rows = [f"reader{n}@example.org,Reader {n}" for n in range(10)] + ["bad,Bad"]
    progress: list[int] = []
    result = import_csv(csv_text("email,name", *rows), list_slug="news", progress=progress.append)
    assert result.created == 10 and result.bad_rows == [(12, result.bad_rows[0][1])]
    assert len(progress) == 4 and progress == sorted(progress)
    assert db.session.query(Subscription).count() == 10


_LOCAL = st.text(
    st.sampled_from("abcXYZ019._+-'!#~"), min_size=1, max_size=12
)
_DOMAIN = st.lists(
    st.text(st.sampled_from("abcz09-"), min_size=1, max_size=8), min_size=1, max_size=3
).map(".".join)
_TLD = st.sampled_from(["org", "COM", "test", "local", "x", "c0m", "example", "ONION"])


@settings(max_examples=400, deadline=None)
@given(local=_LOCAL, domain=_DOMAIN, tld=_TLD)
def test_the_fast_path_agrees_with_email_validator(local: str, domain: str, tld: str) -> None:
    address = f"{local}@{domain}.{tld}"
    fast = fast_address(address)
    if fast is None:
        return  # email-validator judges it
    try:
        expected = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        pytest.fail(f"the fast path took {address!r}, email-validator refuses it: {error}")
    assert fast == expected
