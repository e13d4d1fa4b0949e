"""`synthbox emails`: send, check SMTP, suppress."""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path
from typing import Any

import click

from synthbox.actors import CLI
from synthbox.checks import flag_for, parse_duration
from synthbox.cli.base import (
    BadInput,
    resolve_settings,
    settings_options,
    with_engine,
)
from synthbox.errors import InputError
from synthbox.mail.fields import EMAIL_FIELDS
from synthbox.mail.transport import SmtpPool, parse_servers
from synthbox.services import get_email_queue_service


@click.group("emails")
def email_group() -> None:
    """Send email through the email queue, check SMTP, manage suppressions."""


@email_group.command("send")
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--subject", required=True)
@click.option("--text", default=None, help="The plain-text body.")
@click.option("--html-file", default=None, help="A file holding the HTML body.")
@click.option("--from", "sender", default=None, help="Sender (default: mail_from).")
@click.option("--at", "send_at", default=None,
              help="Send later: an ISO time (2026-12-25T09:00:00Z) or a delay (15m, 2h).")


@click.option("--priority", type=int, default=0, help="0-10, higher is sent first.")
@with_engine
def send_email_command(engine: Any, to: tuple[str, ...], subject: str, text: str | None,
                       html_file: str | None, sender: str | None, send_at: str | None,
                       priority: int, **_: Any) -> None:
    """Queue an email and print its id."""

    payload: dict[str, Any] = {"to": list(to), "subject": subject, "priority": priority}
    if sender:
        payload["from"] = sender
    if text is not None:
        payload["text"] = text
    if html_file is not None:
        try:
            payload["html"] = Path(html_file).read_text()
        except OSError as exc:
            raise BadInput(f"--html-file: cannot read {html_file} ({exc.strerror})") from None
    if send_at:
        try:
            payload["sendAt"] = (time.time() + parse_duration(send_at)) * 1000
        except ValueError:
            try:
                stamp = datetime.datetime.fromisoformat(send_at.replace("Z", "+00:00"))
            except ValueError:
                raise BadInput("--at: must be an ISO time or a delay such as 15m") from None
            payload["sendAt"] = stamp.timestamp() * 1000
    try:
        email = get_email_queue_service(engine).send(payload)
    except InputError as exc:
        raise BadInput(f"{flag_for(EMAIL_FIELDS, exc.field)}: {exc.rule}") from None
    click.echo(email["id"])


@email_group.command("test-smtp")
@settings_options
def test_smtp_command(**options: Any) -> None:
    """Connect to each configured SMTP server and say what it offers."""
    settings = resolve_settings(options)
    servers = parse_servers(settings.smtp_url)
    if not servers:
        raise BadInput("smtp_url: no SMTP server configured (--smtp-url or SYNTHBOX_SMTP_URL)")
    lines = SmtpPool(servers, settings.smtp_timeout, settings.smtp_ca_file).describe()
    for line in lines:
        click.echo(line)
    sys.exit(0 if all(": ok;" in line for line in lines) else 1)


@email_group.command("suppress")
@click.argument("entry")
@click.option("--reason", default="", help="Why (shown to admins).")
@with_engine
def suppress_command(engine: Any, entry: str, reason: str, **_: Any) -> None:
    """Never send to ADDRESS, or to any address @DOMAIN, again."""
    try:
        get_email_queue_service(engine).suppress(entry, reason, actor=CLI)
    except InputError as exc:
        raise BadInput(f"ENTRY: {exc.rule}") from None
    click.echo(f"suppressed {entry}")
