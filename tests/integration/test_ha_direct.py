"""Integration: the node-to-node TLS link on the remote-access port (docs/ha.md,
"Node-to-node transport"): shir-relay and several shird on loopback, each
listening on its own loopback port; credential sync goes direct between nodes
that reach each other and through the relay otherwise; bad peers are refused
with a log line and change nothing."""
import json
import os
import re
import socket
import subprocess
import time

import shirtest
from shirtest import check, main, test, wait_until, TestFailure

_first = len(shirtest._tests)
from test_listener import Relay, shird_conf, start_shird, write_key, stop_clean  # noqa: E402
from test_ha import HaNode, PASSWORD, converged  # noqa: E402
from test_credentials_authoring import basic_server, ls_with, _Basic  # noqa: E402
del shirtest._tests[_first:]    # the imported files' own tests are not this file's


class DNode(HaNode):
    """A node with remote access on its own loopback port (port None: disabled);
    announce: the address its peers are told (default: where it listens)."""

    def __init__(self, h, relay, name, port=None, announce=None, cert=None):
        self.port = port
        self.announce = announce
        self.cert = cert
        super().__init__(h, relay, name)

    def start(self):
        ra = ""
        if self.port:
            ra = ("remote_access = true\nremote_access_port = %d\nremote_access_listen = "
                  "127.0.0.1\nremote_access_address = %s\n" % (
                      self.port, self.announce or "127.0.0.1:%d" % self.port))
            if self.cert:
                ra += "remote_access_cert = %s\n" % self.cert
        # in the first [node] section, where shirctl edits them
        k = self.relay.keys["myhc"]["node-key1"]
        key = write_key(self.h, k["key"], name=self.name + ".key")
        self.conf, self.sock = shird_conf(
            self.h, name=self.name, endpoint=self.relay.url(), path="myhc",
            key_name="node-key1", key_file=key, fname=self.name + ".conf",
            tail="[security]\nlocal_machine_access = true\n")
        with open(self.conf) as f:
            text = f.read().replace("[node]\n", "[node]\ninactive_after = 3\n" + ra, 1)
        with open(self.conf, "w") as f:
            f.write(text)
        self.p = start_shird(self.h, self.conf, name="shird-" + self.name)
        self.p.wait_log(r"event=channel.connected channel=relay")

    def status(self):
        return json.loads(self.ctl("cluster", "status", "--json").stdout)

    def msgs(self):
        """{(path, direction, kind): count} from GET /metrics"""
        r = self.h.run(["curl", "-sS", "--unix-socket", self.sock, "http://localhost/metrics"],
                       check=0)
        out = {}
        for m in re.finditer(r'shird_cluster_sync_messages_total\{path="(\w+)",direction="(\w+)",'
                             r'kind="(\w+)"\} (\d+)', r.stdout):
            out[m.group(1, 2, 3)] = int(m.group(4))
        check(len(out) == 8, "GET /metrics has no sync message counters:\n%s" % r.stdout)
        return out

    def direct_to(self, n):
        st = self.status()
        return sum(1 for p in st["peers"] if p["path"] == "direct") >= n


def direct_runtime(h, specs):
    """A relay and nodes [(name, port, announce, cert)] sharing one data key."""
    h.require("curl", "curl")
    relay = Relay(h)
    relay.create()
    relay.start()
    nodes = [DNode(h, relay, name, port, announce, cert) for name, port, announce, cert in specs]
    nodes[0].ctl("cluster", "init")
    keyfile = h.path("runtime.key")
    nodes[0].ctl("cluster", "export-key", keyfile, input=PASSWORD)
    for nd in nodes[1:]:
        nd.ctl("cluster", "join", keyfile, input=PASSWORD)
    for nd in nodes:
        nd.p.wait_log(r"event=sync.enabled")
    return relay, nodes


def ports(n):
    out = []
    while len(out) < n:
        p = shirtest.free_port()
        if p not in out:
            out.append(p)
    return out


