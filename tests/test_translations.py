"""The message catalogues: every string the public pages and subscribers' mail say is in the
Spanish catalogue, translated, with the same placeholders.

The strings are extracted afresh with Babel, as ``newsletter/translations/babel.cfg`` says
(the public templates, the confirmation and welcome mail, the Python that words them), so a
new ``_()`` or ``{% trans %}`` without its translation fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "newsletter" / "translations"
LANGUAGES = ["es"]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """msgid → one place it comes from, extracted now from the source."""
    pot = tmp_path_factory.mktemp("catalogue") / "messages.pot"
    CommandLineInterface().run([
        "pybabel", "--quiet", "extract", "-F", str(CATALOGUES / "babel.cfg"), "-o", str(pot),
        str(ROOT),
    ])
    with pot.open("rb") as handle:
        catalogue = read_po(handle)
    found = {}
    for message in catalogue:
        if message.id and message.locations:
            path, line = message.locations[0]
            found[str(message.id)] = f"{Path(path).resolve().relative_to(ROOT)}:{line}"
    return found


def test_the_extraction_finds_the_public_pages_and_the_mail(extracted: dict[str, str]) -> None:
    places = {where.split(":")[0] for where in extracted.values()}
    assert "templates/public/subscribe.html" in places
    assert "templates/email/confirm.mjml" in places and "templates/email/welcome.txt" in places
    assert "newsletter/web/public.py" in places
    assert "Confirm my subscription" in extracted


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_is_translated(extracted: dict[str, str], language: str) -> None:
    with (CATALOGUES / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    missing = [f"{where}: {msgid!r}" for msgid, where in extracted.items()
               if msgid not in catalogue]
    assert not missing, "not in the catalogue (run pybabel update):\n" + "\n".join(missing)
    untranslated = [
        f"{extracted[str(message.id)]}: {message.id!r}"
        for message in catalogue
        if str(message.id) in extracted and (not message.string or message.fuzzy)
    ]
    assert not untranslated, "not translated (or fuzzy):\n" + "\n".join(untranslated)
    # Babel's own checks: the same %(name)s placeholders in the translation as in the msgid.
    problems = [f"{message.id!r}: {errors}" for message, errors in catalogue.check()]
    assert not problems, "\n".join(problems)
