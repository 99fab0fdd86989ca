"""Real servers for tests: gunicorn serving bikshop on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` as the README runs it, on a free port."""

    def __init__(
        self,
        *,
        workers: int,
        env: dict,
        log_dir: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        app: str = "wsgi:app",
    ):
        self.workers = workers
        self.port = port or free_port()
        self.env = {**os.environ, **env, "NO_PROXY": "127.0.0.1,localhost"}
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        self.extra_args = extra_args
        self.app = app
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                *self.extra_args,
                self.app,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer in {timeout}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (children of the master)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_once_it_has(self, *texts: str, timeout: float = 10) -> str:
        """The log, once every one of ``texts`` is in it: gunicorn writes a request's access
        line after sending the answer, so a client can read the log before the line lands."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if all(text in log for text in texts) or time.monotonic() > deadline:
                return log
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
