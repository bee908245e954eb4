"""The real processes of the fault tests under load: `trackrecord serve`, `trackrecord worker`,
the senders around them (tests.fault_load), and a TCP proxy to cut the database off."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import port_for
import pytest
import requests
from redis import Redis
from rq import Queue, Worker

from tests.fault_load import Senders

CLI = [sys.executable, "-m", "cli"]


class Web:
    """`trackrecord serve` on `port` (a new one when not given), started at once; `ready()`
    waits until it answers. Its output goes to `log`."""

    def __init__(self, log: Path, port: int | None = None, workers: int = 1):
        self.port = port or port_for.select_random()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port), "--workers", str(workers)],
                env=os.environ.copy(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(self, seconds: float = 60) -> Web:
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"trackrecord serve did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def term(self, seconds: float = 40) -> int:
        """SIGTERM, as a rolling restart sends it; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(seconds)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class WorkerProcess:
    """`trackrecord worker` in a process group of its own (with RQ's scheduler process, when it
    holds the scheduler lock); its output in `log`."""

    def __init__(self, log: Path):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "worker"],
                env=os.environ.copy(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.name: str | None = None

    def registered(self, redis: Redis, queue: Queue, seconds: float = 60) -> WorkerProcess:
        """Wait until RQ lists the worker (it takes jobs from then on); learn its name."""
        deadline = time.monotonic() + seconds
        while self.name is None:
            for worker in Worker.all(connection=redis, queue=queue):
                if worker.pid == self.proc.pid:
                    self.name = worker.name
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.05)
        return self

    def term(self, seconds: float) -> tuple[int, float]:
        """SIGTERM to the worker alone (as Kubernetes and docker send it to the container's
        first process); its exit code and how long it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(seconds)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL to the worker and its scheduler process, as a lost machine."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


class Stack:
    """The processes and senders of one test, all stopped at its end whatever happened."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.webs: list[Web] = []
        self.workers: list[WorkerProcess] = []
        self.all_senders: list[Senders] = []

    def web(self, port: int | None = None, workers: int = 1) -> Web:
        """Started; not yet answering (`ready()`), so that starts can overlap."""
        self.webs.append(Web(self.tmp_path / f"web-{len(self.webs)}.log", port, workers))
        return self.webs[-1]

    def worker(self) -> WorkerProcess:
        """Started; not yet taking jobs (`registered()`), so that starts can overlap."""
        self.workers.append(WorkerProcess(self.tmp_path / f"worker-{len(self.workers)}.log"))
        return self.workers[-1]

    def senders(self, urls: list[str], prefix: str, **kwargs) -> Senders:
        self.all_senders.append(Senders(urls, prefix, **kwargs))
        return self.all_senders[-1].start()

    @property
    def worker_logs(self) -> list[Path]:
        return [worker.log for worker in self.workers]

    def close(self) -> None:
        for senders in self.all_senders:
            senders.abort()
        for proc in [*self.webs, *self.workers]:
            proc.stop()


class TcpProxy:
    """A TCP relay on a port of its own to `upstream`, which the test can cut (every open
    connection closed, new ones closed at once, as a database that went away) and restore."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.down.set()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {src, dst}
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
