"""Integration: PAC files (proxy.pac_url in custom mode, scriptLocation and
autoDetect in system mode) with real processes: the PAC file served by an HTTP
server of the test on loopback, shirctl proxy explain, proxy_dial_client
through real squids, shird's relay channel and HttpServer connector through a
PAC-chosen squid, and hostile scripts (loop, allocation, throw, garbage,
wrong charset, 11 MB, slow server) that each end in DIRECT with a precise
message while the process goes on."""
import calendar
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import shirtest
from shirtest import check, free_port, main, test, wait_until, TestFailure

# helpers of other test files, without registering their tests here
_saved = list(shirtest._tests)
import test_proxy as tp          # noqa: E402
import test_listener as tl       # noqa: E402
import test_authoring as ta      # noqa: E402
shirtest._tests[:] = _saved

from squid import Squid          # noqa: E402

# Wednesday 2 December 2026, 14:30:00 UTC; and Sunday 6 December 2026, 03:00 UTC
WEDNESDAY = calendar.timegm((2026, 12, 2, 14, 30, 0))
SUNDAY = calendar.timegm((2026, 12, 6, 3, 0, 0))


class PacServer:
    """An HTTP server on loopback serving PAC files: routes[path] =
    (status, content_type or None, body bytes, seconds to trickle it over)."""

    def __init__(self, h):
        self.routes = {}
        self.hits = []
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.hits.append(self.path)
                status, ctype, body, slow = srv.routes.get(self.path, (404, "text/plain", b"no\n", 0))
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if slow:
                        step = max(1, len(body) // 20)
                        for i in range(0, len(body), step):
                            self.wfile.write(body[i:i + step])
                            self.wfile.flush()
                            time.sleep(slow / 20.0)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        t.start()

        def stop():
            self.httpd.shutdown()
            self.httpd.server_close()
        h.on_cleanup(stop)

    def add(self, path, body, status=200, ctype="application/x-ns-proxy-autoconfig", slow=0):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.routes[path] = (status, ctype, body, slow)
        return "http://127.0.0.1:%d%s" % (self.port, path)


def pac_conf(h, url, extra="", name="pac.conf"):
    return h.write(name, "[proxy]\nmode = custom\npac_url = %s\n%s" % (url, extra))


def explain(h, conf, url, env=None, check_rc=0):
    e = dict(tp.clean_env())
    e.update(env or {})
    r = h.run([h.bin("shirctl"), "--conf", conf, "proxy", "explain", url, "--json"],
              check=check_rc, env=e)
    return json.loads(r.stdout), r


TABLE_PAC = r"""
// the decision table of test_decision_table; isInNet(Ex) only for address
// literals, so that no name is sent to a DNS server outside the test
function lit(h) { return /^[0-9.]+$/.test(h) || h.indexOf(":") >= 0; }
function FindProxyForURL(url, host) {
  if (url.indexOf("secret") >= 0 || url.indexOf("?") >= 0)
    return "PROXY leaked.test:1";
  if (url === "https://strip.test/") return "PROXY stripped.test:3128";
  if (url === "https://port.test:8443/") return "PROXY port.test:8443";
  if (url === "http://plain.test/") return "PROXY plain-http.test:80";
  if (lit(host) && isInNetEx(host, "10.0.0.0/8")) return "PROXY ten.test:1010";
  if (lit(host) && isInNet(host, "192.168.0.0", "255.255.0.0")) return "PROXY mask.test:1921";
  if (lit(host) && isInNetEx(host, "2001:db8::/32")) return "PROXY six.test:6";
  if (isPlainHostName(host)) return "DIRECT";
  if (shExpMatch(host, "*.corp.test")) return "PROXY a.test:8080; PROXY b.test:3128; DIRECT";
  if (shExpMatch(url, "https://files?.test/*")) return "HTTPS tls.test:443";
  if (dnsDomainIs(host, ".example.org")) return "SOCKS5 socks.test:1080";
  if (localHostOrDomainIs(host, "www.local.test")) return "PROXY lhd.test:1";
  if (host === "levels.a.b.test") return "PROXY levels" + dnsDomainLevels(host) + ".test:1";
  if (host === "dns.test")
    return dnsResolve("localhost") === "127.0.0.1" && isResolvable("localhost") ?
      "PROXY resolved.test:1" : "PROXY unresolved.test:1";
  if (host === "sort.test") return "PROXY s" + sortIpAddressList("10.0.0.2;10.0.0.1").replace(/[.;]/g, "-") + ".test:1";
  if (host === "time.test") {
    return "PROXY " + [weekdayRange("MON", "FRI", "GMT") ? "wk" : "we",
      timeRange(14, 15, "GMT") ? "h14" : "hx",
      timeRange(14, 0, 14, 31, "GMT") ? "m" : "mx",
      dateRange("DEC", "GMT") ? "dec" : "nodec",
      dateRange(1, "DEC", 2026, 3, "DEC", 2026, "GMT") ? "in" : "out",
      weekdayRange("SAT", "SUN", "GMT") ? "sat" : "nosat"].join("-") + ".test:1";
  }
  return "PROXY default.test:3128";
}
"""


@test
def test_decision_table(h):
    """a PAC file over HTTP decides a table of URLs: https stripping, isInNet(Ex) CIDR and mask,
    shExpMatch, dnsDomainIs, DNS through shird, day/time with a fixed clock, result types"""
    srv = PacServer(h)
    conf = pac_conf(h, srv.add("/proxy.pac", TABLE_PAC))
    env = {"SHIR_PAC_TEST_NOW": str(WEDNESDAY), "TZ": "UTC"}
    table = [
        ("https://strip.test/secret/path?q=1", ["http://stripped.test:3128"]),
        ("https://port.test:8443/a/b?c", ["http://port.test:8443"]),
        ("http://plain.test/x?y=1", ["http://plain-http.test:80"]),
        ("wss://strip.test/$hc/x?sb-hc-action=listen", ["http://stripped.test:3128"]),
        ("https://intranet/", "DIRECT"),
        ("https://10.9.8.7/", ["http://ten.test:1010"]),
        ("https://11.9.8.7/", ["http://default.test:3128"]),
        ("https://192.168.5.5:8443/", ["http://mask.test:1921"]),
        ("https://[2001:db8::5]/", ["http://six.test:6"]),
        ("https://x.corp.test/", ["http://a.test:8080", "http://b.test:3128", "DIRECT"]),
        ("https://files1.test/", ["https://tls.test:443"]),
        ("https://www.example.org/", ["socks5h://socks.test:1080"]),
        ("https://example.org/", ["http://default.test:3128"]),
        ("https://levels.a.b.test/", ["http://levels3.test:1"]),
        ("https://dns.test/", ["http://resolved.test:1"]),
        ("https://sort.test/", ["http://s10-0-0-1-10-0-0-2.test:1"]),
        ("https://time.test/", ["http://wk-h14-m-dec-in-nosat.test:1"]),
    ]
    for url, want in table:
        j, r = explain(h, conf, url, env=env)
        got = "DIRECT" if j["decision"] == "DIRECT" else j["proxies"]
        check(got == want, "%s: got %r, want %r (%s)", url, got, want, j["reason"])
        check(j["pac"]["error"] == "", "%s: %r", url, j["pac"])
        check("secret" not in j["pac"]["url"] and "?" not in j["pac"]["url"], j["pac"]["url"])
    # the clock: a Sunday night
    j, _ = explain(h, conf, "https://time.test/", env={"SHIR_PAC_TEST_NOW": str(SUNDAY), "TZ": "UTC"})
    check(j["proxies"] == ["http://we-hx-mx-dec-out-sat.test:1"], "%r", j)
    # loopback never asks the script
    j, _ = explain(h, conf, "https://127.0.0.1:5/")
    check(j["decision"] == "DIRECT" and "loopback" in j["reason"] and "pac" not in j, "%r", j)
    # the text output names the source, the hash, the call and the answer
    r = h.run([h.bin("shirctl"), "--conf", conf, "proxy", "explain", "https://x.corp.test/p?q"],
              check=0, env=tp.clean_env())
    out = r.stdout
    check(re.search(r"PAC:       http://127\.0\.0\.1:\d+/proxy\.pac \(sha256 [0-9a-f]{64}, "
                    r"fetched \d+ s ago\)", out), out)
    check('Called:    FindProxyForURL("https://x.corp.test/", "x.corp.test")' in out, out)
    check('Returned:  "PROXY a.test:8080; PROXY b.test:3128; DIRECT"' in out, out)
    check("Decision:  PROXY http://a.test:8080, then http://b.test:3128, then DIRECT" in out, out)


@test
def test_find_proxy_for_url_ex_preferred(h):
    """a script that defines FindProxyForURLEx (Microsoft's IPv6-aware entry point) is called
    through it, as WinHTTP does; FindProxyForURL is the fallback only"""
    srv = PacServer(h)
    both = srv.add("/both.pac", 'function FindProxyForURL(u, h) { return "PROXY old.test:1"; }\n'
                   'function FindProxyForURLEx(u, h) { return "PROXY ex.test:2; DIRECT"; }\n')
    j, r = explain(h, pac_conf(h, both), "https://x.corp.test/")
    check(j["proxies"] == ["http://ex.test:2", "DIRECT"] and
          j["pac"]["function"] == "FindProxyForURLEx", "%r", j)
    r = h.run([h.bin("shirctl"), "--conf", pac_conf(h, both), "proxy", "explain",
               "https://x.corp.test/"], check=0, env=tp.clean_env())
    check('FindProxyForURLEx("https://x.corp.test/", "x.corp.test")' in r.stdout, r.stdout)
    old = srv.add("/old.pac", 'function FindProxyForURL(u, h) { return "PROXY old.test:1"; }\n')
    j, r = explain(h, pac_conf(h, old, name="old.conf"), "https://x.corp.test/")
    check(j["proxies"] == ["http://old.test:1"] and j["pac"]["function"] == "FindProxyForURL",
          "%r", j)

@test
def test_sample_pac(h):
    """conf/sample.pac, the documented example, decides as its comments say"""
    sample = os.path.join(os.environ["SHIR_SRCDIR"], "conf", "sample.pac")
    conf = pac_conf(h, "file://" + sample)
    wed = {"SHIR_PAC_TEST_NOW": str(WEDNESDAY), "TZ": "UTC"}
    sun = {"SHIR_PAC_TEST_NOW": str(SUNDAY), "TZ": "UTC"}
    for url, env, want in [
            ("https://intranet/", wed, "DIRECT"),
            ("https://db1.corp.contoso.com:1433/", wed, "DIRECT"),
            ("https://10.20.30.40/", wed, "DIRECT"),
            ("wss://myrelay.servicebus.windows.net/$hc/x", wed,
             ["http://proxy1.corp.contoso.com:8080", "http://proxy2.corp.contoso.com:8080"]),
            ("https://www.example.com/", wed, ["http://filter.corp.contoso.com:3128", "DIRECT"]),
            ("https://www.example.com/", sun, ["http://proxy1.corp.contoso.com:8080", "DIRECT"])]:
        j, _ = explain(h, conf, url, env=env)
        got = "DIRECT" if j["decision"] == "DIRECT" else j["proxies"]
        check(got == want, "%s: got %r, want %r (%s)", url, got, want, j["reason"])


@test
def test_fetch_never_through_a_proxy_and_errors(h):
    """the PAC file is fetched directly even with proxy variables set; 404, a refused port and a
    missing file give DIRECT with the exact reason"""
    srv = PacServer(h)
    url = srv.add("/p.pac", 'function FindProxyForURL(u, h) { return "PROXY via.test:1"; }')
    dead = free_port()
    env = {"http_proxy": "http://127.0.0.1:%d" % dead, "https_proxy": "http://127.0.0.1:%d" % dead,
           "all_proxy": "http://127.0.0.1:%d" % dead}
    r = h.run([h.bin("shirctl"), "--conf", pac_conf(h, url), "proxy", "explain",
               "https://a.test/", "--json"], check=0, env=env)
    j = json.loads(r.stdout)
    check(j["proxies"] == ["http://via.test:1"], "%r", j)
    check(srv.hits == ["/p.pac"], "%r", srv.hits)
    missing = "http://127.0.0.1:%d/missing.pac" % srv.port
    j, _ = explain(h, pac_conf(h, missing, name="m.conf"), "https://a.test/")
    check(j["decision"] == "DIRECT", "%r", j)
    check(re.fullmatch(r"PAC %s: HTTP 404; using DIRECT as \.NET does \(next download in 30 s\)"
                       % re.escape(missing), j["reason"]), j["reason"])
    refused = "http://127.0.0.1:%d/p.pac" % dead
    j, _ = explain(h, pac_conf(h, refused, name="r.conf"), "https://a.test/")
    check(j["reason"].startswith("PAC %s: cannot connect" % refused) and
          j["reason"].endswith("; using DIRECT as .NET does (next download in 30 s)"), j["reason"])
    j, _ = explain(h, pac_conf(h, "file://" + h.path("nope.pac"), name="f.conf"), "https://a.test/")
    check(j["decision"] == "DIRECT" and "nope.pac" in j["reason"], j["reason"])
    # a file: URL works
    pf = h.write("local.pac", 'function FindProxyForURL(u, h) { return "PROXY file.test:2"; }')
    j, _ = explain(h, pac_conf(h, "file://" + pf, name="ok.conf"), "https://a.test/")
    check(j["proxies"] == ["http://file.test:2"], "%r", j)


@test
def test_proxy_set_pac(h):
    """shirctl proxy set pac URL writes custom mode with proxy.pac_url (address removed), shird -t
    accepts it, explain uses it; a URL of another scheme is refused; custom --address removes it"""
    srv = PacServer(h)
    url = srv.add("/set.pac", 'function FindProxyForURL(u, h) { return "PROXY set.test:1"; }')
    conf = h.write("shird.conf", "[node]\nname = n\nstate_dir = %s\ncontrol_socket = %s\n"
                   "[proxy]\nmode = custom\naddress = old.test\nport = 3128\n" % (
                       h.path("state"), h.path("s.sock")))
    shirctl = h.bin("shirctl")
    r = h.run([shirctl, "--conf", conf, "proxy", "set", "pac", url], check=0)
    check("pac_url = " + url in r.stdout and "address removed" in r.stdout, r.stdout)
    text = open(conf).read()
    check("pac_url = %s" % url in text and "old.test" not in text, text)
    h.run([h.bin("shird"), "-t", "-f", conf], check=0)
    j, _ = explain(h, conf, "https://x.test/")
    check(j["proxies"] == ["http://set.test:1"], "%r", j)
    r = h.run([shirctl, "--conf", conf, "proxy", "set", "pac", "ftp://x/p.pac"], check=2)
    check("starts with http://, https:// or file://" in r.stderr, r.stderr)
    h.run([shirctl, "--conf", conf, "proxy", "set", "custom", "--address", "new.test", "--port",
           "8080"], check=0)
    text = open(conf).read()
    check("pac_url" not in text and "new.test" in text, text)
    # pac_url alone is a complete custom configuration; neither is an error that names both
    bad = h.write("bad.conf", "[proxy]\nmode = custom\n")
    r = h.run([h.bin("shird"), "-t", "-f", bad])
    check(r.returncode != 0 and "neither proxy.address nor proxy.pac_url is set" in r.stderr,
          r.stderr)


@test
def test_system_mode_script_location(h):
    """mode system: scriptLocation in diahost.exe.config is fetched and run; with proxyaddress
    beside it the static proxy wins (as .NET 4.8)"""
    srv = PacServer(h)
    url = srv.add("/corp.pac", 'function FindProxyForURL(u, h) { return "PROXY dotnet.test:8080"; }')
    cfg = tp.dotnet(h, "diahost.exe.config", '      <proxy scriptLocation="%s"/>' % url)
    r = h.run([h.bin("shirctl"), "proxy", "explain", "https://relay.test/", "--config", cfg,
               "--json"], check=0, env=tp.clean_env())
    j = json.loads(r.stdout)
    check(j["proxies"] == ["http://dotnet.test:8080"], "%r %s", j, r.stderr)
    check("not evaluated" not in r.stderr, r.stderr)
    cfg2 = tp.dotnet(h, "both.exe.config",
                     '      <proxy scriptLocation="%s" proxyaddress="http://static.test:1"/>' % url)
    r = h.run([h.bin("shirctl"), "proxy", "explain", "https://relay.test/", "--config", cfg2,
               "--json"], check=0, env=tp.clean_env())
    j = json.loads(r.stdout)
    check(j["proxies"] == ["http://static.test:1"], "%r", j)
    check("drops the script engine" in r.stderr, r.stderr)
    check(srv.hits == ["/corp.pac"], "the static case must not fetch: %r", srv.hits)


def squid_pac(h, srv, body, name="/chain.pac", extra=""):
    return pac_conf(h, srv.add(name, body), extra=extra)


@test
def test_failover_two_squids(h):
    """PROXY a; PROXY b with squid a down: the tunnel goes through squid b, a is marked bad and
    the next dial tries b first"""
    eport, cert = tp.echo_server(h)
    sq1, sq2 = Squid(h), None
    # a second squid in its own directory
    h2 = shirtest.Harness("pac-squid2")
    h.on_cleanup(lambda: h2.close())
    sq2 = Squid(h2)
    srv = PacServer(h)
    conf = squid_pac(h, srv, 'function FindProxyForURL(u, h) { return "PROXY 127.0.0.1:%d; '
                     'PROXY 127.0.0.1:%d"; }' % (sq1.port, sq2.port))
    # both up: the first carries it
    rc, out, err = tp.dial(h, open(conf).read(), eport, cert)
    check(rc == 0, "%s %s", out, err)
    sq1.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d " % eport)
    # squid a goes down
    sq1.proc.stop()
    rc, out, err = tp.dial(h, open(conf).read(), eport, cert, extra=["--count", "2", "--verbose"])
    check(rc == 0 and out.startswith("OK n=2"), "%s %s", out, err)
    sq2.wait_log(r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d " % eport)
    attempts = re.findall(r"event=dial.attempt .* via=(\S+)", err)
    a, b = "http://127.0.0.1:%d" % sq1.port, "http://127.0.0.1:%d" % sq2.port
    check(attempts == [a, b, b], "attempts: %r\n%s", attempts, err)
    check(re.search(r"event=pac.proxy.bad proxy=%s" % re.escape(a), err), err)
    check(re.search(r"event=dial.failover .*refused", err), err)


@test
def test_relay_channel_through_pac_squid(h):
    """shird's relay channel (and a rendezvous) reach an https relay through the squid a PAC file
    chooses, with Basic auth from shird.conf"""
    sq = tl.start_squid(h)
    ca_key, ca = shirtest.make_ca(h, "right", "Test Relay CA")
    key, crt = shirtest.make_server_cert(h, ca_key, ca, san="DNS:relay.test")
    relay = tl.Relay(h, tls=(crt, key), public_url="wss://relay.test:{tls_port}")
    relay.create(endpoint="wss://relay.test:%d" % relay.tls_port)
    relay.start()
    srv = PacServer(h)
    pac = srv.add("/relay.pac", 'function FindProxyForURL(url, host) {\n'
                  '  if (host == "relay.test") return "PROXY 127.0.0.1:%d";\n'
                  '  return "DIRECT"; }' % sq.port)
    pw = h.write("proxy.pw", "right-pw\n", mode=0o600)
    tail = "[proxy]\nmode = custom\npac_url = %s\nauth = basic\nuser = svc\npassword_file = %s\n" % (
        pac, pw)
    ep = "wss://relay.test:%d" % relay.tls_port
    p, conf, sock = tl.node_with_relay(h, relay, endpoint=ep,
                                       extra="ca_file = %s\ntest_routes = true" % ca, tail=tail)
    code, body, err = tl.curl(h, relay, "/v1/node/ip")
    check(code == 200 and json.loads(body)["status"] == "Succeeded", "%s %s" % (code, err))
    code, body, err = tl.curl(h, relay, "/v1/test/blob?bytes=150000")
    check(code == 200 and len(body) == 150000, "rendezvous: %s %d" % (code, len(body)))
    nl = p.log()
    check(re.search(r"event=pac.fetched url=%s" % re.escape(pac), nl), "no PAC fetch in the log")
    check(re.search(r"event=dial.pac dest=relay.test .*decision=PROXY reason=.*PAC %s"
                    % re.escape(pac), nl), "the channel did not ask the PAC file")
    wait_until(lambda: re.search(r"TCP_TUNNEL/200 \d+ CONNECT relay.test:%d svc " %
                                 relay.tls_port, sq.log()), 20, "squid to log the tunnel")
    check(srv.hits.count("/relay.pac") == 1, "fetched once: %r" % srv.hits)
    tl.stop_clean(p)


@test
def test_http_connector_through_pac_squid(h):
    """the HttpServer connector goes through the squid a PAC file chooses"""
    base = ta.http_server(h).replace("127.0.0.1", ta.STORE_HOST)
    port, access = ta.start_squid(h, "proxyuser", "pr0xy-pw")
    pwf = h.write("proxy.pw", "pr0xy-pw\n", mode=0o600)
    srv = PacServer(h)
    pac = srv.add("/store.pac", 'function FindProxyForURL(url, host) {\n'
                  '  if (dnsDomainIs(host, ".shir.test")) return "PROXY 127.0.0.1:%d";\n'
                  '  return "DIRECT"; }' % port)
    n = ta.Node(h, lma=True, extra="[proxy]\nmode = custom\npac_url = %s\n"
                "user = proxyuser\npassword_file = %s\n" % (pac, pwf))
    ls = {"type": "HttpServer", "properties": {"url": base + "/api/"}}
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Json", "relativeUrl": "orders"},
                             "limit": 1})
    check(r["rows"] == [[1, 1.5, "2026-11-01T00:00:00Z"]], "%r", r)
    wait_until(lambda: os.path.exists(access) and "/api/orders" in open(access).read(), 10,
               "squid to log the request")
    check("proxyuser" in open(access).read(), "the proxy saw the user")
    n.stop_clean()


