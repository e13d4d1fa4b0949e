"""The email queue's handler: turn an email record into one SMTP delivery.

Crash rule: the record says `sending` before the message goes to the server. An attempt
that finds `sending` knows an earlier one stopped mid-send (its process died), so the
server may or may not have the message: the email becomes `uncertain` and is not sent
again on its own. An admin resends it knowingly (POST /api/v1/emails/{id}/resend), which
keeps its Message-ID so receivers can tell a duplicate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import RetryLater, UnrecoverableError
from synthbox.mail.addresses import domain_of
from synthbox.mail.headers import VERIFYING
from synthbox.mail.limits import take_domain_slot
from synthbox.mail.models import (
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    SUPPRESSED,
    UNCERTAIN,
    Email,
    Suppression,
)
from synthbox.mail.transport import (
    PermanentSmtpError,
    SmtpPool,
    TemporarySmtpError,
    UncertainSmtpError,
)


def suppressed(addresses: list[str]) -> set[str]:
    """Which of `addresses` are on the suppression list (by address or by @domain)."""
    if not addresses:
        return set()
    keys = {a.lower() for a in addresses} | {"@" + domain_of(a) for a in addresses}
    found = {s.entry for s in Suppression.select(Suppression.entry).where(
        Suppression.entry.in_(list(keys)))}
    return {a for a in addresses if a.lower() in found or "@" + domain_of(a) in found}


def build_message(email: Email) -> EmailMessage:
    """The message to send; a ValueError if a header would break out of its line (a record
    written before its values were checked in their decoded form)."""
    message = EmailMessage(policy=VERIFYING)
    message["Message-ID"] = email.message_id
    message["Date"] = formatdate(email.created_at, localtime=False)
    message["From"] = email.from_addr
    for header, field in (("To", email.to), ("Cc", email.cc)):
        addresses = json.loads(field)
        if addresses:
            message[header] = ", ".join(addresses)
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message["Subject"] = email.subject
    for name, value in json.loads(email.headers).items():
        message[name] = value
    if email.text is not None:
        message.set_content(email.text)
    if email.html is not None:
        if email.text is None:
            message.set_content(email.html, subtype="html")
        else:
            message.add_alternative(email.html, subtype="html")
    for name, value in message.raw_items():  # as they will be written, before SENDING
        VERIFYING.fold_binary(name, value)
    return message


def _set(email_id: int, **changes: Any) -> int:
    return Email.update(updated_at=time.time(), **changes).where(Email.id == email_id).execute()


def make_deliver(pool: SmtpPool, domain_limits: dict[str, list[float]] | None = None
                 ) -> Callable[[JobContext], dict[str, Any]]:
    domain_limits = domain_limits or {}

    def deliver(job: JobContext) -> dict[str, Any]:
        data = job.data if isinstance(job.data, dict) else {}
        email = Email.get_or_none(Email.id == data.get("queueId"))
        if email is None:
            raise UnrecoverableError(f"no email record {data.get('queueId')!r}")
        if email.state == SENT:  # a duplicate job: never send twice
            return {"success": True, "messageId": email.message_id}
        if email.state in (SUPPRESSED, UNCERTAIN):
            return {"success": False, "error": f"email is {email.state}"}
        if email.state == SENDING:
            if email.sending_job != job.id:  # a second job for the same email: leave it be
                return {"success": False, "error": "another job is sending this email"}
            _set(email.id, state=UNCERTAIN, last_error="delivery uncertain: an earlier attempt "
                 "stopped mid-send; resend it from the admin if it did not arrive")
            raise UnrecoverableError("delivery uncertain: an earlier attempt stopped mid-send")
        recipients = json.loads(email.to) + json.loads(email.cc) + json.loads(email.bcc)
        blocked = suppressed(recipients)
        recipients = [r for r in recipients if r not in blocked]
        if not recipients:
            _set(email.id, state=SUPPRESSED, last_error="every recipient is suppressed")
            return {"success": False, "error": "every recipient is suppressed"}
        for domain in sorted({domain_of(r) for r in recipients} & set(domain_limits)):
            limit, window = domain_limits[domain]
            wait = take_domain_slot(domain, int(limit), float(window))
            if wait:
                raise RetryLater(wait, f"{domain}: {int(limit)} per {window:g} s reached")
        try:
            message = build_message(email)
        except (ValueError, TypeError) as exc:  # nothing was sent: say why, do not retry
            _set(email.id, state=FAILED, last_error=f"cannot build the message: {exc}")
            raise UnrecoverableError(f"cannot build the message: {exc}") from None
        claimed = Email.update(state=SENDING, sending_job=job.id, attempts=Email.attempts + 1,
                               updated_at=time.time()).where(
            Email.id == email.id, Email.state.in_([QUEUED, FAILED])).execute()
        if not claimed:
            return {"success": False, "error": "email changed state meanwhile"}
        try:
            reply, refused = pool.send(message, recipients)
        except PermanentSmtpError as exc:
            _set(email.id, state=FAILED, last_error=str(exc))
            raise UnrecoverableError(str(exc)) from None
        except UncertainSmtpError as exc:
            _set(email.id, state=UNCERTAIN, last_error=f"delivery uncertain: {exc}")
            raise UnrecoverableError(f"delivery uncertain: {exc}") from None
        except TemporarySmtpError as exc:
            final = job.attempt >= job.attempts
            _set(email.id, state=FAILED if final else QUEUED, last_error=str(exc))
            raise
        except BaseException as exc:  # anything else before the server answered: unsent
            _set(email.id, state=QUEUED, last_error=f"{type(exc).__name__}: {exc}")
            raise
        _set(email.id, state=SENT, server_reply=reply, sent_at=time.time(),
             last_error=f"some recipients refused: {refused}" if refused else None)
        return {"success": True, "messageId": email.message_id}

    return deliver
