"""Integration: shir-relay over TLS with a test CA made here; Microsoft's npm
clients verify the certificate through NODE_EXTRA_CA_CERTS (spec §9.7), and
fail without it."""
import json
import os
import re
import shutil
import signal
import socket
import ssl

from shirtest import check, free_port, main, make_ca, make_server_cert, make_test_pki, test
from relaytest import HYCO, Relay, http_result, node_env, npm_clients, run_node


@test
def test_tls_hyco(h):
    """wss:// listener (hyco-https and hyco-ws) and https/wss senders through a TLS relay with a test CA"""
    mods = npm_clients(h)
    ca, cert, key = make_test_pki(h)
    r = Relay(h, tls=(cert, key))
    r.create()
    r.start()
    relay_url = "wss://localhost:%d" % r.port
    # without the CA the clients refuse the relay
    bad = h.start("untrusted", ["node", os.path.join(HYCO, "https_listener.js")],
                  env=node_env(mods, dict(r.listen_env(), RELAY=relay_url)))
    bad.wait_log(r"LISTENER error .*(unable to verify|self.signed|certificate)")
    bad.stop()

    env = dict(r.listen_env(), RELAY=relay_url, NODE_EXTRA_CA_CERTS=ca)
    lst = h.start("listener", ["node", os.path.join(HYCO, "https_listener.js")], env=node_env(mods, env))
    lst.wait_log(r"LISTENER listening")
    senv = dict(r.send_env(), TLS="1", HOST="localhost", NODE_EXTRA_CA_CERTS=ca)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/tls?a=1"]))
    check(res["status"] == 201 and res["body"] == "echo GET /myhc/tls?a=1 0", "https sender: %r", res)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/big"]))
    check(res["status"] == 200 and res["length"] == 100000, "100 KB over the wss rendezvous: %r",
          {k: res.get(k) for k in ("status", "length", "error")})
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["POST", "/myhc/upload", "80000"]))
    check(res["status"] == 201 and res["body"] == "echo POST /myhc/upload 80000", "80 KB POST over TLS: %r", res)
    lst.stop()

    wl = h.start("wslistener", ["node", os.path.join(HYCO, "ws_listener.js")], env=node_env(mods, env))
    wl.wait_log(r"LISTENER listening")
    r.proc.wait_log(r"event=listener\.connected")
    out = run_node(h, mods, "ws_sender.js", senv)
    check("SENDER got echo:hello text" in out and "SENDER close 1000 bye" in out, "wss tunnel:\n%s", out)



def server_cert(h, ca_key, ca, name, cn):
    """A server certificate for localhost with its own subject, as NAME.pem/NAME.key."""
    key, crt = make_server_cert(h, ca_key, ca, cn=cn)
    shutil.copy(key, h.path(name + ".key"))
    shutil.copy(crt, h.path(name + ".pem"))
    return h.path(name + ".pem"), h.path(name + ".key")


