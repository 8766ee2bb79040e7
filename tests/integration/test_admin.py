"""Integration: credentials, registration, backups and the admin commands of
shirctl, against a real shird on a temp dir."""
import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import time

from shirtest import check, main, test, TestFailure, wait_until
from squid import Squid

CONF = """\
; a comment that must survive edits
[node]
name = {name}
control_socket = {sock}
state_dir = {state}
shutdown_timeout = 5
[log]
level = debug
"""


def setup(h, name="node-a", start=True):
    sock = h.path("shird.sock")
    conf = h.write("shird.conf", CONF.format(name=name, sock=sock, state=h.path("state")))
    p = None
    if start:
        p = h.start("shird", [h.bin("shird"), "-f", conf])
        p.wait_log(r"event=listening socket=")
        p.wait_log(r"event=admin.started")
    return p, conf, sock


def ctl(h, sock, conf, *args, check_rc=0, input=None):
    return h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf] + list(args),
                 check=check_rc, input=input)


STATUS_RC = {"Online": 0, "Limited": 3, "Offline": 4, "NeedsRegistration": 5, "Starting": 6}


def status_json(h, sock, conf):
    """shirctl status --json, checking that its exit code matches the status"""
    r = ctl(h, sock, conf, "status", "--json", check_rc=None)
    st = json.loads(r.stdout)
    check(r.returncode == STATUS_RC[st["status"]], "status %s exited %d" % (st["status"],
                                                                        r.returncode))
    return st


def api(h, sock, method, path, body=None):
    argv = ["curl", "-s", "--unix-socket", sock, "-X", method, "-w", "\n%{http_code}",
            "http://localhost" + path]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    r = h.run(argv, input=body, check=0)
    text, code = r.stdout.rsplit("\n", 1)
    return int(code), json.loads(text) if text else None


def state_digest(h):
    """A digest of every file under state/ and of shird.conf."""
    d = hashlib.sha256()
    for root, _, files in sorted(os.walk(h.path("state"))):
        for f in sorted(files):
            p = os.path.join(root, f)
            d.update(p.encode())
            with open(p, "rb") as fh:
                d.update(fh.read())
    with open(h.path("shird.conf"), "rb") as fh:
        d.update(fh.read())
    return d.hexdigest()


@test
def test_credentials_api(h):
    """PUT/GET/DELETE /v1/credentials: names and versions, never values"""
    p, conf, sock = setup(h)
    key = h.path("state", "machine.key")
    check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "machine.key must be 0600")
    check(os.path.getsize(key) == 32, "machine.key must hold 32 bytes")
    code, o = api(h, sock, "GET", "/v1/credentials")
    check(code == 200 and o["version"] == 0 and o["credentials"] == [], "empty store: %r", o)
    code, o = api(h, sock, "PUT", "/v1/credentials/sales-reader", '{"value": "Tr0ub4dor&3"}')
    check(code == 200 and o["version"] == 1, "put: %d %r", code, o)
    code, o = api(h, sock, "PUT", "/v1/credentials/sales-reader", '{"value": "n3w-Secret"}')
    check(code == 200 and o["version"] == 2, "replace: %d %r", code, o)
    code, o = api(h, sock, "GET", "/v1/credentials")
    check(code == 200 and o["version"] == 2, "list: %r", o)
    check([c["name"] for c in o["credentials"]] == ["sales-reader"], "names: %r", o)
    check(o["credentials"][0]["version"] == 2, "per-credential version: %r", o)
    check("n3w-Secret" not in json.dumps(o), "a value leaked into the list")
    code, o = api(h, sock, "PUT", "/v1/credentials/bad%20name", '{"value": "x"}')
    check(code == 400 and o["error"]["code"] == "InvalidRequest", "bad name: %d %r", code, o)
    code, o = api(h, sock, "PUT", "/v1/credentials/_node-key", '{"value": "x"}')
    check(code == 400 and "reserved" in o["error"]["message"], "reserved name: %d %r", code, o)
    code, o = api(h, sock, "PUT", "/v1/credentials/x", '{"val": "x"}')
    check(code == 400 and "value" in o["error"]["message"], "bad body: %d %r", code, o)
    code, o = api(h, sock, "DELETE", "/v1/credentials/nope")
    check(code == 404 and o["error"]["code"] == "NotFound", "delete missing: %d %r", code, o)
    code, o = api(h, sock, "DELETE", "/v1/credentials/sales-reader")
    check(code == 200 and o["version"] == 3, "delete: %d %r", code, o)
    st = status_json(h, sock, conf)
    check(st["credentialsVersion"] == 3, "GET /v1/node credentialsVersion: %r", st)
    with open(h.path("state", "credentials"), "rb") as f:
        raw = f.read()
    check(raw.startswith(b"SHIRSEAL") and b"sales-reader" not in raw, "file not encrypted")
    log = p.log()
    check("Tr0ub4dor" not in log and "n3w-Secret" not in log, "a secret reached the log")
    check("event=credential.stored name=sales-reader" in log, "no lifecycle line in the log")


@test
def test_credentials_cli(h):
    """shirctl credentials set/list/delete: value from stdin, through shird or directly"""
    p, conf, sock = setup(h)
    r = ctl(h, sock, conf, "credentials", "set", "db1", input="s3cret-value\n")
    check("stored credential db1 in the running shird" in r.stdout, r.stdout)
    r = ctl(h, sock, conf, "credentials", "set", "db1", "s3cret", check_rc=2)
    check("never taken from the command line" in r.stderr, r.stderr)
    r = ctl(h, sock, conf, "credentials", "set", "db2", input="", check_rc=1)
    check("empty" in r.stderr, r.stderr)
    r = ctl(h, sock, conf, "credentials", "list")
    check("credentials version 1" in r.stdout and "db1" in r.stdout, r.stdout)
    o = json.loads(ctl(h, sock, conf, "credentials", "list", "--json").stdout)
    check(o["version"] == 1 and o["credentials"][0]["name"] == "db1", "%r", o)
    check("s3cret" not in r.stdout, "value printed")
    # stopped: shirctl works on the files directly, and shird sees it later
    p.signal(signal.SIGTERM)
    p.wait_exit()
    r = ctl(h, sock, conf, "credentials", "set", "db2", input="other")
    check("shird is not running" in r.stdout, r.stdout)
    r = ctl(h, sock, conf, "credentials", "delete", "db1")
    check("deleted credential db1" in r.stdout, r.stdout)
    r = ctl(h, sock, conf, "credentials", "list")
    check("credentials version 3" in r.stdout and "db2" in r.stdout and "db1" not in r.stdout,
          r.stdout)
    p2 = h.start("shird2", [h.bin("shird"), "-f", conf])
    p2.wait_log(r"event=admin.started")
    code, o = api(h, sock, "GET", "/v1/credentials")
    check(o["version"] == 3 and [c["name"] for c in o["credentials"]] == ["db2"], "%r", o)
    r = ctl(h, sock, conf, "credentials", "delete", "nope", check_rc=1)
    check("404" in r.stderr and "no credential named nope" in r.stderr, r.stderr)


