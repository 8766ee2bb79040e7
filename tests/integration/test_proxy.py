"""Integration: proxy/ end to end. shirctl proxy explain/show without a
daemon, shird -t / startup / reload with .NET config files, and tunnels
through a real squid (plain, Basic, Digest), a test NTLM proxy, a dead proxy
and a bypassed destination, checked byte for byte through a TLS echo server."""
import json
import os
import signal

from shirtest import check, main, test, TestFailure

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
    st = json.loads(ctl(h, "--socket", sock, "status", "--json").stdout)
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
    st = json.loads(ctl(h, "--socket", sock, "status", "--json").stdout)
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
    conf = h.write("shird.conf", "[proxy]\nmode = custom\naddress = proxy.corp\nport = 3128\n"
                   "user = CORP\\svc\npassword_file = %s\n" % pw)
    r = h.run([h.bin("shird"), "-t", "-f", conf])
    check(r.returncode != 0 and "chmod 600" in r.stderr and "s3cret" not in r.stderr, r.stderr)
    os.chmod(pw, 0o600)
    h.run([h.bin("shird"), "-t", "-f", conf], check=0)
    r = ctl(h, "--conf", conf, "proxy", "show")
    check("CORP\\svc" in r.stdout and "s3cret" not in r.stdout, r.stdout)


if __name__ == "__main__":
    main()
