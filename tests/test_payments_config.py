"""Razorpay settings are checked at start-up, with one line naming the variable."""

import pytest

from bikshop import ConfigError, create_app
from tests.conftest import BASE_CONFIG


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"ENV": "development", "RAZORPAY_KEY_ID": "rzp_live_abc", "RAZORPAY_KEY_SECRET": "s"},
            "BIKSHOP_RAZORPAY_KEY_ID is a live key",
        ),
        ({"RAZORPAY_KEY_ID": "rzp_test_abc"}, "must be set together"),
        (
            {"RAZORPAY_KEY_ID": "rzp_live_abc", "RAZORPAY_KEY_SECRET": "s"},
            "BIKSHOP_RAZORPAY_WEBHOOK_SECRET is not set",
        ),
        ({"RAZORPAY_TIMEOUT": 0}, "BIKSHOP_RAZORPAY_TIMEOUT"),
        ({"RAZORPAY_TIMEOUT": 60}, "BIKSHOP_RAZORPAY_TIMEOUT"),
        ({"RAZORPAY_LINK_EXPIRY_MINUTES": 5}, "BIKSHOP_RAZORPAY_LINK_EXPIRY_MINUTES"),
        ({"RAZORPAY_API_URL": "http://api.example.com"}, "BIKSHOP_RAZORPAY_API_URL"),
        ({"RAZORPAY_API_URL": "https://api.razorpay.com/v1"}, "BIKSHOP_RAZORPAY_API_URL"),
    ],
)
def test_unsafe_razorpay_settings_stop_the_start(changes, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as refused:
        create_app({**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **changes})
    assert "\n" not in str(refused.value)


def test_a_trailing_slash_on_the_api_url_is_dropped(tmp_path):
    app = create_app(
        {
            **BASE_CONFIG,
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "RAZORPAY_API_URL": "https://api.razorpay.com/",
        }
    )
    assert app.config["RAZORPAY_API_URL"] == "https://api.razorpay.com"


def test_without_a_webhook_secret_only_development_starts_with_keys(tmp_path):
    keys = {"RAZORPAY_KEY_ID": "rzp_test_abc", "RAZORPAY_KEY_SECRET": "s"}
    settings = {**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **keys}
    create_app({**settings, "ENV": "development"})  # trying payments out on a laptop
    create_app({**settings, "RAZORPAY_WEBHOOK_SECRET": "whsec"})
    with pytest.raises(ConfigError, match="BIKSHOP_RAZORPAY_WEBHOOK_SECRET"):
        create_app(settings)