def peer_cert(port, ca):
    """The certificate a new TLS connection to the relay presents, verified
    against the test CA for the name localhost."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            c = t.getpeercert()
    return c["serialNumber"], dict(x[0] for x in c["subject"])["commonName"]


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True


def listeners(r):
    st = json.loads(r.admin_get("/status"))
    return [(l["id"], l["remote"]) for e in st["entities"] if e["name"] == "myhc" for l in e["listeners"]]


@test
def test_tls_reload(h):
    """SIGHUP: new connections get the new certificate, a connected wss listener stays; a broken key keeps the old one; changed addresses need a restart"""
    mods = npm_clients(h)
    ca_key, ca = make_ca(h)
    a_cert, a_key = server_cert(h, ca_key, ca, "a", "shir relay A")
    b_cert, b_key = server_cert(h, ca_key, ca, "b", "shir relay B")
    cert, key = h.path("live.pem"), h.path("live.key")
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    plain = free_port()
    r = Relay(h, tls=(cert, key), extra_relay="listen = 127.0.0.1:%d" % plain)
    r.create()
    r.start()
    log = r.proc.log()
    check(re.search(r'event=tls\.loaded subject="CN=shir relay A" not_after=\d{4}-', log),
          "the start logs the certificate:\n%s", r.proc.tail())
    serial_a, cn = peer_cert(r.port, ca)
    check(cn == "shir relay A", "before the reload a new connection sees A, not %r", cn)

    # a hyco-https listener over wss, connected with certificate A
    env = dict(r.listen_env(), RELAY="wss://localhost:%d" % r.port, NODE_EXTRA_CA_CERTS=ca)
    lst = h.start("listener", ["node", os.path.join(HYCO, "https_listener.js")], env=node_env(mods, env))
    lst.wait_log(r"LISTENER listening")
    r.proc.wait_log(r"event=listener\.connected")
    before = listeners(r)
    check(len(before) == 1, "one listener: %r", before)
    senv = dict(r.send_env(), TLS="1", HOST="localhost", NODE_EXTRA_CA_CERTS=ca)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/one"]))
    check(res["status"] == 201 and res["body"] == "echo GET /myhc/one 0", "request before: %r", res)

    # rotate to B (another key and subject from the same CA)
    shutil.copy(b_key, key)
    shutil.copy(b_cert, cert)
    r.proc.mark()
    r.proc.signal(signal.SIGHUP)
    m = r.proc.wait_log(r'event=reload\.tls status=done subject="CN=shir relay B" not_after=(\S+)')
    check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", m.group(1)), "notAfter: %r", m.group(1))
    r.proc.wait_log(r"event=reload status=done")
    serial_b, cn = peer_cert(r.port, ca)
    check(cn == "shir relay B" and serial_b != serial_a,
          "after the reload a new connection sees B: %r %r (A was %r)", cn, serial_b, serial_a)
    # the listener connected before is the same connection and still serves,
    # inline and through a rendezvous (a new wss connection, so with B)
    check(listeners(r) == before, "the listener stayed: %r, before %r", listeners(r), before)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/two"]))
    check(res["status"] == 201 and res["body"] == "echo GET /myhc/two 0", "request after: %r", res)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/big"]))
    check(res["status"] == 200 and res["length"] == 100000, "100 KB after the reload: %r",
          {k: res.get(k) for k in ("status", "length", "error")})
    check(listeners(r) == before, "the listener stayed: %r, before %r", listeners(r), before)
    check("event=listener.closed" not in r.proc.log(), "a listener closed:\n%s", r.proc.tail())

    # a broken key file: the failure is logged, new connections still get B,
    # and the rest of the reload applies (a new public_url)
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n")
    with open(r.conf) as f:
        conf = f.read()
    with open(r.conf, "w") as f:
        f.write(conf.replace("public_url = wss://localhost:%d" % r.port, "public_url = wss://127.0.0.1:%d" % r.port))
    r.proc.signal(signal.SIGHUP)
    m = r.proc.wait_log(r"event=reload\.tls status=failed .*")
    line = m.group(0)
    check(cert in line and key in line, "the failure names both files: %s", line)
    check(re.search(r"error=.* \([A-Za-z ]+ routines: [a-z][^;]*\); check", line),
          "the failure carries OpenSSL's reason: %s", line)
    r.proc.wait_log(r"event=reload status=done")
    check(peer_cert(r.port, ca) == (serial_b, "shir relay B"), "after a failed reload B stays")
    pub = json.loads(r.admin_get("/status"))["publicUrl"]
    check(pub == "wss://127.0.0.1:%d" % r.port, "the rest of the reload applies: publicUrl %r", pub)
    # the certificate file missing (a wrong path in the rotation): refused, B stays
    os.rename(cert, cert + ".away")
    r.proc.signal(signal.SIGHUP)
    m = r.proc.wait_log(r"event=reload\.tls status=failed .*")
    check("No such file or directory" in m.group(0), "a missing certificate: %s", m.group(0))
    r.proc.wait_log(r"event=reload status=done")
    check(peer_cert(r.port, ca) == (serial_b, "shir relay B"), "after a missing file B stays")
    os.rename(cert + ".away", cert)
    # the key of A with the certificate B: refused too
    shutil.copy(a_key, key)
    r.proc.signal(signal.SIGHUP)
    m = r.proc.wait_log(r"event=reload\.tls status=failed .*")
    check("key values mismatch" in m.group(0), "a mismatched key: %s", m.group(0))
    r.proc.wait_log(r"event=reload status=done")
    check(peer_cert(r.port, ca) == (serial_b, "shir relay B"), "after a mismatched key B stays")
    keylines = set()
    for k in (a_key, b_key):
        with open(k) as f:
            keylines |= {l for l in f.read().splitlines() if l and not l.startswith("-----")}
    relay_log = r.proc.log()
    check(not any(l in relay_log for l in keylines) and "bm90IGEga2V5" not in relay_log,
          "key material in the log")

    # listen, listen_tls, admin and state_file changed: a warning each, the
    # relay stays where it was (and keeps its state file)
    new_tls, new_plain, new_admin = free_port(), free_port(), free_port()
    with open(r.conf) as f:
        conf = f.read()
    conf = conf.replace("listen_tls = 127.0.0.1:%d" % r.port, "listen_tls = 127.0.0.1:%d" % new_tls)
    conf = conf.replace("listen = 127.0.0.1:%d" % plain, "listen = 127.0.0.1:%d" % new_plain)
    conf = conf.replace("admin = 127.0.0.1:%d" % r.admin, "admin = 127.0.0.1:%d" % new_admin)
    conf = conf.replace("state_file = " + r.state, "state_file = " + h.path("other.json"))
    with open(r.conf, "w") as f:
        f.write(conf)
    shutil.copy(b_key, key)
    r.proc.signal(signal.SIGHUP)
    for name, old, new in (("listen", plain, new_plain), ("listen_tls", r.port, new_tls),
                           ("admin", r.admin, new_admin)):
        r.proc.wait_log(r"event=reload\.restart_needed setting=%s running=127\.0\.0\.1:%d "
                        r"configured=127\.0\.0\.1:%d .*restart shir-relay" % (name, old, new),
                        after_mark=False)
    r.proc.wait_log(r"event=reload\.restart_needed setting=state_file running=%s configured=%s "
                    r".*restart shir-relay" % (re.escape(r.state), re.escape(h.path("other.json"))),
                    after_mark=False)
    m = r.proc.wait_log(r"event=state\.loaded .*file=(\S+)")
    check(m.group(1) == r.state, "the reload must read the running state file, not %s", m.group(1))
    r.proc.wait_log(r"event=reload status=done")
    check(refused(new_tls) and refused(new_plain) and refused(new_admin),
          "the new addresses must not be bound before a restart")
    check(peer_cert(r.port, ca) == (serial_b, "shir relay B"), "TLS still served on the old port")
    socket.create_connection(("127.0.0.1", plain), timeout=5).close()
    check(listeners(r) == before, "the listener stayed: %r, before %r", listeners(r), before)
    res = http_result(run_node(h, mods, "http_sender.js", senv, ["GET", "/myhc/big"]))
    check(res["status"] == 200 and res["length"] == 100000, "100 KB on the old address: %r",
          {k: res.get(k) for k in ("status", "length", "error")})
    lst.stop()
    # every context is released: the relay (built with ASan/LSan in CI) exits cleanly
    r.proc.signal(signal.SIGTERM)
    rc = r.proc.wait_exit()
    check(rc == 0 and "event=shutdown.done" in r.proc.log(), "the relay exited %s:\n%s", rc, r.proc.tail())


main()
