"""gunicorn settings for bikshop; every value can be overridden on the command line."""

import multiprocessing
import os

bind = os.environ.get("BIKSHOP_BIND", "127.0.0.1:8000")
# Sync workers: each request is short and database-bound. 2 × cores + 1 is gunicorn's advice.
workers = int(os.environ.get("BIKSHOP_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# Load the app once in the master: a configuration error stops the server with one clear
# line instead of every worker crashing in a loop, and workers fork faster.
preload_app = True
# The slowest route is a first PDF render of a long order; payment calls time out at 10 s.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak can never take the server down.
max_requests = 2000
max_requests_jitter = 200
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("BIKSHOP_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# gunicorn 27's control socket defaults to one path per user: several servers on one machine
# (tests, two instances) would fight over it. bikshop needs no runtime control interface.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("BIKSHOP_FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_fork(server, worker):
    """Each worker opens its own database connections, never the master's."""
    from bikshop.extensions import db

    app = getattr(server.app, "callable", None)
    # Only a bikshop app has an engine (the benchmark's bare baseline runs with this file too).
    if app is not None and "sqlalchemy" in getattr(app, "extensions", {}):
        with app.app_context():
            db.engine.dispose(close=False)
