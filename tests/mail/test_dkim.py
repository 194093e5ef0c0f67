"""DKIM: keys made by `newsletter dkim keygen`, signatures that dkimpy's own verify accepts."""

from __future__ import annotations

import base64
import random
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter import create_app
from newsletter.errors import ConfigError
from newsletter.mail import dkim as nl_dkim
from newsletter.mail.dkim import DkimSigner, generate_key, signer_for
from newsletter.mail.message import build_simple_message
from tests.mail.helpers import recipient, skeleton

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


FROM = "Example News <news@example.org>"
SMALL_RSA_KEY = """\
-----BEGIN RSA PRIVATE KEY-----
MIIBOQIBAAJBALz2gPvTjaiGW3KnihvOwMS0a26CJoYRLq5y4dBGKbo2D/coGQDv
uZc92O5jWFJVA/V+J5932w2QFFe3JjbQzO8CAwEAAQJAX9o6+4MIrJ/a64IJEKoE
JsPOazQiDofQwjUMTvYIXKgG4vXaTrYfN5H8xmRwaM+dvqjxz89nugEEfpJOKPDC
YQIhAPntrgf9qIsUnwJdywsIhusu3aA1gOt5cR5GCunSWwTTAiEAwY2s+SrTQb+x
USfzBk9BxX/Cr3OQzFRiffE3VagEtfUCIEBrHrw4iUSv3/xAKKGDZSMhRUaSA9St
zJY8/3sdGRC5AiATJwbHvSIcbnCIXFCi/jK+7U6BeAkK/wqj9buJAVA+BQIgGlUm
B3SkpBfJfPZaZsiA8T//eVJjsOgn0Wu+pRMsDvg=
-----END RSA PRIVATE KEY-----
"""
DnsFunc = Callable[..., bytes | None]


def newsletter_message(number: int = 1) -> bytes:
    """A real issue message (20 KB-ish, CRLF) as the send loop builds it."""
    return skeleton().personalise(recipient(number))


def keygen(runner: FlaskCliRunner, *args: str) -> tuple[str, str, Any]:
    """Run `newsletter dkim keygen`; return the printed DNS name and value (strings joined)."""
    result = runner.invoke(args=["dkim", "keygen", *args])
    assert result.exit_code == 0, result.output
    name = re.search(r"name:\s+(\S+)", result.output)
    value = re.search(r"value:\s+(.+)", result.output)
    assert name and value, result.output
    strings = re.findall(r'"([^"]*)"', value.group(1))
    assert all(len(string) <= 255 for string in strings)
    return name.group(1), "".join(strings), result


def dns(records: dict[str, str]) -> DnsFunc:
    """A resolver for dkimpy that knows only ``records`` (name → TXT value)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        value = records.get(name.decode("ascii").rstrip("."))
        return value.encode("ascii") if value is not None else None

    return lookup


def verifies(message: bytes, dnsfunc: DnsFunc, index: int = 0) -> bool:
    """dkimpy's verdict on signature ``index`` (as ``dkim.verify`` gives it for the first)."""
    try:
        return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


def signature_tags(message: bytes, index: int = 0) -> dict[bytes, bytes]:
    headers = [value for name, value in dkim.rfc822_parse(message)[0]
               if name.lower() == b"dkim-signature"]
    return dict(dkim.util.parse_tag_value(headers[index]))


def signer(app: Flask) -> DkimSigner:
    found = signer_for(app.config, app.config["FROM_ADDRESS"])
    assert found is not None
    return found


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_keygen_then_signed_mail_verifies_against_the_printed_record(
    app: Flask, runner: FlaskCliRunner, algorithm: str
) -> None:
    name, value, _ = keygen(runner, "example.org", "--selector", "s1", "--algorithm", algorithm)
    assert name == "s1._domainkey.example.org"
    assert value.startswith(f"v=DKIM1; k={algorithm}; p=")

    message = newsletter_message()
    signed = signer(app).sign(message)

    assert signed.startswith(b"DKIM-Signature: ") and signed.endswith(message)
    assert b"\n" not in signed.replace(b"\r\n", b"")  # CRLF throughout
    assert verifies(signed, dns({name: value}))
    tags = signature_tags(signed)
    assert tags[b"a"] == {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}[algorithm]
    assert (tags[b"d"], tags[b"s"], tags[b"c"]) == (b"example.org", b"s1", b"relaxed/relaxed")