@test
def test_http_connector_fails_over_along_the_pac_list(h):
    """PAC answers "PROXY dead; PROXY squid": the HttpServer connector's request goes on to the
    second proxy when the first cannot be reached, as the node's own dialer does"""
    base = ta.http_server(h).replace("127.0.0.1", ta.STORE_HOST)
    port, access = ta.start_squid(h, "proxyuser", "pr0xy-pw")
    dead = free_port()
    pwf = h.write("proxy.pw", "pr0xy-pw\n", mode=0o600)
    srv = PacServer(h)
    pac = srv.add("/store.pac", 'function FindProxyForURL(url, host) {\n'
                  '  if (dnsDomainIs(host, ".shir.test"))\n'
                  '    return "PROXY 127.0.0.1:%d; PROXY 127.0.0.1:%d";\n'
                  '  return "DIRECT"; }' % (dead, port))
    n = ta.Node(h, lma=True, extra="[proxy]\nmode = custom\npac_url = %s\n"
                "user = proxyuser\npassword_file = %s\n" % (pac, pwf))
    ls = {"type": "HttpServer", "properties": {"url": base + "/api/"}}
    r = n.author("preview", {"linkedService": ls, "dataset": {"type": "Json", "relativeUrl": "orders"},
                             "limit": 1})
    check(r.get("rows") == [[1, 1.5, "2026-11-01T00:00:00Z"]], "%r", r)
    wait_until(lambda: os.path.exists(access) and "/api/orders" in open(access).read(), 10,
               "squid to log the request")
    n.p.wait_log(r"event=http.proxy.failover .*failed=\"?http://127\.0\.0\.1:%d\"? "
                    r"next=\"?http://127\.0\.0\.1:%d" % (dead, port))
    n.stop_clean()

