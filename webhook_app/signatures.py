"""HMAC-SHA256 webhook signatures, as GitHub (X-Hub-Signature-256) and Jira Cloud
(X-Hub-Signature) send them: ``sha256=<hex>`` over the raw request body.

https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time compare, so the answer's timing leaks nothing about the expected value."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())
