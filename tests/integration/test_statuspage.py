"""Integration: the local status page ([admin] status_page) in headless Chromium, and
/metrics on a loopback TCP address ([admin] metrics).

A real shir-relay and shird on loopback; Debian's chromium driven over the
DevTools protocol on a pipe (--remote-debugging-pipe: no port, no extra
package). The page shows the channel Online, then Offline with its cause once
the relay stops; the Diagnostics tab's button runs diagnose and names the
failing step. Screenshots stay in $SHIR_BUILDDIR/tests/statuspage-screenshots.
"""
import base64
import fcntl
import json
import os
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request

import shirtest
from shirtest import BUILDDIR, check, free_port, main, test, TestFailure, wait_until
from test_listener import Relay, node_with_relay, shird_conf, stop_clean

shirtest._tests[:] = []	# test_listener's helpers only, not its tests

SHOTS = os.path.join(BUILDDIR, "tests", "statuspage-screenshots")


class Chromium:
    """Headless chromium; the DevTools protocol on fds 3 (in) and 4 (out)."""

    def __init__(self, h):
        try:
            exe = h.require("chromium", "chromium")
        except TestFailure as e:
            raise TestFailure("%s: the status page test runs in headless Chromium" % e)
        to_chrome_r, self.w = os.pipe()
        self.r, from_chrome_w = os.pipe()

        def child_fds():
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self.log = open(h.path("chromium.log"), "wb")
        self.p = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--remote-debugging-pipe",
             "--user-data-dir=" + h.path("chromium-profile"), "--window-size=1280,1000",
             "--hide-scrollbars", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, preexec_fn=child_fds,
            close_fds=False, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.session = None
        h.on_cleanup(self.close)

    def close(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()

    def call(self, method, params=None, timeout=30, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise TestFailure("chromium: %s: %s" % (method, m["error"]))
                    return m["result"]
            left = end - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                raise TestFailure("chromium did not answer %s (see chromium.log)" % method)
            if select.select([self.r], [], [], left)[0]:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise TestFailure("chromium closed the DevTools pipe")
                self.buf += chunk

    def open(self, url):
        t = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        s = self.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True},
                      session=False)
        self.session = s["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Page.navigate", {"url": url})

    def js(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise TestFailure("page script failed: %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_js(self, expr, what, timeout=30):
        last = {}

        def ok():
            last["v"] = self.js(expr)
            return last["v"]
        try:
            return wait_until(ok, timeout, what)
        except TestFailure as e:
            body = self.js("document.body ? document.body.innerText : ''")
            raise TestFailure("%s; the page said:\n%s" % (e, body))

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        png = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        path = os.path.join(SHOTS, name + ".png")
        with open(path, "wb") as f:
            f.write(png)
        check(len(png) > 10000, "screenshot %s is only %d bytes", path, len(png))
        return path


def ui_url(h, sock):
    r = h.run([h.bin("shirctl"), "--socket", sock, "ui"], check=0)
    url = r.stdout.strip()
    check(url.startswith("http://127.0.0.1:") and "#token=" in url, "shirctl ui printed %r", url)
    return url


def http(url, headers=None, method="GET"):
    rq = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(rq, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


@test
def test_status_page_in_chromium(h):
    """the page renders Online, shows Offline with the cause when the relay stops; diagnose names the failing step"""
    relay = Relay(h)
    keys = relay.create()
    relay.start()
    port = free_port()
    folders = h.path("data")
    os.makedirs(folders)
    p, conf, sock = node_with_relay(
        h, relay, tail="[security]\nallowed_folders = %s\n[admin]\nstatus_page = 127.0.0.1:%d\n"
        % (folders, port))
    h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "credentials", "set", "pg-sales"],
          input="s3cret-pg-password\n", check=0)
    url = ui_url(h, sock)
    token = url.split("#token=")[1]
    tokfile = os.path.join(h.path("state-node-a"), "statuspage.token")
    check(oct(os.stat(tokfile).st_mode & 0o777) == "0o600", "token file mode %o",
          os.stat(tokfile).st_mode & 0o777)
    check(open(tokfile).read().strip() == token, "shirctl ui's token is not the file's")

    # without the token, from another Host, or writing: refused
    base = "http://127.0.0.1:%d" % port
    st, body, _ = http(base + "/api/node")
    check(st == 401 and "token" in body, "no token: %d %s", st, body)
    st, body, _ = http(base + "/api/node", {"Authorization": "Bearer " + "0" * len(token)})
    check(st == 401, "wrong token: %d %s", st, body)
    st, body, _ = http(base + "/api/node", {"Authorization": "Bearer " + token,
                                             "Host": "evil.example:%d" % port})
    check(st == 403 and "Host" in body, "rebinding Host: %d %s", st, body)
    st, body, _ = http(base + "/api/node", {"Authorization": "Bearer " + token}, method="POST")
    check(st == 405, "POST /api/node: %d %s", st, body)
    st, body, hdrs = http(base + "/")
    check(st == 200 and "default-src 'none'" in hdrs.get("Content-Security-Policy", ""),
          "page headers: %r", hdrs)
    check("http://" not in body.replace(base, "") and "https://" not in body,
          "the page must load nothing from elsewhere:\n%s", body)

    b = Chromium(h)
    b.open(url)
    b.wait_js("(document.querySelector('#channels tbody tr[data-state=\"Connected\"]') || {}).textContent",
              "the channel to show Connected")
    b.wait_js("document.getElementById('node-status').textContent === 'Online'", "node Online")
    check(b.js("location.href") == base + "/", "the token stays in the address bar: %s",
          b.js("location.href"))
    b.screenshot("1-status-online")

    # Settings: folders, credential names and versions, never the secret
    b.js("document.getElementById('tab-settings').click()")
    b.wait_js("document.querySelector('#credentials tbody') && "
              "document.querySelector('#credentials tbody').textContent.indexOf('pg-sales') >= 0",
              "the credential's name in Settings")
    text = b.js("document.body.innerText")
    check(folders in text, "allowed folder missing:\n%s", text)
    check("none" in b.js("document.getElementById('proxy').innerText"), "proxy mode:\n%s", text)
    check(relay.url() in b.js("document.getElementById('proxy-decisions').innerText"),
          "the relay's route is missing:\n%s", text)
    check("s3cret-pg-password" not in text and keys["node-key1"]["key"] not in text,
          "a secret is on the page:\n%s", text)
    b.screenshot("2-settings")

    # the relay stops: the page shows the channel Disconnected and the node Offline, with why
    b.js("document.getElementById('tab-status').click()")
    relay.proc.signal(signal.SIGKILL)
    relay.proc.wait_exit(10)
    b.wait_js("document.getElementById('node-status').textContent === 'Offline'",
              "the page to show the node Offline", timeout=30)
    cause = b.wait_js("(document.querySelector('#channels tbody tr[data-state=\"Disconnected\"] td.cause')"
                      " || {}).textContent", "the channel's cause", timeout=30)
    check("127.0.0.1" in cause or "refused" in cause.lower() or "closed" in cause.lower(),
          "cause: %r", cause)
    b.screenshot("3-status-offline")

    # Diagnostics: recent log lines, and diagnose names the failing step
    b.js("document.getElementById('tab-diagnostics').click()")
    b.wait_js("document.getElementById('logs').textContent.indexOf('event=') >= 0", "log lines")
    logs = b.js("document.getElementById('logs').textContent")
    check(keys["node-key1"]["key"] not in logs, "the key is in the log lines shown")
    b.js("document.getElementById('diag-run').click()")
    summary = b.wait_js("(function(){var s=document.getElementById('diag-summary');"
                        "return s.hidden ? '' : s.textContent;})()", "diagnose's result",
                        timeout=90)
    check("failing step tcp" in summary, "diagnose summary: %r", summary)
    bad = b.js("Array.prototype.map.call(document.querySelectorAll('tr.step-bad td:first-child'),"
               "function(t){return t.textContent;})")
    check(bad == ["tcp"], "highlighted steps: %r", bad)
    b.screenshot("4-diagnostics")
    b.close()
    stop_clean(p)


@test
def test_status_page_needs_loopback(h):
    """shird -t refuses [admin] status_page or metrics on a non-loopback address"""
    for key in ("status_page", "metrics"):
        conf, _ = shird_conf(h, tail="[admin]\n%s = 0.0.0.0:%d\n" % (key, free_port()),
                             fname=key + ".conf")
        r = h.run([h.bin("shird"), "-t", "-f", conf], check=1)
        check("not a loopback address" in r.stderr and key in r.stderr, "%s: %s", key, r.stderr)
    conf, _ = shird_conf(h, tail="[admin]\nstatus_page = [::1]:%d\nmetrics = localhost:%d\n"
                         % (free_port("::1"), free_port()), fname="ok.conf")
    h.run([h.bin("shird"), "-t", "-f", conf], check=0)


@test
def test_ui_when_off(h):
    """shirctl ui says how to turn the page on when [admin] status_page is unset"""
    conf, sock = shird_conf(h)
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening socket=")
    r = h.run([h.bin("shirctl"), "--socket", sock, "ui"], check=None)
    check(r.returncode != 0 and "status_page = 127.0.0.1:" in r.stderr, "%d %s", r.returncode,
          r.stderr)
    stop_clean(p)


@test
def test_metrics_on_loopback_tcp(h):
    """[admin] metrics serves the control socket's /metrics to a scraper on loopback"""
    port = free_port()
    conf, sock = shird_conf(h, tail="[admin]\nmetrics = 127.0.0.1:%d\n" % port)
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening what=metrics")
    st, body, hdrs = http("http://127.0.0.1:%d/metrics" % port)
    check(st == 200 and "text/plain" in hdrs.get("Content-Type", ""), "%d %r", st, hdrs)
    check("shird_up 1" in body and "shird_node_status{" in body, "metrics:\n%s", body[:2000])
    st, _, _ = http("http://127.0.0.1:%d/v1/node" % port)
    check(st == 404, "only /metrics is served there: %d", st)
    stop_clean(p)


def metric(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


@test
def test_metrics_causes_proxy_kinds_and_credentials(h):
    """/metrics: disconnects by cause, proxy failures by kind, credential versions"""
    port, dead = free_port(), free_port()
    key = h.write("node.key", "c2VjcmV0c2VjcmV0c2VjcmV0\n", mode=0o600)
    conf, sock = shird_conf(h, endpoint="wss://relay.test:443", key_file=key,
                            tail="[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n"
                            "[admin]\nmetrics = 127.0.0.1:%d\n" % (dead, port))
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening what=metrics")
    h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "credentials", "set", "pg-a"],
          input="x\n", check=0)
    h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "credentials", "set", "pg-a"],
          input="y\n", check=0)
    p.wait_log(r"event=channel.disconnected .*proxy http://127\.0\.0\.1:%d refused" % dead)
    name = 'shird_channel_proxy_failures_total{channel="relay",replacing="0",kind="unreachable"}'
    body = wait_until(lambda: (lambda b: metric(b, name) and b)(
        http("http://127.0.0.1:%d/metrics" % port)[1]), 20, "a proxy failure counted")
    check(metric(body, 'shird_channel_disconnects_total{channel="relay",replacing="0",'
                 'cause="proxy"}') >= 1, "disconnects by cause:\n%s", body)
    check(metric(body, 'shird_channel_proxy_failures_total{channel="relay",replacing="0",'
                 'kind="auth"}') == 0, "kinds:\n%s", body)
    check(metric(body, "shird_credentials_version") == 2, "store version:\n%s", body)
    check(metric(body, 'shird_credential_version{name="pg-a"}') == 2, "credential:\n%s", body)
    check("\nx\n" not in body and "\ny\n" not in body, "a value in /metrics")
    # every series the sample alert rules use is one shird serves
    import re
    from shirtest import SRCDIR
    rules = open(os.path.join(SRCDIR, "conf", "prometheus", "shird-alerts.yml")).read()
    used = set(re.findall(r"\b(shird_[a-z_]+)", rules))
    check(used and all(("\n%s{" % m) in body or ("\n%s " % m) in body for m in used),
          "the alert rules use series shird does not serve: %s",
          sorted(m for m in used if ("\n%s{" % m) not in body and ("\n%s " % m) not in body))
    stop_clean(p)


