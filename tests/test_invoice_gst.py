"""GST tax invoices: the arithmetic (property-tested), the split by state, and numbering."""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bikshop import ConfigError, create_app
from bikshop.extensions import db
from bikshop.services import gst
from bikshop.services.orders import change_status, find_by_invoice_token
from tests.invoice_support import GST_SETTINGS, order_body, pdf_text, place_invoice

CENTS = st.integers(min_value=0, max_value=10_000_000).map(lambda c: Decimal(c) / 100)
RATES = st.sampled_from([Decimal(r) for r in ("0", "0.25", "3", "5", "12", "18", "28")])


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.tuples(CENTS, st.integers(1, 50)), min_size=1, max_size=12),
    shipping=CENTS,
    discount_share=st.fractions(0, 1),
    rate=RATES,
    intra_state=st.booleans(),
)
def test_tax_lines_add_up_to_the_order_total_exactly(
    lines, shipping, discount_share, rate, intra_state
):
    goods = [("item", "3304", price * quantity) for price, quantity in lines]
    value = sum((amount for _, _, amount in goods), Decimal(0)) + shipping
    discount = (value * discount_share.numerator / discount_share.denominator).quantize(
        Decimal("0.01"), rounding="ROUND_FLOOR"
    )
    result = gst.tax_breakdown(
        goods,
        shipping=shipping,
        shipping_hsn="3304",
        discount=discount,
        rate=rate,
        intra_state=intra_state,
    )
    assert result.amount == value - discount
    assert result.taxable + result.tax == value - discount
    for line in result.lines:
        assert line.amount >= 0 and line.taxable >= 0
        assert line.taxable + line.tax == line.amount
        expected = line.amount * rate / (100 + rate)
        assert abs(line.tax - expected) <= Decimal("0.01")
        if intra_state:
            assert line.cgst == line.sgst and line.igst == 0
        else:
            assert line.cgst == line.sgst == 0


def test_allocation_is_exact_and_pro_rata():
    shares = gst.allocate(Decimal("100"), [Decimal("1"), Decimal("1"), Decimal("1")])
    assert shares == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert gst.allocate(Decimal("10"), [Decimal("0"), Decimal("30")]) == [0, Decimal("10")]


def test_discount_beyond_the_goods_comes_off_shipping():
    result = gst.tax_breakdown(
        [("a", None, Decimal("100"))],
        shipping=Decimal("50"),
        shipping_hsn=None,
        discount=Decimal("120"),
        rate=Decimal("18"),
        intra_state=False,
    )
    assert [line.amount for line in result.lines] == [Decimal("0.00"), Decimal("30.00")]


def test_split_of_a_known_amount():
    line = gst.split_inclusive("Cream", "3304", Decimal("1180"), Decimal("18"), True)
    assert (line.taxable, line.cgst, line.sgst) == (Decimal("1000.00"), Decimal("90.00"), 90)
    line = gst.split_inclusive("Cream", "3304", Decimal("1180"), Decimal("18"), False)
    assert (line.taxable, line.igst) == (Decimal("1000.00"), Decimal("180.00"))


@pytest.mark.parametrize(
    "text, code",
    [
        ("Karnataka", "29"),
        ("KA", "29"),
        (" karnataka. ", "29"),
        ("29", "29"),
        ("J&K", "01"),
        # Older and partial names still on address forms (GST probe): were the seller's state.
        ("National Capital Territory of Delhi", "07"),
        ("Dadra & Nagar Haveli", "26"),
        ("Daman", "26"),
        ("Diu", "26"),
        ("Andaman & Nicobar", "35"),
    ],
)
def test_states_are_recognised_as_people_type_them(text, code):
    assert gst.find_state(text).code == code


def test_gstin_checks():
    assert gst.gstin_problem("27AAPFU0939F1ZV") is None  # a published, valid GSTIN
    assert "check digit" in gst.gstin_problem("27AAPFU0939F1ZW")
    assert "15 characters" in gst.gstin_problem("27AAPFU0939F1Z")
    assert "state code" in gst.gstin_problem("99AAPFU0939F1ZV")


