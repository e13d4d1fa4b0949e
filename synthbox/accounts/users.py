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
# within the window: one address on one account, and one address (which may hold users)
MAX_FAILURES = {"pair": 10, "address": 30}
ACCOUNT_FAILURES_BEFORE_DELAY = 10  # from every address together; then a growing delay
MAX_DELAY = 4.0


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


def _failures(key: str, since: float) -> list[float]:
    return [f.at for f in LoginFailure.select(LoginFailure.at).where(
        LoginFailure.key == key, LoginFailure.at >= since).order_by(LoginFailure.at)]


def _retry_after(key: str, now: float) -> int | None:
    """Seconds until `key` may try again, or None if it may now. Counts the attempt being
    made, which is recorded before the password is checked: parallel guesses cannot all
    slip in under the limit."""
    limit = MAX_FAILURES[key.split(":", 1)[0]]
    times = _failures(key, now - FAILURE_WINDOW)
    if len(times) <= limit:
        return None
    return max(1, int(times[-(limit + 1)] + FAILURE_WINDOW - now) + 1)


def account_delay(name: str, now: float) -> float:
    """Seconds every sign-in to account `name` waits, from any address: nothing until it
    has ACCOUNT_FAILURES_BEFORE_DELAY failures within the window, then doubling every 5
    more, up to MAX_DELAY. The account is never locked for everyone."""
    excess = len(_failures(f"user:{name}", now - FAILURE_WINDOW)) - \
        ACCOUNT_FAILURES_BEFORE_DELAY
    return 0.0 if excess <= 0 else min(MAX_DELAY, 0.25 * 2 ** (excess / 5))


def authenticate(name: str, password: str, address: str = "") -> User:
    """The user, if the password is right. Throttled per account and address together
    (OWASP: a guesser locks out only itself), per address across accounts, and with a
    growing delay per account from every address; unknown names cost the same time as
    known ones."""
    now = time.time()
    account = str(name)[:64]
    keys = [f"pair:{account}\n{address}", f"address:{address}", f"user:{account}"]
    attempt = [LoginFailure.create(key=key, at=now).id for key in keys]
    for key in keys[:2]:
        wait = _retry_after(key, now)
        if wait is not None:
            LoginFailure.delete().where(LoginFailure.id.in_(attempt)).execute()
            raise Throttled("too many failed sign-ins; try again later", wait)
    delay = account_delay(account, now)
    if delay:
        time.sleep(delay)
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
