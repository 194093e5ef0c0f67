"""``newsletter doctor`` against a DNS server and SMTP relays of our own on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask

from newsletter import create_app
from newsletter.mail import dkim
from tests.dns_server import ZoneResolver, dns_server
from tests.helpers import free_port
from tests.smtp import CapturingHandler

DOMAIN = "example.org"


@pytest.fixture
def zone() -> Iterator[tuple[ZoneResolver, str]]:
    with dns_server() as served:
        yield served


def publish_good_records(zone: ZoneResolver, key: dkim.DkimKey) -> None:
    zone.add(DOMAIN, "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone.add(key.dns_name, "TXT", key.dns_strings())
    zone.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org")
    zone.add(DOMAIN, "MX", (10, "mx.example.org"))
    zone.add("1.0.0.127.in-addr.arpa", "PTR", "mail.example.org")


def doctor_app(app_config: dict[str, Any], resolver: str, **settings: Any) -> Flask:
    return create_app({**app_config, "DNS_RESOLVER": resolver, **settings})


def run_doctor(app: Flask) -> tuple[int, list[str]]:
    with app.app_context():  # this app's, not the fixture's (whose context is pushed)
        result = app.test_cli_runner().invoke(args=["doctor"])
    return result.exit_code, result.output.splitlines()


def finding(lines: list[str], check: str) -> str:
    matches = [line for line in lines if re.match(rf"^(pass|warn|fail)  {re.escape(check)}:", line)]
    assert matches, f"no line for {check} in:\n" + "\n".join(lines)
    return matches[0]


def make_key(app_config: dict[str, Any]) -> dkim.DkimKey:
    key_dir = Path(app_config["INSTANCE_PATH"]) / "dkim"
    return dkim.generate_key(key_dir, DOMAIN, selector="news", bits=1024)


def test_a_well_set_up_domain_passes_every_dns_and_bulk_sender_check(
    app_config: dict[str, Any], zone: tuple[ZoneResolver, str], app: Flask
) -> None:
    records, resolver = zone
    key = make_key(app_config)
    publish_good_records(records, key)
    doctor = doctor_app(app_config, resolver, BOUNCE_ADDRESS="bounces@example.org")

    status, lines = run_doctor(doctor)

    for check in ("dns.spf", "dns.dkim news", "dns.dmarc", "dns.mx", "dns.ptr 127.0.0.1",
                  "bulk.one_click_unsubscribe", "bulk.signed_unsubscribe",
                  "bulk.bounce_address", "services.database"):
        assert finding(lines, check).startswith("pass"), lines
    assert "mx.example.org" in finding(lines, "dns.mx")
    assert "mail.example.org" in finding(lines, "dns.ptr 127.0.0.1")
    assert status == 0, lines
    assert re.match(r"^\d+ checks: 0 failed, \d+ warnings$", lines[-1])
    # Every question went to our server, none elsewhere.
    assert (f"news._domainkey.{DOMAIN}", "TXT") in records.asked


def test_each_missing_or_wrong_record_fails_with_what_to_do(
    app_config: dict[str, Any], zone: tuple[ZoneResolver, str], app: Flask
) -> None:
    records, resolver = zone
    make_key(app_config)
    other = dkim.generate_key(Path(app_config["INSTANCE_PATH"]) / "other", DOMAIN,
                              selector="news", bits=1024)
    records.add(DOMAIN, "TXT", "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all")
    records.add("_spf.example.net", "TXT", "v=spf1 ip4:198.51.100.7 -all")
    records.add(other.dns_name, "TXT", other.dns_strings())  # a key that is not ours

    status, lines = run_doctor(doctor_app(app_config, resolver))

    assert status == 1
    spf = finding(lines, "dns.spf")
    assert spf.startswith("fail") and "does not cover 127.0.0.1" in spf and "ip4:127.0.0.1" in spf
    dkim_line = finding(lines, "dns.dkim news")
    assert dkim_line.startswith("fail") and "publishes another key" in dkim_line
    assert "newsletter dkim records example.org" in dkim_line
    dmarc = finding(lines, "dns.dmarc")
    assert dmarc.startswith("fail  dns.dmarc: _dmarc.example.org publishes no")
    mx = finding(lines, "dns.mx")
    assert mx.startswith("fail") and "publish an MX record" in mx
    assert finding(lines, "dns.ptr 127.0.0.1").startswith("fail")
    assert finding(lines, "bulk.signed_unsubscribe").startswith("fail")
    assert finding(lines, "bulk.bounce_address").startswith("warn")


def test_spf_through_include_and_a_mechanism_counts_and_a_p_none_dmarc_warns(
    app_config: dict[str, Any], zone: tuple[ZoneResolver, str], app: Flask
) -> None:
    records, resolver = zone
    key = make_key(app_config)
    publish_good_records(records, key)
    records.clear(DOMAIN, "TXT")
    records.add(DOMAIN, "TXT", "v=spf1 include:_spf.example.org ~all")
    records.add("_spf.example.org", "TXT", "v=spf1 a:relay.example.org -all")
    records.add("relay.example.org", "A", "127.0.0.1")
    records.clear(f"_dmarc.{DOMAIN}", "TXT")
    records.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=none")

    _, lines = run_doctor(doctor_app(app_config, resolver))

    assert finding(lines, "dns.spf").startswith("pass")
    dmarc = finding(lines, "dns.dmarc")
    assert dmarc.startswith("warn") and "p=quarantine" in dmarc


def test_a_relay_without_starttls_warns_and_wrong_credentials_fail(
    app_config: dict[str, Any], zone: tuple[ZoneResolver, str], app: Flask
) -> None:
    _, resolver = zone

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        good = isinstance(auth_data, LoginPassword) and auth_data.password == b"right"
        return AuthResult(success=good, handled=False)

    port = free_port()
    controller = Controller(CapturingHandler(), hostname="127.0.0.1", port=port,
                            authenticator=authenticate, auth_require_tls=False)
    controller.start()
    try:
        wrong = doctor_app(app_config, resolver, SMTP_URL=f"smtp://ann:wrong@127.0.0.1:{port}")
        _, lines = run_doctor(wrong)
        right = doctor_app(app_config, resolver, SMTP_URL=f"smtp://ann:right@127.0.0.1:{port}")
        _, good_lines = run_doctor(right)
    finally:
        controller.stop()

    relay = f"relay 127.0.0.1:{port}"
    assert finding(lines, f"{relay} ehlo").startswith("pass  ")
    assert finding(lines, f"{relay} tls").startswith("warn") and "STARTTLS" in finding(
        lines, f"{relay} tls")
    login = finding(lines, f"{relay} login")
    assert login.startswith("fail") and "535" in login and "NEWSLETTER_SMTP_URL" in login
    assert finding(good_lines, f"{relay} login") == f"pass  {relay} login: accepted for ann"


def test_an_unreachable_relay_and_redis_fail(
    app_config: dict[str, Any], zone: tuple[ZoneResolver, str], app: Flask
) -> None:
    _, resolver = zone
    port = free_port()
    doctor = doctor_app(app_config, resolver, SMTP_URL=f"smtp://127.0.0.1:{port}",
                        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    status, lines = run_doctor(doctor)
    assert status == 1
    assert finding(lines, f"relay 127.0.0.1:{port}").startswith("fail")
    assert finding(lines, "services.redis").startswith("fail")
