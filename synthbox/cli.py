"""The `synthbox` command: a thin click layer over the same services as the API.

`synthbox` alone means `synthbox serve`. Every option also reads a `SYNTHBOX_*`
environment variable. Bad input exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import click

from synthbox import __version__
from synthbox.config import SETTINGS, Settings, SettingsError, load_settings
from synthbox.jobs.errors import JobOptionError, UnknownQueue
from synthbox.jobs.service import JOB_ID
from synthbox.paths import DataDirError
from synthbox.serve import StartError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """'500ms', '90', '30s', '15m', '24h', '7d' as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("must be a duration such as 90, 30s, 15m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


class DefaultGroup(click.Group):
    """A group that runs `serve` when no command is named."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "--version")):
            args.insert(0, "serve")
        return super().parse_args(ctx, args)


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings that have a flag, as options; their values feed load_settings()."""
    for setting in reversed(SETTINGS):
        if setting.flag is None:
            continue
        # The environment is read by load_settings(), in its place in the precedence.
        func = click.option(setting.flag, setting.name, default=None,
                            allow_from_autoenv=False, help=setting.help)(func)
    return click.option("--config", "config_path", default=None, envvar="SYNTHBOX_CONFIG",
                        help="Path of synthbox.toml (default: ./synthbox.toml if present).")(func)


def _settings(options: dict[str, Any]) -> Settings:
    config_path = options.pop("config_path", None)
    cli = {s.name: options.pop(s.name) for s in SETTINGS if s.name in options}
    return load_settings(cli, config_path=config_path)


def with_engine(func: Callable[..., Any]) -> Callable[..., Any]:
    """Open the configured backends (no workers) and pass the Engine as `engine`."""

    @settings_options
    @functools.wraps(func)
    def wrapper(**options: Any) -> Any:
        from synthbox.jobs.engine import Engine

        engine = Engine(_settings(options))
        try:
            return func(engine=engine, **options)
        finally:
            engine.close()

    return wrapper


class BadInput(click.ClickException):
    exit_code = 2


@click.group(cls=DefaultGroup, context_settings={"auto_envvar_prefix": "SYNTHBOX",
                                                  "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synthbox")
def cli() -> None:
    """SynthBox: durable background jobs, workers, admin UI and API in one process."""


@cli.command()
@click.option("--workers-only", is_flag=True, default=False,
              help="Run the workers without the HTTP server.")
@settings_options
def serve(workers_only: bool, **options: Any) -> None:
    """Serve the API and run the queue workers (the default command)."""
    from synthbox.serve import serve as run

    settings = _settings(options)
    if workers_only:
        settings.values["web"] = False
    sys.exit(run(settings))


# -- jobs ---------------------------------------------------------------------------------

@cli.group()
def jobs() -> None:
    """Add and inspect jobs."""


@jobs.command("add")
@click.argument("queue")
@click.argument("name")
@click.option("--data", default="{}", help="The job's data, as JSON.")
@click.option("--priority", type=int, default=0, help="0-10, higher runs first.")
@click.option("--delay", type=float, default=None, help="Seconds before the job may run.")
@click.option("--attempts", type=int, default=None, help="Attempts before it fails for good.")
@click.option("--job-id", default=None, help="Deduplication key: adding it again returns "
              "the existing job.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@with_engine
def add_job(engine: Any, queue: str, name: str, data: str, priority: int, delay: float | None,
            attempts: int | None, job_id: str | None, as_json: bool, **_: Any) -> None:
    """Add a job to QUEUE and print its id."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BadInput(f"--data: not valid JSON ({exc.msg} at character {exc.pos})") from None
    opts: dict[str, Any] = {"priority": priority}
    if delay is not None:
        opts["delay"] = delay
    if attempts is not None:
        opts["attempts"] = attempts
    if job_id is not None:
        opts["job_id"] = job_id
    try:
        job = engine.service(queue).add(name, payload, **opts)
    except JobOptionError as exc:
        flag = {"job_id": "job-id"}.get(exc.field, exc.field)
        raise BadInput(f"--{flag}: {exc.rule}" if exc.field not in ("name",)
                       else str(exc)) from None
    click.echo(json.dumps(job, indent=2) if as_json else job["id"])


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@with_engine
def show_job(engine: Any, job_id: str, as_json: bool, **_: Any) -> None:
    """Show a job by its id."""
    if not JOB_ID.fullmatch(job_id):
        raise BadInput("ID: must be a job id (a whole number)")
    job = engine.find_job(int(job_id))
    if job is None:
        click.echo(f"Error: job {job_id} not found", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    for key in ("id", "queue", "name", "state", "priority", "attemptsMade", "attempts",
                "failedReason", "data", "returnvalue"):
        value = json.dumps(job[key]) if key in ("data", "returnvalue") else job[key]
        click.echo(f"{key:>13}: {value}")
    for error in job.get("errors", []):
        click.echo(f"{'attempt ' + str(error['attempt']):>13}: {error['error']}")


# -- queues -------------------------------------------------------------------------------

@cli.group("queue")
def queue_group() -> None:
    """Inspect and manage queues."""


STAT_KEYS = ("waiting", "active", "completed", "failed", "delayed", "total")


@queue_group.command("stats")
@click.argument("queue", required=False)
@click.option("--json", "as_json", is_flag=True, help="An object keyed by queue name.")
@with_engine
def queue_stats(engine: Any, queue: str | None, as_json: bool, **_: Any) -> None:
    """Job counts by state, for one queue or all."""
    names = [queue] if queue else list(engine.queues)
    stats = {name: engine.service(name).get_stats() for name in names}
    if as_json:
        click.echo(json.dumps({n: {k: s[k] for k in (*STAT_KEYS, "paused")}
                               for n, s in stats.items()}, indent=2))
        return
    click.echo(f"{'queue':<16}" + "".join(f"{k:>11}" for k in (*STAT_KEYS, "paused")))
    for name, s in stats.items():
        click.echo(f"{name:<16}" + "".join(f"{s[k]:>11}" for k in (*STAT_KEYS, "paused")))


@queue_group.command("retry-failed")
@click.argument("queue")
@with_engine
def retry_failed(engine: Any, queue: str, **_: Any) -> None:
    """Send every failed job of QUEUE back to waiting."""
    click.echo(f"retried {engine.service(queue).retry_all_failed()} job(s)")


@queue_group.command("clean")
@click.argument("queue")
@click.option("--state", default="completed", show_default=True,
              type=click.Choice(["completed", "failed", "waiting", "delayed"]))
@click.option("--grace", default="0", show_default=True,
              help="Only jobs older than this (90, 30s, 15m, 24h, 7d).")
@click.option("--limit", type=int, default=100000, show_default=True)
@with_engine
def clean_queue(engine: Any, queue: str, state: str, grace: str, limit: int, **_: Any) -> None:
    """Delete jobs of QUEUE in a state, older than a grace period."""
    try:
        seconds = parse_duration(grace)
    except ValueError as exc:
        raise BadInput(f"--grace: {exc}") from None
    try:
        removed = engine.service(queue).clean(state, seconds, limit)
    except JobOptionError as exc:
        raise BadInput(f"--{exc.field}: {exc.rule}") from None
    click.echo(f"removed {removed} {state} job(s)")


@queue_group.command("pause")
@click.argument("queue")
@with_engine
def pause_queue(engine: Any, queue: str, **_: Any) -> None:
    """Stop workers from taking new jobs from QUEUE."""
    engine.service(queue).pause()
    click.echo(f"{queue} paused")


@queue_group.command("resume")
@click.argument("queue")
@with_engine
def resume_queue(engine: Any, queue: str, **_: Any) -> None:
    """Let workers take jobs from QUEUE again."""
    engine.service(queue).resume()
    click.echo(f"{queue} resumed")


# -- accounts ------------------------------------------------------------------------------

def _read_password(confirm: bool = True) -> str:
    """From a prompt on a terminal, else the first line of stdin (never an argument)."""
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\n")


def _account_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Account errors as one line: bad input and clashes exit 2, unknown names 1."""
    from synthbox.errors import Conflict, InputError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InputError, Conflict) as exc:
            raise BadInput(str(exc)) from None
        except LookupError as exc:
            click.echo(f"Error: {exc.args[0]}", err=True)
            sys.exit(1)

    return wrapper


@cli.group("users")
def users_group() -> None:
    """Manage user accounts (roles: admin, operator, viewer)."""


@users_group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), required=True)
@with_engine
@_account_errors
def create_user_command(engine: Any, name: str, role: str, **_: Any) -> None:
    """Create a user; the password is asked for (or read from stdin), never an argument."""
    from synthbox.accounts.setup import finish_setup
    from synthbox.accounts.users import check_name, check_password, create_user

    check_name(name)
    password = check_password(_read_password())
    create_user(name, password, role, actor="cli")
    finish_setup(engine.data_path)
    click.echo(f"created {role} {name}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_engine
def list_users_command(engine: Any, as_json: bool, **_: Any) -> None:
    """List users."""
    from synthbox.accounts.users import list_users

    found, _cursor = list_users()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for user in found:
        state = "disabled" if user["disabled"] else "active"
        click.echo(f"{user['name']:<24} {user['role']:<9} {state}")


@users_group.command("disable")
@click.argument("name")
@with_engine
@_account_errors
def disable_user_command(engine: Any, name: str, **_: Any) -> None:
    """Disable a user: their sessions and tokens end now."""
    from synthbox.accounts.users import get_user, set_disabled

    set_disabled(get_user(name), True, actor="cli")
    click.echo(f"disabled {name}")


@users_group.command("enable")
@click.argument("name")
@with_engine
@_account_errors
def enable_user_command(engine: Any, name: str, **_: Any) -> None:
    """Enable a disabled user."""
    from synthbox.accounts.users import get_user, set_disabled

    set_disabled(get_user(name), False, actor="cli")
    click.echo(f"enabled {name}")


@users_group.command("password")
@click.argument("name")
@with_engine
@_account_errors
def password_command(engine: Any, name: str, **_: Any) -> None:
    """Set a user's password (asked for, or read from stdin); their sign-ins end."""
    from synthbox.accounts.users import check_password, get_user, set_password

    user = get_user(name)
    set_password(user, check_password(_read_password()), actor="cli")
    click.echo(f"password of {name} changed")


@cli.group("tokens")
def tokens_group() -> None:
    """Manage API tokens for services."""


@tokens_group.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["jobs:write", "email:send", "orchestration:trigger", "admin"]))
@with_engine
@_account_errors
def create_token_command(engine: Any, name: str, scopes: tuple[str, ...], **_: Any) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from synthbox.accounts.tokens import create_token

    _record, value = create_token(name, list(scopes), actor="cli")
    click.echo(value)


