"""The stylesheet keeps the error's red for errors: a chosen option or a focused field is
shown in a colour of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# Runs once, in the embedded pass (Makefile): the stylesheet is the same on every backend.
pytestmark = pytest.mark.once

CSS = (Path(__file__).resolve().parents[2] / "newsletter" / "static" / "style.css").read_text()


def colour(name: str) -> str:
    match = re.search(rf"--{name}:\s*(#[0-9a-fA-F]+)", CSS)
    assert match, name
    return match.group(1).lower()


def rule(selector: str) -> str:
    match = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert match, selector
    return match.group(1)


def test_a_chosen_option_is_not_in_the_colour_of_an_error() -> None:
    assert colour("chosen") != colour("error")
    chosen = rule(".choices .check:has(input:checked)")
    assert "var(--chosen)" in chosen and "--error" not in chosen and "--accent" not in chosen
    assert "var(--chosen)" in rule("input:focus, select:focus, textarea:focus")
    assert "var(--error)" in rule(".errors, .field-error")
