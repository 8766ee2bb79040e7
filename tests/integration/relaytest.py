"""Helpers for the shir-relay integration tests: a relay on free loopback
ports with its own state file, Microsoft's npm clients (hyco-https@1.4.5,
hyco-ws@1.0.5) installed once under $SHIR_BUILDDIR/tests/npm as spec §10
step 1 explains, the keys `shir-relay ir create` prints, and a minimal raw
WebSocket client (for what the npm clients cannot do, e.g. rejects)."""
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import time
import urllib.parse
import urllib.request

from shirtest import BUILDDIR, SRCDIR, TestFailure, check, free_port, npm_install

HYCO = os.path.join(SRCDIR, "tests", "integration", "hyco")
NPM_DIR = os.path.join(BUILDDIR, "tests", "npm")

PKG = """{ "name": "hyco-conformance", "version": "1.0.0", "private": true,
  "dependencies": { "hyco-https": "1.4.5", "hyco-ws": "1.0.5" },
  "overrides": { "http": "file:./stub-http" } }
"""


def stub_http(npm_dir):
    """hyco-https depends on the npm package "http": a stub that is node's own module."""
    stub = os.path.join(npm_dir, "stub-http")
    os.makedirs(stub, exist_ok=True)
    with open(os.path.join(stub, "package.json"), "w") as f:
        f.write('{"name":"http","version":"0.0.0-stub","main":"index.js"}\n')
    with open(os.path.join(stub, "index.js"), "w") as f:
        f.write('module.exports = require("node:http");\n')


def npm_clients(h):
    """Installs hyco-https/hyco-ws once (cached in the build dir)."""
    return npm_install(h, NPM_DIR, PKG, ("hyco-https", "hyco-ws"), "hyco-https@1.4.5 and hyco-ws@1.0.5",
                       prepare=stub_http)


def decode_key(k):
    b = k[len("IR@v1@"):]
    b += "=" * (-len(b) % 4)
    return json.loads(base64.urlsafe_b64decode(b))


CONF = """\
[relay]
{listen}
admin = 127.0.0.1:{admin}
state_file = {state}
{extra_relay}
[log]
level = debug
[limits]
{limits}
"""


class Relay:
    def __init__(self, h, limits="", tls=None, extra_relay="", name="relay"):
        self.h = h
        self.port = free_port()
        self.admin = free_port()
        self.state = h.path("state.json")
        listen = "listen = 127.0.0.1:%d" % self.port
        if tls:
            listen = "listen_tls = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\npublic_url = wss://localhost:%d" % (
                self.port, tls[0], tls[1], self.port)
        self.conf = h.write(name + ".conf", CONF.format(listen=listen, admin=self.admin, state=self.state,
                                                        limits=limits, extra_relay=extra_relay))
        self.keys = {}
        self.proc = None
        self.name = name

    def cli(self, *args, check_rc=0):
        return self.h.run([self.h.bin("shir-relay"), "-f", self.conf] + list(args), check=check_rc)

    def create(self, hc="myhc"):
        out = self.cli("ir", "create", hc).stdout
        keys = {}
        for line in out.splitlines():
            for w in line.split():
                if w.startswith("IR@v1@"):
                    k = decode_key(w)
                    keys[k["keyName"]] = k
        check(set(keys) == {"node-key1", "node-key2", "service-key"}, "ir create printed:\n%s", out)
        self.keys[hc] = keys
        return keys

    def start(self):
        self.proc = self.h.start(self.name, [self.h.bin("shir-relay"), "-f", self.conf])
        self.proc.wait_log(r"event=ready")
        return self.proc

    def listen_env(self, hc="myhc", key="node-key1"):
        k = self.keys[hc][key]
        return {"KEYNAME": k["keyName"], "KEY": k["key"], "HC": hc,
                "RELAY": "ws://127.0.0.1:%d" % self.port}

    def send_env(self, hc="myhc", key="service-key"):
        k = self.keys[hc][key]
        return {"KEYNAME": k["keyName"], "KEY": k["key"], "HC": hc, "PORT": str(self.port)}

    def admin_get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path), timeout=10) as r:
            return r.read().decode()


def node_env(mods, extra):
    e = {"NODE_PATH": mods, "NODE_NO_WARNINGS": "1"}
    e.update(extra)
    return e


def run_node(h, mods, script, env, args=(), timeout=30):
    r = h.run(["node", os.path.join(HYCO, script)] + list(args), env=node_env(mods, env),
              timeout=timeout)
    return r.stdout + r.stderr


def http_result(out):
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise TestFailure("the sender printed no RESULT:\n" + out)


def sas_token(uri, key_name, key, ttl=3600):
    """The hyco algorithm (spec §9.4)."""
    se = str(int(time.time()) + ttl)
    sr = urllib.parse.quote(uri, safe="")
    sig = base64.b64encode(hmac.new(key.encode(), (sr + "\n" + se).encode(), hashlib.sha256).digest()).decode()
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (sr, urllib.parse.quote(sig, safe=""), se, key_name)


class RawWS:
    """A minimal RFC 6455 client: enough to act as a listener or a sender."""

    def __init__(self, port, target, headers=None, host="127.0.0.1", tls_ctx=None):
        s = socket.create_connection((host, port), timeout=10)
        if tls_ctx:
            s = tls_ctx.wrap_socket(s, server_hostname="localhost")
        self.s = s
        key = base64.b64encode(os.urandom(16)).decode()
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
              "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (target, host, port, key)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        s.sendall((req + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        head, _, self.rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 else 0
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            check(self.headers.get("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept")

    def _read(self, n):
        while len(self.rest) < n:
            d = self.s.recv(65536)
            if not d:
                raise TestFailure("connection closed while reading a frame")
            self.rest += d
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def recv(self):
        """Returns (opcode, payload) of the next whole message or control frame."""
        msg, op0 = b"", None
        while True:
            b0, b1 = self._read(2)
            op, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            check(not (b1 & 0x80), "the relay must not mask its frames")
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)
            if op >= 8:
                return op, data
            if op0 is None:
                op0 = op
            msg += data
            if fin:
                return op0, msg

    def send(self, op, data, fin=True):
        if isinstance(data, str):
            data = data.encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([(0x80 if fin else 0) | op])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(data)))

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
