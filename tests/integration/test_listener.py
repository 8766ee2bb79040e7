"""Integration: shird's relay listener against shir-relay (and without one)."""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse

from shirtest import (check, free_port, main, make_ca, make_server_cert, test, TestFailure,
                      wait_port, wait_until)
from squid import Squid

BASE = """\
[node]
name = {name}
control_socket = {sock}
state_dir = {state}
shutdown_timeout = 5
[log]
level = debug
"""

RELAY = """\
[relay]
endpoint = {endpoint}
path = {path}
key_name = {key_name}
key_file = {key_file}
{extra}
"""


def write_key(h, key, name="node.key", mode=0o600):
    return h.write(name, key + "\n", mode=mode)


DOTNET_PROXY = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.net>
    <defaultProxy>
      <proxy proxyaddress="%s" bypassonlocal="true"/>
    </defaultProxy>
  </system.net>
</configuration>
"""


def shird_conf(h, name="node-a", endpoint=None, path="myhc", key_name="node-key1", key_file=None,
               extra="", tail="", fname="shird.conf"):
    sock = h.path("%s.sock" % name)
    text = BASE.format(name=name, sock=sock, state=h.path("state-" + name))
    if endpoint:
        text += RELAY.format(endpoint=endpoint, path=path, key_name=key_name,
                             key_file=key_file, extra=extra)
    text += tail
    return h.write(fname, text), sock


def start_shird(h, conf, name="shird"):
    p = h.start(name, [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening socket=")
    return p


def stop_clean(p):
    """SIGTERM: shird must exit 0 (under ASan that also means: nothing leaked)."""
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(15)
    check(rc == 0, "%s exited %s:\n%s" % (p.name, rc, p.tail(60)))


def status(h, sock):
    r = h.run([h.bin("shirctl"), "--socket", sock, "status", "--json"], check=None)
    return json.loads(r.stdout)


def wait_status(h, sock, pred, what, timeout=20):
    from shirtest import wait_until
    last = {}

    def ok():
        last["st"] = status(h, sock)
        return pred(last["st"])
    try:
        wait_until(ok, timeout, what)
    except TestFailure as e:
        raise TestFailure("%s; last status: %s" % (e, json.dumps(last.get("st"), indent=1)))
    return last["st"]


# --- without a relay --------------------------------------------------------

@test
def test_key_file_must_be_private(h):
    """shird -t refuses a key file others can read, and says how to fix it"""
    key = write_key(h, "c2VjcmV0", mode=0o644)
    conf, _ = shird_conf(h, endpoint="ws://127.0.0.1:9", key_file=key)
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0, "a 0644 key file must be refused")
    check("chmod 600" in r.stderr and key in r.stderr, r.stderr)
    check("c2VjcmV0" not in r.stderr, "the key must not be printed")


@test
def test_plain_ws_only_for_loopback(h):
    """ws:// to a non-loopback relay is refused; wss:// is required"""
    key = write_key(h, "c2VjcmV0")
    conf, _ = shird_conf(h, endpoint="ws://relay.example.com:80", key_file=key)
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0 and "use wss://" in r.stderr, r.stderr)
    conf, _ = shird_conf(h, endpoint="ws://127.0.0.1:9", key_file=key, fname="ok.conf")
    h.run([h.bin("shird"), "-t", "-f", conf], check=0)


@test
def test_relay_down_is_offline_with_reason(h):
    """with no relay listening: Offline, the reason in words, a retry planned"""
    key = write_key(h, "c2VjcmV0")
    port = free_port()
    conf, sock = shird_conf(h, endpoint="ws://127.0.0.1:%d" % port, key_file=key)
    p = start_shird(h, conf)
    p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=\d+ reason=.*refused")
    st = wait_status(h, sock, lambda s: s["status"] == "Offline", "Offline")
    ch = st["channels"][0]
    check(ch["name"] == "relay" and ch["state"] in ("Disconnected", "Connecting"), "%r", ch)
    check("refused the connection" in st["statusDetail"], st["statusDetail"])
    out = h.run([h.bin("shirctl"), "--socket", sock, "status"], check=None).stdout
    check("Status:   Offline" in out and "refused the connection" in out, out)
    # the ladder: the second retry waits about a second
    m = p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=(\d+)")
    check(900 <= int(m.group(1)) <= 1300, "second retry after %s ms" % m.group(1))
    p.signal(signal.SIGTERM)
    check(p.wait_exit(10) == 0, "shird must exit 0:\n%s" % p.tail())


# --- TLS (a real TLS server: openssl s_server) -------------------------------

def spki_pin(h, crt):
    pub = h.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=0).stdout
    import base64
    import hashlib
    import subprocess
    raw = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                         capture_output=True, check=True).stdout
    return "sha256/" + base64.b64encode(hashlib.sha256(raw).digest()).decode()


