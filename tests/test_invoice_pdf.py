"""The invoice PDF: real WeasyPrint output read back with pdftotext, its cache and its fetcher."""

from __future__ import annotations

import os
import subprocess

import pytest

from bikshop import pdf
from bikshop.services.orders import change_status, find_by_invoice_token
from tests.invoice_support import GST_SETTINGS, order_body, pdf_pages, pdf_text, place_invoice


@pytest.fixture
def pdf_app(make_app, tmp_path):
    return make_app(PDF_CACHE_DIR=str(tmp_path / "pdfs"), STORE_NAME='Glow "Naturals" & Co')


def test_pdf_holds_the_order_items_and_total_in_rupees(pdf_app, output_dir):
    client = pdf_app.test_client()
    items = [("Skin Renew Cream", 2, "499"), ("<script>alert(1)</script>", 1, "123456.5")]
    path = place_invoice(client, order_body(items, discount="100"))
    response = client.get(path + ".pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="invoice-1001.pdf"'
    assert response.headers["Referrer-Policy"] == "no-referrer"
    (output_dir / "invoice-plain.pdf").write_bytes(response.data)
    text = pdf_text(response.data)
    for expected in (
        'Glow "Naturals" & Co',
        "Order #1001",
        "Skin Renew Cream",
        "<script>alert(1)</script>",  # the name as text, not swallowed as markup
        "₹1,24,403.50",
        "₹998.00",
        "Delivery address",
    ):
        assert expected in text, expected
    assert "Download PDF" not in text and "Pay on delivery" not in text
    fonts = subprocess.run(["pdffonts", "-"], input=response.data, capture_output=True).stdout
    assert b"Invoice-Sans" in fonts  # the bundled DejaVu subset that has ₹, embedded


def test_tax_invoice_pdf(make_app, tmp_path, output_dir):
    client = make_app(PDF_CACHE_DIR=str(tmp_path), **GST_SETTINGS).test_client()
    path = place_invoice(client, order_body(discount="100", state="Delhi"))
    data = client.get(path + ".pdf").data
    (output_dir / "invoice-gst.pdf").write_bytes(data)
    text = pdf_text(data)
    for expected in ("TAX INVOICE", "29AABCG1234K1ZO", "INV-00001", "Delhi (07)", "IGST 18%"):
        assert expected in text, expected


def test_long_order_breaks_across_pages_with_the_table_header_on_each(pdf_app, output_dir):
    client = pdf_app.test_client()
    items = [(f"Herbal product {n:02d}", 1, "100") for n in range(60)]
    data = client.get(place_invoice(client, order_body(items)) + ".pdf").data
    (output_dir / "invoice-60-items.pdf").write_bytes(data)
    pages = pdf_pages(data)
    assert pages >= 2
    text = pdf_text(data)
    assert all(f"Herbal product {n:02d}" in text for n in range(60))
    for page in range(1, pages + 1):
        page_text = pdf_text(data, page)
        if "Herbal product" in page_text:
            assert "Unit price" in page_text, f"page {page} lost the table header"
            assert f"Page {page} of {pages}" in page_text


def test_a_pdf_is_rendered_once_per_order_version(pdf_app, monkeypatch, tmp_path):
    renders = []
    real_render = pdf.render
    monkeypatch.setattr(pdf, "render", lambda *a: renders.append(1) or real_render(*a))
    client = pdf_app.test_client()
    path = place_invoice(client)
    first = client.get(path + ".pdf")
    second = client.get(path + ".pdf")
    assert len(renders) == 1
    assert first.data == second.data
    conditional = {"If-None-Match": first.headers["ETag"]}
    assert client.get(path + ".pdf", headers=conditional).status_code == 304
    with pdf_app.app_context():
        change_status(find_by_invoice_token(path.rsplit("/", 1)[1]), "CANCELLED", actor="t")
    third = client.get(path + ".pdf")
    assert len(renders) == 2
    assert "Cancelled" in pdf_text(third.data)
    cached = os.listdir(tmp_path / "pdfs")
    assert len(cached) == 1  # the old version's file is gone
    assert path.rsplit("/", 1)[1] not in cached[0]  # the token never names a file


def test_fetcher_reads_static_files_only(app):
    fetcher = pdf.StaticFilesOnly(app.static_folder)
    css = fetcher.fetch(pdf.BASE_URL + "static/invoice.css?v=1")
    assert b"@page" in css.read() and css.content_type == "text/css"
    for url in (
        "file:///etc/passwd",
        pdf.BASE_URL + "static/../bikshop/config.py",
        pdf.BASE_URL + "static/%2e%2e/setup.cfg",
        pdf.BASE_URL + "invoice/abc",
        "https://example.com/static/invoice.css",
        "http://127.0.0.1:1/static/invoice.css",
        "data:text/css,body{}",
    ):
        with pytest.raises(ValueError):
            fetcher.fetch(url)


def test_rendering_never_fetches_outside_static(app):
    requested = []

    class Recording(pdf.StaticFilesOnly):
        def fetch(self, url, headers=None):
            requested.append(url)
            return super().fetch(url, headers)

    html = (
        '<link rel="stylesheet" href="/static/invoice.css">'
        '<img src="file:///etc/hostname"><img src="https://example.com/x.png"><p>₹947.00</p>'
    )
    data = pdf.render(html, Recording(app.static_folder))
    assert "₹947.00" in pdf_text(data)
    assert pdf.BASE_URL + "static/invoice.css" in requested
    assert any(url.endswith("DejaVuSans-subset.ttf") for url in requested)  # the ₹ font


def test_indian_scripts_and_emoji_are_drawn_in_the_pdf(pdf_app, output_dir):
    """A customer's Hindi address or an emoji in a product name must show on the invoice, not
    vanish: glyphs the bundled font lacks come from the system's Noto fonts (fonts-noto-core,
    fonts-noto-color-emoji; README, Production), which WeasyPrint falls back to per character."""
    client = pdf_app.test_client()
    body = order_body([("देसी घी 🧴", 1, "499"), ("நெய் Ghee", 1, "100")])
    body["order"]["address"].update(city="मुंबई", address1="12, गली नंबर 4")
    response = client.get(place_invoice(client, body) + ".pdf")
    assert response.status_code == 200
    (output_dir / "invoice-scripts.pdf").write_bytes(response.data)
    text = pdf_text(response.data)
    assert "मुंबई" in text or "मुं" in text
    fonts = subprocess.run(["pdffonts", "-"], input=response.data, capture_output=True).stdout
    for family in (b"Noto-Sans-Devanagari", b"Noto-Sans-Tamil", b"Noto-Color-Emoji"):
        assert family in fonts, fonts.decode()