@pytest.mark.parametrize(
    "settings_, message",
    [
        ({"STORE_GSTIN": "29AABCG1234K1ZX"}, "BIKSHOP_STORE_GSTIN has a wrong check digit"),
        ({"STORE_STATE": "Narnia"}, "BIKSHOP_STORE_STATE 'Narnia' is not"),
        ({"STORE_GSTIN": "29AABCG1234K1ZO", "STORE_STATE": "MH"}, "does not match"),
        ({"STORE_HSN_CODE": "33-04"}, "BIKSHOP_STORE_HSN_CODE"),
        ({"STORE_LOCALE": "xx_QQ"}, "BIKSHOP_STORE_LOCALE"),
        ({"STORE_TIMEZONE": "Mars/Olympus"}, "BIKSHOP_STORE_TIMEZONE"),
        ({"STORE_LOGO_URL": "http://cdn.example/logo.png"}, "BIKSHOP_STORE_LOGO_URL"),
    ],
)
def test_bad_store_settings_stop_the_start(tmp_path, settings_, message):
    config = {"ENV": "development", "BIK_AUTH": "none", "DATABASE_URL": f"sqlite:///{tmp_path}/x"}
    with pytest.raises(ConfigError, match=message):
        create_app({**config, **settings_})


def _tax_page(client, state, items=None, discount="100"):
    path = place_invoice(client, order_body(items, discount=discount, state=state))
    return path, client.get(path).get_data(as_text=True)


def test_intra_state_order_splits_cgst_and_sgst(make_app):
    client = make_app(**GST_SETTINGS).test_client()
    _, html = _tax_page(client, "Karnataka")
    for text in (
        "Tax invoice",
        "Glow Naturals Private Limited",
        "12 MG Road, Bengaluru 560001",
        "GSTIN <b>29AABCG1234K1ZO</b>",
        "State Karnataka (29)",
        "INV-00001",
        "Place of supply</dt><dd>Karnataka (29)",
        "Billed and delivered to",
        "HSN 3304",
        "CGST 9%",
        "SGST 9%",
        "Reverse charge</dt><dd>No",  # Rule 46(p)
        "For Glow Naturals Private Limited, authorised signatory",  # Rule 46(q)
    ):
        assert text in html, text
    assert "IGST" not in html and "UTGST" not in html
    # 998 - 100 discount = 898 goods, 49 shipping; 9% of inclusive/1.18 each, rounded.
    assert "₹761.02" in html and "₹68.49" in html  # goods: taxable, CGST (= SGST)
    assert "₹41.52" in html and "₹3.74" in html  # shipping
    assert "₹802.54" in html and "₹72.23" in html  # totals: 761.02 + 41.52, 68.49 + 3.74
    assert "₹947.00" in html


def test_a_seller_in_a_union_territory_without_a_legislature_charges_utgst(make_app):
    """Chandigarh, Ladakh, Lakshadweep, Andaman and Nicobar, Dadra and Nagar Haveli and Daman
    and Diu levy UTGST, not SGST, beside CGST (UTGST Act, 2017); the page said SGST (GST
    probe). Delhi, with a legislature, stays SGST."""
    from sqlalchemy import select

    from bikshop.models import OrderEvent

    chandigarh = {**GST_SETTINGS, "STORE_GSTIN": "04AABCG1234K1Z0"}
    app = make_app(**chandigarh)
    client = app.test_client()
    path, html = _tax_page(client, "Chandigarh")
    assert "CGST + UTGST" in html and "UTGST 9%" in html and "CGST 9%" in html
    assert "SGST" not in html.replace("UTGST", "")
    # An invoice issued before the heading was recorded with it keeps the one it was issued
    # with (upgrade probe: issued invoices changed their tax heading on upgrade).
    with app.app_context():
        issued = db.session.scalars(
            select(OrderEvent).where(OrderEvent.kind == "invoice_numbered")
        ).one()
        assert issued.data["stateTax"] == "UTGST"
        issued.data = {k: v for k, v in issued.data.items() if k != "stateTax"}
        db.session.commit()
    before = client.get(path).get_data(as_text=True)
    assert "CGST + SGST" in before and "UTGST" not in before
    _, html = _tax_page(client, "Punjab")
    assert "IGST 18%" in html and "UTGST" not in html
    assert gst.state_tax_name(gst.STATES["07"]) == "SGST"  # Delhi


