"""The order list: search by every kind of key, combined filters, pages, tiles and CSV export."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bikshop.services import search
from tests.admin_support import (
    order_names,
    place_order,
)
from tests.bik import place, sample_body


def _item(price, quantity=1, name="Skin Renew Cream"):
    return {
        "productId": 1,
        "variantId": 2,
        "name": name,
        "variantName": "Default",
        "quantity": quantity,
        "price": price,
    }


def _money(price, quantity=1, shipping=0, discount=0):
    sub = Decimal(str(price)) * quantity
    total = sub + Decimal(str(shipping)) - Decimal(str(discount))
    return {
        "items": [_item(price, quantity)],
        "subTotal": float(sub) if sub != sub.to_integral() else int(sub),
        "shippingCharge": shipping,
        "discount": discount,
        "total": float(total) if total != total.to_integral() else int(total),
    }


def _address(first, last, phone):
    return {
        "firstName": first,
        "lastName": last,
        "address1": "12 MG Road",
        "city": "Pune",
        "country": "India",
        "countryCode": "IN",
        "zip": "411001",
        "phoneNumber": phone,
    }


@pytest.fixture
def shop(admin_app, owner):
    """Five orders with different customers, money and states; returns the signed-in client."""
    bik = admin_app.test_client()
    specs = [
        ("Asha", "Rao", "+919876543210", "asha@example.com", _money(499.5, 2, 49, 0)),
        ("Vikram", "Shah", "09123456789", "VIKRAM@Example.com", _money(1234.05)),
        ("Meera", "Iyer", "+91 99887 76655", None, _money(250, 1, 0, 10)),
        ("Asha", "Kapoor", "919988001122", "kapoor@example.com", _money(99.99, 3)),
        ("John", "O'Brien", "+1 415 555 0100", "john@example.com", _money(10)),
    ]
    for first, last, phone, email, money in specs:
        place_order(
            bik,
            phoneNumber=phone,
            email=email,
            address=_address(first, last, phone),
            **money,
        )
    return owner


def _listed(client, **query) -> list[str]:
    page = client.get("/admin/", query_string=query)
    assert page.status_code == 200, page.text
    return order_names(page.text)


SEARCHES = [
    ("#1002", ["#1002"]),
    ("1002", ["#1002"]),
    ("ORD-1002", ["#1002"]),
    ("ord-1002", ["#1002"]),
    ("ORD 1002", ["#1002"]),  # the prefix however it is typed
    ("ORD1002", ["#1002"]),
    ("+91 98765 43210", ["#1001"]),
    ("9876543210", ["#1001"]),
    ("098765 43210", ["#1001"]),
    ("(+91) 98765-43210", ["#1001"]),
    ("+91 91234 56789", ["#1002"]),  # stored as 09123456789
    ("99887 76655", ["#1003"]),
    ("415-555-0100", ["#1005"]),
    ("vikram@example.com", ["#1002"]),
    ("  Kapoor@Example.com ", ["#1004"]),
    ("asha", ["#1004", "#1001"]),
    ("asha rao", ["#1001"]),
    ("o'brien", ["#1005"]),
    ("O\u2019Brien", ["#1005"]),  # a phone keyboard's apostrophe
    ("rao asha", ["#1001"]),  # words in any order
    ("asha   kapoor", ["#1004"]),
    ("asha shah", []),  # every word must be there
    ("100%", []),
    ("nobody", []),
]


def test_an_order_number_hidden_by_a_filter_left_set_says_so_and_leads_to_it(admin_app, shop):
    """A Payment filter left from the last search hides #1003: the empty list said the number
    was read as an order number, which it was (desktop probe). It says the order exists, and
    links to it; a number no order has still gets the old advice."""
    _set_states(admin_app, 1002, payment_status="paid")
    page = shop.get("/admin/", query_string={"q": "1003", "payment": "paid"}).text
    assert order_names(page) == []
    assert "Order ORD-1003 exists, but the filters set here leave it out." in page
    assert 'href="/admin/orders/ORD-1003">Open ORD-1003</a>' in page
    assert "read as an order number" not in page
    missing = shop.get("/admin/", query_string={"q": "4321", "payment": "paid"}).text
    assert "exists, but" not in missing and "read as an order number" in missing


def test_back_to_orders_returns_to_the_list_as_it_was_left(admin_app, shop):
    """Search, filter, open an order, act on it: "← Orders" goes back to that search, not to
    the whole list (desktop probe)."""
    import html

    def back_link(page: str) -> str:
        return html.unescape(re.search(r'<a class="tap" href="([^"]+)">← Orders</a>', page)[1])

    shop.get("/admin/", query_string={"q": "asha", "payment": "pending"})
    page = shop.get("/admin/orders/ORD-1001").text
    assert back_link(page) == "/admin/?q=asha&payment=pending"
    assert order_names(shop.get(back_link(page)).text) == ["#1004", "#1001"]
    shop.get("/admin/")
    assert back_link(shop.get("/admin/orders/ORD-1001").text) == "/admin/"


def test_the_list_left_is_kept_on_the_server_not_in_the_readable_session_cookie(admin_app, shop):
    """The session cookie is signed, not encrypted: it showed the owner's last search
    (``q=9876543210``) to anyone reading the browser's cookies (privacy probe). The way back is
    kept with the server-side session; a cookie still holding it loses it."""
    import html
    import json

    def in_cookie() -> dict:
        cookie = shop.get_cookie(admin_app.config["SESSION_COOKIE_NAME"])
        return admin_app.session_interface.get_signing_serializer(admin_app).loads(cookie.value)

    with shop.session_transaction() as cookie:
        cookie["orders_list"] = "q=asha"  # as an earlier version kept it
    shop.get("/admin/", query_string={"q": "9876543210", "payment": "pending"})
    assert "9876543210" not in json.dumps(in_cookie()) and "asha" not in json.dumps(in_cookie())
    page = shop.get("/admin/orders/ORD-1001").text
    back = html.unescape(re.search(r'<a class="tap" href="([^"]+)">← Orders</a>', page)[1])
    assert back == "/admin/?q=9876543210&payment=pending"


def test_names_are_found_whether_accents_come_composed_or_decomposed(admin_app, owner):
    """ "é" is one character or an e and a combining accent, as the keyboard sent it: the
    name is stored composed (NFC) and the search is read so too."""
    bik = admin_app.test_client()
    place_order(bik, address=_address("E\u0301mile", "Zoe\u0308", "+919876500001"))
    place_order(bik, address=_address("\u0936\u094d\u0930\u0940", "Rao", "+919876500002"))
    assert _listed(owner, q="\u00e9mile") == ["#1001"]
    assert _listed(owner, q="zo\u00eb") == ["#1001"]
    assert _listed(owner, q="E\u0301MILE zoe\u0308") == ["#1001"]
    assert _listed(owner, q="\u0936\u094d\u0930\u0940") == ["#1002"]


def test_a_short_number_that_finds_nothing_says_how_it_was_read(shop):
    """The last digits of a phone are read as an order number: the empty list says so."""
    page = shop.get("/admin/", query_string={"q": "43210"})
    assert order_names(page.text) == []
    assert "read as an order number: to find a customer by phone, type the whole number" in (
        page.text
    )
    assert "read as an order number" not in shop.get("/admin/", query_string={"q": "nobody"}).text


def test_search_finds_an_order_by_what_the_customer_says(shop):
    # One shop, every kind of key (a parametrized test would place the orders 18 times).
    found = {typed: _listed(shop, q=typed) for typed, _ in SEARCHES}
    assert found == dict(SEARCHES)


def test_list_is_newest_first_with_text_on_every_pill(shop):
    page = shop.get("/admin/")
    assert order_names(page.text) == ["#1005", "#1004", "#1003", "#1002", "#1001"]
    assert 'class="pill pill-new">Ordered</span>' in page.text
    assert 'class="pill pill-wait">Pending</span>' in page.text


def test_a_cancelled_unpaid_order_owes_nothing_on_its_pills(admin_app, shop):
    """Its payment is stored pending, but nobody owes it: "Nothing due", as the customer's
    invoice says "nothing to pay" (desktop probe: a grey Pending beside Cancelled). The order
    page says which pill is which."""
    _set_states(admin_app, 1003, status="CANCELLED")
    page = shop.get("/admin/").text
    row = page.split("#1003", 1)[1].split("</tr>", 1)[0]
    assert 'class="pill pill-none">Nothing due</span>' in row and ">Pending<" not in row
    order = shop.get("/admin/orders/ORD-1003").text
    header = order.split('<p class="states">', 1)[1].split("</p>", 1)[0]
    assert "<span>Order <span" in header and ">Cancelled</span>" in header
    assert '<span>Payment <span class="pill pill-none">Nothing due</span></span>' in header
    assert "<span>Fulfilment <span" in header


def _set_states(app, number, **values):
    """Put an order in a state directly (test setup, not the behaviour under test)."""
    from sqlalchemy import update

    from bikshop.extensions import db
    from bikshop.models import Order

    with app.app_context():
        db.session.execute(update(Order).where(Order.number == number).values(**values))
        db.session.commit()


def test_filters_combine_and_stay_in_the_url(admin_app, shop):
    _set_states(admin_app, 1001, status="IN PROGRESS", payment_status="paid")
    _set_states(admin_app, 1002, status="IN PROGRESS", payment_status="paid")
    _set_states(admin_app, 1002, fulfillment_status="fulfilled")
    _set_states(admin_app, 1003, status="IN PROGRESS")
    old = datetime.now(UTC) - timedelta(days=40)
    _set_states(admin_app, 1004, created_at=old, status="DELIVERED", payment_status="paid")

    assert _listed(shop, status="IN PROGRESS") == ["#1003", "#1002", "#1001"]
    assert _listed(shop, status="IN PROGRESS", payment="paid") == ["#1002", "#1001"]
    both = {"status": "IN PROGRESS", "payment": "paid", "fulfillment": "unfulfilled"}
    assert _listed(shop, **both) == ["#1001"]
    assert _listed(shop, status="open", fulfillment="unshipped") == [
        "#1005",
        "#1003",
        "#1001",
    ]
    assert _listed(shop, payment="paid", q="asha") == ["#1004", "#1001"]
    today = search_today(admin_app)
    recent = {"date_from": (today - timedelta(days=7)).isoformat(), "date_to": today.isoformat()}
    assert _listed(shop, payment="paid", q="asha", **recent) == ["#1001"]
    old_day = (old.date() - timedelta(days=1)).isoformat()
    assert _listed(shop, date_from=old_day, date_to=old_day) == []

    page = shop.get("/admin/", query_string={**both, "q": "asha"})
    assert 'href="/admin/orders.csv?q=asha&amp;status=IN+PROGRESS&amp;payment=paid' in page.text


def search_today(app):
    with app.test_request_context():
        return search.local_today()


def test_bad_filters_are_refused_with_a_reason(shop):
    bad = shop.get("/admin/", query_string={"status": "LOST", "date_from": "2024-13-01"})
    assert bad.status_code == 400
    assert "Not a valid choice" in bad.text and "Not a valid date value" in bad.text
    backwards = shop.get(
        "/admin/", query_string={"date_from": "2024-05-02", "date_to": "2024-05-01"}
    )
    assert backwards.status_code == 400 and "before the start date" in backwards.text
    assert shop.get("/admin/orders.csv", query_string={"status": "LOST"}).status_code == 400


def test_pages_walk_older_and_newer(shop, monkeypatch):
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    first = shop.get("/admin/")
    assert order_names(first.text) == ["#1005", "#1004"]
    assert "Newer" not in first.text
    older = shop.get(_link(first.text, "Older"))
    assert order_names(older.text) == ["#1003", "#1002"]
    last = shop.get(_link(older.text, "Older"))
    assert order_names(last.text) == ["#1001"]
    assert "Older" not in last.text
    back = shop.get(_link(last.text, "Newer"))
    assert order_names(back.text) == ["#1003", "#1002"]
    assert order_names(shop.get(_link(back.text, "Newer")).text) == ["#1005", "#1004"]
    # A cursor past the newest order (typed, or kept from an old link) is the first page: no
    # "Newer" leading to an empty list.
    beyond = shop.get("/admin/", query_string={"before": 999999})
    assert order_names(beyond.text) == ["#1005", "#1004"] and "Newer" not in beyond.text


@pytest.mark.parametrize("long_after", [False, True])
def test_an_old_date_range_pages_the_same_whichever_way_it_is_read(
    admin_app, shop, monkeypatch, long_after
):
    """An old date range is read through the date index and sorted when twice as many orders
    came after it (soak probe: walking the id's index down from the newest order took over a
    second for the oldest month of a million). Same orders, same order, same pages; and
    created_at decides, also for an order whose id is out of step with its date."""
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    now = datetime.now(UTC)
    old = now - timedelta(days=30)
    # Three orders a month ago (#1004's id out of step with its date), two today, and enough
    # later orders for the range to count as old: twice as many after it as in it.
    for number in (1001, 1002, 1004):
        _set_states(admin_app, number, created_at=old + timedelta(minutes=number - 1000))
    for _ in range(6 if long_after else 0):
        place_order(shop)
    old_day = search_day(admin_app, old)
    with admin_app.test_request_context():
        day = date.fromisoformat(old_day)
        assert search._long_after(search.OrderFilters(date_from=day, date_to=day)) is long_after
    first = shop.get("/admin/", query_string={"date_from": old_day, "date_to": old_day})
    assert order_names(first.text) == ["#1004", "#1002"]
    older = shop.get(_link(first.text, "Older"))
    assert order_names(older.text) == ["#1001"] and "Older" not in older.text
    back = shop.get(_link(older.text, "Newer"))
    assert order_names(back.text) == ["#1004", "#1002"] and "Newer" not in back.text


def search_day(app, moment) -> str:
    """The shop's local date of ``moment``, as the dashboard's date filter reads it."""
    with app.test_request_context():
        return moment.astimezone(search.store_zone()).date().isoformat()


def _link(html: str, label: str) -> str:
    import html as html_lib
    import re

    match = re.search(rf'<a href="([^"]+)">[^<]*{label}', html)
    assert match, f"no {label} link"
    return html_lib.unescape(match.group(1))


def test_summary_tiles_count_today_pending_and_to_ship(admin_app, shop):
    _set_states(admin_app, 1002, payment_status="paid", fulfillment_status="fulfilled")
    _set_states(admin_app, 1003, status="CANCELLED")
    _set_states(admin_app, 1005, created_at=datetime.now(UTC) - timedelta(days=3))
    with admin_app.test_request_context():
        tiles = search.summary()
    # Today: 1001, 1002, 1004 (1003 cancelled, 1005 three days ago).
    assert tiles.today_orders == 3
    assert tiles.today_revenue == {
        "INR": Decimal("1048.00") + Decimal("1234.05") + Decimal("299.97")
    }
    # Pending and not cancelled: 1001, 1004, 1005.
    assert tiles.pending_count == 3
    assert tiles.pending_value == {"INR": Decimal("1048.00") + Decimal("299.97") + Decimal("10.00")}
    assert tiles.to_ship == 3  # 1001, 1004, 1005 (1002 fulfilled, 1003 cancelled)
    page = shop.get("/admin/").text
    assert "₹2,582.02" in page and "₹1,357.97" in page
    # Today's figure counts unpaid orders too, and says it is what was ordered.
    assert '<span class="tile-label">Today (ordered)</span>' in page
    # Each tile opens the list of just the orders it counts.
    tiles_links = [html.unescape(h) for h in re.findall(r'<a class="tile" href="([^"]+)"', page)]
    assert [order_names(shop.get(link).text) for link in tiles_links] == [
        ["#1004", "#1002", "#1001"],
        ["#1005", "#1004", "#1001"],
        ["#1005", "#1004", "#1001"],
    ]


def test_to_ship_leaves_out_orders_refunded_in_full(admin_app, shop):
    """An open, unshipped order whose money went back in full is not to be sent: the tile and
    the list it opens leave it out (desktop probe: the shipping queue listed refunded goods).
    A partial refund may be for one item of several: that order still ships."""
    _set_states(admin_app, 1001, payment_status="refunded")
    _set_states(admin_app, 1002, payment_status="partially_refunded")
    with admin_app.test_request_context():
        assert search.summary().to_ship == 4
    page = shop.get("/admin/").text
    (link,) = [
        html.unescape(h)
        for h, label in re.findall(
            r'<a class="tile" href="([^"]+)">\s*<span class="tile-label">([^<]+)', page
        )
        if label == "To ship"
    ]
    assert order_names(shop.get(link).text) == ["#1005", "#1004", "#1003", "#1002"]
    assert "Not refunded in full" in page  # the filter it sets, shown in the Payment list


def _csv(answer) -> list[dict]:
    """The export's rows, read as a spreadsheet reads UTF-8 with a byte order mark."""
    return list(csv.DictReader(io.StringIO(answer.get_data().decode("utf-8-sig"))))


