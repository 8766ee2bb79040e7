"""A real squid (the corporate proxy) for the integration tests: one helper
for test_proxy, test_proxy_kerberos, test_authoring, test_listener and
test_admin.

    sq = Squid(h, auth="basic", user="svc", password="right-pw",
               hosts={"relay.test": "127.0.0.1"})
    sq.port, sq.dir, sq.access       # its loopback port, directory, access log
    sq.log()                         # the access log so far ("" before any line)
    sq.wait_log(r"TCP_TUNNEL/200")   # waits until the access log matches

squid runs with -N on a free 127.0.0.1 port, in h.path("squid"), which is
handed to the "proxy" user squid drops to (the test's temp dir is made
traversable). The constructor returns once squid's cache.log says it accepts
connections (and, with wait_auth, once it answers an unauthenticated CONNECT
with 407, i.e. its authentication helpers run)."""
import os
import pwd
import re
import socket

from shirtest import free_port, wait_until

SQUID_LIBEXEC = "/usr/lib/squid"

# the authentication helper each auth scheme runs (Debian package squid)
_HELPERS = {"basic": "basic_ncsa_auth", "digest": "digest_file_auth",
            "ntlm": "ntlm_fake_auth", "negotiate": "negotiate_kerberos_auth"}


class Squid:
    def __init__(self, h, auth=None, user="svc", password="right-pw", deny_port=None,
                 keytab=None, spn=None, env=None, extra=(), hosts=None, client=None,
                 wait_auth=False):
        """auth: None (any localhost client), "basic", "digest", "ntlm" (squid's
        ntlm_fake_auth) or "negotiate" (negotiate_kerberos_auth with keytab and
        spn); user/password: the account basic and digest accept.
        deny_port: CONNECT to that port is refused (403).
        hosts: {name: address} squid resolves from its own hosts_file.
        client: only this source address may use squid at all.
        extra: more squid.conf lines, placed before the access rules.
        env: squid's environment additions (its helpers inherit them)."""
        self.h = h
        sq = h.require("squid", "squid")
        if auth:
            h.require(os.path.join(SQUID_LIBEXEC, _HELPERS[auth]), "squid")
        self.dir = h.path("squid")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.access = os.path.join(self.dir, "access.log")
        cache = os.path.join(self.dir, "cache.log")
        lines = [
            "http_port 127.0.0.1:%d" % self.port,
            "pid_filename none",
            "access_log stdio:%s" % self.access,
            "cache_log %s" % cache,
            "cache_store_log none",
            "cache deny all",
            "cache_mem 8 MB",
            "coredump_dir %s" % self.dir,
            "pinger_enable off",
            "shutdown_lifetime 0 seconds",
            "logfile_rotate 0",
        ]
        lines += list(extra)
        if hosts is not None:
            hf = os.path.join(self.dir, "hosts")
            with open(hf, "w") as f:
                f.write("".join("%s %s\n" % (a, n) for n, a in hosts.items()))
            lines += ["hosts_file %s" % hf]
        if deny_port:
            lines += ["acl blocked port %d" % deny_port, "http_access deny blocked"]
        if client:
            lines += ["acl localnet src %s" % client, "http_access deny !localnet"]
        if auth == "basic":
            h.require("htpasswd", "apache2-utils")
            pw = os.path.join(self.dir, "htpasswd")
            h.run(["htpasswd", "-b", "-c", pw, user, password], check=0)
            lines += ["auth_param basic program %s/basic_ncsa_auth %s" % (SQUID_LIBEXEC, pw),
                      "auth_param basic realm shir-test"]
        elif auth == "digest":
            pw = os.path.join(self.dir, "digest.pw")
            with open(pw, "w") as f:
                f.write("%s:%s\n" % (user, password))
            lines += ["auth_param digest program %s/digest_file_auth %s" % (SQUID_LIBEXEC, pw),
                      "auth_param digest realm shir-test"]
        elif auth == "ntlm":
            lines += ["auth_param ntlm program %s/ntlm_fake_auth" % SQUID_LIBEXEC,
                      "auth_param ntlm children 2"]
        elif auth == "negotiate":
            # squid passes its environment (KRB5_CONFIG) to the helper
            lines += ["auth_param negotiate program %s/negotiate_kerberos_auth -k %s -s %s"
                      % (SQUID_LIBEXEC, keytab, spn),
                      "auth_param negotiate children 2",
                      "auth_param negotiate keep_alive on"]
        if auth:
            lines += ["acl authed proxy_auth REQUIRED", "http_access allow authed"]
        else:
            lines += ["http_access allow localhost"]
        lines += ["http_access deny all"]
        conf = os.path.join(self.dir, "squid.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        # squid drops to the "proxy" user: it must reach and write its dir
        uid = pwd.getpwnam("proxy").pw_uid
        os.chmod(h.tmp, 0o755)
        for root, dirs, files in os.walk(self.dir):
            os.chown(root, uid, -1)
            for fn in files:
                os.chown(os.path.join(root, fn), uid, -1)
        self.proc = h.start("squid", [sq, "-N", "-f", conf], env=env)
        wait_until(lambda: os.path.exists(cache) and "Accepting HTTP Socket connections"
                   in open(cache, errors="replace").read(), 20, "squid to accept connections")
        if wait_auth:
            wait_until(self._answers_407, 20, "squid to ask for proxy authentication")

    def _answers_407(self):
        # squid answers 500 until its authentication helpers run: wait for a 407
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as c:
                c.sendall(b"CONNECT probe.invalid:443 HTTP/1.1\r\nHost: probe.invalid:443\r\n\r\n")
                return c.recv(64).startswith(b"HTTP/1.1 407")
        except OSError:
            return False

    def log(self):
        """squid's access log so far ("" while it has none)."""
        try:
            with open(self.access, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10):
        """Waits until the access log matches the regex pattern; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()), timeout,
                          "squid's access log to show /%s/:\n%s" % (pattern, self.log()))
