"""Helpers for the invoice tests: orders placed through the real Bik endpoint, and PDF text."""

from __future__ import annotations

import re
import subprocess
from decimal import Decimal
from html import unescape
from typing import NamedTuple
from urllib.parse import urlsplit

from tests.bik import place, sample_body

GSTIN_KARNATAKA = "29AABCG1234K1ZO"  # valid check digit; state code 29 = Karnataka
GST_SETTINGS = {
    "STORE_GSTIN": GSTIN_KARNATAKA,
    "STORE_LEGAL_NAME": "Glow Naturals Private Limited",
    "STORE_ADDRESS": "12 MG Road, Bengaluru 560001",
    "STORE_HSN_CODE": "3304",
    "STORE_GST_RATE": "18",
}


def order_body(items=None, *, shipping="49", discount="0", state=None, **changes) -> dict:
    """A placeOrder body with ``items`` as (name, quantity, price) and totals that add up."""
    items = items or [("Skin Renew Cream", 2, "499")]
    lines = [
        {
            "productId": 1000 + n,
            "variantId": 2000 + n,
            "name": name,
            "variantName": "50 ml",
            "quantity": quantity,
            "price": Decimal(price),
        }
        for n, (name, quantity, price) in enumerate(items)
    ]
    sub_total = sum(Decimal(line["price"]) * line["quantity"] for line in lines)
    body = sample_body(
        items=lines,
        subTotal=sub_total,
        shippingCharge=Decimal(shipping),
        discount=Decimal(discount),
        total=sub_total + Decimal(shipping) - Decimal(discount),
        **changes,
    )
    if state is not None:
        body["order"]["address"]["state"] = state
    return body


def place_invoice(client, body=None) -> str:
    """Place an order through /bik/placeOrder and return its invoice path (/invoice/<token>)."""
    response = place(client, body or order_body())
    assert response.status_code == 200, response.get_data(as_text=True)
    return urlsplit(response.get_json()["order"]["invoiceUrl"]).path


def pdf_text(data: bytes, page: int | None = None) -> str:
    """The text of a PDF (or one page of it) as poppler's pdftotext reads it."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    result = subprocess.run(
        ["pdftotext", "-layout", *pages, "-", "-"], input=data, capture_output=True, check=True
    )
    return result.stdout.decode()


def pdf_pages(data: bytes) -> int:
    """How many pages a PDF has."""
    info = subprocess.run(["pdfinfo", "-"], input=data, capture_output=True, check=True)
    line = next(x for x in info.stdout.decode().splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])


class Word(NamedTuple):
    """A word on a PDF page and its box, in points from the top left corner."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
)


def pdf_words(data: bytes, page: int = 1) -> tuple[float, list[Word]]:
    """A page's width and its words with their boxes, as ``pdftotext -bbox`` reads them."""
    result = subprocess.run(
        ["pdftotext", "-bbox", "-f", str(page), "-l", str(page), "-", "-"],
        input=data,
        capture_output=True,
        check=True,
    )
    html = result.stdout.decode()
    width = float(re.search(r'<page width="([\d.]+)"', html).group(1))
    words = [
        Word(unescape(text), float(x0), float(y0), float(x1), float(y1))
        for x0, y0, x1, y1, text in _WORD.findall(html)
    ]
    return width, words


def pdf_reading_order(data: bytes) -> list[str]:
    """The PDF's text in the order its structure tree gives it (a screen reader's order), as
    ``pdfinfo -struct-text`` prints it; empty for an untagged PDF."""
    result = subprocess.run(
        ["pdfinfo", "-struct-text", "-"], input=data, capture_output=True, check=True
    )
    return re.findall(r'^\s*"(.*)"$', result.stdout.decode(), flags=re.MULTILINE)