def run_on_tty(argv, answers, timeout=20):
    """Runs argv on a new pseudo-terminal, answering each prompt in turn;
    returns everything the terminal showed."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out = b""
    answered = 0
    end = time.monotonic() + timeout
    answers = list(answers)
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                continue
            try:
                d = os.read(fd, 4096)
            except OSError:
                break
            if not d:
                break
            out += d
            # answer each prompt once: only output after the last answer counts
            if answers and out[answered:].rstrip().endswith(b":"):
                os.write(fd, answers.pop(0).encode() + b"\n")
                answered = len(out)
    finally:
        if time.monotonic() >= end:
            os.kill(pid, signal.SIGKILL)
        _, st = os.waitpid(pid, 0)
        os.close(fd)
    return out.decode("utf-8", "replace"), os.waitstatus_to_exitcode(st)


@test
def test_secret_prompt_does_not_echo(h):
    """credentials set on a terminal: asks twice without echo; a mismatch stores nothing"""
    p, conf, sock = setup(h)
    argv = [h.bin("shirctl"), "--socket", sock, "--conf", conf, "credentials", "set", "db9"]
    out, rc = run_on_tty(argv, ["tty-s3cret", "tty-s3cret"])
    check(rc == 0 and "stored credential db9" in out, "rc %d: %r", rc, out)
    check("Value of credential db9:" in out and "Again:" in out, "%r", out)
    check("tty-s3cret" not in out, "the secret was echoed: %r", out)
    out, rc = run_on_tty(argv, ["one", "two"])
    check(rc == 1 and "differ" in out, "rc %d: %r", rc, out)
    code, o = api(h, sock, "GET", "/v1/credentials")
    check(o["version"] == 1, "a mismatch changed the store: %r", o)


@test
def test_machine_key_mode_refused(h):
    """shird refuses a machine key that group or others can read"""
    _, conf, sock = setup(h, start=False)
    os.makedirs(h.path("state"), mode=0o700)
    with open(h.path("state", "machine.key"), "wb") as f:
        f.write(os.urandom(32))
    os.chmod(h.path("state", "machine.key"), 0o644)
    r = h.run([h.bin("shird"), "-f", conf], timeout=20)
    out = r.stdout + r.stderr
    check(r.returncode != 0, "shird must not start")
    check("group or others may read it" in out and "chmod 600" in out, out)


@test
def test_credentials_survive_kill9(h):
    """kill -9 during writes in a loop: the file is always the old or the new version"""
    state = h.path("state")
    rnd = random.Random(7)
    last_ok = 0
    for i in range(25):
        # unbuffered: readline must not take lines that communicate() then misses
        w = subprocess.Popen([h.bin("credwriter"), state, "write"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0)
        try:
            # let it commit a few writes, then kill it at a random moment
            need = rnd.randint(1, 4)
            seen = 0
            while seen < need:
                if not w.stdout.readline():
                    raise TestFailure("writer exited: %s" % w.stderr.read())
                seen += 1
            time.sleep(rnd.random() * 0.02)
            w.kill()
            out, _ = w.communicate()
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        printed = out.split()
        committed = last_ok + seen + len(printed)
        r = h.run([h.bin("credwriter"), state, "check"])
        check(r.returncode == 0, "round %d: the store does not open after kill -9: %s", i,
              r.stderr)
        ver, val = r.stdout.split()
        ver = int(ver)
        # the writer's N restarts at 1 each run; the store version keeps growing
        check(ver in (committed, committed + 1),
              "round %d: version %d, expected %d or %d", i, ver, committed, committed + 1)
        check(val.startswith("value-"), "round %d: value %r", i, val)
        last_ok = ver
    # the next write sweeps the temp files the killed writers left
    r = h.run([h.bin("credwriter"), state, "write", "other", "1"], check=0)
    leftovers = [f for f in os.listdir(state) if ".tmp-" in f]
    check(leftovers == [], "temp files left after a write: %r", leftovers)


@test
def test_credentials_concurrent_writers(h):
    """three processes writing at once: no change is lost (the store is locked)"""
    state = h.path("state")
    ws = [subprocess.Popen([h.bin("credwriter"), state, "write", "w%d" % i, "40"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(3)]
    for w in ws:
        _, err = w.communicate(timeout=60)
        check(w.returncode == 0, "a writer failed: %s", err)
    _, conf, sock = setup(h, start=False)
    r = ctl(h, sock, conf, "credentials", "list")
    check("credentials version 120" in r.stdout, r.stdout)
    for i in range(3):
        check("w%d " % i in r.stdout, r.stdout)
    check("version 40 " in r.stdout, r.stdout)


@test
def test_backup_round_trip(h):
    """backup create/import (and -gbf/-ibf): restores credentials and settings"""
    p, conf, sock = setup(h)
    ctl(h, sock, conf, "credentials", "set", "db1", input="first")
    ctl(h, sock, conf, "credentials", "set", "api", input="tok")
    r = ctl(h, sock, conf, "backup", "create", h.path("b1.shirbak"), input="pw-1\n")
    check("wrote" in r.stdout and "credential" in r.stdout, r.stdout)
    with open(h.path("b1.shirbak"), "rb") as f:
        raw = f.read()
    check(raw.startswith(b"SHIRSEAL") and b"first" not in raw and b"db1" not in raw,
          "backup not encrypted")
    check(stat.S_IMODE(os.stat(h.path("b1.shirbak")).st_mode) == 0o600, "backup must be 0600")
    r = ctl(h, sock, conf, "-GBF", h.path("b2.shirbak"), input="pw-2")
    check(os.path.exists(h.path("b2.shirbak")), "-GBF (case-insensitive) wrote nothing")
    # dmgcmd's -gbf FILE PASSWORD: the password never comes from the command line, and
    # shirctl says where it does come from
    r = ctl(h, sock, conf, "-gbf", h.path("b3.shirbak"), "pw-3", check_rc=2)
    check("never taken from the command line" in r.stderr and "standard input" in r.stderr,
          r.stderr)
    check(not os.path.exists(h.path("b3.shirbak")), "-gbf FILE PASSWORD wrote a file")
    ctl(h, sock, conf, "-GenerateBackupFile", h.path("b4.shirbak"), input="pw-4")
    r = ctl(h, sock, conf, "-ImportBackupFile", h.path("b4.shirbak"), input="pw-4")
    check("imported" in r.stdout, r.stdout)
    # change things, then import
    ctl(h, sock, conf, "credentials", "delete", "db1")
    ctl(h, sock, conf, "credentials", "set", "api", input="changed")
    with open(conf, "a") as f:
        f.write("[security]\nlocal_machine_access = true\n")
    r = ctl(h, sock, conf, "backup", "import", h.path("b1.shirbak"), input="pw-1")
    check("imported" in r.stdout and "applied to the running shird" in r.stdout, r.stdout)
    code, o = api(h, sock, "GET", "/v1/credentials")
    check(sorted(c["name"] for c in o["credentials"]) == ["api", "db1"], "%r", o)
    check(o["version"] > 4, "the version must keep growing: %r", o)
    with open(conf) as f:
        text = f.read()
    check("local_machine_access" not in text and "; a comment" in text, text)
    r = ctl(h, sock, conf, "-ibf", h.path("b2.shirbak"), input="pw-2")
    check("imported" in r.stdout, r.stdout)
    p.wait_log(r"event=reload status=done")
    # the custom proxy's password file travels in the backup too
    ctl(h, sock, conf, "proxy", "set", "custom", "--address", "p.example", "--port", "3128",
        "--user", "svc", input="proxy-secret")
    ctl(h, sock, conf, "backup", "create", h.path("b3.shirbak"), input="pw-3")
    with open(h.path("b3.shirbak"), "rb") as f:
        check(b"proxy-secret" not in f.read(), "the proxy password is in the backup in clear")
    os.unlink(h.path("state", "proxy.password"))
    ctl(h, sock, conf, "proxy", "set", "none")
    ctl(h, sock, conf, "backup", "import", h.path("b3.shirbak"), input="pw-3")
    with open(h.path("state", "proxy.password")) as f:
        check(f.read() == "proxy-secret", "the proxy password was not restored")
    check(stat.S_IMODE(os.stat(h.path("state", "proxy.password")).st_mode) == 0o600, "mode")
    check("mode = custom" in conf_text(conf), conf_text(conf))


@test
def test_backup_wrong_password_and_tamper(h):
    """a wrong password or a changed byte: a clear error and nothing changes"""
    p, conf, sock = setup(h)
    ctl(h, sock, conf, "credentials", "set", "db1", input="first")
    ctl(h, sock, conf, "backup", "create", h.path("b.shirbak"), input="right")
    ctl(h, sock, conf, "credentials", "set", "db1", input="second")
    before = state_digest(h)
    r = ctl(h, sock, conf, "backup", "import", h.path("b.shirbak"), input="wrong", check_rc=1)
    check("wrong password" in r.stderr and "nothing was changed" in r.stderr, r.stderr)
    check(state_digest(h) == before, "a wrong password changed files")
    with open(h.path("b.shirbak"), "rb") as f:
        raw = bytearray(f.read())
    for off in (0, 9, 14, 40, len(raw) // 2, len(raw) - 1):
        bad = bytearray(raw)
        bad[off] ^= 0x20
        h.write("t.shirbak", "")
        with open(h.path("t.shirbak"), "wb") as f:
            f.write(bad)
        r = ctl(h, sock, conf, "-ibf", h.path("t.shirbak"), input="right", check_rc=1)
        check("nothing was changed" in r.stderr or "not a shir" in r.stderr, "offset %d: %s",
              off, r.stderr)
        check(state_digest(h) == before, "a tampered byte at %d changed files", off)
    with open(h.path("t.shirbak"), "wb") as f:
        f.write(raw[:len(raw) - 5])
    r = ctl(h, sock, conf, "-ibf", h.path("t.shirbak"), input="right", check_rc=1)
    check(state_digest(h) == before, "a truncated backup changed files")
    r = ctl(h, sock, conf, "backup", "import", h.path("b.shirbak"), "right", check_rc=2)
    check("never taken from the command line" in r.stderr, r.stderr)


def make_key(ir="sales-ir", endpoint="wss://relay.example:443", hc=None, key_name="node-key1",
             key="c2VjcmV0LWtleS1ieXRlcw==", tls_pin=None):
    import base64
    o = {"ir": ir, "endpoint": endpoint, "hc": hc or ir, "keyName": key_name, "key": key}
    if tls_pin:
        o["tlsPin"] = tls_pin
    b = base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("=")
    return "IR@v1@" + b


def conf_text(conf):
    with open(conf) as f:
        return f.read()


@test
def test_remote_access(h):
    """-era/-dra and remote-access enable/disable: stored in shird.conf, reloaded"""
    p, conf, sock = setup(h)
    r = ctl(h, sock, conf, "-era", "8061")
    check("remote_access = true" in r.stdout and "opens the node-to-node port on reload" in
          r.stdout, r.stdout)
    p.wait_log(r"event=reload status=done")
    t = conf_text(conf)
    check("remote_access = true" in t and "remote_access_port = 8061" in t, t)
    check("; a comment that must survive edits" in t, "the comment was lost:\n%s", t)
    r = ctl(h, sock, conf, "remote-access", "show")
    check("enabled, port 8061" in r.stdout, r.stdout)
    ctl(h, sock, conf, "-DisableRemoteAccess")
    check("remote_access = false" in conf_text(conf), conf_text(conf))
    ctl(h, sock, conf, "-EnableRemoteAccess", "8065")
    check("remote_access = true" in conf_text(conf), conf_text(conf))
    ctl(h, sock, conf, "-dra")
    check("remote_access = false" in conf_text(conf), conf_text(conf))
    ctl(h, sock, conf, "remote-access", "enable", "--port", "8066")
    ctl(h, sock, conf, "remote-access", "disable")
    t = conf_text(conf)
    check("remote_access = false" in t and "remote_access_port = 8066" in t, t)
    cert = h.path("node.pem")
    h.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cert,
           "-out", cert, "-days", "2", "-subj", "/CN=node-a"], check=0)
    r = ctl(h, sock, conf, "remote-access", "enable", "--port", "8062", "--cert", cert)
    t = conf_text(conf)
    check("remote_access_cert = %s" % cert in t and "remote_access_port = 8062" in t, t)
    r = ctl(h, sock, conf, "-era", "8063", conf, check_rc=1)
    check("no PEM certificate" in r.stderr, r.stderr)
    # the certificate alone is not enough: shird presents it, so its key must be there
    h.run(["openssl", "x509", "-in", cert, "-out", h.path("nokey.pem")], check=0)
    r = ctl(h, sock, conf, "-era", "8063", h.path("nokey.pem"), check_rc=1)
    check("no private key matching its certificate" in r.stderr, r.stderr)
    ctl(h, sock, conf, "-eraic", "8064")
    check("remote_access_port = 8064" in conf_text(conf), conf_text(conf))
    r = ctl(h, sock, conf, "-era", "99999", check_rc=1)
    check("not a TCP port" in r.stderr, r.stderr)
    check("remote_access_port = 8064" in conf_text(conf), "a refused change was written")


@test
def test_local_access_and_folders(h):
    """-elma/-dlma, folder validation flags, allowed-folders: shird.conf edited and reloaded"""
    p, conf, sock = setup(h)
    for argv, key, val in [(["-ELMA"], "local_machine_access", "true"),
                           (["local-machine-access", "disable"], "local_machine_access", "false"),
                           (["-EnableLocalMachineAccess"], "local_machine_access", "true"),
                           (["-dlma"], "local_machine_access", "false"),
                           (["-DisableLocalFolderPathValidation"], "local_folder_path_validation",
                            "false"),
                           (["local-folder-path-validation", "enable"],
                            "local_folder_path_validation", "true"),
                           (["local-folder-path-validation", "disable"],
                            "local_folder_path_validation", "false"),
                           (["-enablelocalfolderpathvalidation"], "local_folder_path_validation",
                            "true")]:
        p.mark()
        r = ctl(h, sock, conf, *argv)
        check("applied to the running shird" in r.stdout, "%s: %s", argv, r.stdout)
        p.wait_log(r"event=reload status=done")
        check("%s = %s" % (key, val) in conf_text(conf), "%s:\n%s", argv, conf_text(conf))
    r = ctl(h, sock, conf, "local-machine-access", "show")
    check("disabled" in r.stdout, r.stdout)
    log = p.log()
    check("level=warn sub=admin event=security.changed setting=local_folder_path_validation old=on "
          "new=off" in log, "turning validation off must be logged")
    check("event=security.changed setting=local_machine_access old=off new=on" in log, "lma log")
    ctl(h, sock, conf, "allowed-folders", "add", "/srv/data/")
    ctl(h, sock, conf, "allowed-folders", "add", "/mnt/share")
    check("allowed_folders = /srv/data:/mnt/share" in conf_text(conf), conf_text(conf))
    r = ctl(h, sock, conf, "allowed-folders", "list")
    check("  /srv/data\n  /mnt/share\n" in r.stdout and "enabled" in r.stdout, r.stdout)
    ctl(h, sock, conf, "allowed-folders", "remove", "/srv/data")
    check("allowed_folders = /mnt/share\n" in conf_text(conf), conf_text(conf))
    r = ctl(h, sock, conf, "allowed-folders", "add", "relative/dir", check_rc=1)
    r = ctl(h, sock, conf, "allowed-folders", "set", "/a:relative", check_rc=1)
    check("not an absolute path" in r.stderr and "nothing was written" in r.stderr, r.stderr)
    # shird itself reloaded a bad file? no: the edit was refused before writing
    check("allowed_folders = /mnt/share\n" in conf_text(conf), conf_text(conf))


@test
def test_explanations(h):
    """-ssa and the auto-update flags explain instead of pretending"""
    _, conf, sock = setup(h, start=False)
    for flag in ("-ssa", "switch-service-account", "-SwitchServiceAccount"):
        r = ctl(h, sock, conf, flag)
        check("systemctl edit shird" in r.stdout and "User=" in r.stdout, r.stdout)
    for flag in ("-tonau", "-toffau", "-TurnOnAutoUpdate", "-TurnOffAutoUpdate", "-sus", "-tus",
                 "auto-update", "upgrade-service"):
        r = ctl(h, sock, conf, flag)
        check("package manager" in r.stdout, "%s: %s", flag, r.stdout)


@test
def test_start_stop_restart(h):
    """-s/-t/-r and start/stop/restart drive shird with signals when there is no systemd"""
    _, conf, sock = setup(h, start=False)
    env = {"SHIRCTL_SERVICE_MANAGER": "none"}
    pids = []

    def killall():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    h.on_cleanup(killall)

    def pid():
        v = status_json(h, sock, conf)["pid"]
        pids.append(v)
        return v
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "-s"], env=env, check=0)
    check("shird is running" in r.stdout, r.stdout + r.stderr)
    p1 = pid()
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "-r"], env=env, check=0)
    p2 = pid()
    check(p2 != p1, "restart kept pid %d", p1)
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "restart"], env=env, check=0)
    p3 = pid()
    check(p3 != p2, "restart kept pid %d", p2)
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "-t"], env=env, check=0)
    check("shird stopped" in r.stdout, r.stdout)
    r = ctl(h, sock, conf, "status", check_rc=7)	# 7: shird is not running
    check("shird is not running" in r.stderr, r.stderr)
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "stop"], env=env, check=0)
    check("not running" in r.stdout, r.stdout)
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "start"], env=env, check=0)
    pid()
    with open(h.path("state", "shird.log")) as f:
        check("event=listening" in f.read(), "the started shird logs to state/shird.log")
    h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "-Stop"], env=env, check=0)
    # systemd when it is there: the exact systemctl call is shown
    r = h.run([h.bin("shirctl"), "--socket", sock, "--conf", conf, "-r"],
              env={"SHIRCTL_SERVICE_MANAGER": "systemd", "PATH": h.path("nobin")})
    check("systemctl restart shird.service" in r.stdout and r.returncode != 0,
          r.stdout + r.stderr)


@test
def test_proxy_set(h):
    """proxy set custom/system/none: shird.conf edited, password into a 0600 file, reload"""
    p, conf, sock = setup(h)
    r = ctl(h, sock, conf, "proxy", "set", "custom", "--address", "proxy.corp.example",
            "--port", "3128", "--user", "svc-shir", input="Pr0xy-Pw\n")
    check("applied to the running shird" in r.stdout, r.stdout + r.stderr)
    p.wait_log(r"event=reload status=done")
    t = conf_text(conf)
    for want in ("mode = custom", "address = proxy.corp.example", "port = 3128",
                 "user = svc-shir", "password_file = %s" % h.path("state", "proxy.password")):
        check(want in t, "%s missing:\n%s", want, t)
    check("Pr0xy-Pw" not in t, "the password is in shird.conf")
    pwf = h.path("state", "proxy.password")
    check(stat.S_IMODE(os.stat(pwf).st_mode) == 0o600, "password file mode")
    with open(pwf) as f:
        check(f.read() == "Pr0xy-Pw", "password file content")
    st = status_json(h, sock, conf)
    check(st["proxyMode"] == "custom", "status: %r", st)
    check("Pr0xy-Pw" not in p.log(), "the password reached the log")
    r = ctl(h, sock, conf, "proxy", "set", "custom", "--address", "p", "--port", "1",
            "--password", "x", check_rc=2)
    check("never taken from the command line" in r.stderr, r.stderr)
    ctl(h, sock, conf, "proxy", "set", "none")
    t = conf_text(conf)
    check("mode = none" in t, t)
    st = status_json(h, sock, conf)
    check(st["proxyMode"] == "none" and st["reloads"] >= 2, "status: %r", st)


@test
def test_register_offline_and_switch_key(h):
    """-rn with --skip-test stores node.json (no secret) and the key encrypted; -k switches"""
    p, conf, sock = setup(h)
    st = status_json(h, sock, conf)
    check(st["status"] == "NeedsRegistration" and not st["registration"]["registered"], "%r", st)
    r = ctl(h, sock, conf, "-rn", "--skip-test", "IR@v1@bm90LWpzb24", check_rc=1)
    check("not a valid node key" in r.stderr, r.stderr)
    key = make_key()
    r = ctl(h, sock, conf, "-rn", "--skip-test", "-", "x" * 129, input=key, check_rc=1)
    check("node name" in r.stderr, r.stderr)
    r = ctl(h, sock, conf, "-RegisterNewNode", "--skip-test", "-", "node-x", input=key + "\n")
    check("registered node node-x to integration runtime sales-ir" in r.stdout, r.stdout + r.stderr)
    check("applied to the running shird" in r.stdout, r.stdout)
    with open(h.path("state", "node.json")) as f:
        nj = json.load(f)
    check(nj["ir"] == "sales-ir" and nj["nodeName"] == "node-x" and nj["keyName"] == "node-key1",
          "%r", nj)
    check("c2VjcmV0" not in json.dumps(nj), "the key is in node.json in clear")
    st = status_json(h, sock, conf)
    check(st["registration"]["registered"] and st["registration"]["ir"] == "sales-ir", "%r", st)
    code, o = api(h, sock, "GET", "/v1/credentials")
    check(o["credentials"] == [], "the node key must not be listed: %r", o)
    check("c2VjcmV0" not in p.log(), "the key reached the log")
    key2 = make_key(key_name="node-key2", key="b3RoZXIta2V5")
    r = ctl(h, sock, conf, "-k", "--skip-test", "-", input=key2)
    check("registered node node-x" in r.stdout, "switch-key keeps the node name: %s", r.stdout)
    code, o = api(h, sock, "GET", "/v1/node/registration")
    check(o["keyName"] == "node-key2" and o["nodeName"] == "node-x", "%r", o)
    r = ctl(h, sock, conf, "switch-key", "--skip-test", key, check_rc=0)
    check("visible to other users" in r.stderr, r.stderr)
    code, o = api(h, sock, "GET", "/v1/node/registration")
    check(o["keyName"] == "node-key1", "%r", o)


@test
def test_diagnose_unknown_endpoint(h):
    """diagnose: an endpoint whose name does not resolve breaks at dns"""
    _, conf, sock = setup(h, start=False)
    ctl(h, sock, conf, "register-node", "--skip-test", "-",
        input=make_key(endpoint="wss://relay-does-not-exist.invalid:443"))
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("=> broken at dns" in r.stdout and "relay-does-not-exist.invalid" in r.stdout, r.stdout)
    r = ctl(h, sock, conf, "-ts", "--json", check_rc=1)
    o = json.loads(r.stdout)
    check(len(o["endpoints"]) == 1 and o["endpoints"][0]["broken"] == "dns" and
          o["endpoints"][0]["what"] == "registration", "%r", o)
    # and register-node without --skip-test refuses it
    r = ctl(h, sock, conf, "-rn", "-", input=make_key(endpoint="wss://other.invalid"), check_rc=1)
    check("not registered" in r.stderr and "broken at dns" in r.stdout, r.stdout + r.stderr)


@test
def test_diagnose_dead_proxy(h):
    """diagnose: a custom proxy that does not listen breaks at tcp, naming the proxy"""
    from shirtest import free_port
    _, conf, sock = setup(h, start=False)
    port = free_port()
    with open(conf, "a") as f:
        f.write("[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n" % port)
    ctl(h, sock, conf, "register-node", "--skip-test", "-", input=make_key())
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("proxy    ok       through http://127.0.0.1:%d" % port in r.stdout, r.stdout)
    check("=> broken at tcp: cannot connect to the proxy 127.0.0.1:%d" % port in r.stdout,
          r.stdout)
    check("refused" in r.stdout, r.stdout)


@test
def test_service_urls(h):
    """service-urls: text/json, proxy rows, and rules that nft -c and iptables-restore --test accept"""
    # as root the checks run as they are; otherwise in a user and network
    # namespace of their own (nft -c and iptables-restore --test need CAP_NET_ADMIN)
    wrap = [] if os.geteuid() == 0 else [h.require("unshare", "util-linux"), "-rn"]
    nft = h.require("nft", "nftables")
    ipr = h.require("iptables-restore", "iptables")
    ip6r = h.require("ip6tables-restore", "iptables")
    _, conf, sock = setup(h, start=False)
    r = ctl(h, sock, conf, "service-urls", check_rc=1)
    check("not registered" in r.stderr, r.stderr)
    ctl(h, sock, conf, "-rn", "--skip-test", "-",
        input=make_key(endpoint="wss://localhost:9443"))
    with open(h.path("state", "service-hosts.json"), "w") as f:
        json.dump({"hosts": [{"host": "127.0.0.2", "port": 443, "purpose": "rendezvous",
                              "lastSeen": 1700000000}]}, f)
    r = ctl(h, sock, conf, "service-urls")
    check("localhost" in r.stdout and "9443" in r.stdout and "relay endpoint" in r.stdout,
          r.stdout)
    check("127.0.0.2" in r.stdout and "rendezvous" in r.stdout, r.stdout)
    o = json.loads(ctl(h, sock, conf, "service-urls", "--format", "json", "--resolve").stdout)
    rows = {(s["host"], s["port"]): s for s in o["services"]}
    check(("localhost", 9443) in rows and "127.0.0.1" in rows[("localhost", 9443)]["addresses"],
          "%r", o)
    r = ctl(h, sock, conf, "service-urls", "--format", "nftables", check_rc=2)
    check("--resolve" in r.stderr, r.stderr)
    os.environ["SHIRCTL_RESOLV_CONF"] = h.write("resolv.conf", "search corp\nnameserver 192.0.2.53\n"
                                                "nameserver 2001:db8::53\nnameserver bogus\n")
    h.on_cleanup(lambda: os.environ.pop("SHIRCTL_RESOLV_CONF", None))
    out = ctl(h, sock, conf, "service-urls", "--resolve", "--format", "nftables").stdout
    check("ip daddr 127.0.0.1 tcp dport 9443 accept" in out, out)
    check("ip daddr 192.0.2.53 udp dport 53 accept" in out and
          "ip6 daddr 2001:db8::53 tcp dport 53 accept" in out and "bogus" not in out, out)
    check("ip daddr 127.0.0.2 tcp dport 443 accept" in out, out)
    f = h.write("rules.nft", out)
    r = h.run(wrap + [nft, "-c", "-f", f])
    check(r.returncode == 0, "nft -c refused the rules: %s\n%s", r.stderr, out)
    # loaded twice (into a network namespace of this test's own): replaced, not doubled
    netns = [h.require("unshare", "util-linux"), "-rn" if os.geteuid() else "-n"]
    r = h.run(netns + ["sh", "-c", '%s -f "$1" && %s -f "$1" && %s list table inet shir' %
                       (nft, nft, nft), "sh", f], check=0)
    check(r.stdout.count("tcp dport 9443 accept") == 1, "loaded twice:\n%s" % r.stdout)
    h.write("bad.nft", out.replace("accept comment", "acept comment"))
    check(h.run(wrap + [nft, "-c", "-f", h.path("bad.nft")]).returncode != 0,
          "nft -c accepts anything?")
    out = ctl(h, sock, conf, "service-urls", "--resolve", "--format", "iptables").stdout
    check("-A SHIR-EGRESS -d 127.0.0.1/32 -p tcp -m tcp --dport 9443" in out, out)
    r = h.run(wrap + [ipr, "--test", "--noflush"], input=out)
    check(r.returncode == 0, "iptables-restore --test refused the rules: %s\n%s", r.stderr, out)
    r = h.run(wrap + [ipr, "--test", "--noflush"], input=out.replace("--dport", "--dprt"))
    check(r.returncode != 0, "iptables-restore --test accepts anything?")
    out = ctl(h, sock, conf, "service-urls", "--resolve", "--format", "ip6tables").stdout
    r = h.run(wrap + [ip6r, "--test", "--noflush"], input=out)
    check(r.returncode == 0, "ip6tables-restore --test refused the rules: %s\n%s", r.stderr, out)
    # through a custom proxy: the relay is reached through it, only the proxy is direct
    # (loopback names always bypass the proxy, as on Windows)
    with open(conf, "a") as fh:
        fh.write("[proxy]\nmode = custom\naddress = 127.0.0.3\nport = 3128\n")
    ctl(h, sock, conf, "-k", "--skip-test", "-", input=make_key(endpoint="wss://relay.example:9443"))
    o = json.loads(ctl(h, sock, conf, "service-urls", "--format", "json").stdout)
    # --json, as every command that prints data, is the same document
    check(json.loads(ctl(h, sock, conf, "service-urls", "--json").stdout) == o, "--json differs")
    rows = {(s["host"], s["port"]): s for s in o["services"]}
    check(rows[("relay.example", 9443)]["via"] == "127.0.0.3:3128", "%r", o)
    check(rows[("127.0.0.2", 443)]["via"] is None, "loopback goes direct: %r", o)
    check(rows[("127.0.0.3", 3128)]["purpose"] == "proxy" and rows[("127.0.0.3", 3128)]["via"] is None,
          "%r", o)
    out = ctl(h, sock, conf, "service-urls", "--resolve", "--format", "nftables").stdout
    check("127.0.0.3 tcp dport 3128 accept" in out and "9443" not in out, out)
    check(h.run(wrap + [nft, "-c", "-f", h.write("p.nft", out)]).returncode == 0, out)


def make_cert(h, name="relay"):
    crt, key = h.path(name + ".crt"), h.path(name + ".key")
    h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=0)
    return crt, key


def spki_pin(h, crt):
    import base64
    import hashlib
    der = h.run(["sh", "-c", "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin "
                 "-outform der | base64 -w0" % crt], check=0).stdout
    return "sha256/" + base64.b64encode(hashlib.sha256(base64.b64decode(der)).digest()).decode()


def start_tls_server(h, crt, key):
    from shirtest import free_port, wait_port
    openssl = h.require("openssl", "openssl")
    port = free_port()
    h.start("s_server", [openssl, "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", crt,
                         "-key", key, "-www", "-quiet"])
    wait_port(port)
    return port


@test
def test_diagnose_tls_and_listen(h):
    """diagnose: an untrusted certificate and a wrong pin break at tls; a non-relay at listen"""
    _, conf, sock = setup(h, start=False)
    crt, key = make_cert(h)
    port = start_tls_server(h, crt, key)
    ep = "wss://localhost:%d" % port
    ctl(h, sock, conf, "-rn", "--skip-test", "-", input=make_key(endpoint=ep))
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("=> broken at tls" in r.stdout and "not signed by a CA this node trusts" in r.stdout, r.stdout)
    check("tcp      ok       connected to the relay localhost:%d" % port in r.stdout, r.stdout)
    with open(conf, "a") as f:
        f.write("[relay]\nca_file = %s\n" % crt)
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("tls      ok" in r.stdout, r.stdout)
    check("=> broken at listen" in r.stdout and "instead of 101" in r.stdout, r.stdout)
    pin = spki_pin(h, crt)
    ctl(h, sock, conf, "-k", "--skip-test", "-", input=make_key(endpoint=ep, tls_pin=pin))
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("matches the key's pin" in r.stdout and "broken at listen" in r.stdout, r.stdout)
    other = "sha256/" + "A" * 43 + "="
    ctl(h, sock, conf, "-k", "--skip-test", "-", input=make_key(endpoint=ep, tls_pin=other))
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("=> broken at tls" in r.stdout and "its key does not match the pin" in r.stdout, r.stdout)


def start_squid(h, user, password, hosts=None):
    """squid with Basic proxy auth resolving hosts itself; returns its port once
    it asks for proxy authentication"""
    sq = Squid(h, auth="basic", user=user, password=password, hosts=hosts or {},
               extra=["visible_hostname shir-test"], wait_auth=True)
    return sq.port


@test
def test_diagnose_proxy_auth(h):
    """diagnose through squid: a wrong proxy password breaks at connect with 407"""
    _, conf, sock = setup(h, start=False)
    port = start_squid(h, "svc-shir", "right-pw")
    ctl(h, sock, conf, "proxy", "set", "custom", "--address", "127.0.0.1", "--port", str(port),
        "--user", "svc-shir", "--auth", "basic", input="wrong-pw")
    ctl(h, sock, conf, "-rn", "--skip-test", "-", input=make_key(endpoint="wss://relay.example"))
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("tcp      ok       connected to the proxy 127.0.0.1:%d" % port in r.stdout, r.stdout)
    check("=> broken at connect" in r.stdout and "answered 407" in r.stdout, r.stdout)
    check("wrong-pw" not in r.stdout + r.stderr, "the proxy password was printed")
    ctl(h, sock, conf, "proxy", "set", "custom", "--address", "127.0.0.1", "--port", str(port),
        "--user", "svc-shir", "--auth", "basic", input="right-pw")
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    # squid now lets us in and fails to reach the (unresolvable) relay itself
    check("=> broken at connect" in r.stdout and "answered 407" not in r.stdout and
          "answered 5" in r.stdout and "to CONNECT relay.example:443" in r.stdout, r.stdout)


@test
def test_register_round_trip_with_shir_relay(h):
    """-rn against shir-relay: listen handshake ok, stored, shird told; a rotated key breaks at listen"""
    import relaytest
    relay = relaytest.Relay(h)
    out = relay.cli("ir", "create", "sales-ir").stdout
    keys = {}
    for w in out.split():
        if w.startswith("IR@v1@"):
            keys[relaytest.decode_key(w)["keyName"]] = w
    check(set(keys) == {"node-key1", "node-key2", "service-key"}, out)
    rp = relay.start()
    p, conf, sock = setup(h)
    r = ctl(h, sock, conf, "register-node", "-", "edge-1", input=keys["node-key1"])
    check("listen   ok       the relay accepted the node key (node-key1)" in r.stdout,
          r.stdout + r.stderr)
    check("registered node edge-1 to integration runtime sales-ir" in r.stdout, r.stdout)
    rp.wait_log(r"event=listener.connected hc=sales-ir id=shirctl-check-")
    rp.wait_log(r"event=listener.closed hc=sales-ir id=shirctl-check-\S+ code=1000")
    code, o = api(h, sock, "GET", "/v1/node/registration")
    check(o["registered"] and o["ir"] == "sales-ir" and o["nodeName"] == "edge-1" and
          o["endpoint"] == "ws://127.0.0.1:%d" % relay.port and o["keyName"] == "node-key1", "%r", o)
    p.wait_log(r"event=registration.applied registered=1 ir=sales-ir")
    st = status_json(h, sock, conf)
    check(st["name"] == "node-a" and st["registration"]["nodeName"] == "edge-1", "%r", st)
    r = ctl(h, sock, conf, "diagnose")
    check("=> the node can reach the relay and listen" in r.stdout, r.stdout)
    # a service key is not a node key: refused, registration unchanged
    r = ctl(h, sock, conf, "-k", "-", input=keys["service-key"], check_rc=1)
    check("broken at listen" in r.stdout and "403" in r.stdout and "not registered" in r.stderr,
          r.stdout + r.stderr)
    code, o = api(h, sock, "GET", "/v1/node/registration")
    check(o["keyName"] == "node-key1", "a refused key changed the registration: %r", o)
    # the relay rotates key1: the node's key is now wrong
    relay.cli("ir", "regenerate-key", "sales-ir", "key1")
    rp.wait_log(r"event=state\.reload status=done")
    r = ctl(h, sock, conf, "diagnose", check_rc=1)
    check("=> broken at listen" in r.stdout and "401" in r.stdout and
          "run `shirctl register-node KEY`" in r.stdout, r.stdout)
    # switch to key2, which still works
    r = ctl(h, sock, conf, "-Key", "-", input=keys["node-key2"])
    check("listen   ok" in r.stdout and "registered node edge-1" in r.stdout, r.stdout)
    code, o = api(h, sock, "GET", "/v1/node/registration")
    check(o["keyName"] == "node-key2", "%r", o)
    for k in keys.values():
        check(relaytest.decode_key(k)["key"] not in p.log() + rp.log(), "a SAS key was logged")
    # diagnose also walks [relay] of shird.conf, with its key file
    kf = h.write("relay.key", relaytest.decode_key(keys["node-key2"])["key"] + "\n", mode=0o600)
    with open(conf, "a") as f:
        f.write("[relay]\nendpoint = ws://127.0.0.1:%d\npath = sales-ir\nkey_name = node-key2\n"
                "key_file = %s\n" % (relay.port, kf))
    o = json.loads(ctl(h, sock, conf, "diagnose", "--json").stdout)
    check([e["what"] for e in o["endpoints"]] == ["registration", "[relay] of shird.conf"], "%r", o)
    check(all(e["broken"] == "" and e["steps"][5]["result"] == "ok" for e in o["endpoints"]),
          "%r", o)


@test
def test_register_through_proxy_and_tls(h):
    """-rn through squid (Basic auth) to shir-relay over TLS: every step of the walk is ok"""
    import relaytest
    crt, key = h.path("relay.crt"), h.path("relay.key")
    h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=relay.shir.test",
           "-addext", "subjectAltName=DNS:relay.shir.test,DNS:localhost"], check=0)
    relay = relaytest.Relay(h, tls=(crt, key))
    out = relay.cli("ir", "create", "sales-ir").stdout
    node_key = [relaytest.decode_key(w) for w in out.split() if w.startswith("IR@v1@")][0]
    relay.start()
    squid = start_squid(h, "svc-shir", "pw-1", hosts={"relay.shir.test": "127.0.0.1"})
    _, conf, sock = setup(h, start=False)
    with open(conf, "a") as f:
        f.write("[relay]\nca_file = %s\n" % crt)
    ctl(h, sock, conf, "proxy", "set", "custom", "--address", "127.0.0.1", "--port", str(squid),
        "--user", "svc-shir", "--auth", "basic", input="pw-1")
    k = make_key(ir="sales-ir", endpoint="wss://relay.shir.test:%d" % relay.port, hc="sales-ir",
                 key_name=node_key["keyName"], key=node_key["key"],
                 tls_pin=spki_pin(h, crt))
    r = ctl(h, sock, conf, "-rn", "-", input=k)
    out = r.stdout
    for want in ("dns      ok       127.0.0.1 resolves to 127.0.0.1; the proxy resolves relay.shir.test",
                 "proxy    ok       through http://127.0.0.1:%d" % squid,
                 "tcp      ok       connected to the proxy",
                 "connect  ok       the proxy opened a tunnel to relay.shir.test:%d (200)" % relay.port,
                 "tls      ok       certificate of relay.shir.test verified and matches the key's pin",
                 "listen   ok       the relay accepted the node key (node-key1)",
                 "registered node"):
        check(want in out, "missing %r in:\n%s", want, out)
    with open(h.path("squid", "access.log")) as f:
        check("CONNECT relay.shir.test:%d" % relay.port in f.read(), "squid saw no CONNECT")


@test
def test_status_exit_codes_and_a_typo(h):
    """status: exit 0 Online, 4 Offline, 7 not running (5 NeedsRegistration in test_shird); a
    typo in shird.conf still finds the running shird through the socket the file names, and
    says that the file does not load"""
    import relaytest
    relay = relaytest.Relay(h)
    out = relay.cli("ir", "create", "sales-ir").stdout
    key1 = [w for w in out.split() if w.startswith("IR@v1@") and
            relaytest.decode_key(w)["keyName"] == "node-key1"][0]
    rp = relay.start()
    p, conf, sock = setup(h)
    ctl(h, sock, conf, "register-node", "-", "edge-1", input=key1)
    wait_until(lambda: status_json(h, sock, conf)["status"] == "Online", 20, "Online")
    r = ctl(h, sock, conf, "status", check_rc=0)
    check("Status:   Online" in r.stdout, r.stdout)
    # a typo while shird runs: shirctl (no --socket) reads the socket path from the file
    with open(conf) as f:
        good = f.read()
    with open(conf, "a") as f:
        f.write("\n[node]\nconcurrent_jobs = many\n")
    r = h.run([h.bin("shirctl"), "--conf", conf, "status"], check=0)
    check("Status:   Online" in r.stdout, "the running shird was not found:\n%s%s" % (r.stdout,
                                                                               r.stderr))
    check("does not load" in r.stderr and "concurrent_jobs" in r.stderr and sock in r.stderr,
          r.stderr)
    with open(conf, "w") as f:
        f.write(good)
    # the relay goes away: Offline, exit 4
    rp.stop()
    wait_until(lambda: status_json(h, sock, conf)["status"] == "Offline", 30, "Offline")
    r = ctl(h, sock, conf, "status", check_rc=4)
    check("Status:   Offline" in r.stdout, r.stdout)
    p.stop()
    r = ctl(h, sock, conf, "status", check_rc=7)
    check("shird is not running" in r.stderr, r.stderr)


@test
def test_get_ip_send_logs_and_follow(h):
    """get-ip, send-logs FILE (0600, redacted, never overwrites) and logs [--follow] from the
    running shird"""
    p, conf, sock = setup(h)
    r = ctl(h, sock, conf, "get-ip")
    check("Node:     node-a" in r.stdout and "127.0.0.1 (loopback)" in r.stdout, r.stdout)
    o = json.loads(ctl(h, sock, conf, "get-ip", "--json").stdout)
    check(o["nodeName"] == "node-a" and any(a["address"] == "127.0.0.1" for a in o["addresses"]),
          "%r", o)
    ctl(h, sock, conf, "credentials", "set", "db", input="supersecret-value\n")
    bundle = h.path("bundle.json")
    r = ctl(h, sock, conf, "send-logs", bundle)
    check(stat.S_IMODE(os.stat(bundle).st_mode) == 0o600, "bundle mode")
    with open(bundle) as f:
        text = f.read()
    b = json.loads(text)
    check(b["nodeName"] == "node-a" and b["lineCount"] == len(b["lines"]) > 0, "%r", b)
    check(any("event=credential.stored" in l for l in b["lines"]), "the bundle lacks the log")
    check("supersecret-value" not in text, "a secret is in the bundle")
    r = ctl(h, sock, conf, "send-logs", bundle, check_rc=1)
    check("not overwritten" in r.stderr, r.stderr)
    r = ctl(h, sock, conf, "logs", "--lines", "3")
    check(0 < len(r.stdout.splitlines()) <= 3, r.stdout)
    ctl(h, sock, conf, "logs", "--lines", "0", check_rc=2)
    # --follow: new lines as they come, until interrupted
    f = subprocess.Popen([h.bin("shirctl"), "--socket", sock, "--conf", conf, "logs", "--follow",
                          "--lines", "1"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        ctl(h, sock, conf, "reload")
        seen = []
        end = time.monotonic() + 10
        while time.monotonic() < end:
            line = f.stdout.readline()
            seen.append(line)
            if "event=reload status=done" in line:
                break
        check(any("event=reload status=done" in l for l in seen), "".join(seen))
        check(not any("event=authoring.logs" in l or "path=/v1/node/logs" in l for l in seen[1:]),
              "the follower's own polls:\n" + "".join(seen))
        f.send_signal(signal.SIGINT)
        check(f.wait(10) == 0, "logs --follow did not end on SIGINT")
    finally:
        if f.poll() is None:
            f.kill()


@test
def test_diagnose_as_a_user_who_cannot_read_the_state(h):
    """diagnose as a user who cannot read the state directory: says so, not 'not registered'"""
    _, conf, sock = setup(h, start=False)
    ctl(h, sock, conf, "register-node", "--skip-test", "-",
        input=make_key(endpoint="wss://relay-does-not-exist.invalid:443"))
    if os.geteuid() != 0:
        raise TestFailure("this test switches to another user: run the suite as root (CI does)")
    setpriv = h.require("setpriv", "util-linux")
    os.chmod(h.tmp, 0o755)		# the config is readable, the state directory (0700) is not
    os.chmod(conf, 0o644)
    r = h.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", h.bin("shirctl"),
               "--socket", sock, "--conf", conf, "diagnose"], check=1)
    check("not registered" not in r.stderr and "cannot read the node's registration" in r.stderr
          and "run diagnose as root" in r.stderr, r.stderr)


@test
def test_backup_on_another_machine_keeps_its_name(h):
    """a backup imported on a second node brings the credentials, proxy and registration, not
    the first node's name, log file, socket or state folder"""
    _, conf_a, sock_a = setup(h, start=False)
    with open(conf_a, "a") as f:
        f.write("file = %s\n[proxy]\nmode = custom\naddress = 127.0.0.9\nport = 3128\n" %
                h.path("a.log"))
    ctl(h, sock_a, conf_a, "credentials", "set", "db", input="s3cret")
    ctl(h, sock_a, conf_a, "register-node", "--skip-test", "-", "edge-a",
        input=make_key(endpoint="wss://relay.example:443"))
    ctl(h, sock_a, conf_a, "backup", "create", h.path("a.shirbak"), input="pw")
    # the second machine: its own name, log, socket and state
    sock_b, state_b = h.path("b.sock"), h.path("state-b")
    conf_b = h.write("b.conf", CONF.format(name="node-b", sock=sock_b, state=state_b) +
                     "file = %s\n" % h.path("b.log"))
    ctl(h, sock_b, conf_b, "backup", "import", h.path("a.shirbak"), input="pw")
    with open(conf_b) as f:
        text = f.read()
    check("name = node-b" in text and "name = node-a" not in text and h.path("b.log") in text and
          h.path("a.log") not in text and sock_b in text and state_b in text, text)
    check("address = 127.0.0.9" in text, "the proxy settings did not come over:\n" + text)
    with open(os.path.join(state_b, "node.json")) as f:
        reg = json.load(f)
    check(reg["nodeName"] == "node-b" and reg["endpoint"] == "wss://relay.example:443", "%r" % reg)
    r = ctl(h, sock_b, conf_b, "credentials", "list")
    check("db" in r.stdout, r.stdout)


