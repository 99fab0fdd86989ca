"""Helpers for talking to the Bik endpoints the way Bik does."""

from __future__ import annotations

import copy
import itertools

from bikshop.checkbik import SAMPLE_ORDER

_drafts = itertools.count(1)


def new_draft_id() -> str:
    return f"nb_1715200000_t{next(_drafts):07d}"


def sample_body(draft_id: str | None = None, **order_changes) -> dict:
    """Bik's published sample placeOrder body, with a fresh draft id unless one is given."""
    body = copy.deepcopy(SAMPLE_ORDER)
    body["draftOrderId"] = body["order"]["id"] = draft_id or new_draft_id()
    body["order"].update(order_changes)
    return body


def place(client, body=None, headers=None):
    return client.post("/bik/placeOrder", json=body or sample_body(), headers=headers or {})


def get(client, order_id, headers=None):
    return client.post("/bik/getOrder", json={"orderId": order_id}, headers=headers or {})