@tokens_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_engine
def list_tokens_command(engine: Any, as_json: bool, **_: Any) -> None:
    """List tokens (never their values)."""
    from synthbox.accounts.tokens import list_tokens

    found, _cursor = list_tokens()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for token in found:
        state = "revoked" if token["revokedAt"] else "active"
        click.echo(f"{token['name']:<24} {' '.join(token['scopes']):<40} {state}")


@tokens_group.command("revoke")
@click.argument("name")
@with_engine
def revoke_token_command(engine: Any, name: str, **_: Any) -> None:
    """Revoke a token now."""
    from synthbox.accounts.tokens import revoke_token

    if not revoke_token(name, actor="cli"):
        click.echo(f"Error: no active token named {name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {name}")


# -- email ---------------------------------------------------------------------------------

@cli.group("email")
def email_group() -> None:
    """Send email through the email queue, check SMTP, manage suppressions."""


@email_group.command("send")
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--subject", required=True)
@click.option("--text", default=None, help="The plain-text body.")
@click.option("--html-file", default=None, help="A file holding the HTML body.")
@click.option("--from", "sender", default=None, help="Sender (default: mail_from).")
@click.option("--at", "send_at", default=None,
              help="Send later: an ISO time (2026-12-25T09:00:00Z) or a delay (15m, 2h).")
