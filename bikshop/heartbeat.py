"""Let a gunicorn worker say it is alive while it streams a long response (a big CSV export).

gunicorn's arbiter kills a sync worker that has not checked in for ``timeout`` seconds, and a
sync worker only checks in between requests; a long stream calls ``beat()`` now and then instead.
Outside gunicorn (tests, ``flask run``) nothing is installed and ``beat()`` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

_notify: Callable[[], None] | None = None


def install(notify: Callable[[], None]) -> None:
    """Called in each worker after fork with gunicorn's ``worker.notify``."""
    global _notify
    _notify = notify


def beat() -> None:
    """Tell the arbiter this worker is alive (no-op outside gunicorn)."""
    if _notify is not None:
        _notify()
