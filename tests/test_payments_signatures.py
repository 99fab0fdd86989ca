"""The two golden HMAC vectors from Razorpay's SDK, checked by bikshop's own signature code."""

from pathlib import Path

from bikshop.razorpay_client import callback_signature_valid, webhook_signature_valid

# Razorpay's SDK test mock tests/mocks/fake_payment_authorized_webhook.json, byte for byte.
WEBHOOK_BODY = Path(__file__).parent / "data" / "razorpay_payment_authorized_webhook.json"
WEBHOOK_HMAC = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"
CALLBACK_HMAC = "07ae18789e35093e51d0a491eb9922646f3f82773547e5b0f67ee3f2d3bf7d5b"


def test_webhook_golden_vector_matches_and_any_change_breaks_it():
    raw = WEBHOOK_BODY.read_bytes()
    assert len(raw) == 971 and raw.endswith(b"}\n")
    assert webhook_signature_valid(raw, WEBHOOK_HMAC, ["key_secret"])
    assert webhook_signature_valid(raw, WEBHOOK_HMAC.upper(), ["key_secret"])
    assert not webhook_signature_valid(raw.rstrip(b"\n"), WEBHOOK_HMAC, ["key_secret"])
    assert not webhook_signature_valid(raw, WEBHOOK_HMAC, ["other_secret"])
    assert not webhook_signature_valid(raw, None, ["key_secret"])
    assert not webhook_signature_valid(raw, "", ["key_secret"])


def test_webhook_signature_accepts_the_previous_secret_during_rotation():
    raw = WEBHOOK_BODY.read_bytes()
    assert webhook_signature_valid(raw, WEBHOOK_HMAC, ["new_secret", "key_secret"])
    assert not webhook_signature_valid(raw, WEBHOOK_HMAC, ["new_secret", None])


def test_callback_golden_vector_matches_and_each_field_counts():
    fields = {
        "link_id": "plink_IH3cNucfVEgV68",
        "reference_id": "TSsd1989",
        "status": "paid",
        "payment_id": "pay_IH3d0ara9bSsjQ",
        "secret": "EnLs21M47BllR3X8PSFtjtbd",
    }
    assert callback_signature_valid(**fields, signature=CALLBACK_HMAC)
    # Hex in either case, as the webhook's signature is read (RedirectForm allows both).
    assert callback_signature_valid(**fields, signature=CALLBACK_HMAC.upper())
    for name, other in [
        ("status", "partially_paid"),
        ("payment_id", "pay_x"),
        ("reference_id", ""),
        ("secret", "wrong"),
    ]:
        assert not callback_signature_valid(**{**fields, name: other}, signature=CALLBACK_HMAC)
