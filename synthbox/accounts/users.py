"""User accounts: create, authenticate (throttled), disable, change password, list."""

from __future__ import annotations

import re
import time
from typing import Any

from synthbox.accounts import audit
from synthbox.accounts.models import ROLES, IssuedToken, LoginFailure, User, WebSession
from synthbox.accounts.paging import page_by_id
from synthbox.accounts.passwords import (
    MIN_LENGTH,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from synthbox.errors import Conflict, InputError, NotAllowed, NotFound, Throttled

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
FAILURE_WINDOW = 60.0
MAX_FAILURES = {"user": 10, "address": 30}  # within the window; an address may hold users


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError("name", "must be 1-64 letters, digits, '.', '_', '@' or '-', "
                                 "starting with a letter or digit")
    return name


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise InputError("role", f"must be one of {', '.join(ROLES)}")
    return str(role)


def check_password(password: Any, field: str = "password") -> str:
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise InputError(field, f"must be at least {MIN_LENGTH} characters")
    if len(password) > 1024:
        raise InputError(field, "must be at most 1024 characters")
    return password


def user_dict(user: User) -> dict[str, Any]:
    return {"id": str(user.id), "name": user.name, "role": user.role,
            "disabled": bool(user.disabled), "createdAt": int(user.created_at * 1000),
            "lastLoginAt": None if user.last_login_at is None else int(user.last_login_at * 1000)}


def count_users() -> int:
    return User.select().count()


def create_user(name: Any, password: Any, role: Any, actor: str = "system",
                address: str = "") -> User:
    """A new user; every argument is checked (a 400 naming it when wrong)."""
    name, role = check_name(name), check_role(role)
    password = check_password(password)
    if User.select().where(User.name == name).exists():
        raise Conflict(f"name: a user named {name!r} already exists")
    now = time.time()
    user = User.create(name=name, password_hash=hash_password(password), role=role,
                       created_at=now, password_changed_at=now)
    audit.record(actor, "user.create", f"user:{name}", f"role={role}", address)
    return user


def get_user(name: str) -> User:
    user = User.get_or_none(User.name == name)
    if user is None:
        raise NotFound(f"user: no user named {name!r}")
    return user


def list_users(limit: int = 1000, after: int | None = None) -> tuple[list[dict[str, Any]],
                                                                     int | None]:
    """Users in the order they were made; pass the returned cursor as `after` for more."""
    return page_by_id(User, user_dict, limit, after)


def _retry_after(key: str, now: float) -> int | None:
    """Seconds until `key` may try again, or None if it may now. Counts the attempt being
    made, which is recorded before the password is checked: parallel guesses cannot all
    slip in under the limit."""
    limit = MAX_FAILURES[key.split(":", 1)[0]]
    since = now - FAILURE_WINDOW
    times = [f.at for f in LoginFailure.select(LoginFailure.at).where(
        LoginFailure.key == key, LoginFailure.at >= since).order_by(LoginFailure.at)]
    if len(times) <= limit:
        return None
    return max(1, int(times[-(limit + 1)] + FAILURE_WINDOW - now) + 1)


def authenticate(name: str, password: str, address: str = "") -> User:
    """The user, if the password is right. Throttled per account and per address; unknown
    names cost the same time as known ones."""
    now = time.time()
    keys = [f"user:{str(name)[:64]}", f"address:{address}"]
    attempt = [LoginFailure.create(key=key, at=now).id for key in keys]
    for key in keys:
        wait = _retry_after(key, now)
        if wait is not None:
            LoginFailure.delete().where(LoginFailure.id.in_(attempt)).execute()
            raise Throttled("too many failed sign-ins; try again later", wait)
    dummy = dummy_hash()  # made at the first sign-in, whoever it is for: no time to tell
    user = User.get_or_none(User.name == name) if isinstance(name, str) else None
    stored = user.password_hash if user is not None else dummy
    good = verify_password(stored, password if isinstance(password, str) else "")
    if user is None or not good or user.disabled:  # the attempt stays counted
        LoginFailure.delete().where(LoginFailure.at < now - FAILURE_WINDOW).execute()
        # an unknown name may be a password typed in the wrong field: never keep it
        audit.record(user.name if user is not None else "(unknown user)", "login.failed", "",
                     "", address)
        raise NotAllowed("name or password is not right", status=401)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    user.save()
    LoginFailure.delete().where((LoginFailure.key == keys[0]) | LoginFailure.id.in_(attempt)
                                ).execute()
    audit.record(user.name, "login", "", "", address)
    return user


def set_password(user: User, password: str, actor: str, address: str = "") -> None:
    """Change a password: every session and token of the user ends."""
    check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = time.time()
    user.save()
    end_all_sign_ins(user)
    audit.record(actor, "user.password", f"user:{user.name}", "", address)


def set_disabled(user: User, disabled: bool, actor: str, address: str = "") -> None:
    if disabled and user.role == "admin" and not user.disabled and User.select().where(
            User.role == "admin", User.disabled == False, User.id != user.id  # noqa: E712
    ).count() == 0:
        raise Conflict("user: the last enabled admin cannot be disabled")
    user.disabled = disabled
    user.save()
    if disabled:
        end_all_sign_ins(user)
    audit.record(actor, "user.disable" if disabled else "user.enable", f"user:{user.name}",
                 "", address)


def end_all_sign_ins(user: User) -> None:
    WebSession.delete().where(WebSession.user_id == user.id).execute()
    IssuedToken.update(revoked=True).where(IssuedToken.user_id == user.id).execute()
