"""Mixed load on PostgreSQL: placeOrder 20 %, getOrder 50 %, invoice page 25 %, webhooks 5 %.

``python -m bench.mixed_load`` runs 60 s at 32 connections against real gunicorn on a scratch
PostgreSQL database and prints p50 and p99 per route and every error (there must be none).
``tests/test_faults_mixed_load.py`` runs the same driver for a few seconds in CI.

The driver is Python (threads over keep-alive ``http.client`` connections) because it must
check every answer and time each route separately; it shares the machine's cores with the
server, so the figures are for comparing runs, not a ceiling. Rate limits are turned off for
the run: every simulated customer comes from 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import random
import secrets
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import (
    Server,
    Settings,
    machine_description,
    run,
    sample_body_json,
    scratch_database,
)

MIX = {"placeOrder": 20, "getOrder": 50, "invoice": 25, "webhook": 5}
WEBHOOK_SECRET = "bench-webhook-" + secrets.token_hex(8)


@dataclass
class Figures:
    """Latencies (ms) and errors per route, shared by the client threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    orders: list[tuple[str, str]] = field(default_factory=list)  # (order id, invoice token)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict[str, dict]:
        table = {}
        for route, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            table[route] = {
                "requests": len(ordered),
                "p50_ms": round(statistics.median(ordered), 1),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            }
        return table


def webhook_body(event_id: str) -> bytes:
    """A signed-able Razorpay ``payment.failed`` event for a link bikshop does not know."""
    event = {
        "entity": "event",
        "account_id": "acc_bench",
        "event": "payment.failed",
        "contains": ["payment"],
        "payload": {
            "payment": {
                "entity": {
                    "id": f"pay_{event_id}",
                    "entity": "payment",
                    "amount": 94700,
                    "currency": "INR",
                    "status": "failed",
                    "error_description": "bench",
                    "notes": {},
                }
            }
        },
        "created_at": int(time.time()),
    }
    return json.dumps(event, separators=(",", ":")).encode()


class Client(threading.Thread):
    """One connection's worth of customers, Bik and Razorpay, picking routes by ``MIX``."""

    def __init__(self, base: str, headers: dict, figures: Figures, until: float, seed: int):
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.headers, self.figures, self.until = headers, figures, until
        self.random = random.Random(seed)
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def run(self) -> None:
        routes, weights = zip(*MIX.items(), strict=True)
        while time.monotonic() < self.until:
            route = self.random.choices(routes, weights)[0]
            try:
                getattr(self, route)()
            except (OSError, http.client.HTTPException) as exc:
                self.fail(route, f"{type(exc).__name__}: {exc}")
                self.connection.close()

    def call(self, route: str, method: str, path: str, body: bytes | None, headers: dict):
        started = time.perf_counter()
        self.connection.request(method, path, body=body, headers=headers)
        answer = self.connection.getresponse()
        data = answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            self.fail(route, f"{answer.status} {data[:200]!r}")
            return None
        with self.figures.lock:
            self.figures.latencies[route].append(elapsed)
        return data

    def fail(self, route: str, why: str) -> None:
        with self.figures.lock:
            self.figures.errors.append(f"{route}: {why}")

    def placeOrder(self) -> None:  # noqa: N802 (the route's name in Bik's contract)
        body = sample_body_json(f"mix_{secrets.token_hex(8)}").encode()
        json_headers = {**self.headers, "Content-Type": "application/json"}
        data = self.call("placeOrder", "POST", "/bik/placeOrder", body, json_headers)
        if data is not None:
            order = json.loads(data)["order"]
            with self.figures.lock:
                self.figures.orders.append((order["id"], order["invoiceUrl"].rsplit("/", 1)[1]))

    def getOrder(self) -> None:  # noqa: N802
        order_id, _ = self.random.choice(self.figures.orders)
        body = json.dumps({"orderId": order_id}).encode()
        json_headers = {**self.headers, "Content-Type": "application/json"}
        self.call("getOrder", "POST", "/bik/getOrder", body, json_headers)

    def invoice(self) -> None:
        _, token = self.random.choice(self.figures.orders)
        self.call("invoice", "GET", f"/invoice/{token}", None, {})

    def webhook(self) -> None:
        event_id = secrets.token_hex(7)
        body = webhook_body(event_id)
        signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature,
            "X-Razorpay-Event-Id": event_id,
        }
        self.call("webhook", "POST", "/webhooks/razorpay", body, headers)


def seed_orders(base: str, headers: dict, figures: Figures, count: int) -> None:
    """Store ``count`` orders first, so getOrder and the invoice have something to read."""
    client = Client(base, headers, figures, until=0, seed=0)
    for _ in range(count):
        client.placeOrder()
    client.connection.close()


def drive(base: str, headers: dict, seconds: float, connections: int, seed: int = 1) -> Figures:
    """Run the mix against ``base`` and return what the clients saw."""
    figures = Figures()
    seed_orders(base, headers, figures, 20)
    figures.latencies.clear()
    until = time.monotonic() + seconds
    clients = [Client(base, headers, figures, until, seed + n) for n in range(connections)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(seconds + 60)
    return figures


def server_env(settings: Settings) -> dict[str, str]:
    """bikshop's environment for the run: the bench settings plus the webhook secret."""
    return settings.env() | {
        "BIKSHOP_RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BIKSHOP_RATELIMIT_INVOICE": "off",
        "BIKSHOP_RATELIMIT_INVOICE_MISSES": "off",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as workdir,
        scratch_database("postgresql", Path(workdir)) as url,
    ):
        settings = Settings(url, secrets.token_urlsafe(24))
        print("\n".join(machine_description([url])))
        with Server("bikshop", "wsgi:app", server_env(settings), Path(workdir)) as server:
            figures = drive(server.url, settings.auth_header, args.seconds, args.connections)
    print(f"mixed load: {args.seconds:.0f} s, {args.connections} connections, PostgreSQL")
    print(f"{'route':<12}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for route, row in figures.summary().items():
        print(f"{route:<12}{row['requests']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    print(f"errors: {len(figures.errors)}")
    for error in figures.errors[:20]:
        print("  " + error)
    raise SystemExit(1 if figures.errors else 0)


if __name__ == "__main__":
    run(main)
