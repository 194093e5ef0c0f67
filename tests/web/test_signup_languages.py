"""Welcome mail on confirmation, and the public pages and subscribers' mail in their language.

The language comes from the switch (``?lang=``, then a cookie), else the subscriber's stored
language on the pages of their links, else Accept-Language; mail goes out in the stored one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from newsletter import queue
from newsletter.audience import welcome
from newsletter.audience.models import MailingList, OptIn, Subscriber, SubscriptionStatus
from newsletter.audience.tokens import manage_url, unsubscribe_url
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.helpers import csrf_token_from
from tests.smtp import CapturedMessage, CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin, token_for

BASE = "https://news.example.org"


def page(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def sign_up(client: FlaskClient, email: str, slug: str, language: str | None = None) -> None:
    headers = {"Accept-Language": language} if language else {}
    token = csrf_token_from(page(client.get("/subscribe", headers=headers)))
    response = client.post(
        "/subscribe",
        data={"email": email, "lists": [slug], "csrf_token": token},
        headers={**headers, "Referer": f"{BASE}/subscribe"},
    )
    assert response.status_code == 200


def text_of(mail: CapturedMessage) -> str:
    return str(mail.message.get_body(preferencelist=("plain",)).get_content())


def html_of(mail: CapturedMessage) -> str:
    return str(mail.message.get_body(preferencelist=("html",)).get_content())


def confirm_from(client: FlaskClient, mail: CapturedMessage, again: bool = False) -> None:
    """Open the mailed link and press its button (``again``: post it once more)."""
    link = re.search(rf"{re.escape(BASE)}(/confirm/\S+)", text_of(mail))
    assert link, text_of(mail)
    path = link.group(1)
    token = csrf_token_from(page(client.get("/subscribe" if again else path)))
    assert client.post(path, data={"csrf_token": token},
                       headers={"Referer": f"{BASE}{path}"}).status_code == 200


@pytest.fixture
def welcoming(app: Flask) -> MailingList:
    return make_list(
        "news", name="Movement News", welcome_enabled=True,
        welcome_text="We write once a week.\n\nReply to this mail any time.",
    )


# The welcome mail.


def test_confirming_sends_the_welcome_mail_once_in_the_subscribers_language(
    client: FlaskClient, welcoming: MailingList, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    sign_up(client, "ana@example.org", "news", language="es-ES,es;q=0.9,en;q=0.5")
    ana = db.session.scalars(select(Subscriber)).one()
    assert ana.language == "es"  # the page she used
    run_jobs()
    [confirmation] = mailbox.to("ana@example.org")
    assert confirmation.message["Subject"] == "Confirma tu suscripción a Movement News"
    assert "Alguien, probablemente tú, ha pedido suscribir esta dirección" in text_of(confirmation)
    assert "Confirmar mi suscripción" in html_of(confirmation)
    assert '<html lang="es"' in html_of(confirmation)

    confirm_from(client, confirmation)
    run_jobs()
    mails = mailbox.to("ana@example.org")
    assert len(mails) == 2
    greeting = mails[1]
    assert greeting.message["Subject"] == "Te damos la bienvenida a Movement News"
    body = text_of(greeting)
    assert "We write once a week." in body and "Reply to this mail any time." in body
    assert "Gestiona tus suscripciones aquí" in body
    assert f"{BASE}/manage/" in body and "/manage/" in html_of(greeting)

    # A retried or repeated job, and pressing the button again, mail nothing more.
    db.session.expire_all()
    ana = db.session.scalars(select(Subscriber)).one()
    queue.enqueue("send_welcome", ana.id, welcoming.id)
    welcome.send_welcome(ana.id, welcoming.id)
    confirm_from(client, confirmation, again=True)
    run_jobs()
    assert len(mailbox.to("ana@example.org")) == 2


def test_the_welcome_mail_takes_the_lists_subject_and_speaks_english_by_default(
    client: FlaskClient, welcoming: MailingList, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    welcoming.welcome_subject = "Hello from the movement"
    welcoming.welcome_text = ""
    db.session.commit()
    sign_up(client, "ada@example.org", "news")
    run_jobs()
    [confirmation] = mailbox.to("ada@example.org")
    assert confirmation.message["Subject"] == "Please confirm your subscription to Movement News"
    confirm_from(client, confirmation)
    run_jobs()
    greeting = mailbox.to("ada@example.org")[1]
    assert greeting.message["Subject"] == "Hello from the movement"
    assert "Thank you for confirming: you'll now receive Movement News from Example News." \
        in text_of(greeting)


def test_lists_without_a_welcome_mail_send_none(
    client: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    make_list("news", name="Movement News")
    sign_up(client, "ada@example.org", "news")
    run_jobs()
    confirm_from(client, mailbox.to("ada@example.org")[0])
    run_jobs()
    assert len(mailbox.to("ada@example.org")) == 1


def test_an_admin_turns_the_welcome_mail_on_for_a_list(app: Flask) -> None:
    make_list("news", name="Movement News")
    admin = logged_in_admin(app)
    path = "/admin/lists/news/signup"
    response = admin.post(path, data={
        "csrf_token": token_for(admin, path), "welcome_enabled": "y",
        "welcome_subject": "Welcome aboard", "welcome_text": "Hello!",
    })
    assert response.status_code == 302
    db.session.expire_all()
    lst = db.session.scalars(select(MailingList)).one()
    assert (lst.welcome_enabled, lst.welcome_subject, lst.welcome_text) == (
        True, "Welcome aboard", "Hello!")
    assert 'value="Welcome aboard"' in page(admin.get(path))


# Languages of the pages.


def test_the_signup_page_speaks_the_browsers_language(client: FlaskClient) -> None:
    make_list("news", name="Movement News")
    spanish = page(client.get("/subscribe", headers={"Accept-Language": "es-MX,es;q=0.8"}))
    assert '<html lang="es">' in spanish
    assert "Suscríbete a Example News" in spanish
    assert "Correo electrónico" in spanish and "Suscribirse</button>" in spanish
    english = page(client.get("/subscribe", headers={"Accept-Language": "de, en;q=0.5"}))
    assert '<html lang="en">' in english and "Email address" in english
    assert "Email address" in page(client.get("/subscribe"))  # no header: English


def test_the_switch_on_every_page_chooses_and_remembers_the_language(client: FlaskClient) -> None:
    make_list("news", name="Movement News")
    for path in ("/subscribe", "/archive", "/subscribe/thanks", "/archive/12345"):
        html = page(client.get(path))
        assert '<a href="?lang=es" hreflang="es" lang="es">Español</a>' in html, path
    chosen = client.get("/subscribe?lang=es", headers={"Accept-Language": "en"})
    assert "Suscríbete a Example News" in page(chosen)
    assert "lang=es" in chosen.headers["Set-Cookie"]
    # Remembered on the next pages, whatever the browser says.
    later = page(client.get("/archive", headers={"Accept-Language": "en"}))
    assert "Números anteriores" in later
    assert '<a href="?lang=en" hreflang="en" lang="en">English</a>' in later
    assert "Past issues" in page(client.get("/archive?lang=en"))
    assert "Past issues" in page(client.get("/archive"))


def test_a_link_page_speaks_the_subscribers_stored_language(client: FlaskClient) -> None:
    news = make_list("news", name="Movement News")
    ana = make_subscriber("ana@example.org", lists=(news,), status=SubscriptionStatus.CONFIRMED,
                          language="es")
    manage = page(client.get(manage_url(ana.id, version=0).removeprefix(BASE)))
    assert "Tus suscripciones" in manage and "Guardar preferencias" in manage
    unsubscribe = page(client.get(unsubscribe_url(ana.id, news.id, version=0).removeprefix(BASE)))
    assert "Darse de baja de Movement News" in unsubscribe
    # Her own choice on the page wins over what we stored.
    assert "Your subscriptions" in page(
        client.get(manage_url(ana.id, version=0).removeprefix(BASE) + "?lang=en"))


def test_spanish_answers_escape_what_they_carry(client: FlaskClient) -> None:
    make_list("news", name="<b>News</b>", optin=OptIn.DOUBLE)
    html = page(client.get("/subscribe?lang=es"))
    assert "&lt;b&gt;News&lt;/b&gt;" in html and "<b>News</b>" not in html
    token = csrf_token_from(html)
    answer = client.post("/subscribe", data={"email": "x<y@example.org", "lists": ["news"],
                                             "csrf_token": token},
                         headers={"Referer": f"{BASE}/subscribe"})
    assert answer.status_code == 400 and "No parece una dirección de correo" in page(answer)


def test_saving_preferences_keeps_the_language_the_page_was_in(client: FlaskClient) -> None:
    news = make_list("news", name="Movement News")
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.CONFIRMED)
    path = manage_url(ada.id, version=0).removeprefix(BASE)
    token = csrf_token_from(page(client.get(path + "?lang=es")))  # she switched to Spanish
    saved = client.post(path, data={"csrf_token": token, "name": "Ada", "lists": ["news"]},
                        headers={"Referer": f"{BASE}{path}"})
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Subscriber, ada.id).language == "es"
    assert "Tus preferencias se han guardado." in page(client.get(path))
