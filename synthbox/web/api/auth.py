"""Who is calling the API (a JWT or an API token as a Bearer token), what they may do,
and /api/v1/auth: login, refresh, logout, password change, me."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, g, request

from synthbox.accounts import users
from synthbox.accounts.jwts import TokenIssuer, looks_like_jwt
from synthbox.accounts.principal import Principal
from synthbox.accounts.tokens import authenticate_token
from synthbox.actors import Actor
from synthbox.errors import InputError, NotAllowed
from synthbox.web.errors import ok
from synthbox.web.requests import json_body

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1/auth")


def issuer() -> TokenIssuer:
    return current_app.config["SYNTHBOX_ISSUER"]


def client_address() -> str:
    return request.remote_addr or ""


def acting() -> Actor:
    """The API caller, as the services write it in the audit log."""
    return Actor(caller().name, client_address())


def bearer_token() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAllowed("authorization: send 'Authorization: Bearer <token>'", 401)
    return value.strip()


def request_principal() -> Principal | None:
    """The caller named by the Bearer token, None without one; a bad token is a 401."""
    token = bearer_token()
    if token is None:
        return None
    if looks_like_jwt(token):
        return issuer().principal(token)
    principal = authenticate_token(token)
    if principal is None:
        raise NotAllowed("authorization: the token is not valid", 401)
    return principal


def caller() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise NotAllowed("authorization: a Bearer token is required", 401)
    return principal


def needs(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The endpoint needs `permission` (see synthbox.accounts.principal)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            caller().require(permission)
            return view(*args, **kwargs)

        guarded.permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


def authenticate_api_request() -> None:
    """before_request of every API blueprint: who is calling (checked by `needs`)."""
    g.principal = request_principal()


bp.before_request(authenticate_api_request)


def _string(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise InputError(field, "must be a non-empty string")
    return value


@bp.post("/login")
def login() -> Any:
    """Name and password for a JWT pair (public, throttled)."""
    payload = json_body()
    name, password = _string(payload, "name"), _string(payload, "password")
    user = users.authenticate(name, password, client_address())
    return ok({**issuer().issue(user), "user": users.user_dict(user)})


@bp.post("/refresh")
def refresh() -> Any:
    """A refresh token for a new pair; each refresh token works once (public)."""
    return ok(issuer().refresh(_string(json_body(), "refreshToken")))


@bp.post("/logout")
@needs("read")
def logout() -> Any:
    token = bearer_token()
    if token is None or not looks_like_jwt(token):
        # the request is well formed; this credential cannot be signed out (403, not 400)
        raise NotAllowed("authorization: logout ends a JWT sign-in; revoke API tokens "
                         "instead")
    refresh_token = json_body().get("refreshToken")
    issuer().revoke(token, refresh_token if isinstance(refresh_token, str) else None)
    return ok({"signedOut": True})


@bp.post("/password")
def change_password() -> Any:
    principal = caller()
    if principal.kind != "user":
        raise NotAllowed("permission: only a signed-in user has a password")
    payload = json_body()
    current = _string(payload, "currentPassword")
    new = users.check_password(payload.get("newPassword"), "newPassword")
    user = users.authenticate(principal.name, current, client_address())
    users.set_password(user, new, principal.name, client_address())
    return ok({"changed": True, "signedOut": True})


@bp.get("/me")
def me() -> Any:
    principal = caller()
    return ok({"name": principal.name, "kind": principal.kind, "role": principal.role,
               "permissions": sorted(principal.grants)})
