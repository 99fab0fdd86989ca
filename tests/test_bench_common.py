"""bench/common.py's program runner: a benchmark stopped with SIGTERM cleans up after itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT

_PROGRAM = """
import tempfile, time
from bench.common import run

def main():
    with tempfile.TemporaryDirectory(prefix="bikshop-bench-") as scratch:
        print(scratch, flush=True)
        time.sleep(60)
    return 0

run(main)
"""


def test_a_benchmark_stopped_with_sigterm_removes_its_scratch_folder(tmp_path):
    """`timeout 75 make bench` left a 1.6 GB scratch SQLite behind (README probe): SIGTERM
    skipped every ``finally``. It now ends the benchmark as Ctrl-C does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    with subprocess.Popen(
        [sys.executable, "-c", _PROGRAM], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as program:
        scratch = Path(program.stdout.readline().strip())
        assert scratch.is_dir() and scratch.parent == tmp_path
        program.send_signal(signal.SIGTERM)
        assert program.wait(timeout=30) == 128 + signal.SIGTERM
    assert not scratch.exists()
