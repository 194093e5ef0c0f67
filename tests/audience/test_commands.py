"""``newsletter lists create`` and ``newsletter subscribers import``."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import OptIn, Subscriber, SubscriptionStatus
from newsletter.extensions import db
from tests.factories import make_list


def test_lists_create_makes_a_double_opt_in_public_list(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["lists", "create", "news", "--name", "Movement News",
                                 "--description", "Weekly"])
    assert result.exit_code == 0, result.output
    assert "news" in result.output
    lst = get_list_by_slug("news")
    assert (lst.name, lst.optin, lst.public, lst.description) == (
        "Movement News", OptIn.DOUBLE, True, "Weekly"
    )


def test_lists_create_takes_single_opt_in_and_private(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["lists", "create", "board", "--name", "Board", "--single-optin", "--private"]
    )
    assert result.exit_code == 0, result.output
    lst = get_list_by_slug("board")
    assert (lst.optin, lst.public) == (OptIn.SINGLE, False)


def test_lists_create_explains_a_taken_or_bad_slug(app: Flask, runner: FlaskCliRunner) -> None:
    make_list("news")
    taken = runner.invoke(args=["lists", "create", "news", "--name", "Again"])
    assert taken.exit_code == 1
    assert "already exists" in taken.output
    bad = runner.invoke(args=["lists", "create", "Not A Slug", "--name", "X"])
    assert bad.exit_code == 1
    assert "not a valid slug" in bad.output
    assert "Traceback" not in taken.output + bad.output


def test_subscribers_import_prints_counts_and_bad_rows(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    make_list("news")
    csv_file = tmp_path / "people.csv"
    # A byte-order mark, as spreadsheets write it.
    csv_file.write_text(
        "\ufeffemail,name,city\nada@example.org,Ada,London\nnope,Nobody,\ngrace@example.org,,\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["subscribers", "import", str(csv_file), "--list", "news"])
    assert result.exit_code == 0, result.output  # imported, bad rows and all
    assert "created=2" in result.stdout
    assert "bad=1" in result.stdout
    assert "line 3:" in result.stderr and "nope" in result.stderr
    assert "await confirmation" in result.stdout
    ada = db.session.query(Subscriber).filter_by(email="ada@example.org").one()
    assert ada.attributes == {"city": "London"}
    assert ada.subscriptions[0].status is SubscriptionStatus.UNCONFIRMED


def test_subscribers_import_confirmed(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    make_list("news")
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\nada@example.org,Ada\n", encoding="utf-8")
    result = runner.invoke(
        args=["subscribers", "import", str(csv_file), "--list", "news", "--confirmed"]
    )
    assert result.exit_code == 0, result.output
    assert "created=1" in result.output and "subscribed=1" in result.output
    ada = db.session.query(Subscriber).filter_by(email="ada@example.org").one()
    assert ada.subscriptions[0].status is SubscriptionStatus.CONFIRMED


def test_subscribers_import_explains_an_unknown_list(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email\nada@example.org\n", encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(csv_file), "--list", "nope"])
    assert result.exit_code == 1
    assert "no list 'nope'" in result.output


def test_subscribers_import_modes_and_exit_codes(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    make_list("news")
    people = tmp_path / "people.tsv"
    people.write_text("email\tname\nada@example.org\tAda\ngrace@example.org\tGrace\n")
    imported = runner.invoke(
        args=["subscribers", "import", str(people), "--list", "news", "--mode", "subscribe"]
    )
    assert imported.exit_code == 0, imported.output
    assert "subscribed=2" in imported.stdout and "delimiter '\\t'" in imported.stdout

    leaving = tmp_path / "leaving.csv"
    leaving.write_text("email\nADA@example.org\nnobody@example.org\n")
    result = runner.invoke(args=["subscribers", "import", str(leaving), "--mode", "unsubscribe"])
    assert result.exit_code == 0, result.output
    assert "unsubscribed=1" in result.stdout and "not_found=1" in result.stdout

    result = runner.invoke(args=["subscribers", "import", str(leaving), "--mode", "blocklist"])
    assert result.exit_code == 0, result.output
    assert "blocklisted=2" in result.stdout
    statuses = {s.email: s.status.value for s in db.session.query(Subscriber)}
    assert statuses["ada@example.org"] == statuses["nobody@example.org"] == "blocklisted"
    assert statuses["grace@example.org"] == "active"

    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    refused = runner.invoke(args=["subscribers", "import", str(binary), "--list", "news"])
    assert refused.exit_code == 1
    assert "not a CSV or TSV file" in refused.output and "Traceback" not in refused.output

    no_address = tmp_path / "names.csv"
    no_address.write_text("name,city\nAda,London\n")
    refused = runner.invoke(args=["subscribers", "import", str(no_address), "--list", "news"])
    assert refused.exit_code == 1 and "no address column" in refused.output

    both = runner.invoke(args=["subscribers", "import", str(people), "--list", "news",
                               "--confirmed", "--mode", "unsubscribe"])
    assert both.exit_code == 2


def test_subscribers_import_takes_a_chosen_encoding_and_delimiter(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    make_list("news")
    people = tmp_path / "people.csv"
    people.write_bytes("email;name\nzoe@example.org;Zoë\n".encode("cp1252"))
    result = runner.invoke(args=["subscribers", "import", str(people), "--list", "news",
                                 "--confirmed", "--encoding", "latin-1", "--delimiter", ";"])
    assert result.exit_code == 0, result.output
    assert db.session.query(Subscriber).one().name == "Zoë"


def test_every_command_has_help(app: Flask, runner: FlaskCliRunner) -> None:
    for args in (["lists", "create", "--help"], ["subscribers", "import", "--help"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0 and "Usage" in result.output
