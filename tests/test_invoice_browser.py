"""The invoice in system Chromium at a phone's size, served by real gunicorn."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import requests

from bikshop.jsonio import decimal_to_json
from tests.browser import PHONE
from tests.fake_razorpay import razorpay_settings
from tests.invoice_support import GST_SETTINGS, order_body, pdf_text

ITEMS = [
    ("Skin Renew Cream", 2, "499"),
    ("<script>alert(1)</script>", 1, "123456.5"),
    ("Extraordinarilylongproductnamewithoutanyspacesatallthatmightoverflow", 3, "1299.99"),
    ("Kumkumadi Tailam Ayurvedic Night Serum for Radiant Skin", 1, "2450"),
]


# What razorpay_settings reads of a fake Razorpay, for a page that never calls one.
_NO_RAZORPAY = SimpleNamespace(webhook_secret="whsec-unused", url="http://127.0.0.1:9")


def place_on(server, body) -> str:
    """Place ``body`` through the server's Bik endpoint: the invoice's path."""
    placed = requests.post(
        server.url + "/bik/placeOrder",
        data=json.dumps(body, default=decimal_to_json),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert placed.status_code == 200, placed.text
    return urlsplit(placed.json()["order"]["invoiceUrl"]).path


def test_invoice_on_a_phone(gunicorn, phone_page, output_dir, tmp_path):
    settings = {f"BIKSHOP_{k}": v for k, v in GST_SETTINGS.items()}
    settings["BIKSHOP_STORE_NAME"] = 'Glow "Naturals"'
    settings["BIKSHOP_PDF_CACHE_DIR"] = str(tmp_path)
    server = gunicorn(workers=1, env=settings)
    path = place_on(server, order_body(ITEMS, discount="100", state="Maharashtra"))

    requested, dialogs, console = [], [], []
    phone_page.on("request", lambda request: requested.append(request.url))
    phone_page.on("dialog", lambda dialog: dialogs.append(dialog.message) or dialog.dismiss())
    phone_page.on("console", lambda message: console.append(message.text))
    response = phone_page.goto(server.url + path)
    assert response.status == 200

    for text in ["Order #1001", "₹1,30,753.47", *(name for name, _, _ in ITEMS)]:
        assert phone_page.get_by_text(text, exact=False).first.is_visible(), text
    assert phone_page.title().startswith("Tax invoice #1001")
    assert phone_page.locator("text=<script>alert(1)</script>").count() == 2  # items, tax
    assert phone_page.evaluate("document.scripts.length") == 0
    assert dialogs == []  # the item named <script> did not run
    # innerWidth would grow with a page too wide for the phone: compare with the screen's width.
    overflow = phone_page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1] == PHONE["width"], overflow
    stylesheet_applied = phone_page.evaluate(
        "getComputedStyle(document.querySelector('.badge')).borderRadius"
    )
    assert stylesheet_applied == "999px"  # the CSS loaded despite the strict CSP
    assert not [m for m in console if "Content Security Policy" in m], console
    assert all(url.startswith(server.url) for url in requested), requested
    phone_page.screenshot(path=output_dir / "invoice-phone.png", full_page=True)

    pdf = requests.get(server.url + path + ".pdf", timeout=20)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_amounts_finer_than_the_currency_are_shown_whole_on_page_and_pdf(
    gunicorn, phone_page, output_dir, tmp_path
):
    """Bik may price in yen with decimals; the invoice shows what was charged, never rounded
    to whole yen (¥1,500.5 used to read ¥1,500, and ten ¥0.4 stickers ¥0 each)."""
    server = gunicorn(workers=1, env={"BIKSHOP_PDF_CACHE_DIR": str(tmp_path)})
    items = [("Matcha", 1, "1500.5"), ("Sticker", 10, "0.4")]
    path = place_on(server, order_body(items, shipping="0", currency="JPY"))
    assert phone_page.goto(server.url + path).status == 200
    phone_page.screenshot(path=output_dir / "invoice-phone-yen.png", full_page=True)
    shown = phone_page.inner_text("main")
    pdf = requests.get(server.url + path + ".pdf", timeout=20)
    (output_dir / "invoice-yen.pdf").write_bytes(pdf.content)
    printed = pdf_text(pdf.content)
    for where in (shown, printed):
        for figure in ("¥1,500.5", "¥0.4", "¥4", "¥1,504.5"):
            assert figure in where, (figure, where)
        assert "¥1,500\n" not in where and "¥0 " not in where


def _shop_with_contacts(gunicorn, tmp_path):
    """One gunicorn worker whose shop gives a support phone and email (the invoice's footer)."""
    return gunicorn(
        workers=1,
        env={
            "BIKSHOP_PDF_CACHE_DIR": str(tmp_path),
            "BIKSHOP_STORE_SUPPORT_PHONE": "+91 98765 43210",
            "BIKSHOP_STORE_SUPPORT_EMAIL": "help@glow.example",
        },
    )


def test_controls_labels_and_contacts_work_for_a_thumb_and_a_screen_reader(
    gunicorn, phone_page, tmp_path
):
    """ "Download PDF" was a 115×23 px tap target, the column headers were display:none (a
    screen reader read "₹998.00" with no "Amount"), the support contact was plain text, and
    every load asked for /favicon.ico and got a 404."""
    server = _shop_with_contacts(gunicorn, tmp_path)
    path = place_on(server, order_body(ITEMS[:1]))
    console = []
    phone_page.on("console", lambda message: console.append(message.text))
    assert phone_page.goto(server.url + path).status == 200

    download = phone_page.get_by_role("link", name="Download PDF").bounding_box()
    assert download["height"] >= 44, download
    for name in ("Item", "Qty", "Unit price", "Amount"):
        header = phone_page.get_by_role("columnheader", name=name, exact=True)
        assert header.count() == 1, name  # announced with each cell...
        box = header.bounding_box()
        assert box["width"] <= 1 and box["height"] <= 1, (name, box)  # ...but not drawn
    phone = phone_page.get_by_role("link", name="+91 98765 43210")
    assert phone.get_attribute("href") == "tel:+919876543210"
    email = phone_page.get_by_role("link", name="help@glow.example")
    assert email.get_attribute("href") == "mailto:help@glow.example"
    # The shop's contacts are a thumb tall (they were 19 px), the number on one line even on
    # the narrowest phones (it broke as "+91 98765" / "43210" at 360 px), here and on the page
    # a customer gets for a link that leads nowhere.
    for width in (390, 360):
        phone_page.set_viewport_size({"width": width, "height": 740})
        for where in (path, "/invoice/" + "x" * 32):
            phone_page.goto(server.url + where)
            for name in ("+91 98765 43210", "help@glow.example"):
                link = phone_page.get_by_role("link", name=name)
                assert link.bounding_box()["height"] >= 44, (width, where, name)
            lines = phone_page.get_by_role("link", name="+91 98765 43210").evaluate(
                "(a) => { const r = document.createRange(); r.selectNodeContents(a);"
                " return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; }"
            )
            assert lines == 1, (width, where)
    phone_page.set_viewport_size({"width": 390, "height": 844})
    phone_page.goto(server.url + path)
    overflow = phone_page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1], overflow
    # Chromium asks for the icon after the load event; give it the time it took before.
    assert "/favicon.ico" not in server.log_once_it_has("/favicon.ico", timeout=2)
    assert not [m for m in console if "Content Security Policy" in m], console


