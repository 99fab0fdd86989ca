"""PDF rendering with WeasyPrint: HTML in, PDF bytes out, reading only bikshop's static files.

Rendered PDFs are kept on disk under a key that changes whenever the document could change, so
a second download of the same invoice version costs a file read, not a render.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import os
import tempfile
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

log = logging.getLogger(__name__)
# WeasyPrint narrates every render step at INFO; its warnings (a refused URL) still show.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

# The document's base URL: a reserved name that no network can answer, so a relative URL
# resolves somewhere the fetcher recognises and an absolute one stays foreign.
BASE_URL = "https://bikshop.invalid/"


class StaticFilesOnly(URLFetcher):
    """A URL fetcher that serves files under ``static_prefix`` from disk and refuses the rest.

    No ``file:`` URLs, no network: product images and remote logos are simply left out.
    """

    def __init__(self, static_folder: str, static_prefix: str = "/static/"):
        super().__init__(allowed_protocols=("https",), allow_redirects=False)
        self.static_folder = static_folder
        self.static_prefix = static_prefix

    def fetch(self, url, headers=None):
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}/"
        if origin != BASE_URL or not parts.path.startswith(self.static_prefix):
            raise ValueError(f"PDF rendering only reads bikshop's static files, not {url}")
        path = safe_join(self.static_folder, parts.path.removeprefix(self.static_prefix))
        if path is None or not os.path.isfile(path):
            raise ValueError(f"no such static file: {parts.path}")
        with open(path, "rb") as file:
            body = file.read()
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body, {"Content-Type": mime})


_fonts_of = threading.local()


def _fonts() -> FontConfiguration:
    """The thread's one font configuration, made at its first render (after the fork). Left
    to WeasyPrint, every render made its own, whose fontconfig and Pango memory is never given
    back: about 0.24 MB per PDF, for the life of the worker (soak probe: 102 MB to 341 MB
    over 850 renders). One per thread: WeasyPrint adds a font face to it without a lock (a
    second thread could lay out before the face is registered). gunicorn's sync worker has
    one thread; the invoice's two font faces are added to it once."""
    fonts = getattr(_fonts_of, "config", None)
    if fonts is None:
        fonts = _fonts_of.config = FontConfiguration()
    return fonts


def render(html: str, fetcher: StaticFilesOnly) -> bytes:
    """Render ``html`` (print media, so ``@media print`` and ``@page`` apply) to PDF bytes."""
    started = time.perf_counter()
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher, media_type="print")
    # Tagged (PDF/UA's structure tree, not its conformance claim): a screen reader reads the
    # items row by row under their column headers and each address under its heading, where an
    # untagged PDF is read in drawing order (every name, then every quantity, then every price).
    pdf = document.write_pdf(pdf_tags=True, font_config=_fonts())
    log.info("pdf rendered: %d bytes in %.0f ms", len(pdf), (time.perf_counter() - started) * 1e3)
    return pdf


def cached(directory: str, owner: str, version: str, make: Callable[[], bytes]) -> bytes:
    """The PDF for (``owner``, ``version``) from ``directory``, made by ``make`` on a miss.

    ``owner`` is hashed, so an invoice token never appears in a file name. Older versions of
    the same owner are deleted once the new one is written. Writes are atomic (a temporary
    file renamed into place), so concurrent workers never read half a PDF.
    """
    owner_key = _owner_key(owner)
    path = os.path.join(directory, f"{owner_key}-{version}.pdf")
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        pass
    pdf = make()
    try:
        _store(directory, path, owner_key, pdf)
    except OSError as exc:
        # A cache that cannot be written costs a render per download, never the download.
        log.warning("pdf cache %s not written (%s): serving the rendered PDF", directory, exc)
    return pdf


def _owner_key(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def forget(directory: str, owner: str, *, dry_run: bool = False) -> int:
    """Delete every cached PDF of ``owner`` (each version); returns how many went (with
    ``dry_run``, how many would). A folder not there (nothing ever rendered) holds none."""
    prefix = _owner_key(owner) + "-"
    try:
        names = [name for name in os.listdir(directory) if name.startswith(prefix)]
    except FileNotFoundError:
        return 0
    if dry_run:
        return len(names)
    gone = 0
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # a worker replaced it meanwhile
            os.unlink(os.path.join(directory, name))
            gone += 1
    return gone


def _store(directory: str, path: str, owner_key: str, pdf: bytes) -> None:
    os.makedirs(directory, mode=0o700, exist_ok=True)  # invoices are private
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(pdf)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    for name in os.listdir(directory):
        if name.startswith(owner_key + "-") and name != os.path.basename(path):
            with contextlib.suppress(FileNotFoundError):  # another worker removed it first
                os.unlink(os.path.join(directory, name))
