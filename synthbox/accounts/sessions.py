"""Browser sign-in sessions, kept on the server: the cookie holds a random id, the
records its SHA-256 and the form (CSRF) token. Logout deletes the record."""

from __future__ import annotations

import hashlib
import secrets
import time

from synthbox.accounts.models import User, WebSession

SESSION_SECONDS = 12 * 3600


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start_session(user: User) -> tuple[str, str]:
    """A new session for `user`: (cookie value, CSRF token). Always a new id (no fixation)."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = time.time()
    WebSession.create(id=_digest(cookie), user_id=user.id, csrf_token=csrf, created_at=now,
                      expires_at=now + SESSION_SECONDS)
    WebSession.delete().where(WebSession.expires_at < now).execute()
    return cookie, csrf


def find_session(cookie: str) -> tuple[User, str] | None:
    """The signed-in user and the session's CSRF token, or None."""
    session = WebSession.get_or_none(WebSession.id == _digest(cookie))
    if session is None or session.expires_at < time.time():
        return None
    user = User.get_or_none(User.id == session.user_id)
    if user is None or user.disabled:
        return None
    return user, session.csrf_token


def end_session(cookie: str) -> None:
    WebSession.delete().where(WebSession.id == _digest(cookie)).execute()
