"""The invoice PDF: real WeasyPrint output read back with pdftotext, its cache and its fetcher."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading

import pytest

from bikshop import pdf
from bikshop.invoice import rendering
from bikshop.services.orders import change_status, find_by_invoice_token
from tests.invoice_support import (
    GST_SETTINGS,
    order_body,
    pdf_pages,
    pdf_reading_order,
    pdf_text,
    pdf_words,
    place_invoice,
)

MM = 72 / 25.4  # PDF points per millimetre


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


def test_the_largest_amounts_print_apart_under_their_headers_inside_the_margins(
    make_app, tmp_path, output_dir
):
    """Numeric(12,2) holds up to 9,999,999,999.99. Such amounts used to run together
    ("2₹4,99,99,99,999.99₹9,99,99,99,999.98") past the right margin: body cells had no padding
    in print, and the columns were too narrow. Each figure must stand alone, at least a few
    points from its neighbour, flush with its column's header, inside the 12 mm margin."""
    client = make_app(PDF_CACHE_DIR=str(tmp_path), **GST_SETTINGS).test_client()
    body = order_body([("Gold bar", 2, "4999999999.99")], shipping="0", state="Karnataka")
    data = client.get(place_invoice(client, body) + ".pdf").data
    (output_dir / "invoice-largest-amounts.pdf").write_bytes(data)
    width, words = pdf_words(data)

    def line(y: float, *, right_of: float = 0) -> list:
        return sorted((w for w in words if w.y0 == y and w.x0 > right_of), key=lambda w: w.x0)

    def y_of(text: str) -> list[float]:
        return sorted({w.y0 for w in words if w.text == text})

    items_row, tax_row = y_of("Gold")
    _, grand_total, tax_total = y_of("Total")  # the summary's, the sums', the GST table's
    items_header, tax_header = y_of("Unit")[0], y_of("Taxable")[0]
    half, whole, cgst = "₹4,99,99,99,999.99", "₹9,99,99,99,999.98", "₹76,27,11,864.41"
    column_ends = {w.text: w for w in line(items_header) if w.text in ("Qty", "price", "Amount")}
    tax_ends = [w for w in line(tax_header) if w.text in ("value", "9%", "Amount")]
    sums_labels_end = column_ends["Qty"].x1
    checks = [
        (line(items_row), ["Gold", "bar", "2", half, whole], list(column_ends.values())),
        (line(y_of("Subtotal")[0], right_of=sums_labels_end), [whole], [column_ends["Amount"]]),
        (line(grand_total, right_of=sums_labels_end), [whole], [column_ends["Amount"]]),
        (line(tax_row), ["Gold", "bar", "3304", "₹8,47,45,76,271.16", cgst, cgst, whole], tax_ends),
        (line(tax_total), ["Total", "₹8,47,45,76,271.16", cgst, cgst, whole], tax_ends),
    ]
    for cells, texts, headers in checks:
        assert [w.text for w in cells] == texts
        figures = cells[-len(headers) :]
        for left, right in zip(figures, figures[1:], strict=False):
            assert right.x0 - left.x1 >= 6, (left, right)  # a visible gap, not touching
        for figure, header in zip(figures, headers, strict=True):
            assert abs(figure.x1 - header.x1) < 0.5, (figure, header)  # right-aligned alike
        assert figures[-1].x1 <= width - 12 * MM + 0.5, figures[-1]


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
        # A loose page says whose it is (customer probe); the first has it in full already.
        running = 'Invoice · Order #1001 · Glow "Naturals" & Co'
        assert (running in page_text) == (page > 1), (page, page_text[:300])


