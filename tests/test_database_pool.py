"""Pooled PostgreSQL connections the server dropped (restart, failover, an idle timeout in a
proxy): checked after sitting idle and replaced unseen; one dropped mid-use costs one 503."""

from __future__ import annotations

import psycopg
import pytest

from tests.bik import get, place

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _drop_every_connection(database_url: str) -> int:
    """What a server restart does to the pool: every session of this database ends."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )


def test_a_connection_dropped_while_idle_is_checked_and_replaced_before_use(make_app, database_url):
    client = make_app(DATABASE_PING_AFTER_IDLE=0).test_client()  # idle 0 s is long enough
    order_id = place(client).get_json()["order"]["id"]
    assert _drop_every_connection(database_url) >= 1
    assert get(client, order_id).status_code == 200
    assert place(client).status_code == 200


def test_without_the_check_a_dropped_connection_costs_one_503_then_service_returns(
    make_app, database_url
):
    client = make_app(DATABASE_PING_AFTER_IDLE=3600).test_client()
    order_id = place(client).get_json()["order"]["id"]
    assert _drop_every_connection(database_url) >= 1
    answer = get(client, order_id)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert get(client, order_id).status_code == 200  # the pool was refilled


def test_bik_calls_use_the_autocommit_pool_and_leave_the_main_one_alone(make_app):
    """One connection that stays in autocommit serves both calls: none is switched in and out."""
    from bikshop.database import AUTOCOMMIT
    from bikshop.extensions import db

    app = make_app()
    client = app.test_client()
    order_id = place(client).get_json()["order"]["id"]
    assert get(client, order_id).status_code == 200
    with app.app_context():
        engine = db.engines[AUTOCOMMIT]
        assert engine.pool.checkedin() == 1
        with engine.connect() as connection:
            assert connection.connection.driver_connection.autocommit is True
        assert db.engine.pool.checkedin() == 0  # never opened by a Bik call
