#!/usr/bin/env python3
"""Side-by-side benchmark of shir-relay (one run, loopback only, ~2 minutes).

  (a) WebSocket stream throughput, large (64 KiB) and small (128 B) messages:
      direct (client -> sink), nginx (client -> nginx -> sink) and shir-relay
      (sender -> relay -> listener's rendezvous -> sink), same C client and sink
      (bench/relay_wsbench, built on relay/ws).
  (b) HTTP requests/s and p50/p99 with wrk: shir-relay with a C listener that
      answers inline on its control channel, vs nginx reverse-proxying to an
      evhttp backend answering the same 5-byte body.
  (c) Relay memory (VmRSS delta) per idle listener and per open tunnel.

Usage: bench/relay_bench.py BUILDDIR   (a build without sanitizers: ../configure CFLAGS=-O2)
       PARTS=a (or b, c, ab, ...) runs only those parts; REPEAT=N runs each (a) path N times,
       alternating the paths, and reports every run.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import cleanup, free_port, start, status_kb, wait_port

B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
WSB = os.path.join(B, "bench", "relay_wsbench")
RELAY = os.path.join(B, "shir-relay")
tmp = tempfile.mkdtemp(prefix="shir-relay-bench-")
def rss_kb(pid):
    return status_kb(pid, "VmRSS")


def cpu_ticks(pid):
    """utime + stime of pid and of its children that are still running (nginx's worker)."""
    pids = [pid]
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                pids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
            total += int(st[11]) + int(st[12])
        except OSError:
            pass
    return total



try:
    rp, admin, sinkp, ngx_ws, ngx_ws64, ngx_http, backend = (free_port() for _ in range(7))
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("[relay]\nlisten = 127.0.0.1:%d\nadmin = 127.0.0.1:%d\nstate_file = %s/state.json\n"
                "[log]\nlevel = warn\n[limits]\nmax_listeners = 10001\nmax_connections = 40000\nmax_connections_per_address = 40000\nmax_handshakes_per_address = 40000\n"
                % (rp, admin, tmp))
    out = subprocess.run([RELAY, "-f", conf, "ir", "create", "bench"], capture_output=True, text=True, check=True).stdout
    keys = {}
    for w in out.split():
        if w.startswith("IR@v1@"):
            b = w[6:] + "=" * (-len(w[6:]) % 4)
            k = json.loads(base64.urlsafe_b64decode(b))
            keys[k["keyName"]] = k["key"]
    relay = start([RELAY, "-f", conf])
    wait_port(rp)
    sink = start([WSB, "sink", str(sinkp)], wait="READY")
    hcs = start([WSB, "hc-sink", str(rp), "bench", "node-key1", keys["node-key1"]], wait="READY")
    be = start([WSB, "http-backend", str(backend)], wait="READY")
    os.makedirs(os.path.join(tmp, "ngx", "logs"), exist_ok=True)
    ngconf = os.path.join(tmp, "nginx.conf")
    with open(ngconf, "w") as f:
        f.write("""daemon off; worker_processes 1; pid %(t)s/nginx.pid; error_log %(t)s/ngx/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path %(t)s/ngx; proxy_temp_path %(t)s/ngx;
  fastcgi_temp_path %(t)s/ngx; uwsgi_temp_path %(t)s/ngx; scgi_temp_path %(t)s/ngx;
  upstream be { server 127.0.0.1:%(be)d; keepalive 64; }
  server { listen 127.0.0.1:%(nws)d;
    location / { proxy_pass http://127.0.0.1:%(sink)d; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; proxy_buffering off; } }
  server { listen 127.0.0.1:%(nws64)d;
    location / { proxy_pass http://127.0.0.1:%(sink)d; proxy_http_version 1.1;
      proxy_buffer_size 64k; proxy_buffers 4 64k; proxy_busy_buffers_size 128k;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; proxy_buffering off; } }
  server { listen 127.0.0.1:%(nh)d;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
""" % {"t": tmp, "be": backend, "nws": ngx_ws, "nws64": ngx_ws64, "sink": sinkp, "nh": ngx_http})
    ngx = start(["nginx", "-p", os.path.join(tmp, "ngx"), "-c", ngconf])
    wait_port(ngx_ws)
    wait_port(ngx_ws64)
    wait_port(ngx_http)

    parts = os.environ.get("PARTS", "abc")
    repeat = int(os.environ.get("REPEAT", "1"))
    if "a" in parts:
        print("## (a) WebSocket stream throughput (1 connection, sender -> sink)\n")
        print("| messages | path | MB/s (median) | msgs/s | ratio to nginx | CPU of the middle box, ms per 100 MB (median) |")
        print("|---|---|---|---|---|---|")
        relay_target = "/$hc/bench?sb-hc-action=connect"
        for size, count in ((65536, 30000), (128, 3000000)):
            runs = {}
            for _ in range(repeat):	# paths alternate, so drift in the machine's load hits all of them
                for name, port, target, auth in (("direct", sinkp, "/", []), ("nginx", ngx_ws, "/", []),
                                                 ("nginx-64k", ngx_ws64, "/", []),
                                                 ("shir-relay", rp, relay_target,
                                                  ["service-key", keys["service-key"], "bench"])):
                    middle = relay.pid if name == "shir-relay" else ngx.pid if name.startswith("nginx") else None
                    c0 = cpu_ticks(middle) if middle else 0
                    r = subprocess.run([WSB, "send", str(port), target, str(size), str(count)] + auth,
                                       capture_output=True, text=True, timeout=120)
                    m = re.search(r"MBps=([\d.]+) msgs_per_s=(\d+)", r.stdout)
                    if not m:
                        raise SystemExit("send failed: %s %s" % (r.stdout, r.stderr))
                    # CPU of the box in the middle, in ms per 100 MB passed
                    cpu = (cpu_ticks(middle) - c0) * 1000.0 / os.sysconf("SC_CLK_TCK") / (size * count / 1e8) if middle else 0
                    runs.setdefault(name, []).append((float(m.group(1)), int(m.group(2)), cpu))
            res = {name: sorted(v)[len(v) // 2] for name, v in runs.items()}	# the median run
            for name, (mb, ms, cpu) in res.items():
                cpus = sorted(r[2] for r in runs[name])
                print("| %d x %d B | %s | %.0f | %d | %.2f | %s |%s" % (
                    count, size, name, mb, ms, mb / res["nginx"][0],
                    "%.0f" % cpus[len(cpus) // 2] if cpus[0] else "",
                    " runs: " + ", ".join("%.0f" % r[0] for r in runs[name]) if repeat > 1 else ""))
        print("\nrelay/nginx throughput ratio is the figure to read.\n")

    if "b" in parts:
        print("## (b) HTTP through the relay vs nginx (wrk -t2 -c32 -d10s --latency)\n")
        print("| path | requests/s | p50 | p99 |")
        print("|---|---|---|---|")
        tok = subprocess.run(["python3", "-c", """
import base64,hashlib,hmac,time,urllib.parse,sys
k=sys.argv[1]; se=str(int(time.time())+3600); sr=urllib.parse.quote('http://127.0.0.1:%s/bench',safe='')
sig=base64.b64encode(hmac.new(k.encode(),(sr+'\\n'+se).encode(),hashlib.sha256).digest()).decode()
print('SharedAccessSignature sr=%%s&sig=%%s&se=%%s&skn=service-key'%%(sr,urllib.parse.quote(sig,safe=''),se))
""" % rp, keys["service-key"]], capture_output=True, text=True).stdout.strip()
        import urllib.request
        try:
            rq = urllib.request.Request("http://127.0.0.1:%d/bench/x" % rp, headers={"ServiceBusAuthorization": tok})
            with urllib.request.urlopen(rq, timeout=5) as resp:
                check_body = resp.read()
            assert check_body == b"hello", check_body
        except Exception as e:
            raise SystemExit("sanity request through the relay failed: %s" % e)
        for name, url, hdr in (("nginx -> evhttp backend", "http://127.0.0.1:%d/x" % ngx_http, []),
                               ("shir-relay -> C listener", "http://127.0.0.1:%d/bench/x" % rp,
                                ["-H", "ServiceBusAuthorization: " + tok])):
            r = subprocess.run(["wrk", "-t2", "-c32", "-d10s", "--latency"] + hdr + [url],
                               capture_output=True, text=True, timeout=60)
            rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
            p50 = re.search(r"^\s+50%\s+(\S+)", r.stdout, re.M)
            p99 = re.search(r"^\s+99%\s+(\S+)", r.stdout, re.M)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
            print("| %s | %s | %s | %s |%s" % (name, rps.group(1) if rps else "?", p50.group(1) if p50 else "?",
                                              p99.group(1) if p99 else "?",
                                              " (non-2xx: %s)" % non2xx.group(1) if non2xx else ""))

    if "c" in parts:
        print("\n## (c) relay memory (VmRSS of shir-relay)\n")
        n_idle = int(os.environ.get("IDLE", "10000"))
        n_tun = int(os.environ.get("TUNNELS", "9000"))
        print("| what | count | relay RSS before | after | RSS per item | heap in use per item |")
        print("|---|---|---|---|---|---|")

        def heap_bytes():
            m = re.search(r"^shir_relay_heap_bytes (\d+)", urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % admin, timeout=10).read().decode(), re.M)
            return int(m.group(1)) if m else 0
        for what, n in (("idle listener (control channel)", n_idle), ("open idle tunnel (sender + rendezvous sockets)", n_tun)):
            # a fresh relay per phase: freed memory is not returned to the system
            for p in (hcs, relay):
                p.terminate()
                p.wait()
            relay = start([RELAY, "-f", conf])
            wait_port(rp)
            hcs = start([WSB, "hc-sink", str(rp), "bench", "node-key1", keys["node-key1"]], wait="READY")
            time.sleep(0.5)
            before = rss_kb(relay.pid)
            heap0 = heap_bytes()
            if n == n_idle and what.startswith("idle"):
                load = start([WSB, "idle", str(rp), "bench", "node-key2", keys["node-key2"], str(n)], wait="READY")
            else:
                load = start([WSB, "tunnels", str(rp), "bench", "service-key", keys["service-key"], str(n)], wait="READY")
            time.sleep(3)	# idle endpoints give their wslay contexts back after 2 s
            st = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/status" % admin, timeout=10).read())
            after = rss_kb(relay.pid)
            heap1 = heap_bytes()
            print("| %s | %d (relay connections: %d) | %d KiB | %d KiB | %.1f KiB | %.1f KiB |" % (
                what, n, st["connections"], before, after, (after - before) / n, (heap1 - heap0) / 1024 / n))
            load.terminate()
            load.wait()
finally:
    cleanup()
