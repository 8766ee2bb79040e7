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
