"""Mixed load on PostgreSQL (CI size): every route answers, none errs, p50/p99 per route."""

from __future__ import annotations

import os
import secrets

import pytest

from bench.mixed_load import MIX, WEBHOOK_SECRET, drive

SECONDS = float(os.environ.get("BIKSHOP_FAULT_SECONDS", 5))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_mixed_load_has_no_errors(gunicorn):
    token = secrets.token_urlsafe(24)
    server = gunicorn(
        workers=2,
        env={
            "BIKSHOP_BIK_AUTH": f"bearer:{token}",
            "BIKSHOP_RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BIKSHOP_RATELIMIT_INVOICE": "off",
            "BIKSHOP_RATELIMIT_INVOICE_MISSES": "off",
        },
    )
    figures = drive(server.url, {"Authorization": f"Bearer {token}"}, SECONDS, connections=8)
    assert figures.errors == []
    summary = figures.summary()
    assert set(summary) == set(MIX)
    total = sum(row["requests"] for row in summary.values())
    assert total > 50
    # The mix holds roughly (getOrder is the most frequent route, webhooks the rarest).
    assert summary["getOrder"]["requests"] > summary["placeOrder"]["requests"]
    assert summary["webhook"]["requests"] < summary["invoice"]["requests"]
    print({route: (row["p50_ms"], row["p99_ms"]) for route, row in summary.items()})
