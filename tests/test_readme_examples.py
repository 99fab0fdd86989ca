"""The README's curl examples, run as written against a live server: what a brand's developer
pastes first must do what the README shows."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

from tests.servers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE_BASE = "https://shop.example.com"


def _blocks(section: str) -> list[tuple[str, str]]:
    """The fenced code blocks of the README section headed ``section``: (language, text)."""
    start = README.index(f"\n### {section}\n")
    end = README.index("\n#", start + 1)
    return re.findall(r"```(\w+)\n(.*?)```", README[start:end], re.S)


def _run(command: str, base: str) -> dict:
    """One README curl command, as written, but sent to ``base`` instead of the example host."""
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "curl", command
    args = [arg.replace(EXAMPLE_BASE, base) for arg in args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_curl_examples_answer_what_the_readme_shows(gunicorn):
    (_, place), (_, shown), (_, get) = _blocks("Trying the endpoints with curl")
    token = re.search(r"Authorization: Bearer (\S+?)'", place).group(1)
    server = gunicorn(
        workers=1, env={"BIKSHOP_BIK_AUTH": f"bearer:{token}", "BIKSHOP_PUBLIC_URL": EXAMPLE_BASE}
    )
    placed = _run(place, server.url)
    expected = json.loads(shown)
    # Only what differs per order: the invoice link's random token, and the time it was placed.
    for key, pattern in (
        ("invoiceUrl", rf"{EXAMPLE_BASE}/invoice/[A-Za-z0-9_-]{{32}}"),
        ("createdAt", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"),
    ):
        assert re.fullmatch(pattern, placed["order"].pop(key)), key
        expected["order"].pop(key)
    assert placed == expected
    again = _run(get, server.url)
    assert again["order"]["id"] == expected["order"]["id"] == "ORD-1001"
    again["order"].pop("invoiceUrl"), again["order"].pop("createdAt")
    assert again == expected
