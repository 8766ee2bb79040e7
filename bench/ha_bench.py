#!/usr/bin/env python3
"""Benchmarks of several nodes on one runtime (docs/ha.md), all on loopback:

  propagation N   a credential set on node 1 until every node stored it, for N nodes;
                  baseline: the same `shirctl credentials set` stored locally on node 1
  direct N        the same propagation with node-to-node TLS (every node on its own
                  loopback port, links up) against sync through the relay only
                  (baseline, remote access off), for N nodes, in one run
  failover        3 nodes under 6 closed-loop senders (300 ms requests), node 2 killed -9
                  after 3 s; baseline: the same load with no kill
  rest N          CPU and RSS of N idle nodes for SECONDS without the runtime data key
                  (baseline), then the same with it (digest exchange every 5 s)

usage: ha_bench.py BUILDDIR [propagation N... | direct N... | failover | rest N SECONDS]"""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

B = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="shir-ha-bench-")
PW = "bench password\n"
RUN = [TMP]


def path(*p):
    return os.path.join(RUN[0], *p)


def write(name, text, mode=0o644):
    with open(path(name), "w") as f:
        f.write(text)
    os.chmod(path(name), mode)
    return path(name)


def ts_of(line):
    m = re.search(r"ts=(\S+)Z", line)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp() if m else None


