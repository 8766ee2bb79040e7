"""Integration: proxy/ end to end. shirctl proxy explain/show without a
daemon, shird -t / startup / reload with .NET config files, and tunnels
through a real squid (plain, Basic, Digest), a test NTLM proxy, a dead proxy
and a bypassed destination, checked byte for byte through a TLS echo server."""
import json
import os
import re
import signal
import socket
import subprocess
import sys

from shirtest import check, free_port, main, test, TestFailure
from squid import Squid  # noqa: F401  (test_proxy_kerberos uses tp.Squid too)

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proxy_helpers.py")

NODE_CONF = """\
[node]
name = proxy-node
control_socket = {sock}
state_dir = {state}
shutdown_timeout = 5
[log]
level = debug
[proxy]
mode = {mode}
dotnet_config = {dia}
dotnet_config_worker = {wp}
"""

DOTNET = """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.net>
    <defaultProxy useDefaultCredentials="true">
{body}
    </defaultProxy>
  </system.net>
</configuration>
"""

STATIC = """\
      <proxy proxyaddress="http://proxy.corp:{port}" bypassonlocal="true"/>
      <bypasslist>
        <add address="contoso\\.com$"/>
      </bypasslist>"""


def dotnet(h, name, body):
    return h.write(name, DOTNET.format(body=body))


def ctl(h, *args, check_rc=0, env=None):
    return h.run([h.bin("shirctl")] + list(args), check=check_rc, env=env)


def clean_env():
    """The test's own environment without proxy variables."""
    e = {}
    for k in list(os.environ):
        if k.lower().endswith("_proxy"):
            e[k] = ""
    return e


@test
def test_explain_dotnet_file(h):
    """shirctl proxy explain --config: DIRECT/PROXY, reasons, --json shape"""
    cfg = dotnet(h, "diahost.exe.config", STATIC.format(port=8080))
    r = ctl(h, "proxy", "explain", "https://www.contoso.com/x", "--config", cfg, "--json")
    j = json.loads(r.stdout)
    check(set(j) == {"decision", "proxies", "reason"}, "keys: %r", j)
    check(j["decision"] == "DIRECT" and j["proxies"] == [], "%r", j)
    check("bypasslist entry contoso\\.com$" in j["reason"] and "line 7" in j["reason"], j["reason"])
    r = ctl(h, "proxy", "explain", "https://relay.example.net/", "--config", cfg, "--json")
    j = json.loads(r.stdout)
    check(j == {"decision": "PROXY", "proxies": ["http://proxy.corp:8080"],
                "reason": "proxyaddress (%s line 5)" % cfg}, "%r", j)
    r = ctl(h, "proxy", "explain", "https://webserver/", "--config", cfg)
    check("Decision:  DIRECT" in r.stdout and "has no dot" in r.stdout, r.stdout)
    r = ctl(h, "proxy", "explain", "http://127.0.0.1:9/", "--config", cfg)
    check("loopback" in r.stdout, r.stdout)


@test
def test_explain_environment(h):
    """an empty defaultProxy section means the environment (curl's rules)"""
    cfg = dotnet(h, "diahost.exe.config", "")
    env = clean_env()
    env.update({"https_proxy": "http://user:s3cret@envproxy:3128", "no_proxy": ".internal,10.0.0.0/8"})
    r = ctl(h, "proxy", "explain", "wss://relay.example.net/$hc/x", "--config", cfg, "--json", env=env)
    j = json.loads(r.stdout)
    check(j["proxies"] == ["http://envproxy:3128"] and "https_proxy" in j["reason"], "%r", j)
    check("s3cret" not in r.stdout + r.stderr, "the password leaked: %s %s", r.stdout, r.stderr)
    j = json.loads(ctl(h, "proxy", "explain", "https://10.2.3.4/", "--config", cfg, "--json",
                       env=env).stdout)
    check(j["decision"] == "DIRECT" and "10.0.0.0/8" in j["reason"], "%r", j)
    j = json.loads(ctl(h, "proxy", "explain", "https://db.internal/", "--config", cfg, "--json",
                       env=env).stdout)
    check(j["decision"] == "DIRECT" and ".internal" in j["reason"], "%r", j)