def test_goods_at_a_0_percent_rate_take_a_bill_of_supply(make_app):
    """Exempt or nil-rated goods take a bill of supply (CGST Rule 49), not a tax invoice
    showing 0 % CGST and SGST (GST probe)."""
    client = make_app(**{**GST_SETTINGS, "STORE_GST_RATE": "0"}).test_client()
    path, html = _tax_page(client, "MH")
    for text in ("Bill of supply", "GSTIN <b>29AABCG1234K1ZO</b>", "INV-00001", "HSN 3304"):
        assert text in html, text
    assert "No GST is charged on these goods" in html
    assert "computer-generated bill of supply" in html
    for text in ("Tax invoice", "CGST", "SGST", "IGST", "Prices include GST"):
        assert text not in html, text


def test_inter_state_order_uses_igst(make_app):
    client = make_app(**GST_SETTINGS).test_client()
    _, html = _tax_page(client, "MH")
    assert "Place of supply</dt><dd>Maharashtra (27)" in html
    assert "IGST 18%" in html and "CGST" not in html
    assert "₹136.98" in html and "₹761.02" in html  # goods IGST, taxable


@pytest.mark.parametrize(
    ("state", "zip_code", "supplied_in"),
    [
        ("", "400001", "Maharashtra (27)"),  # no state: its PIN code's
        ("Bombay", "400 001", "Maharashtra (27)"),  # a city for a state: the PIN's
        ("Maharastra", "", "Maharashtra (27)"),  # a typo: the state it nearly spells
        ("Tamilnadu", None, "Tamil Nadu (33)"),
        ("KA", "400001", "Karnataka (29)"),  # a state it names wins over the PIN code
        ("", "160055", "Karnataka (29)"),  # 160: Chandigarh or Mohali (Punjab): the seller's
        ("Pradesh", "", "Karnataka (29)"),  # Andhra, Madhya ...? the seller's
    ],
)
def test_the_place_of_supply_of_an_address_without_a_recognisable_state(
    make_app, state, zip_code, supplied_in
):
    """An address whose state was missing or misspelt was taxed as the seller's own state
    (CGST + SGST), right only by chance (customer probe). Its PIN code, or the state its text
    nearly spells, now tells; only when neither does is the seller's state assumed."""
    client = make_app(**GST_SETTINGS).test_client()
    body = order_body(state=state)
    body["order"]["address"]["zip"] = zip_code
    html = client.get(place_invoice(client, body)).get_data(as_text=True)
    assert f"Place of supply</dt><dd>{supplied_in}" in html
    assert ("IGST 18%" in html) == (supplied_in != "Karnataka (29)")


@pytest.mark.parametrize(
    ("address", "supplied_in"),
    [
        # Bik's guide names only `country`: a US state code is not read as India's.
        ({"state": "CA", "zip": "94105", "country": "United States"}, "Outside India (96)"),
        ({"state": "GA", "country": "United States", "countryCode": None}, "Outside India (96)"),
        ({"state": "UK", "country": "United Kingdom", "zip": "SW1A 1AA"}, "Outside India (96)"),
        ({"state": "Kerala", "countryCode": "IND"}, "Kerala (32)"),  # ISO 3166 alpha-3
        ({"state": "GA", "country": "India", "countryCode": None}, "Goa (30)"),
        ({"state": "GA", "country": "Inida"}, "Goa (30)"),  # a typo of India's name
        ({"state": "GA", "country": None, "countryCode": None}, "Goa (30)"),
        ({"state": "Kerala", "country": "India", "countryCode": "US"}, "Outside India (96)"),
    ],
)
def test_the_country_decides_before_the_state(make_app, address, supplied_in):
    """A foreign address sent without ``countryCode`` was taxed as a supply in India, its
    state code read as an Indian one (CA as Karnataka's seller's state, GA as Goa), and IND
    was read as abroad (GST probe). The code decides when there is one, else the name."""
    client = make_app(**GST_SETTINGS).test_client()
    body = order_body()
    body["order"]["address"].pop("countryCode", None)
    body["order"]["address"].pop("country", None)
    body["order"]["address"].update({"zip": "", **address})
    html = client.get(place_invoice(client, body)).get_data(as_text=True)
    assert f"Place of supply</dt><dd>{supplied_in}" in html
    assert ("IGST 18%" in html) == (supplied_in != "Karnataka (29)")