def tls_server(h, key, crt):
    h.require("openssl", "openssl")
    port = free_port()
    h.start("s_server", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", crt,
                         "-key", key, "-www", "-quiet"])
    from shirtest import wait_port
    wait_port(port)
    return port


def tls_status(h, endpoint, ca=None, pin=None, want=None, name="node-a"):
    key = write_key(h, "c2VjcmV0", name=name + ".key")
    extra = ""
    if ca:
        extra += "ca_file = %s\n" % ca
    if pin:
        extra += "tls_pin = %s\n" % pin
    conf, sock = shird_conf(h, name=name, endpoint=endpoint, key_file=key, extra=extra,
                            fname=name + ".conf")
    start_shird(h, conf, name="shird-" + name)
    if callable(want):
        pred, what = want, "lastError past TLS"
    else:
        pred, what = (lambda e: want in e), "lastError with %r" % want
    st = wait_status(h, sock, lambda s: s["channels"] and pred(s["channels"][0]["lastError"]),
                     what)
    return st, sock


@test
def test_tls_wrong_ca(h):
    """wss:// with a CA that did not sign the relay's certificate: a clear TLS error"""
    ca_key, ca = make_ca(h, "right", "Test Relay CA")
    _, wrong = make_ca(h, "wrong", "Some Other CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:localhost")
    port = tls_server(h, key, crt)
    st, sock = tls_status(h, "wss://localhost:%d" % port, ca=wrong,
                          want="certificate verify failed")
    err = st["channels"][0]["lastError"]
    check("TLS with relay wss://localhost:%d failed" % port in err and "relay.ca_file" in err, err)
    check(st["status"] == "Offline", "status: %r" % st["status"])
    out = h.run([h.bin("shirctl"), "--socket", sock, "status"], check=None).stdout
    check("certificate verify failed" in out, out)


@test
def test_tls_right_ca_host_and_pin(h):
    """the right CA passes TLS; a wrong host name or a wrong pin is refused"""
    ca_key, ca = make_ca(h, "right", "Test Relay CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:localhost")
    port = tls_server(h, key, crt)
    # TLS verifies; s_server is no relay, so the WebSocket upgrade then fails
    past_tls = lambda e: e != "" and "TLS" not in e and "certificate" not in e
    tls_status(h, "wss://localhost:%d" % port, ca=ca, name="good", want=past_tls)
    # the certificate names localhost, not 127.0.0.1
    st, _ = tls_status(h, "wss://127.0.0.1:%d" % port, ca=ca, name="byip",
                       want="is not for the name 127.0.0.1")
    # right CA, right pin: passes TLS
    pin = spki_pin(h, crt)
    tls_status(h, "wss://localhost:%d" % port, ca=ca, pin=pin, name="pinok", want=past_tls)
    # right CA, wrong pin: refused
    st, _ = tls_status(h, "wss://localhost:%d" % port, ca=ca, name="pinbad",
                       pin="sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                       want="does not match the pin")


# --- squid (the corporate proxy) -------------------------------------------

def start_squid(h):
    """squid on a free loopback port, Basic auth with user svc (password right-pw);
    squid resolves relay.test itself (the node never does)"""
    return Squid(h, auth="basic", user="svc", password="right-pw",
                 hosts={"relay.test": "127.0.0.1"})


def proxy_section(h, port, password):
    pw = h.write("proxy.pw", password + "\n", mode=0o600)
    return ("[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\nauth = basic\n"
            "user = svc\npassword_file = %s\n" % (port, pw))


@test
def test_proxy_wrong_password_in_status(h):
    """through squid with a wrong password: Offline, and the status says the proxy answered 407"""
    sq = start_squid(h)
    key = write_key(h, "c2VjcmV0")
    port = free_port()
    # a loopback relay would go direct (loopback never uses the proxy): use a name
    # that only squid resolves
    conf, sock = shird_conf(h, endpoint="wss://relay.test:%d" % port, key_file=key,
                            tail=proxy_section(h, sq.port, "wrong-pw"))
    start_shird(h, conf)
    # (not just "407": the random port number may contain it)
    st = wait_status(h, sock, lambda s: "Proxy Authentication Required" in s["statusDetail"], "a 407 in the status")
    detail = st["statusDetail"]
    want = "relay wss://relay.test:%d unreachable through proxy http://127.0.0.1:%d" % (port, sq.port)
    check(want in detail and "Proxy Authentication Required" in detail, detail)
    # the whole sentence, the schemes the proxy offers included (it was cut at 600 characters)
    check("(the proxy offers: Basic" in detail, detail)
    check("wrong-pw" not in json.dumps(st), "the password must not show")
    check(st["status"] == "Offline", st["status"])


# --- shir-relay ---------------------------------------------------------------

def decode_irkey(s):
    b = s[len("IR@v1@"):]
    return json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))


