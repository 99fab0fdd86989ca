"""Benchmark the Bik endpoints against a bare Flask baseline measured in the same run.

    python -m bench.bik_endpoints [--duration S] [--backends sqlite,postgresql]

For each backend: getOrder over 1,000 stored orders and placeOrder (a new draft per request),
on bikshop, on ``bench/bare_app.py`` (the baseline) and on ``bench/floor_app.py`` (the
baseline plus the one database statement each endpoint needs), all under gunicorn with
identical settings and driven by wrk at 16 connections; then getOrder again once the table
holds 1,000,000 orders. Prints requests/s, p50, p99, the ratio to the baseline and PASS/FAIL
per target, the floor's ratio (the most any storing implementation could reach on this
machine) and bikshop's share of the floor, and the CPU each
request cost the server's gunicorn processes (and PostgreSQL), read from ``/proc``: on a
machine where wrk, servers and database share the cores, those explain the ratios. Needs wrk
and, for PostgreSQL, the local server on 127.0.0.1:5432 (user postgres, see
BIKSHOP_BENCH_PG_ADMIN_URL).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.common import (
    BACKENDS,
    CONNECTIONS,
    WORKERS,
    WRK_THREADS,
    Result,
    Server,
    Settings,
    baseline_server,
    bikshop_server,
    count_orders,
    floor_server,
    get_order_script,
    machine_description,
    place_order_script,
    postgresql_cpu_seconds,
    require_wrk,
    run,
    run_wrk,
    sample_body_json,
    sample_order_ids,
    scratch_database,
)
from bench.seed import seed_orders

SMALL, LARGE = 1_000, 1_000_000
SAMPLED_IDS = 10_000  # getOrder asks for ids picked at random over the whole table


@dataclass(frozen=True)
class Target:
    """bikshop's throughput as a share of the baseline's, and its p99 ceiling."""

    min_ratio: float
    max_p99_ms: float

    def describe(self) -> str:
        return f">={self.min_ratio:.0%} and p99<={self.max_p99_ms:.0f} ms"

    def met(self, bikshop: Result, baseline: Result) -> bool:
        ratio = bikshop.rps / baseline.rps
        return ratio >= self.min_ratio and bikshop.p99_ms <= self.max_p99_ms and clean(bikshop)


TARGETS = {"placeOrder": Target(0.40, 30), "getOrder": Target(0.60, 20)}
MAX_GROWTH = 1.3  # getOrder p50 with LARGE stored orders / with SMALL


@dataclass
class Comparison:
    backend: str
    endpoint: str
    bikshop: Result
    baseline: Result
    floor: Result  # bench/floor_app.py: the baseline plus the one statement the job needs

    @property
    def passed(self) -> bool:
        return TARGETS[self.endpoint].met(self.bikshop, self.baseline)


@dataclass
class Growth:
    backend: str
    small: Result
    large: Result

    @property
    def ratio(self) -> float:
        return self.large.p50_ms / self.small.p50_ms

    @property
    def passed(self) -> bool:
        return self.ratio <= MAX_GROWTH and clean(self.large)


def clean(result: Result) -> bool:
    """Every request answered 2xx without a socket error."""
    return result.non_2xx == 0 and result.socket_errors == 0


def say(line: str) -> None:
    print(line, flush=True)


def measure(
    server: Server, script: Callable[[], Path], seconds: float, warmup: float, backend: str
) -> Result:
    """A warm-up run (discarded), then the measured run; each with a fresh script. Also the CPU
    each request cost the server's processes and, on PostgreSQL, the database server."""
    if warmup > 0:
        run_wrk(server.url, script(), warmup)
        server.wait_idle()
    database_cpu = postgresql_cpu_seconds if backend == "postgresql" else lambda: None
    before = server.cpu_seconds(), database_cpu()
    result = run_wrk(server.url, script(), seconds)
    server.wait_idle()
    after = server.cpu_seconds(), database_cpu()
    per_request = [
        None if start is None or end is None else (end - start) * 1000 / max(result.requests, 1)
        for start, end in zip(before, after, strict=True)
    ]
    result = replace(result, server_cpu_ms=per_request[0], database_cpu_ms=per_request[1])
    say(
        f"  {server.name:<8} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  non-2xx {result.non_2xx}  socket errors "
        f"{result.socket_errors}  CPU/request {cpu_description(result)}"
    )
    return result


