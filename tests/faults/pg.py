"""A private PostgreSQL cluster on a free port, which a test may stop, restart and kill."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import free_port, wait_for


def _version() -> str:
    return sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]


class PrivatePostgres:
    """`pg_createcluster <ver> <name> -p <port>`, trust auth on 127.0.0.1; dropped by
    `drop()` (pg_dropcluster --stop)."""

    def __init__(self) -> None:
        self.version = _version()
        self.name = f"sbfault{uuid.uuid4().hex[:8]}"
        self.port = free_port()

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, check=check, timeout=120)

    def create(self) -> PrivatePostgres:
        self._ctl("pg_createcluster", self.version, self.name, "-p", str(self.port),
                  "--", "--auth=trust", "--no-sync")
        conf = Path(f"/etc/postgresql/{self.version}/{self.name}/conf.d/synthbox.conf")
        conf.write_text("listen_addresses = '127.0.0.1'\nfsync = off\n"
                        "max_connections = 200\n")
        self.start()
        self.admin("CREATE DATABASE synthbox")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/synthbox"

    def pg_ctl(self, action: str) -> None:
        self._ctl("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name,
                  action, *(("-m", "fast") if action in ("stop", "restart") else ()))

    def start(self) -> None:
        self.pg_ctl("start")
        wait_for(self.accepting, 30, message="the private PostgreSQL to accept connections")

    def stop(self) -> None:
        self.pg_ctl("stop")

    def restart(self) -> float:
        """Restart; return the time.monotonic() at which it accepted connections again."""
        self.pg_ctl("restart")
        wait_for(self.accepting, 30, interval=0.02, message="PostgreSQL back")
        return time.monotonic()

    def accepting(self) -> bool:
        return self._ctl("pg_isready", "-h", "127.0.0.1", "-p", str(self.port),
                         check=False).returncode == 0

    def admin(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname=database)
        conn.autocommit = True
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def drop(self) -> None:
        self._ctl("pg_dropcluster", "--stop", self.version, self.name, check=False)