def test_the_pdf_is_tagged_and_reads_row_by_row_under_its_headings(pdf_app, output_dir):
    """Untagged, a screen reader read the PDF in drawing order: the first item's name, the
    column headers, then every quantity and price in a block, each variant after the amounts,
    "Delivery address" and "Contact" before either block's text (accessibility probe)."""
    client = pdf_app.test_client()
    items = [(f"Herbal product {n:02d}", n % 3 + 1, "100") for n in range(40)]
    data = client.get(place_invoice(client, order_body(items)) + ".pdf").data
    (output_dir / "invoice-40-items-tagged.pdf").write_bytes(data)
    info = subprocess.run(["pdfinfo", "-"], input=data, capture_output=True, check=True)
    assert "Tagged:          yes" in info.stdout.decode()
    said = pdf_reading_order(data)
    first = said.index("Herbal product 00")
    assert said[first - 4 : first + 5] == [
        *("Item", "Qty", "Unit price", "Amount"),
        *("Herbal product 00", "50 ml", "1", "₹100.00", "₹100.00"),
    ]
    last = said.index("Herbal product 39")
    assert said[last : last + 5] == ["Herbal product 39", "50 ml", "1", "₹100.00", "₹100.00"]
    delivery, contact = said.index("Delivery address"), said.index("Contact")
    assert said[delivery + 1] == "Bik Tester" and delivery < contact
    assert said[contact + 1] == "+919876543210"


@pytest.mark.sqlite_only
def test_a_change_to_the_pdf_renderer_renders_cached_pdfs_again(app, tmp_path):
    """A PDF cached before WeasyPrint's options changed (before tagging, say) must not be served
    after: the renderer's code is part of the render version, so of the cache key and ETag."""
    root = tmp_path / "bikshop-copy"
    source = os.path.dirname(app.root_path)
    for asset in {*rendering._ASSETS, "bikshop/pdf.py"}:
        copy = shutil.copytree if os.path.isdir(os.path.join(source, asset)) else shutil.copy
        (root / asset).parent.mkdir(parents=True, exist_ok=True)
        copy(os.path.join(source, asset), root / asset)
    renderer = root / "bikshop" / "pdf.py"
    app.root_path = str(root / "bikshop")

    def version() -> str:
        app.extensions.pop(rendering._VERSION_KEY, None)
        with app.app_context():
            return rendering.render_version()

    before = version()
    renderer.write_text(renderer.read_text() + "\n# WeasyPrint's options changed\n")
    assert version() != before


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


