"""Addresses are checked with email-validator and stored in one normal form."""

from __future__ import annotations

import pytest

from newsletter.audience.addresses import ascii_address, normalise_email
from newsletter.errors import InvalidEmail

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


def test_an_address_is_trimmed_and_its_domain_lower_cased() -> None:
    assert normalise_email("  Ada.Lovelace@Example.ORG ") == "Ada.Lovelace@example.org"


def test_an_internationalised_domain_is_accepted_and_kept_readable() -> None:
    assert normalise_email("leser@Bücher.example") == "leser@bücher.example"


def test_the_smtp_envelope_gets_the_punycode_domain() -> None:
    assert ascii_address("leser@bücher.example") == "leser@xn--bcher-kva.example"
    assert ascii_address("ada@example.org") == "ada@example.org"


def test_no_dns_is_consulted_unless_asked() -> None:
    # A domain nobody registered: only a DNS look-up could tell it does not take mail.
    assert normalise_email("reader@no-such-domain-for-newsletter-tests.com")


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "plainaddress",
        "ada@",
        "@example.org",
        "ada@@example.org",
        "ada lovelace@example.org",
        "ada@example",
        "ada@exa_mple.org",
    ],
)
def test_invalid_addresses_are_refused_with_a_reason(address: str) -> None:
    with pytest.raises(InvalidEmail) as raised:
        normalise_email(address)
    assert raised.value.field == "email"
    assert raised.value.reason
