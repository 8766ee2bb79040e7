"""Integration: shird's life cycle, control socket, reload and shutdown."""
import json
import os
import signal
import stat

from shirtest import check, main, test, TestFailure

GOOD = """\
[node]
name = {name}
control_socket = {sock}
state_dir = {state}
shutdown_timeout = 5
[log]
level = debug
"""


def start_shird(h, name="node-a"):
    sock = h.path("shird.sock")
    conf = h.write("shird.conf", GOOD.format(name=name, sock=sock, state=h.path("state")))
    p = h.start("shird", [h.bin("shird"), "-f", conf])
    p.wait_log(r"event=listening socket=\S*shird\.sock")
    return p, conf, sock


def ctl(h, sock, *args, check_rc=0):
    return h.run([h.bin("shirctl"), "--socket", sock] + list(args), check=check_rc)


def status_json(h, sock):
    r = ctl(h, sock, "status", "--json", check_rc=None)
    st = json.loads(r.stdout)
    want = {"Online": 0, "Limited": 3, "Offline": 4, "NeedsRegistration": 5, "Starting": 6}
    check(r.returncode == want[st["status"]], "status %s exited %d" % (st["status"], r.returncode))
    return st


@test
def test_status(h):
    """shird starts, serves /v1/node; shirctl status shows it"""
    p, conf, sock = start_shird(h)
    st = status_json(h, sock)
    check(st["name"] == "node-a", "name: %r", st)
    check(st["status"] == "NeedsRegistration", "status: %r", st)
    check(st["configFile"] == conf, "configFile: %r", st)
    check(isinstance(st["uptimeSeconds"], (int, float)), "uptime: %r", st)
    check(st["channels"] == [], "channels: %r", st)
    out = ctl(h, sock, "status", check_rc=5).stdout	# 5: NeedsRegistration
    check("Status:   NeedsRegistration" in out, "human status:\n%s", out)
    check("Node:     node-a" in out, "human status:\n%s", out)
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    check(mode == 0o660, "control socket mode is %o, want 660", mode)
    log = p.log()
    check("event=versions" in log and "libevent=" in log and "openssl=" in log,
          "startup must log library versions:\n%s", log)


@test
def test_reload_bad_keeps_old(h):
    """SIGHUP with a broken config keeps the old one and logs why"""
    p, conf, sock = start_shird(h)
    with open(conf, "a") as f:
        f.write("[node]\nqueue_size = many\n")
    p.signal(signal.SIGHUP)
    m = p.wait_log(r"event=reload status=failed reason=(\".*?\")")
    check("shird.conf:9: node.queue_size must be" in m.group(1), "reason must name the line: %s", m.group(1))
    st = status_json(h, sock)
    check(st["name"] == "node-a" and st["reloads"] == 0, "old config must stay: %r", st)
    r = ctl(h, sock, "reload", check_rc=1)
    check("old configuration stays" in r.stderr and "queue_size" in r.stderr, r.stderr)


@test
def test_reload_good_applies(h):
    """SIGHUP and shirctl reload with a good config apply it"""
    p, conf, sock = start_shird(h)
    with open(conf, "w") as f:
        f.write(GOOD.format(name="node-b", sock=sock, state=h.path("state")))
    p.signal(signal.SIGHUP)
    p.wait_log(r"event=reload status=done")
    st = status_json(h, sock)
    check(st["name"] == "node-b" and st["reloads"] == 1, "new config: %r", st)
    with open(conf, "w") as f:
        f.write(GOOD.format(name="node-c", sock=sock, state=h.path("state")))
    r = ctl(h, sock, "reload")
    check("reloaded" in r.stdout, r.stdout)
    check(status_json(h, sock)["name"] == "node-c", "shirctl reload did not apply")


@test
def test_sigterm_exits_zero(h):
    """SIGTERM drains and exits 0 within the deadline, removing the socket"""
    p, conf, sock = start_shird(h)
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(timeout=5)
    check(rc == 0, "exit code %s; log:\n%s", rc, p.tail())
    log = p.log()
    check("event=shutdown.begin" in log and "event=shutdown.done" in log, log)
    check(not os.path.exists(sock), "the control socket must be removed on exit")


@test
def test_config_check(h):
    """shird -t: 0 for a good file, non-zero with file:line for a bad one"""
    good = h.write("good.conf", GOOD.format(name="x", sock=h.path("s"), state=h.path("st")))
    r = h.run([h.bin("shird"), "-t", "-f", good], check=0)
    check("configuration OK" in r.stdout, r.stdout)
    bad = h.write("bad.conf", "[node]\nname = x\nconcurrent_jobs = 999\n[log]\nlevel = loud\n")
    r = h.run([h.bin("shird"), "-t", "-f", bad])
    check(r.returncode != 0, "shird -t on a bad file must fail")
    check("bad.conf:3: node.concurrent_jobs must be a whole number from 0 to 256" in r.stderr,
          r.stderr)
    check("bad.conf:5: log.level must be one of" in r.stderr, r.stderr)
    r = h.run([h.bin("shird"), "-t", "-f", h.path("missing.conf")])
    check(r.returncode != 0 and "cannot open" in r.stderr, r.stderr)
    # folders that do not exist: -t says so, as start would fail
    for key, sock, state, log in (
            ("node.control_socket", h.path("nodir", "s"), h.path("st"), "-"),
            ("log.file", h.path("s"), h.path("st"), h.path("nologdir", "shird.log")),
            ("node.state_dir", h.path("s"), h.path("noparent", "st"), "-")):
        text = GOOD.format(name="x", sock=sock, state=state) + "file = %s\n" % log
        conf = h.write("paths.conf", text)
        r = h.run([h.bin("shird"), "-t", "-f", conf], check=1)
        check(key in r.stderr and "does not exist" in r.stderr and "install -d" in r.stderr,
              r.stderr)


@test
def test_shirctl_without_daemon(h):
    """shirctl says plainly when shird is not running"""
    r = ctl(h, h.path("nothing.sock"), "status", check_rc=7)	# 7: not running
    check("shird is not running" in r.stderr, r.stderr)


@test
def test_second_daemon_refused(h):
    """a second shird on the same socket refuses to start"""
    p, conf, sock = start_shird(h)
    r = h.run([h.bin("shird"), "-f", conf], timeout=20)
    check(r.returncode != 0 and "already listening" in r.stderr + r.stdout,
          "second daemon: %s %s", r.stdout, r.stderr)
    check(status_json(h, sock)["name"] == "node-a", "first daemon must keep serving")


if __name__ == "__main__":
    main()
