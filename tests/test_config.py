"""Production refuses unsafe configuration with one line naming the variable, secrets unshown."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.mark.parametrize("value", ["ABC", "RUPEES", "12", "XAU", "XXX"])
def test_a_currency_that_is_not_an_iso_code_is_refused(value):
    message = refusal(CURRENCY=value)
    assert message.startswith("BIKSHOP_CURRENCY must be an ISO 4217 currency code")
    assert repr(value) in message


def test_a_currency_is_read_in_either_case():
    assert create_app({**SAFE, "CURRENCY": "usd"}).config["CURRENCY"] == "USD"


def test_production_refuses_to_start_without_bik_auth():
    message = refusal(BIK_AUTH=None)
    assert message.startswith("BIKSHOP_BIK_AUTH is not set")
    assert "none explicitly" in message


def test_production_starts_once_both_endpoints_have_auth_without_bik_auth():
    """README: production refuses to start until both endpoints have auth, from BIKSHOP_BIK_AUTH
    or their own overrides; a refusal names the endpoint left without."""
    both = {"BIK_PLACE_ORDER_AUTH": "bearer:place-0123456789", "BIK_GET_ORDER_AUTH": "none"}
    specs = create_app({**SAFE, "BIK_AUTH": None, **both}).config["BIK_AUTH_SPECS"]
    assert (specs["placeOrder"].scheme, specs["getOrder"].scheme) == ("bearer", "none")
    assert refusal(BIK_AUTH=None, BIK_PLACE_ORDER_AUTH="bearer:place-0123456789").startswith(
        "BIKSHOP_BIK_AUTH is not set (nor BIKSHOP_BIK_GET_ORDER_AUTH, for getOrder): choose "
    )
    readme = (ROOT / "README.md").read_text()
    assert "Production refuses to start until both endpoints have auth" in readme
    assert "until `BIKSHOP_BIK_AUTH` is set" not in readme


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
    monkeypatch.setenv("BIKSHOP_SECRET_KEY", "0123456789abcdefghij-from-env")
    monkeypatch.setenv("BIKSHOP_BIK_AUTH", "bearer:0123456789")
    monkeypatch.setenv("BIKSHOP_BIK_GET_ORDER_AUTH", "apikey:X-Glow-Key:42")
    monkeypatch.setenv("BIKSHOP_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("BIKSHOP_ORDER_NUMBER_START", "5001")
    app = create_app()
    assert app.config["SECRET_KEY"] == "0123456789abcdefghij-from-env"
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
    ours = ("BIKSHOP_", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)} | env
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


def run_flask(cwd, env: dict, *args: str) -> subprocess.CompletedProcess:
    """``flask --app bikshop <args>`` in a new process, as a shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "bikshop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_flask_command_without_a_secret_key_says_so_in_one_line(tmp_path):
    """``flask --app bikshop <command>`` in a shell without the settings: the setting, not a
    traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    env |= {"BIKSHOP_BIK_AUTH": "none", "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = run_flask(tmp_path, env, "list-admins")
    assert result.returncode == 3  # as gunicorn's: systemd does not restart-loop on it
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


@pytest.mark.parametrize(
    ("settings", "args", "base", "hint"),
    [
        ({}, [], "http://127.0.0.1:8000", True),
        ({"BIND": "127.0.0.1:8131"}, [], "http://127.0.0.1:8131", True),
        ({"BIND": "0.0.0.0:9000"}, [], "http://127.0.0.1:9000", True),
        ({"BIND": "[::1]:8132"}, [], "http://[::1]:8132", True),
        (
            {"BIND": "unix:/run/bikshop.sock", "PUBLIC_URL": "https://shop.example.com"},
            [],
            "https://shop.example.com",
            False,
        ),
        ({"BIND": "127.0.0.1:8131", "PUBLIC_URL": "http://shop.lan"}, [], "http://shop.lan", True),
        ({"PUBLIC_URL": "https://shop.example.com"}, [], "https://shop.example.com", False),
        (
            {"BIND": "127.0.0.1:8131"},
            ["--base-url", "https://shop.example.com/bik/placeOrder/"],
            "https://shop.example.com",
            False,
        ),
    ],
)
def test_bik_setup_shows_the_address_the_server_answers_on(settings, args, base, hint):
    app = create_app({**SAFE, "BIK_AUTH": "bearer:abcdef123456", **settings})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["bik-setup", *args])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == f"  placeOrder POST {base}/bik/placeOrder"
    assert lines[3] == f"  getOrder   POST {base}/bik/getOrder"
    assert ("Bik needs a public https URL" in result.output) is hint


@pytest.mark.parametrize("bind", ["unix:/run/bikshop.sock", "fd://3"])
def test_bik_setup_on_a_socket_without_a_public_url_says_no_url_is_known(bind):
    app = create_app({**SAFE, "BIK_AUTH": "bearer:abcdef123456", "BIND": bind})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["bik-setup"])
    assert result.exit_code == 0, result.output  # make run goes on to serve on the socket
    lines = result.output.splitlines()
    assert lines[1] == (
        f"  (no URL reaches this server: BIKSHOP_BIND is {bind}, which no URL names, and "
        "BIKSHOP_PUBLIC_URL is not set; set BIKSHOP_PUBLIC_URL to the address clients use "
        "(your proxy's https URL), or pass --base-url; <your https address> stands for it below.)"
    )
    assert lines[2] == "  placeOrder POST <your https address>/bik/placeOrder"
    assert lines[4] == "  getOrder   POST <your https address>/bik/getOrder"
    assert lines[3] == lines[5] == "             auth: Bearer token: abcdef123456"  # still shown
    assert "http://" not in result.output and "127.0.0.1" not in result.output


def test_bik_setup_refuses_a_bind_gunicorn_would_refuse():
    app = create_app({**SAFE, "BIK_AUTH": "bearer:abcdef123456", "BIND": 8101})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["bik-setup"])
    assert result.exit_code == 2
    assert "BIKSHOP_BIND must be host:port such as 127.0.0.1:8000" in result.output
    assert "got '8101'" in result.output


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"BIND": "0.0.0.0:8134"}, "http://127.0.0.1:8134"),
        (
            {"BIND": "unix:/run/bikshop.sock", "PUBLIC_URL": "https://shop.example.com/"},
            "https://shop.example.com",
        ),
    ],
)
def test_a_link_made_outside_a_request_uses_the_one_rule(settings, expected):
    from bikshop.links import public_base

    app = create_app({**SAFE, **settings})
    with app.app_context():
        assert public_base() == expected


def test_a_link_made_outside_a_request_on_a_socket_is_refused_not_made_up():
    from bikshop.config import NoURLKnown
    from bikshop.links import public_base

    app = create_app({**SAFE, "BIND": "unix:/run/bikshop.sock"})
    with app.app_context(), pytest.raises(NoURLKnown, match="set BIKSHOP_PUBLIC_URL"):
        public_base()
    with app.test_request_context(base_url="https://shop.example.com"):
        assert public_base() == "https://shop.example.com"  # a request says where it came in


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--base-url", "ftp://shop.example.com"], "give the whole address with its scheme"),
        (["--base-url", "https://u:p@shop.example.com"], "not in the URL"),
    ],
)
def test_bik_setup_refuses_a_base_url_bik_could_not_use(args, problem):
    app = create_app({**SAFE, "BIK_AUTH": "bearer:abcdef123456"})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["bik-setup", *args])
    assert result.exit_code == 2
    assert problem in result.output
    assert "abcdef123456" not in result.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("garbage", "BIKSHOP_DATABASE_URL is not a database URL: use sqlite:////"),
        ("postgresql://bikshop:pw-s3cret@db:port/x", "BIKSHOP_DATABASE_URL is not a database URL"),
        ("mysql://bikshop:pw-s3cret@db/x", "BIKSHOP_DATABASE_URL uses mysql://, which bikshop"),
        (
            "postgresql+asyncpg://u:pw-s3cret@db/x",
            "BIKSHOP_DATABASE_URL uses postgresql+asyncpg://",
        ),
        # Each of these started, then made every request a 500 and db upgrade a traceback.
        (
            "postgresql://u:pw-s3cret@db/x?sslmod=require",
            "BIKSHOP_DATABASE_URL has an option PostgreSQL does not know: 'sslmod' "
            "(did you mean sslmode?)",
        ),
        (
            "postgresql://u:pw-s3cret@db/x?connect_timeout=5&sslpasword=pw-s3cret",
            "BIKSHOP_DATABASE_URL has an option PostgreSQL does not know",
        ),
        ("postgresql://u:pw-s3cret@db:99999/x", "BIKSHOP_DATABASE_URL has no valid port"),
        ("postgresql://u:pw-s3cret@db/x?port=99999", "BIKSHOP_DATABASE_URL has no valid port"),
        ("postgresql://u:pw-s3cret@/x?host=a,b&port=5432,x", "BIKSHOP_DATABASE_URL has no valid"),
        (
            "postgresql://u:pw-s3cret@/x?host=a&host=b&port=5432&port=5433",
            "BIKSHOP_DATABASE_URL: Can't mix 'multihost' formats together",
        ),
    ],
)
def test_an_unusable_database_url_names_itself_and_not_its_password(url, expected):
    message = refusal(DATABASE_URL=url)
    assert message.startswith(expected)
    assert "pw-s3cret" not in message


def test_a_relative_sqlite_path_is_in_the_instance_folder_like_the_default():
    default = create_app({**SAFE, "DATABASE_URL": None})
    written_out = create_app({**SAFE, "DATABASE_URL": "sqlite:///bikshop.sqlite3"})
    expected = "sqlite:///" + os.path.join(default.instance_path, "bikshop.sqlite3")
    assert default.config["SQLALCHEMY_DATABASE_URI"] == expected
    assert written_out.config["SQLALCHEMY_DATABASE_URI"] == expected
    assert expected.startswith("sqlite:////")  # the absolute form the README shows


@pytest.mark.parametrize("url", ["bogus", "http://127.0.0.1:6379", "memcached://127.0.0.1"])
def test_a_redis_url_of_another_kind_is_refused_at_start(url):
    assert refusal(REDIS_URL=url).startswith(
        "BIKSHOP_REDIS_URL must start with redis://, rediss:// or redis+unix://"
    )


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380", "redis+unix:///r.sock"]
)
def test_redis_urls_limits_understands_are_accepted(url):
    assert create_app({**SAFE, "REDIS_URL": url}).config["REDIS_URL"] == url


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret-pw@127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379:0",
        "redis://[::1/0",
        "redis://127.0.0.1:99999/0",
    ],
)
def test_a_redis_url_redis_cannot_read_is_refused_in_one_line_without_its_password(url):
    message = refusal(REDIS_URL=url)
    assert message.startswith("BIKSHOP_REDIS_URL is not a Redis URL: write redis://")
    assert "s3cret-pw" not in message


@pytest.mark.parametrize(
    "hosts", ["https://shop.example.com", "shop.example.com/bik", "shop example.com"]
)
def test_trusted_hosts_written_as_urls_are_refused(hosts):
    assert refusal(TRUSTED_HOSTS=hosts).startswith("BIKSHOP_TRUSTED_HOSTS lists host names")


def test_trusted_hosts_with_ports_subdomains_and_addresses_are_accepted():
    hosts = "Shop.Example.com, .example.com,127.0.0.1:8000,[::1]:8000"
    assert create_app({**SAFE, "TRUSTED_HOSTS": hosts}).config["TRUSTED_HOSTS"] == [
        "shop.example.com",
        ".example.com",
        "127.0.0.1:8000",
        "[::1]:8000",
    ]


def test_every_whole_number_setting_has_a_range():
    from bikshop.config import _INT_KEYS, RANGES

    assert set(RANGES) >= _INT_KEYS


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("MAX_ITEMS_PER_ORDER", 0, "from 1 to 2000 items, got 0"),
        ("MAX_ITEMS_PER_ORDER", "2001", "from 1 to 2000 items, got '2001'"),
        ("ADMIN_LOGIN_MAX_FAILURES", 0, "from 1 to 1000 failures, got 0"),
        ("ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS", "0", "from 1 to 10000 failures, got '0'"),
        ("ADMIN_LOGIN_LOCK_MINUTES", "0", "from 1 to 1440 minutes"),
        ("DATABASE_PING_AFTER_IDLE", "-1", "from 0 to 3600 seconds, got '-1'"),
        ("ORDER_NUMBER_START", 0, "from 1 to 999999999"),
        ("PROXY_FIX_X_FOR", -1, "from 0 to 5 proxies"),
        ("RAZORPAY_TIMEOUT", "abc", "from 1 to 20 seconds, got 'abc'"),
    ],
)
def test_a_number_out_of_its_range_is_refused_in_one_line(key, value, expected):
    assert refusal(**{key: value}).startswith(f"BIKSHOP_{key} must be a whole number {expected}")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SECRET_KEY", "change-me"),
        ("BIK_AUTH", "bearer:change-me"),
        ("BIK_GET_ORDER_AUTH", "apikey:X-Key:change-me"),
        ("DATABASE_URL", "postgresql://bikshop:change-me@127.0.0.1:5432/bikshop"),
        ("METRICS_TOKEN", "change-me"),
        ("RAZORPAY_WEBHOOK_SECRET", "change-me"),
    ],
)
def test_production_refuses_the_example_files_placeholders(key, value):
    assert refusal(**{key: value}) == (
        f"BIKSHOP_{key} still holds the example's change-me placeholder: "
        "replace it with your own value"
    )


def test_development_may_keep_a_placeholder():
    app = create_app(
        {"ENV": "development", "DATABASE_URL": "sqlite://", "BIK_AUTH": "bearer:change-me"}
    )
    assert app.config["BIK_AUTH_SPECS"]["placeOrder"].token == "change-me"


# Every header the shipped nginx site sets or blanks ("" drops it) before bikshop sees it.
NGINX_SET_HEADERS = re.findall(
    r"^\s*proxy_set_header\s+(\S+)",
    (ROOT / "deploy" / "bikshop.nginx.conf").read_text(),
    flags=re.MULTILINE,
)


@pytest.mark.parametrize(
    "header",
    ["Content-Type", "host", "Cookie", "X-Forwarded-For", "x-forwarded-anything", "Forwarded"]
    + ["X-Real-IP", *NGINX_SET_HEADERS],
)
def test_an_apikey_in_a_header_http_or_the_proxy_fills_in_is_refused(header):
    """nginx replaces (or drops) what Bik sent in these, so every call through it was a 401."""
    message = refusal(BIK_AUTH=f"apikey:{header}:abc123-s3cret")
    assert "BIKSHOP_BIK_AUTH" in message and "HTTP itself or the proxy in front sets" in message
    assert "abc123" not in message


def test_an_apikey_header_only_starting_like_forwarded_is_the_brand_s_own():
    """Forwarded-Token was refused as a proxy header (upgrade probe): only Forwarded itself is."""
    app = create_app({**SAFE, "BIK_AUTH": "apikey:Forwarded-Token:abc123-s3cret-XYZ"})
    assert app.config["BIK_AUTH_SPECS"]["getOrder"].scheme == "apikey"


def test_the_nginx_site_sets_the_headers_the_apikey_test_reads():
    assert {"X-Forwarded-Ssl", "X-Forwarded-Port", "X-Request-ID"} <= set(NGINX_SET_HEADERS)


@pytest.mark.parametrize("header", ["Authorization", "authorization"])
def test_an_apikey_in_authorization_says_what_to_change_in_bik(header):
    """Bik's API key in Authorization sends "Authorization: sk_abc", which bearer never matches:
    the line says what to pick in Bik instead, not only which scheme to set here."""
    message = refusal(BIK_GET_ORDER_AUTH=f"apikey:{header}:abc123-s3cret")
    assert message == (
        "BIKSHOP_BIK_GET_ORDER_AUTH is invalid: apikey cannot use the Authorization header: in "
        "Bik, either pick Bearer token for this endpoint and set bearer:<token>, or keep API key "
        "with a header name of your own such as X-Brand-Key and set apikey:X-Brand-Key:<token>"
    )


def test_an_apikey_header_with_an_underscore_is_refused():
    # gunicorn drops headers whose names hold "_": Bik's key would never arrive.
    message = refusal(BIK_AUTH="apikey:X_Brand_Key:abc123-s3cret")
    assert message.startswith(
        "BIKSHOP_BIK_AUTH is invalid: the apikey header name cannot contain '_'"
    )
    assert "abc123-s3cret" not in message


@pytest.mark.parametrize(
    "value",
    [
        "bearer:tökén€",
        "apikey:X-Key:clé-secrète",
        "bearer:a\x7fb",
    ],
)
def test_a_secret_that_cannot_travel_in_a_header_is_refused(value):
    message = refusal(BIK_AUTH=value)
    assert message.startswith("BIKSHOP_BIK_AUTH is invalid: ")
    assert "printable ASCII" in message
    assert value.split(":")[-1] not in message


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("apikey:X Api Key:abc123-s3cret", "header name may hold only letters, digits and '-'"),
        ("apikey:X.Api.Key:abc123-s3cret", "header name may hold only letters, digits and '-'"),
        ("apikey:X-Api-Key: abc123-s3cret", "the apikey token starts with a space"),
        ("bearer: abc123-s3cret", "the bearer token starts with a space"),
        ("api-key:X-Api-Key:abc123-s3cret", "did you mean apikey? use none, bearer:<token>"),
        ("api_key:X-Api-Key:abc123-s3cret", "did you mean apikey?"),
        ("berer:abc123-s3cret", "did you mean bearer?"),
        ("Basik:bik:abc123-s3cret", "did you mean basic?"),
        ("abc123-s3cret", "use none, bearer:<token>"),  # the token alone: nothing is close
    ],
)
def test_a_typing_slip_in_bik_auth_is_named_for_what_it_is(value, says):
    message = refusal(BIK_AUTH=value)
    assert message.startswith("BIKSHOP_BIK_AUTH is invalid: ") and says in message
    assert "abc123" not in message and "Api Key" not in message
    if value == "abc123-s3cret":
        assert "did you mean" not in message


@pytest.mark.parametrize(
    "value", ["basic:bik:pass\x7fword", "basic:bik:\u00a0pw", "basic:b\x00:pw"]
)
def test_a_basic_user_or_password_with_control_characters_is_refused(value):
    message = refusal(BIK_AUTH=value)
    assert message.startswith("BIKSHOP_BIK_AUTH is invalid: the basic user and password must be")
    assert value.split(":")[-1] not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BIKSHOP_WORKERS", "abc"),
        ("BIKSHOP_TIMEOUT", "abc"),
        ("BIKSHOP_MAX_REQUESTS", "x"),
        ("BIKSHOP_WORKERS", "0"),
        ("BIKSHOP_BIND", "8101"),  # a bare port: gunicorn would take it for a host name
        ("BIKSHOP_BIND", "127.0.0.1:80000"),
        ("BIKSHOP_DATABASE_URL", "mysql://bikshop:pw@127.0.0.1/bikshop"),
        ("BIKSHOP_DATABASE_URL", "postgresql://bikshop:pw@[::1/x"),  # urlsplit cannot read it
        ("BIKSHOP_DATABASE_URL", "sqlite:///"),  # in memory: every order lost at a restart
        ("BIKSHOP_DATABASE_URL", "postgresql://bikshop:pw@127.0.0.1/bikshop?sslmod=require"),
        ("BIKSHOP_REDIS_URL", "bogus"),
        ("BIKSHOP_REDIS_URL", "redis://:pw@127.0.0.1:notaport/0"),  # redis-py cannot read it
        ("BIKSHOP_PUBLIC_URL", "https://[::1"),
        ("BIKSHOP_TRUSTED_HOSTS", "https://shop.example.com"),  # would refuse every request
        ("BIKSHOP_FORWARDED_ALLOW_IPS", "not an ip"),  # was gunicorn's own error, exit 1
        ("BIKSHOP_FORWARDED_ALLOW_IPS", "127.0.0.1,10.0.0.1/8"),  # host bits set
    ],
)
def test_gunicorn_stops_with_exit_3_and_one_line_on_a_bad_setting(tmp_path, variable, value):
    # Exit 3: deploy/bikshop.service's RestartPreventExitStatus, so systemd does not loop.
    env = {
        "BIKSHOP_SECRET_KEY": SECRET,
        "BIKSHOP_BIK_AUTH": "none",
        "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "TMPDIR": str(tmp_path / "tmp"),  # where gunicorn.conf.py makes its metrics folder
        variable: value,
    }
    (tmp_path / "tmp").mkdir()
    result, _ = start_gunicorn(env)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 3, output
    assert output.startswith(f"bikshop: configuration error: {variable} ")
    assert len(output.splitlines()) == 1 and "Traceback" not in output
    assert list((tmp_path / "tmp").iterdir()) == []  # the metrics folder went with it


def _windows_line_endings(key: str) -> str:
    return (
        f"BIKSHOP_{key} holds a carriage return (\\r): the file it was set from has Windows line "
        "endings; run dos2unix on that file"
    )


def test_a_setting_with_a_carriage_return_is_refused_naming_it():
    """Each value of a settings file saved with Windows line endings ends in \\r, which the
    shell keeps: a store name with an invisible character, a database error cut short where
    the \\r was printed (self-hoster probe)."""
    with pytest.raises(ConfigError) as caught:
        create_app({**SAFE, "STORE_NAME": "Glow Naturals\r", "PUBLIC_URL": "https://a.in\r"})
    assert caught.value.problems == [
        _windows_line_endings("PUBLIC_URL"),
        _windows_line_endings("STORE_NAME"),
    ]
    assert "Glow" not in str(caught.value)  # the values are not shown: a secret may be one


def test_a_settings_file_with_windows_line_endings_is_named_at_start_and_in_check_config(
    tmp_path,
):
    """As the README loads the file (set -a; . file), then a flask command and check-config."""
    settings = tmp_path / "bikshop.env"
    settings.write_bytes(
        f"BIKSHOP_SECRET_KEY={SECRET}\r\n"
        "BIKSHOP_BIK_AUTH=none\r\n"
        f"BIKSHOP_DATABASE_URL=sqlite:///{tmp_path}/db.sqlite3\r\n".encode()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    loaded = 'set -a; . "$0"; set +a; exec "$@"'
    flask = [sys.executable, "-m", "flask", "--app", "bikshop"]

    def with_settings(*command: str) -> subprocess.CompletedProcess:
        """``flask --app bikshop <command>`` with the file loaded as the README says."""
        return subprocess.run(
            ["sh", "-c", loaded, str(settings), *flask, *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    upgrade = with_settings("db", "upgrade")
    assert upgrade.returncode == 3
    assert upgrade.stderr == (
        f"Error: {_windows_line_endings('BIK_AUTH')} (and 2 more: flask --app bikshop "
        "check-config)\n"
    )
    assert not (tmp_path / "db.sqlite3").exists()
    check = with_settings("check-config", "--offline")
    assert check.returncode == 1
    errors = [line for line in check.stdout.splitlines() if line.startswith("ERROR")]
    assert [line.split(None, 2)[1:] for line in errors] == [
        [f"BIKSHOP_{key}", f"the app refuses to start: {_windows_line_endings(key)}"]
        for key in ("BIK_AUTH", "DATABASE_URL", "SECRET_KEY")
    ]


def test_every_problem_is_found_the_first_named_in_the_one_line():
    with pytest.raises(ConfigError) as caught:
        create_app({**SAFE, "SECRET_KEY": None, "MAX_ITEMS_PER_ORDER": 0, "REDIS_URL": "bogus"})
    assert [problem.split()[0] for problem in caught.value.problems] == [
        "BIKSHOP_MAX_ITEMS_PER_ORDER",
        "BIKSHOP_SECRET_KEY",
        "BIKSHOP_REDIS_URL",
    ]
    message = str(caught.value)
    assert message.startswith("BIKSHOP_MAX_ITEMS_PER_ORDER must be a whole number from 1")
    assert message.endswith("(and 2 more: flask --app bikshop check-config)")
    assert "\n" not in message


def _gunicorn_settings(env: dict) -> dict[str, str]:
    """What real gunicorn resolves from gunicorn.conf.py under ``env`` (--print-config)."""
    ours = ("BIKSHOP_", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)} | env
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--print-config", "wsgi:app"],
        cwd=ROOT,
        env={"BIKSHOP_SECRET_KEY": SECRET, "BIKSHOP_BIK_AUTH": "none", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    pairs = (line.partition("=") for line in result.stdout.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def test_empty_gunicorn_settings_mean_their_defaults(tmp_path):
    """``BIKSHOP_BIND=`` (a line left empty in the settings file) used to make gunicorn listen
    on nothing at all, while make run printed URLs on :8000."""
    printed = _gunicorn_settings(
        {
            "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "BIKSHOP_BIND": "",
            "BIKSHOP_LOG_LEVEL": "",
            "BIKSHOP_FORWARDED_ALLOW_IPS": "",
        }
    )
    assert printed["bind"] == "['127.0.0.1:8000']"
    assert printed["loglevel"] == "info"
    assert printed["forwarded_allow_ips"] == "['127.0.0.1']"


def test_gunicorn_trusts_the_proxies_listed_and_only_their_x_forwarded_proto(tmp_path):
    """Spaces and empty entries are dropped; only X-Forwarded-Proto says https (a client's
    X-Forwarded-Ssl beside nginx's X-Forwarded-Proto was a 400: tests/test_deploy_nginx.py)."""
    printed = _gunicorn_settings(
        {
            "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "BIKSHOP_FORWARDED_ALLOW_IPS": " 127.0.0.1, ::1, , 10.0.0.0/8, ",
        }
    )
    assert printed["forwarded_allow_ips"] == "['127.0.0.1', '::1', '10.0.0.0/8']"
    assert printed["secure_scheme_headers"] == "{'X-FORWARDED-PROTO': 'https'}"


def test_flask_help_without_settings_says_what_is_missing_in_one_line(tmp_path):
    """``flask --app bikshop --help`` in a shell without the settings printed a 20-line
    traceback above the help; now the missing setting, and the commands that work anyway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    result = run_flask(tmp_path, env, "--help")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: BIKSHOP_SECRET_KEY is not set"), result.stderr
    assert "such as `db upgrade`, are listed once they are set" in result.stderr
    commands = result.stdout.partition("Commands:")[2]
    assert "check-config" in commands and "check-bik" in commands


def test_check_config_names_settings_only_gunicorn_reads(tmp_path):
    """check-config passed while the unit's gunicorn would stop with exit 3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    env |= {
        "BIKSHOP_SECRET_KEY": SECRET,
        "BIKSHOP_BIK_AUTH": "none",
        "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "BIKSHOP_BIND": "8101",
        "BIKSHOP_WORKERS": "0",
        "BIKSHOP_TIMEOUT": "5",
        "BIKSHOP_FORWARDED_ALLOW_IPS": "not an ip",
    }
    result = run_flask(ROOT, env, "check-config", "--offline")
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    gunicorn_read = ("BIND", "WORKERS", "TIMEOUT", "FORWARDED_ALLOW_IPS")
    for variable in (f"BIKSHOP_{name}" for name in gunicorn_read):
        (line,) = [line for line in errors if line.split()[1] == variable]
        assert f"gunicorn refuses to start: {variable} must be" in line


