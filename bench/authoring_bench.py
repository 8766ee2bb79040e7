#!/usr/bin/env python3
"""Authoring benchmarks (BENCHMARKS.md, "Authoring").

    python3 bench/authoring_bench.py [BUILDDIR] [SECONDS]

1. Preview of 100 rows, SQLite and PostgreSQL: requests/s, p50, p99 with 8
   clients, three ways: the same query run directly by the C load generator
   (a connection per operation, as shird opens one); POST /v1/preview to
   shird's control socket; and the path a real author uses, HTTP POST
   /{hc}/v1/preview to shir-relay with a ServiceBusAuthorization SAS token
   made from the runtime's service key, which the relay hands to shird over
   its listener control channel (shird registered with shirctl register-node
   and node key 1 of `shir-relay ir create`). Each client keeps one
   keep-alive connection to the relay. All run in one go on one machine;
   ratios are reported, and the CPU time per request used by the load
   generator, shird and shir-relay (both log at info, their default).
2. 1,000 requests at once against concurrent_jobs = 8 (queue_size = 64):
   every answer must be 200 or 429, and shird's peak memory (VmHWM) is
   reported before and after.

Use a build without sanitizers (e.g. ../configure CFLAGS=-O2 in build-bench).
Everything runs on loopback in temp dirs and is stopped at the end.
"""
import json
import os
import re
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


PIDS = {}


def load(*args, env=None):
    """Runs the load generator; adds the CPU time per request (microseconds)
    it, shird and shir-relay used during the run."""
    before = {k: cpu_s(p) for k, p in PIDS.items()}
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([os.path.join(BUILD, "bench", "authoring_load")] + list(args),
                       capture_output=True, text=True, timeout=300, env=env)
    if r.returncode != 0:
        raise SystemExit("authoring_load failed: %s" % r.stderr)
    out = json.loads(r.stdout)
    if "rps" in out:
        ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        n = max(out["requests"], 1)
        out["cpu_us"] = {k: (cpu_s(p) - before[k]) * 1e6 / n for k, p in PIDS.items()}
        out["cpu_us"]["client"] = (ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime) * 1e6 / n
    return out