class Relay:
    def __init__(self):
        self.port = benchlib.free_port()
        self.conf = write("relay.conf", "[relay]\nlisten = 127.0.0.1:%d\nstate_file = %s\n"
                          "[log]\nlevel = info\n" % (
                              self.port, path("relay-state.json")))
        out = subprocess.run([B + "/shir-relay", "-f", self.conf, "ir", "create", "myhc"],
                             capture_output=True, text=True, check=True).stdout
        self.keys = {}
        for w in out.split():
            if w.startswith("IR@v1@"):
                b = w[6:]
                k = json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))
                self.keys[k["keyName"]] = k
        self.log = open(path("relay.log"), "w")
        self.p = subprocess.Popen([B + "/shir-relay", "-f", self.conf], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        benchlib.procs.append(self.p)
        benchlib.wait_port(self.port)

    def token(self):
        k = self.keys["service-key"]
        uri = "http://127.0.0.1:%d/myhc" % self.port
        se = str(int(time.time()) + 3600)
        sr = urllib.parse.quote(uri, safe="")
        sig = base64.b64encode(hmac.new(k["key"].encode(), (sr + "\n" + se).encode(),
                                        hashlib.sha256).digest()).decode()
        return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (
            sr, urllib.parse.quote(sig, safe=""), se, k["keyName"])


class Node:
    def __init__(self, relay, name, extra="", node_extra=""):
        self.name = name
        k = relay.keys["node-key1"]
        key = write(name + ".key", k["key"] + "\n", 0o600)
        self.sock = path(name + ".sock")
        self.conf = write(name + ".conf", (
            "[node]\nname = %s\ncontrol_socket = %s\nstate_dir = %s\nconcurrent_jobs = 4\n%s"
            "[log]\nlevel = info\n[relay]\nendpoint = ws://127.0.0.1:%d\npath = myhc\n"
            "key_name = node-key1\nkey_file = %s\n%s") % (
                name, self.sock, path("state-" + name), node_extra, relay.port, key, extra))
        self.logpath = path(name + ".log")
        self.start()

    def start(self):
        self.log = open(self.logpath, "a")
        self.p = subprocess.Popen([B + "/shird", "-f", self.conf], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        benchlib.procs.append(self.p)

    def ctl(self, *args, input=None):
        return subprocess.run([B + "/shirctl", "--socket", self.sock, "--conf", self.conf] +
                              list(args), input=input, capture_output=True, text=True,
                              timeout=60)

    def text(self):
        with open(self.logpath) as f:
            return f.read()

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.p.pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return int(v[11]) + int(v[12])


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("timeout: " + what)
        time.sleep(0.05)


def remote_access():
    port = benchlib.free_port()
    return ("remote_access = true\nremote_access_port = %d\nremote_access_listen = 127.0.0.1\n"
            "remote_access_address = 127.0.0.1:%d\n" % (port, port))


def runtime(n, extra="", key=True, direct=False):
    RUN[0] = tempfile.mkdtemp(dir=TMP)
    relay = Relay()
    nodes = [Node(relay, "n%02d" % (i + 1), extra, remote_access() if direct else "")
             for i in range(n)]
    for nd in nodes:
        wait(lambda: "event=channel.connected" in nd.text(), 60, nd.name + " connected")
    if key:
        join(nodes)
    return relay, nodes


def join(nodes):
    nodes[0].ctl("cluster", "init")
    nodes[0].ctl("cluster", "export-key", path("rt.key"), input=PW)
    for nd in nodes[1:]:
        nd.ctl("cluster", "join", path("rt.key"), input=PW)
    for nd in nodes:
        wait(lambda: "event=sync.enabled" in nd.text(), 30, nd.name + " sync")


def all_direct(nodes):
    for nd in nodes:
        st = json.loads(nd.ctl("cluster", "status", "--json").stdout or "{}")
        peers = st.get("peers", [])
        if len(peers) != len(nodes) - 1 or any(p.get("path") != "direct" for p in peers):
            return False
    return True


def sync_msgs(nd):
    st = json.loads(nd.ctl("cluster", "status", "--json").stdout)
    return st["syncMessages"]


def spread_of(n, rounds, direct):
    """Per round: seconds from the set on node 1 to the last node storing it."""
    relay, nodes = runtime(n, direct=direct)
    time.sleep(6)      # one digest exchange: everyone has heard everyone
    if direct:
        wait(lambda: all_direct(nodes), 90, "every link up")
    before = sync_msgs(nodes[0])
    spread, wire = [], []
    for r in range(rounds):
        name = "bench-%d" % r
        nodes[0].ctl("credentials", "set", name, input="v%d\n" % r)
        pat = re.compile(r"event=credential.synced name=%s " % name)
        wait(lambda: all(pat.search(nd.text()) for nd in nodes[1:]), 60, "propagation")
        t1 = nodes[0].text()
        m = re.search(r".*event=credential.stored name=%s .*" % name, t1)
        t0 = ts_of(m.group(0))
        # the push that carried it: the first one logged after the store
        tp = ts_of(re.search(r".*event=sync.push .*", t1[m.end():]).group(0))
        last = max(ts_of([l for l in nd.text().splitlines() if pat.search(l)][0])
                   for nd in nodes[1:])
        spread.append(last - t0)
        wire.append(last - tp)
        time.sleep(0.3)
    after = sync_msgs(nodes[0])
    benchlib.cleanup()
    moved = {p: after[p]["sent"]["records"] - before[p]["sent"]["records"]
             for p in ("direct", "relay")}
    spread.sort()
    wire.sort()
    return spread, wire, moved


def direct_vs_relay(n, rounds=9):
    relay_s, relay_w, relay_m = spread_of(n, rounds, False)
    direct_s, direct_w, direct_m = spread_of(n, rounds, True)
    med = lambda v: v[len(v) // 2]   # noqa: E731
    for what, v, w, m in (("relay only (baseline)", relay_s, relay_w, relay_m),
                          ("direct TLS", direct_s, direct_w, direct_m)):
        print("direct nodes=%d %-21s rounds=%d set->stored on all median=%.0f ms max=%.0f ms; "
              "push->stored on all median=%.1f ms max=%.1f ms (node 1 sent records: direct %d, "
              "relay %d)" % (n, what, rounds, 1000 * med(v), 1000 * v[-1], 1000 * med(w),
                             1000 * w[-1], m["direct"], m["relay"]))
    print("direct nodes=%d ratio relay/direct (median): set->stored %.2f, push->stored %.2f" % (
        n, med(relay_s) / max(med(direct_s), 1e-6), med(relay_w) / max(med(direct_w), 1e-6)))


def propagation(n, rounds=5):
    relay, nodes = runtime(n)
    time.sleep(6)      # one digest exchange: everyone has heard everyone
    local, spread = [], []
    for r in range(rounds):
        name = "bench-%d" % r
        t = time.monotonic()
        nodes[0].ctl("credentials", "set", name, input="v%d\n" % r)
        local.append(time.monotonic() - t)
        pat = re.compile(r"event=credential.synced name=%s " % name)

        def all_have():
            return all(pat.search(nd.text()) for nd in nodes[1:])
        wait(all_have, 60, "propagation")
        t0 = ts_of(re.search(r".*event=credential.stored name=%s .*" % name,
                             nodes[0].text()).group(0))
        last = max(ts_of([l for l in nd.text().splitlines() if pat.search(l)][0])
                   for nd in nodes[1:])
        spread.append(last - t0)
    benchlib.cleanup()
    local.sort()
    spread.sort()
    print("propagation nodes=%d rounds=%d local_set_ms median=%.0f  set->stored on all "
          "median=%.0f ms max=%.0f ms  ratio(median)=%.1f" % (
              n, rounds, 1000 * local[len(local) // 2], 1000 * spread[len(spread) // 2],
              1000 * spread[-1], spread[len(spread) // 2] / local[len(local) // 2]))


def load(relay, seconds, kill=None):
    cfg = write("load.cfg", 'header = "ServiceBusAuthorization: %s"\n' % relay.token(), 0o600)
    res, stop = [], threading.Event()
    lock = threading.Lock()

    def run():
        while not stop.is_set():
            t = time.monotonic()
            r = subprocess.run(["curl", "-sS", "-K", cfg, "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "60", "http://127.0.0.1:%d/myhc/v1/test/blob?"
                                "bytes=2000&delay_ms=300" % relay.port],
                               capture_output=True, text=True)
            with lock:
                res.append((int(r.stdout or 0), time.monotonic() - t))
    ts = [threading.Thread(target=run) for _ in range(6)]
    for t in ts:
        t.start()
    if kill:
        time.sleep(3)
        kill()
        time.sleep(seconds - 3)
    else:
        time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    codes = {}
    for c, _ in res:
        codes[c] = codes.get(c, 0) + 1
    return codes, max(w for _, w in res), len(res)


def failover():
    relay, nodes = runtime(3, extra="test_routes = true\n", key=False)
    base = load(relay, 8)

    def kill():
        nodes[1].p.kill()
    hit = load(relay, 8, kill)
    benchlib.cleanup()
    for what, (codes, longest, n) in (("no kill (baseline)", base), ("node 2 killed", hit)):
        print("failover %-18s requests=%d answered_200=%.1f%% 503_retry=%d other=%d "
              "longest_wait=%.2fs" % (what, n, 100.0 * codes.get(200, 0) / n, codes.get(503, 0),
                                      n - codes.get(200, 0) - codes.get(503, 0), longest))
    print("failover longest wait ratio (kill / baseline) = %.2f" % (hit[1] / base[1]))


def rest(n, seconds):
    relay, nodes = runtime(n, key=False)
    time.sleep(3)

    def measure():
        c0 = sum(nd.cpu_ticks() for nd in nodes)
        time.sleep(seconds)
        c1 = sum(nd.cpu_ticks() for nd in nodes)
        rss = sum(benchlib.status_kb(nd.p.pid, "VmRSS") for nd in nodes)
        return (c1 - c0) / os.sysconf("SC_CLK_TCK"), rss
    off = measure()
    join(nodes)
    time.sleep(6)
    on = measure()
    rc0 = benchlib.status_kb(relay.p.pid, "VmRSS")
    benchlib.cleanup()
    for what, (cpu, rss) in (("no data key (baseline)", off), ("sync on", on)):
        print("rest nodes=%d %-22s cpu=%.2fs over %ds for all nodes (%.3f%% of one core) "
              "rss_total=%d KiB (%d KiB/node)" % (n, what, cpu, seconds,
                                                  100.0 * cpu / seconds, rss, rss // n))
    print("rest sync-on / baseline: cpu x%.2f, rss x%.3f; relay rss %d KiB" % (
        on[0] / max(off[0], 0.01), on[1] / off[1], rc0))


try:
    what = sys.argv[2]
    if what == "propagation":
        for n in sys.argv[3:]:
            propagation(int(n))
    elif what == "direct":
        for n in sys.argv[3:]:
            direct_vs_relay(int(n))
    elif what == "failover":
        failover()
    elif what == "rest":
        rest(int(sys.argv[3]), int(sys.argv[4]))
finally:
    benchlib.cleanup()
    shutil.rmtree(TMP, ignore_errors=True)