@test
def test_explain_errors(h):
    """a glob in the bypass list is refused with file, line and a hint"""
    cfg = dotnet(h, "diahost.exe.config", """      <proxy proxyaddress="http://p:1"/>
      <bypasslist>
        <add address="*.contoso.com"/>
      </bypasslist>""")
    r = ctl(h, "proxy", "explain", "https://a.contoso.com/", "--config", cfg, check_rc=1)
    check("%s:7:" % cfg in r.stderr and "*.contoso.com" in r.stderr and "wildcard" in r.stderr,
          r.stderr)
    mod = dotnet(h, "m.config", '      <module type="Corp.Proxy, Corp"/>')
    r = ctl(h, "proxy", "explain", "https://a/", "--config", mod, check_rc=1)
    check("%s:5:" % mod in r.stderr and "not supported" in r.stderr, r.stderr)


def node_conf(h, mode, dia, wp):
    return h.write("shird.conf", NODE_CONF.format(sock=h.path("shird.sock"), state=h.path("state"),
                                                  mode=mode, dia=dia, wp=wp))


@test
def test_explain_shird_conf_and_files_disagree(h):
    """mode system from shird.conf reads both files; diahost's wins with a warning"""
    dia = dotnet(h, "diahost.exe.config", STATIC.format(port=8080))
    wp = dotnet(h, "diawp.exe.config", STATIC.format(port=9090))
    conf = node_conf(h, "system", dia, wp)
    r = ctl(h, "--conf", conf, "proxy", "explain", "https://x.example.net/", "--json")
    check(json.loads(r.stdout)["proxies"] == ["http://proxy.corp:8080"], r.stdout)
    check("differ" in r.stderr and "proxyaddress=http://proxy.corp:8080 vs "
          "proxyaddress=http://proxy.corp:9090" in r.stderr, r.stderr)
    r = h.run([h.bin("shird"), "-t", "-f", conf], check=0)
    check("configuration OK" in r.stdout and "shird: proxy warning:" in r.stderr and "differ" in
          r.stderr, "shird -t must show the warning: %s %s", r.stdout, r.stderr)
    r = ctl(h, "--conf", conf, "proxy", "show", "--json")
    j = json.loads(r.stdout)
    check(j["mode"] == "system" and j["files"] == [dia, wp] and j["proxy"] == "http://proxy.corp:8080",
          "%r", j)


@test
def test_mode_none_without_files(h):
    """mode none reads no .NET file: shird -t and startup work without them"""
    conf = node_conf(h, "none", h.path("absent", "diahost.exe.config"),
                     h.path("absent", "diawp.exe.config"))
    r = h.run([h.bin("shird"), "-t", "-f", conf], check=0)
    check("configuration OK" in r.stdout, r.stdout)
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening")
    p.wait_log(r"event=proxy.loaded mode=none")
    check("proxy.warning" not in p.log(), p.log())


@test
def test_shird_broken_dotnet_and_reload(h):
    """a broken .NET file fails shird -t and startup, refuses a reload; a good one reloads"""
    dia = dotnet(h, "diahost.exe.config", STATIC.format(port=8080))
    wp = dotnet(h, "diawp.exe.config", STATIC.format(port=8080))
    conf = node_conf(h, "system", dia, wp)
    sock = h.path("shird.sock")
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening")
    st = json.loads(ctl(h, "--socket", sock, "status", "--json", check_rc=None).stdout)
    check(st["proxy"]["mode"] == "system" and st["proxy"]["proxy"] == "http://proxy.corp:8080",
          "%r", st.get("proxy"))
    # break diawp: the reload is refused and the old settings stay
    dotnet(h, "diawp.exe.config", '      <proxy proxyaddress="http://p:1" bypassOnLocal="true"/>')
    r = ctl(h, "--socket", sock, "reload", check_rc=1)
    check("diawp.exe.config:5:" in r.stderr and "bypassOnLocal" in r.stderr, r.stderr)
    p.wait_log(r"event=reload status=failed")
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0 and "diawp.exe.config:5:" in r.stderr, r.stderr)
    # a new proxy in both files: applied by SIGHUP, no restart
    dotnet(h, "diahost.exe.config", STATIC.format(port=3128))
    dotnet(h, "diawp.exe.config", STATIC.format(port=3128))
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=proxy.reloaded mode=system")
    p.wait_log(r"event=reload status=done")
    st = json.loads(ctl(h, "--socket", sock, "status", "--json", check_rc=None).stdout)
    check(st["proxy"]["proxy"] == "http://proxy.corp:3128", "%r", st["proxy"])
    p.signal(signal.SIGTERM)
    check(p.wait_exit() == 0, "exit")
    # startup with a broken file is fatal
    dotnet(h, "diahost.exe.config", '      <module type="X, Y"/>')
    r = h.run([h.bin("shird"), "-f", conf], timeout=20)
    check(r.returncode != 0 and "not supported" in r.stderr + r.stdout, r.stderr + r.stdout)


