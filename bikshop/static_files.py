"""Addresses of bikshop's own static files, versioned by their content.

Every page links its stylesheet and script as ``/static/<file>?v=<hash of the file>``; bikshop
answers such an address with a year's ``max-age`` (``BikshopFlask.get_send_file_max_age``) only
when its ``v`` is the file's hash now, so a browser never keeps a file under an address that
names another content (an old worker answering a new page's address during a restart).
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

from flask import current_app, url_for
from werkzeug.security import safe_join


def static_url(filename: str) -> str:
    """``/static/<filename>?v=<its content's hash>``."""
    return url_for("static", filename=filename, v=content_version(filename))


def content_version(filename: str) -> str | None:
    """The first hex digits of ``filename``'s SHA-256 (under the app's static folder), or None
    when there is no such file."""
    return _version_of(current_app.static_folder, filename)


def _version_of(folder: str, filename: str) -> str | None:
    # ``filename`` is a request's path before Flask has checked it: only a file inside the
    # folder is read (safe_join refuses "..", absolute paths and the like), and only when
    # the request asks for a version at all.
    path = safe_join(folder, filename)
    return _hash_of(path) if path and os.path.isfile(path) else None


@lru_cache(maxsize=64)
def _hash_of(path: str) -> str | None:
    # Read once per process: a release restarts the workers.
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()[:8]
    except OSError:
        return None