@test
def test_direct_sync_three_nodes(h):
    """three nodes on their own ports: a credential set on node 1 serves a request on node 3,
    and it travelled direct (relay counters for records unchanged, direct counters up)"""
    url = basic_server(h)
    p1, p2, p3 = ports(3)
    relay, nodes = direct_runtime(h, [("node-1", p1, None, None), ("node-2", p2, None, None),
                                      ("node-3", p3, None, None)])
    n1, n2, n3 = nodes
    for nd in nodes:
        nd.p.wait_log(r"event=peer.listening port=\d+ address=127\.0\.0\.1:%d "
                      r"certificate=issued-by-runtime-ca" % nd.port)
    # peers are found from the sealed digests: no peer list in any configuration
    for nd in nodes:
        wait_until(lambda: nd.direct_to(2), 30, "%s reaches both others direct" % nd.name)
    before = {nd.name: nd.msgs() for nd in nodes}
    t0 = time.monotonic()
    n1.set("api-pw", "from-the-store")
    wait_until(lambda: n3.values().get("api-pw") == "from-the-store", 10, "node 3 has it")
    check(time.monotonic() - t0 < 5, "a direct push took over 5 s")
    r = h.run([h.bin("shirctl"), "--socket", n3.sock, "author", "testConnection", "--local",
               "--json"], input='{"linkedService": %s}' % json.dumps(ls_with(url, "api-pw")),
              check=0, timeout=60)
    check('"Succeeded"' in r.stdout, r.stdout)
    check(any(a.startswith("Basic ") for a in _Basic.seen), "node 3 called the store")
    converged(nodes, 10, "all three agree")
    after = {nd.name: nd.msgs() for nd in nodes}
    b1, a1, b3, a3 = before["node-1"], after["node-1"], before["node-3"], after["node-3"]
    check(a1["direct", "sent", "records"] >= b1["direct", "sent", "records"] + 2,
          "node 1 sent its records direct to both: %r -> %r" % (b1, a1))
    check(a3["direct", "received", "records"] > b3["direct", "received", "records"],
          "node 3 received records direct: %r -> %r" % (b3, a3))
    for nd in nodes:
        b, a = before[nd.name], after[nd.name]
        check(a["relay", "sent", "records"] == b["relay", "sent", "records"] and
              a["relay", "received", "records"] == b["relay", "received", "records"],
              "%s moved records through the relay: %r -> %r" % (nd.name, b, a))
    # what an admin sees
    out = n1.ctl("nodes").stdout
    rows = [ln for ln in out.splitlines() if re.match(r"node-[23] ", ln)]
    check(len(rows) == 2 and all(" direct " in ln for ln in rows) and
          "sync messages: direct" in out, out)
    st = n1.status()
    check(st["remoteAccess"]["listening"] and st["remoteAccess"]["certificate"] == "issued" and
          st["remoteAccess"]["refused"] == 0, st["remoteAccess"])
    out = n1.ctl("cluster", "status").stdout
    check("remote access: listening, announced as 127.0.0.1:%d (issued certificate)" % p1 in out,
          out)
    # a member's shirctl check is accepted; the secret never reached the relay
    r = n2.ctl("remote-access", "check", "127.0.0.1:%d" % p1)
    check("issued by this runtime's CA" in r.stdout and "accepted:" in r.stdout, r.stdout)
    rl = relay.proc.log()
    check("from-the-store" not in rl and "api-pw" not in rl, "the relay saw a secret or a name")
    # turning remote access off on node 3 (reload): the others fall back to the relay for it
    n3.ctl("remote-access", "disable")
    n3.p.wait_log(r"event=peer.stopped")
    n1.set("api-pw", "second")
    converged(nodes, 20, "all three agree after node 3 closed its port")
    for nd in nodes:
        stop_clean(nd.p)


