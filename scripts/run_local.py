"""`make run`: first-run setup (secrets, database), then gunicorn on BIKSHOP_BIND (127.0.0.1:8000).

Settings live in instance/bikshop.env (created once with random credentials); edit it, or
set BIKSHOP_* in the environment, which wins over the file.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bikshop.config import (  # noqa: E402 (bikshop from this checkout)
    ConfigError,
    NoURLKnown,
    bind_address,
    whole_number,
)
from bikshop.config import base_url as configured_base_url  # noqa: E402

ENV_FILE = ROOT / "instance" / "bikshop.env"


def ensure_env_file() -> None:
    if ENV_FILE.exists():
        return
    ENV_FILE.parent.mkdir(exist_ok=True)
    ENV_FILE.write_text(
        "# bikshop settings for this machine (see README: Configuration). Keep this file private.\n"
        "BIKSHOP_ENV=production\n"
        f"BIKSHOP_SECRET_KEY={secrets.token_urlsafe(48)}\n"
        f"BIKSHOP_BIK_AUTH=bearer:{secrets.token_urlsafe(32)}\n"
        "# Local http: allow the admin session cookie without https. Remove behind https.\n"
        "BIKSHOP_INSECURE_COOKIES=1\n"
    )
    ENV_FILE.chmod(0o600)


class SettingsFileError(Exception):
    """The settings file does not read cleanly in a shell."""


# What a shell sets or exports by itself, not the file: left out of what the file sets.
_SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}


def load_env_file() -> dict[str, str]:
    """The file's settings under the environment's own BIKSHOP_* values, read by a shell
    exactly as the README's ``set -a; . instance/bikshop.env`` reads it for the ``flask``
    commands (quotes, ``$``, comments and all): the server and those commands never see two
    different values, such as a password with a ``$`` that the shell expands. A line the
    shell cannot read stops ``make run`` with the shell's own message."""
    outside = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    with subprocess.Popen(
        ["sh", "-c", 'set -a; . "$1" && exec env -0', "sh", str(ENV_FILE)],
        env=outside,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as shell:
        out, err = shell.communicate()
    said = err.decode(errors="replace").strip()
    if shell.returncode != 0 or said:
        first = (
            said.splitlines()[0] if said else f"the shell stopped reading it ({shell.returncode})"
        )
        shown = ENV_FILE.relative_to(ROOT) if ENV_FILE.is_relative_to(ROOT) else ENV_FILE
        raise SettingsFileError(
            f"{shown} does not read cleanly as the shell reads it (set -a; . {shown}): "
            f"{first}. Put a value with spaces, $, `, \\, quotes or # in single quotes, e.g. "
            "BIKSHOP_STORE_NAME='Glow Naturals'"
        )
    listed = out.decode(errors="surrogateescape")  # as os.environ decodes the same bytes
    read = dict(entry.split("=", 1) for entry in listed.split("\0") if "=" in entry)
    from_file = {k: v for k, v in read.items() if k not in _SHELL_OWN and outside.get(k) != v}
    return {**from_file, **{k: v for k, v in os.environ.items() if k.startswith("BIKSHOP_")}}


def base_url(env: dict[str, str]) -> str | None:
    """Where this server is reached: BIKSHOP_PUBLIC_URL, else the address gunicorn binds
    (``bikshop.config.base_url``); None when no URL names it (a unix socket), and bik-setup
    then says so itself."""
    try:
        return configured_base_url(env.get("BIKSHOP_PUBLIC_URL"), env.get("BIKSHOP_BIND"))
    except NoURLKnown:
        return None


def dashboard_line(base: str | None, flask: Path) -> str:
    """Where the dashboard is, and the README's command that makes its first account, with
    the settings loaded as the README loads them (run from the checkout)."""
    shown = ENV_FILE.relative_to(ROOT) if ENV_FILE.is_relative_to(ROOT) else ENV_FILE
    flask = flask.relative_to(ROOT) if flask.is_relative_to(ROOT) else flask
    where = f"{base}/admin/" if base else "/admin/ at your proxy's address"
    return (
        f"Dashboard: {where} (its first account, in another shell here: "
        f"set -a; . {shown}; set +a; {flask} --app bikshop create-admin you@yourshop.com)"
    )


def port_in_use(bind: str) -> bool:
    """True when another program already listens on ``bind`` (host:port)."""
    host, _, port = bind.rpartition(":")
    if not port.isdigit() or bind.startswith(("unix:", "fd://")):
        return False  # gunicorn reports anything else itself
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: a listener only
        try:
            probe.bind((host.strip("[]") or "0.0.0.0", int(port)))  # noqa: S104
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def main() -> int:
    os.umask(0o077)  # the database, its backups and the PDF cache: readable by you only
    ensure_env_file()
    try:
        env = {**os.environ, **load_env_file()}
    except SettingsFileError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    try:
        bind = bind_address(env.get("BIKSHOP_BIND"))  # as gunicorn.conf.py reads them
        for name in ("WORKERS", "TIMEOUT", "MAX_REQUESTS"):  # before any credentials are shown
            if env.get(f"BIKSHOP_{name}"):
                whole_number(name, env[f"BIKSHOP_{name}"])
    except ConfigError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    if port_in_use(bind):
        print(
            f"make run: {bind} is already in use by another program; stop it, or choose "
            "another address, e.g. BIKSHOP_BIND=127.0.0.1:8101 make run",
            file=sys.stderr,
        )
        return 1
    bin_dir = Path(sys.executable).parent
    flask = [str(bin_dir / "flask"), "--app", "bikshop"]
    base = base_url(env)
    steps = [
        [*flask, "db", "upgrade"],
        [*flask, "bik-setup", *(["--base-url", base] if base else [])],
    ]
    for step in steps:
        result = subprocess.run(step, cwd=ROOT, env=env)
        if result.returncode:
            return result.returncode
    print(dashboard_line(base, bin_dir / "flask"))
    gunicorn = [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
    os.chdir(ROOT)
    os.execve(gunicorn[0], gunicorn, env)  # noqa: S606 (replace this process: Ctrl-C stops gunicorn)


if __name__ == "__main__":
    sys.exit(main())
