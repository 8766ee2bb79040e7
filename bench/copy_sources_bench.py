#!/usr/bin/env python3
"""Copy-job sources benchmark (BENCHMARKS.md, "Copy: MySQL/MariaDB and Json sources").

    python3 bench/copy_sources_bench.py [BUILDDIR] [ROWS]

A real shir-relay, a real shird (registered, node.copy_jobs = 1) and a real
MariaDB server on loopback. A table of ROWS rows (default 1,000,000; eight
columns: integers, a decimal, a double, a datetime, text with nulls) is
copied by a job into a writable folder as CSV and as Parquet (MySql
linked service, mysql_use_result), and a JSON Lines file of the same rows
as CSV (FileSystem Json). Each job is timed from submission to the relay
answering Succeeded (polled every 20 ms). Baselines in the same run: the
MariaDB client streaming the same SELECT to a file (`mariadb --quick
--batch`, tab-separated: the server's own client, unbuffered) and Python's
json module reading the JSON Lines file and writing CSV. shird's peak RSS
(VmHWM) is read before and after.

Use a build without sanitizers (../configure in build-bench).
"""
import csv
import json
import os
import subprocess
import sys
import time

import benchlib
from benchlib import copy_node, run_job, status_kb

BUILD = benchlib.setup(sys.argv)
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000

import shirtest  # noqa: E402
from stores import READER, READER_PASSWORD, MariaDB  # noqa: E402

shirtest._tests.clear()

TABLE = """
DROP TABLE IF EXISTS bench_items;
CREATE TABLE bench_items (id BIGINT PRIMARY KEY, qty INT NOT NULL, small SMALLINT, price DECIMAL(12,2),
  ratio DOUBLE, at DATETIME, name VARCHAR(64), note VARCHAR(64)) ENGINE=InnoDB;
INSERT INTO bench_items SELECT seq, seq * 3, seq % 30000, seq * 1.25, seq / 8,
  TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq SECOND, IF(seq % 10 = 0, NULL, CONCAT('customer-', seq % 100000)),
  CONCAT('n; ', seq) FROM seq_0_to_{last};
"""
SELECT = "SELECT id, qty, small, price, ratio, at, name, note FROM bench_items"


def timed_job(snd, spec):
    return run_job(snd, spec, rows=ROWS)[0]


def main():
    h = shirtest.Harness("copysrcbench")
    db = MariaDB()
    try:
        db.sql(TABLE.replace("{last}", str(ROWS - 1)))
        data, out = h.path("data"), h.path("out")
        os.makedirs(data)
        os.makedirs(out)
        jl = os.path.join(data, "items.jsonl")
        extra = "writable_folders = %s\n[node]\ncopy_jobs = 1\n" % out
        r, n, snd, idle_rss = copy_node(h, allowed=data, extra=extra)
        results = []
        ls = db.linked_service()
        # baseline: the MariaDB client, unbuffered, to a file
        base_out = os.path.join(h.tmp, "client.tsv")
        t0 = time.monotonic()
        with open(base_out, "wb") as f:
            subprocess.run(["mariadb", "--no-defaults", "--quick", "--batch", "-h", "127.0.0.1", "-P", str(db.port),
                            "-u", READER, "-p" + READER_PASSWORD, db.database, "-e", SELECT], stdout=f, check=True)
        base = time.monotonic() - t0
        results.append(("mariadb --quick --batch", base, os.path.getsize(base_out)))
        for fmt, name in (("DelimitedText", "my.csv"), ("Parquet", "my.parquet")):
            dt = timed_job(snd, {"source": {"linkedService": ls, "dataset": {"type": "Query", "query": SELECT}},
                                 "sink": {"type": "FileSystem", "folder": out, "path": name},
                                 "format": {"type": fmt}})
            results.append(("shird MySql -> " + fmt, dt, os.path.getsize(os.path.join(out, name))))
        # Json: the same rows as JSON Lines
        with open(os.path.join(out, "my.csv"), newline="") as fi, open(jl, "w") as fo:
            rd = csv.reader(fi)
            cols = next(rd)
            for row in rd:
                fo.write(json.dumps(dict(zip(cols, row))) + "\n")
        t0 = time.monotonic()
        with open(jl) as fi, open(os.path.join(h.tmp, "py.csv"), "w", newline="") as fo:
            w = None
            for line in fi:
                o = json.loads(line)
                if w is None:
                    w = csv.writer(fo)
                    w.writerow(list(o))
                w.writerow(list(o.values()))
        py = time.monotonic() - t0
        results.append(("python json -> csv", py, os.path.getsize(os.path.join(h.tmp, "py.csv"))))
        dt = timed_job(snd, {"source": {"linkedService": {"type": "FileSystem", "properties": {"root": data}},
                                        "dataset": {"type": "Json", "path": "items.jsonl", "jsonLines": True}},
                             "sink": {"type": "FileSystem", "folder": out, "path": "js.csv"},
                             "format": {"type": "DelimitedText"}})
        results.append(("shird Json -> DelimitedText", dt, os.path.getsize(os.path.join(out, "js.csv"))))
        hwm = status_kb(n.p.pid, "VmHWM")
        print("rows=%d json_lines_bytes=%d" % (ROWS, os.path.getsize(jl)))
        print("%-30s %9s %12s %10s %14s" % ("copy", "seconds", "rows/s", "vs base", "output bytes"))
        for name, t, outb in results:
            b = py if "Json" in name or "json" in name else base
            print("%-30s %9.3f %12.0f %10.2f %14d" % (name, t, ROWS / t, b / t, outb))
        print("shird_peak_rss_kb=%d (idle rss %d, +%d)" % (hwm, idle_rss, hwm - idle_rss))
        n.stop_clean()
    finally:
        h.close()
        db.close()


if __name__ == "__main__":
    main()
