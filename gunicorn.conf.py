"""gunicorn settings for bikshop (``gunicorn -c gunicorn.conf.py wsgi:app``).

Every value can be overridden on the command line; the ``BIKSHOP_*`` variables below are the
ones the README's production section and ``deploy/bikshop.service`` use.
"""

import atexit
import glob
import multiprocessing
import os
import shutil
import sys
import tempfile

# Prometheus counters from every worker meet in one folder, emptied at each start. It must be
# set before the app (and prometheus_client, which bikshop imports) is imported.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="bikshop-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
os.makedirs(_metrics_dir, exist_ok=True)
if _own_metrics_dir:
    # The app is loaded in this process after this file (preload_app): when wsgi.py stops on a
    # bad setting, gunicorn never calls on_exit, so the folder also goes at the master's exit.
    _master_pid = os.getpid()
    atexit.register(
        lambda: os.getpid() == _master_pid and shutil.rmtree(_metrics_dir, ignore_errors=True)
    )
for _stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
    os.remove(_stale)

from bikshop.config import ConfigError, bind_address, proxy_addresses, whole_number  # noqa: E402 (after the metrics folder)


def _refuse(exc: ConfigError):
    """A bad value stops the server with one line and exit 3, as a bad app setting does
    (wsgi.py), so systemd does not restart-loop."""
    print(f"bikshop: configuration error: {exc}", file=sys.stderr, flush=True)
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
    sys.exit(3)


def _number(name: str, default: int) -> int:
    """``BIKSHOP_<name>`` within bikshop's range for it."""
    try:
        return whole_number(name, os.environ.get(f"BIKSHOP_{name}") or default)
    except ConfigError as exc:
        _refuse(exc)


# Empty means the default, as for every other setting (an empty bind would listen nowhere).
try:
    bind = bind_address(os.environ.get("BIKSHOP_BIND"))
except ConfigError as exc:
    _refuse(exc)
# Sync workers: each request is short and database-bound. 2 × cores + 1 is gunicorn's advice.
workers = _number("WORKERS", multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
# Load the app once in the master: a configuration error stops the server with one clear
# line instead of every worker crashing in a loop, and workers fork faster. The price: a new
# release needs a full restart (systemctl restart), since SIGHUP re-forks the loaded code.
preload_app = True
# The slowest route is a first PDF render of a long order; payment calls time out at 10 s.
timeout = _number("TIMEOUT", 30)
# On SIGTERM, workers finish the request in hand (a placeOrder commits or rolls back whole).
graceful_timeout = 20
# No keepalive setting: sync workers close every connection after its answer (nginx keeps its
# own connections to clients open).
# Recycling workers is off by default: under load a recycle every few thousand requests made
# every in-flight request behind it wait (p99 of 160 ms instead of 7 ms in bench/). Set
# BIKSHOP_MAX_REQUESTS (e.g. 100000) to recycle anyway if a leak ever shows up.
max_requests = _number("MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: a slow disk must not make gunicorn think a worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# JSON lines, the access log on stdout and everything else on stderr (journald keeps both);
# access lines carry the request id and mask invoice tokens (bikshop/logging.py).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("BIKSHOP_LOG_LEVEL") or "info"
logger_class = "bikshop.logging.GunicornLogger"
# gunicorn 27's control socket defaults to one path per user: several servers on one machine
# (tests, two instances) would fight over it. bikshop needs no runtime control interface.
control_socket_disable = True
# Only a proxy at these addresses may say the request was https.
try:
    forwarded_allow_ips = proxy_addresses(os.environ.get("BIKSHOP_FORWARDED_ALLOW_IPS"))
except ConfigError as exc:
    _refuse(exc)
# ... and only with X-Forwarded-Proto, the one header the nginx site sets. gunicorn's default
# also reads X-Forwarded-Ssl and X-Forwarded-Protocol, so a client's "X-Forwarded-Ssl: off"
# passed on beside nginx's "X-Forwarded-Proto: https" was a 400 (contradictory scheme headers).
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}


def post_fork(server, worker):
    """Each worker opens its own database connections, never the master's."""
    from bikshop import heartbeat
    from bikshop.database import dispose_engines

    heartbeat.install(worker.notify)  # a long CSV export checks in while it streams

    app = getattr(server.app, "callable", None)
    # Only a bikshop app has an engine (the benchmark's bare baseline runs with this file too).
    if app is not None and "sqlalchemy" in getattr(app, "extensions", {}):
        with app.app_context():
            dispose_engines(close=False)


def child_exit(server, worker):
    """A dead worker's counters stay; its live-only values go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder gunicorn made for itself."""
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