def test_csv_export_holds_exactly_the_filtered_orders_with_exact_money(admin_app, shop):
    _set_states(admin_app, 1003, payment_status="paid")
    answer = shop.get("/admin/orders.csv", query_string={"payment": "pending"})
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = _csv(answer)
    assert [r["order"] for r in rows] == ["#1005", "#1004", "#1002", "#1001"]
    by_name = {r["order"]: r for r in rows}
    assert by_name["#1001"]["total"] == "1048.00"
    assert by_name["#1001"]["sub_total"] == "999.00"
    assert by_name["#1001"]["items"] == "2"
    assert by_name["#1002"]["total"] == "1234.05"
    assert by_name["#1004"]["total"] == "299.97"
    assert by_name["#1004"]["items"] == "3"
    assert by_name["#1002"]["email"] == "vikram@example.com"
    assert by_name["#1001"]["phone"] == "+919876543210"
    assert by_name["#1005"]["customer"] == "John O'Brien"
    assert by_name["#1001"]["placed_at"].endswith("+05:30")  # the store's time zone
    assert sum(Decimal(r["total"]) for r in rows) == Decimal("2592.02")


def test_csv_export_says_what_to_pack_where_it_goes_and_how_it_was_billed(admin_app, owner):
    from bikshop.extensions import db
    from bikshop.models import Order, Payment

    bik = admin_app.test_client()
    items = [
        {**_item(100, 2, "Toner"), "variantName": "50 ml"},
        _item(50, 1, "Skin Renew Cream"),  # variant "Default": no variant to name
    ]
    address = {**_address("Asha", "Rao", "+919876543210"), "state": "Maharashtra"}
    address["address2"] = "Flat 4, Sai Niwas"
    place_order(
        bik, items=items, subTotal=250, shippingCharge=0, discount=0, total=250, address=address
    )
    place_order(bik, address=None)
    with admin_app.app_context():
        order = db.session.scalars(select(Order).where(Order.number == 1001)).one()
        order.invoice_number = 42
        for payment_id in ("pay_Old1", "pay_Latest2"):
            db.session.add(
                Payment(
                    order_id=order.id,
                    razorpay_payment_id=payment_id,
                    amount=250,
                    currency="INR",
                    status="captured",
                )
            )
        db.session.commit()
    rows = {r["order"]: r for r in _csv(owner.get("/admin/orders.csv"))}
    first = rows["#1001"]
    assert first["products"] == "2 × Toner (50 ml); 1 × Skin Renew Cream"
    assert first["address"] == "12 MG Road, Flat 4, Sai Niwas, Pune, Maharashtra, 411001, India"
    assert first["invoice_number"] == "INV-00042"
    assert first["razorpay_payment_id"] == "pay_Latest2"  # where a refund would go back to
    assert (rows["#1002"]["address"], rows["#1002"]["invoice_number"]) == ("", "")
    assert rows["#1002"]["razorpay_payment_id"] == ""


