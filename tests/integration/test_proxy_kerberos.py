"""Integration: Negotiate (Kerberos/SPNEGO) proxy authentication end to end.
A real MIT KDC with its own realm (SHIR.TEST) on a loopback port, a squid
that accepts only Negotiate (negotiate_kerberos_auth with the proxy's
HTTP/localhost keytab), and the client's ticket from kinit: libcurl's
GSS-API SPNEGO exchange is what runs, and the bytes are checked through a
TLS echo server behind the tunnel."""
import json
import os
import pwd
import re

import shirtest
from shirtest import check, free_port, main, test, wait_until

_before = len(shirtest._tests)
import test_proxy as tp  # noqa: E402  (its Squid, echo server and dial helpers)
import test_listener as tl  # noqa: E402  (its shir-relay and shird helpers)
del shirtest._tests[_before:]  # run only this file's tests here

REALM = "SHIR.TEST"
SPN = "HTTP/localhost@" + REALM
USER, USER_PW = "svc", "user-pw-123"

KRB5_CONF = """\
[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
[realms]
    {realm} = {{
        kdc = 127.0.0.1:{port}
    }}
[domain_realm]
    localhost = {realm}
"""

KDC_CONF = """\
[kdcdefaults]
    kdc_ports = {port}
    kdc_tcp_ports = {port}
[realms]
    {realm} = {{
        database_name = {dir}/principal
        key_stash_file = {dir}/stash
        acl_file = {dir}/kadm5.acl
        kdc_listen = 127.0.0.1:{port}
        kdc_tcp_listen = 127.0.0.1:{port}
    }}
[logging]
    kdc = FILE:{dir}/kdc.log
"""


class Kdc:
    """An MIT KDC for the realm SHIR.TEST in the test's temp dir, on a free
    loopback port, with the user svc and the proxy's service key in a keytab."""

    def __init__(self, h):
        self.h = h
        krb5kdc = h.require("krb5kdc", "krb5-kdc")
        kdb5_util = h.require("kdb5_util", "krb5-kdc")
        kadmin = h.require("kadmin.local", "krb5-admin-server")
        self.kinit_bin = h.require("kinit", "krb5-user")
        self.dir = h.path("kdc")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = h.write("kdc/krb5.conf", KRB5_CONF.format(realm=REALM, port=self.port))
        kdcconf = h.write("kdc/kdc.conf", KDC_CONF.format(realm=REALM, port=self.port,
                                                         dir=self.dir))
        self.log_path = os.path.join(self.dir, "kdc.log")
        self.env = {"KRB5_CONFIG": self.conf, "KRB5_KDC_PROFILE": kdcconf,
                    "KRB5RCACHETYPE": "none"}
        # the master password goes through stdin, never argv
        h.run([kdb5_util, "create", "-s", "-r", REALM], input="master-pw\nmaster-pw\n",
              env=self.env, check=0)
        h.run([kadmin, "-r", REALM, "-q", "addprinc -randkey %s" % SPN], env=self.env, check=0)
        self.keytab = os.path.join(self.dir, "http.keytab")
        h.run([kadmin, "-r", REALM, "-q", "ktadd -k %s %s" % (self.keytab, SPN)], env=self.env,
              check=0)
        r = h.run([kadmin, "-r", REALM], input="addprinc %s\n%s\n%s\n" % (USER, USER_PW, USER_PW),
                  env=self.env, check=0)
        check("Principal \"%s@%s\" created" % (USER, REALM) in r.stdout + r.stderr,
              "kadmin.local did not create %s: %s %s", USER, r.stdout, r.stderr)
        # the user's key for a client keytab (KRB5_CLIENT_KTNAME), password unchanged
        self.client_keytab = os.path.join(self.dir, "client.keytab")
        h.run([kadmin, "-r", REALM, "-q", "ktadd -norandkey -k %s %s@%s" % (
            self.client_keytab, USER, REALM)], env=self.env, check=0)
        self.proc = h.start("krb5kdc", [krb5kdc, "-n", "-r", REALM], env=self.env)
        wait_until(lambda: "commencing operation" in self.log(), 10, "krb5kdc to start")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kinit(self, name):
        """A credential cache for svc@SHIR.TEST in the temp dir (password on stdin)."""
        cc = "FILE:" + self.h.path(name)
        env = dict(self.env, KRB5CCNAME=cc)
        self.h.run([self.kinit_bin, "%s@%s" % (USER, REALM)], input=USER_PW + "\n", env=env,
                   check=0)
        return cc

    def squid(self, extra=()):
        """A squid that accepts only Negotiate, its helper reading the keytab as user proxy."""
        os.chown(self.keytab, pwd.getpwnam("proxy").pw_uid, -1)
        os.chmod(self.keytab, 0o600)
        os.chmod(self.dir, 0o755)
        return tp.Squid(self.h, auth="negotiate", keytab=self.keytab, spn=SPN,
                        env={"KRB5_CONFIG": self.conf, "KRB5_KTNAME": "FILE:" + self.keytab,
                             "KRB5RCACHETYPE": "none"}, extra=extra)


def client_env(kdc, cc):
    return {"KRB5_CONFIG": kdc.conf, "KRB5CCNAME": cc}