def sas_token(uri, key_name, key, lifetime=600):
    """A SAS token per spec section 6 (the test's own implementation)."""
    se = str(int(time.time()) + lifetime)
    sr = urllib.parse.quote(uri, safe="")
    sig = base64.b64encode(hmac.new(key.encode(), (sr + "\n" + se).encode(),
                                    hashlib.sha256).digest()).decode()
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (
        sr, urllib.parse.quote(sig, safe=""), se, key_name)


class Relay:
    """shir-relay on free loopback ports with its own state file."""

    def __init__(self, h, name="relay", tls=None, public_url=None, extra=""):
        """tls: (certificate, key) files for listen_tls."""
        self.h = h
        self.name = name
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        text = "[relay]\nlisten = 127.0.0.1:%d\nstate_file = %s\n" % (
            self.port, h.path(name + "-state.json"))
        if tls:
            text += "listen_tls = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n" % (
                self.tls_port, tls[0], tls[1])
        if public_url:
            text += "public_url = %s\n" % public_url.format(tls_port=self.tls_port, port=self.port)
        text += "[log]\nlevel = debug\n" + extra
        self.conf = h.write(name + ".conf", text)
        self.proc = None
        self.keys = {}

    def create(self, hc="myhc", endpoint=None):
        argv = [self.h.bin("shir-relay"), "-f", self.conf, "ir", "create", hc]
        if endpoint:
            argv += ["--endpoint", endpoint]
        out = self.h.run(argv, check=0).stdout
        keys = [decode_irkey(w) for w in out.split() if w.startswith("IR@v1@")]
        check(len(keys) == 3, "ir create printed:\n%s" % out)
        self.keys[hc] = {k["keyName"]: k for k in keys}
        return self.keys[hc]

    def start(self):
        self.proc = self.h.start(self.name, [self.h.bin("shir-relay"), "-f", self.conf])
        self.proc.wait_log(r"event=ready")
        return self

    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def send_token(self, hc="myhc"):
        k = self.keys[hc]["service-key"]
        return sas_token("http://127.0.0.1:%d/%s" % (self.port, hc), k["keyName"], k["key"])


def node_with_relay(h, relay, name="node-a", keyname="node-key1", hc="myhc", extra="",
                    tail="", endpoint=None, wait=True):
    k = relay.keys[hc][keyname]
    key = write_key(h, k["key"], name=name + ".key")
    conf, sock = shird_conf(h, name=name, endpoint=endpoint or relay.url(), path=hc,
                            key_name=keyname, key_file=key, extra=extra, tail=tail,
                            fname=name + ".conf")
    p = start_shird(h, conf, name="shird-" + name)
    if wait:
        p.wait_log(r"event=channel.connected channel=relay")
    return p, conf, sock


def curl(h, relay, path, token=None, extra=(), hc="myhc", timeout=30):
    h.require("curl", "curl")
    tok = token if token is not None else relay.send_token(hc)
    cfg = h.write("curl.cfg", 'header = "ServiceBusAuthorization: %s"\n' % tok, mode=0o600)
    argv = ["curl", "-sS", "-K", cfg, "-o", "-", "-w", "\n%{http_code}",
            "http://127.0.0.1:%d/%s%s" % (relay.port, hc, path)] + list(extra)
    r = subprocess.run(argv, capture_output=True, timeout=timeout)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body, r.stderr.decode(errors="replace")


