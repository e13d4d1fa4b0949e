"""Who is calling, and what they may do.

Permissions: `read` (look at queues and jobs), `jobs:write` (add jobs), `email:send`,
`email:read` (emails with their bodies, which may hold private links: not for viewers),
`orchestration:trigger`, `operate` (retry, pause, clean, remove), `worker` (fetch, ack,
fail and beat jobs of remote queues over HTTP), `admin` (users, tokens, settings,
everything). Roles and token scopes grant sets of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synthbox.errors import NotAllowed

PERMISSIONS = ("read", "jobs:write", "email:send", "email:read", "orchestration:trigger",
               "operate", "worker", "admin")
SCOPES = ("jobs:write", "email:send", "orchestration:trigger", "worker", "admin")

ROLE_GRANTS = {
    "admin": frozenset(PERMISSIONS),
    "operator": frozenset({"read", "jobs:write", "email:send", "email:read",
                           "orchestration:trigger", "operate"}),
    "viewer": frozenset({"read"}),
}
SCOPE_GRANTS = {
    "admin": frozenset(PERMISSIONS),
    # a service that adds jobs may follow them
    "jobs:write": frozenset({"jobs:write", "read"}),
    "email:send": frozenset({"email:send", "email:read"}),
    "orchestration:trigger": frozenset({"orchestration:trigger"}),
    "worker": frozenset({"worker"}),  # a remote worker: its jobs, nothing else
}


@dataclass(frozen=True)
class Principal:
    name: str  # "alice", or "token:deploy-bot"
    kind: str  # "user" or "token"
    grants: frozenset[str] = field(default_factory=frozenset)
    role: str | None = None
    user_id: int | None = None

    def can(self, permission: str) -> bool:
        return permission in self.grants

    def require(self, permission: str) -> None:
        if permission not in self.grants:
            raise NotAllowed(f"permission: {self.name} may not do this (needs {permission})")


def for_user(name: str, role: str, user_id: int) -> Principal:
    return Principal(name, "user", ROLE_GRANTS.get(role, frozenset()), role, user_id)


def for_token(name: str, scopes: list[str]) -> Principal:
    grants: set[str] = set()
    for scope in scopes:
        grants |= SCOPE_GRANTS.get(scope, frozenset())
    return Principal(f"token:{name}", "token", frozenset(grants))
