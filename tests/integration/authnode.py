"""authnode: a shird for authoring tests, and the two ways to talk to it:
shirctl author --local (what people use) and curl --unix-socket (raw HTTP,
status and headers)."""
import json
import os
import subprocess

from shirtest import TestFailure, check

CONF = """\
[node]
name = auth-node
control_socket = {sock}
state_dir = {state}
concurrent_jobs = {jobs}
queue_size = {queue}
operation_timeout = {timeout}
shutdown_timeout = {shutdown}
[log]
level = {level}
[security]
local_folder_path_validation = {validation}
allowed_folders = {allowed}
local_machine_access = {lma}
{extra}"""


class Node:
    def __init__(self, h, allowed="", lma=True, jobs=4, queue=64, timeout=45, validation=True,
                 env=None, level="info", shutdown=10, extra=""):
        self.h = h
        self.sock = h.path("shird.sock")
        self.conf = h.write("shird.conf", CONF.format(
            sock=self.sock, state=h.path("state"), jobs=jobs, queue=queue, timeout=timeout,
            allowed=allowed, lma="true" if lma else "false", level=level, shutdown=shutdown,
            validation="true" if validation else "false", extra=extra))
        self.p = h.start("shird", [h.bin("shird"), "-f", self.conf], env=env)
        self.p.wait_log(r"event=listening")
        self.p.wait_log(r"event=authoring.started")

    def author(self, op, req, *args, rc=0):
        """shirctl author OP --local --json, request on stdin; returns the JSON."""
        r = self.h.run([self.h.bin("shirctl"), "--socket", self.sock, "author", op, "--local",
                        "--json"] + list(args), input=json.dumps(req), timeout=90)
        if r.returncode != rc:
            raise TestFailure("shirctl author %s exited %d (want %d)\nstdout: %s\nstderr: %s" % (
                op, r.returncode, rc, r.stdout, r.stderr))
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise TestFailure("shirctl author %s printed no JSON: %r %r" % (op, r.stdout, r.stderr))

    def author_text(self, op, req, *args, rc=0):
        """shirctl author OP --local (the human form); returns (stdout, stderr)."""
        r = self.h.run([self.h.bin("shirctl"), "--socket", self.sock, "author", op, "--local"] +
                       list(args), input=json.dumps(req) if req is not None else None, timeout=90)
        if r.returncode != rc:
            raise TestFailure("shirctl author %s exited %d (want %d)\nstdout: %s\nstderr: %s" % (
                op, r.returncode, rc, r.stdout, r.stderr))
        return r.stdout, r.stderr

    def curl_argv(self, op, body=None, method="POST"):
        argv = ["curl", "-sS", "-i", "--max-time", "90", "--unix-socket", self.sock, "-X", method,
                "http://localhost/v1/" + op]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        return argv

    def curl(self, op, body=None, method="POST"):
        """Raw request; returns (status, headers dict (lower case), JSON body)."""
        data = body if isinstance(body, str) or body is None else json.dumps(body)
        r = subprocess.run(self.curl_argv(op, data, method),
                           input=data.encode() if data is not None else None,
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise TestFailure("curl failed (%d): %s" % (r.returncode, r.stderr))
        return parse_http(r.stdout.decode())

    def stop_clean(self):
        """SIGTERM; shird must exit 0 (the sanitizers make leaks and errors
        non-zero exits)."""
        import signal
        self.p.signal(signal.SIGTERM)
        rc = self.p.wait_exit(30)
        if rc != 0:
            raise TestFailure("shird exited %s; log tail:\n%s" % (rc, self.p.tail(60)))

    def vmhwm_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise TestFailure("no VmHWM for shird")


def parse_http(text):
    """Splits a raw HTTP/1.1 response (curl -i, CRLF kept)."""
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    try:
        js = json.loads(body) if body else None
    except ValueError:
        raise TestFailure("not JSON: %r" % body)
    return status, headers, js


def expect_error(res, status, code, *words):
    st, _, js = res
    check(st == status, "HTTP %s, want %s: %r", st, status, js)
    check(js["status"] == "Failed" and js["error"]["code"] == code,
          "code %r, want %s", js, code)
    for w in words:
        check(w in js["error"]["message"], "message %r lacks %r", js["error"]["message"], w)
    return js["error"]["message"]