@click.option("--priority", type=int, default=0, help="0-10, higher is sent first.")
@with_engine
def send_email_command(engine: Any, to: tuple[str, ...], subject: str, text: str | None,
                       html_file: str | None, sender: str | None, send_at: str | None,
                       priority: int, **_: Any) -> None:
    """Queue an email and print its id."""
    import datetime
    import time
    from pathlib import Path

    from synthbox.errors import InputError
    from synthbox.mail.service import EmailService

    payload: dict[str, Any] = {"to": list(to), "subject": subject, "priority": priority}
    if sender:
        payload["from"] = sender
    if text is not None:
        payload["text"] = text
    if html_file is not None:
        try:
            payload["html"] = Path(html_file).read_text()
        except OSError as exc:
            raise BadInput(f"--html-file: cannot read {html_file} ({exc.strerror})") from None
    if send_at:
        try:
            payload["sendAt"] = (time.time() + parse_duration(send_at)) * 1000
        except ValueError:
            try:
                stamp = datetime.datetime.fromisoformat(send_at.replace("Z", "+00:00"))
            except ValueError:
                raise BadInput("--at: must be an ISO time or a delay such as 15m") from None
            payload["sendAt"] = stamp.timestamp() * 1000
    try:
        email = EmailService(engine).send(payload)
    except InputError as exc:
        flag = {"text": "--text", "to": "--to", "from": "--from", "subject": "--subject"}
        raise BadInput(f"{flag.get(exc.field.split('[')[0], exc.field)}: {exc.rule}") from None
    click.echo(email["id"])


