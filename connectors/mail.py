"""Email over SMTP (the standard library's smtplib), configured by one variable, SMTP_URL:

    smtp://user:password@host:587?starttls=1   plain connection upgraded with STARTTLS
    smtps://user:password@host                 TLS from the first byte (port 465 by default)
    smtp://host:25                             no login, no TLS (a local relay)

User and password are percent-decoded (`%40` for `@`). `timeout=SECONDS` may be added to the
query. The URL is never logged: `describe()` shows it with the password hidden.

Failures are sorted as the GitHub ones are (connectors/comments.py): `Transient` (server down,
timeout, 4xx reply) is retried later; `Refused` (5xx reply: recipient or sender refused,
authentication failed) is a verdict. A Message-ID derived from client, month and re-send
number marks every copy, so a retry after an unknown outcome is recognisable as the same mail.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

SMTP_URL_ENV = "SMTP_URL"
DEFAULT_TIMEOUT = 30.0
_TRUE = {"1", "true", "yes", "on"}


class MailNotConfigured(RuntimeError):
    pass


class MailError(Exception):
    pass


class Transient(MailError):
    pass


class Refused(MailError):
    pass


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: bool  # smtps: TLS from the start
    starttls: bool
    user: str | None
    password: str | None
    timeout: float

    def describe(self) -> str:
        scheme = "smtps" if self.tls else "smtp"
        who = f"{self.user}:***@" if self.user else ""
        return f"{scheme}://{who}{self.host}:{self.port}" + ("?starttls=1" if self.starttls else "")


def parse_url(url: str) -> SmtpSettings:
    """SMTP_URL's parts; ValueError (without the password) when it is not one."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("SMTP_URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL has a port that is not a number") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "timeout"}
    if unknown:
        raise ValueError(f"SMTP_URL has unknown options {sorted(unknown)} (starttls, timeout)")
    tls = parts.scheme == "smtps"
    starttls = query.get("starttls", "").lower() in _TRUE
    if tls and starttls:
        raise ValueError("SMTP_URL: smtps:// is TLS already; starttls is for smtp://")
    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
    except ValueError:
        raise ValueError("SMTP_URL: timeout must be a number of seconds") from None
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if tls else 587 if starttls else 25),
        tls=tls,
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def from_env(env=None) -> SmtpSettings:
    env = os.environ if env is None else env
    url = env.get(SMTP_URL_ENV)
    if not url:
        raise MailNotConfigured(f"set {SMTP_URL_ENV} (smtp://user:password@host:port) to send")
    return parse_url(url)


def message_id(client: str, month: str, resend: int, domain: str) -> str:
    """The same for every attempt of one send, different for a deliberate re-send."""
    suffix = f".resend{resend}" if resend else ""
    return f"<trackrecord-report.{client}.{month}{suffix}@{domain}>"


def build_message(
    *, sender: str, to: list[str], subject: str, text: str, msg_id: str,
    attachment: bytes, filename: str,
) -> EmailMessage:  # fmt: skip
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = msg_id
    msg.set_content(text)
    msg.add_attachment(attachment, maintype="application", subtype="pdf", filename=filename)
    return msg


def send(settings: SmtpSettings, msg: EmailMessage) -> None:
    """Hand the message to the server; Transient or Refused on failure."""
    try:
        if settings.tls:
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                    context=ssl.create_default_context())  # fmt: skip
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = f"recipients refused: {sorted(exc.recipients)} {codes}"
        raise (Transient if all(400 <= c < 500 for c in codes) else Refused)(detail) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, auth failed
        detail = f"{exc.smtp_code} {exc.smtp_error!r}"[:500]
        raise (Transient if 400 <= exc.smtp_code < 500 else Refused)(detail) from exc
    except (smtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
        raise Transient(f"{type(exc).__name__}: {exc}"[:500]) from exc