def test_a_worker_renders_every_pdf_with_one_font_configuration(pdf_app, monkeypatch):
    """Left to WeasyPrint, each render made its own FontConfiguration, whose native memory is
    never given back: a worker grew by about 0.24 MB per PDF for good (soak probe: 102 MB to
    341 MB over 850 renders, nothing recycling workers). One per worker, made once."""
    from weasyprint.text.fonts import FontConfiguration

    made = []
    real_init = FontConfiguration.__init__

    def counted(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(FontConfiguration, "__init__", counted)
    monkeypatch.setattr(pdf, "_fonts_of", threading.local(), raising=False)  # none made yet
    client = pdf_app.test_client()
    pdfs = [client.get(place_invoice(client) + ".pdf").data for _ in range(3)]
    assert len(made) == 1
    for number, document in enumerate(pdfs, start=1001):
        assert f"Order #{number}" in pdf_text(document)
        fonts = subprocess.run(["pdffonts", "-"], input=document, capture_output=True).stdout
        assert b"Invoice-Sans" in fonts  # the shared configuration still has the @font-face


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


def test_rendering_never_fetches_outside_static(app, monkeypatch):
    monkeypatch.setattr(pdf, "_fonts_of", threading.local())  # a fresh worker: fonts read once
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
    fonts-noto-cjk, fonts-noto-color-emoji; README, Production), which WeasyPrint falls back to
    per character."""
    client = pdf_app.test_client()
    body = order_body(
        [("देसी घी 🧴", 1, "499"), ("நெய் Ghee", 1, "100"), ("护肤霜（修复型）", 1, "50")]
    )
    body["order"]["address"].update(city="मुंबई", address1="12, गली नंबर 4")
    response = client.get(place_invoice(client, body) + ".pdf")
    assert response.status_code == 200
    (output_dir / "invoice-scripts.pdf").write_bytes(response.data)
    text = pdf_text(response.data)
    assert "मुंबई" in text or "मुं" in text
    fonts = subprocess.run(["pdffonts", "-"], input=response.data, capture_output=True).stdout
    for family in (b"Noto-Sans-Devanagari", b"Noto-Sans-Tamil", b"Noto-Color-Emoji"):
        assert family in fonts, fonts.decode()
    # Chinese, Japanese and Korean (an export customer's name): fonts-noto-cjk. Without it the
    # text is still in the PDF's text layer, but nothing is drawn.
    assert b"Noto-Sans-CJK" in fonts, fonts.decode()


def test_item_names_longer_than_an_invoice_shows_are_cut_on_page_and_pdf(pdf_app):
    """A 1,000-letter name without a space made WeasyPrint try every break point (12 s for 100
    such items, a worker timeout for 500): the invoice shows 150 characters, ending in …"""
    from bikshop.invoice.formatting import MAX_ITEM_TEXT

    client = pdf_app.test_client()
    long_name = "Z" * 1000
    path = place_invoice(client, order_body([(long_name, 1, "10"), ("Cream", 1, "5")]))
    shown = "Z" * (MAX_ITEM_TEXT - 1) + "…"
    page = client.get(path).get_data(as_text=True)
    assert shown in page and "Z" * MAX_ITEM_TEXT not in page
    text = pdf_text(client.get(path + ".pdf").data)
    # The name wraps over lines beside the quantity and prices: its column, put back together.
    name = "".join(line.split()[0] for line in text.splitlines() if line.startswith("Z"))
    assert name == shown
    assert "Cream" in text


# An address as Bik's contract allows it (firstName … country up to 255 characters each) and a
# customer may type it: each field one word, a letter of its own.
FIELDS = ("firstName", "lastName", "address1", "address2", "city", "state", "country")
LONG_ADDRESS = dict(zip(FIELDS, "QWXZJKV", strict=True))


def test_long_unbroken_address_lines_print_whole_and_cheaply_inside_their_column(
    pdf_app, monkeypatch, output_dir
):
    """The parties' grid columns were 1fr, whose least width is their text's min-content width:
    under overflow-wrap: anywhere WeasyPrint measures it by laying the text out again from each
    character on (split_first_line once per character, over the rest of the line). Seven address
    fields of 255 letters without a space took 3.1 s to print instead of 0.06 s (security
    probe). The columns are minmax(0, 1fr): no such measure, and every line is still printed
    whole, wrapped inside its column and the page's margins."""
    from weasyprint.layout import preferred

    measures = []
    measure = preferred.split_first_line

    def counted(*args, **kwargs):
        measures.append(args[0])
        return measure(*args, **kwargs)

    monkeypatch.setattr(preferred, "split_first_line", counted)
    client = pdf_app.test_client()
    body = order_body()
    body["order"]["address"].update({key: letter * 255 for key, letter in LONG_ADDRESS.items()})
    data = client.get(place_invoice(client, body) + ".pdf").data
    (output_dir / "invoice-long-address.pdf").write_bytes(data)
    # 5,648 measures before (the 1,785 letters, each from its own start), 74 after.
    assert len(measures) < 255, len(measures)

    printed = dict.fromkeys(LONG_ADDRESS.values(), "")
    for page in range(1, pdf_pages(data) + 1):
        width, words = pdf_words(data, page)
        contact = [w for w in words if w.text == "Contact"]
        for word in sorted(words, key=lambda w: (w.y0, w.x0)):
            letters = word.text.rstrip(",")  # "<city>, <state> 560102"
            if letters[:1] in printed and letters == letters[0] * len(letters):
                printed[letters[0]] += letters
                assert word.x0 >= 12 * MM - 0.5 and word.x1 <= width - 12 * MM + 0.5, word
                assert all(word.x1 < heading.x0 for heading in contact), word  # its column
    assert printed == {letter: letter * 255 for letter in LONG_ADDRESS.values()}


# A typical long product name: 40 characters, seven ordinary words.
NAME_40 = "Kumkumadi Tailam Ayurvedic Face Serum 30"


