"""A PDF cache that cannot be written costs a render per download, never the download."""

from __future__ import annotations

import logging
import stat

from bikshop import pdf
from tests.invoice_support import order_body, place_invoice


def test_a_render_is_served_when_the_cache_cannot_be_written(caplog):
    made = []

    def make() -> bytes:
        made.append(1)
        return b"%PDF-1.7 rendered"

    with caplog.at_level(logging.WARNING, logger="bikshop.pdf"):
        for _ in range(2):
            assert pdf.cached("/proc/nope/pdfs", "token", "1-a", make) == b"%PDF-1.7 rendered"
    assert len(made) == 2  # nothing cached, so rendered each time
    assert "pdf cache /proc/nope/pdfs not written" in caplog.text


def test_the_invoice_pdf_downloads_with_an_unwritable_cache_folder(make_app, caplog):
    client = make_app(PDF_CACHE_DIR="/proc/nope").test_client()
    path = place_invoice(client, order_body())
    with caplog.at_level(logging.WARNING, logger="bikshop.pdf"):
        response = client.get(path + ".pdf")
    assert response.status_code == 200
    assert response.data.startswith(b"%PDF")
    assert "pdf cache /proc/nope not written" in caplog.text


def test_the_cache_folder_is_made_private(make_app, tmp_path):
    folder = tmp_path / "pdfs"
    app = make_app(PDF_CACHE_DIR=str(folder))
    client = app.test_client()
    assert client.get(place_invoice(client) + ".pdf").status_code == 200
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
