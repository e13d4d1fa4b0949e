"""Email records and the suppression list."""

from __future__ import annotations

from peewee import BigAutoField, CharField, DoubleField, IntegerField, TextField

from synthbox.records.database import tables_step
from synthbox.records.models import BaseModel

# queued -> sending -> sent | failed; suppressed at enqueue or before sending; uncertain when
# a sender died mid-send (not sent again on its own: an admin decides, see README)
QUEUED, SENDING, SENT, FAILED, SUPPRESSED, UNCERTAIN = (
    "queued", "sending", "sent", "failed", "suppressed", "uncertain")
EMAIL_STATES = (QUEUED, SENDING, SENT, FAILED, SUPPRESSED, UNCERTAIN)


class Email(BaseModel):
    id = BigAutoField()
    message_id = CharField(max_length=255, unique=True)
    from_addr = CharField(max_length=320)
    to = TextField()  # JSON lists of addresses
    cc = TextField(default="[]")
    bcc = TextField(default="[]")
    reply_to = CharField(max_length=320, null=True)
    subject = TextField()
    text = TextField(null=True)
    html = TextField(null=True)
    headers = TextField(default="{}")
    tags = TextField(default="[]")
    user_id = CharField(max_length=128, null=True)
    priority = IntegerField(default=0)
    send_at = DoubleField()
    idempotency_key = CharField(max_length=255, null=True, unique=True)
    state = CharField(max_length=16, default=QUEUED)
    server_reply = TextField(null=True)
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)
    job_id = IntegerField(null=True)
    sending_job = IntegerField(null=True)  # the job that set `sending` (the crash rule)
    request_hash = CharField(max_length=64, null=True)  # what the idempotency key stood for
    created_at = DoubleField()
    updated_at = DoubleField()
    sent_at = DoubleField(null=True)


class Suppression(BaseModel):
    """An address (`a@b.c`) or a whole domain (`@b.c`) that is never sent to."""

    entry = CharField(max_length=320, primary_key=True)
    reason = TextField(default="")
    created_at = DoubleField()


class EmailTemplate(BaseModel):
    """A named email: subject, text and HTML with {{ variables }} (sandboxed Jinja)."""

    name = CharField(max_length=64, primary_key=True)
    subject = TextField()
    text = TextField(null=True)
    html = TextField(null=True)
    updated_at = DoubleField()


MAIL_MODELS = (Email, Suppression, EmailTemplate)

# Append only (see synthbox/db.py): applied by every engine this domain is assembled into.
MIGRATIONS = (tables_step("mail.tables", MAIL_MODELS),)
