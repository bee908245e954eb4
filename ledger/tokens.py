"""API tokens minted at run time (`trackrecord token mint`), next to the ones the environment
holds: a client's or the admin's bearer token that needs no restart to start or stop working.

Only a token's SHA-256 is stored. The tokens are 32 random bytes, so a plain hash is enough (a
slow password hash guards guessable secrets; nothing here is guessable), and a lookup by hash
compares no secret byte by byte. The token itself is shown once, when it is minted.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from trackrecord.models import Base, utcnow

PREFIX = "trk_"  # says what a leaked string is (secret scanners match such prefixes)
HINT_CHARS = 8  # shown by `token list`, so a person can tell tokens apart


class TokenError(Exception):
    """A token command that cannot be done, worded for the operator."""


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The client whose teams the token reads; NULL is an admin token, which reads every client.
    client: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def admin(self) -> bool:
        return self.client is None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint(session: Session, client: str | None, name: str | None = None) -> tuple[ApiToken, str]:
    """A new token for `client` (None: admin). Returns the row and the token, which is not
    stored and cannot be shown again."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(client=client, name=name, token_hash=digest(token), hint=token[:HINT_CHARS])
    session.add(row)
    session.flush()
    return row, token


def listing(session: Session, include_revoked: bool = False) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise TokenError(f"no token with id {token_id} (see `trackrecord token list`)")
    if row.revoked_at is not None:
        raise TokenError(f"token {token_id} was already revoked on {row.revoked_at:%Y-%m-%d}")
    row.revoked_at = datetime.now(UTC)
    return row


def lookup(session: Session, token: str) -> ApiToken | None:
    """The live (unrevoked) row of a presented token, or None."""
    return session.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
    )
