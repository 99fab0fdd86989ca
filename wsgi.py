"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import sys

from bikshop import ConfigError, create_app
from bikshop.ops import in_memory_finding


def _refuse(problem: str):
    # One clear line instead of a traceback; exit 3 stops gunicorn instead of looping.
    print(f"bikshop: configuration error: {problem}", file=sys.stderr, flush=True)
    sys.exit(3)


try:
    app = create_app()
except ConfigError as exc:
    _refuse(str(exc))
# A server on SQLite's in-memory database would lose every order at its next restart, each
# worker with a database of its own (check-config calls it an error; the tests' apps use it).
if (in_memory := in_memory_finding(app.config)) is not None:
    _refuse(f"{in_memory.variable} {in_memory.message}")
