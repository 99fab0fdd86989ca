"""The owner's dashboard at 1,000,000 orders: list page, phone search, order page, CSV export.

For each backend: a scratch database seeded with ``--orders`` stored orders (``bench/seed.py``),
then made realistic in one UPDATE: every customer a different phone number, old orders delivered
and paid (2 % cancelled), the newest few thousand still open. bikshop runs under real gunicorn
(2 workers); one client signed in as an admin times each page sequentially, and the bare-Flask
baseline's ``GET /healthz`` in the same run gives the floor of an HTTP round trip. The CSV export
of the newest ~100,000 orders is streamed while a sampler reads every worker's RSS from /proc.

    python -m bench.admin_dashboard                      # 1,000,000 orders, both backends
    python -m bench.admin_dashboard --orders 50000 --backends sqlite   # a quick look
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import requests
from sqlalchemy import text

from bench.common import (
    BACKENDS,
    Server,
    Settings,
    baseline_server,
    engine_for,
    machine_description,
    run,
    scratch_database,
)
from bench.seed import seed_orders

ADMIN, PASSWORD = "bench@shop.example", "bench password 0123456789"
OPEN_ORDERS = 3000  # the newest orders stay open; older ones are delivered (or cancelled)


def realistic(url: str) -> None:
    """Give every order its own phone and a plausible state (one UPDATE), then ANALYZE."""
    engine = engine_for(url)
    sqlite = url.startswith("sqlite")
    as_text = "CAST(9000000000 + id AS TEXT)" if sqlite else "(9000000000 + id)::text"
    with engine.begin() as conn:
        newest = conn.execute(text("SELECT max(id) FROM orders")).scalar_one()
        old = f"id <= {newest - OPEN_ORDERS}"
        cancelled = f"({old} AND id % 50 = 0)"
        conn.execute(
            text(
                f"""UPDATE orders SET
                phone_number = '+91' || {as_text},
                phone_digits = '91' || {as_text},
                customer_name = 'Customer ' || CAST(id AS {"TEXT" if sqlite else "varchar"}),
                status = CASE WHEN {cancelled} THEN 'CANCELLED' WHEN {old} THEN 'DELIVERED'
                              WHEN id % 3 = 0 THEN 'IN PROGRESS' ELSE 'ORDERED' END,
                payment_status = CASE WHEN {cancelled} THEN 'pending' WHEN {old} THEN 'paid'
                              WHEN id % 2 = 0 THEN 'paid' ELSE 'pending' END,
                fulfillment_status = CASE WHEN {cancelled} THEN 'unfulfilled'
                              WHEN {old} THEN 'fulfilled' ELSE 'unfulfilled' END"""
            )
        )
    if not sqlite:  # autovacuum would do this soon after; do it now so the plans are steady
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE orders"))
    engine.dispose()


def create_admin(settings: Settings) -> None:
    from bikshop import create_app
    from bikshop.database import dispose_engines
    from bikshop.services.admins import create_admin as create
    from bikshop.services.admins import find_admin

    app = create_app(settings.app_config())
    with app.app_context():
        if find_admin(ADMIN) is None:
            create(ADMIN, PASSWORD)
        dispose_engines()


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/admin/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{base}/admin/login",
        data={"csrf_token": token, "email": ADMIN, "password": PASSWORD, "next": ""},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    return session


def p50_ms(session, urls: list[str], check=None) -> float:
    """Median wall time of GETting each URL once, in order, as the client sees it."""
    times = []
    for url in urls:
        started = time.perf_counter()
        answer = session.get(url, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (url, answer.status_code)
        if check:
            check(answer)
    return statistics.median(times)


def sample_ids(url: str, count: int) -> list[int]:
    engine = engine_for(url)
    with engine.connect() as conn:
        newest = conn.execute(text("SELECT max(id) FROM orders")).scalar_one()
    engine.dispose()
    step = max(newest // count, 1)
    return [newest - i * step for i in range(count)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def workers_of(server: Server) -> list[int]:
    pid = server.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def csv_export(server: Server, session, query: dict) -> tuple[int, float, float]:
    """Stream the export; return (rows, seconds, peak RSS growth of any worker in MiB)."""
    pids = workers_of(server)
    before = {pid: rss_kib(pid) for pid in pids}
    peak = dict(before)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in pids:
                peak[pid] = max(peak[pid], rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    rows = -1  # the header line
    with session.get(f"{server.url}/admin/orders.csv", params=query, stream=True) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line:
                rows += 1
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    growth = max(peak[pid] - before[pid] for pid in pids) / 1024
    return rows, seconds, growth


def newest_day_for(url: str, count: int, zone: str = "Asia/Kolkata") -> str:
    """The local date from which roughly the newest ``count`` orders were placed."""
    from zoneinfo import ZoneInfo

    engine = engine_for(url)
    with engine.connect() as conn:
        newest = conn.execute(text("SELECT max(id) FROM orders")).scalar_one()
        stamp = conn.execute(
            text("SELECT created_at FROM orders WHERE id = :id"), {"id": newest - count}
        ).scalar_one()
    engine.dispose()
    if isinstance(stamp, str):  # SQLite
        from datetime import datetime

        stamp = datetime.fromisoformat(stamp)
    if stamp.tzinfo is None:
        from datetime import UTC

        stamp = stamp.replace(tzinfo=UTC)
    return (stamp.astimezone(ZoneInfo(zone)) + timedelta(days=1)).date().isoformat()


def oldest_month(url: str, orders: int) -> str:
    """The dashboard's query for the first 30 days of the seeded year, a day in."""
    start = date.fromisoformat(newest_day_for(url, orders - 2))
    return f"date_from={start.isoformat()}&date_to={(start + timedelta(days=29)).isoformat()}"


