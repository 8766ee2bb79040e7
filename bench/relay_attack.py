#!/usr/bin/env python3
"""shir-relay under a mixed attack from one loopback client (issue 11).

Usage: bench/relay_attack.py BUILDDIR
       (a build without sanitizers for figures: ../configure CFLAGS=-O2; DURATION=seconds per
        phase, default 10; ATTACK_MB caps the pipelined flood, default 2048)

A relay with its default limits and one C listener (bench/relay_wsbench hc-sink, answering
"hello" inline on its control channel). wrk (-t2 -c32, from 127.0.0.1) sends the legitimate
traffic through that listener, first alone, then while one attacking client address
(127.0.0.2) runs, bounded in time and bytes:

  * trickled heads: as many connections as it can open, each sending one byte of a head
    every second (slowloris);
  * a pipelined flood: 4 connections each sending one request and then pipelining requests
    behind it as fast as the relay takes them (at most ATTACK_MB in all);
  * non-reading senders: 8 connections with a 4 KiB receive buffer pipelining requests
    through the same listener and never reading an answer.

Prints, for both phases, wrk's requests, the legitimate success rate (2xx among everything
wrk sent, socket errors counted as failures) and p99, and the relay's peak RSS (VmHWM) and
the limit counters of /metrics. Goal (issue 11): >= 99 % success under attack, peak RSS
bounded by the configured limits, not by the attack's size.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import cleanup, free_port, start, status_kb, wait_port

B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
RELAY = os.path.join(B, "shir-relay")
WSB = os.path.join(B, "bench", "relay_wsbench")
DURATION = int(os.environ.get("DURATION", "10"))
ATTACK_MB = int(os.environ.get("ATTACK_MB", "2048"))
ATTACKER = "127.0.0.2"
tmp = tempfile.mkdtemp(prefix="shir-relay-attack-")
def token(port, key):
    se = str(int(time.time()) + 3600)
    sr = urllib.parse.quote("http://127.0.0.1:%d/bench" % port, safe="")
    sig = base64.b64encode(hmac.new(key.encode(), (sr + "\n" + se).encode(), hashlib.sha256).digest()).decode()
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=service-key" % (sr, urllib.parse.quote(sig, safe=""), se)


def wrk(url, tok, secs):
    r = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % secs, "--latency", "--timeout", "5s",
                        "-H", "ServiceBusAuthorization: " + tok, url],
                       capture_output=True, text=True, timeout=secs + 60)
    out = r.stdout
    total = int(re.search(r"(\d+) requests in", out).group(1)) if "requests in" in out else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = int(non2xx.group(1)) if non2xx else 0
    nerr = sum(int(x) for x in errs.groups()) if errs else 0
    ok = total - bad
    rate = 100.0 * ok / (total + nerr) if total + nerr else 0.0
    return total, rate, p99.group(1) if p99 else "?", bad, nerr


class Attack:
    def __init__(self, port, tok):
        self.port, self.tok, self.stop = port, tok, threading.Event()
        self.req = ("GET /bench/x HTTP/1.1\r\nHost: h\r\nServiceBusAuthorization: %s\r\n\r\n" % tok).encode()
        self.flood_bytes = 0
        self.threads = []

    def conn(self, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((ATTACKER, 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", self.port))
        return s

    def trickle(self):
        socks, head = [], b"GET /bench/slow HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"s" * 4000
        while not self.stop.is_set():
            while len(socks) < 4000 and not self.stop.is_set():
                try:
                    socks.append([self.conn(), 0])
                except OSError:
                    break
            for s in list(socks):
                try:
                    s[0].send(head[s[1] % len(head):s[1] % len(head) + 1])
                    s[1] += 1
                except OSError:
                    s[0].close()
                    socks.remove(s)
            self.stop.wait(1.0)
        for s in socks:
            s[0].close()

    def flood(self):
        chunk = self.req * 256
        while not self.stop.is_set() and self.flood_bytes < ATTACK_MB * 1024 * 1024:
            try:
                s = self.conn()
                s.settimeout(0.5)
                while not self.stop.is_set() and self.flood_bytes < ATTACK_MB * 1024 * 1024:
                    try:
                        self.flood_bytes += s.send(chunk)
                    except socket.timeout:
                        pass
                s.close()
            except OSError:
                self.stop.wait(0.2)

    def non_reader(self):
        while not self.stop.is_set():
            try:
                s = self.conn(rcvbuf=4096)
                s.settimeout(0.5)
                while not self.stop.is_set():
                    try:
                        s.send(self.req * 64)
                    except socket.timeout:
                        pass
                s.close()
            except OSError:
                self.stop.wait(0.2)

    def start(self):
        for fn, n in ((self.trickle, 1), (self.flood, 4), (self.non_reader, 8)):
            for _ in range(n):
                t = threading.Thread(target=fn, daemon=True)
                t.start()
                self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def main():
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    rp, admin = free_port(), free_port()
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("[relay]\nlisten = 127.0.0.1:%d\nadmin = 127.0.0.1:%d\nstate_file = %s/state.json\n"
                "[log]\nlevel = warn\n" % (rp, admin, tmp))
    out = subprocess.run([RELAY, "-f", conf, "ir", "create", "bench"], capture_output=True, text=True,
                         check=True).stdout
    keys = {}
    for w in out.split():
        if w.startswith("IR@v1@"):
            k = json.loads(base64.urlsafe_b64decode(w[6:] + "=" * (-len(w[6:]) % 4)))
            keys[k["keyName"]] = k["key"]
    relay = start([RELAY, "-f", conf])
    wait_port(rp)
    start([WSB, "hc-sink", str(rp), "bench", "node-key1", keys["node-key1"]], wait="READY")
    tok = token(rp, keys["service-key"])
    url = "http://127.0.0.1:%d/bench/x" % rp
    rq = urllib.request.Request(url, headers={"ServiceBusAuthorization": tok})
    with urllib.request.urlopen(rq, timeout=5) as resp:
        if resp.read() != b"hello":
            raise SystemExit("sanity request through the relay failed")
    print("## shir-relay under a mixed attack from %s (wrk -t2 -c32 -d%ds from 127.0.0.1)\n" % (ATTACKER, DURATION))
    print("| phase | legit requests | legit success | p99 | non-2xx | socket errors | relay peak RSS (VmHWM) |")
    print("|---|---|---|---|---|---|---|")
    total, rate, p99, bad, nerr = wrk(url, tok, DURATION)
    print("| no attack | %d | %.2f %% | %s | %d | %d | %d KiB |" % (total, rate, p99, bad, nerr,
                                                                 status_kb(relay.pid, "VmHWM")))
    a = Attack(rp, tok)
    a.start()
    time.sleep(min(3, DURATION))  # let the attack reach its steady state
    total, rate, p99, bad, nerr = wrk(url, tok, DURATION)
    hwm = status_kb(relay.pid, "VmHWM")
    a.finish()
    print("| attack (trickled heads + %d MB pipelined + 8 non-reading senders) | %d | %.2f %% | %s | %d | %d | %d KiB |"
          % (a.flood_bytes >> 20, total, rate, p99, bad, nerr, hwm))
    m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10).read().decode()
    print("\nlimit counters:")
    for l in m.splitlines():
        if l.startswith("shir_relay_limit_events_total") or l.startswith("shir_relay_connections_rejected_total"):
            print("  " + l)


try:
    main()
finally:
    cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
