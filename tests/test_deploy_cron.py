"""deploy/bikshop.cron, installed as /etc/cron.d/bikshop: every line one cron reads, every job
the one the README lists under Scheduled jobs, and each job run as cron runs it (/bin/sh, cron's
PATH, the settings file loaded) doing what the README says."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import migrated_database
from tests.servers import ROOT

CRON = ROOT / "deploy" / "bikshop.cron"
README = (ROOT / "README.md").read_text(encoding="utf-8")
USERS = {"root", "bikshop"}
# What a job that needs the settings runs before its flask command (root reads the settings).
AS_BIKSHOP = (
    "cd /srv/bikshop/app && set -a && . /etc/bikshop/bikshop.env && "
    "sudo -E -u bikshop /srv/bikshop/venv/bin/"
)
# minute, hour, day of month, month, day of week: what each field may hold.
FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _jobs() -> list[tuple[list[str], str, str]]:
    """Each job line of the file: (its five time fields, its user, its command as written)."""
    jobs = []
    for line in CRON.read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Z_]+=\S*", line):
            continue
        *when, user, command = line.split(maxsplit=6)
        jobs.append((when, user, command))
    return jobs


def _field_ok(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if match is None:
            return False
        numbers = [int(n) for n in match.group(2, 3) if n is not None]
        if any(not low <= n <= high for n in numbers) or match.group(4) == "0":
            return False
    return True


def _as_cron_runs_it(command: str) -> str:
    """cron ends the command at a bare % and passes the rest as its input; \\% is a %."""
    return command.replace("\\%", "%")


def test_every_line_is_a_comment_a_variable_or_a_job_of_six_fields_and_a_command():
    text = CRON.read_text()
    assert text.endswith("\n")  # cron ignores a last line without one
    assert re.search(r"^SHELL=/bin/sh$", text, re.M)
    jobs = _jobs()
    assert len(jobs) == 5
    for when, user, command in jobs:
        assert len(when) == 5, when
        assert all(_field_ok(field, *FIELDS[i]) for i, field in enumerate(when)), when
        assert user in USERS, user
        assert "%" not in command.replace("\\%", ""), command  # a bare % would cut it short


def test_each_job_is_a_command_sh_can_read():
    """cron runs each line with /bin/sh (dash on Debian), not bash."""
    for _, _, command in _jobs():
        done = subprocess.run(
            ["/bin/sh", "-n", "-c", _as_cron_runs_it(command)], capture_output=True, text=True
        )
        assert (done.returncode, done.stderr) == (0, ""), command


def _readme_table() -> list[tuple[str, str]]:
    """The README's Scheduled jobs table: (when, command) per row."""
    start = README.index("\n### Scheduled jobs\n")
    section = README[start : README.index("\n### ", start + 1)]
    rows = re.findall(r"^\| ([^|]+?) \| `([^`]+)` \|", section, re.M)
    assert rows
    return rows


def _when(fields: list[str]) -> str:
    minute, hour, *rest = fields
    assert rest == ["*", "*", "*"]
    if minute.startswith("*/") and hour == "*":
        return f"every {minute[2:]} minutes"
    return f"{int(hour):02}:{int(minute):02}"


def test_the_file_runs_the_jobs_the_readme_lists_at_the_times_it_says():
    listed = []
    for when, user, command in _jobs():
        command = _as_cron_runs_it(command)
        if command.startswith(AS_BIKSHOP):
            # The settings are root's to read (mode 600); the command runs as bikshop.
            assert user == "root"
            command = command.removeprefix(AS_BIKSHOP)
            assert command.startswith("flask --app bikshop ")
            # Quiet on success (cron mails what a job prints); an error still reaches stderr.
            assert command.endswith(" >/dev/null"), command
            command = command.removesuffix(" >/dev/null")
        else:
            assert user == "bikshop" and "/etc/bikshop" not in command
        listed.append((_when(when), command))
    assert listed == _readme_table()


def _days_old(path: Path, days: int) -> Path:
    path.write_bytes(b"x")
    then = time.time() - days * 86400
    os.utime(path, (then, then))
    return path


def test_each_job_run_as_cron_runs_it_does_its_work(tmp_path):
    """The lines themselves, paths moved into tmp_path, run by /bin/sh with cron's PATH: the
    settings load, \\% is a %, the flask commands succeed, the find jobs delete only the old."""
    backups, pdfs = tmp_path / "backups", tmp_path / "invoice-pdfs"
    backups.mkdir(mode=0o700)
    pdfs.mkdir()
    old_backup, new_backup = _days_old(backups / "before-x.backup", 36), backups / "keep.dump"
    new_backup.write_bytes(b"x")
    old_pdf, new_pdf = _days_old(pdfs / "old.pdf", 91), _days_old(pdfs / "new.pdf", 89)
    settings = tmp_path / "bikshop.env"
    with migrated_database("sqlite", tmp_path) as url:
        settings.write_text(
            "BIKSHOP_SECRET_KEY='cron-secret-key-0123456789-abcdefghij'\n"
            "BIKSHOP_BIK_AUTH=none\n"
            f"BIKSHOP_DATABASE_URL={url}\n"
        )
        moved = {
            "/srv/bikshop/app/instance/invoice-pdfs": str(pdfs),
            "/srv/bikshop/app": str(ROOT),
            "/etc/bikshop/bikshop.env": str(settings),
            "sudo -E -u bikshop ": "",
            "/srv/bikshop/venv/bin/": f"{Path(sys.executable).parent}/",
            "/var/backups/bikshop": str(backups),
        }
        for _, _, command in _jobs():
            command = _as_cron_runs_it(command)
            for path, here in moved.items():
                command = command.replace(path, here)
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=tmp_path,
                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr, done.stderr
    today = datetime.date.today().isoformat()
    assert (backups / f"{today}.sqlite3").is_file()  # the backup, named with the date
    assert not old_backup.exists() and new_backup.exists()
    assert not old_pdf.exists() and new_pdf.exists()
