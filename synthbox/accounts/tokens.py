"""API tokens for services: named, scoped, shown once, stored as SHA-256, revocable."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from peewee import IntegrityError

from synthbox.accounts import audit
from synthbox.accounts.models import ApiToken
from synthbox.accounts.paging import page_by_id
from synthbox.accounts.principal import SCOPES, Principal, for_token
from synthbox.accounts.users import check_name
from synthbox.errors import Conflict, InputError
from synthbox.secrets import ADMIN_TOKEN_FILE, read_or_create_secret

PREFIX = "sbx_"
BOOTSTRAP = "bootstrap"
_TOUCH_EVERY = 60.0  # last-used time is written at most this often per token
_BY_HASH = (f"SELECT id, name, scopes, last_used_at, revoked_at FROM "
            f"{ApiToken._meta.table_name} WHERE token_hash = ?")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Any) -> list[str]:
    if (not isinstance(scopes, list) or not scopes
            or any(scope not in SCOPES for scope in scopes)):
        raise InputError("scopes", f"must be a non-empty list of: {', '.join(SCOPES)}")
    return sorted(set(scopes))


def token_dict(token: ApiToken) -> dict[str, Any]:
    def ms(value: float | None) -> int | None:
        return None if value is None else int(value * 1000)

    return {"id": str(token.id), "name": token.name, "scopes": token.scopes.split(),
            "createdBy": token.created_by, "createdAt": ms(token.created_at),
            "lastUsedAt": ms(token.last_used_at), "revokedAt": ms(token.revoked_at)}


def create_token(name: Any, scopes: Any, actor: str, address: str = "",
                 value: str | None = None) -> tuple[ApiToken, str]:
    """A new token: (its record, the token itself, which is never stored or shown again)."""
    name, scopes = check_name(name), check_scopes(scopes)
    if ApiToken.select().where(ApiToken.name == name).exists():
        raise Conflict(f"name: a token named {name!r} already exists")
    value = value or PREFIX + secrets.token_urlsafe(32)
    try:
        with ApiToken._meta.database.atomic():
            token = ApiToken.create(name=name, token_hash=_digest(value),
                                    scopes=" ".join(scopes), created_by=actor,
                                    created_at=time.time())
    except IntegrityError:  # created meanwhile by another request or process
        raise Conflict(f"name: a token named {name!r} already exists") from None
    audit.record(actor, "token.create", f"token:{name}", f"scopes={' '.join(scopes)}", address)
    return token, value


def adopt_bootstrap_token(data_path: Path) -> None:
    """The admin token written at first start becomes the API token `bootstrap` (admin);
    on another host sharing the records, `bootstrap-<host>-<digest>`."""
    value, _ = read_or_create_secret(data_path, ADMIN_TOKEN_FILE)
    digest = _digest(value)
    for _ in range(2):  # a second look when another instance took the name meanwhile
        if ApiToken.select().where(ApiToken.token_hash == digest).exists():
            return
        name = BOOTSTRAP
        if ApiToken.select().where(ApiToken.name == BOOTSTRAP).exists():
            host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower())[:40]
            name = f"{BOOTSTRAP}-{host}-{digest[:6]}"
        try:
            create_token(name, ["admin"], "system", value=value)
            return
        except Conflict:
            continue  # instances starting at once (cluster mode, or hosts sharing records)


def authenticate_token(value: str) -> Principal | None:
    """The caller a token stands for. Every API request asks, so this is one plain
    SELECT (building it with the ORM took longer than the job insert it guards)."""
    db = ApiToken._meta.database
    row = db.execute_sql(_BY_HASH.replace("?", db.param), (_digest(value),)).fetchone()
    if row is None:
        return None
    token_id, name, scopes, last_used_at, revoked_at = row
    if revoked_at is not None:
        return None
    now = time.time()
    if last_used_at is None or now - last_used_at > _TOUCH_EVERY:
        ApiToken.update(last_used_at=now).where(ApiToken.id == token_id).execute()
    return for_token(name, scopes.split())


def list_tokens(limit: int = 1000, after: int | None = None) -> tuple[list[dict[str, Any]],
                                                                       int | None]:
    """Tokens (never their values) in the order they were made; cursor as in list_users."""
    return page_by_id(ApiToken, token_dict, limit, after)


def revoke_token(name: str, actor: str, address: str = "") -> bool:
    count = ApiToken.update(revoked_at=time.time()).where(
        ApiToken.name == name, ApiToken.revoked_at.is_null()).execute()
    if count:
        audit.record(actor, "token.revoke", f"token:{name}", "", address)
    return bool(count)