@test
def test_negotiate_custom_and_system(h):
    """Negotiate through a Kerberos-only squid: custom auth = negotiate and system mode with
    useDefaultCredentials both tunnel, and so does a client keytab (KRB5_CLIENT_KTNAME) without
    kinit; squid logs svc@SHIR.TEST; the KDC issued the proxy ticket"""
    kdc = Kdc(h)
    cc = kdc.kinit("ccache")
    sq = kdc.squid()
    eport, cert = tp.echo_server(h)
    env = client_env(kdc, cc)

    conf = tp.custom(sq.port, auth="negotiate", address="localhost")
    rc, out, err = tp.dial(h, conf, eport, cert, nbytes=200000, env=env)
    check(rc == 0 and out.startswith("OK n=1 bytes=200000"), "custom negotiate: %s %s", out, err)
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d svc@SHIR\.TEST " % eport)
    wait_until(lambda: re.search(r"TGS_REQ .*svc@SHIR\.TEST for HTTP/localhost@SHIR\.TEST",
                                 kdc.log()), 10, "the KDC to log the proxy ticket:\n" + kdc.log())

    # how a Windows node uses Kerberos: diahost.exe.config, useDefaultCredentials="true"
    dia = tp.dotnet(h, "diahost.exe.config",
                    '      <proxy proxyaddress="http://localhost:%d"/>' % sq.port)
    node = tp.NODE_CONF.format(sock=h.path("s"), state=h.path("st"), mode="system", dia=dia, wp="")
    before = sq.log().count("svc@SHIR.TEST")
    rc, out, err = tp.dial(h, node, eport, cert, env=env)
    check(rc == 0 and out.startswith("OK n=1 bytes=100000"), "system mode: %s %s", out, err)
    wait_until(lambda: sq.log().count("svc@SHIR.TEST") > before, 10,
               "a second authenticated tunnel in squid's log:\n" + sq.log())

    # no kinit: GSS-API gets the ticket itself from a client keytab
    kt_env = {"KRB5_CONFIG": kdc.conf, "KRB5CCNAME": "FILE:" + h.path("fresh-ccache"),
              "KRB5_CLIENT_KTNAME": kdc.client_keytab}
    before = sq.log().count("svc@SHIR.TEST")
    rc, out, err = tp.dial(h, conf, eport, cert, env=kt_env)
    check(rc == 0 and out.startswith("OK"), "client keytab: %s %s", out, err)
    wait_until(lambda: sq.log().count("svc@SHIR.TEST") > before, 10,
               "a tunnel from the client keytab in squid's log:\n" + sq.log())


@test
def test_negotiate_without_ticket(h):
    """no Kerberos ticket: the 407 names Negotiate and tells to run kinit; no tunnel in squid's log"""
    kdc = Kdc(h)
    sq = kdc.squid()
    eport, cert = tp.echo_server(h)
    env = client_env(kdc, "FILE:" + h.path("no-such-ccache"))
    for conf in (tp.custom(sq.port, auth="negotiate", address="localhost"),
                 tp.NODE_CONF.format(sock=h.path("s"), state=h.path("st"), mode="system",
                                     dia=tp.dotnet(h, "diahost.exe.config",
                                                   '      <proxy proxyaddress="http://localhost:%d"/>'
                                                   % sq.port), wp="")):
        rc, out, err = tp.dial(h, conf, eport, cert, env=env)
        check(rc == 1 and "407 Proxy Authentication Required" in out and
              "the proxy offers: Negotiate" in out and "kinit" in out and "KRB5CCNAME" in out,
              "no ticket: %s %s", out, err)
    sq.wait_log(r"TCP_DENIED/407 ")
    check("TCP_TUNNEL" not in sq.log(), "nothing may tunnel without a ticket:\n%s", sq.log())


@test
def test_negotiate_relay_listener(h):
    """shird's relay listener reaches shir-relay (wss) through the Kerberos-only squid with its
    own ticket: channel Online, requests and a rendezvous; squid logs the tunnels as svc@SHIR.TEST"""
    kdc = Kdc(h)
    cc = kdc.kinit("ccache")
    # squid resolves relay.test itself (the node never does; loopback would go direct)
    sq = kdc.squid(extra=["hosts_file %s" % h.write("squid-hosts", "127.0.0.1 relay.test\n")])
    ca_key, ca = tl.make_ca(h, "right", "Test Relay CA")
    key, crt = tl.make_server_cert(h, ca_key, ca, san="DNS:relay.test")
    relay = tl.Relay(h, tls=(crt, key), public_url="wss://relay.test:{tls_port}")
    relay.create(endpoint="wss://relay.test:%d" % relay.tls_port)
    relay.start()
    ep = "wss://relay.test:%d" % relay.tls_port
    k = relay.keys["myhc"]["node-key1"]
    conf, sock = tl.shird_conf(h, endpoint=ep, key_file=tl.write_key(h, k["key"]),
                               extra="ca_file = %s\ntest_routes = true" % ca,
                               tail="[proxy]\nmode = custom\naddress = localhost\nport = %d\n"
                               "auth = negotiate\n" % sq.port)
    p = h.start("shird", [h.bin("shird"), "-f", conf], env=client_env(kdc, cc))
    p.wait_log(r"event=channel.connected channel=relay", timeout=30)
    code, body, err = tl.curl(h, relay, "/v1/node/ip")
    check(code == 200 and json.loads(body)["status"] == "Succeeded", "%s %s", code, err)
    code, body, err = tl.curl(h, relay, "/v1/test/blob?bytes=150000")
    check(code == 200 and len(body) == 150000, "rendezvous through squid: %s %d", code, len(body))
    tl.stop_clean(p)
    # squid logs a tunnel when it ends: the channel's and the rendezvous'
    wait_until(lambda: len(re.findall(r"TCP_TUNNEL/200 \d+ CONNECT relay.test:%d svc@SHIR\.TEST "
                                      % relay.tls_port, sq.log())) >= 2, 20,
               "squid to log both tunnels as svc@SHIR.TEST:\n" + sq.log())


if __name__ == "__main__":
    main()
