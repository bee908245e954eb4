"""The floor of bench/load.py: a bare Flask endpoint that reads the body, checks its HMAC
signature and answers 202, nothing else. Served by gunicorn with sync workers:

    gunicorn -w 2 -k sync bench.floor_app:app   (FLOOR_SECRET names the secret)
"""

from __future__ import annotations

import hashlib
import hmac
import os

from flask import Flask, request

SECRET = os.environ.get("FLOOR_SECRET", "bench-secret").encode()
app = Flask(__name__)


@app.post("/webhooks/github")
def hook():
    body = request.get_data()
    want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, request.headers.get("X-Hub-Signature-256", "")):
        return {"error": "bad_signature"}, 401
    return {"delivery": request.headers.get("X-GitHub-Delivery"), "status": "queued"}, 202
