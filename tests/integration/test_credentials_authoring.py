"""Integration: authoring requests resolve CredentialReference secrets from the
node's encrypted credential store, and never the node's own reserved ones."""
import base64
import http.server
import os
import threading

from authnode import Node, expect_error
from shirtest import check, main, test


class _Basic(http.server.BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        _Basic.seen.append(auth)
        ok = auth == "Basic " + base64.b64encode(b"api:from-the-store").decode()
        self.send_response(200 if ok else 401)
        if not ok:
            self.send_header("WWW-Authenticate", 'Basic realm="t"')
        body = b'[{"a": 1}]' if ok else b""
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def basic_server(h):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Basic)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def stop():
        srv.shutdown()
        srv.server_close()
    h.on_cleanup(stop)
    return "http://127.0.0.1:%d/" % srv.server_address[1]


def ls_with(url, name):
    return {"type": "HttpServer", "properties": {
        "url": url, "authenticationType": "Basic", "username": "api",
        "password": {"type": "CredentialReference", "name": name}}}


@test
def test_credential_reference_resolves(h):
    """a CredentialReference set with shirctl credentials set reaches the store"""
    url = basic_server(h)
    n = Node(h, lma=True)
    h.run([h.bin("shirctl"), "--socket", n.sock, "credentials", "set", "api-pw"],
          input="from-the-store\n", check=0)
    r = n.author("testConnection", {"linkedService": ls_with(url, "api-pw")})
    check(r["status"] == "Succeeded", "%r", r)
    r = n.author("preview", {"linkedService": ls_with(url, "api-pw"),
                             "dataset": {"type": "Json", "relativeUrl": "x"}})
    check(r["rows"] == [[1]], "%r", r)
    expect_error(n.curl("testConnection", {"linkedService": ls_with(url, "nope")}), 400,
                 "CredentialNotFound", "nope")
    check("from-the-store" not in n.p.log(), "the secret reached the log")
    n.stop_clean()


@test
def test_reserved_credentials_not_resolvable(h):
    """the node's own reserved credentials (its SAS key) cannot be referenced"""
    url = basic_server(h)
    state = h.path("state")
    os.makedirs(state, mode=0o700, exist_ok=True)
    h.run([h.bin("credwriter"), state, "write", "_node-key", "1"], check=0)
    n = Node(h, lma=True)
    _Basic.seen.clear()
    expect_error(n.curl("testConnection", {"linkedService": ls_with(url, "_node-key")}), 400,
                 "CredentialNotFound")
    check(not any("value-1" in base64.b64decode(a.split()[-1] + "==").decode("latin-1")
                  for a in _Basic.seen if a), "the reserved secret was sent: %r", _Basic.seen)
    n.stop_clean()


@test
def test_huge_numbers_are_refused(h):
    """numbers beyond any integer (1e300) are a 400 naming the field, not a crash"""
    n = Node(h, lma=True)
    pg = {"type": "PostgreSql", "properties": {"host": "127.0.0.1", "port": 1e300,
                                               "database": "d", "username": "u", "password": "p"}}
    expect_error(n.curl("testConnection", {"linkedService": pg}), 400, "InvalidRequest", "port")
    ls = {"type": "Sqlite", "properties": {"path": "/nonexistent.db"}}
    expect_error(n.curl("preview", {"linkedService": ls, "limit": 1e300,
                                    "dataset": {"type": "Table", "table": "t"}}), 400,
                 "InvalidRequest", "limit")
    expect_error(n.curl("preview", {"linkedService": ls, "limit": -1e300,
                                    "dataset": {"type": "Table", "table": "t"}}), 400,
                 "InvalidRequest", "limit")
    n.stop_clean()


if __name__ == "__main__":
    main()
