"""The reliability tests at full size: ``python -m bench.faults [--seconds 20]``.

CI runs ``tests/test_faults_*.py`` for about 5 s each; this runs the same tests (real gunicorn,
both databases, a private PostgreSQL cluster for the stop/start case) for the length the issue
names, so a rare loss or duplicate has time to show.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="load per fault test")
    args = parser.parse_args(argv)
    env = {**os.environ, "BIKSHOP_FAULT_SECONDS": str(args.seconds)}
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_faults_*.py"))
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
