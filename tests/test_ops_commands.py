"""Operator commands and probes: check-config, backup and restore, /readyz on an old schema."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy import create_engine, text

from bikshop import create_app
from bikshop.extensions import db
from tests.bik import sample_body
from tests.conftest import BASE_CONFIG, PG_ADMIN_URL, backend_of
from tests.faults import Load, assert_no_orphans_or_duplicates

ROOT = Path(__file__).resolve().parent.parent

SAFE = {
    "BIKSHOP_ENV": "production",
    "BIKSHOP_SECRET_KEY": secrets.token_urlsafe(48),
    "BIKSHOP_BIK_AUTH": "bearer:" + secrets.token_urlsafe(32),
    "BIKSHOP_PUBLIC_URL": "https://glow-naturals.in",
    "BIKSHOP_TRUSTED_HOSTS": "glow-naturals.in",
    "BIKSHOP_PROXY_FIX_X_FOR": "1",
    "BIKSHOP_RAZORPAY_KEY_ID": "rzp_live_abcdefghijkl",
    "BIKSHOP_RAZORPAY_KEY_SECRET": secrets.token_urlsafe(24),
    "BIKSHOP_RAZORPAY_WEBHOOK_SECRET": secrets.token_urlsafe(24),
    "BIKSHOP_REDIS_URL": "redis://127.0.0.1:6379/0",
    "BIKSHOP_METRICS_TOKEN": secrets.token_urlsafe(24),
    "BIKSHOP_STORE_NAME": "Glow Naturals",
    "BIKSHOP_STORE_ADDRESS": "12 MG Road, Bengaluru 560001",
}


@pytest.fixture(scope="module", autouse=True)
def razorpay():
    """A fake Razorpay that takes SAFE's keys: check-config asks Razorpay whether it takes
    them, and nothing here may reach the real one."""
    from tests.fake_razorpay import FakeRazorpay

    keys = SAFE["BIKSHOP_RAZORPAY_KEY_ID"], SAFE["BIKSHOP_RAZORPAY_KEY_SECRET"]
    with FakeRazorpay(key_id=keys[0], key_secret=keys[1]) as fake:
        SAFE["BIKSHOP_RAZORPAY_API_URL"] = fake.url
        yield fake


def flask(
    *args: str, env: dict, stdin: str | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``flask --app bikshop ...`` as an operator types it, with exactly ``env`` set (after
    ``prefix``, a command that runs it: ``NO_FILE_OVERRIDE``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "flask", "--app", "bikshop", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def check_config(*args: str, env: dict) -> subprocess.CompletedProcess:
    """``check-config`` run in this process (click's runner), with exactly ``env`` set: the
    same command as :func:`flask` runs, without a second of start-up per call. Each test
    below still runs it once as a real ``flask`` command too."""
    from click.testing import CliRunner

    from bikshop.ops import check_config_command

    cleared = {k: None for k in os.environ if k.startswith("BIKSHOP_")}
    result = CliRunner().invoke(check_config_command, list(args), env={**cleared, **env})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.output, "")


@pytest.fixture
def scratch_url(database_url, tmp_path):
    """An empty database of the same backend, for schema experiments."""
    if backend_of(database_url) == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    name = f"bikshop_scratch_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # settings, not data
def test_check_config_passes_a_safe_production_setup(database_url):
    result = flask("check-config", "--strict", env={**SAFE, "BIKSHOP_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check-config: 0 error(s), 0 warning(s)" in result.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # settings, not data
def test_check_config_warns_of_misspelt_names_and_guessable_secrets(database_url):
    """A misspelt name is silently its default (BIKSHOP_DATABASE_URI: SQLite instead of
    PostgreSQL), and a short metrics token or webhook secret is guessable."""
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    env |= {
        "BIKSHOP_DATABASE_URI": "postgresql://elsewhere/shop",
        "BIKSHOP_RATELIMIT_LOGN": "3 per minute",
        "BIKSHOP_METRICS_TOKEN": "abc",
        "BIKSHOP_RAZORPAY_WEBHOOK_SECRET": "x",
        "BIKSHOP_RAZORPAY_KEY_ID": "abc",
        "BIKSHOP_TEST_CHROMIUM": "/usr/bin/chromium",  # the suite's own: not reported
    }
    result = flask("check-config", "--offline", env=env)
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING BIKSHOP_METRICS_TOKEN is shorter than 16 characters: anyone who guesses it "
        "can read the shop's figures",
        "WARNING BIKSHOP_RAZORPAY_WEBHOOK_SECRET is shorter than 16 characters: anyone who "
        "guesses it can mark orders paid",
        "WARNING BIKSHOP_RAZORPAY_KEY_ID does not start with rzp_test_ or rzp_live_: not a key id",
        "WARNING BIKSHOP_DATABASE_URI is not a bikshop setting, and is ignored: did you mean "
        "BIKSHOP_DATABASE_URL?",
        "WARNING BIKSHOP_RATELIMIT_LOGN is not a bikshop setting, and is ignored: did you mean "
        "BIKSHOP_RATELIMIT_LOGIN?",
    ], result.stdout
    assert flask("check-config", "--offline", "--strict", env=env).returncode == 1


def test_check_config_names_each_unsafe_or_missing_setting(database_url):
    risky = {
        **SAFE,
        "BIKSHOP_DATABASE_URL": database_url,
        "BIKSHOP_BIK_AUTH": "none",
        "BIKSHOP_PUBLIC_URL": "http://shop.example.com",
        "BIKSHOP_INSECURE_COOKIES": "1",
        "BIKSHOP_REDIS_URL": "",
    }
    result = flask("check-config", env=risky)
    assert result.returncode == 1
    for variable in ("BIK_AUTH", "PUBLIC_URL", "INSECURE_COOKIES"):
        assert f"ERROR   BIKSHOP_{variable} " in result.stdout, result.stdout
    assert "WARNING BIKSHOP_REDIS_URL " in result.stdout
    # No seller address: a warning, an error once invoices are tax invoices (a GSTIN).
    addressless = {**SAFE, "BIKSHOP_DATABASE_URL": database_url, "BIKSHOP_STORE_ADDRESS": ""}
    assert "WARNING BIKSHOP_STORE_ADDRESS is not set" in check_config(env=addressless).stdout
    taxed = {**addressless, "BIKSHOP_STORE_GSTIN": "29AABCG1234K1ZO"}
    result = check_config(env=taxed)
    assert result.returncode == 1
    assert "ERROR   BIKSHOP_STORE_ADDRESS is not set: a tax invoice must" in result.stdout
    # Razorpay keys without the webhook's secret: production does not start at all.
    no_webhook = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    no_webhook["BIKSHOP_RAZORPAY_WEBHOOK_SECRET"] = ""
    result = check_config(env=no_webhook)
    assert result.returncode == 1
    refused = "ERROR   BIKSHOP_RAZORPAY_WEBHOOK_SECRET the app refuses to start"
    assert refused in result.stdout, result.stdout
    # A Bik credential short enough to guess: a warning naming which, never the value.
    guessable = {**SAFE, "BIKSHOP_DATABASE_URL": database_url, "BIKSHOP_BIK_AUTH": "bearer:t0k3n"}
    guessable["BIKSHOP_BIK_GET_ORDER_AUTH"] = "basic:bik:pw-s3cret"
    result = check_config(env=guessable)
    assert (
        "WARNING BIKSHOP_BIK_AUTH the bearer token is shorter than 16 characters: anyone who "
        "guesses it can place orders\n"
    ) in result.stdout, result.stdout
    assert (
        "WARNING BIKSHOP_BIK_GET_ORDER_AUTH the basic password is shorter than 16 characters: "
        "anyone who guesses it can read every order, with its customer's phone, email and "
        "address\n"
    ) in result.stdout, result.stdout
    assert "t0k3n" not in result.stdout and "pw-s3cret" not in result.stdout
    # Warnings alone pass, unless --strict.
    only_warnings = {**SAFE, "BIKSHOP_DATABASE_URL": database_url, "BIKSHOP_REDIS_URL": ""}
    assert check_config(env=only_warnings).returncode == 0
    assert check_config("--strict", env=only_warnings).returncode == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # settings, not data
def test_check_config_names_the_bik_auth_variable_that_holds_the_problem(database_url):
    """An override's none or short secret was reported as BIKSHOP_BIK_AUTH's, which was fine."""
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    env |= {"BIKSHOP_BIK_PLACE_ORDER_AUTH": "none", "BIKSHOP_BIK_GET_ORDER_AUTH": "basic:bik:pw"}
    bik_lines = [line for line in check_config(env=env).stdout.splitlines() if "_AUTH" in line]
    assert bik_lines == [
        "ERROR   BIKSHOP_BIK_PLACE_ORDER_AUTH is none: anyone who finds the URL can place orders",
        "WARNING BIKSHOP_BIK_GET_ORDER_AUTH the basic password is shorter than 16 characters: "
        "anyone who guesses it can read every order, with its customer's phone, email and "
        "address",
    ]
    # Both endpoints on BIKSHOP_BIK_AUTH: one line, saying what both are open to.
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url, "BIKSHOP_BIK_AUTH": "none"}
    bik_lines = [line for line in check_config(env=env).stdout.splitlines() if "_AUTH" in line]
    assert bik_lines == [
        "ERROR   BIKSHOP_BIK_AUTH is none: anyone who finds the URL can place orders and read "
        "every order, with its customer's phone, email and address"
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # settings, not data
def test_check_config_explains_a_setup_the_app_refuses(database_url):
    result = flask("check-config", env={"BIKSHOP_DATABASE_URL": database_url})
    assert result.returncode == 1
    assert "ERROR   BIKSHOP_SECRET_KEY the app refuses to start" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    unreachable = {
        **SAFE,
        "BIKSHOP_DATABASE_URL": database_url,
        "BIKSHOP_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    assert (
        "ERROR   BIKSHOP_REDIS_URL does not answer" in flask("check-config", env=unreachable).stdout
    )


def test_a_database_behind_on_migrations_is_not_ready(scratch_url):
    env = {**SAFE, "BIKSHOP_DATABASE_URL": scratch_url}
    assert flask("db", "upgrade", "0002", env=env).returncode == 0
    app = create_app({**BASE_CONFIG, "DATABASE_URL": scratch_url})
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["migrations"]["current"].startswith("0002")
    assert body["migrations"]["fix"] == "run: flask --app bikshop db upgrade"
    result = flask("check-config", env=env)
    assert result.returncode == 1 and "; run: flask --app bikshop db upgrade" in result.stdout
    assert flask("db", "upgrade", env=env).returncode == 0  # the release step fixes it
    assert app.test_client().get("/readyz").status_code == 200
    # A newer release upgraded the database while this server still runs the old code (a
    # reload): upgrading again is no fix, restarting with that release is (upgrade probe).
    with app.app_context():
        db.session.execute(text("UPDATE alembic_version SET version_num = '0099_newer'"))
        db.session.commit()
    newer = app.test_client().get("/readyz").get_json()["migrations"]
    assert newer["current"] == "0099_newer"
    assert newer["fix"].startswith("the database is at 0099_newer, newer than this code: restart")
    assert "newer than this code" in flask("check-config", env=env).stdout
    from bikshop.database import dispose_engines

    with app.app_context():
        dispose_engines()


@pytest.mark.slow
def test_backup_while_serving_then_restore_gives_back_every_order(gunicorn, database_url, tmp_path):
    server = gunicorn(workers=2)
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    target = tmp_path / "bikshop.backup"
    with Load([server.url], threads=3) as load:
        threading.Event().wait(1.0)
        result = flask("backup", str(target), env=env)  # writers keep going meanwhile
    assert result.returncode == 0, result.stderr
    assert target.exists() and not Path(str(target) + ".partial").exists()
    placed = {o.answer["order"]["id"] for o in load.outcomes if o.status == 200}
    assert placed

    restored = _restore(database_url, target, tmp_path)
    engine = create_engine(restored.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        saved = set(conn.execute(text("SELECT public_id FROM orders")).scalars())
    engine.dispose()
    assert saved and saved <= placed  # a consistent snapshot: only whole, confirmed orders
    assert_no_orphans_or_duplicates(restored)
    app = create_app({**BASE_CONFIG, "DATABASE_URL": restored})
    some = sorted(saved)[0]
    answer = app.test_client().post("/bik/getOrder", json={"orderId": some})
    assert answer.status_code == 200
    assert len(answer.get_json()["order"]["items"]) == len(sample_body()["order"]["items"])
    assert flask("backup", str(target), env=env).returncode != 0  # never overwrites a backup
    from bikshop.database import dispose_engines

    with app.app_context():
        dispose_engines()
    if backend_of(restored) == "postgresql":
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{restored.rsplit("/", 1)[1]}" WITH (FORCE)')


def _restore(database_url: str, backup: Path, tmp_path: Path) -> str:
    """What the README tells the operator to do."""
    if backend_of(database_url) == "sqlite":
        restored = tmp_path / "restored.sqlite3"
        restored.write_bytes(backup.read_bytes())
        return f"sqlite:///{restored}"
    name = f"bikshop_restored_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    subprocess.run(["pg_restore", "--no-owner", "-d", url, str(backup)], check=True)
    return url


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BIKSHOP_DATABASE_URL", "garbage", "is not a database URL"),
        ("BIKSHOP_DATABASE_URL", "mysql://u@h/x", "uses mysql://, which bikshop does not support"),
        ("BIKSHOP_DATABASE_URL", "postgresql+asyncpg://u@h/x", "uses postgresql+asyncpg://"),
        ("BIKSHOP_REDIS_URL", "bogus", "must start with redis://"),
    ],
)
def test_check_config_names_an_unusable_url_without_a_traceback(variable, value, expected):
    for offline in ((), ("--offline",)):
        result = flask("check-config", *offline, env={**SAFE, variable: value})
        assert result.returncode == 1
        assert (
            f"ERROR   {variable} the app refuses to start: {variable} {expected}" in result.stdout
        )
        assert "Traceback" not in result.stdout + result.stderr


def test_check_config_on_a_fresh_sqlite_database_says_migrate_and_creates_nothing(tmp_path):
    database = tmp_path / "bikshop.sqlite3"
    env = {**SAFE, "BIKSHOP_DATABASE_URL": f"sqlite:///{database}", "BIKSHOP_REDIS_URL": ""}
    result = flask("check-config", env=env)
    assert result.returncode == 1
    assert (
        "ERROR   BIKSHOP_DATABASE_URL not migrated yet: run flask --app bikshop db upgrade"
        in result.stdout
    )
    assert not database.exists()
    assert flask("db", "upgrade", env=env).returncode == 0  # the README's next step
    assert flask("check-config", env=env).returncode == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_check_config_on_an_empty_postgresql_database_says_migrate(scratch_url):
    result = flask("check-config", env={**SAFE, "BIKSHOP_DATABASE_URL": scratch_url})
    assert result.returncode == 1
    assert "BIKSHOP_DATABASE_URL not migrated yet: run flask --app bikshop db upgrade" in (
        result.stdout
    )


def test_check_config_names_a_missing_sqlite_folder():
    env = {**SAFE, "BIKSHOP_DATABASE_URL": "sqlite:////nonexistent-bikshop-dir/db.sqlite3"}
    result = flask("check-config", env=env)
    assert result.returncode == 1
    assert (
        "ERROR   BIKSHOP_DATABASE_URL its folder /nonexistent-bikshop-dir does not exist"
        in result.stdout
    )


def test_check_config_flags_a_pdf_cache_it_cannot_write(tmp_path):
    env = {
        **SAFE,
        "BIKSHOP_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "BIKSHOP_PDF_CACHE_DIR": "/proc/nope",
    }
    result = flask("check-config", "--offline", env=env)
    assert result.returncode == 1
    assert "ERROR   BIKSHOP_PDF_CACHE_DIR /proc/nope is not writable by this user" in result.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_backup_into_a_missing_folder_says_so_in_one_line(database_url, tmp_path):
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    result = flask("backup", str(tmp_path / "nodir" / "x.sqlite3"), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: folder {tmp_path / 'nodir'} does not exist: create it first "
        f"(install -d -m 700 {tmp_path / 'nodir'})"
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_is_readable_by_its_owner_only(database_url, tmp_path):
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    target = tmp_path / "bikshop.backup"
    result = flask("backup", str(target), env=env)  # under the usual umask 022
    assert result.returncode == 0, result.stderr
    assert target.stat().st_mode & 0o777 == 0o600


def _unreachable_postgresql(password: str) -> str:
    from tests.servers import free_port

    return f"postgresql://bikshop:{password}@127.0.0.1:{free_port()}/bikshop"


@pytest.mark.parametrize(
    "url, reason",
    [
        pytest.param("down", "Connection refused", id="postgresql-down"),
        pytest.param(
            PG_ADMIN_URL.rsplit("/", 1)[0] + "/bikshop_no_such_database",
            'database "bikshop_no_such_database" does not exist',
            id="unknown-database",
        ),
    ],
)
def test_db_upgrade_and_check_config_say_why_the_database_refused_in_one_line(url, reason):
    """PostgreSQL down when the unit's db upgrade runs (or a wrong name): one line saying
    why, not 150 lines of traceback in the journal; the password never shown."""
    if url == "down":  # made here: a port free now, and the same test ids on every xdist worker
        url = _unreachable_postgresql("pw-" + secrets.token_hex(8))
    env = {**SAFE, "BIKSHOP_DATABASE_URL": url}
    upgrade = flask("db", "upgrade", env=env)
    assert upgrade.returncode == 1
    output = upgrade.stdout + upgrade.stderr
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "BIKSHOP_DATABASE_URL" in line]
    assert reason in line and line.startswith("Error: BIKSHOP_DATABASE_URL")  # as every command
    checked = flask("check-config", env=env)
    assert checked.returncode == 1
    (finding,) = [line for line in checked.stdout.splitlines() if "BIKSHOP_DATABASE_URL" in line]
    assert reason in finding
    password = url.split("@")[0].rsplit(":", 1)[-1]
    if password.startswith("pw-"):
        assert password not in output + checked.stdout + checked.stderr


IN_MEMORY = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "sqlite:///file::memory:?cache=shared&uri=true",
    "sqlite:///file:orders?mode=memory&cache=shared&uri=true",
]


@pytest.mark.parametrize("offline", [[], ["--offline"]])
@pytest.mark.parametrize("url", IN_MEMORY)
def test_check_config_refuses_an_in_memory_sqlite_database(url, offline):
    """``sqlite:///`` (a path left out) is SQLite's in-memory database: each worker would serve
    its own empty database, lost at every restart. Seen without connecting, so the production
    steps' first ``check-config --offline`` finds it."""
    checked = flask("check-config", *offline, env={**SAFE, "BIKSHOP_DATABASE_URL": url})
    assert checked.returncode == 1
    (line,) = [line for line in checked.stdout.splitlines() if "BIKSHOP_DATABASE_URL" in line]
    assert line.startswith("ERROR   BIKSHOP_DATABASE_URL is an in-memory SQLite database")


@pytest.mark.parametrize("url", IN_MEMORY)
def test_db_upgrade_refuses_an_in_memory_sqlite_database(url):
    """The release step migrated a database that vanished as the command exited, and said
    nothing but success (exit 0): the same one line as check-config's, and exit 1."""
    upgrade = flask("db", "upgrade", env={**SAFE, "BIKSHOP_DATABASE_URL": url})
    assert upgrade.returncode == 1
    output = upgrade.stdout + upgrade.stderr
    assert "Traceback" not in output and "Running upgrade" not in output
    (line,) = [line for line in output.splitlines() if "BIKSHOP_DATABASE_URL" in line]
    assert line.startswith("Error: BIKSHOP_DATABASE_URL is an in-memory SQLite database"), line


# Root as a service user would run: without the capabilities that let root read and write any
# file whatever its owner and mode, so that another user's file mode 600 is closed to it. The
# tests run as root, whose own python (under /root) another user could not even start.
NO_FILE_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
NOBODY = 65534  # stands for the bikshop user, who owns the app and its instance folder


@pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user: needs root")
def test_sqlite_files_this_user_cannot_open_are_named_with_their_owner_mode_and_the_fix(tmp_path):
    """db upgrade run as root made the SQLite file root's, mode 600; then, as the service user,
    check-config said only "unable to open database file", and db upgrade exited 1, so the unit
    restarted every 2 s for ever (self-hoster probe). Now root is warned as it makes the file;
    each file the user cannot open is named with its owner and mode, with the user and the
    chown that fixes them, and the unit's db upgrade and the other commands exit 3."""
    folder = tmp_path / "instance"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    path = folder / "bikshop.sqlite3"
    env = {**SAFE, "BIKSHOP_DATABASE_URL": f"sqlite:///{path}"}

    upgrade = flask("db", "upgrade", env=env)  # as root, where the service user's files are
    assert upgrade.returncode == 0, upgrade.stderr
    assert (path.stat().st_uid, oct(path.stat().st_mode & 0o777)) == (0, "0o600")
    warnings = [line for line in upgrade.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"bikshop: warning: running as root on a SQLite database in {folder}, which is "
        "nobody's: what this creates there is root's, mode 600, and bikshop's service cannot "
        "open it; run bikshop's commands as nobody (sudo -E -u nobody …)"
    ]

    # The other way round, as the service user meets it: the files are another user's (here
    # nobody's, root standing in for the service user), a stale -shm with them.
    shm = folder / "bikshop.sqlite3-shm"
    shm.touch(mode=0o600)
    for name in (path, shm):
        os.chown(name, NOBODY, NOBODY)
    fix = (
        f"bikshop runs here as root, which cannot read and write {folder} (owner nobody, mode "
        f"755), {path} (owner nobody, mode 600), {shm} (owner nobody, mode 600); as root, run: "
        f"chown root:root {folder} {path} {shm}"
    )
    upgrade = flask("db", "upgrade", env=env, prefix=NO_FILE_OVERRIDE)
    assert upgrade.returncode == 3, upgrade.stderr  # RestartPreventExitStatus=3: no loop
    assert upgrade.stderr.splitlines()[-1] == (
        "Error: BIKSHOP_DATABASE_URL: cannot use the database: unable to open database file "
        f"(OperationalError): {fix}"
    )
    checked = flask("check-config", "--offline", env=env, prefix=NO_FILE_OVERRIDE)
    assert checked.returncode == 0, checked.stdout  # settings only: it does not open the file
    checked = flask("check-config", env=env, prefix=NO_FILE_OVERRIDE)
    (finding,) = [line for line in checked.stdout.splitlines() if "DATABASE_URL" in line]
    assert finding == (
        "ERROR   BIKSHOP_DATABASE_URL cannot read the schema: unable to open database file "
        f"(OperationalError): {fix}"
    )
    listed = flask("list-admins", env=env, prefix=NO_FILE_OVERRIDE)
    assert listed.returncode == 3
    assert listed.stderr.splitlines()[-1] == (  # after the warning: root, in nobody's folder
        "Error: list-admins stopped: the database at BIKSHOP_DATABASE_URL refused: unable to "
        f"open database file (OperationalError): {fix}"
    )
    backup = flask("backup", str(tmp_path / "nightly.sqlite3"), env=env, prefix=NO_FILE_OVERRIDE)
    assert backup.returncode == 3 and "Traceback" not in backup.stderr  # it was one
    assert backup.stderr.splitlines()[-1] == (
        f"Error: backup failed: unable to open database file: {fix}"
    )


def test_backup_into_a_full_folder_says_so_in_one_line(database_url, tmp_path):
    """/var/backups out of space (here out of inodes: no new file can be made at all)."""
    folder = tmp_path / "full"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=4", "tmpfs", str(folder)])
    try:
        for number in range(10):
            try:
                (folder / f"filler{number}").touch()
            except OSError:
                break
        env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
        result = flask("backup", str(folder / "nightly.backup"), env=env)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"Error: backup failed: cannot write {folder / 'nightly.backup.partial'}: "
            "No space left on device"
        ]
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_skip_numbers_moves_order_and_invoice_numbers_past_those_given_out(make_app):
    """After a restore the counters are the backup's: orders placed since (known to Bik as
    ORD-1002 …) would have their numbers reused. skip-numbers moves every counter on."""
    app = make_app(STORE_GSTIN="29AABCG1234K1ZO", STORE_ADDRESS="12 MG Road, Bengaluru")
    client = app.test_client()
    runner = app.test_cli_runner()
    empty = runner.invoke(args=["skip-numbers"])
    assert empty.exit_code == 0 and "nothing numbered yet" in empty.output
    first = client.post("/bik/placeOrder", json=sample_body()).get_json()["order"]
    assert first["id"] == "ORD-1001"
    invoice = urlsplit(first["invoiceUrl"]).path
    assert client.get(invoice).status_code == 200  # issues tax invoice 1
    result = runner.invoke(args=["skip-numbers", "--by", "500"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "skip-numbers: the next invoice number is 502",
        "skip-numbers: the next order number is 1502",
    ]
    second = client.post("/bik/placeOrder", json=sample_body()).get_json()["order"]
    assert second["id"] == "ORD-1502"
    page = client.get(urlsplit(second["invoiceUrl"]).path).get_data(as_text=True)
    assert "INV-00502" in page
    assert runner.invoke(args=["skip-numbers", "--by", "0"]).exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["skip-numbers"],
        ["reconcile-payments"],
        ["list-admins"],
        ["create-admin", "owner@example.com", "--password-stdin"],
        ["set-admin-password", "owner@example.com", "--password-stdin"],
        ["disable-admin", "owner@example.com"],
        ["prune"],
        ["forget-customer", "--phone", "9876543210", "--yes"],
        ["export-customer", "--email", "buyer@example.com"],
    ],
    ids=lambda args: args[0],
)
def test_every_database_command_says_why_the_database_refused_in_one_line(args):
    """PostgreSQL down: skip-numbers (a restore step), reconcile-payments (cron) and the
    account commands stopped with 150 lines of traceback (operations probe); one line naming
    BIKSHOP_DATABASE_URL and why, exit 1, the password never shown."""
    password = "pw-" + secrets.token_hex(8)
    env = {**SAFE, "BIKSHOP_DATABASE_URL": _unreachable_postgresql(password)}
    result = flask(*args, env=env, stdin="a-long-enough-password-1\n")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and password not in output
    (line,) = [line for line in output.splitlines() if "Connection refused" in line]
    assert line.startswith(f"Error: {args[0]} stopped"), line
    assert "BIKSHOP_DATABASE_URL" in line or args[0] == "prune"  # prune says what it deleted


