"""HMAC-SHA256 webhook signatures, as GitHub (X-Hub-Signature-256) and Jira Cloud
(X-Hub-Signature) send them: ``sha256=<hex>`` over the raw request body.

The signature is checked before anything reads the body: a request is compared against every
secret configured for its platform, and the secret that signed it says which sources
(repositories, Jira projects) it may speak for. What the body names is checked against that
afterwards, so a body signed with one client's secret cannot speak for another client's source
(docs/security.md).

https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from trackrecord.config import (
    GLOBAL_SECRET_ENV,
    Config,
    Source,
    secret_groups,
    source_index,
    unsigned_sources,
)
from trackrecord.logs import get_logger
from webhook_app.errors import Rejected

log = get_logger("webhook_app")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time compare, so the answer's timing leaks nothing about the expected value."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def matching(secrets: Iterable[str], body: bytes, header: str | None) -> str | None:
    """The one of `secrets` that signed `body`, or None.

    Every secret is compared, each in constant time, and the loop does not stop at a match: the
    time taken tells how many secrets there are, not which one (if any) matched.
    """
    found = None
    for secret in secrets:
        if verify(secret, body, header) and found is None:
            found = secret
    return found


@dataclass(frozen=True)
class Verified:
    """What a request's signature proves: the sources of one platform it may speak for."""

    kind: str
    sources: tuple[Source, ...]

    def covers(self, source: Source) -> bool:
        want = source_index(source.kind, source.key)
        return any(source_index(s.kind, s.key) == want for s in self.sources)

    def keys(self) -> list[str]:
        return sorted(s.key for s in self.sources)


def verify_request(
    kind: str,
    config: Config,
    body: bytes,
    header: str | None,
    *,
    header_name: str,
    delivery: str,
    allow_unsigned: bool = False,
    env: dict[str, str] | None = None,
) -> Verified:
    """Check the raw body's signature against every secret configured for `kind` (the global
    one and each source's own) and answer which sources it verifies; raise `Rejected` (401)
    when it verifies none. Nothing here reads the body.

    `allow_unsigned` (Jira Server/DC, which cannot sign): a request without a signature header
    speaks for the sources that have no secret at all. A header that is present must match.
    """
    env = os.environ if env is None else env
    groups = secret_groups(config, kind, env)
    header = (header or "").strip() or None
    if header is None:
        unsigned = unsigned_sources(config, kind, env) if allow_unsigned else ()
        if allow_unsigned and (unsigned or not groups):
            return Verified(kind, unsigned)
        if not groups:
            raise _no_secret(kind)
        raise Rejected(401, "missing_signature", f"header {header_name} is required")
    if not groups:
        if allow_unsigned:
            # Nothing to check a signature against; the operator accepts unsigned deliveries.
            return Verified(kind, unsigned_sources(config, kind, env))
        raise _no_secret(kind)
    secret = matching(groups, body, header)
    if secret is None:
        log.warning(f"{kind}.webhook.bad_signature", delivery=delivery)
        raise Rejected(
            401, "bad_signature", f"{header_name} matches none of the configured webhook secrets"
        )
    return Verified(kind, groups[secret])


def require_covered(verified: Verified, source: Source, *, delivery: str) -> None:
    """The source a verified body names must be one its signature speaks for: a body signed
    with one source's secret cannot name another source (401, as any bad signature)."""
    if verified.covers(source):
        return
    noun = "repository" if source.kind == "github" else "Jira project"
    log.warning(f"{source.kind}.webhook.foreign_source", delivery=delivery, source=source.key)
    raise Rejected(
        401,
        "bad_signature",
        f"the signature is not that of {noun} {source.key!r}: it was made with a secret that "
        f"{noun} does not use",
    )


def _no_secret(kind: str) -> Rejected:
    var = GLOBAL_SECRET_ENV[kind]
    hint = (
        "; set one, or set TRACKRECORD_JIRA_ALLOW_UNSIGNED=1 for a Jira that cannot sign"
        if kind == "jira"
        else ""
    )
    return Rejected(401, "no_secret", f"no webhook secret is configured ({var}){hint}")
