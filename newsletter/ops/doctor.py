"""``newsletter doctor``: will this installation's mail get through? One finding a check.

Each check gives ``pass``, ``warn`` or ``fail``, what it saw and, unless it passed, what to
do. The DNS checks ask ``NEWSLETTER_DNS_RESOLVER`` (``host[:port]``, comma-separated) when
set, else the system's resolvers: the records that matter are the ones receivers see.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.name
import dns.resolver
import dns.reversename
from flask import Flask

from newsletter.checks import check_services
from newsletter.delivery.relays.limits import redis_client, redis_url
from newsletter.errors import ConfigError
from newsletter.mail import dkim
from newsletter.mail.transport import Relay, configured_relays, probe_relay

PASS, WARN, FAIL = "pass", "warn", "fail"
#: RFC 7208 §4.6.4: an SPF evaluation may take at most this many DNS look-ups
SPF_LOOKUP_LIMIT = 10


@dataclass(frozen=True)
class Finding:
    """One check's result: ``status`` (pass, warn, fail), what was seen, what to do."""

    status: str
    check: str
    detail: str
    advice: str = ""

    def line(self) -> str:
        text = f"{self.status}  {self.check}: {self.detail}"
        return f"{text} — {self.advice}" if self.advice and self.status != PASS else text


def run(app: Flask) -> list[Finding]:
    """Every check, in the order an operator fixes things (inside an app context)."""
    config = app.config
    resolver = make_resolver(config.get("DNS_RESOLVER"))
    findings: list[Finding] = []
    for check in (_settings, _services, _relays):
        findings.extend(check(app))
    domain = dkim.sending_domain(str(config["FROM_ADDRESS"]))
    if domain is None:
        findings.append(Finding(FAIL, "dns", "the From address has no domain",
                                "set NEWSLETTER_FROM_ADDRESS to an address on your domain"))
        return findings
    dns_checks = DnsChecks(resolver, domain, config)
    findings.extend(dns_checks.all())
    findings.extend(_bulk_sender_rules(config, dns_checks))
    return findings


def make_resolver(setting: str | None) -> dns.resolver.Resolver:
    """A resolver asking the ``host[:port]`` servers named (``[v6]:port`` for IPv6), comma-
    separated, all on one port; or the system's resolvers when unset."""
    if not setting:
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    servers = []
    for part in str(setting).split(","):
        parts = urlsplit(f"//{part.strip()}")
        if parts.hostname:
            servers.append(parts.hostname)
            resolver.port = parts.port or 53
    resolver.nameservers = servers
    resolver.lifetime = 5.0
    return resolver


# --- settings, services, relays -----------------------------------------------------------


def _settings(app: Flask) -> Iterator[Finding]:
    config = app.config
    base = urlsplit(str(config.get("BASE_URL") or ""))
    if base.scheme != "https":
        yield Finding(WARN, "settings.base_url", f"links point to {config.get('BASE_URL')}",
                      "set NEWSLETTER_BASE_URL to the https:// address readers use; one-click "
                      "unsubscribe (RFC 8058) needs https")
    elif base.hostname in ("localhost", "127.0.0.1", "::1"):
        yield Finding(WARN, "settings.base_url", f"{config['BASE_URL']} is this machine",
                      "set NEWSLETTER_BASE_URL to the public address")
    else:
        yield Finding(PASS, "settings.base_url", str(config["BASE_URL"]))
    if not config.get("SMTP_URL"):
        yield Finding(WARN, "settings.smtp_url", "no relay: mail goes to the outbox folder",
                      "set NEWSLETTER_SMTP_URL to your relay, e.g. smtp://user:pass@host:587"
                      "?starttls=true")
    else:
        yield Finding(PASS, "settings.smtp_url", f"{len(configured_relays(config))} relay(s)")
    if not config.get("BROKER_URL"):
        yield Finding(WARN, "settings.broker_url", "embedded queue: workers run in the web process",
                      "for more than one process, set NEWSLETTER_BROKER_URL (redis:// or amqp://)")


def _services(app: Flask) -> Iterator[Finding]:
    try:
        check_services(app, need_schema=True)
    except ConfigError as error:
        name = "services.database" if "DATABASE" in error.setting else "services.broker"
        yield Finding(FAIL, name, error.reason, f"check {error.setting}")
    else:
        yield Finding(PASS, "services.database", "reachable, migrations applied")
        yield Finding(PASS, "services.broker", "reachable" if app.config.get("BROKER_URL")
                      else "embedded")
    yield from _redis(app)