@test
def test_http_through_relay(h):
    """curl as a sender gets /v1/node through shir-relay and the node's channel"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay)
    # GET /v1/node is the admin's (403 over the relay, tests/integration/
    # test_security_limits.py); Get IP is an authoring route the sender may call
    code, body, err = curl(h, relay, "/v1/node/ip")
    check(code == 200, "status %s: %s %s" % (code, body[:300], err))
    check(json.loads(body)["nodeName"] == "node-a", "%r" % body)
    st = status(h, sock)
    check(st["name"] == "node-a" and st["status"] == "Online", "%r" % st)
    ch = st["channels"][0]
    check(ch["state"] == "Connected" and ch["connectedSince"] and ch["lastError"] == "", "%r" % ch)
    # a body travels too (POST is not allowed on /v1/node: the API says so)
    code, body, _ = curl(h, relay, "/v1/node", extra=["--data-binary", "x" * 5000])
    check(code == 405 and b"not allowed" in body, "POST: %s %s" % (code, body[:200]))
    # a request body over 64 KiB comes as an address-only request: the node opens the
    # rendezvous and reads the full request (and its body, in fragments) there
    relay.proc.mark()
    code, body, _ = curl(h, relay, "/v1/node", extra=["--data-binary", "@" + h.write(
        "big.txt", "y" * 80000)])
    check(code == 405 and b"not allowed" in body, "80 KB POST: %s %s" % (code, body[:200]))
    relay.proc.wait_log(r"event=request.rendezvous")
    p.wait_log(r"event=request.done channel=relay .*method=POST target=/v1/node status=405")
    # a path the node does not serve
    code, body, _ = curl(h, relay, "/v1/nothing")
    check(code == 404, "404: %s %s" % (code, body[:200]))
    out = h.run([h.bin("shirctl"), "--socket", sock, "status"], check=None).stdout
    check("Status:   Online" in out and "Connected" in out, out)
    st = status(h, sock)
    check(st["channels"][0]["bytesIn"] > 0 and st["channels"][0]["bytesOut"] > 0, "%r" % st)
    check(re.search(r"event=request.done channel=relay .*target=/v1/node/ip status=200", p.log()),
          "no request.done for the GET")
    stop_clean(p)


@test
def test_large_response_via_rendezvous(h):
    """a 200 KB response goes over the request rendezvous, whole; the rendezvous is reused"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, tail="", extra="test_routes = true")
    n = 200 * 1024
    want = bytes((ord("a") + i % 26) for i in range(n))
    code, body, err = curl(h, relay, "/v1/test/blob?bytes=%d" % n)
    check(code == 200 and body == want, "status %s, %d bytes (want %d) %s" % (
        code, len(body), n, err))
    relay.proc.wait_log(r"event=request.rendezvous")
    # two requests on one sender connection: the second uses the same rendezvous
    h.require("curl", "curl")
    cfg = h.write("c2.cfg", 'header = "ServiceBusAuthorization: %s"\n' % relay.send_token(),
                  mode=0o600)
    url = "http://127.0.0.1:%d/myhc/v1/test/blob?bytes=%d" % (relay.port, n)
    r = subprocess.run(["curl", "-sS", "-K", cfg, "-o", h.path("a"), url, "-o", h.path("b"),
                        url, "-w", "%{http_code} "], capture_output=True, timeout=30)
    check(r.stdout.split() == [b"200", b"200"], "%r %r" % (r.stdout, r.stderr))
    for f in ("a", "b"):
        with open(h.path(f), "rb") as fh:
            check(fh.read() == want, "body %s differs" % f)
    # one rendezvous per sender connection: the second request of the second
    # connection came on the rendezvous its first response opened
    log = p.log()
    check(log.count("event=rendezvous.open") == 2, "rendezvous opened %d times, want 2" %
          log.count("event=rendezvous.open"))
    stop_clean(p)


def echo_target(h):
    p = h.start("echo", [h.bin("bench/listener_pump"), "echo", "0"])
    return int(p.wait_log(r"listening (\d+)").group(1))


def pump(h, relay, path, *args, hc="myhc", timeout=120):
    url = "ws://127.0.0.1:%d/$hc/%s%s?sb-hc-action=connect" % (relay.port, hc, path)
    return h.run([h.bin("bench/listener_pump")] + [args[0], url] + list(args[1:]),
                 env={"SHIR_TOKEN": relay.send_token(hc)}, timeout=timeout)


@test
def test_tunnel_50mb_and_rejects(h):
    """a WebSocket sender reaches a [forward] TCP echo target: 50 MB checksummed; 404 and 403"""
    eport = echo_target(h)
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, tail="[forward]\necho = 127.0.0.1:%d\n" % eport)
    r = pump(h, relay, "/tcp/echo", "ws", "50")
    check(r.returncode == 0 and "sha256_match=yes" in r.stdout and "bytes=52428800" in r.stdout,
          "pump: %s %s" % (r.stdout, r.stderr))
    m = p.wait_log(r"event=tunnel.closed id=\d+ forward=echo in=(\d+) out=(\d+)")
    check(m.group(1) == m.group(2) == str(50 << 20), "tunnel counted %s/%s bytes" % m.groups())
    st = status(h, sock)
    check(st["tunnelsOpened"] == 1 and st["tunnelBytesIn"] == 50 << 20, "%r" % st)
    # an unknown forward: 404 with the node's words, delivered through the relay
    r = pump(h, relay, "/tcp/nope", "ws", "1")
    check(r.returncode != 0 and "handshake failed: 404" in r.stderr and
          "no forward named nope" in r.stderr, "unknown forward: %s" % r.stderr)
    # not a forward path at all: 403
    r = pump(h, relay, "/chat", "ws", "1")
    check(r.returncode != 0 and "handshake failed: 403" in r.stderr and "/myhc/tcp/NAME"
          in r.stderr, "non-forward path: %s" % r.stderr)
    p.wait_log(r"event=accept.rejected code=403")
    relay.proc.wait_log(r"event=tunnel.rejected .*status=403")
    stop_clean(p)



