"""Auto-replies and out-of-office notices: mail a program wrote back, not a bounce.

Read from the outer headers only: a returned copy of our own mail carries
``Auto-Submitted: auto-generated`` too. The caller asks only about messages that are not
delivery reports (an MTA marks its bounces ``Auto-Submitted: auto-replied`` as well).
"""

from __future__ import annotations

import re
from email.message import Message

from newsletter.delivery.bounces import reading

#: headers whose presence (with any value but ``no``) marks an automatic answer
_FLAG_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")
#: subjects of automatic answers in the languages our readers write (at the start, after
#: an ``AW:``/``RE:``-style prefix some clients add)
_SUBJECT = re.compile(
    r"^(?:(?:re|aw|sv|vs|antw|rif|r|wg|fw|fwd)\s*:\s*)*(?:"
    r"auto(?:matic|matische|matisch|matique)?[ -]?(?:reply|response|answer|antwort|antwoord|"
    r"réponse|reponse)|autoreply|auto:|"
    r"out of (?:the )?office|ooo\b|away from (?:the |my )?(?:office|desk)|on vacation|"
    r"vacation|abwesen|nicht im büro|"
    r"respuesta autom[aá]tica|fuera de la oficina|ausente|"
    r"r[ée]ponse automatique|absence|absent|"
    r"risposta automatica|fuori (?:sede|ufficio)|"
    r"resposta autom[aá]tica|fora do escrit[oó]rio|"
    r"automatisch antwoord|afwezig|"
    r"autosvar|automatisk svar|fraværende|frånvaro|"
    r"automaattinen vastaus|poissa|"
    r"odpowied[zź] automatyczna|automatická odpověď|"
    r"otomatik yanıt|автоответ|автоматический ответ|自动回复|自動応答|不在"
    r")",
    re.IGNORECASE,
)
#: Lotus Notes and others: "Jane Doe is out of the office."
_SUBJECT_ANYWHERE = re.compile(
    r"\bis (?:currently )?(?:out of (?:the )?office|away|on (?:vacation|holiday|leave))\b",
    re.IGNORECASE,
)


def reason(message: Message) -> str | None:
    """Why ``message`` is an automatic answer, or None when nothing says it is."""
    submitted = reading.header(message, "Auto-Submitted").split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return f"Auto-Submitted: {submitted}"
    for name in _FLAG_HEADERS:
        value = reading.header(message, name)
        if name in message and value.lower() != "no":
            return f"{name}: {value}" if value else name
    precedence = reading.header(message, "Precedence").strip().lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    subject = reading.header(message, "Subject")
    if _SUBJECT.search(subject) or _SUBJECT_ANYWHERE.search(subject):
        if precedence in ("bulk", "junk", "list"):
            return f"Precedence: {precedence} and an automatic answer's subject"
        return "an automatic answer's subject"
    if reading.header(message, "X-Auto-Response-Suppress") and precedence in ("bulk", "junk"):
        # Exchange's out-of-office notices in a language the subjects above miss.
        return f"X-Auto-Response-Suppress with Precedence: {precedence}"
    return None