def _redis(app: Flask) -> Iterator[Finding]:
    url = redis_url(app.config)
    if url is None:
        return
    try:
        redis_client(url).ping()
    except Exception as error:  # noqa: BLE001 - any failure is what the operator must see
        yield Finding(FAIL, "services.redis", f"cannot reach {_where(url)}: {error}",
                      "start Redis or fix NEWSLETTER_REDIS_URL")
    else:
        yield Finding(PASS, "services.redis", f"{_where(url)} reachable")


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


def _relays(app: Flask) -> Iterator[Finding]:
    for relay in configured_relays(app.config):
        if relay.scheme == "maildir":
            continue
        name = f"relay {relay.name}"
        probe = probe_relay(relay, app.config)
        if probe.ehlo is None:
            yield Finding(FAIL, name, f"no answer to EHLO ({probe.error})",
                          "check the host and port in NEWSLETTER_SMTP_URL and the firewall")
            continue
        yield Finding(PASS, f"{name} ehlo", probe.ehlo)
        if probe.tls:
            yield Finding(PASS, f"{name} tls", "encrypted (STARTTLS)" if relay.scheme == "smtp"
                          else "encrypted (smtps)")
        elif probe.starttls_offered or relay.starttls:
            yield Finding(FAIL, f"{name} tls", probe.error or "STARTTLS failed",
                          "fix the relay's certificate or use smtps://")
        else:
            yield Finding(WARN, f"{name} tls", "does not offer STARTTLS: mail and passwords "
                          "cross the network in clear", "use a relay that offers TLS")
        if probe.login is True:
            yield Finding(PASS, f"{name} login", f"accepted for {relay.username}")
        elif relay.username:
            yield Finding(FAIL, f"{name} login", probe.error or "refused",
                          "check the user name and password in NEWSLETTER_SMTP_URL")


# --- DNS ----------------------------------------------------------------------------------