@test
def test_password_file_mode(h):
    """custom mode refuses a group/world-readable password file, no secret in output"""
    pw = h.write("proxy.pw", "s3cret\n", mode=0o644)
    conf = h.write("shird.conf", "[node]\ncontrol_socket = %s\nstate_dir = %s\n"
                   "[proxy]\nmode = custom\naddress = proxy.corp\nport = 3128\n"
                   "user = CORP\\svc\npassword_file = %s\n" % (h.path("s.sock"), h.path("st"), pw))
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0 and "chmod 600" in r.stderr and "s3cret" not in r.stderr, r.stderr)
    os.chmod(pw, 0o600)
    h.run([h.bin("shird"), "-t", "-f", conf], check=0)
    r = ctl(h, "--conf", conf, "proxy", "show")
    check("CORP\\svc" in r.stdout and "s3cret" not in r.stdout, r.stdout)


# --- tunnels through a real squid -------------------------------------------

def tls_material(h):
    h.require("openssl", "openssl")
    cert, key = h.path("cert.pem"), h.path("key.pem")
    h.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
           "-days", "2", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,DNS:echo.test,IP:127.0.0.1"], check=0)
    return cert, key


def start_helper(h, name, *args):
    p = h.start(name, [sys.executable, HELPERS] + list(args))
    m = p.wait_log(r"listening (\d+)")
    return int(m.group(1))


def echo_server(h):
    cert, key = tls_material(h)
    return start_helper(h, "echo", "echo", cert, key), cert


def dial(h, conf_text, port, cert, url=None, host="127.0.0.1", nbytes=100000, timeout=10,
         extra=(), env=None):
    conf = h.write("dial.conf", conf_text)
    url = url or "https://echo.test:%d/" % port
    r = h.run([h.bin("proxy_dial_client"), "--conf", conf, "--url", url, "--host", host,
               "--port", str(port), "--ca", cert, "--sni", "localhost", "--bytes", str(nbytes),
               "--timeout", str(timeout)] + list(extra), timeout=60, env=env)
    return r.returncode, r.stdout.strip(), r.stderr


def custom(port, auth="any", user=None, pwfile=None, address="127.0.0.1", extra=""):
    t = "[proxy]\nmode = custom\naddress = %s\nport = %d\nauth = %s\n" % (address, port, auth)
    if user:
        t += "user = %s\n" % user
    if pwfile:
        t += "password_file = %s\n" % pwfile
    return t + extra


@test
def test_tunnel_plain_and_403(h):
    """a plain CONNECT tunnel through squid carries the bytes; 403 is reported as such"""
    eport, cert = echo_server(h)
    blocked = free_port()
    sq = Squid(h, deny_port=blocked)
    rc, out, err = dial(h, custom(sq.port), eport, cert, nbytes=300000)
    check(rc == 0 and out.startswith("OK n=1 bytes=300000"), "dial: %s %s", out, err)
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d " % eport)
    rc, out, err = dial(h, custom(sq.port), blocked, cert)
    check(rc == 1 and "answered 403 Forbidden to CONNECT 127.0.0.1:%d" % blocked in out, out)


@test
def test_tunnel_basic(h):
    """Basic (basic_ncsa_auth): the right password tunnels, a wrong one gives 407 naming Basic"""
    eport, cert = echo_server(h)
    sq = Squid(h, auth="basic")
    good = h.write("good.pw", "right-pw\n", mode=0o600)
    bad = h.write("bad.pw", "wrong-pw\n", mode=0o600)
    for auth in ("any", "basic"):
        rc, out, err = dial(h, custom(sq.port, auth=auth, user="svc", pwfile=good), eport, cert)
        check(rc == 0 and out.startswith("OK"), "auth=%s: %s %s", auth, out, err)
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d svc " % eport)
    rc, out, err = dial(h, custom(sq.port, user="svc", pwfile=bad), eport, cert)
    check(rc == 1 and "407 Proxy Authentication Required" in out and "the user 'svc' was refused"
          in out and "the proxy offers: Basic" in out, out)
    check("wrong-pw" not in out + err, "the password leaked: %s", out)
    rc, out, err = dial(h, custom(sq.port), eport, cert)
    check(rc == 1 and "no proxy user is configured" in out, out)