@test
def test_register_to_another_runtime_drops_the_old_channel(h):
    """registering to another runtime whose relay is down: the old runtime's channel goes at
    once (it is not served a moment longer), and status names each channel's endpoint"""
    import relaytest
    from shirtest import free_port
    relay = relaytest.Relay(h)
    out = relay.cli("ir", "create", "ir-a").stdout
    key_a = [w for w in out.split() if w.startswith("IR@v1@") and
             relaytest.decode_key(w)["keyName"] == "node-key1"][0]
    rp = relay.start()
    p, conf, sock = setup(h)
    ctl(h, sock, conf, "register-node", "-", "edge-1", input=key_a)
    wait_until(lambda: status_json(h, sock, conf)["status"] == "Online", 20, "Online")
    down = "ws://127.0.0.1:%d" % free_port()
    rp.mark()
    ctl(h, sock, conf, "register-node", "--skip-test", "-", "edge-1",
        input=make_key(ir="ir-b", endpoint=down))
    p.wait_log(r"event=channel.changing channel=registration reason=runtime")
    rp.wait_log(r"event=listener.closed hc=ir-a")
    st = status_json(h, sock, conf)
    check(len(st["channels"]) == 1 and st["channels"][0]["endpoint"] == down and
          st["channels"][0]["path"] == "ir-b", "%r" % st["channels"])
    r = ctl(h, sock, conf, "status", check_rc=None)
    check(down in r.stdout and "ir-b" in r.stdout, r.stdout)


