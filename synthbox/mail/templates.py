"""Named email templates, rendered in a sandboxed Jinja environment: a template can use
the variables it is given and nothing else (no attribute tricks, no file access), within
a time and size budget, in a separate process (see rendering.py)."""

from __future__ import annotations

import time
from typing import Any

from jinja2 import TemplateError

from synthbox.accounts.audit import record_by
from synthbox.accounts.users import check_name
from synthbox.actors import SYSTEM, Actor
from synthbox.errors import InputError, NotFound, UnknownReference
from synthbox.mail.addresses import header_value
from synthbox.mail.models import EmailTemplate
from synthbox.mail.rendering import HTML as _HTML
from synthbox.mail.rendering import PLAIN as _PLAIN
from synthbox.mail.rendering import RenderError, renderer


def _compile(source: Any, field: str, html: bool = False) -> str | None:
    if source is None:
        return None
    if not isinstance(source, str) or len(source) > 1_000_000:
        raise InputError(field, "must be a string of at most 1,000,000 characters")
    try:
        (_HTML if html else _PLAIN).from_string(source)
    except TemplateError as exc:
        raise InputError(field, f"is not a valid template: {exc}") from None
    return source


def save_template(name: Any, subject: Any, text: Any, html: Any, actor: Actor = SYSTEM
                  ) -> dict[str, Any]:
    name = check_name(name)
    subject = _compile(header_value(subject, "subject") if subject is not None else None,
                       "subject")
    if subject is None:
        raise InputError("subject", "is required")
    text, html = _compile(text, "text"), _compile(html, "html", html=True)
    if text is None and html is None:
        raise InputError("text", "text or html is required")
    EmailTemplate.insert(name=name, subject=subject, text=text, html=html,
                         updated_at=time.time()).on_conflict_replace().execute()
    record_by(actor, "email.template", f"template:{name}")
    return template_dict(EmailTemplate.get_by_id(name))


def template_dict(template: EmailTemplate) -> dict[str, Any]:
    return {"name": template.name, "subject": template.subject, "text": template.text,
            "html": template.html, "updatedAt": int(template.updated_at * 1000)}


def list_templates() -> list[dict[str, Any]]:
    return [template_dict(t) for t in EmailTemplate.select().order_by(EmailTemplate.name)]


def delete_template(name: str, actor: Actor = SYSTEM) -> None:
    if not EmailTemplate.delete().where(EmailTemplate.name == name).execute():
        raise NotFound(f"template: no template named {name!r}")
    record_by(actor, "email.template-delete", f"template:{name}")


def render(name: Any, variables: Any, prefix: str = "") -> dict[str, str | None]:
    """Subject, text and HTML of template `name` with `variables` (HTML escaped)."""
    if not isinstance(name, str):
        raise InputError(prefix + "template", "must be a template name")
    template = EmailTemplate.get_or_none(EmailTemplate.name == name)
    if template is None:
        raise UnknownReference(prefix + "template", f"no template named {name!r}")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise InputError(prefix + "variables", "must be an object")
    try:
        return renderer().render({"subject": template.subject, "text": template.text,
                                  "html": template.html}, variables)
    except RenderError as exc:
        field = prefix + ("variables" if exc.variables else "template")
        raise InputError(field, f"cannot render {name!r}: {exc}") from None
