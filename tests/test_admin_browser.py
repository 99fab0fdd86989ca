"""End to end in Chromium against real gunicorn: the owner finds an order by phone, ships it and
delivers it, and Bik's getOrder then tells the customer so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.admin_support import ADMIN_CONFIG, OWNER, PASSWORD, add_admin
from tests.bik import sample_body

pytestmark = pytest.mark.slow
TRACKING = "https://track.example.com/AWB99887766?lang=en"


def _place(server, phone: str, first_name: str, product: str | None = None) -> dict:
    body = sample_body(phoneNumber=phone)
    body["order"]["address"]["firstName"] = first_name
    if product is not None:
        body["order"]["items"][0]["name"] = product
    answer = requests.post(f"{server.url}/bik/placeOrder", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["order"]


def _shop_with_an_order(make_app, gunicorn):
    """A dashboard account, one gunicorn worker on plain http without rate limits, and Ravi's
    order placed through Bik's door: (server, order)."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    return server, _place(server, "+919811122233", "Ravi")


def _sign_in(page, url: str) -> None:
    page.goto(f"{url}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=email]", OWNER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{url}/admin/")


def _too_small(page) -> list:
    """The visible controls and links on ``page`` less than a thumb (44 px) tall."""
    return page.evaluate(
        """() => [...document.querySelectorAll(
                'button, summary, input:not([type=hidden]), select, a')]
            .filter((el) => el.offsetParent !== null)
            .map((el) => [el.textContent.trim() || el.name, el.getBoundingClientRect().height])
            .filter(([, height]) => height < 44)"""
    )


def _confirm(page, opener: str, button: str) -> None:
    """An action that cannot be undone: open its question, then press its real button."""
    page.click(f"summary:has-text('{opener}')")
    page.get_by_role("button", name=button, exact=True).click()


def test_owner_ships_and_delivers_an_order_bik_then_reports_it(
    make_app, gunicorn, desktop_page, phone_page, output_dir, database_url
):
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=2, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    _place(server, "+919811122233", "Ravi")
    order = _place(server, "+91 98765 43210", "Priya")
    _place(server, "+919800000001", "Kiran")
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"

    page = desktop_page
    _sign_in(page, server.url)
    page.fill("input[name=q]", "98765 43210")
    page.click("button:has-text('Find')")
    page.wait_for_load_state()
    rows = page.locator("table.orders tbody tr")
    assert rows.count() == 1
    assert order["name"] in rows.first.inner_text()
    page.screenshot(path=str(output_dir / f"admin-list-1280-{backend}.png"), full_page=True)

    page.click(f"text={order['name']}")
    page.wait_for_url(f"**/admin/orders/{order['id']}")
    page.select_option("select[name=fulfillment]", "fulfilled")
    page.fill("input[name=tracking_url]", TRACKING)
    page.click("button:has-text('Save fulfilment')")
    page.wait_for_selector("text=Fulfilment saved.")
    _confirm(page, "Mark delivered", "Yes, mark delivered")
    page.wait_for_selector("text=Status changed to delivered.")
    assert page.locator(".order-head .pill").all_inner_texts() == [
        "Delivered",
        "Pending",
        "Fulfilled",
    ]
    page.screenshot(path=str(output_dir / f"admin-order-1280-{backend}.png"), full_page=True)

    bik = requests.post(f"{server.url}/bik/getOrder", json={"orderId": order["id"]}, timeout=10)
    assert bik.status_code == 200
    seen = bik.json()["order"]
    assert seen["status"] == "DELIVERED"
    assert seen["fulfillmentStatus"] == "fulfilled"
    assert seen["deliveryInfo"]["trackingURL"] == TRACKING

    # On a phone: the same pages fit 390 px without sideways scrolling.
    phone = phone_page
    phone.context.add_cookies(page.context.cookies())  # the same signed-in owner
    phone.goto(f"{server.url}/admin/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(output_dir / f"admin-list-390-{backend}.png"), full_page=True)
    phone.goto(f"{server.url}/admin/orders/{order['id']}")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert f"admin:{OWNER}" in phone.inner_text(".timeline")
    phone.screenshot(path=str(output_dir / f"admin-order-390-{backend}.png"), full_page=True)


def test_long_unbroken_text_wraps_inside_the_page_at_phone_and_desktop_widths(
    make_app, gunicorn, browser, output_dir, database_url
):
    """A customer's 240-letter name and a 300-letter product name (no spaces) and a long
    tracking link wrap; the page never scrolls sideways, so the actions and totals stay where
    the owner can reach them, and on a laptop the list's date, total and states keep their
    line instead of being squeezed to a word a line beside the long name."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    order = _place(server, "+919800000003", "Ravi" * 60, product="Kumkumadi" * 33 + "Oil")
    track = "https://track.example.com/" + "A1B2C3D4" * 30
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    for width, height in ((390, 844), (1280, 900)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        _sign_in(page, server.url)
        if width == 390:
            page.goto(f"{server.url}/admin/orders/{order['id']}")
            page.select_option("select[name=fulfillment]", "fulfilled")
            page.fill("input[name=tracking_url]", track)
            page.click("button:has-text('Save fulfilment')")
            page.wait_for_selector("text=Fulfilment saved.")
        for path in ("/admin/", f"/admin/orders/{order['id']}"):
            page.goto(server.url + path)
            name = "list" if path == "/admin/" else "order"
            page.screenshot(
                path=str(output_dir / f"admin-long-{name}-{width}-{backend}.png"), full_page=True
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (path, width)
        if width > 390:
            page.goto(f"{server.url}/admin/")
            lines = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('.orders td')]
                    .filter((td) => ['Date', 'Total', 'Payment', 'Status']
                        .includes(td.dataset.label))
                    .map((td) => {
                        // The text's own height (a cell is as tall as its row).
                        const text = document.createRange();
                        text.selectNodeContents(td);
                        const line = parseFloat(getComputedStyle(td).lineHeight);
                        return [td.dataset.label,
                                Math.round(text.getBoundingClientRect().height / line)];
                    }))"""
            )
            assert max(lines.values()) <= 2, lines
        context.close()
    # No page asked for /favicon.ico (a 404 on every page; owner probe). Chromium asks after
    # the load event: give it the time it took before.
    assert "/favicon.ico" not in server.log_once_it_has("/favicon.ico", timeout=2)


def test_export_csv_after_being_signed_out_leads_to_sign_in_then_the_same_list(
    make_app, gunicorn, desktop_page
):
    """Signed out in another tab, Export CSV used to save the sign-in page as 'login.html'
    with no word on screen. Now it opens the sign-in page; signing in returns to the same
    filtered list (not a download that leaves the sign-in form on screen), and the export
    then downloads the orders."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    order = _place(server, "+91 98765 43210", "Priya")
    _place(server, "+919811122233", "Ravi")
    page = desktop_page
    _sign_in(page, server.url)
    page.goto(f"{server.url}/admin/?q=priya")
    other_tab = page.context.new_page()
    other_tab.goto(f"{server.url}/admin/")
    other_tab.click("button:has-text('Sign out')")
    other_tab.wait_for_url("**/admin/login")

    page.click("text=Export CSV")
    page.wait_for_url(re.compile(r"/admin/login\?next=/admin/orders\.csv"))
    page.fill("input[name=email]", OWNER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{server.url}/admin/?q=priya")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    assert download.value.suggested_filename.startswith("orders-")
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert order["name"] in exported and "Ravi" not in exported


def test_cash_received_alone_on_a_delivered_order_keeps_its_space(make_app, gunicorn, browser):
    """Delivered but unpaid (cash on delivery): the one button left sits in the same row as the
    others would, with the gap above the fulfilment form, not touching its label."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    order = _place(server, "+919800000003", "Kiran")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    _sign_in(page, server.url)
    page.goto(f"{server.url}/admin/orders/{order['id']}")
    _confirm(page, "Mark delivered", "Yes, mark delivered")
    page.wait_for_selector("text=Status changed to delivered.")
    button = page.locator("summary:has-text('Cash received')").bounding_box()
    label = page.locator("label:has-text('Fulfilment')").bounding_box()
    assert label["y"] - (button["y"] + button["height"]) >= 8
    context.close()


def _focus_lands_on(page, field: str) -> None:
    """The cursor reaches the form field named ``field`` within 5 s (a timeout fails)."""
    page.wait_for_function(
        "name => document.activeElement && document.activeElement.name === name",
        arg=field,
        timeout=5000,
    )


def test_after_a_wrong_password_the_cursor_is_in_the_password_box(make_app, gunicorn, phone_page):
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    page = phone_page
    page.goto(f"{server.url}/admin/login")
    # Chromium applies autofocus at its next rendering step, after the load event: wait for it.
    _focus_lands_on(page, "email")
    page.fill("input[name=email]", OWNER)
    page.fill("input[name=password]", "not the password")
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("text=Wrong email or password.")
    assert page.input_value("input[name=email]") == OWNER
    _focus_lands_on(page, "password")


def test_an_order_of_crores_keeps_its_item_names_readable_on_a_phone(
    make_app, gunicorn, browser, output_dir, database_url
):
    """Beside amounts of nine digits the item column keeps a readable width (it was squeezed
    to a letter per line), the tiles show whole amounts, and nothing scrolls sideways."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    item = {"productId": 1, "variantId": 2, "name": "Gold facial kit", "quantity": 9}
    body = sample_body(items=[item | {"price": 9999999.99}])
    body["order"] |= {"subTotal": 89999999.91, "shippingCharge": 49, "discount": 0}
    body["order"]["total"] = 90000048.91
    answer = requests.post(f"{server.url}/bik/placeOrder", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    context = browser.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    _sign_in(page, server.url)
    assert page.get_by_role("heading", level=1).all_inner_texts() == ["Orders"]
    tiles = page.locator(".tile").all_inner_texts()
    assert any("₹9,00,00,048.91" in " ".join(tile.split()) for tile in tiles), tiles
    # Each amount on one line: it used to break between its digits ("₹9,00,00,048." / "91").
    lines = page.eval_on_selector_all(
        ".tile span:not(.tile-label)",
        """spans => spans.map(span => {
            const range = document.createRange();
            range.selectNodeContents(span);
            return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
        })""",
    )
    assert lines[:2] == [1, 1], lines
    # The way into an order, and the list's links, are 44 px tap targets.
    for link in ("#1001", "Export CSV"):
        assert page.get_by_role("link", name=link).bounding_box()["height"] >= 44, link
    page.goto(f"{server.url}/admin/orders/{answer.json()['order']['id']}")
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    page.screenshot(path=str(output_dir / f"admin-crores-360-{backend}.png"), full_page=True)
    name_cell = page.locator(".lines tbody td").first
    assert name_cell.bounding_box()["width"] >= 100
    assert "₹8,99,99,999.91" in page.locator(".lines").inner_text()
    assert "Discount" not in page.locator(".lines").inner_text()  # none given: no −₹0.00 line
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # The owner's thumb reaches the customer: each contact link is a 44 px tap target.
    for link in ("Call +919876543210", "WhatsApp", "buyer@example.com"):
        assert page.get_by_role("link", name=link).bounding_box()["height"] >= 44, link
    assert page.get_by_role("button", name="Sign out").bounding_box()["height"] >= 44
    for link in ("← Orders", "Open invoice"):
        assert page.get_by_role("link", name=link).bounding_box()["height"] >= 44, link
    assert page.locator("summary", has_text="Request Bik sent").bounding_box()["height"] >= 44
    context.close()


def _bik_order(server, order_id: str) -> dict:
    answer = requests.post(f"{server.url}/bik/getOrder", json={"orderId": order_id}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["order"]


def _states(server, order_id: str) -> tuple[str, str, str]:
    seen = _bik_order(server, order_id)
    return seen["status"], seen["paymentStatus"], seen["fulfillmentStatus"]


def test_an_action_that_cannot_be_undone_asks_first_on_a_phone(
    make_app, gunicorn, phone_page, output_dir, database_url
):
    """Mark delivered and Cash received change nothing on the first tap: they ask "Mark #1001
    delivered? This cannot be undone." with the real button and Keep as is; only that button
    changes the order. The question works from the keyboard, its buttons are 44 px tap targets,
    and the pills then read Delivered, Paid, Fulfilled (Bik still says DELIVERED, paid)."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    order = _place(server, "+919800000004", "Asha")
    name, oid = order["name"], order["id"]
    page = phone_page
    console = []
    page.on("console", lambda message: console.append(message.text))
    _sign_in(page, server.url)
    page.goto(f"{server.url}/admin/orders/{oid}")
    assert page.locator(".order-head .pill").all_inner_texts() == [
        "Ordered",
        "Pending",
        "Unfulfilled",
    ]

    # The first tap only asks.
    page.click("summary:has-text('Mark delivered')")
    question = page.locator("#confirm-delivered .confirm-panel")
    assert question.is_visible()
    assert question.inner_text().startswith(f"Mark {name} delivered? This cannot be undone")
    confirm = page.get_by_role("button", name="Yes, mark delivered", exact=True)
    keep = page.get_by_role("link", name="Keep as is", exact=True)
    assert confirm.is_visible() and keep.is_visible()
    for target in (page.locator("summary:has-text('Mark delivered')"), confirm, keep):
        assert target.bounding_box()["height"] >= 44
    assert page.get_by_role("group", name=f"Mark {name} delivered?").count() == 1
    page.screenshot(path=str(output_dir / f"admin-confirm-390-{_backend(database_url)}.png"))
    assert page.url.endswith(f"/admin/orders/{oid}")
    assert _states(server, oid) == ("ORDERED", "pending", "unfulfilled")

    # Keep as is closes the question and gives the focus back to the button that opened it.
    keep.click()
    assert not question.is_visible()
    assert page.evaluate("document.activeElement.textContent") == "Mark delivered…"
    assert _states(server, oid) == ("ORDERED", "pending", "unfulfilled")

    # One question at a time: opening another closes the first; Escape closes it too.
    page.click("summary:has-text('Mark delivered')")
    page.click("summary:has-text('Cash received')")
    assert not question.is_visible()
    assert page.locator("#confirm-paid .confirm-panel").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#confirm-paid .confirm-panel").is_visible()
    assert page.evaluate("document.activeElement.textContent") == "Cash received…"

    # From the keyboard: Enter opens the question, Tab reaches its button, Enter confirms.
    page.focus("summary:has-text('Mark delivered')")
    page.keyboard.press("Enter")
    assert question.is_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Yes, mark delivered"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("text=Status changed to delivered.")
    assert _states(server, oid) == ("DELIVERED", "pending", "fulfilled")

    _confirm(page, "Cash received", "Yes, cash received")
    page.wait_for_selector("text=Marked as paid (cash).")
    assert _states(server, oid) == ("DELIVERED", "paid", "fulfilled")
    assert page.locator(".order-head .pill").all_inner_texts() == ["Delivered", "Paid", "Fulfilled"]
    # What is left that cannot be undone: recording the cash given back, should it come back.
    assert page.locator("details.confirm summary").all_inner_texts() == ["Record money returned…"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not [text for text in console if "Content Security Policy" in text], console


def test_the_question_works_without_javascript(make_app, gunicorn, browser):
    """With JavaScript off the question still opens and confirms (a <details>), and Keep as is
    reloads the order page with nothing changed."""
    add_admin(make_app(**ADMIN_CONFIG))
    server = gunicorn(
        workers=1, env={"BIKSHOP_INSECURE_COOKIES": "true", "BIKSHOP_RATELIMIT_ENABLED": "false"}
    )
    order = _place(server, "+919800000005", "Meera")
    name, oid = order["name"], order["id"]
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    _sign_in(page, server.url)
    page.goto(f"{server.url}/admin/orders/{oid}")

    page.click("summary:has-text('Cancel this order')")
    question = page.locator("#confirm-cancel .confirm-panel")
    assert question.inner_text().startswith(f"Cancel {name}? This cannot be undone")
    with page.expect_navigation():
        page.get_by_role("link", name="Keep as is", exact=True).click()
    assert not question.is_visible()
    assert _states(server, oid) == ("ORDERED", "pending", "unfulfilled")

    page.click("summary:has-text('Mark in progress')")
    assert _states(server, oid) == ("ORDERED", "pending", "unfulfilled")
    page.get_by_role("button", name="Yes, mark in progress", exact=True).click()
    page.wait_for_selector("text=Status changed to in progress.")
    assert _states(server, oid) == ("IN PROGRESS", "pending", "unfulfilled")

    _confirm(page, "Cancel this order", f"Yes, cancel {name}")
    page.wait_for_selector("text=Order cancelled.")
    assert _states(server, oid)[0] == "CANCELLED"
    assert page.locator(".order-head .pill").first.inner_text() == "Cancelled"
    context.close()


def _backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def test_a_second_tap_while_the_answer_is_on_its_way_sends_nothing(make_app, gunicorn, phone_page):
    """On a slow phone network the page stays while the answer comes: a second tap on the same
    button sent the form again. The button now waits (the server refuses a repeated refund or
    return anyway; this spares the owner the refusal)."""
    server, order = _shop_with_an_order(make_app, gunicorn)
    page = phone_page
    _sign_in(page, server.url)
    page.goto(f"{server.url}/admin/orders/{order['id']}")
    # The slow network: the form is sent (counted) but the page stays, as while the answer is
    # on its way.
    page.evaluate(
        """() => document.addEventListener("submit", (event) => {
            window.sent = (window.sent || 0) + 1; event.preventDefault();
        }, true)"""
    )
    page.click("summary:has-text('Mark in progress')")
    button = page.get_by_role("button", name="Yes, mark in progress", exact=True)
    button.click()
    page.wait_for_timeout(100)
    assert button.is_disabled()
    button.click(force=True)  # the impatient second tap
    page.wait_for_timeout(100)
    assert page.evaluate("window.sent") == 1


def test_the_dashboard_on_a_phone_follows_large_text_and_keeps_thumb_sized_controls(
    make_app, gunicorn, browser
):
    """The page was 15 px whatever the reader's text size (only labels grew, and the bar pushed
    the page sideways); the list's states said "Pending" without saying which column; turned
    sideways (844 px, wider than the phone rules) a touch screen got 22-40 px controls."""
    server, order = _shop_with_an_order(make_app, gunicorn)
    for viewport, text_px in (
        ({"width": 390, "height": 844}, 24),
        ({"width": 844, "height": 390}, 16),
    ):
        context = browser.new_context(
            viewport=viewport, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        try:
            page = context.new_page()
            context.new_cdp_session(page).send(
                "Page.setFontSizes", {"fontSizes": {"standard": text_px, "fixed": 13}}
            )
            _sign_in(page, server.url)
            body_px = page.evaluate("getComputedStyle(document.body).fontSize")
            assert float(body_px.removesuffix("px")) == text_px * 15 / 16
            wide = page.evaluate(
                """(w) => [...document.querySelectorAll('body *')]
                    .filter((el) => el.getBoundingClientRect().right > w)
                    .map((el) => `${el.tagName}.${el.className} ${el.name || ""}`)""",
                viewport["width"],
            )
            assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"], wide
            labelled = page.evaluate(
                """() => [...document.querySelectorAll('.orders td[data-label=Payment]')]
                    .map((td) => getComputedStyle(td, '::before').content)"""
            )
            if viewport["width"] < 720:
                assert labelled == ['"Payment: "'], labelled
            page.goto(f"{server.url}/admin/orders/{order['id']}")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
            # Every control and every link, the tracking link (a dashboard probe found it and
            # the list's "Show all orders" 20 px tall) included.
            page.select_option("select[name=fulfillment]", "partial")
            page.fill("input[name=tracking_url]", "https://a.com/track?id=1")
            with page.expect_navigation():
                page.click("button:has-text('Save fulfilment')")
            assert "Tracking: https://a.com/track?id=1" in page.inner_text("main")
            assert _too_small(page) == [], (viewport, _too_small(page))
            page.goto(f"{server.url}/admin/?q=zzzz")
            assert "Show all orders" in page.content() and _too_small(page) == [], viewport
        finally:
            context.close()


def test_on_a_phone_the_tables_keep_their_headers_for_screen_readers(
    make_app, gunicorn, phone_page
):
    """Below 720 px the column headers were display: none, which takes them from screen readers
    too: a date, a customer, "2 ×", "₹499.00" were read with nothing saying which column; and
    the totals' labels were plain cells (accessibility probe). Not drawn, but still there."""
    server, order = _shop_with_an_order(make_app, gunicorn)
    page = phone_page
    _sign_in(page, server.url)
    for table, headers, page_path in (
        (
            "table.orders",
            ["Order", "Date", "Customer", "Items", "Total", "Payment", "Fulfilment", "Status"],
            "/admin/",
        ),
        ("table.lines", ["Item", "Qty", "Price", "Total"], f"/admin/orders/{order['id']}"),
    ):
        page.goto(server.url + page_path)
        shown = page.locator(table)
        assert shown.get_by_role("columnheader").all_text_contents() == headers
        assert shown.locator("thead").bounding_box()["height"] <= 1  # not drawn
    totals = page.locator("table.lines").get_by_role("rowheader")
    assert totals.all_text_contents() == ["Subtotal", "Shipping", "Discount", "Total"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_refused_tracking_link_takes_the_focus_and_says_why(make_app, gunicorn, phone_page):
    """After a refused Save fulfilment the focus was on the page's body and the reason a
    paragraph at its top, tied to no field (accessibility probe): the bad field now has the
    focus, is invalid, and is described by the reason, as a screen reader announces it."""
    from playwright.sync_api import expect

    server, order = _shop_with_an_order(make_app, gunicorn)
    page = phone_page
    _sign_in(page, server.url)
    page.goto(f"{server.url}/admin/orders/{order['id']}")
    page.select_option("select[name=fulfillment]", "fulfilled")
    page.fill("input[name=tracking_url]", "not a url")
    with page.expect_navigation():
        page.click("button:has-text('Save fulfilment')")
    _focus_lands_on(page, "tracking_url")
    field = page.get_by_role("textbox", name="Tracking link")
    expect(field).to_have_attribute("aria-invalid", "true")
    reason = "Tracking link: it must start with https:// or http://."
    expect(field).to_have_accessible_description(reason)


def test_nothing_scrolls_sideways_on_a_320_px_phone_with_text_at_200_percent(
    make_app, gunicorn, browser
):
    """At 320 px with the reader's text at 200 % the list's tiles (9.5rem at the least) and an
    order's "Fulfilment Unfulfilled" (kept on one line) ran past the screen, and the signed-in
    email was cut to "owner@…" (accessibility probe)."""
    server, order = _shop_with_an_order(make_app, gunicorn)
    context = browser.new_context(
        viewport={"width": 320, "height": 640},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = context.new_page()
        context.new_cdp_session(page).send(
            "Page.setFontSizes", {"fontSizes": {"standard": 32, "fixed": 13}}
        )
        _sign_in(page, server.url)
        for path in ("/admin/", f"/admin/orders/{order['id']}"):
            page.goto(server.url + path)
            wide = page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                    .filter((el) => el.getBoundingClientRect().right > 320.5)
                    .map((el) => `${el.tagName}.${el.className}`)"""
            )
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 320, (path, wide)
            who = page.locator(".who")
            assert " ".join(who.inner_text().split()) == OWNER
            assert who.evaluate("(e) => e.scrollWidth <= e.clientWidth"), path  # not cut
    finally:
        context.close()


def test_copy_link_tells_a_screen_reader_it_copied(make_app, gunicorn, browser):
    """Copy link turned its own text to "Copied", which a screen reader does not announce
    (accessibility probe): a status region says so."""
    server, order = _shop_with_an_order(make_app, gunicorn)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    try:
        page = context.new_page()
        _sign_in(page, server.url)
        page.goto(f"{server.url}/admin/orders/{order['id']}")
        said = page.get_by_role("status").filter(has_text="copied")
        assert said.count() == 0
        page.get_by_role("button", name="Copy link").click()
        said.wait_for(state="attached", timeout=5000)
        assert said.all_text_contents() == ["Invoice link copied"]
        assert page.evaluate("navigator.clipboard.readText()") == order["invoiceUrl"]
    finally:
        context.close()


def test_the_first_tab_on_the_order_list_offers_to_skip_to_the_orders(
    make_app, gunicorn, desktop_page
):
    """The bar, the tiles, the search and the filters came before the first order: some
    fourteen tab stops (accessibility probe). The first is now "Skip to orders"."""
    server, order = _shop_with_an_order(make_app, gunicorn)
    page = desktop_page
    _sign_in(page, server.url)
    skip = page.get_by_role("link", name="Skip to orders")
    assert skip.count() == 1
    hidden = skip.bounding_box()
    assert hidden["y"] + hidden["height"] <= 0  # out of sight until reached
    page.keyboard.press("Tab")
    assert skip.evaluate("(a) => a === document.activeElement")
    box = skip.bounding_box()
    assert box["y"] >= 0 and box["height"] >= 44  # seen once reached
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == order["name"], focused
