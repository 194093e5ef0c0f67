"""The domain errors: one root, a tree under it, each carrying the data that explains it.

Services raise these; only the web layer and the CLI decide what a person sees.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Root of every error the project raises on purpose."""

    #: the input field at fault, when there is one (API errors name it)
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class ConfigError(NewsletterError):
    """A setting is wrong; start-up stops with one line naming it."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}", field=setting)
        self.setting = setting
        self.reason = reason


class ValidationError(NewsletterError):
    """Input that cannot be accepted as it is."""


class InvalidEmail(ValidationError):
    field = "email"

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address!r} is not a valid email address: {reason}", field="email")
        self.address = address
        self.reason = reason


class NotFound(NewsletterError):
    """A thing looked up by id or slug does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"no {kind} {key!r}")
        self.kind = kind
        self.key = key


class Conflict(NewsletterError):
    """The request clashes with what already exists (a taken slug, a sent issue)."""


class AlreadySubscribed(Conflict):
    def __init__(self, email: str, list_slug: str) -> None:
        super().__init__(f"{email} is already subscribed to {list_slug}", field="email")
        self.email = email
        self.list_slug = list_slug


class InvalidToken(NewsletterError):
    """A signed link that is forged, expired or meant for something else."""

    def __init__(self, purpose: str, reason: str) -> None:
        super().__init__(f"this {purpose} link is {reason}")
        self.purpose = purpose
        self.reason = reason


class InvalidCode(ValidationError):
    """A second-factor code (TOTP or recovery) that is wrong, or was used already."""

    def __init__(self, reason: str = "wrong") -> None:
        super().__init__(f"that code is {reason}", field="code")
        self.reason = reason


class TooManyAttempts(NewsletterError):
    """Too many wrong tries of a secret in a short time; try again after ``retry_after`` s."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many wrong {what}s; try again in {retry_after} seconds")
        self.what = what
        self.retry_after = retry_after


class InvalidStatement(ValidationError):
    """A Markdown file that cannot become a statement."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}", field="markdown")
        self.source = source
        self.reason = reason


class TemplateError(NewsletterError):
    """An email template that does not render (Jinja or MJML)."""

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"template {template!r}: {reason}", field="template")
        self.template = template
        self.reason = reason


class TemplateSourceError(ValidationError):
    """A template's source that does not compile, with where: ``part`` is ``mjml`` or
    ``text`` (also the ``field``), ``line`` the 1-based line of the source (None: unknown)."""

    def __init__(self, part: str, line: int | None, reason: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{part.upper() if part == 'mjml' else part}: {where}{reason}",
                         field=part)
        self.part = part
        self.line = line
        self.reason = reason


class EmptyAudience(ValidationError):
    """An issue whose lists hold nobody to send it to (no confirmed, active subscriber)."""

    def __init__(self, issue_id: int, list_names: list[str]) -> None:
        names = ", ".join(list_names) or "its lists"
        super().__init__(
            f"nobody would receive issue {issue_id}: {names} "
            f"{'has' if len(list_names) == 1 else 'have'} no confirmed subscriber; "
            "add subscribers or choose other lists", field="lists",
        )
        self.issue_id = issue_id
        self.list_names = list_names


class IssueStateError(Conflict):
    """An action that the issue's status does not allow (send a sent issue, edit one sending)."""

    def __init__(self, issue_id: int, status: str, action: str) -> None:
        super().__init__(f"issue {issue_id} is {status}; cannot {action}", field="status")
        self.issue_id = issue_id
        self.status = status
        self.action = action


class DeliveryError(NewsletterError):
    """A relay refused or failed a message."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(f"{code} {reply}")
        self.code = code
        self.reply = reply


class TemporaryDeliveryError(DeliveryError):
    """4xx or a lost connection: try again later."""


class PermanentDeliveryError(DeliveryError):
    """5xx: the address will not take this message; never retried."""


class RelayUnavailable(TemporaryDeliveryError):
    """No relay can take mail now (unreachable, closing, or over its rate limit).

    Not the recipient's fault: the message waits ``retry_after`` seconds without using up
    one of the recipient's attempts.
    """

    def __init__(self, code: int, reply: str, *, retry_after: float = 5.0) -> None:
        super().__init__(code, reply)
        self.retry_after = retry_after


class DomainBusy(RelayUnavailable):
    """As many messages to the recipient's domain are in flight as its cap allows."""


class AddressRefused(ValidationError):
    """An address the gate does not let in (blocklisted, or erased at the person's request).

    The public form answers it like a success (it tells nobody anything); the API and the
    admin pages say why.
    """

    field = "email"

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address} cannot be added: {reason}", field="email")
        self.address = address
        self.reason = reason
