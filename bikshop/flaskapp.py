"""bikshop's Flask class: Flask, minus two costs it pays again on every request for answers that
never change. Together about a tenth of a getOrder (bench/bik_endpoints.py).

* ``ensure_sync``: Flask and flask-smorest ask it for every hook and view layer on every request
  (a dozen ``inspect.iscoroutinefunction`` calls); bikshop has no async views, and the answer
  for a given function is fixed, so it is remembered.
* The session cookie's signing serializer: Flask builds a new one on every request, even one
  that carries no cookie; it depends only on the secret keys, so it is kept.
* The session itself on Bik's API (``/bik/``): machine calls authenticated per request, which
  never carry or set a cookie, get Flask's null session without reading one.

And one correction: an ``OPTIONS`` answer has no body, so it carries no ``text/html`` type.
"""

from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from bikshop.static_files import content_version

_MAX_REMEMBERED = 4096  # functions made per request (there are none today) cannot grow it forever


_SESSIONLESS_PREFIX = "/bik/"
_A_YEAR = 365 * 24 * 3600


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions with the serializer built once per set of secret keys, and
    none at all on Bik's API."""

    def open_session(self, app: Flask, request):
        if request.path.startswith(_SESSIONLESS_PREFIX):
            return None  # Flask then uses its null session: reading works, writing raises
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = getattr(self, "_serializer", None)
        if cached is None or cached[0] != keys:
            cached = (keys, super().get_signing_serializer(app))
            self._serializer = cached
        return cached[1]


class BikshopFlask(Flask):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.session_interface = SessionInterface()  # one per app: its own secret keys
        self._sync = {}

    def get_send_file_max_age(self, filename):
        """A static file asked for by the address that names its content (``?v=`` its hash:
        ``static_files.static_url``, as every page links its files) never changes under it:
        browsers keep it a year instead of asking again on every page (a round trip before
        the first paint, on a slow phone). Any other ``v`` (an old worker answering a new
        page's address during a restart) and a bare address keep Flask's default
        (revalidated each time)."""
        wanted = request.args.get("v")
        if wanted and wanted == content_version(filename):
            return _A_YEAR
        return super().get_send_file_max_age(filename)

    def make_default_options_response(self):
        """Flask's answer to OPTIONS (200, ``Allow``), without the ``text/html`` content type
        it gives an answer that has no body at all."""
        response = super().make_default_options_response()
        response.headers.pop("Content-Type", None)
        return response

    def ensure_sync(self, func):
        try:
            return self._sync[func]
        except KeyError:
            wrapped = super().ensure_sync(func)
            if len(self._sync) < _MAX_REMEMBERED:
                self._sync[func] = wrapped
            return wrapped
        except TypeError:  # unhashable callable
            return super().ensure_sync(func)
