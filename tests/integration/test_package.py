"""Integration: installing as a Debian service.

Readiness and the watchdog: shird and shir-relay started with NOTIFY_SOCKET (a
datagram socket this test listens on, as systemd's would) and WATCHDOG_USEC
send READY=1 once serving, then WATCHDOG=1 from their event loop.

The packages: `dpkg-buildpackage -us -uc -b` on a copy of the source builds
shir-node and shir-relay; lintian reports no error; `apt-get install ./*.deb`
installs them on this machine (the shir user, /var/lib/shir 0700, /run/shir,
the units enabled); `shird -t` passes on the installed configuration,
`systemd-analyze verify` on the installed units; the installed shird runs as
user shir with the installed paths (shirctl reaches it on /run/shir/shird.sock);
an edited conffile survives a reinstall; everything is purged at the end. The
packages, the build log and lintian's output stay in $SHIR_BUILDDIR/tests/package.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time

from shirtest import BUILDDIR, SRCDIR, check, main, test, TestFailure, free_port

PKGDIR = os.path.join(BUILDDIR, "tests", "package")
APT_LOCK = ["-o", "DPkg::Lock::Timeout=300"]


class NotifyListener:
    """systemd's side of sd_notify: a unix datagram socket; collects the lines."""

    def __init__(self, h):
        self.path = h.path("notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.lines = []
        h.on_cleanup(self.sock.close)

    def env(self, watchdog_usec=400000):
        return {"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": str(watchdog_usec)}

    def count(self, line):
        return sum(1 for x in self.lines if x == line)

    def wait(self, line, n=1, timeout=20):
        end = time.monotonic() + timeout
        while self.count(line) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise TestFailure("timed out after %ss waiting for %d x %r on NOTIFY_SOCKET; "
                                  "got %r" % (timeout, n, line, self.lines))
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.lines.extend(msg.split("\n"))


def check_notify(h, name, argv, ready_log):
    n = NotifyListener(h)
    p = h.start(name, argv, env=n.env())
    n.wait("READY=1")
    p.wait_log(ready_log, after_mark=False)
    check(any(x.startswith("STATUS=") for x in n.lines), "no STATUS= line: %r", n.lines)
    # WATCHDOG_USEC 0.4 s: a ping every 0.2 s from the event loop
    n.wait("WATCHDOG=1", n=4, timeout=10)
    p.wait_log(r"event=watchdog status=armed period_ms=400", after_mark=False)
    before = n.count("WATCHDOG=1")
    p.signal(15)
    p.wait_exit(20)
    return before


@test
def test_shird_notify_ready_and_watchdog(h):
    """shird under NOTIFY_SOCKET: READY=1 once the control socket listens, WATCHDOG=1 pings"""
    conf = h.write("shird.conf", "[node]\nname = n1\ncontrol_socket = %s\nstate_dir = %s\n"
                   "shutdown_timeout = 2\n" % (h.path("shird.sock"), h.path("state")))
    check_notify(h, "shird", [h.bin("shird"), "-f", conf], r"event=listening socket=")


@test
def test_relay_notify_ready_and_watchdog(h):
    """shir-relay under NOTIFY_SOCKET: READY=1 once listening, WATCHDOG=1 pings"""
    conf = h.write("relay.conf", "[relay]\nlisten = 127.0.0.1:%d\nadmin = 127.0.0.1:%d\n"
                   "state_file = %s\n" % (free_port(), free_port(), h.path("state.json")))
    check_notify(h, "relay", [h.bin("shir-relay"), "-f", conf], r"event=ready")


def tool(h, program, package):
    try:
        return h.require(program, package)
    except TestFailure as e:
        raise TestFailure("%s (the package test builds and installs the .debs)" % e)


def copy_source(dst):
    def ignore(d, names):
        skip = [n for n in names if n == "autom4te.cache" or
                os.path.abspath(os.path.join(d, n)) == os.path.abspath(PKGDIR)]
        if os.path.abspath(d) == os.path.abspath(SRCDIR):
            skip += [n for n in names if n.startswith("build") or n == ".git"]
        return skip
    shutil.copytree(SRCDIR, dst, symlinks=True, ignore=ignore)


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return "install ok installed" in r.stdout


@test
def test_debian_packages(h):
    """dpkg-buildpackage builds shir-node and shir-relay; lintian clean; installed, they work; purged"""
    for prog, pkg in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"),
                      ("fakeroot", "fakeroot"), ("lintian", "lintian"),
                      ("systemd-analyze", "systemd"), ("apt-get", "apt"),
                      ("setpriv", "util-linux")):
        tool(h, prog, pkg)
    check(os.geteuid() == 0, "the package test installs .debs: run make check as root")
    for pkg in ("shir-node", "shir-relay"):
        check(not installed(pkg), "%s is already installed on this machine: the test installs "
              "and purges its own build; remove it first (apt-get purge %s)" % (pkg, pkg))
    had_user = {u: _has_user(u) for u in ("shir", "shir-relay")}
    had_dir = {d: os.path.exists(d) for d in ("/var/lib/shir", "/var/lib/shir-relay",
                                                "/run/shir", "/etc/shir")}

    shutil.rmtree(PKGDIR, ignore_errors=True)
    os.makedirs(PKGDIR)
    src = os.path.join(PKGDIR, "shir")
    copy_source(src)
    env = {"DEB_BUILD_OPTIONS": "nocheck parallel=2", "LC_ALL": "C.UTF-8"}
    r = h.run(["sh", "-c", "cd '%s' && dpkg-buildpackage -us -uc -b >../build.log 2>&1" % src],
              env=env, timeout=1200)
    log = open(os.path.join(PKGDIR, "build.log")).read()
    check(r.returncode == 0, "dpkg-buildpackage failed (%s/build.log):\n%s",
          PKGDIR, "\n".join(log.splitlines()[-40:]))
    shutil.rmtree(src, ignore_errors=True)	# keep the packages and logs only
    debs = {d.split("_")[0]: d for d in map(os.path.basename,
                                            glob.glob(os.path.join(PKGDIR, "*.deb")))}
    check("shir-node" in debs and "shir-relay" in debs, "built: %r", debs)
    node_deb = os.path.join(PKGDIR, debs["shir-node"])
    relay_deb = os.path.join(PKGDIR, debs["shir-relay"])

    contents = h.run(["dpkg-deb", "-c", node_deb], check=0).stdout
    for f in ("./usr/sbin/shird", "./usr/bin/shirctl", "./lib/systemd/system/shird.service",
              "./usr/share/man/man8/shird.8.gz", "./usr/share/man/man8/shirctl.8.gz",
              "./usr/share/man/man5/shird.conf.5.gz", "./etc/shir/shird.conf",
              "./etc/shir/diahost.exe.config", "./etc/shir/diawp.exe.config",
              "./usr/lib/sysusers.d/shir-node.conf", "./usr/lib/tmpfiles.d/shir-node.conf",
              "./usr/libexec/shir/shir-pac-helper"):
        check(f in contents, "shir-node lacks %s:\n%s", f, contents)
    contents = h.run(["dpkg-deb", "-c", relay_deb], check=0).stdout
    for f in ("./usr/sbin/shir-relay", "./lib/systemd/system/shir-relay.service",
              "./usr/share/man/man8/shir-relay.8.gz", "./etc/shir/shir-relay.conf"):
        check(f in contents, "shir-relay lacks %s:\n%s", f, contents)
    conffiles = h.run(["sh", "-c", "dpkg-deb --ctrl-tarfile '%s' | tar -xO ./conffiles" % node_deb],
                      check=0).stdout.split()
    check(conffiles == ["/etc/shir/diahost.exe.config", "/etc/shir/diawp.exe.config",
                        "/etc/shir/shird.conf"], "conffiles: %r", conffiles)

    changes = glob.glob(os.path.join(PKGDIR, "*.changes"))
    r = h.run(["lintian", "--tag-display-limit", "0"] + changes, timeout=600)
    open(os.path.join(PKGDIR, "lintian.txt"), "w").write(r.stdout + r.stderr)
    errors = [ln for ln in r.stdout.splitlines() if ln.startswith("E:")]
    check(not errors, "lintian errors:\n%s", "\n".join(errors))

    def purge():
        subprocess.run(["apt-get"] + APT_LOCK + ["purge", "-y", "-qq", "shir-node", "shir-relay"],
                       capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        for u in ("shir", "shir-relay"):
            if not had_user[u] and _has_user(u):
                subprocess.run(["userdel", u], capture_output=True)
                subprocess.run(["groupdel", u], capture_output=True)
        for d, had in had_dir.items():
            if not had:
                shutil.rmtree(d, ignore_errors=True)
    h.on_cleanup(purge)
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    h.run(["apt-get"] + APT_LOCK + ["install", "-y", "-qq", "--no-install-recommends",
                                    node_deb, relay_deb], env=apt_env, timeout=600, check=0)

    # the user, the group, the directories tmpfiles.d made
    pw = pwd.getpwnam("shir")
    check(_has_user("shir-relay"), "no user shir-relay after install")
    st = os.stat("/var/lib/shir")
    check((st.st_mode & 0o777, st.st_uid) == (0o700, pw.pw_uid),
          "/var/lib/shir: mode %o uid %d", st.st_mode & 0o777, st.st_uid)
    st = os.stat("/run/shir")
    check((st.st_mode & 0o777, st.st_gid) == (0o750, pw.pw_gid),
          "/run/shir: mode %o gid %d", st.st_mode & 0o777, st.st_gid)
    check(os.path.islink("/etc/systemd/system/multi-user.target.wants/shird.service"),
          "shird.service is not enabled after install")
    check(os.path.islink("/etc/systemd/system/multi-user.target.wants/shir-relay.service"),
          "shir-relay.service is not enabled after install")

    # the installed paths agree: the unit's ExecStart, the config, the binary's defaults
    unit = open("/lib/systemd/system/shird.service").read()
    check("ExecStart=/usr/sbin/shird -f /etc/shir/shird.conf" in unit and "Type=notify" in unit
          and "WatchdogSec=" in unit, "installed unit:\n%s", unit)
    r = h.run(["/usr/sbin/shird", "-t"], check=0)
    check("/etc/shir/shird.conf: configuration OK" in r.stdout, "shird -t: %r", r.stdout)
    # the PAC sandbox is where shird looks for it, and confines itself there
    r = h.run(["/usr/libexec/shir/shir-pac-helper", "--selftest"], check=None,
              env={"SHIR_PAC_HELPER": ""})
    check(r.returncode == 0, "the installed shir-pac-helper --selftest:\n%s%s", r.stdout, r.stderr)
    h.run(["/usr/sbin/shir-relay", "-t"], check=None)	# the sample needs a TLS key: any verdict
    r = h.run(["systemd-analyze", "verify", "/lib/systemd/system/shird.service",
               "/lib/systemd/system/shir-relay.service"], timeout=120)
    check(r.returncode == 0, "systemd-analyze verify failed:\n%s%s", r.stdout, r.stderr)

    # `shir-relay ir create` as root (the README's first command) leaves the state
    # file to the service's user
    out = h.run(["/usr/sbin/shir-relay", "ir", "create", "pkg-ir"], check=0).stdout
    check("IR@v1@" in out, "ir create printed:\n%s", out)
    st = os.stat("/var/lib/shir-relay/state.json")
    check(st.st_uid == pwd.getpwnam("shir-relay").pw_uid and st.st_mode & 0o777 == 0o600,
          "/var/lib/shir-relay/state.json: uid %d mode %o", st.st_uid, st.st_mode & 0o777)

    # the installed shird as the installed user, with the installed paths
    os.chmod(h.tmp, 0o755)
    n = NotifyListener(h)
    p = h.start("installed-shird", ["setpriv", "--reuid=shir", "--regid=shir", "--init-groups",
                                    "/usr/sbin/shird"], env=n.env(2000000))
    n.wait("READY=1")
    n.wait("WATCHDOG=1", n=2)
    r = h.run(["/usr/bin/shirctl", "status", "--json"], check=None)
    check(r.returncode == 5 and '"NeedsRegistration"' in r.stdout,
          "installed shirctl status (default socket /run/shir/shird.sock): rc %d\n%s%s",
          r.returncode, r.stdout, r.stderr)
    key = "/var/lib/shir/machine.key"
    check(os.path.exists(key) and os.stat(key).st_uid == pw.pw_uid,
          "the machine key is not in /var/lib/shir owned by shir")
    p.signal(15)
    p.wait_exit(20)

    # an edited conffile survives a reinstall (as on upgrade)
    with open("/etc/shir/shird.conf", "a") as f:
        f.write("\n; edited by the admin\n")
    h.run(["apt-get"] + APT_LOCK + ["install", "-y", "-qq", "--reinstall", "-o",
                                    "Dpkg::Options::=--force-confold", node_deb],
          env=apt_env, timeout=600, check=0)
    check("; edited by the admin" in open("/etc/shir/shird.conf").read(),
          "the edited /etc/shir/shird.conf was overwritten by a reinstall")

    purge()
    check(not installed("shir-node") and not os.path.exists("/usr/sbin/shird"),
          "shir-node is still installed after purge")
    check(not os.path.exists("/etc/shir/shird.conf"), "purge left /etc/shir/shird.conf")


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


main()
