#!/usr/bin/env python3
"""Latency of `strata serve` URLs, for benches/serve.sh (Python 3 standard library only).

    serve-latency.py BASE --token T --cookie C [--n 50] [--max-seconds 120] [--while-job JOB]
                     URL...

Sends `--n` GETs to each URL in turn (URL 1, URL 2, ..., URL 1, ...) over one keep-alive
connection per URL, after one warm-up request each, timing each from the request's first
byte to the response's last with time.perf_counter. `/api/...` URLs carry the bearer token,
other URLs (dashboard pages) the session cookie. Stops a URL early after `--max-seconds`
of its own requests (a slow list is measured on fewer requests, and says so).

With `--while-job /api/v1/jobs/ID`: keeps measuring for as long as that job is queued or
running (then `--n` is a cap; a request that ends after the job is not counted) and reports
the job's state; the job is polled with `--job-token` (a job is its starter's).
`--no-warmup` starts at once; `--parallel` gives each URL its own thread (side by side)
instead of taking the URLs in turn; `--pause S` waits S seconds after each request.

Prints one JSON object: {"urls": {URL: {"n", "p50_ms", "p95_ms", "max_ms", "bytes",
"status"}}, "job": {...}}; a URL that answers 404 is {"missing": true}, another failure
{"error": "..."}.
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


class Client:
    """One keep-alive connection to the server, reopened when the server closes it."""

    def __init__(self, base, headers):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.headers = headers
        self.conn = None

    def get(self, url):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            try:
                start = time.perf_counter()
                self.conn.request("GET", url, headers=self.headers)
                resp = self.conn.getresponse()
                body = resp.read()
                elapsed = time.perf_counter() - start
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, body, elapsed
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("urls", nargs="+")
    ap.add_argument("--token", default="")
    ap.add_argument("--cookie", default="")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--while-job", default=None)
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--job-token", default="")
    ap.add_argument("--parallel", action="store_true")
    ap.add_argument("--pause", type=float, default=0.0)
    a = ap.parse_args()

    api = {"Authorization": "Bearer " + a.token, "Accept": "application/json"}
    page = {"Cookie": a.cookie, "Accept": "text/html"}
    clients = {u: Client(a.base, api if u.startswith("/api/") else page) for u in a.urls}
    times = {u: [] for u in a.urls}
    spent = {u: 0.0 for u in a.urls}
    size = {u: 0 for u in a.urls}
    out = {}
    # Warm-up, and the URLs that are not there (or fail) are set aside.
    for u in [] if a.no_warmup else a.urls:
        try:
            status, body, _ = clients[u].get(u)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            out[u] = {"error": str(e)}
            continue
        if status == 404:
            out[u] = {"missing": True}
        elif not 200 <= status < 300:
            out[u] = {"error": "status %d: %s" % (status, body[:200].decode("utf-8", "replace"))}
    live = [u for u in a.urls if u not in out]

    # The job is its starter's: it is polled with the starter's token.
    job_headers = dict(api, Authorization="Bearer " + (a.job_token or a.token))
    job_client = Client(a.base, job_headers) if a.while_job else None
    job = None
    job_done = threading.Event()
    lock = threading.Lock()

    def job_running():
        nonlocal job
        status, body, _ = job_client.get(a.while_job)
        if status != 200:
            job = {"error": "status %d" % status}
            return False
        job = json.loads(body)
        return job.get("state") in ("queued", "running")

    def one(u):
        """One request to `u`; False when `u` is done."""
        status, body, elapsed = clients[u].get(u)
        with lock:
            if not 200 <= status < 300:
                out[u] = {"error": "status %d during the run" % status}
                return False
            if job_done.is_set():
                return False  # finished after the job: not counted
            times[u].append(elapsed)
            spent[u] += elapsed
            size[u] = len(body)
            more = len(times[u]) < a.n and spent[u] < a.max_seconds
        if more and a.pause:
            time.sleep(a.pause)
        return more

    def watch_job():
        while job_running():
            time.sleep(0.1)
        job_done.set()

    watcher = None
    if job_client is not None:
        watcher = threading.Thread(target=watch_job, daemon=True)
        watcher.start()
    if a.parallel:
        # A thread per URL: each URL has its own stream of requests, side by side.
        def loop(u):
            while not job_done.is_set() and one(u):
                pass

        threads = [threading.Thread(target=loop, args=(u,)) for u in live]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        while live and not job_done.is_set():
            for u in list(live):
                if not one(u):
                    live.remove(u)
    if watcher is not None:
        watcher.join()

    for u in a.urls:
        if u in out:
            continue
        t = sorted(times[u])
        if not t:
            out[u] = {"error": "no request finished before the job did"}
            continue
        out[u] = {
            "n": len(t),
            "p50_ms": round(percentile(t, 50) * 1000, 2),
            "p95_ms": round(percentile(t, 95) * 1000, 2),
            "max_ms": round(t[-1] * 1000, 2),
            "bytes": size[u],
            "status": 200,
        }
    result = {"urls": out}
    if job is not None:
        result["job"] = {k: job.get(k) for k in ("state", "started", "finished", "error")}
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
