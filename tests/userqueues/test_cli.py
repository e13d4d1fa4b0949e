"""`synthbox queues create|edit|show|delete` and `synthbox jobs add` on a user queue."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_create_add_edit_and_delete_from_the_command_line(tmp_path):
    env = {"SYNTHBOX_DATA_DIR": str(tmp_path / "data")}
    result = run_cli("queues", "create", "thumbs", "--handler", "http", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "queues.thumbs.url: required: an http:// or https:// URL")
    result = run_cli("queues", "create", "thumbs", "--handler", "command",
                     "--command", "python3 resize.py --fast", "--env", "HOME",
                     "--timeout", "2m", "--backoff", "fixed:5s", "--rate-limit", "50/1s",
                     env=env)
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["definition"]["command"] == ["python3", "resize.py", "--fast"]
    assert made["definition"]["rate_limit"] == {"max": 50, "per": "1s"}

    result = run_cli("jobs", "add", "thumbs", "resize", "--data", '{"image": "a.png"}',
                     env=env)
    assert result.returncode == 0, result.stderr

    result = run_cli("queues", "edit", "thumbs", "--concurrency", "3", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(run_cli("queues", "show", "thumbs", env=env).stdout)
    assert shown["version"] == 2 and shown["definition"]["concurrency"] == 3
    assert shown["definition"]["command"] == ["python3", "resize.py", "--fast"]

    result = run_cli("queues", "delete", "thumbs", env=env)
    assert result.returncode == 2
    assert "has 1 job(s) waiting or running" in result.stderr
    result = run_cli("queues", "delete", "thumbs", "--discard", env=env)
    assert result.returncode == 0 and "1 job(s) discarded" in result.stdout
    result = run_cli("queues", "show", "thumbs", env=env)
    assert result.returncode == 1 and "no queue named 'thumbs'" in result.stderr