def test_csv_cells_never_become_spreadsheet_formulas(admin_app):
    from tests.admin_support import add_admin, sign_in

    add_admin(admin_app)
    client = admin_app.test_client()
    place_order(client, address=_address('=HYPERLINK("http://x")', "@SUM(A1)", "+919876543210"))
    sign_in(client)
    rows = _csv(client.get("/admin/orders.csv"))
    assert rows[0]["customer"].startswith("'=HYPERLINK")
    assert rows[0]["phone"] == "+919876543210"


@pytest.mark.parametrize(
    ("field", "label", "day"),
    [("date_from", "From", "0001-01-01"), ("date_to", "To", "9999-12-31")],
)
def test_a_date_beyond_the_calendar_is_refused_naming_the_field(shop, field, label, day):
    page = shop.get("/admin/", query_string={field: day})
    assert page.status_code == 400
    assert f"{label}: Enter a date between" in page.text
    # The export refuses before it starts streaming, so no half-written file is downloaded.
    export = shop.get("/admin/orders.csv", query_string={field: day})
    assert export.status_code == 400
    assert "Enter a date between" in export.text


@pytest.mark.parametrize("cursor", ["before", "after"])
@pytest.mark.parametrize("value", ["99999999999999999999999", "abc", "-5", "1.5"])
def test_a_page_link_no_list_could_write_is_refused_with_one_reason(shop, cursor, value):
    """An edited or cut-off Older/Newer link: one reason, under a name the owner can place,
    and a way back to the list (keeping the filters); not WTForms' two reasons for one value
    under the query parameter's name."""
    page = shop.get("/admin/", query_string={cursor: value, "q": "asha"})
    assert page.status_code == 400
    notice = re.search(r'<p class="notice bad" role="alert">(.*?)</p>', page.text, re.S)
    assert notice, page.text
    text = re.sub(r"<[^>]+>", "", notice.group(1))
    assert text.startswith("Page: this link is not a page of the order list."), text
    assert "Number must be" not in text and "integer" not in text and "Before" not in text
    assert 'href="/admin/?q=asha">Back to the newest</a>' in notice.group(1)


