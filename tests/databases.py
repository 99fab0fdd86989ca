"""Throwaway PostgreSQL databases, for the test suite and the benchmarks alike."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def scratch_postgresql(
    admin_url: str, prefix: str, migrate: Callable[[str], None]
) -> Iterator[str]:
    """``<prefix><random>`` created through ``admin_url``, migrated, yielded as its URL, and
    dropped afterwards (even with sessions still open)."""
    name = f"{prefix}{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
