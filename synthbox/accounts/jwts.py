"""JWTs for the API: HS256 only, short access tokens, rotating refresh tokens.

Claims: iss, aud, sub (user id), name, role, iat, exp, jti, typ (access | refresh).
A refresh token works once: using it returns a new pair; using it again (a stolen copy)
revokes every refresh token of the user. Logout revokes the pair; a password change
or disabling the user ends every token issued before it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from synthbox.accounts.models import IssuedToken, User
from synthbox.accounts.principal import Principal, for_user
from synthbox.errors import NotAllowed
from synthbox.imports import without
from synthbox.secrets import read_or_create_secret

ISSUER = "synthbox"
AUDIENCE = "synthbox-api"
ALGORITHM = "HS256"
ACCESS_SECONDS = 15 * 60
REFRESH_SECONDS = 7 * 24 * 3600
SECRET_FILE = "jwt-secret"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]


def _import_pyjwt_without_cryptography() -> ModuleType:
    """PyJWT loads the `cryptography` package, when it is installed, for the RSA and EC
    algorithms: about 8 MB in every process. SynthBox pins HS256, which PyJWT signs with
    the standard library's hmac, so it imports PyJWT with that optional backend hidden."""
    with without("cryptography.exceptions", "cryptography.hazmat"):
        import jwt
    return jwt


jwt = _import_pyjwt_without_cryptography()


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2


class TokenIssuer:
    def __init__(self, data_path: Path):
        self._key = read_or_create_secret(data_path, SECRET_FILE)[0]

    def issue(self, user: User) -> dict[str, Any]:
        """A new access and refresh token pair for `user`."""
        now = time.time()
        access = self._encode(user, "access", now, ACCESS_SECONDS)
        refresh_jti = uuid.uuid4().hex
        refresh = self._encode(user, "refresh", now, REFRESH_SECONDS, refresh_jti)
        IssuedToken.create(jti=refresh_jti, user_id=user.id, kind="refresh",
                           expires_at=now + REFRESH_SECONDS)
        IssuedToken.delete().where(IssuedToken.expires_at < now).execute()
        return {"accessToken": access, "refreshToken": refresh, "tokenType": "Bearer",
                "expiresIn": ACCESS_SECONDS}

    def _encode(self, user: User, kind: str, now: float, lifetime: int,
                jti: str | None = None) -> str:
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(user.id), "name": user.name,
                  "role": user.role, "iat": now, "exp": int(now + lifetime),
                  "jti": jti or uuid.uuid4().hex, "typ": kind}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def decode(self, token: str, kind: str) -> tuple[dict[str, Any], User]:
        """The claims and the user of a valid token of `kind`; NotAllowed (401) otherwise."""
        claims, user = self._verified(token, kind)
        revoked = IssuedToken.get_or_none(IssuedToken.jti == claims["jti"])
        if revoked is not None and revoked.revoked:
            raise NotAllowed("authorization: the token has been revoked", 401)
        return claims, user

    def _verified(self, token: str, kind: str) -> tuple[dict[str, Any], User]:
        """Signature, claims and user checked; revocation not yet."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                issuer=ISSUER, options={"require": _REQUIRED})
        except jwt.ExpiredSignatureError:
            raise NotAllowed("authorization: the token has expired", 401) from None
        except jwt.PyJWTError:
            raise NotAllowed("authorization: the token is not valid", 401) from None
        if claims.get("typ") != kind:
            raise NotAllowed("authorization: the token is not valid", 401)
        user = User.get_or_none(User.id == int(claims["sub"])) if str(
            claims["sub"]).isdigit() else None
        if user is None or user.disabled or user.password_changed_at > float(claims["iat"]):
            raise NotAllowed("authorization: the token is no longer valid", 401)
        return claims, user

    def principal(self, token: str) -> Principal:
        claims, user = self.decode(token, "access")
        return for_user(user.name, user.role, user.id)

    def refresh(self, token: str) -> dict[str, Any]:
        claims, user = self._verified(token, "refresh")
        record = IssuedToken.get_or_none(IssuedToken.jti == claims["jti"])
        if record is None:
            raise NotAllowed("authorization: the token is not valid", 401)
        used = IssuedToken.update(revoked=True).where(
            IssuedToken.jti == claims["jti"], IssuedToken.revoked == False  # noqa: E712
        ).execute()
        if not used:  # replayed: someone else has a copy, end them all
            IssuedToken.update(revoked=True).where(IssuedToken.user_id == user.id).execute()
            raise NotAllowed("authorization: the token has been revoked", 401)
        return self.issue(user)

    def revoke(self, access_token: str, refresh_token: str | None = None) -> None:
        """Logout: the access token and (if given) its refresh token stop working now."""
        claims, user = self.decode(access_token, "access")
        IssuedToken.insert(jti=claims["jti"], user_id=user.id, kind="access",
                           expires_at=float(claims["exp"]), revoked=True
                           ).on_conflict_replace().execute()
        if refresh_token:
            try:
                refresh_claims, _ = self.decode(refresh_token, "refresh")
            except NotAllowed:
                return
            IssuedToken.update(revoked=True).where(
                IssuedToken.jti == refresh_claims["jti"],
                IssuedToken.user_id == user.id).execute()
