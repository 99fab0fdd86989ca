"""`make run`: first-run setup (secrets, database), then gunicorn on 127.0.0.1:8000.

Settings live in instance/bikshop.env (created once with random credentials); edit it, or
set BIKSHOP_* in the environment, which wins over the file.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def load_env_file() -> dict[str, str]:
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return {**env, **{k: v for k, v in os.environ.items() if k.startswith("BIKSHOP_")}}


def main() -> int:
    ensure_env_file()
    env = {**os.environ, **load_env_file()}
    bin_dir = Path(sys.executable).parent
    flask = [str(bin_dir / "flask"), "--app", "bikshop"]
    steps = [
        [*flask, "db", "upgrade"],
        [*flask, "bik-setup", "--base-url", "http://127.0.0.1:8000"],
    ]
    for step in steps:
        result = subprocess.run(step, cwd=ROOT, env=env)
        if result.returncode:
            return result.returncode
    gunicorn = [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
    os.chdir(ROOT)
    os.execve(gunicorn[0], gunicorn, env)  # noqa: S606 (replace this process: Ctrl-C stops gunicorn)


if __name__ == "__main__":
    sys.exit(main())