# --- hostile scripts ----------------------------------------------------------

def hostile(h, body, ctype="application/x-ns-proxy-autoconfig", slow=0, extra_conf="",
            count=2, timeout=60):
    """dials an echo server twice through a PAC file whose script is hostile for
    bad.test only: the first dial (bad.test) falls back to DIRECT, the second
    (good.test) is decided by a new helper. Returns (elapsed, stderr)."""
    eport, cert = tp.echo_server(h)
    srv = PacServer(h)
    if isinstance(body, str):
        body = body.encode("utf-8")
    url = srv.add("/h.pac", body, ctype=ctype, slow=slow)
    conf = pac_conf(h, url, extra=extra_conf)
    t0 = time.monotonic()
    r = h.run([h.bin("proxy_dial_client"), "--conf", conf, "--url", "https://bad.test:%d/" % eport,
               "--url2", "https://good.test:%d/" % eport, "--host", "127.0.0.1", "--port",
               str(eport), "--ca", cert, "--sni", "localhost", "--count", str(count),
               "--verbose", "--timeout", "10"], timeout=timeout, env=tp.clean_env())
    took = time.monotonic() - t0
    check(r.returncode == 0 and r.stdout.startswith("OK n=%d" % count),
          "the dials must still work (DIRECT): %s\n%s", r.stdout, r.stderr[-3000:])
    return took, r.stderr