@test
def test_tunnel_digest(h):
    """Digest (digest_file_auth): negotiated and explicit; a wrong password gives 407 naming Digest"""
    eport, cert = echo_server(h)
    sq = Squid(h, auth="digest")
    good = h.write("good.pw", "right-pw", mode=0o600)
    bad = h.write("bad.pw", "nope", mode=0o600)
    for auth in ("any", "digest"):
        rc, out, err = dial(h, custom(sq.port, auth=auth, user="svc", pwfile=good), eport, cert)
        check(rc == 0 and out.startswith("OK"), "auth=%s: %s %s", auth, out, err)
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d svc " % eport)
    rc, out, err = dial(h, custom(sq.port, auth="digest", user="svc", pwfile=bad), eport, cert)
    check(rc == 1 and "407" in out and "the proxy offers: Digest" in out, out)


@test
def test_tunnel_ntlm(h):
    """NTLM: libcurl's NTLM exchange (type 1/2/3) against squid's ntlm_fake_auth"""
    eport, cert = echo_server(h)
    sq = Squid(h, auth="ntlm")
    pw = h.write("pw", "secret", mode=0o600)
    rc, out, err = dial(h, custom(sq.port, auth="ntlm", user="CORP\\svc", pwfile=pw), eport, cert)
    check(rc == 0 and out.startswith("OK"), "ntlm: %s %s", out, err)
    # ntlm_fake_auth logs the user with its own decoration, e.g. "CORPs\\svcw"
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d \S*svc\S* " % eport)
    rc, out, err = dial(h, custom(sq.port, auth="any", user="CORP\\svc", pwfile=pw), eport, cert)
    check(rc == 0 and out.startswith("OK"), "ntlm negotiated by any: %s %s", out, err)
    rc, out, err = dial(h, custom(sq.port, auth="basic", user="svc", pwfile=pw), eport, cert)
    check(rc == 1 and "407" in out and "the proxy offers: NTLM" in out, out)


@test
def test_negotiate_and_ntlm_choice(h):
    """useDefaultCredentials means Negotiate; without a Kerberos ticket the 407 says what to do;
    an explicit proxy.auth = ntlm makes libcurl start NTLM"""
    p = h.start("demand", [sys.executable, HELPERS, "demand", "Negotiate", "NTLM"])
    port = int(p.wait_log(r"listening (\d+)").group(1))
    cfg = dotnet(h, "diahost.exe.config", '      <proxy proxyaddress="http://127.0.0.1:%d"/>' % port)
    conf = NODE_CONF.format(sock=h.path("s"), state=h.path("st"), mode="system", dia=cfg, wp="")
    env = {"KRB5CCNAME": "FILE:" + h.path("no-ccache")}
    r = h.run([h.bin("proxy_dial_client"), "--conf", h.write("c1.conf", conf), "--url",
               "https://relay.example.net/", "--host", "relay.example.net", "--port", "443",
               "--timeout", "5"], env=env)
    out = r.stdout
    check(r.returncode == 1 and "407" in out and "the proxy offers: Negotiate, NTLM" in out and
          "Kerberos" in out and "useDefaultCredentials" in out, out + r.stderr)
    p.wait_log(r"request CONNECT auth=")
    pw = h.write("pw", "secret", mode=0o600)
    r = h.run([h.bin("proxy_dial_client"), "--conf", h.write("c2.conf", conf +
               "user = CORP\\svc\npassword_file = %s\nauth = ntlm\n" % pw), "--url",
               "https://relay.example.net/", "--host", "relay.example.net", "--port", "443",
               "--timeout", "5"], env=env)
    check(r.returncode == 1 and "the user 'CORP\\svc' was refused" in r.stdout, r.stdout)
    p.wait_log(r"request CONNECT auth=NTLM")


@test
def test_https_proxy(h):
    """an https:// proxy (TLS to the proxy, then CONNECT inside it), verified with proxy.ca_file"""
    eport, cert = echo_server(h)
    sq = Squid(h)
    key = h.path("key.pem")
    fport = start_helper(h, "tlsfront", "tlsfront", cert, key, str(sq.port))
    conf = custom(fport, address="https://localhost", extra="ca_file = %s\n" % cert)
    rc, out, err = dial(h, conf, eport, cert, nbytes=2000000)
    check(rc == 0 and out.startswith("OK n=1 bytes=2000000"), "https proxy: %s %s", out, err)
    sq.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d " % eport)
    rc, out, err = dial(h, custom(fport, address="https://localhost"), eport, cert)
    check(rc == 1 and "TLS to the proxy https://localhost:%d failed" % fport in out, out)