def cpu_s(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        rport, aport = shirtest.free_port(), shirtest.free_port()
        os.makedirs(h.path("relay"))
        rconf = h.write("shir-relay.conf", "[relay]\nlisten = 127.0.0.1:%d\npublic_url = ws://127.0.0.1:%d\n"
                        "admin = 127.0.0.1:%d\nstate_file = %s\n[log]\nlevel = info\n" % (
                            rport, rport, aport, h.path("relay", "state.json")))
        keys = subprocess.run([os.path.join(BUILD, "shir-relay"), "-f", rconf, "ir", "create", "bench",
                               "--endpoint", "ws://127.0.0.1:%d" % rport],
                              capture_output=True, text=True, check=True).stdout
        node_key = re.search(r"^Node key 1 \(Listen\): *(\S+)", keys, re.M).group(1)
        service_key = re.search(r"^Service key \(Send\): *(\S+)", keys, re.M).group(1)
        skf = h.write("service.key", service_key + "\n", mode=0o600)
        relay = subprocess.Popen([os.path.join(BUILD, "shir-relay"), "-f", rconf],
                                 stdout=open(h.path("relay.log"), "wb"), stderr=subprocess.STDOUT)
        h.on_cleanup(lambda: (relay.terminate(), relay.wait(10)))
        PIDS["relay"] = relay.pid
        shirtest.wait_port(rport)
        os.makedirs(h.path("st"), mode=0o700)
        conf = h.write("shird.conf", "[node]\nname = bench-node\ncontrol_socket = %s\nstate_dir = %s\nconcurrent_jobs = 8\n"
                       "queue_size = 64\n[log]\nlevel = info\n[security]\nallowed_folders = %s\n"
                       "local_machine_access = true\n" % (h.path("s.sock"), h.path("st"), data))

        def nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
        node = subprocess.Popen([os.path.join(BUILD, "shird"), "-f", conf, "-l", "info"],
                                stdout=open(h.path("shird.log"), "wb"), stderr=subprocess.STDOUT,
                                preexec_fn=nofile)
        h.on_cleanup(lambda: (node.terminate(), node.wait(10)))
        PIDS["shird"] = node.pid
        shirtest.wait_until(lambda: "event=authoring.started" in open(h.path("shird.log")).read(),
                            20, "shird to start")
        sock = h.path("s.sock")
        reg = subprocess.run([os.path.join(BUILD, "shirctl"), "--socket", sock, "--conf", conf,
                              "register-node", "-", "bench-node"], input=node_key + "\n",
                             capture_output=True, text=True, timeout=60)
        if reg.returncode != 0:
            raise SystemExit("register-node failed: %s%s" % (reg.stdout, reg.stderr))
        try:
            shirtest.wait_until(lambda: "event=channel.connected" in open(h.path("shird.log")).read(),
                                20, "shird to listen on the relay")
        except shirtest.TestFailure:
            sys.stderr.write(open(h.path("shird.log")).read()[-3000:] + open(h.path("relay.log")).read()[-2000:])
            raise
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
        # the relay path answers real previews (checked with shirctl, the
        # author's own client, on the same key)
        for req in (sq_req, pg_req):
            chk = subprocess.run([os.path.join(BUILD, "shirctl"), "author", "preview", "--json",
                                  "--service-key-file", skf, req], capture_output=True, text=True,
                                 timeout=60)
            if chk.returncode != 0 or len(json.loads(chk.stdout)["rows"]) != 100:
                raise SystemExit("preview through the relay failed: %s%s" % (chk.stdout, chk.stderr))
        res = {}
        res["sqlite direct"] = load("direct-sqlite", db, sql, THREADS, SECONDS)
        res["sqlite shird"] = load("shird", sock, "preview", sq_req, THREADS, SECONDS)
        res["sqlite relay"] = load("relay", skf, "preview", sq_req, THREADS, SECONDS)
        res["pg direct"] = load("direct-pg", conninfo, sql, THREADS, SECONDS, env=penv)
        res["pg shird"] = load("shird", sock, "preview", pg_req, THREADS, SECONDS)
        res["pg relay"] = load("relay", skf, "preview", pg_req, THREADS, SECONDS)
        before = dict(vmhwm(node.pid))
        burst = load("burst", sock, "preview", pg_req, "1000")
        after = dict(vmhwm(node.pid))

        print("| store | path | requests/s | p50 ms | p99 ms | errors | CPU µs/request: client, shird, relay |")
        print("|---|---|---|---|---|---|---|")
        paths = {"direct": "direct (same C client)", "shird": "shird control socket",
                 "relay": "relay + shird (keep-alive)"}
        for k, v in res.items():
            c = v["cpu_us"]
            print("| %s | %s | %.0f | %.2f | %.2f | %d | %.0f, %.0f, %.0f |" % (
                k.split()[0], paths[k.split()[1]], v["rps"], v["p50_ms"], v["p99_ms"], v["errors"],
                c["client"], c["shird"], c["relay"]))
        for s in ("sqlite", "pg"):
            print()
            for a, b in (("shird", "direct"), ("relay", "direct"), ("relay", "shird")):
                n, d = res[s + " " + a], res[s + " " + b]
                print("%s: %s/%s throughput %.2f, p50 ratio %.2f, p99 ratio %.2f" % (
                    s, a, b, n["rps"] / d["rps"], n["p50_ms"] / d["p50_ms"], n["p99_ms"] / d["p99_ms"]))
            print("%s: relay clients opened %d connections for %d requests, answers %s" % (
                s, res[s + " relay"]["connections"], res[s + " relay"]["requests"],
                json.dumps(res[s + " relay"]["status"])))
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