def only_bad(js):
    return ('function FindProxyForURL(url, host) {\n  if (host == "bad.test") { %s }\n'
            '  return "DIRECT"; }\n' % js)


def pac_failure(err):
    m = re.search(r"event=pac.failed dest=\S+ reason=(.*)", err)
    check(m, "no event=pac.failed:\n%s", err[-3000:])
    return m.group(1).strip('"').replace('\\"', '"')


@test
def test_hostile_infinite_loop(h):
    """while(true){}: killed after 5 s, DIRECT with the reason, a new helper answers the next call"""
    took, err = hostile(h, only_bad("while (true) {}"))
    why = pac_failure(err)
    check("FindProxyForURL did not finish within 5000 ms" in why and
          "the helper was killed" in why and "using DIRECT as .NET does" in why, why)
    check(5 <= took < 15, "took %.1f s" % took)
    starts = re.findall(r"event=pac.helper.started pid=(\d+)", err)
    check(len(starts) == 2 and starts[0] != starts[1], "the helper was not restarted: %r" % starts)
    check(re.search(r"event=pac.helper.stopped pid=%s reason=\"?time limit" % starts[0], err), err)
    check(re.search(r'event=dial.pac dest=127.0.0.1 .*decision=DIRECT reason="PAC \S+ \(sha256 '
                    r'[0-9a-f]+, \d+ s old\): \\"DIRECT\\" -> DIRECT"', err),
          "the second call was not answered by the script:\n%s" % err[-2000:])


