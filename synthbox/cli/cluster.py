"""`synthbox start`, `status`, `scale`, `reload`, `restart`, `stop`, `logs`, `monit`:
cluster mode, the PM2 commands, over the supervisor's control socket."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from synthbox.cli.base import BadInput, resolve_settings, settings_options
from synthbox.cluster_settings import ClusterOptions, instance_count
from synthbox.host.cluster.control import NoSupervisor, request
from synthbox.host.cluster.supervisor import Supervisor
from synthbox.logs import configure as configure_logging


def _settings_and_options(options: dict[str, Any]) -> tuple[Any, ClusterOptions]:
    """The settings, and their `[cluster]` table with its log directory resolved."""
    settings = resolve_settings(options)
    cluster = settings.cluster
    return settings, replace(cluster, log_dir=cluster.log_path(settings.data_path))


def _ask(data_path: Path, message: dict[str, Any], timeout: float = 600) -> Any:
    answer = request(data_path, message, timeout)  # NoSupervisor: one line, exit 1
    if not answer.get("ok"):
        raise BadInput(answer.get("error", "the supervisor refused"))
    return answer


@click.command("start")
@click.option("-i", "--instances", default=None,
              help="How many serve instances: a number, or max (one per core). "
                   "Default: cluster.instances (2).")


@click.option("--daemon", is_flag=True, help="Detach from the terminal.")
@settings_options
def start_command(instances: str | None, daemon: bool, **options: Any) -> None:
    """Run N `serve` instances on one port under a supervisor (cluster mode)."""
    settings, cluster = _settings_and_options(options)
    try:
        count = instance_count(instances) if instances is not None else cluster.instances
    except ValueError as exc:
        raise BadInput(f"--instances: {str(exc).partition(': ')[2]}") from None
    assert cluster.log_dir is not None
    cluster.log_dir.mkdir(parents=True, exist_ok=True)
    if daemon:
        _daemonize(cluster.log_dir / "supervisor.log", settings.data_path)
    configure_logging(settings)
    supervisor = Supervisor(settings, cluster)
    sys.exit(supervisor.run(count))


def _daemonize(log_file: Path, data_path: Path) -> None:
    """Fork into the background; the parent returns once the control socket answers."""
    if os.fork() > 0:
        for _ in range(300):
            try:
                pid = request(data_path, {"command": "ping"}, timeout=2)["pid"]
                click.echo(f"supervisor started (pid {pid}); log in {log_file}")
                os._exit(0)
            except NoSupervisor:
                time.sleep(0.1)
        click.echo(f"Error: the supervisor did not start; see {log_file}", err=True)
        os._exit(1)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for stream in (1, 2):
        os.dup2(fd, stream)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)


def _size(value: int) -> str:
    return f"{value / 1024 / 1024:.0f} MB"


def status_table(instances: list[dict[str, Any]]) -> str:
    lines = [f"{'id':>3}  {'pid':>8}  {'state':<16}{'uptime':>9}{'restarts':>10}{'cpu':>8}"
             f"{'memory':>10}{'jobs done':>11}"]
    for row in instances:
        lines.append(f"{row['id']:>3}  {row['pid'] or '-':>8}  {row['state']:<16}"
                     f"{row['uptime']:>8.0f}s{row['restarts']:>10}{row['cpu']:>7.0f}%"
                     f"{_size(row['memory']):>10}{row['jobsDone']:>11}")
    return "\n".join(lines)


@click.command("status")
@click.option("--json", "as_json", is_flag=True)
@settings_options
def status_command(as_json: bool, **options: Any) -> None:
    """The instances of the running supervisor: id, pid, state, uptime, restarts, CPU,
    memory, jobs done."""

    answer = _ask(resolve_settings(options).data_path, {"command": "status"})
    if as_json:
        click.echo(json.dumps(answer["instances"], indent=2))
        return
    click.echo(f"supervisor pid {answer['pid']}")
    click.echo(status_table(answer["instances"]))


@click.command("scale", context_settings={"ignore_unknown_options": True})
@click.argument("instances")
@settings_options
def scale_command(instances: str, **options: Any) -> None:
    """Run INSTANCES instances (a number, max, +N or -N)."""
    if not re.fullmatch(r"[+-]?[0-9]{1,2}|max", instances):
        raise BadInput("INSTANCES: must be a number, max, +N or -N")
    answer = _ask(resolve_settings(options).data_path,
                  {"command": "scale", "instances": instances})
    click.echo(f"{answer['instances']} instance(s)")


@click.command("reload")
@settings_options
def reload_command(**options: Any) -> None:
    """Replace every instance, one at a time: a new one serves before the old one stops."""
    answer = _ask(resolve_settings(options).data_path, {"command": "reload"})
    click.echo(f"reloaded {answer['replaced']} instance(s)")


@click.command("restart")
@settings_options
def restart_command(**options: Any) -> None:
    """Stop and start every instance (reload drops nothing; this is quicker)."""
    _ask(resolve_settings(options).data_path, {"command": "restart"})
    click.echo("restarted")


@click.command("stop")
@settings_options
def stop_command(**options: Any) -> None:
    """Stop the supervisor and every instance (running jobs finish or are handed back)."""
    settings = resolve_settings(options)
    _ask(settings.data_path, {"command": "stop"})
    for _ in range(int((settings.shutdown_timeout + 30) * 10)):
        try:
            request(settings.data_path, {"command": "ping"}, timeout=1)
        except (NoSupervisor, OSError):
            click.echo("stopped")
            return
        time.sleep(0.1)
    click.echo("Error: the supervisor is still running", err=True)
    sys.exit(1)


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--lines", type=int, default=50, help="How many lines to show first.")
@click.option("--instance", "instance", type=int, default=None, help="One instance only.")
@settings_options
def logs_command(follow: bool, lines: int, instance: int | None, **options: Any) -> None:
    """The instances' logs, merged by time (each line prefixed with its instance)."""
    settings, cluster = _settings_and_options(options)
    log_dir = cluster.log_path(settings.data_path)
    files = sorted(log_dir.glob("instance-*.log"))
    if instance is not None:
        files = [f for f in files if f.name == f"instance-{instance}.log"]
        if not files:
            raise BadInput(f"--instance: no log for instance {instance} in {log_dir}")
    merged = []
    for path in files:
        tag = path.stem.removeprefix("instance-")
        for line in (path.read_text(errors="replace").splitlines()[-lines:] if lines > 0
                     else []):
            merged.append((line[:23], tag, line))
    for _, tag, line in (sorted(merged, key=lambda m: m[0])[-lines:] if lines > 0 else []):
        click.echo(f"[{tag}] {line}")
    if not follow:
        return
    offsets = {path: path.stat().st_size for path in files}
    try:
        while True:
            time.sleep(0.5)
            for path in sorted(log_dir.glob("instance-*.log")):
                if instance is not None and path.name != f"instance-{instance}.log":
                    continue
                size = path.stat().st_size
                start = offsets.get(path, 0) if size >= offsets.get(path, 0) else 0
                if size > start:
                    with path.open("r", errors="replace") as handle:
                        handle.seek(start)
                        for line in handle.read().splitlines():
                            click.echo(f"[{path.stem.removeprefix('instance-')}] {line}")
                offsets[path] = size
    except KeyboardInterrupt:
        pass


@click.command("monit")
@click.option("--once", is_flag=True, help="Print one screen and exit.")
@settings_options
def monit_command(once: bool, **options: Any) -> None:
    """A live view of the instances (Ctrl-C to leave)."""
    data_path = resolve_settings(options).data_path
    try:
        while True:
            answer = _ask(data_path, {"command": "status"})
            screen = (f"SynthBox cluster  {time.strftime('%H:%M:%S')}   supervisor pid "
                      f"{answer['pid']}\n\n{status_table(answer['instances'])}")
            if once or not sys.stdout.isatty():
                click.echo(screen)
                return
            click.echo("\x1b[H\x1b[2J" + screen)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
