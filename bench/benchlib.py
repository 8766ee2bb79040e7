"""What the relay benchmarks share (bench/relay_bench.py, bench/relay_attack.py):
processes they start and always stop, free loopback ports, /proc figures."""
import re
import socket
import subprocess
import time

procs = []


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


# --- copy jobs (bench/s3_bench.py) -------------------------------------------------
# These use the integration tests' harness (tests/integration on sys.path, and
# SHIR_BUILDDIR set) to start a real shir-relay and a registered shird.

def copy_setup(h, extra="[node]\ncopy_jobs = 1\n", allowed="", hc="bench"):
    """A shir-relay with hybrid connection hc and a shird registered with its
    node key, restarted so its copy-job runner runs; returns (relay, node,
    sender) where sender is test_relay_jobs.Client with the Send key."""
    from authnode import Node
    from relaytest import Relay, decode_key
    import test_relay_jobs
    r = Relay(h)
    printed = [w for w in r.cli("ir", "create", hc).stdout.split() if w.startswith("IR@v1@")]
    r.keys[hc] = {decode_key(w)["keyName"]: decode_key(w) for w in printed}
    node_key = [w for w in printed if decode_key(w)["keyName"] == "node-key1"][0]
    r.start()
    n = Node(h, allowed=allowed, extra=extra)
    h.run([h.bin("shirctl"), "--socket", n.sock, "--conf", n.conf, "register-node", "-", "bench-node"],
          input=node_key + "\n", check=0)
    n.p.wait_log(r"event=channel\.connected")
    n.stop_clean()
    n = Node(h, allowed=allowed, extra=extra)
    n.p.wait_log(r"event=copy\.started")
    return r, n, test_relay_jobs.Client(r, hc=hc)


def run_job(snd, spec, poll=0.02):
    """Submits a job and polls until it is final; returns (seconds, job)."""
    t0 = time.monotonic()
    st, j = snd.call("POST", "", spec)
    if st != 201:
        raise SystemExit("submit: %d %r" % (st, j))
    while True:
        st, g = snd.call("GET", "/" + j["id"])
        if g["state"] not in ("Queued", "Running"):
            return time.monotonic() - t0, g
        time.sleep(poll)