@test
def test_relay_restart_reconnects(h):
    """kill shir-relay: the node goes Offline with the reason; restart it: reconnected, served"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay)
    p.mark()
    relay.proc.p.kill()
    relay.proc.wait_exit(10)
    p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=\d+ reason=")
    st = wait_status(h, sock, lambda s: s["status"] == "Offline", "Offline")
    check(st["channels"][0]["nextRetry"] is not None or
          st["channels"][0]["state"] == "Connecting", "%r" % st["channels"][0])
    relay.start()
    p.wait_log(r"event=channel.connected channel=relay", timeout=40)
    code, body, err = curl(h, relay, "/v1/node/ip")
    check(code == 200 and json.loads(body)["status"] == "Succeeded", "%s %s %s" % (code, body[:200],
                                                                                 err))
    check(status(h, sock)["channels"][0]["connects"] == 2, "two connects")


@test
def test_token_renewed_in_time(h):
    """a 10 s token: shird renews before the relay would close with 1008; no disconnect"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, extra="token_lifetime = 10")
    relay.proc.wait_log(r"event=listener.renewed hc=myhc", timeout=15)
    relay.proc.wait_log(r"event=listener.renewed hc=myhc", timeout=15)
    p.wait_log(r"event=channel.renewed channel=relay")
    check("event=channel.disconnected" not in p.log(), "the channel dropped:\n%s" % p.tail())
    check("token_expired" not in relay.proc.log(), "the relay saw an expired token")
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "request after renewals: %s" % code)
    # the control: a node that cannot renew (stopped) is closed with 1008 at expiry,
    # says so, and comes back with a fresh token
    p.mark()
    p.signal(signal.SIGSTOP)
    try:
        relay.proc.wait_log(r"event=listener.token_expired hc=myhc", timeout=20)
    finally:
        p.signal(signal.SIGCONT)
    m = p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=\d+ reason=(.*)")
    check("1008" in m.group(1) and "token" in m.group(1), m.group(1))
    p.wait_log(r"event=channel.connected channel=relay")


@test
def test_unknown_hc_stops(h):
    """a hybrid connection the relay does not have: 404, stated, and no more retries"""
    relay = Relay(h)
    relay.create()
    relay.start()
    relay.keys["nohc"] = relay.keys["myhc"]
    p, conf, sock = node_with_relay(h, relay, hc="nohc", wait=False)
    p.wait_log(r"event=channel.stopped channel=relay reason=.*does not exist")
    st = status(h, sock)
    ch = st["channels"][0]
    check(ch["state"] == "Disconnected" and ch["retrying"] is False and ch["nextRetry"] is None,
          "%r" % ch)
    check("hybrid connection nohc does not exist" in st["statusDetail"], st["statusDetail"])
    # a reload (nothing changed in shird.conf) tries again: the hybrid connection exists
    # now (with other keys, so the relay answers 401 instead of 404)
    h.run([h.bin("shir-relay"), "-f", relay.conf, "ir", "create", "nohc"], check=0)
    relay.proc.signal(signal.SIGHUP)
    relay.proc.wait_log(r"event=(state\.)?reload status=done")
    h.run([h.bin("shirctl"), "--socket", sock, "reload"], check=0)
    m = p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=\d+ reason=(.*)")
    check("401" in m.group(1), "after the reload: %s" % m.group(1))


@test
def test_wrong_key_is_authorization_failure(h):
    """a key the relay does not know: 401 reported as an authorization failure, backed off"""
    relay = Relay(h)
    relay.create()
    relay.start()
    relay.keys["myhc"]["node-key1"] = dict(relay.keys["myhc"]["node-key1"], key="d3Jvbmc=")
    p, conf, sock = node_with_relay(h, relay, wait=False)
    m = p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=(\d+) reason=(.*)")
    check("authorization failed" in m.group(2) and "401" in m.group(2), m.group(2))
    check(int(m.group(1)) >= 5000, "backs off: %s ms" % m.group(1))



@test
def test_two_nodes_share_and_fail_over(h):
    """two nodes on one hybrid connection share the requests; with one killed all are answered"""
    relay = Relay(h)
    relay.create()
    relay.start()
    pa, _, _ = node_with_relay(h, relay, name="node-a", keyname="node-key1")
    pb, _, _ = node_with_relay(h, relay, name="node-b", keyname="node-key2")
    seen = {}
    for i in range(40):
        code, body, err = curl(h, relay, "/v1/node/ip")
        check(code == 200, "request %d: %s %s" % (i, code, err))
        n = json.loads(body)["nodeName"]
        seen[n] = seen.get(n, 0) + 1
    check(set(seen) == {"node-a", "node-b"}, "both nodes must answer: %r" % seen)
    relay.proc.mark()
    pb.p.kill()
    pb.wait_exit(10)
    relay.proc.wait_log(r"event=listener.closed hc=myhc")
    for i in range(20):
        code, body, err = curl(h, relay, "/v1/node/ip")
        check(code == 200 and json.loads(body)["nodeName"] == "node-a",
              "request %d after the kill: %s %s" % (i, code, err))


