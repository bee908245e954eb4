"""Who is looking at a page: a signed-in session or an `Authorization: Bearer` token, its CSRF
token, and the session cookie's key and flags. The rule of what a principal may see stays in
`webhook_app.auth` (`resolve`, `team_for`, `client_for`); this module only finds the token.

The session cookie holds the principal and the token *sealed* (Fernet: encrypted and signed
with a key derived from the app's secret key), never the token itself or a hash anyone could
try tokens against. Each request unseals it and asks `resolve()` again, so a token that is
revoked (its variable unset, or a minted token withdrawn) ends every session signed in with it.

The secret key is `TRACKRECORD_SECRET_KEY`, or else a random one written once to
`secret_key` (mode 0600) in the user's data folder, `$XDG_DATA_HOME/trackrecord` (by default
`~/.local/share/trackrecord`, where the default SQLite database lives too), so sessions survive
restarts and are shared by the workers of one machine, wherever the server is started from.
Several servers behind one balancer must share the variable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, abort, request, session
from flask.sessions import SecureCookieSessionInterface

from webhook_app.auth import ADMIN, Unauthorized, resolve

SECRET_KEY_ENV = "TRACKRECORD_SECRET_KEY"
SESSION_DAYS = 7
CSRF_FIELD = "csrf_token"
ADMIN_NAME = "admin"  # how the session records the ADMIN principal (the object is per process)


class _SessionInterface(SecureCookieSessionInterface):
    """`Secure` when the request came over HTTPS (behind a proxy only through ProxyFix), or
    always when SESSION_COOKIE_SECURE is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def secret_key() -> str:
    """The configured key, else the instance folder's, created on first use. O_EXCL decides a
    race between workers starting at once: the loser reads the winner's key."""
    configured = os.environ.get(SECRET_KEY_ENV)
    if configured:
        return configured
    data = os.environ.get("XDG_DATA_HOME")
    base = Path(data) if data and os.path.isabs(data) else Path.home() / ".local" / "share"
    path = base / "trackrecord" / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def init_app(app: Flask) -> None:
    app.secret_key = secret_key()
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="trackrecord_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=SESSION_DAYS),
    )


def _fernet() -> Fernet:
    from flask import current_app

    digest = hashlib.sha256(b"trackrecord pages seal\0" + current_app.secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _name(who) -> str:
    return ADMIN_NAME if who is ADMIN else f"client:{who}"


def sign_in(token: str):
    """The principal of `token`, now kept in the session; None for an unknown token."""
    who = resolve(token)
    if who is None:
        return None
    session.clear()  # a fresh session: nothing from before the sign-in carries over
    session.permanent = True
    session["who"] = _name(who)
    session["seal"] = _fernet().encrypt(token.encode()).decode()
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return who


def sign_out() -> None:
    session.clear()


def bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def viewer():
    """ADMIN, a client's name, or None: from the bearer token when one is sent (a script or a
    wall screen), else from the session, its token checked again."""
    token = bearer()
    if token is not None:
        return resolve(token)
    seal = session.get("seal")
    if not seal:
        return None
    try:
        token = _fernet().decrypt(seal.encode()).decode()
    except InvalidToken:  # sealed under another secret key
        session.clear()
        return None
    who = resolve(token)
    if who is None or _name(who) != session.get("who"):
        session.clear()  # the token was revoked, or now belongs to someone else
        return None
    return who


def csrf_token() -> str:
    """The session's CSRF token, made on first use (the sign-in form needs one before sign-in)."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def check_csrf() -> None:
    """Every POST of the pages carries the session's token. A bearer request is exempt: a
    browser never adds that header on its own, so another site cannot forge one."""
    if request.method != "POST" or bearer() is not None:
        return
    sent, kept = request.form.get(CSRF_FIELD, ""), session.get(CSRF_FIELD, "")
    if not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        abort(400, description="The form has expired. Reload the page and try again.")


def page_principal():
    """`webhook_app.auth.principal()` for routes a signed-in browser opens too (a report linked
    from the client page): the bearer token, else the session; 401 otherwise."""
    who = viewer()
    if who is None:
        raise Unauthorized("sign in, or send the token as 'Authorization: Bearer <token>'")
    return who