def test_make_run_refuses_a_bind_gunicorn_cannot_use(tmp_path):
    """make run used to print URLs on the port of ``BIKSHOP_BIND=8101`` and start a gunicorn
    that took 8101 for a host name. Run from a copy, so nothing here touches the checkout."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "run_local.py"
    script.write_text((ROOT / "scripts" / "run_local.py").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    env |= {"BIKSHOP_BIND": "8101", "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("make run: BIKSHOP_BIND must be host:port"), result.stderr
    assert result.stderr.count("\n") == 1 and not result.stdout


def test_a_read_only_checkout_without_its_instance_folder_starts_without_a_traceback(tmp_path):
    """The default SQLite file lives in ``instance/``, which create_app made itself: in a
    read-only checkout (ProtectSystem=strict, a read-only mount) that was an OSError traceback
    from gunicorn. Now check-config names the folder, and the app itself loads."""
    app = tmp_path / "app"
    app.mkdir()
    for name in ("bikshop", "migrations", "templates", "static"):
        shutil.copytree(ROOT / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("wsgi.py", "gunicorn.conf.py"):
        shutil.copy(ROOT / name, app / name)
    subprocess.run(["mount", "--bind", str(app), str(app)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(app)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
        env |= {"BIKSHOP_SECRET_KEY": SECRET, "BIKSHOP_BIK_AUTH": "none"}
        env |= {"PYTHONPATH": str(app), "PYTHONDONTWRITEBYTECODE": "1"}
        loaded = subprocess.run(
            [sys.executable, "-c", "import bikshop, wsgi; print(bikshop.__file__)"],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.strip() == str(app / "bikshop" / "__init__.py")
        checked = subprocess.run(
            [sys.executable, "-c", "from bikshop import ops; print(ops.check())"],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"its folder {app / 'instance'} does not exist" in checked.stdout, checked.stderr
    finally:
        subprocess.run(["umount", "-l", str(app)], check=False)


def test_a_razorpay_api_url_with_credentials_in_it_is_refused_without_showing_them():
    message = refusal(RAZORPAY_API_URL="https://rzp_live_k:s3cret-Value@api.razorpay.com/v1")
    assert message.startswith("BIKSHOP_RAZORPAY_API_URL must be https://host")
    assert "s3cret-Value" not in message and "rzp_live_k" not in message
    assert "https://[secret]@api.razorpay.com/v1" in message


def test_an_unencoded_at_sign_in_the_database_password_is_refused_without_showing_it():
    """postgresql://bikshop:p@ss@host/db read as host 'ss@host': the driver's error then showed
    part of the password."""
    message = refusal(DATABASE_URL="postgresql://bikshop:Tr0ub@dor-xyz@127.0.0.1:5432/bikshop")
    assert message.startswith("BIKSHOP_DATABASE_URL has an @ in its password")
    assert "Tr0ub" not in message and "dor-xyz" not in message
    app = create_app({**SAFE, "DATABASE_URL": "postgresql://bikshop:Tr0ub%40dor@127.0.0.1/b"})
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith(":Tr0ub%40dor@127.0.0.1/b")


@pytest.mark.parametrize(
    ("password", "warned"),
    [
        (
            "Tr0ub/dor-xyz",
            "has / in its password not percent-encoded: bikshop connects, but "
            "pg_dump and pg_restore cannot read the URL; write / as %2F",
        ),
        (
            "50%off-xyz",
            "has % in its password not percent-encoded: bikshop connects, but "
            "pg_dump and pg_restore cannot read the URL; write % as %25",
        ),
        (
            "a/b%zz-xyz",
            "has / and % in its password not percent-encoded: bikshop connects, but "
            "pg_dump and pg_restore cannot read the URL; write / as %2F, % as %25",
        ),
    ],
)
def test_check_config_names_a_password_character_pg_dump_would_misread(password, warned):
    """bikshop (SQLAlchemy) read postgresql://bikshop:a/b@host/db as written, while libpq, and
    so the README's pg_dump and pg_restore lines, took "a" for the host and "b@host/db" for
    the database, or refused a bare % (self-hoster probe). The password is never shown."""
    from bikshop.ops import check

    url = f"postgresql://bikshop:{password}@127.0.0.1:5432/bikshop"
    found = check(_environ({**SAFE, "DATABASE_URL": url}), connect=False)
    (finding,) = [f for f in found if f.variable == "BIKSHOP_DATABASE_URL"]
    assert (finding.level, finding.message) == ("warning", warned)
    assert "xyz" not in finding.message


@pytest.mark.parametrize("password", ["Tr0ub%2Fdor%25%40", "p#ss?w:rd", "plain"])
def test_a_password_libpq_reads_as_bikshop_does_is_not_flagged(password):
    from bikshop.ops import check

    url = f"postgresql://bikshop:{password}@127.0.0.1:5432/bikshop"
    found = check(_environ({**SAFE, "DATABASE_URL": url}), connect=False)
    assert [f for f in found if f.variable == "BIKSHOP_DATABASE_URL"] == []


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/base?x=1",
        "https://shop.example.com#top",
        "https://",
        "shop.example.com",
        "https://shop example.com",
        "ftp://shop.example.com",
    ],
)
def test_a_public_url_links_cannot_be_appended_to_is_refused(url):
    assert refusal(PUBLIC_URL=url).startswith("BIKSHOP_PUBLIC_URL must be an absolute http(s) URL")


@pytest.mark.parametrize(
    "url",
    [
        "https://user:PubPw_Secret@shop.example.com/base",
        # Also when the URL is wrong in another way, whose message shows the URL (security
        # probe: a query or a space showed the password).
        "https://admin:PubPw_Secret@shop.example.com/?x",
        "https://admin:PubPw_Secret@shop.example.com/a b",
        "admin:PubPw_Secret@shop.example.com",
        "https://admin:PubPw_Secret@[::1/",
    ],
)
def test_a_public_url_with_a_password_is_refused_without_showing_it(url):
    message = refusal(PUBLIC_URL=url)
    assert message.startswith("BIKSHOP_PUBLIC_URL must not hold a user or password")
    assert "PubPw_Secret" not in message


def test_an_at_sign_after_the_host_is_not_taken_for_a_password():
    assert refusal(PUBLIC_URL="https://shop.example.com?to=a@b").startswith(
        "BIKSHOP_PUBLIC_URL must be an absolute http(s) URL"
    )


@pytest.mark.parametrize("port", ["99999", "0x50", "-1"])
def test_a_public_url_with_an_impossible_port_is_refused(port):
    message = refusal(PUBLIC_URL=f"https://shop.example.com:{port}/base")
    assert message.startswith("BIKSHOP_PUBLIC_URL has no valid port (1 to 65535)")


def test_a_public_url_may_have_a_port_and_a_path():
    for url in ("https://shop.example.com:8443", "https://example.com/shop/"):
        assert create_app({**SAFE, "PUBLIC_URL": url}).config["PUBLIC_URL"] == url.rstrip("/")


@pytest.mark.parametrize("secret", ["a" * 40, "ab" * 20, "0123456" * 5])
def test_production_refuses_a_long_secret_key_that_is_not_random(secret):
    assert refusal(SECRET_KEY=secret).startswith("BIKSHOP_SECRET_KEY is not random")


def test_the_units_start_command_exits_3_on_a_bad_setting_and_1_on_a_database_down(tmp_path):
    """The unit's ExecStart, run as systemd runs it (``/bin/sh -c``, the venv's paths made this
    one's): a setting the upgrade refuses ends it with 3, which stops systemd's restarts; a
    database that cannot be reached yet ends it with 1, which systemd tries again."""
    unit = (ROOT / "deploy" / "bikshop.service").read_text()
    (start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    shell, command = start.removeprefix("ExecStart=").split(" -c ", 1)
    venv = str(Path(sys.executable).parent)
    command = command.strip("'").replace("/srv/bikshop/venv/bin", venv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    # The unit's own Environment= lines, in an empty runtime folder as systemd makes on a
    # fresh boot (RuntimeDirectory=): its metrics folder did not exist for the upgrade.
    run = tmp_path / "run"
    run.mkdir()
    for line in unit.splitlines():
        if line.startswith("Environment="):
            name, value = line.removeprefix("Environment=").split("=", 1)
            env[name] = value.replace("/run/bikshop", str(run))
    assert "PROMETHEUS_MULTIPROC_DIR" in env
    env |= {
        "BIKSHOP_ENV": "production",
        "BIKSHOP_BIK_AUTH": "bearer:" + "t" * 32,
        "BIKSHOP_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",  # nothing listens
        "BIKSHOP_PUBLIC_URL": "https://shop.example.com",
    }

    def start_unit(settings):
        return subprocess.run(
            [shell, "-c", command],
            cwd=ROOT,
            env=env | settings,
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = start_unit({"BIKSHOP_SECRET_KEY": "change-me"})
    assert refused.returncode == 3, refused.stderr
    assert "BIKSHOP_SECRET_KEY" in refused.stderr and "Traceback" not in refused.stderr
    down = start_unit({"BIKSHOP_SECRET_KEY": "k" + secrets.token_urlsafe(40)})
    assert down.returncode == 1, down.stderr
    assert "BIKSHOP_DATABASE_URL" in down.stderr and "Traceback" not in down.stderr


@pytest.mark.parametrize("rate", ["NaN", "sNaN", "-nan", "Infinity", "abc", "101", "-1"])
def test_a_gst_rate_that_is_not_a_percentage_is_one_line(rate):
    """NaN parses as a Decimal and then cannot be compared: it was a traceback and exit 1,
    which systemd restarts forever (operations probe)."""
    assert refusal(STORE_GST_RATE=rate).startswith("BIKSHOP_STORE_GST_RATE must be")


@pytest.mark.parametrize("value", ["0 per minute", "10 per minute;0 per hour"])
def test_a_rate_limit_that_allows_nothing_is_refused(value):
    """ "0 per minute" on sign-in locked every owner out of the dashboard (operations probe)."""
    message = refusal(RATELIMIT_LOGIN=value)
    assert message.startswith("BIKSHOP_RATELIMIT_LOGIN allows no request at all")


def test_a_shell_without_the_local_settings_is_told_to_load_them(tmp_path, monkeypatch):
    """`make run` wrote instance/bikshop.env; a new shell has no BIKSHOP_ variable. The first
    problem found (no secret key) came with advice to make a new one, a second key for the
    same machine (self-hoster probe): the line says to load the file."""
    from flask import Flask

    from bikshop import config as settings

    for name in [n for n in os.environ if n.startswith("BIKSHOP_")]:
        monkeypatch.delenv(name)
    app = Flask("bikshop_local", instance_path=str(tmp_path))
    with pytest.raises(ConfigError) as without_file:
        settings.load(app, None)
    assert str(without_file.value).startswith("BIKSHOP_SECRET_KEY is not set")
    (tmp_path / "bikshop.env").write_text("BIKSHOP_ENV=development\n")
    app = Flask("bikshop_local", instance_path=str(tmp_path))
    with pytest.raises(ConfigError) as with_file:
        settings.load(app, None)
    message = str(with_file.value)
    local = tmp_path / "bikshop.env"
    assert message == (
        f"no BIKSHOP_ setting is set in this shell, and {local} holds this machine's "
        f"(made by make run): load it first: set -a; . {local}; set +a"
    )
    assert with_file.value.exit_code == 3


def test_an_empty_on_off_setting_means_its_default():
    """As for every other setting: ``BIKSHOP_RATELIMIT_ENABLED=`` left empty in an env file
    keeps the rate limits on (it used to turn them off, silently)."""
    app = create_app({**SAFE, "RATELIMIT_ENABLED": "", "INSECURE_COOKIES": " "})
    assert app.config["RATELIMIT_ENABLED"] is True and app.config["INSECURE_COOKIES"] is False
    assert create_app({**SAFE, "RATELIMIT_ENABLED": "off"}).config["RATELIMIT_ENABLED"] is False


@pytest.mark.parametrize(
    "settings, warned, not_warned",
    [
        (
            {"RATELIMIT_ENABLED": "false"},
            "WARNING BIKSHOP_RATELIMIT_ENABLED is off: nothing limits sign-in attempts, invoice "
            "link guesses or Pay taps",
            "BIKSHOP_REDIS_URL",  # nothing to share between workers
        ),
        (
            {"RATELIMIT_LOGIN": "off"},
            "WARNING BIKSHOP_RATELIMIT_LOGIN is off: nothing limits sign-in attempts",
            "BIKSHOP_RATELIMIT_ENABLED",
        ),
        (
            {"RATELIMIT_INVOICE_MISSES": "off"},
            "WARNING BIKSHOP_RATELIMIT_INVOICE_MISSES is off: nothing limits invoice link guesses",
            "BIKSHOP_RATELIMIT_LOGIN",
        ),
    ],
)
def test_check_config_warns_when_a_rate_limit_is_off(settings, warned, not_warned):
    from bikshop.ops import check

    found = check(_environ({**SAFE, **settings}), connect=False)
    lines = [f"{f.level.upper():<8}{f.variable} {f.message}" for f in found]
    assert warned in lines
    assert not any(not_warned in line for line in lines)
    defaults = [f.variable for f in check(_environ(SAFE), connect=False)]
    assert not any("RATELIMIT" in variable for variable in defaults)


def _environ(settings: dict) -> dict:
    return {f"BIKSHOP_{key}": value for key, value in settings.items()}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # settings, not data
def test_a_misspelt_setting_is_named_once_in_the_servers_log_without_its_value(gunicorn):
    """BIKSHOP_BIK_PLACEORDER_AUTH was silently ignored at start-up (check-config alone said)."""
    server = gunicorn(workers=2, env={"BIKSHOP_BIK_PLACEORDER_AUTH": "bearer:misspelt-s3cret"})
    log = server.log_once_it_has("BIKSHOP_BIK_PLACEORDER_AUTH")
    warned = [line for line in log.splitlines() if "BIKSHOP_BIK_PLACEORDER_AUTH" in line]
    assert len(warned) == 1, log  # the master loads the app once (preload_app), not per worker
    line = json.loads(warned[0])
    assert (line["level"], line["logger"], line["message"]) == (
        "warning",
        "bikshop.config",
        "BIKSHOP_BIK_PLACEORDER_AUTH is not a bikshop setting, and is ignored: did you mean "
        "BIKSHOP_BIK_PLACE_ORDER_AUTH?",
    )
    assert "misspelt-s3cret" not in log