@pytest.mark.parametrize(("state", "most_lines"), [("Karnataka", 2), ("Delhi", 1)])
def test_a_typical_item_name_keeps_to_a_line_or_two_in_the_gst_table(
    make_app, tmp_path, output_dir, state, most_lines
):
    """The GST table's figure columns were sized for ₹9,99,99,99,999.98 on every invoice, so the
    item's name had 16 % of the width: a 40-letter name took three lines of a few words (and a
    long order pages more). Up to a grand total of ₹9,99,999.99 the figures get what they need
    and the name the rest; figures and headers still keep to one line."""
    client = make_app(PDF_CACHE_DIR=str(tmp_path), **GST_SETTINGS).test_client()
    body = order_body([(NAME_40, 1, "1299"), ("Rose Water Toner", 2, "249")], state=state)
    data = client.get(place_invoice(client, body) + ".pdf").data
    (output_dir / f"invoice-gst-name-{state}.pdf").write_bytes(data)
    _, words = pdf_words(data)
    header = next(w for w in words if w.text == "Taxable")  # the GST table's header row
    header_row = [w for w in words if abs(w.y0 - header.y0) < 0.5]
    assert "value" in [w.text for w in header_row]  # "Taxable value" on one line
    hsn = next(w for w in header_row if w.text == "HSN")
    name = [w for w in words if w.y0 > header.y1 and w.x1 <= hsn.x0 and w.text in NAME_40.split()]
    assert " ".join(w.text for w in name) == NAME_40
    assert len({round(w.y0) for w in name}) <= most_lines, name
    row = [w for w in words if abs(w.y0 - name[0].y0) < 0.5 and w.x0 >= hsn.x0]
    # The HSN and every figure (taxable value, CGST and SGST or IGST, amount): one word each,
    # on the name's first line.
    assert [w.text[:1] for w in row] == ["3", *"₹" * (4 if state == "Karnataka" else 3)], row
    assert row[-1].text == "₹1,299.00"


def test_a_tax_invoice_cuts_long_names_in_its_gst_table_too(make_app, tmp_path):
    """The GST table printed an item's name uncut, so a 1,000-letter name cost the render time
    the 150-character cut saves in the items table (and a page of its own)."""
    from bikshop.invoice.formatting import MAX_ITEM_TEXT

    client = make_app(PDF_CACHE_DIR=str(tmp_path), **GST_SETTINGS).test_client()
    path = place_invoice(client, order_body([("Z" * 1000, 1, "10")]))
    assert "Z" * MAX_ITEM_TEXT not in client.get(path).get_data(as_text=True)
    data = client.get(path + ".pdf").data
    assert pdf_pages(data) == 1
    name_letters = sum(len(run) for run in re.findall("Z{2,}", pdf_text(data)))  # not the GSTIN's
    assert name_letters == 2 * (MAX_ITEM_TEXT - 1)  # in the items and the GST table, both cut


@pytest.mark.parametrize(
    ("settings", "items", "closing"),
    [(GST_SETTINGS, 29, "Billed and delivered to"), ({}, 37, "Delivery address")],
    ids=["tax-invoice", "plain-invoice"],
)
def test_the_closing_block_never_has_a_page_to_itself(
    make_app, tmp_path, output_dir, settings, items, closing
):
    """At these sizes the last rows filled a page exactly: the addresses and the declaration
    (tax invoice: 29 items) or the footer alone (plain: 37 items) made a last page of their own.
    The closing block stays whole and takes the last rows and the totals along."""
    client = make_app(PDF_CACHE_DIR=str(tmp_path), **settings).test_client()
    lines = [(f"Herbal product number {n:02d}", 1, "100") for n in range(items)]
    data = client.get(place_invoice(client, order_body(lines)) + ".pdf").data
    (output_dir / f"invoice-{items}-items-closing.pdf").write_bytes(data)
    pages = pdf_pages(data)
    last = [line.strip() for line in pdf_text(data, pages).splitlines() if line.strip()]
    assert closing in "\n".join(last), last  # the closing block is whole on the last page...
    before = last[: next(n for n, line in enumerate(last) if line.startswith(closing))]
    rows = [line for line in before if re.match(r"(Herbal product number|Shipping) .*₹", line)]
    assert rows, last  # ...with the table's last rows
    assert any(line.startswith("Total ") for line in before), last  # ...and the totals
    if settings:
        assert "Prices include GST. This is a computer-generated invoice." in last