def cpu_description(result: Result) -> str:
    """``0.81 ms`` (the server's processes), ``+ 0.10 ms PostgreSQL`` when measured."""
    if result.server_cpu_ms is None:
        return "n/a"
    text = f"{result.server_cpu_ms:.2f} ms"
    if result.database_cpu_ms is not None:
        text += f" + {result.database_cpu_ms:.2f} ms PostgreSQL"
    return text


def median_result(results: list[Result]) -> Result:
    """Each figure's median over the rounds (one round: that round)."""
    if len(results) == 1:
        return results[0]

    def median_of(name):
        values = [getattr(r, name) for r in results if getattr(r, name) is not None]
        return statistics.median(values) if values else None

    return Result(
        requests=round(statistics.median(r.requests for r in results)),
        seconds=statistics.median(r.seconds for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        mean_ms=statistics.median(r.mean_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        server_cpu_ms=median_of("server_cpu_ms"),
        database_cpu_ms=median_of("database_cpu_ms"),
    )


def shape(value):
    """The JSON structure of an answer: keys and value types, not values (nulls left out)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return "number" if isinstance(value, int | float) else type(value).__name__


def check_same_work(settings: Settings, bikshop: Server, others: list[Server], order_id: str):
    """Every server answers both endpoints with 200 and the same BikOrder shape as bikshop."""
    for path, body in (
        ("/bik/placeOrder", lambda: sample_body_json(f"bench_check_{secrets.token_hex(4)}")),
        ("/bik/getOrder", lambda: f'{{"orderId": "{order_id}"}}'),
    ):
        servers = [bikshop, *others]
        answers = [s.post(path, body(), settings.auth_header) for s in servers]
        for server, (status, answer) in zip(servers, answers, strict=True):
            if status != 200:
                raise RuntimeError(f"{server.name} {path} answered {status}: {answer}")
            if shape(answer) != shape(answers[0][1]):
                raise RuntimeError(
                    f"the {server.name}'s {path} answer differs in shape from bikshop's:\n"
                    f"  bikshop:  {shape(answers[0][1])}\n  {server.name}: {shape(answer)}"
                )


def run_backend(backend: str, args, workdir: Path) -> tuple[list[Comparison], Growth]:
    say(f"\n[{backend}]")
    with scratch_database(backend, workdir) as url:
        settings = Settings(url, secrets.token_urlsafe(24))
        seed_orders(settings, SMALL, say=say)
        small_ids = sample_order_ids(url, SAMPLED_IDS)
        with (
            bikshop_server(settings, workdir) as bikshop,
            baseline_server(settings, workdir) as baseline,
            floor_server(settings, workdir) as floor,
        ):
            check_same_work(settings, bikshop, [baseline, floor], small_ids[0])

            def get_script(ids=small_ids):
                return lambda: get_order_script(workdir, settings.auth_header, ids)

            def place_script():
                run = secrets.token_hex(4)  # a new script per run: every draft id is new
                return place_order_script(workdir, settings.auth_header, f"bench_{run}")

            comparisons = []
            for endpoint, script in (("getOrder", get_script()), ("placeOrder", place_script)):
                say(f" {endpoint} with {count_orders(url):,} stored orders")
                runs: dict[str, list[Result]] = {"bikshop": [], "baseline": [], "floor": []}
                for _ in range(args.rounds):
                    runs["baseline"].append(
                        measure(baseline, script, args.duration, args.warmup, backend)
                    )
                    runs["floor"].append(
                        measure(floor, script, args.duration, args.warmup, backend)
                    )
                    before = count_orders(url)
                    result = measure(bikshop, script, args.duration, args.warmup, backend)
                    if endpoint == "placeOrder":
                        check_stored(url, before, result)
                    runs["bikshop"].append(result)
                comparisons.append(
                    Comparison(
                        backend,
                        endpoint,
                        median_result(runs["bikshop"]),
                        median_result(runs["baseline"]),
                        median_result(runs["floor"]),
                    )
                )
            small = comparisons[0].bikshop  # getOrder, measured with SMALL stored orders
            say(f" getOrder with {LARGE:,} stored orders")
            seed_orders(settings, LARGE, say=say)
            large_ids = sample_order_ids(url, SAMPLED_IDS)
            large = median_result(
                [
                    measure(bikshop, get_script(large_ids), args.duration, args.warmup, backend)
                    for _ in range(args.rounds)
                ]
            )
    return comparisons, Growth(backend, small, large)


def check_stored(url: str, before: int, result: Result) -> None:
    """Every placeOrder answered 200 stored a new order (the measured run, not its warm-up)."""
    stored = count_orders(url) - before
    answered = result.requests - result.non_2xx
    if stored < answered:
        raise RuntimeError(f"placeOrder answered {answered} times with 200 but stored {stored}")


def report(comparisons: list[Comparison], growths: list[Growth]) -> bool:
    say("\nResults: bikshop against the bare baseline in the same run (latency as wrk saw it)")
    header = (
        f"{'backend':<11}{'endpoint':<12}{'server':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'share':>8}  {'target':<25}{'result':<8}CPU/request"
    )
    say(header)
    say("-" * len(header))
    passed = True
    for c in comparisons:
        servers = [("baseline", c.baseline), ("floor", c.floor), ("bikshop", c.bikshop)]
        for name, result in servers:
            line = (
                f"{c.backend:<11}{c.endpoint:<12}{name:<10}{result.rps:9.1f}"
                f"{result.p50_ms:9.1f}{result.p99_ms:9.1f}"
            )
            if name == "floor":
                line += f"{result.rps / c.baseline.rps:8.0%}  {'(no target)':<25}{'':<8}"
            elif name == "bikshop":
                verdict = "PASS" if c.passed else "FAIL"
                if not clean(result):
                    verdict += f" ({result.non_2xx} non-2xx, {result.socket_errors} socket errors)"
                line += (
                    f"{c.bikshop.rps / c.baseline.rps:8.0%}  "
                    f"{TARGETS[c.endpoint].describe():<25}{verdict:<8}"
                )
                passed &= c.passed
            else:
                line += " " * (8 + 2 + 25 + 8)
            say(line + cpu_description(result))
    say(
        "\nThe floor (bench/floor_app.py): the baseline plus the one statement the endpoint needs"
        " (placeOrder: one committed\nINSERT of the raw request; getOrder: one read of the order's"
        " row by its id). Nothing that stores or reads\nthe order can beat it on this machine: a"
        " target above the floor's share cannot be met here."
    )
    for c in comparisons:
        say(
            f"{c.backend:<11}{c.endpoint:<12}floor {c.floor.rps / c.baseline.rps:4.0%} of the "
            f"baseline; bikshop {c.bikshop.rps / c.floor.rps:4.0%} of the floor"
        )
    say(f"\ngetOrder p50 as the table grows ({SMALL:,} -> {LARGE:,} stored orders)")
    header = (
        f"{'backend':<11}{f'{SMALL:,} orders':>15}{f'{LARGE:,} orders':>19}{'ratio':>8}"
        f"  {'target':<10}result"
    )
    say(header)
    say("-" * len(header))
    for g in growths:
        say(
            f"{g.backend:<11}{g.small.p50_ms:12.1f} ms{g.large.p50_ms:16.1f} ms"
            f"{g.ratio:7.2f}x  {f'<={MAX_GROWTH}x':<10}{'PASS' if g.passed else 'FAIL'}"
            f"   (p99 {g.small.p99_ms:.1f} -> {g.large.p99_ms:.1f} ms)"
        )
        passed &= g.passed
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each pair; report medians")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    require_wrk()
    say("bikshop benchmark: the Bik endpoints (placeOrder, getOrder)")
    for line in machine_description():
        say(f"  {line}")
    say(
        f"  setup: every server is `gunicorn -c gunicorn.conf.py --workers {WORKERS}` (sync); "
        f"wrk {WRK_THREADS} threads, {CONNECTIONS} connections,\n"
        f"         {args.warmup:g} s warm-up then {args.duration:g} s measured per run, "
        f"{args.rounds} round(s); bikshop with bearer auth;\n"
        "         baseline = bench/bare_app.py: the same JSON in and out, without storage, "
        "auth or validation;\n"
        "         floor = bench/floor_app.py: the baseline plus the one statement each needs"
    )
    comparisons: list[Comparison] = []
    growths: list[Growth] = []
    with tempfile.TemporaryDirectory(prefix="bikshop-bench-") as workdir:
        for backend in backends:
            backend_comparisons, growth = run_backend(backend, args, Path(workdir))
            comparisons += backend_comparisons
            growths.append(growth)
    passed = report(comparisons, growths)
    say(
        "\nAll targets met."
        if passed
        else "\nSome targets missed (see FAIL above). "
        "Figures on a busy machine are noisy: compare shares, and re-run when it is quiet."
    )
    return 0 if passed else 1


if __name__ == "__main__":
    run(main)