def test_two_bad_page_links_are_one_reason(shop):
    page = shop.get("/admin/", query_string={"before": "x", "after": "y"})
    assert page.status_code == 400 and page.text.count("this link is not a page") == 1


@pytest.mark.parametrize("cursor", ["before", "after"])
def test_an_empty_page_cursor_is_the_newest_page(shop, cursor):
    assert shop.get("/admin/", query_string={cursor: ""}).status_code == 200


def test_name_search_ignores_case_beyond_ascii(admin_app, owner):
    bik = admin_app.test_client()
    place_order(bik, address=_address("Émile", "Zoë", "+919876543210"))
    place_order(bik, address=_address("Emile", "Zoe", "+919876543211"))
    found = {
        typed: _listed(owner, q=typed)
        for typed in ("Émile", "émile", "ÉMILE", "zoë", "ÉMILE ZOË", "emile", "ZOE")
    }
    assert found == {
        "Émile": ["#1001"],
        "émile": ["#1001"],
        "ÉMILE": ["#1001"],
        "zoë": ["#1001"],
        "ÉMILE ZOË": ["#1001"],
        "emile": ["#1002"],
        "ZOE": ["#1002"],
    }
    # Turkish capitals (owner probe): I is the capital of the dotless ı, İ of the dotted i.
    place_order(bik, address=_address("Çiğdem", "Yılmaz", "+919876543212"))
    for typed in ("YILMAZ", "yılmaz", "ÇİĞDEM", "çiğdem", "ÇİĞDEM YILMAZ", "Yilmaz"):
        assert _listed(owner, q=typed) == ["#1003"], typed


