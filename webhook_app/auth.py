"""Who is asking: the bearer token's principal, and what it may see. One home for the rule, used
by the JSON API and every route behind a token.

A client's token comes from the variable its `token_env` names and reads only its own teams;
`TRACKRECORD_ADMIN_TOKEN` reads all. Tokens are read from the environment on each request, and
tokens minted by `trackrecord token mint` from the database (ledger/tokens.py).
No existence leaks: to a client's token, another client's team (or the other client itself)
and a name that exists nowhere answer the same 404 with the same body. There is no 403.
"""

from __future__ import annotations

import hmac
import os

from flask import request

from ledger import tokens
from trackrecord.config import ADMIN_TOKEN_ENV
from webhook_app.errors import Rejected
from webhook_app.services import services

ADMIN = object()  # the principal of the admin token: every client


class Unauthorized(Rejected):
    """401 with the challenge RFC 6750 asks for, so a client knows which scheme to use."""

    def __init__(self, message: str):
        super().__init__(401, "unauthorized", message)

    def response(self):
        body, status = super().response()
        return body, status, {"WWW-Authenticate": 'Bearer realm="trackrecord"'}


def resolve(token: str):
    """ADMIN, the name of the client the token belongs to, or None.

    The environment's tokens first, then those minted with `trackrecord token mint`, looked up
    by their SHA-256 on every request, so a new or revoked token counts at once, no restart."""
    config = services().settings.config
    candidates = [(ADMIN, os.environ.get(ADMIN_TOKEN_ENV))]
    candidates += [(c.name, os.environ.get(c.token_env)) for c in config.clients if c.token_env]
    found = None
    for who, secret in candidates:
        # Every candidate is compared, in constant time, so timing says nothing about which
        # token came close. An unset or empty variable never matches.
        if secret and hmac.compare_digest(token.encode(), secret.encode()) and found is None:
            found = who
    if found is not None:
        return found
    with services().sessions() as session:
        row = tokens.lookup(session, token)
    if row is None:
        return None
    if row.admin:
        return ADMIN
    # A client taken out of the configuration takes its minted tokens with it.
    return row.client if config.client(row.client) is not None else None


def principal():
    """ADMIN or the name of the client whose bearer token was sent; 401 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the API token as 'Authorization: Bearer <token>'")
    found = resolve(token)
    if found is None:
        raise Unauthorized("unknown API token")
    return found


def not_found(kind: str, name: str) -> Rejected:
    # One body for "exists nowhere" and "not this token's": it names only what was asked for.
    return Rejected(404, "not_found", f"no {kind} {name!r} for this token")


def team_for(who, name: str):
    """(team, its client) when `who` may see the team; 404 otherwise."""
    config = services().settings.config
    team, client = config.team(name), config.client_of(name)
    if team is None or (who is not ADMIN and client.name != who):
        raise not_found("team", name)
    return team, client


def client_for(who, name: str):
    """The client when `who` may see it; 404 otherwise."""
    model = services().settings.config.client(name)
    if model is None or (who is not ADMIN and model.name != who):
        raise not_found("client", name)
    return model
