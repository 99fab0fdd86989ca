"""Production refuses unsafe configuration with one line naming the variable, secrets unshown."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bikshop import ConfigError, create_app
from tests.servers import ROOT, free_port

SECRET = "cfg-secret-key-0123456789-abcdefghij"
SAFE = {"ENV": "production", "SECRET_KEY": SECRET, "BIK_AUTH": "none", "DATABASE_URL": "sqlite://"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only what a test sets: no BIKSHOP_* variable leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith("BIKSHOP_"):
            monkeypatch.delenv(name)


def refusal(**config) -> str:
    with pytest.raises(ConfigError) as caught:
        create_app({**SAFE, **config})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_production_refuses_to_start_without_a_secret_key():
    message = refusal(SECRET_KEY=None)
    assert message.startswith("BIKSHOP_SECRET_KEY is not set")


def test_production_refuses_a_short_secret_key():
    assert refusal(SECRET_KEY="short").startswith("BIKSHOP_SECRET_KEY is too short")


def test_production_refuses_to_start_without_bik_auth():
    message = refusal(BIK_AUTH=None)
    assert message.startswith("BIKSHOP_BIK_AUTH is not set")
    assert "none explicitly" in message


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("bearer", None),
        ("bearer:tok en-s3cret", "tok en-s3cret"),
        ("apikey:X-Key", None),
        ("apikey:Authorization:k3y-s3cret", "k3y-s3cret"),
        ("apikey:Bad Header:k3y-s3cret", "k3y-s3cret"),
        ("basic:onlyuser", None),
        ("basic::pw-s3cret", "pw-s3cret"),
        ("token-s3cret", "token-s3cret"),
        ("none:extra-s3cret", "extra-s3cret"),
    ],
)
def test_a_malformed_bik_auth_names_itself_and_not_its_secret(value, secret):
    message = refusal(BIK_AUTH=value)
    assert message.startswith("BIKSHOP_BIK_AUTH is invalid: ")
    if secret:
        assert secret not in message


@pytest.mark.parametrize("key", ["BIK_PLACE_ORDER_AUTH", "BIK_GET_ORDER_AUTH"])
def test_a_malformed_per_endpoint_auth_names_that_variable(key):
    assert refusal(**{key: "bearer"}).startswith(f"BIKSHOP_{key} is invalid: ")


def test_none_chosen_explicitly_is_accepted():
    app = create_app(SAFE)
    specs = app.config["BIK_AUTH_SPECS"]
    assert specs["placeOrder"].scheme == specs["getOrder"].scheme == "none"


def test_development_defaults_to_no_auth_and_a_throwaway_secret():
    app = create_app({"ENV": "development", "DATABASE_URL": "sqlite://"})
    assert app.config["BIK_AUTH_SPECS"]["placeOrder"].scheme == "none"
    assert len(app.config["SECRET_KEY"]) >= 32


def test_settings_come_from_the_environment_as_text(monkeypatch):
    monkeypatch.setenv("BIKSHOP_SECRET_KEY", "000000000000000000000000001")
    monkeypatch.setenv("BIKSHOP_BIK_AUTH", "bearer:0123456789")
    monkeypatch.setenv("BIKSHOP_BIK_GET_ORDER_AUTH", "apikey:X-Glow-Key:42")
    monkeypatch.setenv("BIKSHOP_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("BIKSHOP_ORDER_NUMBER_START", "5001")
    app = create_app()
    assert app.config["SECRET_KEY"] == "000000000000000000000000001"
    specs = app.config["BIK_AUTH_SPECS"]
    assert specs["placeOrder"].headers() == {"Authorization": "Bearer 0123456789"}
    assert specs["getOrder"].headers() == {"X-Glow-Key": "42"}
    assert app.config["ORDER_NUMBER_START"] == 5001


def test_auth_specs_never_show_their_secrets():
    app = create_app(
        {**SAFE, "BIK_AUTH": "basic:bik:pw-s3cret", "BIK_GET_ORDER_AUTH": "bearer:t0k"}
    )
    shown = repr(app.config["BIK_AUTH_SPECS"]) + str(app.config["BIK_AUTH_SPECS"])
    assert "pw-s3cret" not in shown and "t0k" not in shown


def start_gunicorn(env: dict) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")} | env
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--workers",
            "2",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


def test_gunicorn_without_a_secret_key_exits_at_once_with_one_line(tmp_path):
    result, took = start_gunicorn(
        {"BIKSHOP_BIK_AUTH": "none", "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    )
    assert result.returncode != 0
    assert took < 20
    output = (result.stdout + result.stderr).strip()
    assert output.splitlines() == [
        "bikshop: configuration error: BIKSHOP_SECRET_KEY is not set: production needs a long "
        "random value (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
    ]
    assert "Traceback" not in output


def test_a_flask_command_without_a_secret_key_says_so_in_one_line(tmp_path):
    """``flask --app bikshop <command>`` in a shell without the settings: the setting, not a
    traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    env |= {"BIKSHOP_BIK_AUTH": "none", "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "bikshop", "list-admins"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: BIKSHOP_SECRET_KEY is not set: production needs a long random value "
        "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_gunicorn_with_a_malformed_bik_auth_names_it_and_hides_the_token(tmp_path):
    result, _ = start_gunicorn(
        {
            "BIKSHOP_SECRET_KEY": SECRET,
            "BIKSHOP_BIK_AUTH": "apikey:Bad Header:gun-s3cret",
            "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        }
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert len(output.splitlines()) == 1
    assert "BIKSHOP_BIK_AUTH is invalid" in output
    assert "gun-s3cret" not in output and "Traceback" not in output


def test_bik_setup_prints_the_urls_and_credentials_to_enter_in_bik():
    app = create_app(
        {
            **SAFE,
            "PUBLIC_URL": "https://shop.example.com/",
            "BIK_AUTH": "basic:bik:s3cret-pass",
            "BIK_GET_ORDER_AUTH": "apikey:X-Brand-Key:0a1b2c3d4e5f",
        }
    )
    with app.app_context():  # the flask command pushes one; the test runner does not
        result = app.test_cli_runner().invoke(args=["bik-setup"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "Register these in Bik (BIK Labs > Non-Shopify Onboarding):",
        "  placeOrder POST https://shop.example.com/bik/placeOrder",
        "             auth: Basic auth: username bik, password s3cret-pass",
        "  getOrder   POST https://shop.example.com/bik/getOrder",
        "             auth: API key: header X-Brand-Key, value 0a1b2c3d4e5f",
    ]
