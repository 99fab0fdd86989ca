"""Instructions per Bik request, bikshop against the bare baseline: a benchmark that does not
move with the machine.

    python -m bench.instructions [--requests 200] [--backends sqlite,postgresql]

``bench/bik_endpoints.py`` measures what the targets are about (requests/s through gunicorn),
but on a shared 2-core machine its shares move by 10 points between runs with no code change,
more than most single improvements are worth. This one counts, with valgrind's callgrind, the
instructions the app runs in-process (called as WSGI, the same environ for both apps) for
getOrder over stored orders and placeOrder with a new draft per request: the same code gives
the same count run after run, busy machine or not, so a change can be judged before spending a
wrk run on it. It counts the app's own user-space instructions only: the HTTP server, the
kernel's share (SQLite's file writes, the socket) and the database server are not in it, which
is why its ratio is higher than the throughput share.

Needs valgrind (``apt-get install valgrind``) and, for PostgreSQL, the local server as
``bench/bik_endpoints.py`` does. Each (backend, endpoint, app) runs in its own process under
callgrind, two at a time; a whole run takes about three minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from werkzeug.test import EnvironBuilder

from bench.common import BACKENDS, ROOT, Settings, run, sample_body_json, scratch_database

APPS = ("baseline", "bikshop")  # bench/bare_app.py, and bikshop itself
ENDPOINTS = ("getOrder", "placeOrder")
STORED = 300  # orders placed before counting; getOrder asks for them in turn
TOKEN = "bench-token"


def wsgi_environ(path: str, body: str, token: str) -> dict:
    """A POST as gunicorn would hand it to the app."""
    headers = {"Authorization": f"Bearer {token}"}
    builder = EnvironBuilder(
        path,
        base_url="http://127.0.0.1:8000",
        method="POST",
        data=body,
        headers=headers,
        content_type="application/json",
    )
    return builder.get_environ()


def call(app, environ: dict) -> bytes:
    statuses = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    if not statuses[0].startswith("200"):
        raise RuntimeError(f"{environ['PATH_INFO']} answered {statuses[0]}: {body[:300]!r}")
    return body


def child(backend: str, endpoint: str, which: str, requests: int) -> None:
    """Runs under callgrind with instrumentation off: set up, then count only the requests."""
    with tempfile.TemporaryDirectory() as workdir, scratch_database(backend, Path(workdir)) as url:
        settings = Settings(url, TOKEN)
        os.environ.update(settings.env())
        from bikshop import create_app
        from bikshop.database import dispose_engines

        bikshop = create_app()
        place = "/bik/placeOrder"
        ids = []
        for n in range(STORED):
            answer = call(bikshop.wsgi_app, wsgi_environ(place, sample_body_json(f"s{n}"), TOKEN))
            ids.append(json.loads(answer)["order"]["id"])
        if which == "baseline":
            from bench.bare_app import app
        else:
            app = bikshop
        if endpoint == "getOrder":
            bodies = [json.dumps({"orderId": ids[n % len(ids)]}) for n in range(requests + 20)]
            path = "/bik/getOrder"
        else:
            bodies = [sample_body_json(secrets.token_hex(8)) for _ in range(requests + 20)]
            path = place
        environs = [wsgi_environ(path, body, TOKEN) for body in bodies]
        for environ in environs[:20]:  # warm: first-call compilation and caches are not counted
            call(app.wsgi_app, environ)
        toggle = ["callgrind_control", "--instr"]
        subprocess.run([*toggle, "on", str(os.getpid())], check=True, capture_output=True)
        for environ in environs[20:]:
            call(app.wsgi_app, environ)
        subprocess.run([*toggle, "off", str(os.getpid())], check=True, capture_output=True)
        with bikshop.app_context():
            dispose_engines()


def count(backend: str, endpoint: str, which: str, requests: int, workdir: Path) -> float:
    """Instructions per request for one (backend, endpoint, app), in a child under callgrind."""
    out = workdir / f"callgrind-{backend}-{endpoint}-{which}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        backend,
        endpoint,
        which,
        str(requests),
    ]
    # A fixed hash seed: dict and set layouts, and so the count, are the same run after run.
    env = os.environ | {"PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} {endpoint} {which} failed:\n{done.stderr[-3000:]}")
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1]) / requests
    raise RuntimeError(f"no totals in {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="counted requests per app")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        backend, endpoint, which, requests = args.child
        child(backend, endpoint, which, int(requests))
        return 0
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("bench.instructions needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    runs = [
        (backend, endpoint, which)
        for backend in args.backends.split(",")
        for endpoint in ENDPOINTS
        for which in APPS
    ]
    print(f"instructions per request, in-process, {args.requests} counted requests per app")
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(2) as pool:
        counts = dict(
            zip(
                runs,
                pool.map(lambda run: count(*run, args.requests, Path(workdir)), runs),
                strict=True,
            )
        )
    print(f"{'backend':<11}{'endpoint':<12}{'baseline':>12}{'bikshop':>12}{'ratio':>8}")
    for backend in args.backends.split(","):
        for endpoint in ENDPOINTS:
            base, ours = counts[backend, endpoint, "baseline"], counts[backend, endpoint, "bikshop"]
            print(
                f"{backend:<11}{endpoint:<12}{base / 1e6:>11.3f}M{ours / 1e6:>11.3f}M"
                f"{base / ours:>8.0%}"
            )
    return 0


if __name__ == "__main__":
    run(main)