@test
def test_reload_make_before_break(h):
    """a new key on reload: the new channel comes up first; a slow request on the old one completes"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, extra="test_routes = true")
    old_id = status(h, sock)["channels"][0]["listenerId"]
    import threading
    slow = {}

    def slow_request():
        slow["r"] = curl(h, relay, "/v1/test/blob?bytes=1000&delay_ms=3000")
    t = threading.Thread(target=slow_request)
    t.start()
    p.wait_log(r"event=request.start channel=relay .*delay_ms=3000")
    # switch to node key 2 (and a new file) and reload
    k2 = relay.keys["myhc"]["node-key2"]
    key2 = write_key(h, k2["key"], name="key2")
    with open(conf) as f:
        text = f.read()
    text = text.replace("key_name = node-key1", "key_name = node-key2")
    text = "\n".join(("key_file = %s" % key2) if l.startswith("key_file") else l
                     for l in text.splitlines()) + "\n"
    with open(conf, "w") as f:
        f.write(text)
    relay.proc.mark()
    p.mark()
    log_before = len(p.log())
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=channel.changing channel=relay reason=settings")
    p.wait_log(r"event=channel.replaced channel=relay")
    # the node stayed Online through make-before-break (a monitor must not fire)
    flaps = [l for l in p.log()[log_before:].splitlines() if "event=node.status" in l]
    check(not flaps, "the node's status changed during a make-before-break reload:\n%s" %
          "\n".join(flaps))
    t.join(30)
    code, body, _ = slow["r"]
    check(code == 200 and len(body) == 1000, "the slow request: %s %d bytes" % (code, len(body)))
    p.wait_log(r"event=channel.closed channel=relay")
    # the relay saw the new listener before the old one went away
    rl = relay.proc.log()
    i_new = rl.find("event=listener.connected hc=myhc")
    i_old = rl.find("event=listener.closed hc=myhc")
    check(0 <= i_new < i_old, "new listener must connect before the old one closes:\n%s" %
          "\n".join(l for l in rl.splitlines() if "listener." in l))
    st = status(h, sock)
    check(len(st["channels"]) == 1 and st["channels"][0]["listenerId"] != old_id and
          st["channels"][0]["state"] == "Connected", "%r" % st["channels"])
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "after the switch: %s" % code)
    # a changed proxy setting reconnects too (the relay is on loopback, so the dial
    # itself stays direct), again make-before-break
    with open(conf, "a") as f:
        f.write("[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n" % free_port())
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=channel.changing channel=relay reason=proxy")
    p.wait_log(r"event=channel.replaced channel=relay")
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "after the proxy change: %s" % code)
    stop_clean(p)


@test
def test_reload_redials_when_only_the_dotnet_file_changes(h):
    """a proxy change made only in diahost.exe.config (or the proxy password file) re-dials the
    channels on reload, make-before-break; a reload that changes nothing does not"""
    relay = Relay(h)
    relay.create()
    relay.start()
    dia = h.write("diahost.exe.config", DOTNET_PROXY % "http://proxy-a.example:3128")
    wp = h.write("diawp.exe.config", DOTNET_PROXY % "http://proxy-a.example:3128")
    p, conf, sock = node_with_relay(h, relay, tail="[proxy]\nmode = system\ndotnet_config = %s\n"
                                    "dotnet_config_worker = %s\n" % (dia, wp))
    # (the relay is on loopback: bypassed whatever the proxy, so the channel stays up)
    p.mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=reload status=done")
    check("event=channel.changing" not in p.log()[p._pos:], "a reload that changed nothing "
          "re-dialed:\n%s" % p.tail())
    for f in (dia, wp):
        with open(f, "w") as fh:
            fh.write(DOTNET_PROXY % "http://proxy-b.example:3128")
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=channel.changing channel=relay reason=proxy")
    p.wait_log(r"event=channel.replaced channel=relay")
    st = status(h, sock)
    check(st["proxy"]["proxy"] == "http://proxy-b.example:3128", "%r" % st["proxy"])
    stop_clean(p)


@test
def test_channel_metrics(h):
    """GET /metrics shows each control channel's state and connects"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay)
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "through the relay: %s" % code)
    r = h.run(["curl", "-sS", "--unix-socket", sock, "http://localhost/metrics"], check=0)
    want = ('shird_channel_state{channel="relay",endpoint="%s",replacing="0",state="Connected"} 1'
            % relay.url())
    check(want in r.stdout, r.stdout)
    check('shird_channel_connects_total{channel="relay",replacing="0"} 1' in r.stdout and
          'shird_node_status{status="Online"} 1' in r.stdout, r.stdout)
    stop_clean(p)