@pytest.mark.parametrize(
    ("settings", "variable", "says"),
    [
        # The env example's PUBLIC_URL changed, its TRUSTED_HOSTS left: every Bik call a 400.
        (
            {"BIKSHOP_PUBLIC_URL": "https://myshop.in"},
            "BIKSHOP_TRUSTED_HOSTS",
            "does not hold myshop.in, BIKSHOP_PUBLIC_URL's host",
        ),
        (
            {
                "BIKSHOP_PUBLIC_URL": "https://shop.example.com",
                "BIKSHOP_TRUSTED_HOSTS": ".example.com",
            },
            "BIKSHOP_PUBLIC_URL",
            "is still the example's (shop.example.com)",
        ),
    ],
)
def test_check_config_finds_a_public_url_no_request_can_reach(settings, variable, says):
    """Both passed check-config (README probe): invoiceUrl pointing at the example's host, or a
    host the trusted-hosts list refuses, so that every request to it is a 400."""
    result = flask("check-config", "--offline", env={**SAFE, **settings})
    assert result.returncode == 1
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert line.startswith(f"ERROR   {variable} {says}"), result.stdout
    trusted = {**SAFE, "BIKSHOP_PUBLIC_URL": "https://a.glow-naturals.in:8443",
               "BIKSHOP_TRUSTED_HOSTS": ".glow-naturals.in"}  # fmt: skip
    assert flask("check-config", "--offline", env=trusted).returncode == 0


