"""The nginx site in deploy/ as the README installs it: valid, and in front of real gunicorn it
terminates TLS, passes the client's address and a request id, compresses, and hides /metrics;
what it answers itself (bikshop down, a body or headers too large) is in bikshop's error shape."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import urllib3
from flask import Flask

from bikshop import _wants_html
from bikshop.errors import CODES, DatabaseUnavailable, error_body
from tests.bik import sample_body
from tests.servers import ROOT, free_port

SITE = ROOT / "deploy" / "bikshop.nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _site_for_test(tmp: Path, upstream_port: int, http_port: int, https_port: int) -> str:
    """The site file with only what a test machine needs changed: ports and a throwaway cert."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=shop.example.com",
            "-keyout",
            str(tmp / "key.pem"),
            "-out",
            str(tmp / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    site = SITE.read_text()
    site = site.replace(
        "/etc/letsencrypt/live/shop.example.com/fullchain.pem", str(tmp / "cert.pem")
    )
    site = site.replace("/etc/letsencrypt/live/shop.example.com/privkey.pem", str(tmp / "key.pem"))
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    site = re.sub(
        r"listen (\[::\]:)?80;", lambda m: "" if m.group(1) else f"listen {http_port};", site
    )
    site = re.sub(
        r"listen (\[::\]:)?443 ssl http2;",
        lambda m: "" if m.group(1) else f"listen {https_port} ssl http2;",
        site,
    )
    return site


@contextlib.contextmanager
def _nginx(tmp_path: Path, upstream_port: int):
    """The site as a normal process in front of ``upstream_port`` (gunicorn, a stand-in, or
    nothing at all): yields a session for it, its https base URL and its plain-http port."""
    assert Path(NGINX).exists(), "nginx not found: apt-get install nginx (.ci/run does)"
    http_port, https_port = free_port(), free_port()
    (tmp_path / "site.conf").write_text(
        _site_for_test(tmp_path, upstream_port, http_port, https_port)
    )
    # Run as root, nginx's worker would be "nobody", who cannot write a large request body to
    # the temp folder in tmp_path: keep it root here.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nerror_log {tmp_path}/error.log;\npid {tmp_path}/nginx.pid;\n"
        "events {}\nhttp {\n  include /etc/nginx/mime.types;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    conf = str(tmp_path / "nginx.conf")
    checked = subprocess.run([NGINX, "-t", "-c", conf], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    subprocess.run([NGINX, "-c", conf], check=True)
    base = f"https://127.0.0.1:{https_port}"
    session = requests.Session()
    session.trust_env = False  # an environment CA bundle would override verify=False
    session.verify = False
    session.headers["Host"] = "shop.example.com"
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    try:
        for _ in range(50):
            try:
                session.get(base + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield session, base, http_port
    finally:
        subprocess.run([NGINX, "-c", conf, "-s", "stop"], check=False)


@pytest.fixture
def nginx_in_front(gunicorn, tmp_path):
    """gunicorn behind the repository's nginx site, configured as the README says."""
    server = gunicorn(
        workers=1,
        env={
            "BIKSHOP_PROXY_FIX_X_FOR": "1",
            "BIKSHOP_PROXY_FIX_X_PROTO": "1",
            "BIKSHOP_PUBLIC_URL": "https://shop.example.com",
        },
    )
    with _nginx(tmp_path, server.port) as (session, base, http_port):
        yield session, base, http_port, server


@contextlib.contextmanager
def _stand_in(answer):
    """A stand-in for gunicorn on a free port: ``answer(method, path)`` gives (status, JSON
    body), or None to close the connection without answering (a worker killed mid-request).
    Yields the port and the (path, headers) of every request it got, header names lowercase."""
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def handle_one_request(self):
            self.raw_requestline = self.rfile.readline(65537)
            if not self.parse_request():
                return
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.path, {name.lower(): value for name, value in self.headers.items()}))
            answered = answer(self.command, self.path)
            self.close_connection = True
            if answered is None:
                return
            status, body = answered
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_nginx_site_serves_bikshop_over_tls_as_documented(nginx_in_front):
    session, base, http_port, server = nginx_in_front

    plain = requests.get(
        f"http://127.0.0.1:{http_port}/bik/getOrder",
        headers={"Host": "shop.example.com"},
        allow_redirects=False,
        timeout=5,
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://shop.example.com/bik/getOrder"

    placed = session.post(base + "/bik/placeOrder", json=sample_body(), timeout=10)
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    assert order["invoiceUrl"].startswith("https://shop.example.com/invoice/")
    request_id = placed.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id, passed through

    invoice = session.get(
        base + "/invoice/" + order["invoiceUrl"].rsplit("/", 1)[1],
        headers={"Accept-Encoding": "gzip"},
        stream=True,
        timeout=10,
    )
    assert invoice.status_code == 200
    assert invoice.headers["Content-Encoding"] == "gzip"
    assert order["name"] in gzip.decompress(invoice.raw.read()).decode()

    assert session.get(base + "/metrics", timeout=5).status_code == 404

    # A client cannot pass itself off as another address: nginx appends the real one and
    # bikshop trusts exactly one proxy (BIKSHOP_PROXY_FIX_X_FOR=1).
    spoofed = session.post(
        base + "/bik/getOrder",
        json={"orderId": order["id"]},
        headers={"X-Forwarded-For": "203.0.113.9"},
        timeout=5,
    )
    assert spoofed.status_code == 200
    log = server.log_once_it_has(request_id, spoofed.headers["X-Request-ID"])
    lines = [line for line in log.splitlines() if '"gunicorn.access"' in line]
    assert any(request_id in line for line in lines)
    spoofed_line = next(line for line in lines if spoofed.headers["X-Request-ID"] in line)
    assert '"remote": "127.0.0.1"' in spoofed_line and "203.0.113.9" not in spoofed_line

    # The scheme is nginx's X-Forwarded-Proto alone: other scheme headers a client adds were
    # gunicorn's HTML 400 "Contradictory scheme headers", through nginx or from this machine.
    scheme_headers = {"X-Forwarded-Ssl": "off", "X-Forwarded-Protocol": "http"}
    through_nginx = session.post(
        base + "/bik/getOrder", json={"orderId": order["id"]}, headers=scheme_headers, timeout=5
    )
    assert through_nginx.status_code == 200, through_nginx.text
    direct = requests.post(
        server.url + "/bik/getOrder",
        json={"orderId": order["id"]},
        headers={"X-Forwarded-Proto": "https", **scheme_headers},
        timeout=5,
    )
    assert direct.status_code == 200, direct.text
    assert direct.json()["order"]["id"] == order["id"]


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def _error_kind(method: str, path: str, accept: str) -> str:
    """What bikshop itself answers an error with there: "html" or "json"."""
    with Flask(__name__).test_request_context(path, method=method, headers={"Accept": accept}):
        return "html" if _wants_html() else "json"


@pytest.mark.parametrize("gunicorn_is", ["stopped", "closing connections unanswered"])
def test_while_gunicorn_is_down_nginx_answers_bikshops_json_503(tmp_path, gunicorn_is):
    """A restart or a dead worker was nginx's HTML 502 page to Bik and Razorpay."""
    with contextlib.ExitStack() as stack:
        if gunicorn_is == "stopped":
            port = free_port()  # nothing listens there
        else:
            port, _ = stack.enter_context(_stand_in(lambda method, path: None))
        session, base, _ = stack.enter_context(_nginx(tmp_path, port))

        placed = session.post(base + "/bik/placeOrder", json=sample_body(), timeout=10)
        assert placed.status_code == 503, placed.text
        assert placed.headers["Content-Type"] == "application/json"
        # As bikshop's own 503 when its database is down: the same shape, code and Retry-After.
        retry_after = dict(DatabaseUnavailable().get_headers())["Retry-After"]
        assert placed.headers["Retry-After"] == retry_after
        unavailable = placed.json()
        assert unavailable == error_body(503, unavailable["error"]["message"])
        assert unavailable["error"]["code"] == CODES[503] == "service_unavailable"
        assert re.fullmatch(r"[0-9a-f]{32}", placed.headers["X-Request-ID"])

        # JSON wherever bikshop answers errors in JSON, a short page where it answers HTML.
        for method, path, accept in [
            ("POST", "/bik/getOrder", BROWSER),
            ("POST", "/webhooks/razorpay", "*/*"),
            ("GET", "/healthz", BROWSER),
            ("GET", "/readyz", "*/*"),
            ("GET", "/openapi.json", BROWSER),
            ("GET", "/", "application/json"),
            ("GET", "/", "*/*"),
            ("GET", "/", BROWSER),
            ("GET", "/invoice/abc", "*/*"),
            ("GET", "/invoice/abc", BROWSER),
            ("GET", "/admin", "*/*"),
            ("POST", "/admin/login", BROWSER),
            ("GET", "/static/invoice.css", "text/css,*/*;q=0.1"),
        ]:
            answer = session.request(method, base + path, headers={"Accept": accept}, timeout=10)
            where = f"{method} {path} ({accept})"
            assert answer.status_code == 503, where
            assert answer.headers["Retry-After"] == retry_after, where
            if _error_kind(method, path, accept) == "json":
                assert answer.headers["Content-Type"] == "application/json", where
                assert answer.json() == unavailable, where
            else:
                assert answer.headers["Content-Type"] == "text/html", where
                assert "moment" in answer.text and "nginx" not in answer.text, where


def test_bodies_and_headers_over_nginx_limits_get_bikshops_json_errors(tmp_path):
    """They were nginx's HTML 413 and 400 ("Request Header Or Cookie Too Large") pages."""
    with _nginx(tmp_path, free_port()) as (session, base, _):
        over_2m = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        sized = session.post(
            base + "/bik/placeOrder",
            data=over_2m,
            headers={"Content-Type": "application/json"},
            timeout=20,
        )
        chunked = session.post(
            base + "/bik/placeOrder",
            data=iter([over_2m[: 1024 * 1024], over_2m[1024 * 1024 :]]),
            headers={"Content-Type": "application/json"},
            timeout=20,
        )
        for answer in (sized, chunked):
            assert answer.status_code == 413, answer.text
            assert answer.headers["Content-Type"] == "application/json"
            too_large = answer.json()
            assert too_large == error_body(413, too_large["error"]["message"])
            assert too_large["error"]["code"] == CODES[413] == "payload_too_large"

        header = session.post(
            base + "/bik/getOrder",
            json={"orderId": "1"},
            headers={"X-Padding": "x" * 9000},
            timeout=10,
        )
        assert header.status_code == 431, header.text
        assert header.headers["Content-Type"] == "application/json"
        headers_too_large = header.json()
        assert headers_too_large == error_body(
            431, headers_too_large["error"]["message"], code="request_header_fields_too_large"
        )

        # A browser with cookies too large for the dashboard gets a page, not JSON.
        cookies = session.get(
            base + "/admin", headers={"Accept": BROWSER, "Cookie": "s=" + "x" * 9000}, timeout=10
        )
        assert cookies.status_code == 431
        assert cookies.headers["Content-Type"] == "text/html" and "cookies" in cookies.text


def test_bikshops_own_errors_pass_through_nginx_untouched(tmp_path):
    """Only nginx's own errors are replaced: bikshop's 503 not_configured or 413 keep their
    message (proxy_intercept_errors stays off)."""
    own = {
        "/webhooks/razorpay": error_body(503, "No webhook secret", code="not_configured"),
        "/bik/placeOrder": error_body(413, "The request body is larger than 1048576 bytes"),
    }

    def answer(method, path):
        body = own[path]
        return body["error"]["status"], json.dumps(body).encode()

    with _stand_in(answer) as (port, _), _nginx(tmp_path, port) as (session, base, _):
        for path, body in own.items():
            answered = session.post(base + path, json={}, timeout=10)
            assert (answered.status_code, answered.json()) == (body["error"]["status"], body)


def test_static_files_keep_bikshop_s_own_cache_lifetime_through_nginx(nginx_in_front):
    """The site kept everything under /static/ for 7 days whatever bikshop said, so a new
    admin.js waited a week and a versioned stylesheet, which never changes under its address,
    was asked for again weekly (network probe). nginx now passes bikshop's own Cache-Control:
    a year for a versioned address, a revalidation for a bare one."""
    session, base, _, _ = nginx_in_front
    page = session.get(base + "/admin/login", timeout=10).text
    versioned = re.search(r'href="(/static/admin\.css\?v=[0-9a-f]{8})"', page).group(1)
    kept = session.get(base + versioned, timeout=10)
    assert kept.ok and kept.headers["Cache-Control"] == "public, max-age=31536000"
    bare = session.get(base + "/static/admin.css", timeout=10)
    assert bare.ok and "604800" not in bare.headers.get("Cache-Control", "")
    assert "max-age=31536000" not in bare.headers.get("Cache-Control", "")


def test_a_client_cannot_send_scheme_port_or_prefix_headers_through_nginx(tmp_path):
    """nginx passed a client's X-Forwarded-Ssl and X-Forwarded-Protocol on to gunicorn (which
    trusts 127.0.0.1), and under /static/ every X-Forwarded-* header a client sent."""
    spoofed = {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Ssl": "off",
        "X-Forwarded-Protocol": "http",
        "X-Forwarded-Port": "8443",
        "X-Forwarded-Prefix": "/elsewhere",
        "X-Forwarded-Host": "evil.example",
        "X-Request-ID": "chosen-by-the-client",
    }
    with (
        _stand_in(lambda method, path: (200, b"{}")) as (port, seen),
        _nginx(tmp_path, port) as (session, base, _),
    ):
        seen.clear()  # the start-up probe's
        assert session.post(base + "/bik/getOrder", headers=spoofed, timeout=5).ok
        assert session.get(base + "/static/invoice.css", headers=spoofed, timeout=5).ok
        assert [path for path, _ in seen] == ["/bik/getOrder", "/static/invoice.css"]
        for path, headers in seen:
            assert headers["x-forwarded-proto"] == "https", path
            assert headers["x-forwarded-host"] == headers["host"] == "shop.example.com", path
            assert headers["x-forwarded-for"] == "127.0.0.1", path
            assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"]), path
            dropped = (
                "x-forwarded-ssl",
                "x-forwarded-protocol",
                "x-forwarded-port",
                "x-forwarded-prefix",
            )
            assert [name for name in dropped if name in headers] == [], path


def test_the_systemd_unit_migrates_before_serving_and_does_not_restart_loop_on_bad_config():
    unit = (ROOT / "deploy" / "bikshop.service").read_text()
    lines = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    # One main process: systemd's RestartPreventExitStatus= ignores an ExecStartPre='s status,
    # so an upgrade refused for a bad setting would restart-loop there.
    assert "ExecStartPre" not in lines
    shell, command = lines["ExecStart"].split(" -c ", 1)
    assert shell == "/bin/sh"
    upgrade, serve = command.strip("'").split(" && ")
    assert upgrade.endswith("flask --app bikshop db upgrade")
    assert serve.startswith("exec ") and serve.endswith("gunicorn -c gunicorn.conf.py wsgi:app")
    assert lines["RestartPreventExitStatus"] == "3"  # wsgi.py exits 3 on a configuration error
    assert (lines["Restart"], lines["StartLimitIntervalSec"]) == ("always", "0")  # never gives up
    assert "exit(3)" in (ROOT / "wsgi.py").read_text()


def test_the_systemd_unit_keeps_what_bikshop_writes_private():
    """The SQLite database, its WAL and the PDF cache hold customers' data."""
    unit = (ROOT / "deploy" / "bikshop.service").read_text()
    assert "\nUMask=0077\n" in unit