@test
def test_sigterm_drains(h):
    """SIGTERM with a request in flight: it is answered, then shird exits 0"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, extra="test_routes = true")
    import threading
    slow = {}
    t = threading.Thread(target=lambda: slow.setdefault(
        "r", curl(h, relay, "/v1/test/blob?bytes=100&delay_ms=1500")))
    t.start()
    p.wait_log(r"event=request.start channel=relay")
    p.signal(signal.SIGTERM)
    t.join(30)
    check(slow["r"][0] == 200 and len(slow["r"][1]) == 100, "in-flight request: %r" %
          (slow["r"][:1],))
    check(p.wait_exit(15) == 0, "exit code:\n%s" % p.tail())
    log = p.log()
    check("event=listener.draining" in log and "event=shutdown.done inflight=0" in log, p.tail())



@test
def test_https_relay_with_test_ca(h):
    """an https shir-relay with a test CA: verified and served; the wrong CA is a clear TLS error"""
    ca_key, ca = make_ca(h, "right", "Test Relay CA")
    _, wrong = make_ca(h, "wrong", "Some Other CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:localhost")
    relay = Relay(h, tls=(crt, key), public_url="wss://localhost:{tls_port}")
    relay.create(endpoint="wss://localhost:%d" % relay.tls_port)
    relay.start()
    ep = "wss://localhost:%d" % relay.tls_port
    p, conf, sock = node_with_relay(h, relay, endpoint=ep, extra="ca_file = %s\ntest_routes = "
                                    "true" % ca)
    code, body, err = curl(h, relay, "/v1/test/blob?bytes=100000")
    check(code == 200 and len(body) == 100000, "via wss rendezvous: %s %d %s" % (code, len(body),
                                                                                 err))
    pw, cw, sw = node_with_relay(h, relay, name="node-w", endpoint=ep, extra="ca_file = %s" % wrong,
                                 wait=False)
    st = wait_status(h, sw, lambda s: "certificate verify failed" in s["statusDetail"],
                     "a TLS error in the status")
    out = h.run([h.bin("shirctl"), "--socket", sw, "status"], check=None).stdout
    check("TLS with relay %s failed: certificate verify failed" % ep in out and
          "relay.ca_file" in out, out)
    stop_clean(p)
    stop_clean(pw)


@test
def test_through_squid_basic_auth(h):
    """shird reaches an https relay through squid with Basic auth: channel, requests, rendezvous"""
    sq = start_squid(h)
    ca_key, ca = make_ca(h, "right", "Test Relay CA")
    key, crt = make_server_cert(h, ca_key, ca, san="DNS:relay.test")
    relay = Relay(h, tls=(crt, key), public_url="wss://relay.test:{tls_port}")
    relay.create(endpoint="wss://relay.test:%d" % relay.tls_port)
    relay.start()
    ep = "wss://relay.test:%d" % relay.tls_port
    p, conf, sock = node_with_relay(h, relay, endpoint=ep,
                                    extra="ca_file = %s\ntest_routes = true" % ca,
                                    tail=proxy_section(h, sq.port, "right-pw"))
    code, body, err = curl(h, relay, "/v1/node/ip")
    check(code == 200 and json.loads(body)["status"] == "Succeeded", "%s %s" % (code, err))
    code, body, err = curl(h, relay, "/v1/test/blob?bytes=150000")
    check(code == 200 and len(body) == 150000, "rendezvous through squid: %s %d" % (code,
                                                                                    len(body)))
    # the node dialled both the channel and the rendezvous through squid ...
    nl = p.log()
    for action in ("listen", "request"):
        check(re.search(r"event=dial.begin dest=relay.test .*sb-hc-action=%s.* decision=PROXY"
                        % action, nl), "the %s socket did not go through the proxy" % action)
    # ... and squid carried them as user svc (it logs a tunnel when it ends)
    wait_until(lambda: re.search(r"TCP_TUNNEL/200 \d+ CONNECT relay.test:%d svc " %
                                 relay.tls_port, sq.log()), 20, "squid to log the tunnel")
    stop_clean(p)



@test
def test_dead_relay_detected_by_pings(h):
    """a relay that stops answering (SIGSTOP): no pong for two ping intervals, channel reopened"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, extra="ping_interval = 5")
    p.mark()
    relay.proc.signal(signal.SIGSTOP)
    try:
        m = p.wait_log(r"event=channel.dead channel=relay silent_ms=(\d+)", timeout=20)
        check(9500 <= int(m.group(1)) <= 16000, "declared dead after %s ms" % m.group(1))
        m = p.wait_log(r"event=channel.disconnected channel=relay retry_in_ms=\d+ reason=(.*)")
        check("stopped answering pings" in m.group(1), m.group(1))
    finally:
        relay.proc.signal(signal.SIGCONT)
    p.wait_log(r"event=channel.connected channel=relay", timeout=30)
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "after the relay came back: %s" % code)



