"""deploy/bikshop.env.example loads as the README loads it, and production refuses it unedited."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from bikshop import ConfigError, create_app
from tests.servers import ROOT

EXAMPLE = ROOT / "deploy" / "bikshop.env.example"
REAL = "r3al-Value9-long-enough-for-a-secret-key"  # what an operator puts for change-me


def written_values() -> dict[str, str]:
    """Each ``KEY=value`` line as intended: the value without the quotes around it."""
    values = {}
    for line in EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key] = value
    return values


def sourced_values() -> dict[str, str]:
    """The README's ``set -a; . file; set +a``, run by bash in an empty environment."""
    result = subprocess.run(
        ["bash", "-c", 'set -a; . "$0"; set +a; env -0', str(EXAMPLE)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    pairs = (entry.partition("=") for entry in result.stdout.split("\0") if entry)
    return {key: value for key, _, value in pairs if key.startswith("BIKSHOP_")}


def commented_out_settings() -> list[str]:
    """The example's ``# BIKSHOP_…=value`` lines, uncommented: settings left for the operator."""
    lines = EXAMPLE.read_text().splitlines()
    return [line.removeprefix("# ") for line in lines if re.match(r"# BIKSHOP_\w+=", line)]


@pytest.mark.parametrize("line", commented_out_settings())
def test_each_commented_out_setting_uncommented_is_one_line_the_shell_reads(line, tmp_path):
    """``# BIKSHOP_WORKERS=5   (default: …)`` uncommented made ``. file`` stop with a syntax
    error and skip every line after it (self-hoster probe): explanations go on their own line."""
    env_file = tmp_path / "bikshop.env"
    env_file.write_text(line + "\n")
    key, _, value = line.partition("=")
    result = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; printenv "$1"', str(env_file), key],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == f"{value}\n" and value


def test_sourcing_the_example_sets_every_variable_as_written():
    written = written_values()
    assert written["BIKSHOP_STORE_NAME"] == "Glow Naturals"
    assert sourced_values() == written


@pytest.mark.parametrize("key", [k for k, v in written_values().items() if "change-me" in v])
def test_production_refuses_each_change_me_left_in_the_example(key, tmp_path):
    settings = {k.removeprefix("BIKSHOP_"): v for k, v in written_values().items()}
    settings["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    # Only this variable keeps its placeholder; every other secret is replaced.
    for other, value in written_values().items():
        if "change-me" in value and other != key:
            settings[other.removeprefix("BIKSHOP_")] = value.replace("change-me", REAL)
    settings[key.removeprefix("BIKSHOP_")] = written_values()[key]
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    assert caught.value.problems == [
        f"{key} still holds the example's change-me placeholder: replace it with your own value"
    ]


def test_the_example_with_every_change_me_replaced_is_accepted(tmp_path):
    settings = {
        k.removeprefix("BIKSHOP_"): v.replace("change-me", REAL)
        for k, v in written_values().items()
    }
    settings["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    app = create_app(settings)
    assert app.config["STORE_NAME"] == "Glow Naturals"


def test_check_config_lists_every_change_me_of_the_unedited_example():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "bikshop", "check-config", "--offline"],
        cwd=ROOT,
        env=clean | sourced_values(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    flagged = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert flagged == [key for key, value in written_values().items() if "change-me" in value]
    assert "Traceback" not in result.stdout + result.stderr
