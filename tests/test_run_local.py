"""`make run` (scripts/run_local.py): the URLs it prints, the file it reads, a busy port."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess

import pytest

from tests.servers import ROOT

spec = importlib.util.spec_from_file_location("run_local", ROOT / "scripts" / "run_local.py")
run_local = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_local)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"BIKSHOP_BIND": "127.0.0.1:8101"}, "http://127.0.0.1:8101"),
        ({"BIKSHOP_BIND": "0.0.0.0:8102"}, "http://127.0.0.1:8102"),
        ({"BIKSHOP_BIND": "[::]:8103"}, "http://[::1]:8103"),
        ({"BIKSHOP_BIND": "[::1]:8104"}, "http://[::1]:8104"),
        ({"BIKSHOP_BIND": "127.0.0.1:08105"}, "http://127.0.0.1:8105"),
        (
            {"BIKSHOP_BIND": "127.0.0.1:8101", "BIKSHOP_PUBLIC_URL": "https://shop.example.com/"},
            "https://shop.example.com",
        ),
    ],
)
def test_bik_setup_is_shown_the_address_the_server_answers_on(env, expected):
    assert run_local.base_url(env) == expected


@pytest.mark.parametrize("bind", ["[:]:80", "[::g]:8101", "[127.0.0.1]:8101"])
def test_a_bracketed_host_that_is_no_ipv6_address_is_refused(bind):
    with pytest.raises(run_local.ConfigError, match="BIKSHOP_BIND must be host:port"):
        run_local.bind_address(bind)


@pytest.mark.parametrize("bind", ["unix:/run/bikshop.sock", "fd://3"])
def test_on_a_socket_no_url_is_made_up(bind):
    assert run_local.base_url({"BIKSHOP_BIND": bind}) is None
    assert (
        run_local.base_url({"BIKSHOP_BIND": bind, "BIKSHOP_PUBLIC_URL": "https://shop.example.com"})
        == "https://shop.example.com"
    )


@pytest.mark.parametrize(
    ("env", "bik_setup"),
    [
        ({}, ["bik-setup", "--base-url", "http://127.0.0.1:8000"]),
        # No address to pass: bik-setup reads the same settings and says no URL is known.
        ({"BIKSHOP_BIND": "unix:/tmp/bikshop-test.sock"}, ["bik-setup"]),
    ],
)
def test_make_run_passes_bik_setup_the_address_only_when_one_is_known(
    tmp_path, monkeypatch, env, bik_setup
):
    monkeypatch.setattr(run_local, "ENV_FILE", tmp_path / "bikshop.env")
    for name in [n for n in run_local.os.environ if n.startswith("BIKSHOP_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(run_local.os, "umask", lambda mask: 0)  # the test process keeps its own
    ran = []

    class Done:
        returncode = 0

    monkeypatch.setattr(run_local.subprocess, "run", lambda step, **k: ran.append(step) or Done)
    monkeypatch.setattr(run_local.os, "execve", lambda *a: ran.append(["gunicorn"]))
    monkeypatch.setattr(run_local.os, "chdir", lambda path: None)
    monkeypatch.setattr(run_local, "port_in_use", lambda bind: False)  # others' :8000 aside
    run_local.main()
    assert [step[3:] for step in ran[:2]] == [["db", "upgrade"], bik_setup]
    assert ran[2] == ["gunicorn"]


@pytest.mark.parametrize(
    ("base", "where"),
    [
        ("http://127.0.0.1:8101", "http://127.0.0.1:8101/admin/"),
        (None, "/admin/ at your proxy's address"),  # a unix socket: no URL is known
    ],
)
def test_make_run_says_where_the_dashboard_is_and_how_to_make_its_first_account(
    tmp_path, monkeypatch, capsys, base, where
):
    """It printed Bik's URLs and credentials, and nothing of the dashboard (self-hoster probe):
    now its address, and the README's create-admin with the settings loaded, in one line."""
    monkeypatch.setattr(run_local, "ENV_FILE", run_local.ROOT / "instance" / "bikshop.env")
    monkeypatch.setattr(run_local, "ensure_env_file", lambda: None)
    monkeypatch.setattr(run_local, "load_env_file", lambda: {})
    monkeypatch.setattr(run_local, "base_url", lambda env: base)
    monkeypatch.setattr(run_local.os, "umask", lambda mask: 0)  # the test process keeps its own
    monkeypatch.setattr(run_local, "port_in_use", lambda bind: False)

    class Done:
        returncode = 0

    monkeypatch.setattr(run_local.subprocess, "run", lambda step, **k: Done)
    monkeypatch.setattr(run_local.os, "execve", lambda *a: None)
    monkeypatch.setattr(run_local.os, "chdir", lambda path: None)
    flask = run_local.Path(run_local.sys.executable).parent / "flask"
    shown = flask.relative_to(run_local.ROOT) if flask.is_relative_to(run_local.ROOT) else flask
    run_local.main()
    (line,) = capsys.readouterr().out.splitlines()
    assert line == (
        f"Dashboard: {where} (its first account, in another shell here: set -a; "
        f". instance/bikshop.env; set +a; {shown} --app bikshop create-admin you@yourshop.com)"
    )
    readme = (run_local.ROOT / "README.md").read_text()
    assert "flask --app bikshop create-admin you@yourshop.com " in readme  # the README's own