@test
def test_hostile_allocation(h):
    """unbounded allocation: the heap cap stops it with an error, DIRECT, the node goes on"""
    took, err = hostile(h, only_bad('var s = "x"; for (;;) s = s + s;'))
    why = pac_failure(err)
    check("alloc failed" in why or "did not finish within 5000 ms" in why, why)
    check(took < 15, "took %.1f s" % took)


@test
def test_hostile_throw_and_garbage(h):
    """a throw and a garbage answer: DIRECT with what the script did"""
    took, err = hostile(h, only_bad('throw new Error("no proxy for you");'))
    why = pac_failure(err)
    check("FindProxyForURL threw an exception: Error: no proxy for you" in why, why)
    took, err = hostile(h, only_bad('return "PROXY"'), count=1)
    why = pac_failure(err)
    check('returned "PROXY", which is not a proxy list (entry "PROXY" skipped: no host)' in why, why)
    took, err = hostile(h, only_bad('return {a: 1}'), count=1)
    check("returned an object, not a string" in pac_failure(err), err[-2000:])
    took, err = hostile(h, "function FindProxyForURL(url, host { syntax", count=1)
    check("the script failed to load: SyntaxError" in pac_failure(err), err[-2000:])


@test
def test_hostile_charset(h):
    """bytes that are not the declared UTF-8, and an unknown charset: refused with the reason"""
    bad = b'function FindProxyForURL(u, h) { return "PROXY caf\xe9.test:1"; }'
    took, err = hostile(h, bad, ctype="application/x-ns-proxy-autoconfig; charset=utf-8", count=1)
    why = pac_failure(err)
    check("not valid UTF-8 (byte 0xe9 at offset" in why and "Content-Type says UTF-8" in why, why)
    took, err = hostile(h, b"function FindProxyForURL(){}", ctype="text/plain; charset=shift_jis",
                        count=1)
    check('the charset "shift_jis" of its Content-Type is not supported (UTF-8, UTF-16 or '
          'ISO-8859-1 only)' in pac_failure(err), err[-2000:])