def test_rsa_record_is_split_into_dns_strings(runner: FlaskCliRunner) -> None:
    _, value, result = keygen(runner, "example.org", "-s", "s1", "--bits", "2048")
    assert len(value) > 255  # a 2048-bit key does not fit in one string
    assert result.output.count('" "') == 1


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_list_unsubscribe_is_signed(
    app: Flask, runner: FlaskCliRunner, algorithm: str
) -> None:
    name, value, _ = keygen(runner, "example.org", "-s", "s1", "-a", algorithm)
    signed = signer(app).sign(newsletter_message())
    signed_headers = re.sub(rb"\s", b"", signature_tags(signed)[b"h"]).split(b":")
    for header in (b"from", b"to", b"subject", b"date", b"message-id", b"list-id",
                   b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version",
                   b"content-type"):
        assert header in signed_headers

    unsubscribe = re.search(rb"List-Unsubscribe: <[^>]+>", signed)
    assert unsubscribe is not None
    tampered = signed.replace(unsubscribe.group(0), b"List-Unsubscribe: <https://evil.example>")
    assert not verifies(tampered, dns({name: value}))
    one_click_gone = signed.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    assert not verifies(one_click_gone, dns({name: value}))
    # Adding a second unsubscribe header (which a client might act on) breaks it too.
    added = signed.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://evil.example>\r\n\r\n", 1)
    assert not verifies(added, dns({name: value}))
    assert verifies(signed, dns({name: value}))


def test_body_change_breaks_the_signature(app: Flask, runner: FlaskCliRunner) -> None:
    name, value, _ = keygen(runner, "example.org", "-s", "s1", "-a", "ed25519")
    signed = signer(app).sign(newsletter_message())
    assert not verifies(signed.replace(b"Reader 1", b"Reader 2"), dns({name: value}))


def test_one_rsa_and_one_ed25519_key_give_two_signatures(
    app: Flask, runner: FlaskCliRunner
) -> None:
    rsa_name, rsa_value, _ = keygen(runner, "example.org", "-s", "r1", "-a", "rsa")
    ed_name, ed_value, result = keygen(runner, "example.org", "-s", "e1", "-a", "ed25519")
    assert "other keys that sign too: r1 (rsa)" in result.output

    signed = signer(app).sign(newsletter_message())

    resolver = dns({rsa_name: rsa_value, ed_name: ed_value})
    assert [signature_tags(signed, i)[b"a"] for i in (0, 1)] == [b"rsa-sha256", b"ed25519-sha256"]
    assert verifies(signed, resolver, 0) and verifies(signed, resolver, 1)
    # Each signature stands alone: a receiver that knows only one of the keys accepts it.
    assert verifies(signed, dns({ed_name: ed_value}), 1)


def test_a_transactional_message_is_signed_too(app: Flask, runner: FlaskCliRunner) -> None:
    name, value, _ = keygen(runner, "example.org", "-s", "s1", "-a", "ed25519")
    message = build_simple_message(
        to="Ann <ann@example.com>", subject="Your receipt", text="Thanks!\n", html="<p>Thanks</p>",
        from_address=FROM,
    )
    assert verifies(signer(app).sign(message), dns({name: value}))


def test_keygen_writes_mode_600_where_the_signer_looks_and_refuses_to_overwrite(
    app: Flask, runner: FlaskCliRunner
) -> None:
    _, first, _ = keygen(runner, "Example.ORG", "-s", "s1", "-a", "ed25519")
    path = Path(app.instance_path) / "dkim" / "example.org" / "s1.private"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(app.config["DKIM_KEY_DIR"]) == path.parent.parent
    before = path.read_bytes()

    again = runner.invoke(args=["dkim", "keygen", "example.org", "-s", "s1", "-a", "ed25519"])
    assert again.exit_code != 0
    assert "exists" in again.output and "--force" in again.output
    assert path.read_bytes() == before

    _, replaced, _ = keygen(runner, "example.org", "-s", "s1", "-a", "ed25519", "--force")
    assert replaced != first and path.read_bytes() != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The signer sees the replaced key, not a stale one from before.
    assert signer(app).keys[0].dns_value == replaced


