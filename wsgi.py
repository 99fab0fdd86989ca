"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import sys

from bikshop import ConfigError, create_app

try:
    app = create_app()
except ConfigError as exc:
    # One clear line instead of a traceback; gunicorn then stops instead of looping.
    print(f"bikshop: configuration error: {exc}", file=sys.stderr, flush=True)
    sys.exit(3)
