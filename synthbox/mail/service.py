"""EmailService: record an email and queue its delivery; the seed's email queue service.

An email is a record first (with its Message-ID fixed before any attempt), then a job
of the `email` queue whose data is the seed's `{queueId, priority, userId}`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from email.utils import make_msgid
from typing import Any

from synthbox.accounts.audit import record_by
from synthbox.actors import SYSTEM, Actor
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.jobs.options import HIGH_PRIORITY
from synthbox.jobs.service import JOB_ID, LegacyServiceMethods, QueueService
from synthbox.mail.addresses import address, domain_of
from synthbox.mail.delivery import suppressed
from synthbox.mail.fields import check_email
from synthbox.mail.models import (
    EMAIL_STATES,
    FAILED,
    QUEUED,
    SENDING,
    SUPPRESSED,
    UNCERTAIN,
    Email,
)
from synthbox.mail.models import Suppression as SuppressionEntry
from synthbox.mail.templates import render

EMAIL_QUEUE = "email"
SEND = "send"


def email_dict(email: Email) -> dict[str, Any]:
    def ms(value: float | None) -> int | None:
        return None if value is None else int(value * 1000)

    return {"id": str(email.id), "messageId": email.message_id, "from": email.from_addr,
            "to": json.loads(email.to), "cc": json.loads(email.cc),
            "bcc": json.loads(email.bcc), "replyTo": email.reply_to, "subject": email.subject,
            "text": email.text, "html": email.html, "headers": json.loads(email.headers),
            "tags": json.loads(email.tags), "userId": email.user_id, "priority": email.priority,
            "sendAt": ms(email.send_at),
            "idempotencyKey": None if email.idempotency_key is None
            else email.idempotency_key.split("\n", 1)[-1],
            "state": email.state, "serverReply": email.server_reply,
            "attemptsMade": email.attempts,
            "attempts": email.attempts,  # deprecated: attemptsMade (a job's attempts is the limit)
            "lastError": email.last_error,
            "jobId": None if email.job_id is None else str(email.job_id),
            "createdAt": ms(email.created_at), "sentAt": ms(email.sent_at)}


class EmailService(LegacyServiceMethods):
    def __init__(self, queue: QueueService, default_from: str):
        """`queue`: the email queue's service; `default_from`: the mail_from setting."""
        self.queue = queue
        self.db = queue.store.db
        self.default_from = default_from

    # -- sending --------------------------------------------------------------------------

    def send(self, payload: dict[str, Any], caller: str = "") -> dict[str, Any]:
        """Record and queue one email. An idempotency key the same caller used before for
        the same email answers that email; for a different one, a Conflict."""
        return self.send_bulk([payload], caller, single=True)[0]

    def send_bulk(self, payloads: list[Any], caller: str = "",
                  single: bool = False) -> list[dict[str, Any]]:
        """All or none: every email is checked before any is recorded."""
        now = time.time()
        checked = [self._check(p, "" if single else f"emails[{i}].", now)
                   for i, p in enumerate(payloads)]
        results: list[Email] = []
        run_times = []
        with self.db.atomic():
            for fields in checked:
                existing = self._same_request(fields, caller)
                if existing is not None:
                    results.append(existing)
                    continue
                results.append(self._record(fields, now))
                if results[-1].state == QUEUED:
                    run_times.append(fields["send_at"])
        answer = [email_dict(Email.get_by_id(e.id)) for e in results]
        if run_times:
            self.queue.announce(run_times)  # after the commit, and after reading them back
        return answer

    @staticmethod
    def _same_request(fields: dict[str, Any], caller: str) -> Email | None:
        """Keys belong to their caller; `fields` gets the scoped key and the request hash."""
        key = fields.pop("idempotency_key")
        fields["request_hash"] = hashlib.sha256(json.dumps(
            {k: v for k, v in fields.items() if k != "send_at"}, sort_keys=True,
            default=str).encode()).hexdigest()
        fields["idempotency_key"] = None if key is None else f"{caller}\n{key}"
        if key is None:
            return None
        existing = Email.get_or_none(Email.idempotency_key == fields["idempotency_key"])
        if existing is not None and existing.request_hash != fields["request_hash"]:
            raise Conflict("idempotencyKey: already used for a different email")
        return existing

    def _record(self, fields: dict[str, Any], now: float) -> Email:
        recipients = fields["to"] + fields["cc"] + fields["bcc"]
        blocked = suppressed(recipients)
        state = SUPPRESSED if len(blocked) == len(recipients) else QUEUED
        domain = domain_of(fields["from_addr"])
        email = Email.create(**{**fields, "to": json.dumps(fields["to"]),
                                "cc": json.dumps(fields["cc"]), "bcc": json.dumps(fields["bcc"])},
                             message_id=make_msgid(domain=domain), state=state,
                             created_at=now, updated_at=now)
        if state == SUPPRESSED:
            email.last_error = "every recipient is suppressed"
            email.save()
            return email
        self._enqueue(email)
        return email

    def _enqueue(self, email: Email) -> None:
        job = self.queue.add_bulk([{
            "name": SEND, "data": {"queueId": str(email.id), "priority": email.priority,
                                   "userId": email.user_id},
            "priority": email.priority, "run_at": email.send_at,
            "key": f"email-{email.id}-{secrets.token_hex(8)}"}], announce=False)[0]
        Email.update(job_id=int(job["id"])).where(Email.id == email.id).execute()

    def _check(self, payload: Any, prefix: str, now: float) -> dict[str, Any]:
        """The request checked, its template (if it names one) rendered first."""
        if isinstance(payload, dict) and "template" in payload:
            for own in ("subject", "text", "html"):
                if own in payload:
                    raise InputError(prefix + own, "comes from the template; leave it out")
            payload = {**payload, **render(payload["template"], payload.get("variables"),
                                           prefix)}
            payload.pop("template")
            payload.pop("variables", None)
        return check_email(payload, prefix, now, self.default_from)

    # -- reading and changing -------------------------------------------------------------

    def get(self, email_id: str) -> dict[str, Any]:
        email = Email.get_or_none(Email.id == int(email_id)) if JOB_ID.fullmatch(
            email_id) else None
        if email is None:
            raise NotFound(f"email: no email {email_id!r}")
        return email_dict(email)

    def list_emails(self, state: str | None = None, limit: int = 50,
             before: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
        query = Email.select().order_by(Email.id.desc()).limit(limit + 1)
        if state is not None:
            if state not in EMAIL_STATES:
                raise InputError("state", f"must be one of {', '.join(EMAIL_STATES)}")
            query = query.where(Email.state == state)
        if before is not None:
            query = query.where(Email.id < before)
        rows = list(query)
        page = [email_dict(e) for e in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)

    def resend(self, email_id: str, actor: Actor = SYSTEM) -> dict[str, Any]:
        """Send a failed or uncertain email again, knowingly (same Message-ID); also one
        left queued or sending by a job that is gone or finished."""
        current = self.get(email_id)
        job = self.queue.get_job(int(current["jobId"])) if current["jobId"] else None
        stuck = current["state"] in (QUEUED, SENDING) and (
            job is None or job["state"] in ("completed", "failed"))
        if current["state"] not in (FAILED, UNCERTAIN) and not stuck:
            raise Conflict("email: only a failed, uncertain or stuck email can be resent")
        with self.db.atomic():
            Email.update(state=QUEUED, last_error=None, send_at=time.time()).where(
                Email.id == int(email_id)).execute()
            self._enqueue(Email.get_by_id(int(email_id)))
        self.queue.announce([time.time()])
        record_by(actor, "email.resend", f"email:{email_id}")
        return self.get(email_id)

    def suppress(self, entry: str, reason: str = "", actor: Actor = SYSTEM) -> None:
        """Never send to an address (`a@b.c`) or a domain (`@b.c`) again."""
        if entry.startswith("@"):
            address("x" + entry, "entry")
        else:
            address(entry, "entry")
        SuppressionEntry.insert(entry=entry.lower(), reason=reason, created_at=time.time()
                                ).on_conflict_replace().execute()
        record_by(actor, "email.suppress", f"suppression:{entry}")

    @staticmethod
    def list_suppressions() -> list[dict[str, Any]]:
        return [{"entry": e.entry, "reason": e.reason, "createdAt": int(e.created_at * 1000)}
                for e in SuppressionEntry.select().order_by(SuppressionEntry.entry)]

    @staticmethod
    def unsuppress(entry: str, actor: Actor = SYSTEM) -> None:
        if not SuppressionEntry.delete().where(
                SuppressionEntry.entry == entry.lower()).execute():
            raise NotFound(f"entry: {entry!r} is not on the suppression list")
        record_by(actor, "email.unsuppress", f"suppression:{entry}")

    # -- the seed's EmailQueueService -----------------------------------------------------

    def add_high_priority(self, data: dict[str, Any]) -> dict[str, Any]:
        """Queue the email record `data["queueId"]` at priority 10."""
        return self._queue_record(data, HIGH_PRIORITY, None)

    def schedule_email(self, data: dict[str, Any], when: float) -> dict[str, Any]:
        """Queue the email record `data["queueId"]` to be sent at Unix time `when`."""
        return self._queue_record(data, data.get("priority", 0), when)

    def _queue_record(self, data: dict[str, Any], priority: int,
                      when: float | None) -> dict[str, Any]:
        email = Email.get_or_none(Email.id == int(data.get("queueId", 0)))
        if email is None:
            raise NotFound(f"email: no email {data.get('queueId')!r}")
        return self.queue.add(SEND, {"queueId": str(email.id), "priority": priority,
                                     "userId": data.get("userId", email.user_id)},
                              priority=priority, **({"run_at": when} if when else {}))