@pytest.fixture
def emptied_after(make_app):
    """The session's database emptied again after the test, pass or fail: the tests after it
    on that database must not see what it stored."""
    yield
    make_app()


def test_check_config_names_a_webhook_secret_razorpays_deliveries_fail(
    make_app, database_url, emptied_after
):
    """A mistyped webhook secret passed check-config (self-hoster probe): Razorpay-shaped
    deliveries refused for their signature, none accepted since, are a warning naming it."""
    from tests.fake_razorpay import FakeRazorpay, sign

    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    app = make_app(RAZORPAY_WEBHOOK_SECRET=SAFE["BIKSHOP_RAZORPAY_WEBHOOK_SECRET"])
    assert "WEBHOOK_SECRET" not in check_config(env=env).stdout
    raw, headers = FakeRazorpay().event("payment_link.paid", payment_link={"id": "plink_X1"})
    headers["X-Razorpay-Signature"] = sign("the secret Razorpay has", raw)
    assert (
        app.test_client().post("/webhooks/razorpay", data=raw, headers=headers).status_code == 400
    )
    result = check_config(env=env)
    # A warning, hedged: the deliveries are unsigned, so anyone could have sent them.
    assert result.returncode == 0
    assert (
        "WARNING BIKSHOP_RAZORPAY_WEBHOOK_SECRET refused 1 webhook delivery shaped like "
        "Razorpay's since"
    ) in result.stdout
    assert "if they came from Razorpay" in result.stdout
    assert check_config("--strict", env=env).returncode == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # settings, not data
