"""Email addresses: checked and normalised once, on the way in."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import InvalidEmail

MAX_LENGTH = 320  # the column's width; email-validator already caps real addresses lower


def normalise_email(address: str, *, check_deliverability: bool = False) -> str:
    """The address in the form we store: syntax checked, domain lower-cased and IDNA-normalised.

    Internationalised domains are kept in Unicode (``reader@bücher.example``); use
    :func:`ascii_address` for the SMTP envelope. DNS is consulted only when
    ``check_deliverability`` is set.

    :raises InvalidEmail: with email-validator's explanation as ``reason``.
    """
    candidate = (address or "").strip()
    if not candidate:
        raise InvalidEmail(candidate, "it is empty")
    if len(candidate) > MAX_LENGTH:
        raise InvalidEmail(candidate[:40] + "…", "it is too long")
    try:
        info = validate_email(candidate, check_deliverability=check_deliverability)
    except EmailNotValidError as error:
        raise InvalidEmail(candidate, str(error)) from None
    return str(info.normalized)


def ascii_address(address: str) -> str:
    """The address with its domain in IDNA (punycode) form, for SMTP envelopes and headers.

    A non-ASCII local part cannot be made ASCII; it is returned unchanged (the relay then
    needs SMTPUTF8).
    """
    local, _, domain = address.rpartition("@")
    if not local or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address
