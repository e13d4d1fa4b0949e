"""The fault matrix's parts: a private PostgreSQL cluster per module (the tests stop,
restart and kill it), a fresh database in it per test, and the figures each test measured
(written to $SYNTHBOX_FAULT_FIGURES when set, printed otherwise)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.load import FIGURES
from tests.faults.pg import PrivatePostgres


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().create()
    yield server
    server.drop()


@pytest.fixture
def pg(private_pg: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The module's cluster, running, with an empty `synthbox` database."""
    if not private_pg.accepting():
        private_pg.start()
    private_pg.admin("DROP DATABASE IF EXISTS synthbox WITH (FORCE)")
    private_pg.admin("CREATE DATABASE synthbox")
    yield private_pg
    if not private_pg.accepting():
        private_pg.start()


@pytest.fixture(scope="session", autouse=True)
def fault_figures() -> Iterator[None]:
    yield
    target = os.environ.get("SYNTHBOX_FAULT_FIGURES")
    if target and FIGURES:
        path = Path(target)
        known = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**known, **FIGURES}, indent=1, sort_keys=True))