def test_keygen_refuses_a_bad_domain_or_selector(app: Flask, runner: FlaskCliRunner) -> None:
    for args in (["../etc"], ["example.org", "-s", "a/b"], ["example.org", "--bits", "512"]):
        result = runner.invoke(args=["dkim", "keygen", *args])
        assert result.exit_code != 0, args
        assert "Error" in result.output
    assert not list((Path(app.instance_path)).glob("**/*.private"))


def test_records_prints_the_published_value_again(app: Flask, runner: FlaskCliRunner) -> None:
    _, value, _ = keygen(runner, "example.org", "-s", "s1")
    result = runner.invoke(args=["dkim", "records", "example.org"])
    assert result.exit_code == 0
    assert "".join(re.findall(r'"([^"]*)"', result.output)) == value


def test_no_key_for_the_from_domain_means_no_signer(app: Flask, runner: FlaskCliRunner) -> None:
    assert signer_for(app.config, FROM) is None
    keygen(runner, "other.example", "-s", "s1", "-a", "ed25519")
    assert signer_for(app.config, FROM) is None
    assert signer_for(app.config, "not an address") is None
    # A key made while the app runs is found at once (no restart), and its removal too.
    keygen(runner, "example.org", "-s", "s1", "-a", "ed25519")
    assert signer_for(app.config, "Someone <Someone@EXAMPLE.org>") is not None
    (Path(app.config["DKIM_KEY_DIR"]) / "example.org" / "s1.private").unlink()
    assert signer_for(app.config, FROM) is None


def test_dkim_off_means_no_signer(tmp_path: Path) -> None:
    key_dir = tmp_path / "dkim"
    generate_key(key_dir, "example.org", selector="s1", algorithm="ed25519")
    assert signer_for({"DKIM": True, "DKIM_KEY_DIR": str(key_dir)}, FROM) is not None
    for off in ("off", False, "false", "OFF"):
        assert signer_for({"DKIM": off, "DKIM_KEY_DIR": str(key_dir)}, FROM) is None


def test_dkim_setting_is_checked_at_start(app_config: dict[str, Any]) -> None:
    off = create_app({**app_config, "DKIM": "off"})
    assert off.config["DKIM"] is False
    assert signer_for(off.config, FROM) is None
    with pytest.raises(ConfigError, match="NEWSLETTER_DKIM"):
        create_app({**app_config, "DKIM": "sometimes"})


def test_a_bad_key_file_is_a_clear_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "dkim" / "example.org"
    folder.mkdir(parents=True)
    bad = folder / "s1.private"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot base64\n-----END RSA PRIVATE KEY-----\n")
    config = {"DKIM": "on", "DKIM_KEY_DIR": str(tmp_path / "dkim")}
    with pytest.raises(ConfigError) as caught:
        signer_for(config, FROM)
    assert caught.value.setting == "NEWSLETTER_DKIM_KEY_DIR"
    assert str(bad) in caught.value.message

    bad.write_text("hello")
    with pytest.raises(ConfigError, match="neither a PEM private key nor a base64 Ed25519 seed"):
        signer_for(config, FROM)

    bad.write_text(SMALL_RSA_KEY)  # cryptography no longer makes keys this small
    with pytest.raises(ConfigError, match="too short"):
        signer_for(config, FROM)


def _pem(key: Any, fmt: Any = serialization.PrivateFormat.TraditionalOpenSSL) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))