@test
def test_closed_port_falls_back_to_relay(h):
    """node 2 has remote access off, node 3 announces a port nobody listens on: both still
    converge, through the relay; node 1 backs off its direct retries to node 3"""
    p1, p3, closed = ports(3)
    relay, nodes = direct_runtime(h, [("node-1", p1, None, None), ("node-2", None, None, None),
                                      ("node-3", p3, "127.0.0.1:%d" % closed, None)])
    n1, n2, n3 = nodes
    m = n1.p.wait_log(r"event=peer.unreachable side=dial node=\S+ addr=127\.0\.0\.1:%d "
                      r"reason=\S.* retry_in_s=1 fallback=relay" % closed, timeout=30)
    n1.p.wait_log(r"event=peer.unreachable side=dial node=\S+ addr=127\.0\.0\.1:%d .*"
                  r"retry_in_s=2 fallback=relay" % closed, timeout=30)
    check("refused" in m.group(0).lower(), m.group(0))
    before = n1.msgs()
    n1.set("db-pw", "one")
    n1.delete("db-pw")
    n1.set("other", "two")
    got = converged(nodes, 20, "nodes 2 and 3 converge through the relay")
    check(got == {"db-pw": None, "other": "two"}, "%r" % got)
    after = n1.msgs()
    check(after["relay", "sent", "records"] > before["relay", "sent", "records"],
          "node 1 sent nothing through the relay: %r -> %r" % (before, after))
    st = n1.status()
    paths = {p["name"]: p["path"] for p in st["peers"]}
    check(paths == {"node-2": "relay", "node-3": "relay"}, "%r" % paths)
    # node 3 still dials node 1 (its own outbound link is fine)
    wait_until(lambda: n3.direct_to(1), 20, "node 3 reaches node 1 direct")
    out = n2.ctl("cluster", "status").stdout
    check("remote access: not listening" in out, out)
    for nd in nodes:
        stop_clean(nd.p)


@test
def test_admin_certificate_pinned(h):
    """node 2 presents the admin's certificate (--cert): accepted both ways because node 2
    announced its fingerprint sealed; the same subject with another key is refused"""
    h.require("openssl", "openssl")
    p1, p2 = ports(2)
    cert = h.path("admin.pem")
    openssl(h, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", cert, "-out",
            h.path("admin.crt"), "-subj", "/CN=node-2-admin", "-days", "2")
    with open(h.path("admin.crt")) as f:
        crt = f.read()
    with open(cert, "a") as f:
        f.write(crt)
    os.chmod(cert, 0o600)
    relay, nodes = direct_runtime(h, [("node-1", p1, None, None), ("node-2", p2, None, None)])
    n1, n2 = nodes
    # set the way an admin does: shirctl checks the file, shird reopens the port on reload
    n2.ctl("remote-access", "enable", "--port", str(p2), "--cert", cert)
    n2.p.wait_log(r"event=peer.listening port=%d address=127\.0\.0\.1:%d certificate=\"?%s"
                  % (p2, p2, re.escape(cert)), timeout=30)
    for nd in nodes:
        wait_until(lambda: nd.direct_to(1), 40, "%s reaches the other direct" % nd.name)
    n1.p.wait_log(r"event=peer.accepted peer=\S+ node=node-2-admin", after_mark=False)
    check(n2.status()["remoteAccess"]["certificate"] == "admin", n2.status()["remoteAccess"])
    n2.set("pinned", "yes")
    wait_until(lambda: n1.values().get("pinned") == "yes", 10, "node 1 has it")
    # a look-alike: same subject, another key, never announced
    openssl(h, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", h.path("alike.key"),
            "-out", h.path("alike.pem"), "-subj", "/CN=node-2-admin", "-days", "2")
    n1.p.mark()
    s_client(h, p1, "-tls1_3", "-cert", h.path("alike.pem"), "-key", h.path("alike.key"))
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"a self-signed certificate "
                  r"that no member of this runtime announced")
    for nd in nodes:
        stop_clean(nd.p)


@test
def test_remote_access_settings_checked(h):
    """shird -t refuses a listen address that is no IP address and an announced address with a
    space, saying which key"""
    for line, want in (("remote_access_listen = nothost", "node.remote_access_listen = nothost "
                        "is not an IP address"),
                       ("remote_access_address = a b:1", "node.remote_access_address must be")):
        conf = h.write("t.conf", "[node]\nstate_dir = %s\nremote_access = true\n%s\n" % (
            h.path("st"), line))
        r = h.run([h.bin("shird"), "-t", "-f", conf], check=1)
        check(want in r.stderr, r.stderr)


def openssl(h, *args):
    return h.run(["openssl"] + list(args), check=0)


