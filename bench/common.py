"""Reusable pieces for bikshop's benchmarks: scratch databases, gunicorn servers, wrk runs.

Every benchmark follows the same pattern: a scratch database (SQLite file or a throwaway
PostgreSQL database), bikshop and the bare baseline (``bench/bare_app.py``) served by real
gunicorn with identical settings, wrk driving each with a generated Lua script, and figures
printed as ratios against the baseline measured in the same run. Fast seeding of stored orders
lives in ``bench/seed.py``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text

from bikshop.checkbik import SAMPLE_ORDER
from tests.databases import scratch_postgresql
from tests.servers import GunicornServer

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "BIKSHOP_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WORKERS = 2  # gunicorn workers for every server in a run
CONNECTIONS = 16  # wrk's concurrent connections
WRK_THREADS = 2
BACKENDS = ("sqlite", "postgresql")


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What bikshop runs with in a benchmark: production mode, bearer auth as Bik would send."""

    database_url: str
    bik_token: str

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bik_token}"}

    def env(self) -> dict[str, str]:
        """The process environment for bikshop (and the baseline): no stray BIKSHOP_* leaks in."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
        return base | {
            "BIKSHOP_ENV": "production",
            "BIKSHOP_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
            "BIKSHOP_BIK_AUTH": f"bearer:{self.bik_token}",
            "BIKSHOP_DATABASE_URL": self.database_url,
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def app_config(self) -> dict:
        """The same settings as a mapping for ``create_app`` (used by the seeder in-process)."""
        prefix = "BIKSHOP_"
        return {k.removeprefix(prefix): v for k, v in self.env().items() if k.startswith(prefix)}


def sample_body_json(draft_id: str) -> str:
    """Bik's sample placeOrder body for ``draft_id``, as compact JSON (what wrk sends)."""
    body = json.loads(json.dumps(SAMPLE_ORDER))
    body["draftOrderId"] = body["order"]["id"] = draft_id
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# --- databases ---------------------------------------------------------------------------------


