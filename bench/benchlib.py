"""What the benchmarks share: processes they start and always stop, free loopback
ports, /proc figures (bench/relay_bench.py, bench/relay_attack.py), and for the
copy benchmarks (bench/copy_bench.py, blob_bench.py, s3_bench.py, copy_sources_bench.py,
copy_rss_bench.py) the build and harness set up, a relay with a registered shird
running copy jobs, and a job timed from submission to its end."""
import os
import re
import socket
import subprocess
import sys
import time

procs = []
HERE = os.path.dirname(os.path.abspath(__file__))


def setup(argv):
    """For the benchmarks that drive the integration harness: the build (argv[1], default
    build-bench beside bench/) as SHIR_BUILDDIR, the tree as SHIR_SRCDIR (unless set) and
    tests/integration on sys.path. Returns the build's path; import shirtest after."""
    build = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(HERE, "..", "build-bench"))
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
    os.environ["SHIR_BUILDDIR"] = build
    os.environ.setdefault("SHIR_SRCDIR", os.path.join(HERE, ".."))
    return build


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, wait=None, **kw):
    """Starts argv (stdout and stderr piped); with wait, reads its output until a line
    matches that regex (60 s at most)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    procs.append(p)
    if wait:
        end = time.time() + 60
        for line in p.stdout:
            if re.search(wait, line):
                break
            if time.time() > end:
                raise SystemExit("timeout waiting for %s" % wait)
    return p


def wait_port(port):
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("port %d never opened" % port)


def status_kb(pid, key):
    """A /proc/PID/status figure in KiB (VmRSS, VmHWM ...); 0 when absent."""
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])
    return 0


def cleanup():
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def copy_node(h, allowed=None, extra="[node]\ncopy_jobs = 1\n"):
    """A real shir-relay with a runtime "bench" and a real shird registered with its node
    key and restarted (the runner starts with a registered node), for copy benchmarks.
    Needs tests/integration on sys.path. Returns the relay, the node, a sender (Send key)
    and the node's idle VmRSS in KiB."""
    from authnode import Node
    from relaytest import Relay, decode_key
    import test_relay_jobs

    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", "bench").stdout.split() if w.startswith("IR@v1@")]
    r.keys["bench"] = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    kw = {"allowed": allowed} if allowed else {}
    n = Node(h, extra=extra, **kw)
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "register-node", "-", "bench-node"],
          input=node_key + "\n", check=0)
    n.p.wait_log(r"event=channel\.connected")
    n.stop_clean()
    n = Node(h, extra=extra, **kw)
    n.p.wait_log(r"event=copy\.started")
    return r, n, test_relay_jobs.Client(r, hc="bench"), status_kb(n.p.pid, "VmRSS")


def run_job(snd, spec, poll=0.02, on_poll=None, rows=None):
    """Submits a copy job and polls it until it is final; returns (seconds, the job).
    on_poll, if given, is called at each poll (e.g. to sample the node's RSS); with rows,
    the job must have succeeded with that many rows written."""
    t0 = time.monotonic()
    st, j = snd.call("POST", "", spec)
    assert st == 201, (st, j)
    while True:
        st, g = snd.call("GET", "/" + j["id"])
        if g["state"] not in ("Queued", "Running"):
            break
        if on_poll:
            on_poll()
        time.sleep(poll)
    dt = time.monotonic() - t0
    if rows is not None:
        assert g["state"] == "Succeeded" and g["result"]["rowsWritten"] == rows, g
    return dt, g