def peer_cert(h, port):
    """The certificate a node presents (as any TLS client sees it)."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
                        "-showcerts"], input=b"", capture_output=True, timeout=20)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    check(pem, "no certificate from the node: %r" % r.stdout[-500:])
    f = h.write("peer-%d.pem" % port, pem.group(0).decode())
    subj = openssl(h, "x509", "-in", f, "-noout", "-subject", "-issuer", "-nameopt",
                   "RFC2253").stdout
    return (re.search(r"subject=(.*)", subj).group(1).strip(),
            re.search(r"issuer=(.*)", subj).group(1).strip())


def s_client(h, port, *args):
    """An attacker's TLS client: the node must close the connection."""
    return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] +
                          list(args), input=b"", capture_output=True, timeout=20)


def raw(port, data, wait=10):
    """Sends data (or nothing) and returns (bytes back, seconds until the node closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    t0 = time.monotonic()
    if data:
        s.sendall(data)
    got = b""
    try:
        while True:
            try:
                b = s.recv(4096)
            except ConnectionResetError:
                break       # closed with unread bytes: a reset
            if not b:
                break
            got += b
    except socket.timeout:
        s.close()
        raise TestFailure("the node kept a connection open for over %ss" % wait)
    s.close()
    return got, time.monotonic() - t0


@test
def test_bad_peers_refused(h):
    """another runtime, a forged certificate, expired ones (the runtime CA's and an admin's), no
    certificate, TLS 1.2, garbage, plain HTTP and a stalled handshake: each refused with its reason in the log, within the
    handshake deadline; the store unchanged and the node still syncing"""
    h.require("openssl", "openssl")
    p1, p2, p3 = ports(3)
    # node 3 presents an admin certificate that expired yesterday (--cert, as on Windows)
    key = h.path("expired.key")
    openssl(h, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", key, "-out",
            h.path("fresh.pem"), "-subj", "/CN=node-3-admin", "-days", "2")
    openssl(h, "x509", "-in", h.path("fresh.pem"), "-signkey", key, "-days", "-1", "-out",
            h.path("expired.crt"))
    with open(h.path("expired.crt")) as f, open(key) as k:
        expired = h.write("expired.pem", f.read() + k.read(), mode=0o600)
    relay, nodes = direct_runtime(h, [("node-1", p1, None, None), ("node-2", p2, None, None),
                                      ("node-3", p3, None, expired)])
    n1, n2, n3 = nodes
    n1.set("keep", "original")
    converged(nodes, 20, "the three agree")
    wait_until(lambda: n1.direct_to(1), 30, "node 1 reaches node 2 direct")
    # node 3's expired certificate: refused both ways, node 3 syncs through the relay
    n1.p.wait_log(r"event=peer.refused side=accept peer=127\.0\.0\.1:\d+ reason=\"the "
                  r"certificate has expired", timeout=30, after_mark=False)
    n1.p.wait_log(r"event=peer.refused side=dial node=\S+ addr=127\.0\.0\.1:%d reason=\"the "
                  r"certificate has expired" % p3, timeout=30, after_mark=False)
    subject, issuer = peer_cert(h, p1)
    check(re.search(r"CN=shir runtime CA [0-9a-f]{16}", issuer), issuer)
    n1.p.mark()
    st0 = n1.status()

    # another runtime's node: its own data key, its own CA
    other = h.write("other.conf", "[node]\nname = other-1\ncontrol_socket = %s\nstate_dir = %s\n"
                    % (h.path("other.sock"), h.path("state-other")))
    os.makedirs(h.path("state-other"), mode=0o700, exist_ok=True)
    ctl = [h.bin("shirctl"), "--socket", h.path("other.sock"), "--conf", other]
    h.run(ctl + ["cluster", "init"], check=0)
    r = h.run(ctl + ["remote-access", "check", "127.0.0.1:%d" % p1], check=1)
    check("refused:" in r.stdout, r.stdout + r.stderr)
    n1.p.wait_log(r"event=peer.refused side=accept peer=127\.0\.0\.1:\d+ reason=\"the "
                  r"certificate is issued by another runtime's CA")

    # forged: this runtime's CA name and a member's subject, signed by another key
    fca_key, fca = h.path("fca.key"), h.path("fca.pem")
    openssl(h, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", fca_key, "-out", fca,
            "-subj", "/" + "/".join(reversed(issuer.split(","))), "-days", "30")
    fkey, fcsr, fcrt = h.path("forged.key"), h.path("forged.csr"), h.path("forged.pem")
    openssl(h, "req", "-new", "-newkey", "ed25519", "-nodes", "-keyout", fkey, "-out", fcsr,
            "-subj", "/" + "/".join(reversed(subject.split(","))))
    openssl(h, "x509", "-req", "-in", fcsr, "-CA", fca, "-CAkey", fca_key, "-CAcreateserial",
            "-days", "30", "-out", fcrt)
    s_client(h, p1, "-tls1_3", "-cert", fcrt, "-key", fkey)
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"the certificate names "
                  r"this runtime's CA as its issuer but is not signed by it \(forged\)")
    # self-signed with a member's name
    openssl(h, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", h.path("self.key"),
            "-out", h.path("self.pem"), "-subj", "/" + "/".join(reversed(subject.split(","))),
            "-days", "3")
    s_client(h, p1, "-tls1_3", "-cert", h.path("self.pem"), "-key", h.path("self.key"))
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"a self-signed certificate "
                  r"that no member of this runtime announced")
    # a certificate this runtime's CA issued (made from node 2's data key by a helper):
    # accepted from a plain TLS client while valid, refused once expired
    member, old = h.path("member.pem"), h.path("old.pem")
    h.run([h.bin("rtcert"), n2.state, "3600", member], check=0)
    h.run([h.bin("rtcert"), n2.state, "-120", old], check=0)
    s_client(h, p1, "-tls1_3", "-cert", member, "-key", member)
    n1.p.wait_log(r"event=peer.accepted peer=\S+ node=rtcert")
    s_client(h, p1, "-tls1_3", "-cert", old, "-key", old)
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"the certificate has expired "
                  r"\(verifier: certificate has expired; issuer CN shir runtime CA [0-9a-f]{16}\)")
    # no certificate at all, and TLS 1.2
    s_client(h, p1, "-tls1_3")
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"the peer presented no "
                  r"certificate")
    s_client(h, p1, "-tls1_2")
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"not TLS 1.3")
    # garbage, plain HTTP, a client that never finishes its handshake
    got, took = raw(p1, os.urandom(600))
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"(not a TLS client: "
                  r"garbage bytes|TLS handshake failed)")
    got, took = raw(p1, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(b"HTTP/1.1 200" not in got, "%r" % got)
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"plain HTTP, not TLS")
    stalled = [socket.create_connection(("127.0.0.1", p1)) for _ in range(3)]
    half = socket.create_connection(("127.0.0.1", p1))
    half.sendall(b"\x16\x03\x01\x00\x80")     # a record header, then nothing
    got, took = raw(p1, b"", wait=12)
    check(took <= 5 + 2, "a stalled handshake was dropped after %.1fs (deadline 5 s)" % took)
    n1.p.wait_log(r"event=peer.refused side=accept peer=\S+ reason=\"the handshake did not "
                  r"finish within 5 s")
    # the node keeps serving meanwhile: a member is accepted, sync goes on
    r = n2.ctl("remote-access", "check", "127.0.0.1:%d" % p1)
    check("accepted:" in r.stdout, r.stdout)
    n2.set("during", "attack")
    wait_until(lambda: n1.values().get("during") == "attack", 15, "node 1 still syncs")
    for s in stalled + [half]:
        s.close()
    st = n1.status()
    check(st["remoteAccess"]["refused"] >= 11, st["remoteAccess"])
    check(n1.values() == {"keep": "original", "during": "attack"}, "%r" % n1.values())
    check(st["recordsApplied"] == st0["recordsApplied"] + 1, "refused peers changed the store: "
          "%r -> %r" % (st0["recordsApplied"], st["recordsApplied"]))
    converged(nodes, 20, "the three agree at the end")
    for nd in nodes:
        stop_clean(nd.p)


if __name__ == "__main__":
    main()