# Names of ordinary words: each word should stay whole on the page, wrapping between words.
WORDY = [
    ("Kumkumadi Tailam Ayurvedic Night Serum for Radiant Skin", 1, "2450"),
    ("Organic Cold-Pressed Virgin Coconut Oil", 2, "12450.50"),
]
# Every word of every item name (in the items list and the GST breakdown) that the browser
# laid out on more than one line. A word is what lies between spaces and hyphens.
SPLIT_WORDS = """() => {
  const split = [];
  for (const cell of document.querySelectorAll("td.name, .rows td[data-l=Item]")) {
    const text = cell.firstChild;
    for (const word of text.textContent.matchAll(/[^\\s-]+/g)) {
      const range = document.createRange();
      range.setStart(text, word.index);
      range.setEnd(text, word.index + word[0].length);
      const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
      if (lines.size > 1) split.push(word[0]);
    }
  }
  return split;
}"""


@pytest.mark.parametrize(
    ("width", "text_px"),
    [(320, 24), (213, 16)],
    ids=["320px-text-150%", "320px-zoom-150%"],  # zoomed, 320 screen pixels are 213 CSS px
)
def test_names_wrap_between_words_on_a_small_phone_with_large_text(
    gunicorn, browser, output_dir, tmp_path, width, text_px
):
    """On a 320 px phone with text at 150 % the items' grid left the name a column of a few
    letters beside the amount ("Kumkumadi" split as "Kumkuma / di") and the GST rows ran wider
    than the screen. The amount now moves under a name that would get too little room, a figure
    under its label; only a word longer than the line (a name without spaces) is broken."""
    settings = {f"BIKSHOP_{k}": v for k, v in GST_SETTINGS.items()}
    server = gunicorn(workers=1, env={**settings, "BIKSHOP_PDF_CACHE_DIR": str(tmp_path)})
    path = place_on(server, order_body(ITEMS + WORDY, state="Maharashtra"))
    context = browser.new_context(
        viewport={"width": width, "height": 640},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = context.new_page()
        # The reader's text size (Chrome's font size setting): 24 px is 150 % of the usual 16.
        cdp = context.new_cdp_session(page)
        cdp.send("Page.setFontSizes", {"fontSizes": {"standard": text_px, "fixed": 13}})
        assert page.goto(server.url + path).status == 200
        name_px = page.evaluate("getComputedStyle(document.querySelector('td.name')).fontSize")
        assert name_px == f"{text_px}px"  # the page follows the reader's text size
        # A phone's browser zooms out to show a page wider than the screen (innerWidth grows
        # with it): compare with the screen's width, not innerWidth.
        scroll_width, inner_width = page.evaluate(
            "[document.scrollingElement.scrollWidth, window.innerWidth]"
        )
        assert scroll_width <= width and inner_width == width, (scroll_width, inner_width)
        split = set(page.evaluate(SPLIT_WORDS))
        no_spaces = {"<script>alert(1)</script>", ITEMS[2][0]}  # too long for a line: broken
        assert ITEMS[2][0] in split and split <= no_spaces, split - no_spaces
        # Last: a full-page screenshot resets the text size Chromium was given.
        page.screenshot(path=output_dir / f"invoice-phone-{width}-{text_px}px.png", full_page=True)
    finally:
        context.close()


# Every amount on the page (and the label beside it) as (text, lines it was laid out on).
AMOUNT_LINES = """() => {
  const found = [];
  for (const cell of document.querySelectorAll(
      ".total strong, .sums th, .sums td, .items td.amt, .items td.unit")) {
    const range = document.createRange();
    range.selectNodeContents(cell);
    const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
    found.push([cell.textContent, lines.size]);
  }
  return found;
}"""


@pytest.mark.parametrize("text_px", [24, 32], ids=["text-150%", "text-200%"])
def test_amounts_are_never_split_across_lines_on_a_small_phone(
    gunicorn, browser, output_dir, tmp_path, text_px
):
    """At 320 px with large text, ₹12,39,567.39 was laid out as "₹12,39,56 / 7.39" (a customer
    reads ₹12,39,56) and "Subtotal" as "Subtota / l": the page let any word break anywhere. An
    amount and its label now stay whole, moving to the next line instead; nothing overflows."""
    # Razorpay keys, so the invoice has its Pay button (nothing is asked of Razorpay here).
    payments = {f"BIKSHOP_{k}": str(v) for k, v in razorpay_settings(_NO_RAZORPAY).items()}
    server = gunicorn(workers=1, env={"BIKSHOP_PDF_CACHE_DIR": str(tmp_path), **payments})
    items = [("Cotton Pad", 9999, "0.5"), ("Luxury Gold Facial Kit", 1, "1234567.89")]
    path = place_on(server, order_body(items, shipping="0", discount="100"))
    context = browser.new_context(
        viewport={"width": 320, "height": 640}, device_scale_factor=2, is_mobile=True
    )
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Page.setFontSizes", {"fontSizes": {"standard": text_px, "fixed": 13}})
        assert page.goto(server.url + path).status == 200
        laid_out = dict(page.evaluate(AMOUNT_LINES))
        assert "₹12,39,467.39" in laid_out and "−₹100.00" in laid_out, laid_out
        assert {text: lines for text, lines in laid_out.items() if lines != 1} == {}
        scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
        assert scroll_width <= 320, scroll_width
        # The Pay button's words grow with the reader's text: capped by the screen's width
        # alone, they were smaller than the fine print under the button (customer probe).
        button, fine_print = page.evaluate(
            "[...document.querySelectorAll('.pay button, .pay small')]"
            ".map((e) => parseFloat(getComputedStyle(e).fontSize))"
        )
        assert button >= text_px > fine_print, (button, fine_print)
        # One rule over the whole Total row, not one per cell with a gap between them.
        rules = page.evaluate(
            "['.sums tr.grand', '.sums tr.grand th', '.sums tr.grand td']"
            ".map((s) => getComputedStyle(document.querySelector(s)).borderTopWidth)"
        )
        assert rules == ["1px", "0px", "0px"], rules
        page.screenshot(path=output_dir / f"invoice-amounts-320-{text_px}px.png", full_page=True)
    finally:
        context.close()


def test_printing_the_page_from_the_browser_gives_a_readable_invoice(gunicorn, browser, tmp_path):
    """A customer printing the page itself (not the PDF link): the item's column was the
    hidden image column's neighbour by position, 9 % wide, so names ran over four lines and 60
    items took 7 pages. Names keep to a line; the pages are few."""
    server = gunicorn(workers=1, env={"BIKSHOP_PDF_CACHE_DIR": str(tmp_path)})
    items = [(f"Product number {n} — Aloe Vera Gel", 1, "100") for n in range(60)]
    body = order_body(items)
    for n, line in enumerate(body["order"]["items"]):
        line["image"] = "https://cdn.example.com/a.png" if n % 2 else None
    path = place_on(server, body)
    page = browser.new_page()
    try:
        assert page.goto(server.url + path).status == 200
        page.emulate_media(media="print")
        printed = page.pdf(format="A4")
    finally:
        page.close()
    text = pdf_text(printed)
    assert "Product number 42 — Aloe Vera Gel" in text  # whole, on one line
    info = subprocess.run(["pdfinfo", "-"], input=printed, capture_output=True).stdout.decode()
    pages = int(next(line.split()[1] for line in info.splitlines() if line.startswith("Pages")))
    assert pages <= 3, pages


def test_a_product_image_that_fails_to_load_is_an_empty_tile(
    gunicorn, phone_page, output_dir, tmp_path
):
    """A catalog's dead image link showed the browser's broken-image icon (customer probe):
    now the tile is the plain placeholder colour, pixel for pixel."""
    from io import BytesIO

    from PIL import Image

    server = gunicorn(workers=1, env={"BIKSHOP_PDF_CACHE_DIR": str(tmp_path)})
    body = order_body([("Dead link", 1, "100")])
    body["order"]["items"][0]["image"] = "https://127.0.0.1:9/gone.png"  # nothing listens
    path = place_on(server, body)
    assert phone_page.goto(server.url + path).status == 200
    image = phone_page.locator(".items img")
    phone_page.wait_for_function("document.querySelector('.items img').complete")
    assert phone_page.evaluate("document.querySelector('.items img').naturalWidth") == 0
    shot = image.screenshot(path=output_dir / "invoice-dead-image.png")
    pixels = Image.open(BytesIO(shot)).convert("RGB")
    width, height = pixels.size
    # The middle (the corners are rounded into the row's white): one colour, the tile's.
    middle = pixels.crop((width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    assert {colour for _, colour in middle.getcolors(maxcolors=4096)} == {(0xEE, 0xF0, 0xF2)}


def test_the_pay_button_keeps_its_outline_in_forced_colours(gunicorn, phone_page, tmp_path):
    """In forced colours (a Windows contrast theme) the browser drops the blue background: with
    no border the Pay button was a bare line of text (accessibility probe). A transparent
    border is drawn there, in the theme's colour, and changes nothing otherwise."""
    payments = {f"BIKSHOP_{k}": str(v) for k, v in razorpay_settings(_NO_RAZORPAY).items()}
    server = gunicorn(workers=1, env={"BIKSHOP_PDF_CACHE_DIR": str(tmp_path), **payments})
    path = place_on(server, order_body())
    assert phone_page.goto(server.url + path).status == 200
    border = (
        "(b) => { const s = getComputedStyle(b);"
        " return [s.borderTopStyle, s.borderTopWidth, s.borderTopColor]; }"
    )
    button = phone_page.get_by_role("button", name="Pay ₹1,047.00")
    assert button.evaluate(border) == ["solid", "2px", "rgba(0, 0, 0, 0)"]  # not seen
    assert button.bounding_box()["height"] >= 48
    phone_page.emulate_media(forced_colors="active")
    style, width, colour = button.evaluate(border)
    assert (style, width) == ("solid", "2px") and colour != "rgba(0, 0, 0, 0)", colour


def test_the_shops_header_and_footer_are_the_pages_banner_and_contentinfo(
    gunicorn, phone_page, tmp_path
):
    """The shop's header and footer were inside <main>, where they are no landmarks: a screen
    reader's landmark list had the main content alone (accessibility probe)."""
    settings = {f"BIKSHOP_{k}": v for k, v in GST_SETTINGS.items()}
    settings["BIKSHOP_STORE_SUPPORT_PHONE"] = "+91 98765 43210"
    server = gunicorn(workers=1, env={**settings, "BIKSHOP_PDF_CACHE_DIR": str(tmp_path)})
    path = place_on(server, order_body())
    assert phone_page.goto(server.url + path).status == 200
    banner = phone_page.get_by_role("banner")
    assert banner.count() == 1 and "Glow Naturals" in banner.inner_text()
    contentinfo = phone_page.get_by_role("contentinfo")
    assert contentinfo.count() == 1
    footer = contentinfo.inner_text()
    assert "Questions about this order?" in footer and "computer-generated" in footer
    main = phone_page.get_by_role("main").inner_text()
    assert "Order #1001" in main and "Billed and delivered to" in main
    assert "GSTIN" not in main and "Questions about" not in main


# The words of the footer laid out beside each contact link (whose box's middle band they
# share), by the link's text.
BESIDE_CONTACTS = """() => {
  const words = [];
  const walker = document.createTreeWalker(document.querySelector("footer"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const word of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      const box = range.getBoundingClientRect();
      words.push([word[0], box.top + box.height / 2]);
    }
  }
  const beside = {};
  for (const link of document.querySelectorAll("footer a.contact")) {
    const box = link.getBoundingClientRect();
    beside[link.textContent] = words
      .filter(([, middle]) => middle > box.top && middle < box.bottom)
      .map(([word]) => word);
  }
  return beside;
}"""


@pytest.mark.parametrize("width", [320, 390])
def test_each_shop_contact_has_its_line_to_itself_on_a_phone(gunicorn, browser, tmp_path, width):
    """The footer's two 44 px contact links sat inside its sentence: each stretched the line it
    was on, so the sentence's lines stood far apart, words of one contact on the other's line
    (accessibility probe). Each contact, its label and its link, keeps to a line of its own."""
    server = _shop_with_contacts(gunicorn, tmp_path)
    path = place_on(server, order_body())
    context = browser.new_context(viewport={"width": width, "height": 740}, is_mobile=True)
    try:
        page = context.new_page()
        assert page.goto(server.url + path).status == 200
        beside = page.evaluate(BESIDE_CONTACTS)
        assert set(beside["+91 98765 43210"]) <= {"Call", "+91", "98765", "43210"}, beside
        assert set(beside["help@glow.example"]) <= {"or", "write", "to", "help@glow.example"}
        for name in ("+91 98765 43210", "help@glow.example"):
            assert page.get_by_role("link", name=name).bounding_box()["height"] >= 44, name
    finally:
        context.close()