@test
def test_hostile_11_mb_script(h):
    """an 11 MB script: the download stops at 1 MiB, DIRECT"""
    body = b"// " + b"x" * (11 * 1024 * 1024) + b"\nfunction FindProxyForURL(){return 'DIRECT';}"
    took, err = hostile(h, body, count=1)
    check("larger than 1 MiB" in pac_failure(err), err[-2000:])
    check(took < 20, "took %.1f s" % took)


@test
def test_hostile_slow_server(h):
    """a server that trickles the script: webProxyScript downloadTimeout (2 s here, system mode)
    bounds the wait; the failure is remembered (not refetched at once)"""
    eport, cert = tp.echo_server(h)
    srv = PacServer(h)
    body = b'function FindProxyForURL(u, h) { return "DIRECT"; }' + b" " * 4000
    url = srv.add("/slow.pac", body, slow=30)
    cfg = h.write("diahost.exe.config", """<?xml version="1.0" encoding="utf-8"?>
<configuration><system.net>
  <settings><webProxyScript downloadTimeout="00:00:02"/></settings>
  <defaultProxy><proxy scriptLocation="%s"/></defaultProxy>
</system.net></configuration>
""" % url)
    t0 = time.monotonic()
    r = h.run([h.bin("proxy_dial_client"), "--dotnet", cfg, "--url", "https://bad.test:%d/" % eport,
               "--url2", "https://good.test:%d/" % eport, "--host", "127.0.0.1", "--port",
               str(eport), "--ca", cert, "--count", "2", "--verbose"], timeout=60,
              env=tp.clean_env())
    took = time.monotonic() - t0
    check(r.returncode == 0, "%s %s", r.stdout, r.stderr[-2000:])
    why = pac_failure(r.stderr)
    check("PAC %s: no complete answer within 2 s" % url in why, why)
    check(2 <= took < 8, "took %.1f s" % took)
    fails = re.findall(r"event=pac.failed dest=\S+ reason=(.*)", r.stderr)
    check(len(fails) == 2 and re.search(r"next download in (2\d|30) s", fails[1]),
          "the failure was not remembered:\n%s" % r.stderr[-2000:])
    check(srv.hits == ["/slow.pac"], "%r", srv.hits)


@test
def test_helper_sandbox(h):
    """the helper confines itself: no sockets, no files, no processes"""
    helper = os.path.join(os.environ["SHIR_BUILDDIR"], "proxy", "shir-pac-helper")
    r = h.run([helper, "--selftest"], check=0)
    if os.geteuid() == 0:
        check("uid: 65534" in r.stdout or re.search(r"uid: [1-9]", r.stdout),
              "a root helper must become nobody: %s" % r.stdout)
    check("socket: Operation not permitted" in r.stdout, r.stdout)
    check("openat: Operation not permitted" in r.stdout, r.stdout)
    check("fork: Operation not permitted" in r.stdout, r.stdout)
    r = h.run([helper, "extra"], check=2)
    check("run by shird only" in r.stderr, r.stderr)


# --- WPAD: a resolver the test controls -----------------------------------------

NETNS_SH = r"""
set -e
ip link set lo up
mount --bind "$RESOLV" /etc/resolv.conf
if [ -n "$NODE_HOSTNAME" ]; then hostname "$NODE_HOSTNAME"; fi
"$DNSMASQ" --keep-in-foreground --no-resolv --no-hosts --listen-address=127.0.0.1 \
  --bind-interfaces --port=53 --user=root --log-queries --log-facility=- $DNS_ARGS \
  2>"$TMP/dnsmasq.log" &
DNS=$!
"$PYTHON" -m http.server 80 --bind 127.0.0.1 --directory "$TMP/www" 2>"$TMP/http.log" &
WEB=$!
trap 'kill $DNS $WEB 2>/dev/null; wait $DNS $WEB 2>/dev/null || true' EXIT
for i in $(seq 50); do
  if "$PYTHON" -c 'import socket; socket.create_connection(("127.0.0.1", 80), 1).close()' 2>/dev/null; then
    break
  fi
  sleep 0.1
done
"$@"
"""


