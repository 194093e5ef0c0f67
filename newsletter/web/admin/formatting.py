"""Template filters of the admin pages that shape text for reading."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from newsletter.web.admin.blueprint import bp

_BREAK_AFTER = re.compile(r"([@.+_-])")


@bp.app_template_filter("breakable")
def breakable(value: str | None) -> Markup:
    """An address (or Message-ID) that may wrap after ``@``, dots and dashes, not in the
    middle of a word: each such place gets a ``<wbr>``. Copying it gives the plain text."""
    escaped = str(escape(value or ""))
    return Markup(_BREAK_AFTER.sub(r"\1<wbr>", escaped))  # noqa: S704 - escaped above