@test
def test_proxy_set_system_with_a_user(h):
    """proxy set system --user: the .NET files give the proxy, shird.conf the user; the password
    goes to a 0600 file, never into shird.conf"""
    _, conf, sock = setup(h, start=False)
    ctl(h, sock, conf, "proxy", "set", "system", "--user", "CORP\\svc", "--auth", "ntlm",
        input="pw-sys\n")
    text = conf_text(conf)
    check("mode = system" in text and "user = CORP\\svc" in text and "auth = ntlm" in text and
          "pw-sys" not in text, text)
    pw = h.path("state", "proxy.password")
    check(stat.S_IMODE(os.stat(pw).st_mode) == 0o600, "password file mode")
    ctl(h, sock, conf, "proxy", "set", "system", "--address", "x", check_rc=2)
    ctl(h, sock, conf, "proxy", "set", "system", "--auth", "ntlm", check_rc=2)


@test
def test_author_help_has_a_request_per_store(h):
    """shirctl author --help: a well-formed request example for each of the six store types"""
    r = h.run([h.bin("shirctl"), "author", "--help"], check=0)
    text = r.stdout.split("\n\n", 1)[1]
    reqs, cur = [], ""
    for line in text.splitlines()[1:]:
        cur += line.strip() + " "
        try:
            reqs.append(json.loads(cur))
            cur = ""
        except ValueError:
            pass
    types = [q["linkedService"]["type"] for q in reqs]
    check(sorted(types) == sorted(["FileSystem", "Sqlite", "PostgreSql", "MySql", "Odbc",
                                   "HttpServer"]) and all("dataset" in q for q in reqs), "%r" % reqs)


if __name__ == "__main__":
    main()