def test_keys_made_elsewhere_are_used(tmp_path: Path) -> None:
    """opendkim-genkey's PEM files, PKCS#8 (openssl genpkey) and dknewkey's Ed25519 seed."""
    folder = tmp_path / "example.org"
    folder.mkdir()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    (folder / "pkcs1.private").write_bytes(_pem(rsa_key))
    (folder / "pkcs8.private").write_bytes(_pem(ed_key, serialization.PrivateFormat.PKCS8))
    (folder / "seed.private").write_bytes(base64.b64encode(ed_key.private_bytes_raw()) + b"\n")
    (folder / "notes.txt").write_text("not a key; ignored")

    found = signer_for({"DKIM_KEY_DIR": str(tmp_path)}, FROM)

    assert found is not None
    assert [(key.selector, key.algorithm) for key in found.keys] == [
        ("pkcs1", "rsa"), ("pkcs8", "ed25519"), ("seed", "ed25519")
    ]
    signed = found.sign(newsletter_message())
    resolver = dns({key.dns_name: key.dns_value for key in found.keys})
    assert all(verifies(signed, resolver, index) for index in range(3))


def test_signature_is_byte_for_byte_dkimpys_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast paths (header split, body canonicalization, OpenSSL RSA) change nothing:
    the header equals what dkimpy's plain ``dkim.sign`` makes with the same key and time."""
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    key = generate_key(tmp_path, "example.org", selector="s1", algorithm="rsa")
    found = signer_for({"DKIM_KEY_DIR": str(tmp_path)}, FROM)
    assert found is not None
    include = list(nl_dkim.SIGNED_HEADERS + nl_dkim.OVERSIGNED_HEADERS)
    for message in (newsletter_message(), _awkward_message()):
        ours = found.sign(message)
        theirs = dkim.sign(
            message, b"s1", b"example.org", key.path.read_bytes(),
            canonicalize=(b"relaxed", b"relaxed"), include_headers=include,
        )  # fmt: skip
        assert ours == theirs + message


def _awkward_message() -> bytes:
    """Blanks the relaxed body rules act on: tabs, runs, trailing blanks, trailing empty
    lines; and a folded header."""
    return (
        b"From: news@example.org\r\nTo: a@example.com\r\nSubject: a\r\n\tfolded  subject\r\n"
        b"Content-Type: text/plain\r\n\r\n"
        b"tab\there  and   runs \t \r\ntrailing  \r\n\t\r\n \r\nend\r\n\r\n\r\n"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n",
        b"plain text, single spaces only\r\n",
        b"no final line end",
        b"trailing blanks \t \r\n\r\n",
        b"tab\tinside and  double   spaces\r\n \t\r\nx",
        b"\t\r\n  \r\n",
        b"ends with blanks   ",
        b"  indented\r\n        <p>html</p>\r\n",
        b"a \t b  \t\t c\t \td \t",
        b"\t\t\r\n\t x  \r\n",
    ],
)
def test_fast_body_canonicalization_equals_dkimpys(body: bytes) -> None:
    assert nl_dkim._FastRelaxed.canonicalize_body(body) == dkim.canonicalization.Relaxed \
        .canonicalize_body(body)


@pytest.mark.parametrize(
    "message",
    [
        b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n",
        b"From: a@example.org\r\nSubject: x\r\n y\r\n\r\nbody\r\n\r\n",
        b"From: a@example.org\r\n\r\n",
        b"From: a@example.org\r\n",
        b"From: a@example.org\nSubject: bare LF\n\nbody\nmore\n",
        b"From: a@example.org\r\n\r\nmixed\nline ends\r\n",
    ],
)
def test_header_body_split_equals_dkimpys(message: bytes) -> None:
    assert nl_dkim.split_message(message) == dkim.rfc822_parse(message)


def test_fast_paths_equal_dkimpys_on_random_input() -> None:
    """Bodies and messages made of the characters the rules care about, in any order."""
    pieces = [b"a", b"b", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r", b"x: y\r\n", b"\r\n "]
    generator = random.Random(8463)
    for _ in range(2000):
        sample = b"".join(generator.choices(pieces, k=generator.randrange(0, 40)))
        assert nl_dkim._FastRelaxed.canonicalize_body(sample) == dkim.canonicalization \
            .Relaxed.canonicalize_body(sample), sample
        message = b"From: a@example.org\r\n" + sample
        try:
            expected = dkim.rfc822_parse(message)
        except dkim.MessageFormatError:
            with pytest.raises(dkim.MessageFormatError):
                nl_dkim.split_message(message)
            continue
        assert nl_dkim.split_message(message) == expected, message