@contextmanager
def scratch_database(backend: str, workdir: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file in ``workdir`` or ``bikshop_bench_<random>``
    on the local PostgreSQL, dropped afterwards. Yields its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        migrate(url)
        yield url
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    with scratch_postgresql(PG_ADMIN_URL, "bikshop_bench_", migrate) as url:
        yield url


def migrate(url: str) -> None:
    """``flask --app bikshop db upgrade``, the operator's release step."""
    env = Settings(url, "unused").env()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "bikshop", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def engine_for(url: str):
    """A SQLAlchemy engine for the benchmark's own queries (not bikshop's)."""
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def count_orders(url: str) -> int:
    engine = engine_for(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
    engine.dispose()
    return count


def sample_order_ids(url: str, limit: int) -> list[str]:
    """Up to ``limit`` stored order ids, picked at random over the whole table."""
    engine = engine_for(url)
    with engine.connect() as conn:
        ids = conn.execute(
            text("SELECT public_id FROM orders ORDER BY random() LIMIT :n"), {"n": limit}
        ).scalars()
        ids = list(ids)
    engine.dispose()
    return ids


# --- servers -----------------------------------------------------------------------------------


class Server(GunicornServer):
    """``gunicorn -c gunicorn.conf.py --workers 2 <app>`` on a free loopback port: the tests'
    server (same command line), plus what a benchmark needs: a name, a drain, a quick POST.

    Every server in a run gets the same command line and environment; only the app differs.
    """

    def __init__(self, name: str, app: str, env: dict[str, str], log_dir: Path):
        super().__init__(workers=WORKERS, env=env, log_dir=log_dir, app=app)
        self.name = name
        self.env = env  # exactly Settings.env(): no stray BIKSHOP_* from the caller's shell
        self.log_path = log_dir / f"{name}-{self.port}.log"

    def __enter__(self) -> Server:
        self.start(timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_idle(self) -> None:
        """Return once the requests wrk left queued are served.

        wrk stops with requests still waiting in the listen backlog, and gunicorn serves them
        after wrk is gone; a probe behind them, once per worker, means they are done.
        """
        for _ in range(WORKERS + 1):
            with urllib.request.urlopen(self.url + "/healthz", timeout=60) as answer:
                answer.read()

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the master and its workers have used so far; None where
        ``/proc`` cannot tell (not Linux)."""
        master = self.process.pid
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            return None
        return process_cpu_seconds([master, *map(int, children)])

    def post(self, path: str, body: str, headers: dict[str, str] | None = None):
        """One POST with urllib; returns (status, parsed JSON answer)."""
        request = urllib.request.Request(
            self.url + path,
            data=body.encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def bikshop_server(settings: Settings, log_dir: Path) -> Server:
    return Server("bikshop", "wsgi:app", settings.env(), log_dir)


def baseline_server(settings: Settings, log_dir: Path) -> Server:
    return Server("baseline", "bench.bare_app:app", settings.env(), log_dir)


def floor_server(settings: Settings, log_dir: Path) -> Server:
    from bench.floor_app import create_table

    create_table(settings.database_url)
    return Server("floor", "bench.floor_app:app", settings.env(), log_dir)


def process_cpu_seconds(pids) -> float:
    """User + system CPU seconds of ``pids`` (those that have exited count as 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def postgresql_cpu_seconds() -> float | None:
    """CPU seconds used so far by every PostgreSQL server process on this machine (the
    benchmark's own database is the only busy one); None where ``/proc`` cannot tell."""
    try:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return None
    servers = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster"):
                servers.append(pid)
        except OSError:
            continue
    return process_cpu_seconds(servers)


# --- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One wrk run: throughput and latency as the client saw them."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int
    # CPU per request during the run (ms): the server's gunicorn processes, and PostgreSQL's
    server_cpu_ms: float | None = None
    database_cpu_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def lua_string(value: str) -> str:
    """``value`` as a Lua string literal (bytes outside printable ASCII as decimal escapes)."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        if char in '"\\' or not 32 <= byte < 127:
            out.append(f"\\{byte:03d}")  # three digits: a digit may follow
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# Thread numbering and the WRK_RESULT line every script ends with. A str.format template
# (braces doubled): scripts are built with ``.format(headers=...)``.
LUA_THREADS_AND_RESULT = """
local started = 0
function setup(thread)
  started = started + 1
  thread:set("thread_no", started)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
_LUA_COMMON = (
    """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
"""
    + LUA_THREADS_AND_RESULT
)


def _lua_headers(headers: dict[str, str]) -> str:
    return "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())


def place_order_script(workdir: Path, headers: dict[str, str], run: str) -> Path:
    """placeOrder with Bik's sample body and a new draftOrderId on every request."""
    marker = "@@DRAFT@@"
    head, middle, tail = sample_body_json(marker).split(marker)
    script = (
        _LUA_COMMON.format(headers=_lua_headers(headers))
        + f"""
local head, middle, tail = {lua_string(head)}, {lua_string(middle)}, {lua_string(tail)}
local sent = 0
function request()
  sent = sent + 1
  local draft = {lua_string(run)} .. "_" .. thread_no .. "_" .. sent
  return wrk.format(nil, "/bik/placeOrder", nil, head .. draft .. middle .. draft .. tail)
end
"""
    )
    path = workdir / f"place_{run}.lua"
    path.write_text(script)
    return path


def get_order_script(workdir: Path, headers: dict[str, str], order_ids: Sequence[str]) -> Path:
    """getOrder over ``order_ids``, each thread picking ids at random."""
    if not order_ids:
        raise ValueError("getOrder needs stored orders")
    ids = ",\n".join(lua_string(i) for i in order_ids)
    script = (
        _LUA_COMMON.format(headers=_lua_headers(headers))
        + f"""
local ids = {{
{ids}
}}
local prepared = {{}}
function init(args)
  for i, id in ipairs(ids) do
    prepared[i] = wrk.format(nil, "/bik/getOrder", nil, '{{"orderId":"' .. id .. '"}}')
  end
  math.randomseed(thread_no * 7919)
end
function request()
  return prepared[math.random(#prepared)]
end
"""
    )
    path = workdir / f"get_{secrets.token_hex(3)}.lua"
    path.write_text(script)
    return path


def run_wrk(url: str, script: Path, seconds: float, connections: int = CONNECTIONS) -> Result:
    """Drive ``url`` with ``script`` for ``seconds`` and read the figures ``done()`` prints."""
    completed = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"^WRK_RESULT (\{.*\})$", completed.stdout, re.MULTILINE)
    if match is None or completed.stderr.strip():
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(match.group(1))
    return Result(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    )


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk)")


# --- the machine -------------------------------------------------------------------------------


def machine_description(database_urls: Sequence[str] = ()) -> list[str]:
    """Lines saying where and when the figures were taken."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    lines = [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"machine: {cpu}, {os.cpu_count()} CPUs, {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{wrk_version.split(' Copyright')[0].strip() or 'wrk'}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]
    for url in database_urls:
        if url.startswith("postgresql"):
            with psycopg.connect(url) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
            lines[2] += f", PostgreSQL {version}"
    return lines


def run(main) -> None:
    """Run a benchmark's ``main`` as the program, its exit status the program's. A SIGTERM
    (``timeout``, a CI runner's stop) ends it as Ctrl-C does, through every ``finally``: the
    scratch databases (a 1,000,000-order SQLite file holds about 2 GB) and servers go with it."""

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    sys.exit(main())