def test_check_config_asks_razorpay_whether_it_takes_the_keys(make_app, database_url, razorpay):
    """A key secret mistyped by one character passed check-config, and the first customer's
    Pay was refused (self-hoster probe). Razorpay is asked, with a call that changes nothing."""
    make_app()  # the database migrated and empty (no refused webhook of another test in it)
    env = {**SAFE, "BIKSHOP_DATABASE_URL": database_url}
    mistyped = {**env, "BIKSHOP_RAZORPAY_KEY_SECRET": SAFE["BIKSHOP_RAZORPAY_KEY_SECRET"] + "x"}
    result = check_config(env=mistyped)
    assert result.returncode == 1
    assert "ERROR   BIKSHOP_RAZORPAY_KEY_SECRET Razorpay refused the keys" in result.stdout
    assert "The api key provided is invalid" in result.stdout
    assert mistyped["BIKSHOP_RAZORPAY_KEY_SECRET"] not in result.stdout
    assert [call[:2] for call in razorpay.calls[-1:]] == [("GET", "/v1/payment_links")]
    razorpay.stop()
    try:
        down = check_config(env=env)
    finally:
        razorpay.start()  # on the same port
    assert down.returncode == 0  # a warning: Razorpay's outage is not the settings' fault
    assert "WARNING BIKSHOP_RAZORPAY_API_URL Razorpay could not be asked" in down.stdout
    assert check_config("--strict", env=env).returncode == 0


@pytest.mark.parametrize(
    ("password", "driver_says", "shown"),
    [
        ("x", 'role "probe_nouser" does not exist', 'role "probe_nouser" does not exist'),
        (
            "s3cret",
            "password s3cret rejected for bikshop",
            "password [secret] rejected for bikshop",
        ),
        ("s3cret", 'database "s3cretshop" missing', 'database "s3cretshop" missing'),
    ],
)
def test_a_database_error_line_masks_the_password_whole_and_nothing_else(
    password, driver_says, shown
):
    """The password is never shown; a short one no longer masks its letters inside other
    words (self-hoster probe: a password "x" gave 'role "…" does not e[secret]ist')."""
    from bikshop.ops import database_error_line

    url = f"postgresql+psycopg://bikshop:{password}@127.0.0.1/bikshop"
    line = database_error_line(RuntimeError(driver_says), url, migrating=True)
    assert line == f"{shown} (RuntimeError)"
