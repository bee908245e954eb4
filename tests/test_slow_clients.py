"""Slow and lying senders against the real `trackrecord serve` (issue 8, item 9): while two
clients trickle a body at a byte a second and a third promises more body than it sends, the
health check and a real signed delivery still answer at once, and each of the three gets a 4xx
within the read deadline, never a 500 and never a worker held for gunicorn's 30 s."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest
import requests
from sqlalchemy import func
from sqlalchemy import select as sql_select

from tests.helpers import fixture_bytes, github_headers
from tests.test_e2e import Served
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from webhook_app.intake import IDLE_SECONDS, READ_SECONDS

BODY = fixture_bytes("github/issues.opened.json")
PROMPT = 2.0  # seconds within which a request not held up by a slow sender must answer


@pytest.fixture
def served(env, tmp_path):
    server = Served(tmp_path / "serve.log", "--workers", "2").wait_ready()
    yield server
    server.stop()


def head(port: int, length: int | None) -> bytes:
    lines = [
        "POST /webhooks/github HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "X-GitHub-Event: issues",
        "X-GitHub-Delivery: slow-sender",
        "X-Hub-Signature-256: sha256=" + "0" * 64,
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(sock: socket.socket, seconds: float) -> int | None:
    """The status code of the answer on `sock`, or None when none comes within `seconds`."""
    deadline = time.monotonic() + seconds
    data = b""
    while b"\r\n" not in data and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/"):
        return None
    return int(data.split(b" ", 2)[1])


class Sender(threading.Thread):
    """One raw-socket client; `run_client` does the talking, `answer` is (status, seconds)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.answer: tuple[int | None, float] | None = None

    def run(self) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            status = self.run_client(sock)
        self.answer = (status, time.monotonic() - started)


class Trickler(Sender):
    """Promises 60 bytes and sends one a second, until the server answers (at most 60 s)."""

    def run_client(self, sock: socket.socket) -> int | None:
        sock.sendall(head(self.port, 60))
        for _ in range(60):
            try:
                sock.sendall(b" ")
            except OSError:  # the server answered and closed
                break
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                break
        return status_of(sock, 5)


class Liar(Sender):
    """Promises 1000 bytes, sends a few, then waits with the connection open."""

    def run_client(self, sock: socket.socket) -> int | None:
        sock.sendall(head(self.port, 1000) + b'{"action": "opened"}')
        return status_of(sock, READ_SECONDS + 10)


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    resp = requests.get(url, timeout=10)
    return resp.status_code, time.monotonic() - started


def stored(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return s.scalar(sql_select(func.count()).select_from(Delivery))


def test_slow_senders_starve_nobody_and_get_a_4xx_in_time(served, settings):
    senders = [Trickler(served.port), Trickler(served.port), Liar(served.port)]
    for sender in senders:
        sender.start()
    time.sleep(1.5)  # all three are now in the middle of their bodies

    # Both gunicorn workers are asked to serve while the three are held (a sync worker per
    # slow sender would leave nothing for these).
    for _ in range(4):
        status, seconds = timed_get(f"{served.base}/healthz")
        assert status == 200 and seconds < PROMPT, (status, seconds)
        time.sleep(0.5)
    started = time.monotonic()
    resp = requests.post(
        f"{served.base}/webhooks/github",
        data=BODY,
        headers=github_headers("issues", BODY, "while-slow"),
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    assert time.monotonic() - started < PROMPT

    for sender in senders:
        sender.join(READ_SECONDS + 30)
        assert not sender.is_alive()
    (s1, t1), (s2, t2), (s3, t3) = (sender.answer for sender in senders)
    # The tricklers never pause long enough to trip the idle limit: the whole-body deadline
    # stops them. The liar goes quiet, and the idle limit answers it sooner.
    assert (s1, s2) == (408, 408), (s1, s2)
    assert READ_SECONDS - 1 < t1 < READ_SECONDS + 3 and READ_SECONDS - 1 < t2 < READ_SECONDS + 3
    assert s3 == 408 and t3 < IDLE_SECONDS + 3, (s3, t3)
    assert stored(settings) == 1  # only the real delivery
    assert "500" not in [line.split()[-3] for line in access_lines(served)]


def access_lines(served) -> list[str]:
    return [line for line in served.output().splitlines() if '"POST /webhooks/' in line]


def test_a_body_shorter_than_its_content_length_is_400(served, settings):
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(head(served.port, 1000) + b'{"action": "opened"}')
        sock.shutdown(socket.SHUT_WR)  # and says so: the body ends here
        status = status_of(sock, 5)
    assert status == 400
    assert time.monotonic() - started < PROMPT
    assert stored(settings) == 0
