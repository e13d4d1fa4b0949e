"""Schemathesis hooks for the CLI run in test_openapi.py (SCHEMATHESIS_HOOKS).

Auth: throwaway admin API tokens minted straight in the server's records. The run fuzzes
DELETE /admin/tokens/{name} and lists token names, so any token it holds over HTTP it can
revoke (the bootstrap one included); on a 401 it gets a fresh one instead of testing the
rest of the API with a dead credential."""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis


@schemathesis.auth(retry_on=[401])
class ThrowawayToken:
    def get(self, case: Any, ctx: Any) -> str:
        from synthbox.accounts.tokens import create_token
        from synthbox.config import load_settings
        from synthbox.records.database import open_database

        settings = load_settings({"data_dir": os.environ["SYNTHBOX_DATA_DIR"]}, env={})
        db = open_database("", settings.data_path)
        try:
            _, value = create_token(f"fuzz-{uuid.uuid4().hex[:12]}", ["admin"], "schemathesis")
        finally:
            db.close()
        return value

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
