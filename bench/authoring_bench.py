#!/usr/bin/env python3
"""Authoring benchmarks (BENCHMARKS.md, "Authoring").

    python3 bench/authoring_bench.py [BUILDDIR] [SECONDS]

1. Preview of 100 rows, SQLite and PostgreSQL: requests/s, p50, p99 with 8
   clients, through shird's control socket versus the same query run
   directly by the same C load generator (a connection per operation, as
   shird opens one). Both run in one go on one machine; ratios are reported.
2. 1,000 requests at once against concurrent_jobs = 8 (queue_size = 64):
   every answer must be 200 or 429, and shird's peak memory (VmHWM) is
   reported before and after.

Use a build without sanitizers (e.g. ../configure CFLAGS=-O2 in build-bench).
Everything runs on loopback in temp dirs and is stopped at the end.
"""
import json
import os
import resource
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build-bench"))
SECONDS = sys.argv[2] if len(sys.argv) > 2 else "10"
THREADS = "8"
os.environ["SHIR_BUILDDIR"] = BUILD

import shirtest  # noqa: E402
from stores import READER, READER_PASSWORD, Postgres  # noqa: E402


def load(*args, env=None):
    r = subprocess.run([os.path.join(BUILD, "bench", "authoring_load")] + list(args),
                       capture_output=True, text=True, timeout=300, env=env)
    if r.returncode != 0:
        raise SystemExit("authoring_load failed: %s" % r.stderr)
    return json.loads(r.stdout)


def vmhwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                yield line.split()[0][:-1], int(line.split()[1])


def main():
    h = shirtest.Harness("bench")
    pg = None
    try:
        pg = Postgres()
        pg.sql("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), "
               "at timestamptz); INSERT INTO items SELECT g, 'item ' || g, g * 1.25, "
               "'2026-11-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 10000) g; "
               "GRANT SELECT ON items TO %s" % READER)
        data = h.path("data")
        os.makedirs(data)
        db = os.path.join(data, "shop.db")
        c = sqlite3.connect(db)
        c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2), at DATETIME)")
        c.executemany("INSERT INTO items VALUES (?, ?, ?, ?)",
                      [(i, "item %d" % i, i * 1.25, "2026-11-01 10:%02d:00" % (i % 60)) for i in range(1, 10001)])
        c.commit()
        c.close()
        conf = h.write("shird.conf", "[node]\ncontrol_socket = %s\nstate_dir = %s\nconcurrent_jobs = 8\n"
                       "queue_size = 64\n[log]\nlevel = warn\n[security]\nallowed_folders = %s\n"
                       "local_machine_access = true\n" % (h.path("s.sock"), h.path("st"), data))

        def nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
        node = subprocess.Popen([os.path.join(BUILD, "shird"), "-f", conf, "-l", "info"],
                                stdout=open(h.path("shird.log"), "wb"), stderr=subprocess.STDOUT,
                                preexec_fn=nofile)
        h.on_cleanup(lambda: (node.terminate(), node.wait(10)))
        shirtest.wait_until(lambda: "event=authoring.started" in open(h.path("shird.log")).read(),
                            20, "shird to start")
        sock = h.path("s.sock")
        sq_req = h.write("sq.json", json.dumps({
            "linkedService": {"type": "Sqlite", "properties": {"path": db}},
            "dataset": {"type": "Table", "table": "items"}, "limit": 100}))
        pg_req = h.write("pg.json", json.dumps({
            "linkedService": pg.linked_service(), "dataset": {"type": "Table", "table": "items"},
            "limit": 100}))
        penv = dict(os.environ, PGPASSWORD=READER_PASSWORD)
        conninfo = "host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable" % (
            pg.port, pg.database, READER)
        sql = "SELECT * FROM items LIMIT 101"
        res = {}
        res["sqlite direct"] = load("direct-sqlite", db, sql, THREADS, SECONDS)
        res["sqlite shird"] = load("shird", sock, "preview", sq_req, THREADS, SECONDS)
        res["pg direct"] = load("direct-pg", conninfo, sql, THREADS, SECONDS, env=penv)
        res["pg shird"] = load("shird", sock, "preview", pg_req, THREADS, SECONDS)
        before = dict(vmhwm(node.pid))
        burst = load("burst", sock, "preview", pg_req, "1000")
        after = dict(vmhwm(node.pid))

        print("| store | path | requests/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|")
        for k, v in res.items():
            print("| %s | %s | %.0f | %.2f | %.2f | %d |" % (
                k.split()[0], "shird control socket" if "shird" in k else "direct (same C client)",
                v["rps"], v["p50_ms"], v["p99_ms"], v["errors"]))
        for s in ("sqlite", "pg"):
            d, n = res[s + " direct"], res[s + " shird"]
            print("\n%s: shird/direct throughput %.2f, p50 ratio %.2f, p99 ratio %.2f" % (
                s, n["rps"] / d["rps"], n["p50_ms"] / d["p50_ms"], n["p99_ms"] / d["p99_ms"]))
        print("\nburst: %s" % json.dumps(burst))
        print("shird memory before burst: VmHWM %d KiB, VmRSS %d KiB; after: VmHWM %d KiB, VmRSS %d KiB"
              % (before["VmHWM"], before["VmRSS"], after["VmHWM"], after["VmRSS"]))
        bad = {k: v for k, v in burst["status"].items() if k not in ("200", "429")}
        if bad or burst["unanswered"] or burst["transport_errors"]:
            print("FAILED: answers other than 200/429: %r" % burst)
            return 1
        return 0
    finally:
        h.close()
        if pg:
            pg.close()


if __name__ == "__main__":
    sys.exit(main())