class DnsChecks:
    """SPF, DKIM, DMARC, MX and PTR of the sending domain, as receivers will see them."""

    def __init__(self, resolver: dns.resolver.Resolver, domain: str, config: Any) -> None:
        self.resolver = resolver
        self.domain = domain
        self.config = config
        self.relay_addresses = _relay_addresses(configured_relays(config))
        #: whether the From domain has a DKIM key here that DNS publishes (for the DMARC check)
        self.dkim_published = False

    def all(self) -> Iterator[Finding]:
        yield self.spf()
        yield from self.dkim()
        yield self.dmarc()
        yield self.mx()
        yield from self.ptr()

    def txt(self, name: str) -> list[str] | None:
        """The TXT strings at ``name`` (each record's strings joined); None: no such name."""
        try:
            answer = self.resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]

    def spf(self) -> Finding:
        try:
            records = [t for t in self.txt(self.domain) or [] if t.lower().startswith("v=spf1")]
        except dns.exception.DNSException as error:
            return Finding(FAIL, "dns.spf", f"look-up failed: {error}", "check the DNS servers")
        if not records:
            return Finding(FAIL, "dns.spf", f"{self.domain} publishes no SPF record",
                           f'publish a TXT record "v=spf1 {self._spf_hint()} ~all"')
        if len(records) > 1:
            return Finding(FAIL, "dns.spf", f"{self.domain} has {len(records)} SPF records",
                           "merge them into one: receivers treat several as an error")
        if not self.relay_addresses:
            return Finding(WARN, "dns.spf", f"published: {records[0]}",
                           "no relay address to check it against (the outbox is in use)")
        evaluator = _Spf(self.resolver)
        missing = [ip for ip in self.relay_addresses if not evaluator.covers(self.domain, ip)]
        if evaluator.error:
            return Finding(FAIL, "dns.spf", evaluator.error, "simplify the SPF record")
        if missing:
            return Finding(FAIL, "dns.spf", f"does not cover {', '.join(map(str, missing))}",
                           f"add {self._spf_hint(missing)} to the SPF record")
        return Finding(PASS, "dns.spf", f"covers the relays ({records[0]})")

    def _spf_hint(self, addresses: list[Any] | None = None) -> str:
        chosen = addresses if addresses is not None else self.relay_addresses
        parts = [f"ip{ip.version}:{ip}" for ip in chosen]
        return " ".join(parts) or "include:your-relay's-domain"

    def dkim(self) -> Iterator[Finding]:
        folder = Path(str(self.config["DKIM_KEY_DIR"]))
        try:
            keys = dkim.domain_keys(folder, self.domain)
        except ConfigError as error:
            yield Finding(FAIL, "dns.dkim", error.reason, "fix or remove the key file")
            return
        if not keys:
            yield Finding(FAIL, "dns.dkim", f"no DKIM key for {self.domain} in {folder}",
                          f"run `newsletter dkim generate {self.domain}` and publish its record")
            return
        for key in keys:
            name = f"dns.dkim {key.selector}"
            try:
                published = self.txt(key.dns_name)
            except dns.exception.DNSException as error:
                yield Finding(FAIL, name, f"look-up failed: {error}", "check the DNS servers")
                continue
            wanted = _dkim_public_key(key.dns_value)
            found = [_dkim_public_key(text) for text in published or []]
            if wanted in found:
                self.dkim_published = True
                yield Finding(PASS, name, f"{key.dns_name} matches the key")
            elif published:
                yield Finding(FAIL, name, f"{key.dns_name} publishes another key",
                              f"publish the record `newsletter dkim records {self.domain}` prints")
            else:
                yield Finding(FAIL, name, f"{key.dns_name} is not published",
                              f"publish the record `newsletter dkim records {self.domain}` prints")

    def dmarc(self) -> Finding:
        try:
            records = [t for t in self.txt(f"_dmarc.{self.domain}") or []
                       if t.lower().startswith("v=dmarc1")]
        except dns.exception.DNSException as error:
            return Finding(FAIL, "dns.dmarc", f"look-up failed: {error}", "check the DNS servers")
        if not records:
            return Finding(FAIL, "dns.dmarc", f"_dmarc.{self.domain} publishes no DMARC record",
                           'publish a TXT record "v=DMARC1; p=none; rua=mailto:…" to start')
        tags = _tags(records[0])
        if not self.dkim_published:
            return Finding(FAIL, "dns.dmarc", f"published ({records[0]}) but not aligned: no "
                           f"published DKIM key signs as {self.domain}",
                           "publish the DKIM record so signatures align with the From domain")
        if tags.get("p", "none") == "none":
            return Finding(WARN, "dns.dmarc", f"aligned through DKIM; policy p=none ({records[0]})",
                           "move to p=quarantine once reports show your mail passes")
        return Finding(PASS, "dns.dmarc", f"aligned through DKIM ({records[0]})")

    def mx(self) -> Finding:
        try:
            answer = self.resolver.resolve(self.domain, "MX")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return Finding(FAIL, "dns.mx", f"{self.domain} has no MX record",
                           "publish an MX record: replies and bounces need somewhere to go")
        except dns.exception.DNSException as error:
            return Finding(FAIL, "dns.mx", f"look-up failed: {error}", "check the DNS servers")
        hosts = sorted(str(record.exchange).rstrip(".") for record in answer)
        return Finding(PASS, "dns.mx", ", ".join(hosts))

    def ptr(self) -> Iterator[Finding]:
        for ip in self.relay_addresses:
            name = f"dns.ptr {ip}"
            try:
                answer = self.resolver.resolve(dns.reversename.from_address(str(ip)), "PTR")
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                yield Finding(FAIL, name, "no PTR record",
                              "ask the address's provider for a PTR record naming the relay")
                continue
            except dns.exception.DNSException as error:
                yield Finding(FAIL, name, f"look-up failed: {error}", "check the DNS servers")
                continue
            yield Finding(PASS, name, ", ".join(str(r.target).rstrip(".") for r in answer))


def _relay_addresses(relays: list[Relay]) -> list[Any]:
    """The IP addresses of the SMTP relays' hosts."""
    found: list[Any] = []
    for relay in relays:
        if relay.scheme == "maildir":
            continue
        try:
            infos = socket.getaddrinfo(relay.host, relay.port, type=socket.SOCK_STREAM)
        except OSError:
            continue
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if ip not in found:
                found.append(ip)
    return found


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            tags[key.strip().lower()] = value.strip()
    return tags


def _dkim_public_key(text: str) -> str:
    return _tags(text).get("p", "").replace(" ", "")


