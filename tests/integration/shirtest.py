"""shirtest: the integration harness (Python 3 standard library only).

Each test is a function taking a Harness; it runs with a fresh temp dir and
every process it started is stopped afterwards, whatever happened. Output is
TAP. Waiting is always on an event (a log line, a port, a process exit) with
a timeout, never a fixed sleep.

    from shirtest import test, main
    @test
    def test_something(h):
        p = h.start("shird", [h.bin("shird"), "-f", conf])
        p.wait_log(r"event=listening")
    main()
"""
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILDDIR = os.environ.get("SHIR_BUILDDIR", os.getcwd())
SRCDIR = os.environ.get("SHIR_SRCDIR", os.getcwd())
POLL = 0.02
_tests = []


class TestFailure(AssertionError):
    pass


class Missing(TestFailure):
    """A server or tool the test needs is not installed."""


def test(fn):
    _tests.append(fn)
    return fn


def npm_install(h, npm_dir, pkg_json, packages, what, timeout=300, prepare=None):
    """Installs the npm packages that pkg_json (a package.json text) names into npm_dir once,
    cached in the build dir, one installer at a time across test processes; returns its
    node_modules. packages: the names whose package.json shows an earlier install is complete;
    what: the pinned packages, for the failure; prepare(npm_dir): called before the install."""
    mods = os.path.join(npm_dir, "node_modules")
    os.makedirs(npm_dir, exist_ok=True)
    with open(os.path.join(npm_dir, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if all(os.path.exists(os.path.join(mods, p, "package.json")) for p in packages):
            return mods
        h.require("node", "nodejs")
        h.require("npm", "npm")
        if prepare is not None:
            prepare(npm_dir)
        with open(os.path.join(npm_dir, "package.json"), "w") as f:
            f.write(pkg_json)
        r = h.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
                   "--prefix", npm_dir], timeout=timeout)
        if r.returncode != 0:
            raise TestFailure("npm install of %s failed (it needs the npm registry or a warm npm "
                              "cache):\n" % what + r.stdout + r.stderr)
    return mods


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what):
    """Polls cond() until it returns a true value; fails after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TestFailure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(POLL)


def wait_port(port, host="127.0.0.1", timeout=20):
    def up():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False
    wait_until(up, timeout, "%s:%d to accept connections" % (host, port))


class Proc:
    def __init__(self, h, name, argv, env=None, cwd=None, stdin=None):
        self.h = h
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(h.tmp, "%s.log" % name)
        self.logf = open(self.log_path, "wb")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=e,
                                  cwd=cwd or h.tmp, stdin=stdin or subprocess.DEVNULL,
                                  start_new_session=True)
        self._pos = 0

    @property
    def pid(self):
        return self.p.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=20, after_mark=True):
        """Waits for a log line matching pattern (regex), looking only at what
        was logged since the last successful wait (or mark())."""
        rx = re.compile(pattern)

        def seen():
            text = self.log()[self._pos if after_mark else 0:]
            m = rx.search(text)
            if m:
                self._pos += m.end() if after_mark else 0
                return m
            if self.p.poll() is not None:
                raise TestFailure("%s exited with %s before logging /%s/; its log:\n%s" % (
                    self.name, self.p.returncode, pattern, self.tail()))
            return None
        try:
            return wait_until(seen, timeout, "%s to log /%s/" % (self.name, pattern))
        except TestFailure as e:
            if "exited" in str(e):
                raise
            raise TestFailure("%s\n%s log tail:\n%s" % (e, self.name, self.tail()))

    def mark(self):
        self._pos = len(self.log())

    def tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def wait_exit(self, timeout=20):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %ss" % (self.name, timeout))

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.logf.close()


class Harness:
    def __init__(self, name):
        self.tmp = tempfile.mkdtemp(prefix="shir-%s-" % name)
        self.procs = []
        self.cleanups = []

    def bin(self, name):
        for d in (BUILDDIR, os.path.join(BUILDDIR, "tests")):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return p
        raise TestFailure("%s is not built in %s: run make first" % (name, BUILDDIR))

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def start(self, name, argv, **kw):
        pr = Proc(self, name, argv, **kw)
        self.procs.append(pr)
        return pr

    def run(self, argv, timeout=60, input=None, env=None, check=None):
        """Runs a command to completion; returns CompletedProcess (text)."""
        e = dict(os.environ)
        if env:
            e.update(env)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               input=input, env=e, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not finish within %ss" % (argv, timeout))
        if check is not None and r.returncode != check:
            raise TestFailure("%s exited %d, wanted %d\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(argv), r.returncode, check, r.stdout, r.stderr))
        return r

    def require(self, program, package):
        """A server the test needs: fails (never skips) when it is missing."""
        for d in [""] + os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]:
            p = os.path.join(d, program) if d else program
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
        raise Missing("%s is not installed: install the Debian package %s "
                      "(tools/install-deps does)" % (program, package))

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    def close(self, keep=False):
        for pr in reversed(self.procs):
            try:
                pr.stop()
            except Exception:
                pass
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:
                pass
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def make_ca(h, name="test", cn="shir test CA"):
    """A throwaway certificate authority in the test's temp dir: (key, cert)."""
    openssl = h.require("openssl", "openssl")
    ca_key, ca = h.path(name + "-ca.key"), h.path(name + "-ca.pem")
    h.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
           "-out", ca, "-days", "2", "-subj", "/CN=" + cn,
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign"], check=0)
    return ca_key, ca


def make_server_cert(h, ca_key, ca, san="IP:127.0.0.1,DNS:localhost", cn="localhost"):
    """A server certificate signed by the CA of make_ca(): (key, cert)."""
    openssl = h.require("openssl", "openssl")
    key, csr, crt = h.path("srv.key"), h.path("srv.csr"), h.path("srv.pem")
    ext = h.write("srv-ext.cnf", "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
    h.run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
           "-subj", "/CN=" + cn], check=0)
    h.run([openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
           "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext], check=0)
    return key, crt


def make_test_pki(h):
    """A CA and a certificate for localhost/127.0.0.1 it signed: (ca, cert, key)."""
    ca_key, ca = make_ca(h)
    key, crt = make_server_cert(h, ca_key, ca)
    return ca, crt, key


def check(cond, msg, *args):
    if not cond:
        raise TestFailure(msg % args if args else msg)


def main():
    only = sys.argv[1:]
    tests = [t for t in _tests if not only or t.__name__ in only]
    print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, t in enumerate(tests, 1):
        h = Harness(t.__name__)
        ok = False
        start = time.monotonic()
        try:
            t(h)
            ok = True
        except Exception as e:
            msg = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
            for line in msg.splitlines():
                print("# " + line)
        finally:
            h.close(keep=not ok and os.environ.get("SHIR_KEEP_TMP") == "1")
        doc = (t.__doc__ or "").strip().splitlines()
        label = t.__name__ + (" - " + doc[0] if doc else "")
        print("%sok %d - %s (%.1fs)" % ("" if ok else "not ", i, label,
                                        time.monotonic() - start), flush=True)
        failed += not ok
    sys.exit(1 if failed else 0)