def test_the_settings_file_reads_as_the_shell_reads_it(tmp_path, monkeypatch):
    """make run serves with the values the README's ``set -a; . instance/bikshop.env`` gives
    the flask commands: a password with a ``$`` (expanded), a comment after a quoted value."""
    env_file = tmp_path / "bikshop.env"
    env_file.write_text(
        "# comment\n"
        'BIKSHOP_STORE_NAME="Glow Naturals"\n'
        "BIKSHOP_BIND=127.0.0.1:8103\n"
        "BIKSHOP_BIK_AUTH=basic:bik:s3cret$pass\n"
        "BIKSHOP_STORE_ADDRESS='12 MG Road' # the shop\n"
        "BIKSHOP_SUPPORT_EMAIL='help@glow.example'\n"
    )
    monkeypatch.setattr(run_local, "ENV_FILE", env_file)
    for name in list(os.environ):
        if name.startswith("BIKSHOP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BIKSHOP_SUPPORT_EMAIL", "owner@glow.example")  # the environment wins
    settings = run_local.load_env_file()
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "{env_file}"; printf %s "$BIKSHOP_BIK_AUTH"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert settings["BIKSHOP_BIK_AUTH"] == shell == "basic:bik:s3cret"
    assert settings["BIKSHOP_STORE_NAME"] == "Glow Naturals"
    assert settings["BIKSHOP_STORE_ADDRESS"] == "12 MG Road"
    assert settings["BIKSHOP_BIND"] == "127.0.0.1:8103"
    assert settings["BIKSHOP_SUPPORT_EMAIL"] == "owner@glow.example"
    assert not {"PWD", "SHLVL", "_", "PATH"} & set(settings)  # the shell's own, not the file's


def test_a_settings_line_the_shell_cannot_read_stops_make_run_with_its_message(
    tmp_path, monkeypatch, capsys
):
    env_file = tmp_path / "bikshop.env"
    env_file.write_text("BIKSHOP_STORE_NAME=Glow Naturals\n")  # the shell runs "Naturals"
    monkeypatch.setattr(run_local, "ENV_FILE", env_file)
    monkeypatch.setattr(run_local.os, "umask", lambda mask: 0)  # the test process keeps its own
    monkeypatch.setattr(run_local.os, "execve", lambda *a: pytest.fail("gunicorn started"))

    assert run_local.main() == 1

    said = capsys.readouterr().err.strip()
    assert "\n" not in said and said.startswith(f"make run: {env_file} does not read cleanly")
    assert "Naturals" in said and "BIKSHOP_STORE_NAME='Glow Naturals'" in said


def test_a_busy_port_is_noticed_before_anything_starts():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert run_local.port_in_use(f"127.0.0.1:{port}")
    assert not run_local.port_in_use(f"127.0.0.1:{port}")


def test_a_bad_gunicorn_setting_stops_before_migrating_or_showing_credentials(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(run_local, "ENV_FILE", tmp_path / "bikshop.env")
    monkeypatch.setenv("BIKSHOP_WORKERS", "-1")
    monkeypatch.setattr(run_local.os, "umask", lambda mask: 0)  # the test process keeps its own
    ran = []
    monkeypatch.setattr(run_local.subprocess, "run", lambda *a, **k: ran.append(a))
    assert run_local.main() == 1
    assert ran == []  # neither db upgrade nor bik-setup (which prints the credentials)
    err = capsys.readouterr().err
    assert err.startswith("make run: BIKSHOP_WORKERS must be a whole number from 1 to 1024")