def test_name_folding_does_not_depend_on_the_database_locale(admin_app):
    # A PostgreSQL database created with the C locale lowers ASCII letters only; an explicit
    # COLLATE "C" on the value is the same situation, without a second database.
    from sqlalchemy import String, literal, select

    from bikshop.extensions import db

    with admin_app.test_request_context():
        name = literal("ÉMILE ZOË ΣΟΦΊΑ", String)
        if db.engine.dialect.name == "postgresql":
            name = name.collate("C")
        lowered = db.session.scalar(select(search.lowered(name)))
    assert lowered == "émile zoë σοφία"


def test_name_search_without_icu_falls_back_to_the_servers_lower(admin_app):
    """A PostgreSQL built without ICU has no "und-x-icu": a name search must still work."""
    from sqlalchemy import String, literal, select

    from bikshop.extensions import db

    with admin_app.test_request_context():
        db.session.execute(select(1))  # the engine's first connection has been made
        dialect = db.engine.dialect
        if dialect.name == "postgresql":
            # Found at the first connection: this server has ICU.
            assert dialect.bikshop_has_icu is True
            dialect.bikshop_has_icu = False
            sql = str(search.lowered(literal("x", String)).compile(dialect=dialect))
            assert "und-x-icu" not in sql and sql.startswith("lower(")
            dialect.bikshop_has_icu = True
        lowered = db.session.scalar(select(search.lowered(literal("ÉMILE", String))))
    assert lowered == "émile"