@test
def test_dead_and_silent_proxies(h):
    """a closed port is refused at once; a proxy that never answers times out at the deadline"""
    eport, cert = echo_server(h)
    dead = free_port()
    rc, out, err = dial(h, custom(dead), eport, cert, timeout=5)
    check(rc == 1 and "refused the connection" in out and "code=connection refused" in out, out)
    ms = float(re.search(r"ms=(\d+)", out).group(1))
    check(ms < 5000, "refused must come before the deadline: %s", out)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    h.on_cleanup(silent.close)
    rc, out, err = dial(h, custom(silent.getsockname()[1]), eport, cert, timeout=2)
    ms = float(re.search(r"ms=(\d+)", out).group(1))
    check(rc == 1 and "timed out after 2 s" in out, out)
    check(1900 <= ms < 4000, "the deadline was 2 s: %s", out)


@test
def test_socks5_from_environment(h):
    """all_proxy=socks5h://... from the environment (empty defaultProxy): libcurl's SOCKS5
    handshake, then the caller's TLS over the taken-over socket"""
    eport, cert = echo_server(h)
    p = h.start("socks", [sys.executable, HELPERS, "socks5"])
    sport = int(p.wait_log(r"listening (\d+)").group(1))
    cfg = dotnet(h, "diahost.exe.config", "")
    conf = h.write("c.conf", NODE_CONF.format(sock=h.path("s"), state=h.path("st"), mode="system",
                                              dia=cfg, wp=""))
    env = clean_env()
    env["all_proxy"] = "socks5h://127.0.0.1:%d" % sport
    r = h.run([h.bin("proxy_dial_client"), "--conf", conf, "--url", "https://echo.test:%d/" % eport,
               "--host", "localhost", "--port", str(eport), "--ca", cert, "--bytes", "50000"],
              env=env)
    check(r.returncode == 0 and r.stdout.startswith("OK"), "%s %s", r.stdout, r.stderr)
    p.wait_log(r"socks5 connect localhost:%d" % eport)


@test
def test_dns_failure(h):
    """an unknown proxy host or destination is a DNS failure (in a private network namespace,
    so no query leaves the machine)"""
    unshare = h.require("unshare", "util-linux")
    h.require("ip", "iproute2")
    conf = h.write("dns.conf", custom(3128, address="proxy.nonexistent.invalid"))
    none = h.write("none.conf", "[proxy]\nmode = none\n")
    client = h.bin("proxy_dial_client")
    for cf, host, want in ((conf, "relay.example.net",
                            "cannot resolve the proxy http://proxy.nonexistent.invalid:3128 (DNS failure)"),
                           (none, "relay.nonexistent.invalid",
                            "cannot resolve relay.nonexistent.invalid (DNS failure)")):
        r = h.run([unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", client,
                   "--conf", cf, "--url", "https://%s/" % host, "--host", host, "--port", "443",
                   "--timeout", "5"])
        check(r.returncode == 1 and "code=name resolution failed" in r.stdout and want in r.stdout,
              "%s %s", r.stdout, r.stderr)


@test
def test_bypass_goes_direct(h):
    """a destination the bypass list names goes direct: squid's access log shows nothing"""
    eport, cert = echo_server(h)
    sq = Squid(h)
    cfg = dotnet(h, "diahost.exe.config", """      <proxy proxyaddress="http://127.0.0.1:%d"/>
      <bypasslist>
        <add address="^https://echo\\.test(:\\d+)?$"/>
      </bypasslist>""" % sq.port)
    conf = NODE_CONF.format(sock=h.path("s"), state=h.path("st"), mode="system", dia=cfg, wp="")
    rc, out, err = dial(h, conf, eport, cert)
    check(rc == 0 and out.startswith("OK"), "bypassed: %s %s", out, err)
    r = ctl(h, "proxy", "explain", "https://echo.test:%d/" % eport, "--config", cfg, "--json")
    check(json.loads(r.stdout)["decision"] == "DIRECT", r.stdout)
    # the same destination under another name is proxied, and logged
    rc, out, err = dial(h, conf, eport, cert, url="https://echo.other:%d/" % eport)
    check(rc == 0 and out.startswith("OK"), "proxied: %s %s", out, err)
    sq.wait_log(r"CONNECT 127\.0\.0\.1:%d " % eport)
    check(sq.log().count("CONNECT") == 1, "only the proxied dial may reach squid:\n%s", sq.log())


if __name__ == "__main__":
    main()
