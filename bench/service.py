#!/usr/bin/env python3
"""The multi-tenant service, measured: `wasq serve` over HTTP, then a cluster
draining the tenants' queues.

    cargo build --release --bin wasq
    python3 bench/service.py [--wasq target/release/wasq] [--tenants 10] [--tasks 10000] [--workers 4]

In a temporary directory on the embedded SQLite default (results all kept):
1. enqueue rate through the API, one task per request (POST /v1/tasks) and
   in batches of 1,000 (POST /v1/tasks/batch), spread over the tenants;
2. drain rate: a cluster started on the queued no-op tasks, timed until the
   store holds every result, and the same number of untenanted tasks
   (`wasq enqueue`-style, through the library's batch path) for comparison;
3. the round robin: the order the tenants' tasks started in.
Prints one table; only the standard library is used.
"""

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, wasq, root, env):
        self.wasq, self.root, self.env = wasq, root, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(root, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [wasq, "serve", "--listen", f"127.0.0.1:{self.port}"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("wasq serve did not start; see serve.log")

    def cli(self, *args):
        out = subprocess.run([self.wasq, *args], cwd=self.root, env=self.env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"wasq {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def call(self, key, method, path, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            sys.exit(f"{method} {path}: {error.code} {error.read()[:300]!r}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def count_results(db):
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM wasq_results").fetchone()[0]


def drain(wasq, root, env, workers, expected):
    """Starts a cluster and times it until `expected` results are stored."""
    db = os.path.join(root, ".wasq", "wasq.db")
    start = time.perf_counter()
    cluster = subprocess.Popen([wasq, "cluster", "--workers", str(workers)], cwd=root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while count_results(db) < expected:
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    cluster.terminate()
    cluster.wait()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wasq", default="target/release/wasq")
    parser.add_argument("--module", default="target/wasm/basics.wasm")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--single", type=int, default=1000, help="tasks enqueued one per request")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    wasq, module = os.path.abspath(args.wasq), os.path.abspath(args.module)

    root = tempfile.mkdtemp(prefix="wasq-service-bench-")
    env = dict(os.environ, WASQ_SAVE_LIMIT="0", WASQ_CACHE_DIR=os.path.join(root, "cache"))
    rows = []
    try:
        service = Service(wasq, root, env)
        keys = []
        for t in range(args.tenants):
            name = f"tenant-{t}"
            service.cli("tenant", "create", name)
            keys.append(json.loads(service.cli("key", "create", "--tenant", name, "--json"))["key"])
            with open(module, "rb") as f:
                service.call(keys[-1], "PUT", "/v1/modules/basics", raw=f.read())
        noop = {"module": "basics", "task": "noop"}

        start = time.perf_counter()
        for i in range(args.single):
            service.call(keys[i % len(keys)], "POST", "/v1/tasks", noop)
        single = time.perf_counter() - start
        rows.append(("enqueue, one task per request", args.single, single))

        per_tenant = (args.tasks - args.single) // len(keys)
        start = time.perf_counter()
        for key in keys:
            left = per_tenant
            while left > 0:
                n = min(1000, left)
                service.call(key, "POST", "/v1/tasks/batch", {"tasks": [noop] * n})
                left -= n
        batch = time.perf_counter() - start
        rows.append(("enqueue, batches of 1,000", per_tenant * len(keys), batch))
        total = args.single + per_tenant * len(keys)
        service.stop()

        seconds = drain(wasq, root, env, args.workers, total)
        rows.append((f"drain, {len(keys)} tenants' queues, {args.workers} workers", total, seconds))

        with sqlite3.connect(os.path.join(root, ".wasq", "wasq.db")) as conn:
            order = [q for (q,) in conn.execute(
                "SELECT queue FROM wasq_results ORDER BY started_at, stopped_at LIMIT 200")]
        distinct_first_100 = len(set(order[:100]))

        # The same number of untenanted tasks, for comparison.
        base = tempfile.mkdtemp(prefix="wasq-service-bench-base-")
        try:
            subprocess.run([wasq, "module", "upload", module, "--name", "basics"], cwd=base, env=env,
                           check=True, capture_output=True)
            lines = os.path.join(base, "tasks.jsonl")
            with open(lines, "w") as f:
                for _ in range(total):
                    f.write("[]\n")
            subprocess.run([wasq, "map", "basics", "noop", "--args-file", lines], cwd=base, env=env, check=True,
                           capture_output=True)
            seconds = drain(wasq, base, env, args.workers, total)
            rows.append((f"drain, untenanted queue, {args.workers} workers", total, seconds))
        finally:
            shutil.rmtree(base, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{'what':<44} {'tasks':>7} {'seconds':>8} {'tasks/s':>9}")
    for what, n, seconds in rows:
        print(f"{what:<44} {n:>7} {seconds:>8.2f} {n / seconds:>9.0f}")
    print(f"tenants among the first 100 tasks run: {distinct_first_100} of {args.tenants}")


if __name__ == "__main__":
    main()