@test
def test_request_timeout_answers_503(h):
    """a request the node cannot finish in time is answered 503 Timeout, not left to the relay"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, extra="test_routes = true\nrequest_timeout = 2")
    t0 = time.monotonic()
    code, body, err = curl(h, relay, "/v1/test/blob?bytes=10&delay_ms=6000")
    took = time.monotonic() - t0
    check(code == 503 and b"Timeout" in body and b"request_timeout" in body,
          "%s %s %s" % (code, body[:300], err))
    check(1.5 < took < 5, "answered after %.1f s" % took)
    p.wait_log(r"event=request.timeout channel=relay")
    # the late answer of the API is dropped quietly, and the node goes on serving
    p.wait_log(r"event=api.done method=GET path=/v1/test/blob status=200 cancelled=1", timeout=10)
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "after the timeout: %s" % code)


@test
def test_limited_when_new_key_fails(h):
    """a reload with a key the relay refuses: the old channel keeps serving, the node is Limited"""
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay)
    with open(h.path("node-a.key"), "w") as f:
        f.write("d3Jvbmcta2V5\n")
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=channel.changing channel=relay reason=settings")
    st = wait_status(h, sock, lambda s: s["status"] == "Limited", "Limited")
    check("authorization failed" in st["statusDetail"] and "401" in st["statusDetail"],
          st["statusDetail"])
    states = sorted((c["state"], bool(c.get("replacing"))) for c in st["channels"])
    check(states[0] == ("Connected", False) and states[1][1] is True, "%r" % st["channels"])
    code, _, _ = curl(h, relay, "/v1/node/ip")
    check(code == 200, "the old channel must still serve: %s" % code)



@test
def test_hyco_ws_sender_through_tunnel(h):
    """Microsoft's hyco-ws sender reaches a [forward] echo target through shir-relay and shird"""
    import relaytest
    mods = relaytest.npm_clients(h)
    eport = echo_target(h)
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay, tail="[forward]\necho = 127.0.0.1:%d\n" % eport)
    k = relay.keys["myhc"]["service-key"]
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "listener_hyco_sender.js")
    s = h.start("sender", ["node", js], env={"NODE_PATH": mods, "PORT": str(relay.port),
                                             "KEYNAME": k["keyName"], "KEY": k["key"]})
    s.wait_log(r"SENDER close 1000")
    out = s.log()
    echoed = "".join(re.findall(r"SENDER got ([0-9a-f]+)", out))
    check(echoed == "hello text".encode().hex() + "010203", "echo: %s" % out)
    p.wait_log(r"event=tunnel.closed id=\d+ forward=echo in=13 out=13")
    stop_clean(p)


@test
def test_listener_id_in_use_gets_a_new_one(h):
    """the relay refuses shird's listener id as in use (409): shird takes a new id and connects"""
    from relaytest import RawWS
    relay = Relay(h)
    relay.create()
    relay.start()
    p, conf, sock = node_with_relay(h, relay)
    m = re.search(r"event=channel\.connecting channel=relay url=\S*sb-hc-id=([0-9a-fA-F-]+)", p.log())
    check(m is not None, "the listen URL with its id is logged:\n%s" % p.tail())
    old_id = m.group(1)
    # the node is frozen while the relay restarts and someone else takes its id
    p.signal(signal.SIGSTOP)
    try:
        relay.proc.p.kill()
        relay.proc.wait_exit(10)
        relay.start()
        k = relay.keys["myhc"]["node-key1"]
        tok = sas_token("http://127.0.0.1:%d/myhc" % relay.port, k["keyName"], k["key"])
        squat = RawWS(relay.port, "/$hc/myhc?sb-hc-action=listen&sb-hc-id=%s" % old_id,
                      {"ServiceBusAuthorization": tok})
        check(squat.status == 101, "the squatter got %d" % squat.status)
    finally:
        p.signal(signal.SIGCONT)
    relay.proc.wait_log(r"event=listen\.refused status=409 hc=myhc id=%s" % old_id, timeout=30)
    # the squatter is alive: it answers the relay's ping and keeps the id
    squat.s.settimeout(10)
    op, payload = squat.recv()
    check(op == 9, "the relay pings the holder of the id: opcode %d" % op)
    squat.send(10, payload)
    m = p.wait_log(r"event=channel\.new_id channel=relay listener_id=([0-9a-fA-F-]+)")
    new_id = m.group(1)
    check(new_id != old_id, "a new id")
    p.wait_log(r"event=channel\.connected channel=relay", timeout=20)
    relay.proc.wait_log(r"event=listener\.connected hc=myhc id=%s" % new_id)
    check("event=listener.stale" not in relay.proc.log(), "the live squatter must not be dropped")
    squat.close()
    stop_clean(p)


if __name__ == "__main__":
    main()
