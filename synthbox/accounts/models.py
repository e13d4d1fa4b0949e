"""Account records: users, API tokens, sign-in sessions, issued refresh tokens, audit log."""

from __future__ import annotations

from peewee import BigAutoField, BooleanField, CharField, DoubleField, IntegerField, TextField

from synthbox.records.database import tables_step
from synthbox.records.models import BaseModel

ROLES = ("admin", "operator", "viewer")


class User(BaseModel):
    id = BigAutoField()
    name = CharField(max_length=64, unique=True)
    password_hash = TextField()
    role = CharField(max_length=16)
    disabled = BooleanField(default=False)
    created_at = DoubleField()
    password_changed_at = DoubleField()
    last_login_at = DoubleField(null=True)


class ApiToken(BaseModel):
    """A token for services; only its SHA-256 is kept (the token is shown once)."""

    id = BigAutoField()
    name = CharField(max_length=64, unique=True)
    token_hash = CharField(max_length=64, unique=True)
    scopes = TextField()  # space-separated
    created_by = CharField(max_length=64)
    created_at = DoubleField()
    last_used_at = DoubleField(null=True)
    revoked_at = DoubleField(null=True)


class WebSession(BaseModel):
    """A browser sign-in; the cookie holds a random id, the row its SHA-256."""

    id = CharField(max_length=64, primary_key=True)
    user_id = IntegerField(index=True)
    csrf_token = CharField(max_length=64)
    created_at = DoubleField()
    expires_at = DoubleField()


class IssuedToken(BaseModel):
    """A JWT by its `jti`: refresh tokens are recorded when issued; access tokens when
    revoked before they expire (logout)."""

    jti = CharField(max_length=64, primary_key=True)
    user_id = IntegerField(index=True)
    kind = CharField(max_length=16)  # refresh | access
    expires_at = DoubleField()
    revoked = BooleanField(default=False)


class LoginFailure(BaseModel):
    id = BigAutoField()
    key = CharField(max_length=160, index=True)  # "user:NAME", "address:IP", "pair:NAME\nIP"
    at = DoubleField()


class AuditEntry(BaseModel):
    """Who did what to which job, queue, user or token, when, from where."""

    id = BigAutoField()
    at = DoubleField(index=True)
    actor = CharField(max_length=128)
    action = CharField(max_length=64)
    target = CharField(max_length=255, default="")
    detail = TextField(default="")
    address = CharField(max_length=64, default="")


ACCOUNT_MODELS = (User, ApiToken, WebSession, IssuedToken, LoginFailure, AuditEntry)

# Append only (see synthbox/db.py): applied by every engine this domain is assembled into.
MIGRATIONS = (tables_step("accounts.tables", ACCOUNT_MODELS),)
