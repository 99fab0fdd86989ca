"""The benchmark's floor (``bench/floor_app.py``): the baseline's endpoints, answered only once
their one statement has run (placeOrder's INSERT committed, getOrder's row read). Its figures
are only as good as that and the answers' shape, so both are checked here, on each backend,
in a database of the test's own, migrated (getOrder reads bikshop's orders table; the floor's
own table is not bikshop's schema)."""

from __future__ import annotations

import json

import pytest

from bench import floor_app
from bench.bare_app import app as baseline
from bench.bik_endpoints import shape
from bench.common import Settings, sample_body_json, sample_order_ids
from bench.seed import seed_orders
from tests.conftest import BACKENDS, migrated_database


@pytest.fixture(params=BACKENDS)
def empty_database(request, tmp_path):
    """A migrated database of the test's own; the floor's connection to it closed after."""
    try:
        with migrated_database(request.param, tmp_path, "bikshop_floor_") as url:
            yield url
    finally:
        floor_app.close()


def stored_rows(url: str) -> list[tuple]:
    """The floor's rows, read on a connection of their own (so only committed ones)."""
    connection = floor_app._open(url)
    try:
        query = f"SELECT draft_order_id, raw_request FROM {floor_app._TABLE} ORDER BY id"
        return list(connection.execute(query).fetchall())
    finally:
        connection.close()


def test_the_floor_answers_as_the_baseline_does_once_the_request_is_committed(
    empty_database, monkeypatch
):
    monkeypatch.setenv("BIKSHOP_DATABASE_URL", empty_database)
    floor_app.create_table(empty_database)
    bodies = [sample_body_json(f"floor_{n}") for n in range(2)]
    answers = [
        floor_app.app.test_client().post(
            "/bik/placeOrder", data=body, content_type="application/json"
        )
        for body in bodies
    ]

    assert [answer.status_code for answer in answers] == [200, 200]
    assert stored_rows(empty_database) == [("floor_0", bodies[0]), ("floor_1", bodies[1])]
    expected = baseline.test_client().post(
        "/bik/placeOrder", data=bodies[0], content_type="application/json"
    )
    assert shape(answers[0].get_json()) == shape(expected.get_json())
    assert answers[0].get_json()["order"]["partnersData"] == {"id": "floor_0"}
    assert json.loads(stored_rows(empty_database)[0][1])["draftOrderId"] == "floor_0"


def test_the_floors_get_order_reads_the_order_from_bikshops_table(empty_database, monkeypatch):
    monkeypatch.setenv("BIKSHOP_DATABASE_URL", empty_database)
    settings = Settings(empty_database, "floor-token-0123456789")
    seed_orders(settings, 2, say=lambda _: None)
    (public_id,) = sample_order_ids(empty_database, 1)
    client = floor_app.app.test_client()

    answer = client.post("/bik/getOrder", json={"orderId": public_id})
    unknown = client.post("/bik/getOrder", json={"orderId": "ORD-999999"})

    assert answer.status_code == 200 and unknown.status_code == 404
    order = answer.get_json()["order"]
    assert order["id"] == public_id and order["name"] == "#" + public_id.removeprefix("ORD-")
    assert order["partnersData"]["id"].startswith("bench_")  # the stored row's draft id
    expected = baseline.test_client().post("/bik/getOrder", json={"orderId": public_id})
    assert shape(answer.get_json()) == shape(expected.get_json())
