"""The npm `faktory-worker` client for the Node tests: from SYNTHBOX_TEST_NODE_MODULES (CI
installs it there), else installed into a temporary folder (never into the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

NODE_PACKAGE = "faktory-worker@4.7.1"


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("SYNTHBOX_TEST_NODE_MODULES")
    if given:
        yield Path(given)
        return
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("Node.js and npm are needed for the faktory-worker tests")
    folder = tmp_path_factory.mktemp("npm")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                    NODE_PACKAGE], check=True, capture_output=True, timeout=300)
    yield folder / "node_modules"