@pytest.mark.parametrize(
    ("state", "zip_code", "assumed"),
    [("", "160055", True), ("Pradesh", "", True), ("", "400001", False), ("KA", "", False)],
)
def test_an_assumed_place_of_supply_is_told_on_the_timeline(make_app, state, zip_code, assumed):
    """Where nothing in the address tells its state, the seller's is taken, silently: tax
    under the wrong head is paid again, not moved (GST probe). The timeline entry that issues
    the invoice now says the place was taken to be the shop's own state."""
    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    body = order_body(state=state)
    body["order"]["address"]["zip"] = zip_code
    path = place_invoice(client, body)
    client.get(path)
    with app.app_context():
        order = find_by_invoice_token(path.rsplit("/", 1)[1])
        (issued,) = [e for e in order.events if e.kind == "invoice_numbered"]
        told = "taken to be Karnataka (29), the shop's own state" in issued.message
        assert told == assumed, issued.message
        db.session.remove()


def test_an_issued_tax_invoice_keeps_its_place_of_supply(make_app):
    """The place of supply is recorded when the invoice is numbered: an invoice issued before
    it was (simulated: the record taken out) keeps the rule it was issued under, the state as
    named, else the seller's; one issued since keeps what was recorded."""
    from sqlalchemy import select

    from bikshop.models import OrderEvent

    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    body = order_body(state="")
    body["order"]["address"]["zip"] = "400001"  # Mumbai
    path = place_invoice(client, body)
    assert "Place of supply</dt><dd>Maharashtra (27)" in client.get(path).text
    with app.app_context():
        (issued,) = db.session.scalars(
            select(OrderEvent).where(OrderEvent.kind == "invoice_numbered")
        ).all()
        assert issued.data == {
            "invoiceNumber": 1,
            "issuedOn": issued.data["issuedOn"],  # its date: test_a_tax_invoice_is_dated_in…
            "placeOfSupply": "27",
            "stateTax": "SGST",
        }
        issued.data = {"invoiceNumber": 1}  # as issued before 2026-12-07
        db.session.commit()
    page = client.get(path).text
    assert "Place of supply</dt><dd>Karnataka (29)" in page and "CGST" in page


def test_the_pin_table_gives_each_prefix_one_known_state():
    seen: dict[int, str] = {}
    for first, last, code in gst._PIN_RANGES:
        assert code in gst.STATES and first <= last
        for prefix in range(first, last + 1):
            assert prefix not in seen, prefix  # ranges never overlap
            seen[prefix] = code
    assert gst.state_of_pin("560 102").name == "Karnataka"
    assert gst.state_of_pin("533464") is None  # Yanam (Puducherry) among Andhra Pradesh's 533
    # Kerala's 682 and 673 hold a territory's few known codes: Lakshadweep's, Mahe's.
    assert gst.state_of_pin("682001").name == "Kerala"
    assert gst.state_of_pin("682555").name == "Lakshadweep"
    assert gst.state_of_pin("673001").name == "Kerala"
    assert gst.state_of_pin("673310").name == "Puducherry"
    assert gst.state_of_pin("56010") is None and gst.state_of_pin("0560102") is None
    # The seller's own state setting is read exactly: a typo there is refused, not guessed.
    assert gst.find_state("Karnatka") is None


def test_invoice_numbers_are_sequential_and_assigned_once(make_app):
    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    first, _ = _tax_page(client, "Karnataka")
    second, _ = _tax_page(client, "Karnataka")
    for _ in range(2):
        assert "INV-00001" in client.get(first).get_data(as_text=True)
        assert "INV-00002" in client.get(second).get_data(as_text=True)
    with app.app_context():
        order = find_by_invoice_token(first.rsplit("/", 1)[1])
        assert order.invoice_number == 1
        assert [e.kind for e in order.events].count("invoice_numbered") == 1
        db.session.remove()