@test
def test_metrics_proxy_failure_kinds_with_squid(h):
    """/metrics counts a 407 from a real squid as kind="auth" and its 403 as kind="denied"
    (the labels the ShirProxyAuthFailing alert reads)"""
    from squid import Squid
    relay_port = free_port()	# nothing listens: squid refuses or asks first
    hosts = {"relay.test": "127.0.0.1"}	# a loopback relay address is never proxied
    sq = Squid(h, auth="basic", hosts=hosts)
    sq_deny = Squid(h, deny_port=relay_port, hosts=hosts)
    bad = h.write("bad.pw", "wrong-pw\n", mode=0o600)
    key = h.write("node.key", "c2VjcmV0c2VjcmV0c2VjcmV0\n", mode=0o600)
    for kind, proxy, user in (("auth", sq, "user = svc\npassword_file = %s\nauth = basic\n" % bad),
                              ("denied", sq_deny, "")):
        port = free_port()
        conf, sock = shird_conf(h, name="node-" + kind,
                                endpoint="wss://relay.test:%d" % relay_port, key_file=key,
                                tail="[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n%s"
                                "[admin]\nmetrics = 127.0.0.1:%d\n" % (proxy.port, user, port),
                                fname="shird-%s.conf" % kind)
        p = h.start("shird-" + kind, [h.bin("shird"), "-f", conf])
        p.wait_log(r"event=listening what=metrics")
        name = ('shird_channel_proxy_failures_total{channel="relay",replacing="0",kind="%s"}'
                % kind)
        last = {}

        def counted():
            last["body"] = http("http://127.0.0.1:%d/metrics" % port)[1]
            return metric(last["body"], name) and last["body"]
        try:
            body = wait_until(counted, 20, "a proxy failure of kind " + kind)
        except TestFailure as e:
            raise TestFailure("%s; /metrics has:\n%s" % (e, "\n".join(
                l for l in last.get("body", "").splitlines() if "proxy_failures" in l)))
        others = [k for k in ("auth", "denied", "unreachable", "timeout")
                  if k != kind and metric(body, name.replace('"%s"' % kind, '"%s"' % k))]
        check(not others, "kind %s also counted as %s:\n%s", kind, others, body)
        check("wrong-pw" not in body, "the proxy password in /metrics")
        stop_clean(p)


@test
def test_prometheus_samples_load_and_alert(h):
    """the sample scrape config and alert rules load in Prometheus's own promtool, and
    the alerts fire when (and only when) they should: tests/prometheus/shird-alerts.test.yml"""
    from shirtest import SRCDIR
    promtool = h.require("promtool", "prometheus")
    r = h.run([promtool, "check", "config",
               os.path.join(SRCDIR, "conf", "prometheus", "prometheus-shird.yml")])
    check(r.returncode == 0 and "SUCCESS" in r.stdout + r.stderr,
          "promtool check config:\n%s%s", r.stdout, r.stderr)
    r = h.run([promtool, "test", "rules",
               os.path.join(SRCDIR, "tests", "prometheus", "shird-alerts.test.yml")])
    check(r.returncode == 0 and "SUCCESS" in r.stdout + r.stderr,
          "promtool test rules:\n%s%s", r.stdout, r.stderr)


if __name__ == "__main__":
    main()
