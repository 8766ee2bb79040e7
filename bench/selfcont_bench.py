#!/usr/bin/env python3
"""Self-contained interactive authoring vs the Hybrid Connections listener, one
run on one shir-relay and one shird (loopback only, ~2 minutes).

  (a) requests/s and p50/p99 of a small authoring request (POST
      /v1/testConnection of a FileSystem linked service) sent with the Send key
      through the relay (wrk -t2 -c16 -d10s), the runtime's self-contained mode
      on (HTTP/2 streams) and off (the listener: JSON control message, inline
      answer or rendezvous), with the CPU time each process spent per request
      (utime + stime from /proc: where the time goes);
  (b) time to fetch a 10 MB answer (the node's test route
      GET /v1/test/blob?bytes=10485760) both ways, best of 5, read by Python's
      urllib, then (b2) by curl (time to first byte and total); (b3) a real
      preview of the largest size a preview may have (a SQLite table of wide
      rows: 4 MiB of row bytes, the answer's cap), read by curl, best of 5;
  (c) memory per idle self-contained connection: the relay's VmRSS before and
      after 200 connections made by this script (Upgrade: reverse with a Listen
      token, then the node's HTTP/2 SETTINGS), and shird's VmRSS with 4
      connections against 1;
  (d) 1,000 concurrent streams on one connection (selfcontained.connections = 1):
      each a request of 1 KB answered after 1 s; p50/p99 latency and the peak
      VmRSS of relay and node.

Usage: bench/selfcont_bench.py BUILDDIR   (a build without sanitizers: ../configure)
       PARTS=a (or b, c, d, ab, ...) runs only those parts; SC_CONNS=N gives the
       node N self-contained connections for (a) and (b) (default 2).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import cleanup, free_port, start, status_kb

B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
RELAY, SHIRD = os.path.join(B, "shir-relay"), os.path.join(B, "shird")
tmp = tempfile.mkdtemp(prefix="shir-sc-bench-")
parts = os.environ.get("PARTS", "abcd")
HC = "bench-ir"


def write(name, text, mode=0o644):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def sas(uri, name, key, ttl=3600):
    se = str(int(time.time()) + ttl)
    sr = urllib.parse.quote(uri, safe="")
    sig = base64.b64encode(hmac.new(key.encode(), (sr + "\n" + se).encode(),
                                    hashlib.sha256).digest()).decode()
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (
        sr, urllib.parse.quote(sig, safe=""), se, name)


def decode(w):
    b = w[len("IR@v1@"):]
    return json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))


rp, admin = free_port(), free_port()
rconf = write("relay.conf", "[relay]\nlisten = 127.0.0.1:%d\nadmin = 127.0.0.1:%d\nstate_file = %s\n"
              "[log]\nlevel = info\n[limits]\nmax_handshakes_per_address = 4096\n"
              "max_connections_per_address = 8192\n" % (rp, admin, os.path.join(tmp, "state.json")))
out = subprocess.run([RELAY, "-f", rconf, "ir", "create", HC, "--self-contained"],
                     capture_output=True, text=True, check=True).stdout
keys = {decode(w)["keyName"]: decode(w) for w in out.split() if w.startswith("IR@v1@")}
relay = start([RELAY, "-f", rconf], wait=r"event=ready")
threading.Thread(target=lambda: [None for _ in relay.stdout], daemon=True).start()
data = os.path.join(tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "a.csv"), "w") as f:
    f.write("id,name\n1,x\n")
kf = write("node.key", keys["node-key1"]["key"] + "\n", 0o600)
TOK = sas("http://127.0.0.1:%d/%s" % (rp, HC), "service-key", keys["service-key"]["key"])
node = None


def start_node(conns, jobs=8, queue=64):
    global node
    if node is not None:
        node.terminate()
        node.wait(10)
    sock = os.path.join(tmp, "shird.sock")
    conf = write("shird.conf", "[node]\nname = bench-node\ncontrol_socket = %s\nstate_dir = %s\n"
                 "concurrent_jobs = %d\nqueue_size = %d\n[log]\nlevel = warn\n[security]\n"
                 "allowed_folders = %s\n[relay]\nendpoint = ws://127.0.0.1:%d\npath = %s\n"
                 "key_name = node-key1\nkey_file = %s\ntest_routes = true\n[selfcontained]\n"
                 "endpoint = ws://127.0.0.1:%d\nconnections = %d\n" % (
                     sock, os.path.join(tmp, "state"), jobs, queue, data, rp, HC, kf, rp, conns))
    node = start([SHIRD, "-f", conf])
    threading.Thread(target=lambda p=node: [None for _ in p.stdout], daemon=True).start()
    wait_conns(conns)
    return node


def relay_status():
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % admin, timeout=5) as r:
        return [e for e in json.loads(r.read())["entities"] if e["name"] == HC][0]


def wait_conns(n, listener=True):
    end = time.time() + 30
    while time.time() < end:
        e = relay_status()
        if len(e["selfContainedConnections"]) >= n and (not listener or e["listeners"]):
            return
        time.sleep(0.1)
    raise SystemExit("the node did not connect")


def set_mode(on):
    subprocess.run([RELAY, "-f", rconf, "ir", "set", HC, "--self-contained", "on" if on else "off"],
                   check=True, capture_output=True)
    end = time.time() + 10
    while relay_status()["selfContained"] != on:
        if time.time() > end:
            raise SystemExit("the relay did not take the mode")
        time.sleep(0.1)
    time.sleep(0.5)  # the node is told over its connection


def get(path, timeout=120):
    rq = urllib.request.Request("http://127.0.0.1:%d/%s%s" % (rp, HC, path),
                                headers={"ServiceBusAuthorization": TOK})
    with urllib.request.urlopen(rq, timeout=timeout) as r:
        return r.read()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


try:
    print("# Self-contained vs listener (bench/selfcont_bench.py; loopback; a shared, loaded "
          "2-core machine)\n")
    start_node(int(os.environ.get("SC_CONNS", "2")))
    if "a" in parts:
        lua = write("post.lua", 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = '
                    '"application/json"\nwrk.headers["ServiceBusAuthorization"] = "%s"\n' % (
                        json.dumps(json.dumps({"linkedService": {"type": "FileSystem",
                                                                 "properties": {"root": data}}})),
                        TOK))
        print("## (a) small authoring request (testConnection), wrk -t2 -c16 -d10s --latency\n")
        print("| path | requests/s | p50 | p99 | non-2xx | CPU us/request: relay | shird | wrk | all |")
        print("|---|---|---|---|---|---|---|---|---|")
        res = {}

        def cpu_ticks(pid):
            with open("/proc/%d/stat" % pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
            return int(v[11]) + int(v[12])  # utime + stime
        hz = os.sysconf("SC_CLK_TCK")
        for name, on in (("self-contained (HTTP/2 stream)", True), ("listener (HC control channel)", False),
                         ("self-contained, again", True)):
            set_mode(on)
            c0 = (cpu_ticks(relay.pid), cpu_ticks(node.pid), resource.getrusage(resource.RUSAGE_CHILDREN))
            r = subprocess.run(["wrk", "-t2", "-c16", "-d10s", "--latency", "-s", lua,
                                "http://127.0.0.1:%d/%s/v1/testConnection" % (rp, HC)],
                               capture_output=True, text=True, timeout=60)
            c1 = (cpu_ticks(relay.pid), cpu_ticks(node.pid), resource.getrusage(resource.RUSAGE_CHILDREN))
            rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
            p50 = re.search(r"^\s+50%\s+(\S+)", r.stdout, re.M)
            p99 = re.search(r"^\s+99%\s+(\S+)", r.stdout, re.M)
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
            nreq = re.search(r"(\d+) requests in", r.stdout)
            nreq = int(nreq.group(1)) if nreq else 0
            res[name] = float(rps.group(1)) if rps else 0
            us = [(c1[0] - c0[0]) * 1e6 / hz, (c1[1] - c0[1]) * 1e6 / hz,
                  ((c1[2].ru_utime + c1[2].ru_stime) - (c0[2].ru_utime + c0[2].ru_stime)) * 1e6]
            us = [u / nreq if nreq else 0 for u in us]
            print("| %s | %s | %s | %s | %s | %.0f | %.0f | %.0f | %.0f |" % (
                name, rps.group(1) if rps else "?", p50.group(1) if p50 else "?",
                p99.group(1) if p99 else "?", bad.group(1) if bad else "0", us[0], us[1], us[2],
                sum(us)))
        print("\nratio self-contained / listener: %.2f (first run), %.2f (second run)\n" % (
            res["self-contained (HTTP/2 stream)"] / res["listener (HC control channel)"],
            res["self-contained, again"] / res["listener (HC control channel)"]))

    if "b" in parts:
        print("## (b) a 10 MB answer (GET /v1/test/blob?bytes=10485760), best of 5\n")
        print("| path | seconds | MB/s |")
        print("|---|---|---|")
        best = {}
        for name, on in (("self-contained", True), ("listener (rendezvous)", False)):
            set_mode(on)
            ts = []
            for _ in range(5):
                t0 = time.monotonic()
                n = len(get("/v1/test/blob?bytes=10485760"))
                ts.append(time.monotonic() - t0)
                assert n == 10485760, n
            best[name] = min(ts)
            print("| %s | %.3f | %.0f |" % (name, min(ts), 10 / min(ts)))
        print("\nratio listener time / self-contained time: %.2f\n" % (
            best["listener (rendezvous)"] / best["self-contained"]))
        # the same with curl (a C reader: Python's own reading is not in the
        # figure); time to the first byte and to the last, best of 5 each
        print("(b2) the same read by curl, best of 5: time to first byte / total\n")
        print("| path | first byte s | total s | MB/s |")
        print("|---|---|---|---|")
        cbest = {}
        for name, on in (("self-contained", True), ("listener (rendezvous)", False)):
            set_mode(on)
            rows = []
            for _ in range(5):
                r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H",
                                    "ServiceBusAuthorization: " + TOK, "-w",
                                    "%{time_starttransfer} %{time_total} %{size_download}",
                                    "http://127.0.0.1:%d/%s/v1/test/blob?bytes=10485760" % (rp, HC)],
                                   capture_output=True, text=True, timeout=120)
                f = r.stdout.split()
                assert len(f) == 3 and int(f[2]) == 10485760, r.stdout + r.stderr
                rows.append((float(f[1]), float(f[0])))
            t, ttfb = min(rows)
            cbest[name] = t
            print("| %s | %.3f | %.3f | %.0f |" % (name, ttfb, t, 10 / t))
        print("\nratio listener time / self-contained time (curl): %.2f\n" % (
            cbest["listener (rendezvous)"] / cbest["self-contained"]))
        # (b3) a real preview as large as a preview may be (4 MiB of row bytes)
        import sqlite3
        db = os.path.join(data, "wide.db")
        if not os.path.exists(db):
            con = sqlite3.connect(db)
            con.execute("CREATE TABLE t (id INTEGER, a TEXT, b TEXT, c TEXT, d TEXT)")
            con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                            [(i, "a" * 4000, "b" * 4000, "c" * 4000, "d" * 4000) for i in range(2000)])
            con.commit()
            con.close()
        pv = write("preview.json", json.dumps({
            "linkedService": {"type": "Sqlite", "properties": {"path": db}},
            "dataset": {"type": "Query", "query": "SELECT * FROM t"}, "limit": 1000}))
        print("(b3) a SQLite preview of 4 MiB of rows (the cap of a preview answer), read by curl, "
              "best of 5: time to first byte / total\n")
        print("| path | bytes | first byte s | total s | MB/s |")
        print("|---|---|---|---|---|")
        pbest, psize = {}, {}
        for name, on in (("self-contained (streamed)", True), ("listener (rendezvous)", False)):
            set_mode(on)
            rows = []
            for _ in range(5):
                r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H",
                                    "ServiceBusAuthorization: " + TOK, "-H",
                                    "Content-Type: application/json", "--data-binary", "@" + pv, "-w",
                                    "%{http_code} %{time_starttransfer} %{time_total} %{size_download}",
                                    "http://127.0.0.1:%d/%s/v1/preview" % (rp, HC)],
                                   capture_output=True, text=True, timeout=120)
                f = r.stdout.split()
                assert len(f) == 4 and f[0] == "200" and int(f[3]) > 4000000, r.stdout + r.stderr
                rows.append((float(f[2]), float(f[1]), int(f[3])))
            t, ttfb, size = min(rows)
            pbest[name], psize[name] = t, size
            print("| %s | %d | %.3f | %.3f | %.0f |" % (name, size, ttfb, t, size / 1e6 / t))
        assert len(set(psize.values())) == 1, psize
        print("\nratio listener time / self-contained time (preview): %.2f\n" % (
            pbest["listener (rendezvous)"] / pbest["self-contained (streamed)"]))

    if "c" in parts:
        set_mode(True)
        print("## (c) memory per idle self-contained connection\n")
        lk = keys["node-key2"]
        tok = sas("http://127.0.0.1:%d/$hc/%s" % (rp, HC), "node-key2", lk["key"])
        settings = (0).to_bytes(3, "big") + bytes([4, 0]) + (0).to_bytes(4, "big")
        before = status_kb(relay.pid, "VmRSS")
        socks = []
        for i in range(200):
            c = socket.create_connection(("127.0.0.1", rp))
            c.sendall(("GET /$shir/v1/tunnel/%s HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
                       "Upgrade: reverse\r\nALPN: h2\r\nServiceBusAuthorization: %s\r\n"
                       "Shir-Node-Name: bench-%d\r\nShir-Capacity: 8\r\n\r\n" % (HC, tok, i)).encode())
            got = b""
            while b"\r\n\r\n" not in got:
                d = c.recv(4096)
                if not d:
                    raise SystemExit("the relay closed connection %d: %r" % (i, got[:200]))
                got += d
            assert got.startswith(b"HTTP/1.1 101"), got[:100]
            c.sendall(settings + (0).to_bytes(3, "big") + bytes([4, 1]) + (0).to_bytes(4, "big"))
            socks.append(c)
        time.sleep(1)
        after = status_kb(relay.pid, "VmRSS")
        print("| side | connections | VmRSS before (KiB) | after (KiB) | per connection |")
        print("|---|---|---|---|---|")
        print("| shir-relay | 200 | %d | %d | %.1f KiB |" % (before, after, (after - before) / 200.0))
        for c in socks:
            c.close()
        rss = {}
        for n in (1, 4):
            p = start_node(n)
            time.sleep(2)
            rss[n] = status_kb(p.pid, "VmRSS")
        print("| shird | 1 -> 4 | %d | %d | %.1f KiB |\n" % (rss[1], rss[4], (rss[4] - rss[1]) / 3.0))

    if "d" in parts:
        set_mode(True)
        print("## (d) 1,000 concurrent streams on one connection (1 KB answered after 1 s each)\n")
        p = start_node(1, jobs=16, queue=1200)
        lat, errs, peak = [], [], {"relay": 0, "node": 0}
        go = threading.Event()

        def one():
            go.wait()
            t0 = time.monotonic()
            try:
                n = len(get("/v1/test/blob?bytes=1000&delay_ms=1000", 60))
                if n != 1000:
                    errs.append(n)
                lat.append(time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001 - counted
                errs.append(repr(e))
        ts = [threading.Thread(target=one) for _ in range(1000)]
        for t in ts:
            t.start()
        stop = False

        def sample():
            while not stop:
                peak["relay"] = max(peak["relay"], status_kb(relay.pid, "VmRSS"))
                peak["node"] = max(peak["node"], status_kb(p.pid, "VmRSS"))
                time.sleep(0.05)
        sm = threading.Thread(target=sample)
        sm.start()
        t0 = time.monotonic()
        go.set()
        for t in ts:
            t.join(120)
        wall = time.monotonic() - t0
        stop = True
        sm.join()
        st = relay_status()["selfContainedConnections"]
        print("| answered | errors | wall s | p50 s | p99 s | peak relay VmRSS | peak shird VmRSS | "
              "streams on the connection |")
        print("|---|---|---|---|---|---|---|---|")
        print("| %d | %d | %.2f | %.3f | %.3f | %d KiB | %d KiB | %d |" % (
            len(lat), len(errs), wall, pct(lat, 0.5), pct(lat, 0.99), peak["relay"], peak["node"],
            st[0]["streamsTotal"] if st else -1))
        if errs:
            print("\nfirst errors: %r" % errs[:3])
finally:
    cleanup()