def test_a_cancelled_order_never_viewed_gets_no_tax_invoice_number(make_app):
    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    path = place_invoice(client, order_body(state="Karnataka"))
    with app.app_context():
        change_status(find_by_invoice_token(path.rsplit("/", 1)[1]), "CANCELLED", actor="t")
    html = client.get(path).get_data(as_text=True)
    assert "Cancelled" in html and "INV-" not in html
    following, html = _tax_page(client, "Karnataka")
    assert "INV-00001" in html  # no gap in the series


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "UTC", "America/New_York"])
def test_a_tax_invoice_is_dated_in_india_and_keeps_its_date(make_app, zone, tmp_path):
    """The invoice date was the moment of issue drawn in BIKSHOP_STORE_TIMEZONE: a shop on
    UTC dated an invoice issued at 00:00:10 IST on the day before, and changing the setting
    moved the date of invoices already issued (time probe). It is India's date of issue,
    recorded with the number; an invoice issued before that was recorded reads its moment of
    issue in India's time."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bikshop.models import OrderEvent
    from bikshop.models.types import utcnow

    settings = {**GST_SETTINGS, "STORE_TIMEZONE": zone, "PDF_CACHE_DIR": str(tmp_path)}
    app = make_app(**settings)
    client = app.test_client()
    path, _ = _tax_page(client, "Karnataka")
    with app.app_context():
        event = db.session.scalars(sa.select(OrderEvent).filter_by(kind="invoice_numbered")).one()
        india_today = utcnow().astimezone(ZoneInfo("Asia/Kolkata")).date().isoformat()
        assert event.data["issuedOn"] == india_today
        # Issued at 00:00:10 IST on 8 Dec, 18:30:10 UTC on the 7th; once with the date
        # recorded, once as before it was.
        event.created_at = datetime(2026, 12, 7, 18, 30, 10, tzinfo=UTC)
        event.data = {**event.data, "issuedOn": "2026-12-08"}
        db.session.commit()
    for recorded in (True, False):
        page = client.get(path).get_data(as_text=True)
        assert "<dt>Invoice date</dt><dd>8 Dec 2026</dd>" in page, recorded
        assert "Invoice date       8 Dec 2026" in pdf_text(client.get(path + ".pdf").data)
        with app.app_context():
            numbered = sa.select(OrderEvent).filter_by(kind="invoice_numbered")
            event = db.session.scalars(numbered).one()
            event.data = {k: v for k, v in event.data.items() if k != "issuedOn"}
            db.session.commit()


def test_an_order_cancelled_while_its_page_opens_gets_no_tax_invoice_number(make_app):
    """The customer's first view has read the order (ordered); the owner's cancel commits
    before the view numbers it. The number is not issued (design audit: the cancel was checked
    only on the view's copy, so a supply that never happened joined the gapless series)."""
    from bikshop.services.invoices import issue_tax_invoice

    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    path = place_invoice(client, order_body(state="Karnataka"))
    with app.app_context():
        read_by_the_view = find_by_invoice_token(path.rsplit("/", 1)[1])
        with db.engine.begin() as owner:
            owner.execute(sa.text("UPDATE orders SET status = 'CANCELLED'"))
        issue_tax_invoice(read_by_the_view)
        db.session.remove()
        assert find_by_invoice_token(path.rsplit("/", 1)[1]).invoice_number is None
    following, html = _tax_page(client, "Karnataka")
    assert "INV-00001" in html  # the counter step was given back: no gap


@pytest.mark.parametrize("dispatch", ["shipped", "delivered"])
def test_an_order_leaving_the_shop_is_issued_its_tax_invoice_then(make_app, dispatch):
    """A tax invoice is issued at the removal of goods (CGST Act s. 31(1)(a)): numbered only
    when first opened, an order shipped before its customer opened the link had no invoice,
    and one never opened never joined the series (GST probe). Shipping or delivering it now
    issues it, dated then; opening it later shows that number and date."""
    from bikshop.services.orders import set_fulfillment

    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    path = place_invoice(client, order_body(state="Karnataka"))
    with app.app_context():
        order = find_by_invoice_token(path.rsplit("/", 1)[1])
        if dispatch == "shipped":
            set_fulfillment(order, "partial", actor="admin:o@x.in")
        else:
            change_status(order, "IN PROGRESS", actor="admin:o@x.in")
            assert order.invoice_number is None  # accepted, not yet on its way
            change_status(order, "DELIVERED", actor="admin:o@x.in")
        assert order.invoice_number == 1
        issued = [e for e in order.events if e.kind == "invoice_numbered"]
        assert len(issued) == 1 and issued[0].actor == "system"
        db.session.remove()
    html = client.get(path).get_data(as_text=True)
    assert "INV-00001" in html
    following, html = _tax_page(client, "Karnataka")
    assert "INV-00002" in html  # the series goes on without a gap


@pytest.mark.parametrize("batch", [500, 1])
def test_issue_invoices_numbers_what_left_before_shipping_issued_it(make_app, monkeypatch, batch):
    """Orders shipped or delivered before shipping issued the tax invoice, never opened, had
    none after the upgrade (upgrade probe): issue-invoices numbers them once, oldest first,
    and leaves open, cancelled and already numbered orders alone. Read in batches (here also
    of one order), each let go of before the next (soak probe: all at once, 1M orders held
    7.7 GB and the run slowed as their square)."""
    from sqlalchemy import update

    from bikshop.models import Order, OrderEvent
    from bikshop.services import invoices

    monkeypatch.setattr(invoices, "ISSUE_BATCH", batch, raising=False)

    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    paths = {
        name: place_invoice(client, order_body(state="Karnataka"))
        for name in ("delivered", "shipped", "open", "cancelled", "opened")
    }
    with app.app_context():
        order_of = {name: find_by_invoice_token(p.rsplit("/", 1)[1]) for name, p in paths.items()}
        change_status(order_of["delivered"], "IN PROGRESS", actor="t")
        change_status(order_of["delivered"], "DELIVERED", actor="t")
        from bikshop.services.orders import set_fulfillment

        set_fulfillment(order_of["shipped"], "partial", actor="t")
        set_fulfillment(order_of["cancelled"], "fulfilled", actor="t")
        change_status(order_of["cancelled"], "CANCELLED", actor="t")
        # As an older release left them: shipped and delivered without a number.
        db.session.execute(update(Order).values(invoice_number=None))
        db.session.execute(
            OrderEvent.__table__.delete().where(OrderEvent.kind == "invoice_numbered")
        )
        db.session.commit()
        ids = {name: (order.id, order.public_id) for name, order in order_of.items()}
        db.session.remove()
    client.get(paths["opened"])  # numbered when its customer opened it
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["issue-invoices", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        f"{ids['delivered'][1]}: would be issued its tax invoice",
        f"{ids['shipped'][1]}: would be issued its tax invoice",
        "issue-invoices: would issue 2 tax invoice(s)",
    ]
    held = []  # the orders the command's session holds as each is issued
    real_issue = invoices.issue_tax_invoice

    def issue(order):
        held.append(sum(isinstance(o, Order) for o in db.session.identity_map.values()))
        real_issue(order)

    monkeypatch.setattr(invoices, "issue_tax_invoice", issue)
    result = runner.invoke(args=["issue-invoices"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        numbers = {
            name: db.session.get(Order, order.id).invoice_number for name, order in order_of.items()
        }
    assert numbers["open"] is None and numbers["cancelled"] is None
    assert numbers["opened"] < numbers["delivered"] < numbers["shipped"]  # oldest first
    assert result.output.splitlines()[-1] == "issue-invoices: issued 2 tax invoice(s)"
    assert len(held) == 2 and max(held) <= batch  # never more orders held than one batch
    again = runner.invoke(args=["issue-invoices"])
    assert again.output.splitlines() == ["issue-invoices: issued 0 tax invoice(s)"]
    without = make_app().test_cli_runner().invoke(args=["issue-invoices"])
    assert without.exit_code == 1 and "BIKSHOP_STORE_GSTIN is not set" in without.output


def test_shipping_without_a_gstin_issues_no_number(make_app):
    from bikshop.services.orders import set_fulfillment

    app = make_app()
    client = app.test_client()
    path = place_invoice(client, order_body(state="Karnataka"))
    with app.app_context():
        order = find_by_invoice_token(path.rsplit("/", 1)[1])
        set_fulfillment(order, "fulfilled", actor="admin:o@x.in")
        assert order.invoice_number is None
        db.session.remove()


@pytest.mark.parametrize(
    "look",
    [
        lambda client, path: client.head(path),
        lambda client, path: client.head(path + ".pdf"),
        lambda client, path: client.get(path, headers={"User-Agent": "WhatsApp/2.23.20.0 A"}),
        lambda client, path: client.get(
            path + ".pdf", headers={"User-Agent": "facebookexternalhit/1.1"}
        ),
    ],
    ids=["head", "head-pdf", "whatsapp-preview", "preview-pdf"],
)
def test_a_link_preview_issues_no_tax_invoice(make_app, look):
    """WhatsApp fetches a link to draw its preview: that fetch, or any HEAD, numbered and dated
    the tax invoice and put it on the timeline as the customer's first look (network probe).
    It now sees a plain invoice and changes nothing; the customer's own first look issues it."""
    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    path = place_invoice(client, order_body(state="Karnataka"))
    answer = look(client, path)
    assert answer.status_code == 200
    assert b"INV-" not in answer.data and b"Tax invoice" not in answer.data
    with app.app_context():
        order = find_by_invoice_token(path.rsplit("/", 1)[1])
        assert order.invoice_number is None
        assert "invoice_numbered" not in [e.kind for e in order.events]
        db.session.remove()
    assert "INV-00001" in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize("suffix", ["", ".pdf"])
def test_the_first_views_validator_names_the_numbered_invoice(make_app, tmp_path, suffix):
    """The first view's ETag was drawn before the number was issued: sent back, it got a 200
    and a second render (a second PDF render of a 200-item order costs seconds) instead of a
    304 (network probe)."""
    app = make_app(PDF_CACHE_DIR=str(tmp_path), **GST_SETTINGS)
    client = app.test_client()
    path = place_invoice(client, order_body(state="Karnataka")) + suffix
    first = client.get(path)
    assert first.status_code == 200
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_without_a_gstin_it_is_a_plain_invoice(client):
    _, html = _tax_page(client, "Karnataka")
    assert "Tax invoice" not in html and "GSTIN" not in html and "CGST" not in html
    assert "INV-" not in html


def test_racing_first_views_issue_one_gapless_number_per_order(make_app):
    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    paths = [place_invoice(client, order_body(state="Karnataka")) for _ in range(3)]
    barrier = threading.Barrier(9)
    statuses = []

    def view(path):
        barrier.wait()
        statuses.append(app.test_client().get(path).status_code)

    threads = [threading.Thread(target=view, args=(paths[n % 3],)) for n in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 9
    with app.app_context():
        orders = [find_by_invoice_token(path.rsplit("/", 1)[1]) for path in paths]
        assert sorted(order.invoice_number for order in orders) == [1, 2, 3]
        for order in orders:
            assert [e.kind for e in order.events].count("invoice_numbered") == 1
        db.session.remove()


@pytest.mark.parametrize(
    ("shipping", "discount", "note"),
    [
        (
            "49",
            "100",
            "Discounts reduce the taxable value of the items (pro rata); shipping is taxed at the "
            "items' rate.",
        ),
        ("49", "0", "Shipping is taxed at the items' rate."),
        ("0", "100", "Discounts reduce the taxable value of the items (pro rata)."),
        ("0", "0", None),
    ],
)
def test_the_tax_note_explains_only_what_the_invoice_has(make_app, shipping, discount, note):
    client = make_app(**GST_SETTINGS).test_client()
    path = place_invoice(client, order_body(shipping=shipping, discount=discount, state="KA"))
    html = client.get(path).get_data(as_text=True)
    notes = re.findall(r'<p class="muted tax-note">([^<]*)</p>', html)
    assert notes == ([note.replace("'", "&#39;")] if note else [])