@contextmanager
def prepared_database(backend: str, args, workdir: Path, say):
    """A database with ``--orders`` realistic orders and the bench admin: a fresh scratch one,
    or ``--database-url``, already seeded (for instance by an earlier run's steps)."""
    if args.database_url:
        create_admin(Settings(args.database_url, "bench-token-" + backend))
        yield args.database_url
        return
    with scratch_database(backend, workdir) as url:
        settings = Settings(url, "bench-token-" + backend)
        seed_orders(settings, args.orders, say=say)
        started = time.monotonic()
        realistic(url)
        say(f"  varied phones and states in {time.monotonic() - started:.0f} s")
        create_admin(settings)
        yield url


def run_backend(backend: str, args, workdir: Path, say) -> dict:
    with prepared_database(backend, args, workdir, say) as url:
        settings = Settings(url, "bench-token-" + backend)
        env = settings.env() | {"BIKSHOP_INSECURE_COOKIES": "true"}
        ids = sample_ids(url, args.samples)
        with (
            baseline_server(settings, workdir) as bare,
            Server("bikshop", "wsgi:app", env, workdir) as server,
        ):
            base = server.url
            session = signed_in(base)
            floor = p50_ms(requests.Session(), [f"{bare.url}/healthz"] * args.samples)
            # Warm both workers (imports, templates, connections) before measuring.
            p50_ms(session, [f"{base}/admin/"] * 6 + [f"{base}/admin/orders/ORD-{ids[0]}"] * 4)
            phones = [f"+91 {str(9000000000 + i)[:5]} {str(9000000000 + i)[5:]}" for i in ids]

            def one_order(answer):
                assert answer.text.count('<tr>\n    <td data-label="Order">') == 1

            figures = {
                "baseline GET /healthz": floor,
                "first list page (/admin/)": p50_ms(session, [f"{base}/admin/"] * args.samples),
                "phone search": p50_ms(
                    session, [f"{base}/admin/?q={p}" for p in phones], check=one_order
                ),
                "order page": p50_ms(session, [f"{base}/admin/orders/ORD-{i}" for i in ids]),
                "oldest month (date range)": p50_ms(
                    session, [f"{base}/admin/?{oldest_month(url, args.orders)}"] * args.samples
                ),
            }
            day = newest_day_for(url, args.csv_orders)
            rows, seconds, growth = csv_export(server, session, {"date_from": day})
    return {"figures": figures, "csv": (rows, seconds, growth)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--csv-orders", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=40, help="requests per page measured")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--database-url",
        help="measure this already prepared database (one backend) instead of seeding one",
    )
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    for line in machine_description():
        say(line)
    for backend in args.backends.split(","):
        say(f"\n{backend}: {args.orders:,} orders")
        with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
            result = run_backend(backend, args, Path(tmp), say)
        floor = result["figures"]["baseline GET /healthz"]
        for name, ms in result["figures"].items():
            ratio = "" if name.startswith("baseline") else f"  ({ms / floor:.1f}× baseline)"
            say(f"  {name:<28} p50 {ms:6.1f} ms{ratio}")
        rows, seconds, growth = result["csv"]
        say(
            f"  CSV export: {rows:,} orders in {seconds:.1f} s ({rows / seconds:,.0f}/s), "
            f"worker peak RSS growth {growth:.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    run(main)
