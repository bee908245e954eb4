"""`trackrecord token mint|list|revoke`: API tokens that work, and stop working, without a
restart (ledger/tokens.py). A token is printed once, at mint; only its hash is kept."""

from __future__ import annotations

import click

from cli.common import fail, load_settings, open_database
from ledger import tokens


@click.group()
def token() -> None:
    """Mint, list and revoke API tokens (no restart needed)."""


@token.command("mint")
@click.argument("client", required=False)
@click.option("--admin", is_flag=True, help="A token that reads every client.")
@click.option("--name", help="A label to tell tokens apart (who or what uses it).")
def mint(client: str | None, admin: bool, name: str | None) -> None:
    """Mint a token for CLIENT (or --admin) and print it, once."""
    settings = load_settings()
    if admin == (client is not None):
        fail("name a CLIENT or pass --admin (one of the two)", code=2)
    if client is not None and settings.config.client(client) is None:
        known = ", ".join(c.name for c in settings.config.clients) or "none configured"
        fail(f"no client {client!r} in the configuration (clients: {known})", code=2)
    Session = open_database(settings)
    with Session() as session, session.begin():
        row, value = tokens.mint(session, client, name)
    who = "admin (every client)" if row.admin else f"client {client}"
    click.echo(f"token {row.id} for {who}; shown once, keep it now:", err=True)
    click.echo(value)


def _describe(row: tokens.ApiToken) -> str:
    state = "active" if row.revoked_at is None else f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
    return (
        f"{row.id}\t{'(admin)' if row.admin else row.client}\t{row.hint}…\t"
        f"{row.created_at:%Y-%m-%d %H:%M}\t{state}\t{row.name or ''}"
    )


@token.command("list")
@click.option("--all", "show_all", is_flag=True, help="Revoked tokens too.")
def list_tokens(show_all: bool) -> None:
    """Minted tokens: id, client, first characters, created, state, label. (Tokens from the
    environment, such as TRACKRECORD_ADMIN_TOKEN, are not listed.)"""
    Session = open_database(load_settings())
    with Session() as session:
        rows = tokens.listing(session, include_revoked=show_all)
    if not rows:
        click.echo("no tokens minted" + ("" if show_all else " (or all revoked: --all)"))
    for row in rows:
        click.echo(_describe(row))


@token.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID: its next request is refused (401)."""
    Session = open_database(load_settings())
    try:
        with Session() as session, session.begin():
            row = tokens.revoke(session, token_id)
            click.echo(f"revoked: {_describe(row)}")
    except tokens.TokenError as exc:
        fail(str(exc))
