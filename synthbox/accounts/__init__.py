"""Users, roles, API tokens, JWTs, sessions and the audit log. Knows nothing of the web."""