@pytest.mark.parametrize(
    "typed",
    [
        "ORD-00000100200000000000",  # once read as its first nine digits: ORD-000001002
        "ORD-" + "9" * 20,
        "#" + "9" * 20,
        "ORD-2147483648",
        "²",
        "ORD-²",
        "#²",
    ],
)
def test_an_order_number_that_cannot_exist_matches_nothing(shop, typed):
    assert _listed(shop, q=typed) == []


def test_an_empty_shop_says_where_orders_come_from(owner):
    page = owner.get("/admin/")
    assert page.status_code == 200
    assert "No orders yet" in page.text and "Bik" in page.text
    assert "No orders match" not in page.text
    searched = owner.get("/admin/", query_string={"q": "asha"})
    assert "No orders match." in searched.text and "No orders yet" not in searched.text


def test_summary_tiles_add_money_per_currency_and_leave_out_refunds(admin_app, shop):
    bik = admin_app.test_client()
    place_order(bik, currency="USD", **_money(10))  # 1006, pending
    place_order(bik, currency="USD", **_money(5))  # 1007, paid, then refunded in part
    _set_states(admin_app, 1007, payment_status="partially_refunded", amount_refunded=2)
    _set_states(admin_app, 1002, payment_status="refunded", amount_refunded=Decimal("1234.05"))
    _set_states(admin_app, 1001, payment_status="partially_refunded", amount_refunded=48)
    with admin_app.test_request_context():
        tiles = search.summary()
    assert tiles.today_orders == 7
    inr_today = Decimal("1000.00") + Decimal("250.00") - 10 + Decimal("299.97") + 10
    assert tiles.today_revenue == {"INR": inr_today, "USD": Decimal("13.00")}
    assert tiles.pending_count == 4  # 1003, 1004, 1005, 1006
    pending_inr = Decimal("240.00") + Decimal("299.97") + Decimal("10.00")
    assert tiles.pending_value == {"INR": pending_inr, "USD": Decimal("10.00")}
    page = shop.get("/admin/").text
    assert "₹1,549.97" in page and "$13.00" in page
    assert "₹549.97" in page and "$10.00" in page


