"""Languages: the public pages and the mail subscribers get from us, in English or Spanish.

Flask-Babel picks the language of each public page: the reader's own choice from the switch
on every page (``?lang=es``, then remembered in a cookie), else the stored language of the
subscriber the page is about (a confirmation, unsubscribe or preferences link), else the
browser's Accept-Language, else English. Mail to a subscriber (confirmation, welcome) is
written in their stored language (:func:`subscriber_language`), which the sign-up form
records from the page they used.

The catalogues are ``newsletter/translations/<lang>/LC_MESSAGES/messages.po``; the set-up
(``make``) compiles them to ``.mo`` files, which are not kept in git.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, g, has_request_context, request
from flask_babel import Babel, force_locale, get_locale, refresh

#: the languages we have words for, in the names their speakers use
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
DEFAULT_LANGUAGE = "en"
#: the query parameter of the language switch, and the cookie that remembers the choice
SWITCH = "lang"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

babel = Babel()

__all__ = [
    "LANGUAGES",
    "babel",
    "current_language",
    "force_locale",
    "init_app",
    "language_links",
    "remember_choice",
    "subscriber_language",
    "use_subscriber_language",
]


def known(code: str | None) -> str | None:
    """``code`` if it is one of :data:`LANGUAGES` (case and region ignored), else None."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else None


def select_locale() -> str | None:
    """Flask-Babel's locale selector (see the module docstring for the order)."""
    if not has_request_context():
        return None  # a worker: the default, or what ``force_locale`` says
    chosen = known(request.args.get(SWITCH)) or known(request.cookies.get(COOKIE))
    if chosen:
        return chosen
    stored = known(g.get("subscriber_language"))
    if stored:
        return stored
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def init_app(app: Flask) -> None:
    """Bind Flask-Babel (catalogues in ``newsletter/translations``) and trim the whitespace
    of ``{% trans %}`` blocks, as the extraction does (``babel.cfg``)."""
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    # Flask-Babel keeps the chosen locale in the app context: where one spans several
    # requests (a test client inside an app context), each must choose again.
    app.before_request(refresh)


def current_language() -> str:
    """The language of what is being rendered now (``en`` or ``es``)."""
    return known(str(get_locale() or "")) or DEFAULT_LANGUAGE


def subscriber_language(language: str | None) -> str:
    """The language to write to a subscriber in: the one stored, else the default."""
    return known(language) or DEFAULT_LANGUAGE


def use_subscriber_language(language: str | None) -> None:
    """This page is about a subscriber: speak their stored language unless the reader chose
    one with the switch (call before anything is translated, or it is re-read)."""
    g.subscriber_language = language
    refresh()


def remember_choice(response: Response) -> Response:
    """Keep the language chosen with the switch in a cookie, for the pages after this one."""
    chosen = known(request.args.get(SWITCH))
    if chosen and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(
            COOKIE,
            chosen,
            max_age=COOKIE_MAX_AGE,
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


def language_links() -> list[dict[str, Any]]:
    """The switch: this page in each language, marking the current one.

    Each link is a query-only reference (``?lang=es``, keeping the page's other query
    arguments), so it opens the same path by GET, whatever the path, and the page tells
    nothing about where it is (a 404 for an issue kept out reads like any other 404).
    """
    current = current_language()
    args = [(key, value) for key, value in request.args.items(multi=True) if key != SWITCH]
    return [
        {
            "code": code,
            "name": name,
            "href": "?" + urlencode([*args, (SWITCH, code)]),
            "current": code == current,
        }
        for code, name in LANGUAGES.items()
    ]