def in_netns(h, dns_args, argv, timeout=60, extra_env=None, search="corp.shir.test",
             hostname=None):
    """Runs argv in a network and mount namespace of its own: only a loopback
    interface, /etc/resolv.conf naming a dnsmasq on 127.0.0.1:53 (search list
    corp.shir.test) that answers as dns_args say, and an HTTP server on
    127.0.0.1:80 serving h.path("www"). Nothing leaves the namespace."""
    unshare = h.require("unshare", "util-linux")
    dnsmasq = h.require("dnsmasq", "dnsmasq")
    h.require("ip", "iproute2")
    resolv = h.write("resolv.conf", "nameserver 127.0.0.1\nsearch %s\n"
                     "options timeout:1 attempts:1\n" % search)
    os.makedirs(h.path("www"), exist_ok=True)
    env = dict(tp.clean_env())
    env.update({"RESOLV": resolv, "DNSMASQ": dnsmasq, "DNS_ARGS": " ".join(dns_args),
                "TMP": h.tmp, "PYTHON": sys.executable})
    env.update(extra_env or {})
    if hostname:
        env["NODE_HOSTNAME"] = hostname
    r = h.run([unshare, "--net", "--mount"] + (["--uts"] if hostname else []) +
              ["sh", "-c", NETNS_SH, "netns"] + argv,
              timeout=timeout, env=env)
    if "Operation not permitted" in r.stderr and "unshare" in r.stderr:
        raise TestFailure("unshare --net --mount needs root (or user namespaces): %s" % r.stderr)
    with open(h.path("dnsmasq.log")) as f:
        dns_log = f.read()
    return r, dns_log


WPAD_DOTNET = """<?xml version="1.0" encoding="utf-8"?>
<configuration><system.net>
  <defaultProxy><proxy autoDetect="true" %s/></defaultProxy>
</system.net></configuration>
"""


@test
def test_wpad_through_the_search_list(h):
    """autoDetect="true": http://wpad/wpad.dat found through the resolver's search list
    (wpad.corp.shir.test from a dnsmasq the test runs), its answer used"""
    h.write("www/wpad.dat", 'function FindProxyForURL(url, host) {\n'
            '  return isResolvable("wpad") ? "PROXY wpad-chose.test:3128" : "DIRECT"; }\n')
    cfg = h.write("diahost.exe.config", WPAD_DOTNET % "")
    r, dns = in_netns(h, ["--address=/wpad.corp.shir.test/127.0.0.1"],
                      [h.bin("shirctl"), "proxy", "explain", "https://relay.test/", "--config", cfg])
    check(r.returncode == 0, "%s %s", r.stdout, r.stderr)
    check("PAC:       http://wpad/wpad.dat (WPAD) (sha256 " in r.stdout, r.stdout)
    check("Decision:  PROXY http://wpad-chose.test:3128" in r.stdout, r.stdout)
    check("query[A] wpad.corp.shir.test from 127.0.0.1" in dns, dns)
    with open(h.path("http.log")) as f:
        check('"GET /wpad.dat HTTP/1.1" 200' in f.read(), "the HTTP server saw no request")


@test
def test_wpad_fails_then_script_location_and_remembered(h):
    """no wpad name: the scriptLocation beside autoDetect is used, the failed discovery is named in
    explain and remembered (one DNS question for two decisions)"""
    h.write("www/corp.pac", 'function FindProxyForURL(u, h) { return "PROXY fallback.test:8080"; }')
    cfg = h.write("diahost.exe.config", WPAD_DOTNET % 'scriptLocation="http://127.0.0.1/corp.pac"')
    r, dns = in_netns(h, [], [h.bin("shirctl"), "proxy", "explain", "https://relay.test/",
                              "--config", cfg])
    check(r.returncode == 0, "%s %s", r.stdout, r.stderr)
    check(re.search(r"PAC tried: PAC http://wpad/wpad.dat \(WPAD\): cannot resolve its host", r.stdout),
          r.stdout)
    check("PAC:       http://127.0.0.1/corp.pac (sha256" in r.stdout, r.stdout)
    check("Decision:  PROXY http://fallback.test:8080" in r.stdout, r.stdout)
    # one process, two destinations (the dials fail: fallback.test is no real proxy): the
    # failed discovery is not repeated for the second one
    r, dns = in_netns(h, [], [h.bin("proxy_dial_client"), "--dotnet", cfg, "--url",
                              "https://one.test:9/", "--url2", "https://two.test:9/",
                              "--host", "127.0.0.1", "--port", "9", "--count", "2",
                              "--timeout", "3", "--verbose", "--keep-going"])
    check(dns.count("query[A] wpad.corp.shir.test") == 1, dns)
    check(len(re.findall(r"event=pac.fetch.failed url=http://wpad/wpad.dat", r.stderr)) == 1,
          r.stderr[-3000:])
    check(len(re.findall(r"event=dial.pac .*fallback.test:8080", r.stderr)) == 2, r.stderr[-3000:])



@test
def test_failed_discovery_forgotten_when_the_network_changes(h):
    """a failed WPAD discovery is remembered until the network changes, as WinHTTP does: an
    address added between two decisions makes the second one ask for wpad again"""
    h.write("www/corp.pac", 'function FindProxyForURL(u, h) { return "PROXY fallback.test:8080"; }')
    cfg = h.write("diahost.exe.config", WPAD_DOTNET % 'scriptLocation="http://127.0.0.1/corp.pac"')
    r, dns = in_netns(h, [], [h.bin("proxy_dial_client"), "--dotnet", cfg, "--url",
                              "https://one.test:9/", "--url2", "https://two.test:9/",
                              "--host", "127.0.0.1", "--port", "9", "--count", "2",
                              "--timeout", "3", "--verbose", "--keep-going",
                              "--between", "ip addr add 127.0.0.2/8 dev lo"])
    check("--between" not in r.stderr, r.stderr[-2000:])
    check(re.search(r"event=pac.network.changed", r.stderr), r.stderr[-3000:])
    check(dns.count("query[A] wpad.corp.shir.test") == 2, dns)
    check(len(re.findall(r"event=pac.fetch.failed url=http://wpad/wpad.dat", r.stderr)) == 2,
          r.stderr[-3000:])
    check(len(re.findall(r"event=dial.pac .*fallback.test:8080", r.stderr)) == 2, r.stderr[-3000:])