class _Spf:
    """Just enough of RFC 7208 to say whether an address passes: ip4, ip6, a, mx, include
    and redirect (no macros, no exists; those make a finding of their own). Written here
    because the SPF libraries ask the system's resolver, not the one the doctor is given."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self.lookups = 0
        self.error: str | None = None

    def covers(self, domain: str, ip: Any) -> bool:
        self.lookups = 0
        return self._check(domain, ip, depth=0) is True

    def _record(self, domain: str) -> str | None:
        try:
            answer = self.resolver.resolve(domain, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        for record in answer:
            text = b"".join(record.strings).decode("utf-8", "replace")
            if text.lower().startswith("v=spf1"):
                return text
        return None

    def _count(self) -> bool:
        self.lookups += 1
        if self.lookups > SPF_LOOKUP_LIMIT:
            self.error = f"more than {SPF_LOOKUP_LIMIT} DNS look-ups (receivers give up: permerror)"
            return False
        return True

    def _check(self, domain: str, ip: Any, depth: int) -> bool | None:
        record = self._record(domain)
        if record is None or depth > SPF_LOOKUP_LIMIT:
            return None
        redirect = None
        for term in record.split()[1:]:
            qualifier = term[0] if term[0] in "+-~?" else "+"
            mechanism = term[1:] if term[0] in "+-~?" else term
            name, _, value = mechanism.partition(":")
            name = name.lower()
            if name.startswith("redirect="):
                redirect = mechanism.partition("=")[2]
                continue
            matched = self._matches(name, value or domain, ip, domain, depth)
            if matched:
                return qualifier == "+"
        if redirect and self._count():
            return self._check(redirect, ip, depth + 1)
        return None

    def _matches(self, name: str, value: str, ip: Any, domain: str, depth: int) -> bool:
        checks: dict[str, Callable[[], bool]] = {
            "all": lambda: True,
            "ip4": lambda: ip.version == 4 and ip in ipaddress.ip_network(value, strict=False),
            "ip6": lambda: ip.version == 6 and ip in ipaddress.ip_network(value, strict=False),
            "a": lambda: self._count() and ip in self._addresses(value.split("/")[0]),
            "mx": lambda: self._count() and any(ip in self._addresses(host)
                                                for host in self._mx_hosts(value)),
            "include": lambda: self._count() and self._check(value, ip, depth + 1) is True,
        }
        check = checks.get(name)
        if name in ("ip4", "ip6", "include") and value == domain:
            return False  # the mechanism needs a value
        return bool(check and check())

    def _addresses(self, host: str) -> list[Any]:
        found = []
        for kind in ("A", "AAAA"):
            try:
                answer = self.resolver.resolve(host, kind)
                found += [ipaddress.ip_address(record.address) for record in answer]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
        return found

    def _mx_hosts(self, domain: str) -> list[str]:
        try:
            return [str(r.exchange) for r in self.resolver.resolve(domain, "MX")]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []


# --- the mailbox providers' rules for bulk senders ----------------------------------------


def _bulk_sender_rules(config: Any, dns_checks: DnsChecks) -> Iterator[Finding]:
    """Gmail's, Yahoo's and Microsoft's rules (2024) for senders of 5,000+ a day."""
    https = urlsplit(str(config.get("BASE_URL") or "")).scheme == "https"
    if https:
        yield Finding(PASS, "bulk.one_click_unsubscribe",
                      "every message carries List-Unsubscribe (https, mailto) and "
                      "List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    else:
        yield Finding(FAIL, "bulk.one_click_unsubscribe", "the unsubscribe link is not https",
                      "set NEWSLETTER_BASE_URL to an https:// address")
    signs = dkim.dkim_enabled(config) and dns_checks.dkim_published
    if signs and b"list-unsubscribe" in dkim.SIGNED_HEADERS:
        yield Finding(PASS, "bulk.signed_unsubscribe",
                      "the DKIM signature covers List-Unsubscribe and List-Unsubscribe-Post")
    else:
        yield Finding(FAIL, "bulk.signed_unsubscribe",
                      "no published DKIM key signs the messages, so List-Unsubscribe is unsigned",
                      "generate and publish a DKIM key for the From domain")
    if config.get("BOUNCE_ADDRESS"):
        yield Finding(PASS, "bulk.bounce_address", f"bounces go to {config['BOUNCE_ADDRESS']}")
    else:
        yield Finding(WARN, "bulk.bounce_address",
                      "no NEWSLETTER_BOUNCE_ADDRESS: bounces after the relay accepted a message "
                      "go to the From address and are not processed",
                      "set NEWSLETTER_BOUNCE_ADDRESS to an address whose mail reaches "
                      "`newsletter bounces serve` or the mailbox poller")