@email_group.command("test-smtp")
@settings_options
def test_smtp_command(**options: Any) -> None:
    """Connect to each configured SMTP server and say what it offers."""
    from synthbox.mail.transport import SmtpPool, parse_servers

    settings = _settings(options)
    servers = parse_servers(settings.smtp_url)
    if not servers:
        raise BadInput("smtp_url: no SMTP server configured (--smtp-url or SYNTHBOX_SMTP_URL)")
    lines = SmtpPool(servers, settings.smtp_timeout, settings.smtp_ca_file).describe()
    for line in lines:
        click.echo(line)
    sys.exit(0 if all(": ok;" in line for line in lines) else 1)


@email_group.command("suppress")
@click.argument("entry")
@click.option("--reason", default="", help="Why (shown to admins).")
@with_engine
def suppress_command(engine: Any, entry: str, reason: str, **_: Any) -> None:
    """Never send to ADDRESS, or to any address @DOMAIN, again."""
    from synthbox.errors import InputError
    from synthbox.mail.service import EmailService

    try:
        EmailService(engine).suppress(entry, reason)
    except InputError as exc:
        raise BadInput(f"ENTRY: {exc.rule}") from None
    click.echo(f"suppressed {entry}")


# -- the service ---------------------------------------------------------------------------

@cli.command("install")
@click.option("--root", "root_dir", default="/", show_default=True,
              help="Write the tree under this folder instead (no user, no systemd).")
@click.option("--binary", default=None, help="The file to install (default: this binary).")
@click.option("--overwrite-config", is_flag=True, help="Replace an existing synthbox.toml.")
def install_command(root_dir: str, binary: str | None, overwrite_config: bool) -> None:
    """Install this binary as the synthbox systemd service, and start it."""
    from pathlib import Path

    from synthbox.install import CONFIG, DATA, InstallError, install, wait_until_healthy

    if binary is None and not getattr(sys, "frozen", False):
        raise BadInput("--binary: needed when not run from the built binary "
                       "(packaging/build.sh builds dist/synthbox)")
    source = Path(binary) if binary else Path(sys.executable)
    root = Path(root_dir)
    try:
        for line in install(root, source, overwrite_config):
            click.echo(line)
    except InstallError as exc:
        raise BadInput(str(exc)) from None
    if root.resolve() != Path("/"):
        return
    settings = load_settings(config_path=str(root / CONFIG))
    if not wait_until_healthy(settings.port):
        click.echo("Error: the service did not become healthy in 60 s; see "
                   "journalctl -u synthbox", err=True)
        sys.exit(1)
    started = (root / DATA / "synthbox.log").read_text().rsplit("--- ", 1)[-1]
    click.echo(started.split("\n", 1)[-1].rstrip())


@cli.command("uninstall")
@click.option("--root", "root_dir", default="/", show_default=True,
              help="Remove the tree written under this folder.")
@click.option("--purge", is_flag=True, help="Also remove the data, the config and the user.")
def uninstall_command(root_dir: str, purge: bool) -> None:
    """Stop and remove the service and the binary (the data stays unless --purge)."""
    from pathlib import Path

    from synthbox.install import InstallError, uninstall

    try:
        for line in uninstall(Path(root_dir), purge):
            click.echo(line)
    except InstallError as exc:
        raise BadInput(str(exc)) from None


# -- checks -------------------------------------------------------------------------------

@cli.command()
def version() -> None:
    """Print the version, and how this copy runs (binary or Python)."""
    import platform

    how = "single binary" if getattr(sys, "frozen", False) else "Python package"
    click.echo(f"synthbox {__version__} ({how}, Python {platform.python_version()}, "
               f"{platform.system()} {platform.machine()})")


@cli.command()
@settings_options
def doctor(**options: Any) -> None:
    """Check the configured backends with a real job round trip."""
    from synthbox.doctor import run_doctor

    sys.exit(run_doctor(_settings(options)))


@cli.command()
@click.option("--backend", type=click.Choice(["sqlite", "redis"]), default="sqlite",
              show_default=True, help="The queue transport to measure.")
@click.option("--jobs", "job_count", type=click.IntRange(1, 10_000_000), default=20000,
              show_default=True, help="How many no-op jobs to enqueue and drain.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@settings_options
def bench(backend: str, job_count: int, as_json: bool, **options: Any) -> None:
    """Measure enqueue and drain rates, pickup latency and memory with the real engine."""
    from synthbox.bench import run_bench

    settings = _settings(options)
    sys.exit(run_bench(settings, backend, job_count, as_json))


def main(argv: list[str] | None = None) -> None:
    """Entry point: click, with every error as one line and exit code 2 for bad input."""
    try:
        cli.main(args=argv, prog_name="synthbox", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        click.echo(f"Error: {message}", err=True)
        sys.exit(exc.exit_code)
    except (SettingsError, JobOptionError, UnknownQueue, DataDirError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except StartError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    sys.exit(0)
