"""Settings: one table, the documented precedence, clear errors, and a README that agrees."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from synthbox.config import SETTINGS, SettingsError, load_settings
from tests.conftest import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"


def test_precedence_defaults_file_env_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).port == 3003
    (tmp_path / "synthbox.toml").write_text('port = 4000\nhost = "0.0.0.0"\n')
    settings = load_settings(env={})
    assert (settings.port, settings.host) == (4000, "0.0.0.0")
    assert settings.sources["port"].startswith("config file")
    settings = load_settings(env={"SYNTHBOX_PORT": "5000"})
    assert (settings.port, settings.host) == (5000, "0.0.0.0")
    settings = load_settings({"port": "6000"}, env={"SYNTHBOX_PORT": "5000"})
    assert settings.port == 6000 and settings.sources["port"] == "command line"


def test_seed_variables_work_as_written():
    settings = load_settings(env={"REDIS_URL": "redis://r:6379/0", "DATABASE_URL": "postgresql://x/y",
                                  "REDIS_SENTINEL_NAME": "mymaster", "REDIS_CLUSTER_MODE": "true"})
    assert settings.redis_url == "redis://r:6379/0"
    assert settings.database_url == "postgresql://x/y"
    assert settings.redis_sentinel_name == "mymaster"
    assert settings.redis_cluster_mode is True
    assert load_settings(env={"SYNTHBOX_REDIS_URL": "redis://s"}).redis_url == "redis://s"


def test_defaults_are_safe():
    settings = load_settings(env={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 3003


def test_queue_options_from_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthbox.toml").write_text("[queues.diagnostics]\nconcurrency = 3\n")
    assert load_settings(env={}).queues == {"diagnostics": {"concurrency": 3}}


@pytest.mark.parametrize(("env", "message"), [
    ({"SYNTHBOX_PORT": "http"}, "port (from environment SYNTHBOX_PORT): must be a whole number"),
    ({"SYNTHBOX_PORT": "70000"}, "port (from environment SYNTHBOX_PORT): must be a port number"),
    ({"REDIS_CLUSTER_MODE": "maybe"}, "redis_cluster_mode (from environment REDIS_CLUSTER_MODE): "
                                      "must be true or false"),
    ({"SYNTHBOX_QUEUES": "{"}, "queues (from environment SYNTHBOX_QUEUES): must be a JSON object"),
    ({"SYNTHBOX_LOG_LEVEL": "loud"},
     "log_level (from environment SYNTHBOX_LOG_LEVEL): must be one"),
    ({"SYNTHBOX_CLUSTER": '{"instances": 0}'},
     "cluster.instances (from environment SYNTHBOX_CLUSTER): must be 1 to 64, or max"),
    ({"SYNTHBOX_CLUSTER": '{"autoscale": {"min": 3, "max": 2}}'},
     "cluster.autoscale.max (from environment SYNTHBOX_CLUSTER): must be at least autoscale.min"),
    ({"SYNTHBOX_ALERTS": '[{"name": "slow", "kind": "sluggish"}]'},
     "alerts[0].kind (from environment SYNTHBOX_ALERTS): must be one of failures, waiting"),
    ({"SYNTHBOX_ALERTS": '[{"name": "a", "kind": "waiting"}, {"name": "a", "kind": "stalled"}]'},
     "alerts[1].name (from environment SYNTHBOX_ALERTS): 'a' names two rules"),
])
def test_bad_values_name_the_setting_and_rule(env, message):
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env)
    assert str(caught.value).startswith(message)


def test_the_nested_tables_are_parsed_when_the_settings_load(tmp_path, monkeypatch):
    """`[cluster]` and `[[alerts]]` become typed values at load, and a bad entry stops
    `synthbox serve` too (not only `synthbox start`), naming the entry and the file."""
    from synthbox.cluster_settings import ClusterOptions

    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthbox.toml").write_text(
        '[cluster]\ninstances = 3\nmax_memory_restart = "300M"\n\n'
        '[[alerts]]\nname = "backlog"\nkind = "waiting"\nthreshold = 10\n'
        'emails = ["ops@example.com"]\n')
    settings = load_settings(env={})
    assert settings.cluster == ClusterOptions(instances=3, max_memory_restart=300 * 1024**2)
    assert settings.alerts == ({"name": "backlog", "kind": "waiting", "threshold": 10.0,
                                "emails": ["ops@example.com"]},)
    (tmp_path / "synthbox.toml").write_text('[cluster]\ninstances = "lots"\n')
    result = run_cli("serve", "--data-dir", str(tmp_path / "data"), "--port", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: cluster.instances (from config file synthbox.toml): "
        "must be 1 to 64, or max"]


def test_bad_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthbox.toml").write_text("port = [\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={})
    (tmp_path / "synthbox.toml").write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(env={})
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(env={}, config_path=str(tmp_path / "missing.toml"))


def test_bad_queue_options_are_refused(tmp_path):
    from synthbox.app import build_engine

    for queues, message in (({"diagnostics": {"concurrency": 0}}, "queues.diagnostics.concurrency"),
                            ({"diagnostics": {"speed": 1}}, "queues.diagnostics.speed: unknown"),
                            ({"nope": {}}, "queues.nope.handler: required for a queue")):
        settings = load_settings({"data_dir": str(tmp_path), "queues": queues}, env={})
        with pytest.raises(SettingsError, match=re.escape(message)):
            build_engine(settings)


def _readme_table() -> list[list[str]]:
    text = README.read_text()
    block = text.split("<!-- settings-table")[1].split("<!-- end settings-table -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_readme_settings_table_matches_the_code():
    rows = _readme_table()
    assert [row[0].strip("`") for row in rows] == [s.name for s in SETTINGS]
    for row, setting in zip(rows, SETTINGS, strict=True):
        name, env, flag, default, meaning = row
        assert re.findall(r"`([A-Z_]+)`", env) == list(setting.env_names), setting.name
        assert flag.strip("`") == (setting.flag or ""), setting.name
        shown = default.strip("`")
        empty = setting.default in ("", {}, (), []) or dataclasses.is_dataclass(setting.default)
        expected = ("(empty)" if empty else
                    str(setting.default).lower() if isinstance(setting.default, bool)
                    else str(setting.default))
        assert shown == expected, setting.name
        assert meaning == setting.help, setting.name


def test_readme_queue_options_match_the_queue_spec():
    from dataclasses import fields

    from synthbox.jobs.spec import NOT_OPTIONS, QueueSpec
    from synthbox.queues.diagnostics import DIAGNOSTICS

    text = README.read_text().split("### Queue options")[1].split("Example")[0]
    documented = []
    for row in re.findall(r"^\| (`.*?) \| .*? \| (.*?) \|$", text, re.M):
        names = re.findall(r"`(\w+)`", row[0])
        defaults = [d.strip() for d in row[1].split(",")]
        documented += names
        for name, shown in zip(names, defaults, strict=True):
            value = getattr(DIAGNOSTICS, name)
            if isinstance(value, int | float):
                assert float(shown) == value, name
            else:
                assert shown == ("none" if value is None else value), name
    options = [f.name for f in fields(QueueSpec)
               if f.name not in NOT_OPTIONS]
    assert sorted(documented) == sorted(options)


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"```sh\n(.*?)\n```", README.read_text(), re.S)
    assert blocks[0] == "python3 -m pip install . && synthbox"  # a user's install, not -e
    assert blocks[1] == "python3 -m pip install -e '.[test]' && python3 -m pytest"
    ci = (README.parent / ".ci" / "run").read_text()
    assert blocks[1].split("&& ")[1] in ci


def test_a_postgres_url_is_read_into_connection_parameters(tmp_path):
    from synthbox.records.database import open_database

    db = open_database("postgresql://jobs:s3cr%40t@db.example:6543/records?sslmode=require"
                       "&connect_timeout=5&host=replica.example", tmp_path)
    assert db.database == "records"
    assert db.connect_params == {"user": "jobs", "password": "s3cr@t", "port": 6543,
                                 "host": "replica.example",  # options come last
                                 "sslmode": "require", "connect_timeout": 5}


def test_a_postgres_url_without_a_database_name_is_refused(tmp_path):
    from synthbox.records.database import open_database

    with pytest.raises(SettingsError, match=r"^database_url: names no database"):
        open_database("postgresql://db.example:5432", tmp_path)
    with pytest.raises(SettingsError, match=r"^database_url: the port must be a number"):
        open_database("postgresql://db.example:port/records", tmp_path)
    result = run_cli("doctor", "--database-url", "postgresql://db.example/",
                     "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Error: database_url: names no database")


def test_the_typed_settings_are_the_declared_ones():
    """synthbox/settings.py has a typed field per entry of SETTINGS, in order, typed as its
    default; mypy then checks every use. A setting added to one and not the other fails."""
    import dataclasses

    from synthbox.config import SETTINGS
    from synthbox.settings import Settings

    types = {str: "str", int: "int", float: "float", bool: "bool", dict: "dict[str, Any]",
             tuple: "tuple[Any, ...]", list: "list[Any]"}
    declared = [(s.name, types.get(type(s.default), type(s.default).__name__))
                for s in SETTINGS]
    typed = [(f.name, f.type) for f in dataclasses.fields(Settings)
             if f.name not in ("sources", "config_file")]
    assert typed == declared
    settings = load_settings({"port": "4000"}, env={})
    assert settings.port == 4000 and settings.values["port"] == 4000
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert dataclasses.replace(settings, web=False).web is False
