"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import logging
import os
import sys

from bikshop import ConfigError, create_app
from bikshop.ops import in_memory_finding, unknown_name_findings


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
# A misspelt name (BIKSHOP_BIK_PLACEORDER_AUTH) is silently its default: check-config warns of
# it, and so does the server's log, once, at start-up.
for _unknown in unknown_name_findings(os.environ):
    logging.getLogger("bikshop.config").warning("%s %s", _unknown.variable, _unknown.message)
