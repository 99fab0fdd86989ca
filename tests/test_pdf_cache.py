"""A PDF cache that cannot be written costs a render per download, never the download."""

from __future__ import annotations

import logging
import stat

from sqlalchemy import select, update

from bikshop import pdf
from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services.orders import change_status
from bikshop.services.payments import mark_paid_offline
from tests.invoice_support import order_body, pdf_text, place_invoice


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


def test_after_a_restore_neither_the_pdf_cache_nor_a_browser_shows_the_state_before_it(
    make_app, tmp_path
):
    """A backup holds the order at version 1 (pending). After it the order was marked paid
    (version 2), and the customer saved that PDF and page. The backup is restored: version 1,
    pending, again; then the order is cancelled, version 2 again. Keyed on the version alone,
    the cached PDF and the browser's copy said "Paid" for the cancelled, unpaid order
    (operations probe)."""
    app = make_app(PDF_CACHE_DIR=str(tmp_path / "pdfs"))
    client = app.test_client()
    path = place_invoice(client, order_body())
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        backup = {"version": order.version, "updated_at": order.updated_at}
        mark_paid_offline(order, actor="admin:o@x.in")
        db.session.commit()
    paid_pdf, paid_page = client.get(path + ".pdf"), client.get(path)
    assert "Paid" in pdf_text(paid_pdf.data)
    with app.app_context():  # the restore: every column as the backup has it
        restored = backup | {"payment_status": "pending", "paid_at": None}
        db.session.execute(update(Order).values(restored))
        db.session.commit()
        order = db.session.scalars(select(Order)).one()
        change_status(order, "CANCELLED", actor="admin:o@x.in")
        assert order.version == 2 and order.payment_status == "pending"
    page = client.get(path, headers={"If-None-Match": paid_page.headers["ETag"]})
    assert page.status_code == 200 and "Cancelled" in page.get_data(as_text=True)
    fresh = client.get(path + ".pdf", headers={"If-None-Match": paid_pdf.headers["ETag"]})
    assert fresh.status_code == 200 and fresh.data != paid_pdf.data
    assert "Cancelled" in pdf_text(fresh.data) and "Paid" not in pdf_text(fresh.data)


def test_the_pdf_is_laid_out_holding_no_database_connection(make_app, tmp_path, monkeypatch):
    """WeasyPrint takes a second or more: the request gives its pooled connection back (and,
    on PostgreSQL, ends its transaction) before, so a connection the database drops meanwhile
    cannot fail the download after the PDF is made (operations probe: a bare 500)."""
    app = make_app(PDF_CACHE_DIR=str(tmp_path / "pdfs"))
    client = app.test_client()
    path = place_invoice(client, order_body())
    held = []
    real_render = pdf.render

    def render(html, fetcher):
        held.append(db.engine.pool.checkedout())  # the real render runs; this only looks
        return real_render(html, fetcher)

    monkeypatch.setattr(pdf, "render", render)
    response = client.get(path + ".pdf")
    assert response.status_code == 200 and "Glow Naturals" in pdf_text(response.data)
    assert held == [0]
