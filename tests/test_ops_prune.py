"""``flask --app bikshop prune``: old webhook deliveries and expired admin sessions go, in
batches; claims (the webhook dedupe keys) and anything recent stay; bad arguments are refused.
Real rows on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from bikshop import create_app
from bikshop.extensions import db
from bikshop.models import AdminSession, AdminUser, Order, OrderEvent, Payment, WebhookEvent
from bikshop.models.admin import LoginFailure
from bikshop.models.types import utcnow
from bikshop.services.admins import SESSION_LIFETIME
from tests.conftest import BASE_CONFIG, PG_ADMIN_URL
from tests.fake_razorpay import payment_status, post_webhook, shop_with_open_link
from tests.test_ops_commands import flask


def add_delivery(name: str, *, days: float, claim: str | None = None, signed: bool = True):
    """One stored webhook delivery, received ``days`` ago; ``name`` goes in its outcome."""
    delivery = WebhookEvent(
        event_id=claim,
        received_event_id=claim or f"evt_{name}",
        event="payment_link.paid",
        signature_valid=signed,
        outcome=name,
        raw_body="{}",
        received_at=utcnow() - timedelta(days=days),
    )
    db.session.add(delivery)
    db.session.commit()


def add_session(admin: AdminUser, name: str, *, age: timedelta) -> None:
    db.session.add(AdminSession(admin_id=admin.id, key_hash=name, created_at=utcnow() - age))
    db.session.commit()


def add_failure(address: str, *, age: timedelta) -> None:
    db.session.add(
        LoginFailure(email="owner@example.com", address=address, created_at=utcnow() - age)
    )
    db.session.commit()


def failure_addresses() -> list[str]:
    return sorted(db.session.scalars(select(LoginFailure.address)))


def outcomes() -> list[str]:
    return sorted(db.session.scalars(select(WebhookEvent.outcome)))


def session_names() -> list[str]:
    return sorted(db.session.scalars(select(AdminSession.key_hash)))


@pytest.fixture
def old_and_new(app):
    """Deliveries and sessions either side of the cutoffs (90 days; the 30-day lifetime)."""
    with app.app_context():
        add_delivery("old unsigned", days=200, signed=False)
        add_delivery("old duplicate", days=120)
        add_delivery("old malformed", days=91)
        add_delivery("old claimed", days=400, claim="evt_old_claimed")
        add_delivery("recent unsigned", days=89, signed=False)
        add_delivery("new unsigned", days=0, signed=False)
        add_delivery("new claimed", days=0, claim="evt_new_claimed")
        admin = AdminUser(email="owner@example.com", password_hash="x", active=True)
        db.session.add(admin)
        db.session.commit()
        add_session(admin, "expired long ago", age=timedelta(days=365))
        add_session(admin, "just expired", age=SESSION_LIFETIME + timedelta(minutes=5))
        add_session(admin, "about to expire", age=SESSION_LIFETIME - timedelta(minutes=5))
        add_session(admin, "new", age=timedelta(0))
        # The lock window is 15 minutes: failures before it lock nothing any more.
        add_failure("stale for a day", age=timedelta(days=1))
        add_failure("just stale", age=timedelta(minutes=16))
        add_failure("still counts", age=timedelta(minutes=14))
    return app


KEPT = ["about to expire", "new"]


def test_prune_deletes_old_unclaimed_deliveries_and_expired_sessions_only(old_and_new, runner):
    result = runner.invoke(args=["prune", "--older-than", "90"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "deleted 3 webhook event(s) older than 90 days",
        "kept 1 older webhook event(s) that claimed a Razorpay event id "
        "(redeliveries of those events stay duplicates)",
        "deleted 2 admin session(s) past their 30-day lifetime",
        "deleted 2 failed sign-in(s) older than the 15-minute lock window",
    ]
    with old_and_new.app_context():
        assert outcomes() == [
            "new claimed",
            "new unsigned",
            "old claimed",
            "recent unsigned",
        ]
        assert session_names() == KEPT
        assert failure_addresses() == ["still counts"]
    again = runner.invoke(args=["prune", "--older-than", "90"])  # nothing left to do
    assert again.exit_code == 0
    assert again.output.splitlines()[0] == "deleted 0 webhook event(s) older than 90 days"
    assert again.output.splitlines()[2] == "deleted 0 admin session(s) past their 30-day lifetime"
    assert again.output.splitlines()[3].startswith("deleted 0 failed sign-in(s)")


def test_the_default_keeps_ninety_days_and_a_dry_run_deletes_nothing(old_and_new, runner):
    dry = runner.invoke(args=["prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[0] == "would delete 3 webhook event(s) older than 90 days"
    assert dry.output.splitlines()[2] == (
        "would delete 2 admin session(s) past their 30-day lifetime"
    )
    assert dry.output.splitlines()[3] == (
        "would delete 2 failed sign-in(s) older than the 15-minute lock window"
    )
    with old_and_new.app_context():
        assert len(outcomes()) == 7 and len(session_names()) == 4
        assert len(failure_addresses()) == 3
    result = runner.invoke(args=["prune"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "deleted 3 webhook event(s) older than 90 days"
    with old_and_new.app_context():
        assert "recent unsigned" in outcomes() and session_names() == KEPT


def test_prune_deletes_in_batches_each_its_own_transaction(app, runner):
    with app.app_context():
        for n in range(5):
            add_delivery(f"old {n}", days=100 + n, signed=False)
        add_delivery("new", days=1, signed=False)
        engine = db.engine
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("DELETE", "COMMIT")):
            statements.append(statement.split()[0].upper())

    def committed(conn):
        statements.append("COMMIT")

    event.listen(engine, "before_cursor_execute", seen)
    event.listen(engine, "commit", committed)
    try:
        result = runner.invoke(args=["prune", "--older-than", "90", "--batch-size", "2"])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        event.remove(engine, "commit", committed)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "deleted 5 webhook event(s) older than 90 days"
    # 2 + 2 + 1 webhook rows, then the sessions' and the failed sign-ins' one (empty) batch
    # each: every batch committed alone.
    assert statements == ["DELETE", "COMMIT"] * 5
    with app.app_context():
        assert outcomes() == ["new"]


def test_an_old_event_delivered_again_after_a_prune_is_still_a_duplicate(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        raw, headers = fake.paid_event(link_id)
        assert post_webhook(client, raw, headers).get_json()["outcome"] == "paid"
        assert post_webhook(client, raw, headers).get_json()["outcome"].startswith("duplicate")
        forged = post_webhook(client, raw, {**headers, "X-Razorpay-Signature": "00"})
        assert forged.status_code == 400
        with app.app_context():  # all three received long ago
            db.session.execute(
                update(WebhookEvent).values(received_at=utcnow() - timedelta(days=365))
            )
            db.session.commit()
        result = app.test_cli_runner().invoke(args=["prune", "--older-than", "90"])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[:2] == [
            "deleted 2 webhook event(s) older than 90 days",  # the duplicate and the forgery
            "kept 1 older webhook event(s) that claimed a Razorpay event id "
            "(redeliveries of those events stay duplicates)",
        ]
        again = post_webhook(client, raw, headers)  # Razorpay delivers the same event again
        assert again.status_code == 200
        event_id = headers["X-Razorpay-Event-Id"]
        assert again.get_json()["outcome"] == f"duplicate: event {event_id} already received"
        assert payment_status(client, order_id) == "paid"
        with app.app_context():
            assert len(db.session.scalars(select(Payment)).all()) == 1
            paid_changes = db.session.scalars(
                select(OrderEvent).where(OrderEvent.kind == "payment_status_changed")
            ).all()
            assert len(paid_changes) == 1
            claims = db.session.scalars(
                select(WebhookEvent.event_id).where(WebhookEvent.event_id.is_not(None))
            ).all()
            assert claims == [event_id]
            assert db.session.scalars(select(Order)).one().payment_status == "paid"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--older-than", "0"], "Invalid value for '--older-than': 0 is not in the range"),
        (["--older-than", "-5"], "Invalid value for '--older-than': -5 is not in the range"),
        (["--older-than", "ninety"], "Invalid value for '--older-than': 'ninety' is not a valid"),
        (["--older-than", "1.5"], "Invalid value for '--older-than': '1.5' is not a valid"),
        (["--older-than", "99999999"], "99999999 is not in the range 1<=x<=36500"),
        (["--older-than"], "Option '--older-than' requires an argument"),
        (["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range"),
        (["90"], "Got unexpected extra argument (90)"),
    ],
)
def test_nonsense_arguments_are_refused_and_nothing_is_deleted(old_and_new, runner, args, problem):
    result = runner.invoke(args=["prune", *args])
    assert result.exit_code == 2
    assert problem in result.output
    with old_and_new.app_context():
        assert len(outcomes()) == 7 and len(session_names()) == 4
        assert len(failure_addresses()) == 3


def test_a_database_that_refuses_is_one_line_and_exit_1():
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/bikshop_no_such_database"
    app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
    result = app.test_cli_runner().invoke(args=["prune"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("Error: prune stopped: ")
    assert 'database "bikshop_no_such_database" does not exist' in line
    assert line.endswith(
        "deleted 0 webhook event(s), 0 admin session(s) and 0 failed sign-in(s) before it"
    )


def test_the_operators_command_prunes_the_database_it_is_pointed_at(old_and_new, database_url):
    env = {
        "BIKSHOP_SECRET_KEY": BASE_CONFIG["SECRET_KEY"],
        "BIKSHOP_BIK_AUTH": "none",
        "BIKSHOP_DATABASE_URL": database_url,
    }
    result = flask("prune", "--older-than", "90", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "deleted 3 webhook event(s) older than 90 days"
    assert result.stdout.splitlines()[2] == "deleted 2 admin session(s) past their 30-day lifetime"
    refused = flask("prune", "--older-than", "0", env=env)
    assert refused.returncode == 2 and "0 is not in the range 1<=x<=36500" in refused.stderr
    help_text = flask("prune", "--help", env=env).stdout
    assert "claimed its Razorpay event id" in help_text and "--older-than DAYS" in help_text
    with old_and_new.app_context():
        assert outcomes() == ["new claimed", "new unsigned", "old claimed", "recent unsigned"]
        assert session_names() == KEPT
        assert failure_addresses() == ["still counts"]


# ---- --personal-data-after: the customer data of orders final for long enough ----------------
def placed(client, status: str | None, *, days: int, phone: str) -> str:
    """An order placed through Bik, moved to ``status``, last changed ``days`` ago."""
    from bikshop.services import orders
    from tests.bik import place, sample_body

    order_id = place(client, sample_body(phoneNumber=phone)).get_json()["order"]["id"]
    with client.application.app_context():
        order = orders.find_order(order_id)
        if status:
            orders.change_status(order, status, actor="test")
        db.session.execute(
            update(Order)
            .where(Order.public_id == order_id)
            .values(updated_at=utcnow() - timedelta(days=days))
        )
        db.session.commit()
    return order_id


def phone_of(client, order_id: str) -> str:
    from tests.bik import get

    return get(client, order_id).get_json()["order"]["phoneNumber"]


@pytest.fixture
def aged_orders(app):
    """Orders either side of a 365-day retention period, final or not, one with a link open."""
    from bikshop.models import PaymentLink

    client = app.test_client()
    ids = {
        "delivered long ago": placed(client, "DELIVERED", days=400, phone="+91 90000 00001"),
        "cancelled long ago": placed(client, "CANCELLED", days=366, phone="+91 90000 00002"),
        "with an open link": placed(client, "DELIVERED", days=500, phone="+91 90000 00003"),
        "delivered lately": placed(client, "DELIVERED", days=364, phone="+91 90000 00004"),
        "open long ago": placed(client, None, days=900, phone="+91 90000 00005"),
    }
    with app.app_context():
        order = db.session.scalars(
            select(Order).where(Order.public_id == ids["with an open link"])
        ).one()
        db.session.add(
            PaymentLink(
                order_id=order.id,
                reference_id="ref-open",
                razorpay_id="plink_StillOpen01",
                amount=order.total,
                currency="INR",
                status="created",
            )
        )
        db.session.commit()
    return app, client, ids


def test_personal_data_of_orders_final_past_the_period_is_erased_and_others_stay(aged_orders):
    app, client, ids = aged_orders
    runner = app.test_cli_runner()
    assert runner.invoke(args=["prune"]).exit_code == 0  # off unless asked
    assert phone_of(client, ids["delivered long ago"]) == "+91 90000 00001"

    dry = runner.invoke(args=["prune", "--personal-data-after", "365", "--dry-run"])
    assert dry.output.splitlines()[-1] == (
        "would erase the customer data of 2 order(s) final for more than 365 days, refused 1"
    )
    assert phone_of(client, ids["delivered long ago"]) == "+91 90000 00001"

    # One order per batch: the refused order is passed over, the one after it still erased.
    result = runner.invoke(args=["prune", "--personal-data-after", "365", "--batch-size", "1"])

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == "deleted 0 webhook event(s) older than 90 days"  # prune as before
    assert lines[4].startswith(f"{ids['delivered long ago']} erased: phone, email, tags, ")
    assert lines[5].startswith(f"{ids['cancelled long ago']} erased: phone, email, tags, ")
    assert lines[6] == (
        f"{ids['with an open link']} refused: payment link plink_StillOpen01 is open: run "
        "reconcile-payments (it closes expired links) or cancel the link in Razorpay first"
    )
    assert lines[7:] == [
        "erased the customer data of 2 order(s) final for more than 365 days, refused 1"
    ]
    # The refusal alone on stderr: the scheduled job drops stdout, and cron mails stderr.
    assert result.stderr.splitlines() == [lines[6]]
    assert "90000" not in result.output  # the data erased is never printed
    assert phone_of(client, ids["delivered long ago"]) == ""
    assert phone_of(client, ids["cancelled long ago"]) == ""
    for kept in ("with an open link", "delivered lately", "open long ago"):
        assert phone_of(client, ids[kept]) != "", kept
    with app.app_context():
        messages = db.session.scalars(
            select(OrderEvent.message).where(OrderEvent.kind == "customer_data_erased")
        ).all()
        assert messages == ["Customer data erased after the 365-day retention period (by cli)"] * 2
    # An erased order is not erased again, also once it has aged past the period once more
    # (erasing changed it): the next run finds only the refused one.
    with app.app_context():
        db.session.execute(update(Order).values(updated_at=utcnow() - timedelta(days=999)))
        db.session.commit()
    again = runner.invoke(args=["prune", "--personal-data-after", "365"])
    assert again.output.splitlines()[4:] == [
        lines[6],
        f"{ids['delivered lately']} erased: phone, email, tags, Bik's request, name, address, "
        "invoice link (a new one)",
        "erased the customer data of 1 order(s) final for more than 365 days, refused 1",
    ]


def test_personal_data_after_takes_whole_days_in_range(app, runner):
    for bad in ("0", "-1", "two", "36501"):
        result = runner.invoke(args=["prune", "--personal-data-after", bad])
        assert result.exit_code == 2 and "--personal-data-after" in result.output, bad