@pytest.mark.parametrize("typed", ["087 123 4567", "0871234567", "(087) 123-4567"])
def test_a_number_of_ten_digits_or_fewer_starting_with_0_is_found_as_stored(owner, typed):
    """An Irish mobile as the customer gave it ("087 123 4567"): its last ten digits keep the
    leading 0, so the search must try the digits as typed, not only without leading zeros."""
    place_order(owner, phoneNumber="087 123 4567", address=_address("Sean", "Ryan", "x"))
    place_order(owner, phoneNumber="+919871234567", address=_address("Asha", "Rao", "y"))
    assert _listed(owner, q=typed) == ["#1001"]


def test_csv_export_opens_in_excel_with_names_in_any_script(admin_app, owner):
    """Excel reads a CSV without a byte order mark as the PC's legacy code page: 'Émile' came
    out as 'Ã‰mile' and Devanagari as mojibake. The export starts with UTF-8's BOM."""
    place_order(owner, address=_address("Émile", "राहुल", "+919876543210"))
    export = owner.get("/admin/orders.csv").get_data()
    assert export.startswith(b"\xef\xbb\xbforder,order_id,")
    assert export.count(b"\xef\xbb\xbf") == 1
    assert "Émile राहुल" in export.decode("utf-8-sig")


def test_refused_filters_offer_no_export_and_the_export_names_the_field(shop):
    """With a refused filter the list offers no Export CSV (its download was a saved error
    page); the export's own refusal names the field as the list does."""
    bad = shop.get("/admin/", query_string={"status": "LOST", "q": "asha"})
    assert bad.status_code == 400
    assert "Export CSV" not in bad.text
    assert "Status: Not a valid choice." in bad.text
    export = shop.get("/admin/orders.csv", query_string={"status": "LOST"})
    assert export.status_code == 400
    assert "Status: Not a valid choice." in export.text
    assert "Export CSV" in shop.get("/admin/", query_string={"q": "asha"}).text


