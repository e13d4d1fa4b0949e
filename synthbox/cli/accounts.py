"""`synthbox users` and `synthbox tokens`: accounts and API tokens."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from synthbox.accounts.setup import finish_setup
from synthbox.accounts.tokens import create_token, list_tokens, revoke_token
from synthbox.accounts.users import (
    check_name,
    check_password,
    create_user,
    get_user,
    list_users,
    set_disabled,
    set_password,
)
from synthbox.cli.base import with_engine


def _read_password(confirm: bool = True) -> str:
    """From a prompt on a terminal, else the first line of stdin (never an argument)."""
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\n")


@click.group("users")
def users_group() -> None:
    """Manage user accounts (roles: admin, operator, viewer)."""


@users_group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), required=True)
@with_engine
def create_user_command(engine: Any, name: str, role: str, **_: Any) -> None:
    """Create a user; the password is asked for (or read from stdin), never an argument."""
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
def disable_user_command(engine: Any, name: str, **_: Any) -> None:
    """Disable a user: their sessions and tokens end now."""
    set_disabled(get_user(name), True, actor="cli")
    click.echo(f"disabled {name}")


@users_group.command("enable")
@click.argument("name")
@with_engine
def enable_user_command(engine: Any, name: str, **_: Any) -> None:
    """Enable a disabled user."""
    set_disabled(get_user(name), False, actor="cli")
    click.echo(f"enabled {name}")


@users_group.command("password")
@click.argument("name")
@with_engine
def password_command(engine: Any, name: str, **_: Any) -> None:
    """Set a user's password (asked for, or read from stdin); their sign-ins end."""
    user = get_user(name)
    set_password(user, check_password(_read_password()), actor="cli")
    click.echo(f"password of {name} changed")


@click.group("tokens")
def tokens_group() -> None:
    """Manage API tokens for services."""


@tokens_group.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["jobs:write", "email:send", "orchestration:trigger", "admin"]))


@with_engine
def create_token_command(engine: Any, name: str, scopes: tuple[str, ...], **_: Any) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    _record, value = create_token(name, list(scopes), actor="cli")
    click.echo(value)


@tokens_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_engine
def list_tokens_command(engine: Any, as_json: bool, **_: Any) -> None:
    """List tokens (never their values)."""
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
    if not revoke_token(name, actor="cli"):
        click.echo(f"Error: no active token named {name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {name}")