@test
def test_wpad_devolution_opt_in_bounded(h):
    """proxy.wpad_devolution (opt-in): on a machine in b.corp.example.test, wpad.corp.example.test
    and wpad.example.test are tried after the search list, never wpad.test (a public suffix);
    without the opt-in only the search list is asked"""
    h.write("www/wpad.dat", 'function FindProxyForURL(u, h) { return "PROXY devolved.test:8080"; }')
    cfg = h.write("diahost.exe.config", WPAD_DOTNET % "")
    node = "[proxy]\nmode = system\ndotnet_config = %s\ndotnet_config_worker = %s\n" % (cfg, cfg)
    on = h.write("on.conf", node + "wpad_devolution = true\n")
    off = h.write("off.conf", node)
    dns_args = ["--address=/wpad.example.test/127.0.0.1"]
    r, dns = in_netns(h, dns_args, [h.bin("shirctl"), "--conf", on, "proxy", "explain",
                                     "https://relay.test/"],
                      search="b.corp.example.test", hostname="node1")
    check(r.returncode == 0, "%s %s", r.stdout, r.stderr)
    check("PAC:       http://wpad.example.test/wpad.dat (WPAD) (sha256" in r.stdout, r.stdout)
    check("Decision:  PROXY http://devolved.test:8080" in r.stdout, r.stdout)
    check(re.search(r"PAC tried: PAC http://wpad/wpad.dat \(WPAD\): cannot resolve its host.*; "
                    r"PAC http://wpad.b.corp.example.test/wpad.dat \(WPAD\): cannot resolve.*; "
                    r"PAC http://wpad.corp.example.test/wpad.dat \(WPAD\): cannot resolve", r.stdout),
          r.stdout)
    check("query[A] wpad.example.test" in dns, dns)
    check("wpad.test " not in dns and "query[A] wpad.test" not in dns, "devolved to a public suffix:\n" + dns)
    r = h.run([h.bin("shirctl"), "--conf", on, "proxy", "show", "--json"], check=0)
    # the list depends on this machine's own domain outside the namespace: only its shape
    check('"autoDetect":' in r.stdout.replace(" ", ""), r.stdout)
    r, dns = in_netns(h, dns_args, [h.bin("shirctl"), "--conf", off, "proxy", "explain",
                                    "https://relay.test/"],
                      search="b.corp.example.test", hostname="node1")
    check("Decision:  DIRECT" in r.stdout and "wpad.example.test" not in dns, r.stdout + dns)


STATUS_SH = r"""
"$SHIRD" -f "$CONF" 2>"$TMP/shird.log" &
PID=$!
for i in $(seq 100); do
  "$SHIRCTL" --socket "$SOCK" status >"$TMP/status.txt" 2>&1 || true
  if grep -q '^PAC:' "$TMP/status.txt"; then
    break
  fi
  sleep 0.2
done
"$SHIRCTL" --socket "$SOCK" status --json >"$TMP/status.json" 2>&1 || true
"$SHIRCTL" --socket "$SOCK" --conf "$CONF" diagnose >"$TMP/diagnose.txt" 2>&1 || true
kill -TERM $PID
wait $PID
"""


@test
def test_status_names_the_pac_failure(h):
    """shird whose PAC file answers 404: status (text and JSON) and diagnose name the failure and the .NET
    fallback; the channel dials DIRECT (run in a network namespace with its own resolver, so
    the DIRECT fallback to relay.test stays on loopback)"""
    key = tl.write_key(h, "c2VjcmV0")
    conf, sock = tl.shird_conf(h, endpoint="wss://relay.test:9", key_file=key,
                               tail="[proxy]\nmode = custom\npac_url = http://127.0.0.1/missing.pac\n")
    r, dns = in_netns(h, ["--address=/relay.test/127.0.0.1"], ["sh", "-c", STATUS_SH],
                      extra_env={"SHIRD": h.bin("shird"), "SHIRCTL": h.bin("shirctl"),
                                 "CONF": conf, "SOCK": sock})
    check(r.returncode == 0, "shird did not exit cleanly: %s %s" % (r.stdout, r.stderr))
    want = "PAC http://127.0.0.1/missing.pac: HTTP 404; using DIRECT as .NET does"
    with open(h.path("status.txt")) as f:
        txt = f.read()
    check("PAC:      " + want in txt, txt)
    with open(h.path("status.json")) as f:
        st = json.load(f)
    check(st["proxy"]["pacError"].startswith(want) and st["proxy"]["pac"]["scriptLocation"] ==
          "http://127.0.0.1/missing.pac", json.dumps(st["proxy"]))
    with open(h.path("diagnose.txt")) as f:
        diag = f.read()
    check(want in diag, "diagnose does not name the PAC failure:\n%s", diag)
    with open(h.path("shird.log")) as f:
        log = f.read()
    check(re.search(r"event=dial.attempt dest=relay.test port=9 via=DIRECT", log) or
          "event=pac.failed" in log, log[-3000:])


if __name__ == "__main__":
    main()
