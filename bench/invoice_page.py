"""Benchmark the customer's invoice page and PDF against the bare-Flask baseline in the same run.

    python -m bench.invoice_page [--duration S] [--orders N] [--backends sqlite,postgresql]

For each backend: ``--orders`` orders of 10 items each are placed through bikshop's placeOrder;
then, with bikshop and ``bench/bare_app.py`` under gunicorn (2 workers, identical settings):
wrk GETs the invoice pages (Accept-Encoding: gzip, as a phone sends) and the baseline's
``GET /healthz``; each order's PDF is fetched once from cold (rendered by WeasyPrint) and timed
sequentially; wrk then GETs the now-cached PDFs. Prints requests/s, p50 and the share of the
baseline's requests/s. Issue 3 sets no speed target; the figures are there to watch for
regressions (a page that costs more, a PDF cache that stops working).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import (
    BACKENDS,
    LUA_THREADS_AND_RESULT,
    Result,
    Server,
    Settings,
    baseline_server,
    lua_string,
    machine_description,
    require_wrk,
    run,
    run_wrk,
    scratch_database,
)

_GET_SCRIPT = (
    """
wrk.method = "GET"
wrk.headers["Accept-Encoding"] = "gzip"
{headers}
local paths = {{
{paths}
}}
function init(args)
  math.randomseed(thread_no * 7919)
end
function request()
  return wrk.format(nil, paths[math.random(#paths)])
end
"""
    + LUA_THREADS_AND_RESULT
)


def get_script(workdir: Path, name: str, paths: list[str], headers: dict | None = None) -> Path:
    """A wrk script GETting ``paths`` at random, with extra ``headers``."""
    path = workdir / f"{name}.lua"
    extra = "\n".join(
        f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in (headers or {}).items()
    )
    paths_lua = ",\n".join(lua_string(p) for p in paths)
    path.write_text(_GET_SCRIPT.format(paths=paths_lua, headers=extra))
    return path


def ten_item_body(n: int) -> str:
    """A placeOrder body with 10 priced lines whose totals add up."""
    items = [
        {
            "productId": 7000 + i,
            "variantId": 8000 + i,
            "name": f"Ayurvedic product {i} with a descriptive name",
            "variantName": "100 ml",
            "quantity": 1 + i % 3,
            "price": 349.5 + i,
            "image": f"https://cdn.example.com/p/{i}.jpg",
        }
        for i in range(10)
    ]
    sub_total = sum(round(item["price"] * 100) * item["quantity"] for item in items) / 100
    order = {
        "id": f"nb_bench_{n}",
        "name": "",
        "phoneNumber": "+919876543210",
        "email": "buyer@example.com",
        "items": items,
        "subTotal": sub_total,
        "shippingCharge": 49,
        "discount": 100,
        "total": round(sub_total + 49 - 100, 2),
        "currency": "",
        "address": {
            "firstName": "Bench",
            "lastName": "Buyer",
            "address1": "HSR Layout",
            "city": "Bengaluru",
            "state": "Karnataka",
            "countryCode": "IN",
            "zip": "560102",
        },
    }
    return json.dumps({"draftOrderId": order["id"], "paymentPending": True, "order": order})


def place_orders(server: Server, settings: Settings, count: int) -> list[str]:
    paths = []
    for n in range(count):
        status, answer = server.post("/bik/placeOrder", ten_item_body(n), settings.auth_header)
        assert status == 200, answer
        paths.append(urlsplit(answer["order"]["invoiceUrl"]).path)
    return paths


def cold_pdf_ms(base: str, paths: list[str]) -> list[float]:
    """Each order's PDF once, sequentially: every one is a first render."""
    times = []
    for path in paths:
        started = time.perf_counter()
        with urllib.request.urlopen(base + path + ".pdf", timeout=30) as answer:
            assert answer.status == 200 and answer.read(4) == b"%PDF"
        times.append((time.perf_counter() - started) * 1000)
    return times


def run_backend(backend: str, args, workdir: Path, say) -> dict:
    with scratch_database(backend, workdir) as url:
        settings = Settings(url, "bench-token-" + backend)
        env = settings.env() | {
            "BIKSHOP_STORE_GSTIN": "29AABCG1234K1ZO",
            "BIKSHOP_STORE_HSN_CODE": "3304",
            "BIKSHOP_PDF_CACHE_DIR": str(workdir / "pdfs"),
            # wrk is one client address: the per-address limits would measure 429s instead.
            "BIKSHOP_RATELIMIT_ENABLED": "false",
        }
        with (
            baseline_server(settings, workdir) as bare,
            Server("bikshop", "wsgi:app", env, workdir) as server,
        ):
            paths = place_orders(server, settings, args.orders)
            for path in paths:  # first views issue the tax invoice numbers (one write each)
                with urllib.request.urlopen(server.url + path, timeout=10) as answer:
                    etag = answer.headers["ETag"]
            # A customer re-opening the link: the browser revalidates and gets a 304.
            revalidate = get_script(workdir, "revalidate", [paths[-1]], {"If-None-Match": etag})
            healthz = get_script(workdir, "healthz", ["/healthz"])
            pages = get_script(workdir, "pages", paths)
            pdfs = get_script(workdir, "pdfs", [p + ".pdf" for p in paths])
            baseline = run_wrk(bare.url, healthz, args.duration)
            bare.wait_idle()
            page = run_wrk(server.url, pages, args.duration)
            server.wait_idle()
            repeat = run_wrk(server.url, revalidate, args.duration)
            server.wait_idle()
            cold = cold_pdf_ms(server.url, paths)
            cached = run_wrk(server.url, pdfs, args.duration)
            server.wait_idle()
    return {"baseline": baseline, "page": page, "repeat": repeat, "cold": cold, "cached": cached}


def line(name: str, result: Result, baseline: Result) -> tuple[str, bool]:
    """One wrk figure as a printed line, and whether every answer was a success."""
    ratio = result.rps / baseline.rps
    clean = result.non_2xx == result.socket_errors == 0
    return (
        f"  {name:<22} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"{ratio:6.0%} of baseline"
        + ("" if clean else f"  ({result.non_2xx} non-2xx, {result.socket_errors} socket errors)")
    ), clean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)
    require_wrk()

    def say(text: str) -> None:
        print(text, flush=True)

    for text in machine_description():
        say(text)
    failed = False
    for backend in args.backends.split(","):
        say(f"\n{backend}: {args.orders} tax invoices of 10 items, 2 gunicorn workers")
        with tempfile.TemporaryDirectory(prefix="bench-invoice-") as tmp:
            result = run_backend(backend, args, Path(tmp), say)
        baseline = result["baseline"]
        floor = f"{baseline.rps:8.0f} req/s  p50 {baseline.p50_ms:6.1f} ms"
        say(f"  {'baseline GET /healthz':<22} {floor}")
        text, page_clean = line("invoice page", result["page"], baseline)
        say(text)
        text, repeat_clean = line("page again (304)", result["repeat"], baseline)
        say(text)
        cold = statistics.median(result["cold"])
        say(f"  {'PDF from cold':<22} p50 {cold:6.0f} ms  max {max(result['cold']):6.0f} ms")
        text, cached_clean = line("PDF from cache", result["cached"], baseline)
        say(text)
        failed |= not (page_clean and repeat_clean and cached_clean)
    return 1 if failed else 0


if __name__ == "__main__":
    run(main)