def test_search_finds_bik_draft_ids_and_tax_invoice_numbers_typed_whole(admin_app, owner):
    """What the owner is handed besides the customer: Bik's draft id (its logs and
    partnersData.id), numeric or not, and the number a customer quotes from a tax invoice."""
    from sqlalchemy import update

    from bikshop.extensions import db
    from bikshop.models import Order

    bik = admin_app.test_client()
    assert place(bik, sample_body("nb_1_priya")).status_code == 200
    assert place(bik, sample_body("17152000001234")).status_code == 200
    assert place(bik, sample_body("Asha-draft")).status_code == 200
    with admin_app.app_context():
        db.session.execute(update(Order).where(Order.number == 1002).values(invoice_number=42))
        db.session.commit()
    assert _listed(owner, q="nb_1_priya") == ["#1001"]
    assert _listed(owner, q="17152000001234") == ["#1002"]  # all digits: not read as a phone only
    assert _listed(owner, q="INV-00042") == ["#1002"]
    assert _listed(owner, q="inv 42") == ["#1002"]
    assert _listed(owner, q="nb_1_pri") == []  # whole ids only, not a part of one
    assert _listed(owner, q="INV-00043") == []


def test_the_search_box_and_tracking_link_keep_no_form_history(owner):
    """A browser's form history would offer a customer's phone or name typed in the search box
    (or a tracking link) to whoever uses the browser next (privacy probe)."""
    order = place_order(owner)
    listing = owner.get("/admin/").text
    (search_box,) = re.findall(r'<input type="search" name="q"[^>]*>', listing)
    assert 'autocomplete="off"' in search_box
    page = owner.get(f"/admin/orders/{order['id']}").text
    (tracking,) = re.findall(r'<input[^>]*name="tracking_url"[^>]*>', page)
    assert 'autocomplete="off"' in tracking


def test_each_csv_export_is_logged_with_who_filters_and_rows_but_no_search_text(owner, caplog):
    """Nothing recorded who took the customer list (privacy probe): each export's line names
    the account (masked, as the sign-in line's), the filters, whether there was a search (its
    text is often a phone, email or name) and the rows sent."""
    import json
    import logging

    from bikshop.logging import JsonFormatter

    for _ in range(2):
        place_order(owner, phoneNumber="+919811122334")
    caplog.set_level(logging.INFO, logger="bikshop.admin.views")
    answer = owner.get("/admin/orders.csv?q=%2B91+98111+22334&status=ORDERED&date_from=2020-01-01")
    assert answer.status_code == 200 and len(answer.text.splitlines()) == 3
    owner.get("/admin/orders.csv").close()
    (searched, everything) = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if "CSV" in r.getMessage()
    ]
    assert searched["message"] == "orders exported as CSV"
    assert searched["account"] == "o***@glow.example"
    assert searched["filters"] == {"status": "ORDERED", "date_from": "2020-01-01"}
    assert searched["search"] is True and searched["rows"] == 2 and searched["complete"] is True
    assert everything["filters"] == {} and everything["search"] is False
    assert "98111" not in json.dumps([searched, everything])


def test_check_bik_s_test_order_is_marked_as_such(admin_app, owner):
    """check-bik places one real order on the server it checks; in the list it looked like a
    customer's, Bik's sample "Bik Tester", and counted in the tiles (self-hoster probe). It is
    marked, in the list and on its page, by the tag check-bik gives it."""
    from bikshop.checkbik import sample_order

    checked = place(owner, sample_order("nb_check_bik_1")).json["order"]
    customer = place(owner, sample_body(tags="ordered_via_bik, bikshop_contract_checks")).json
    listing = owner.get("/admin/").text
    assert listing.count("check-bik's test") == 1
    row = listing.split(f">{checked['name']}</strong>", 1)[1].split("</tr>", 1)[0]
    assert "check-bik's test" in row
    assert "check-bik's test" in owner.get(f"/admin/orders/{checked['id']}").text
    assert "check-bik" not in owner.get(f"/admin/orders/{customer['order']['id']}").text
