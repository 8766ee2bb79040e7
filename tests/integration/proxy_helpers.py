"""Servers for test_proxy.py, run as their own processes (so the harness
stops them): a TLS echo server (the destination behind the proxy) and a TLS
front that makes a plain proxy an https:// proxy.

    python3 proxy_helpers.py echo CERT KEY
    python3 proxy_helpers.py tlsfront CERT KEY UPSTREAM_PORT
    python3 proxy_helpers.py socks5      (no-auth SOCKS5 CONNECT; logs
        "socks5 connect HOST:PORT")
    python3 proxy_helpers.py demand SCHEME...   (a proxy that answers every
        request with 407 offering those schemes and logs each request's
        Proxy-Authorization scheme: "request auth=SCHEME")
Each prints "listening PORT" once it accepts connections."""
import socket
import ssl
import sys
import threading


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def echo(conn):
    try:
        while True:
            b = conn.recv(65536)
            if not b:
                break
            conn.sendall(b)
    except OSError:
        pass
    finally:
        conn.close()


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def splice(conn, up):
    """Pipes both ways until either side closes, then closes both."""
    t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    t.start()
    pipe(conn, up)
    t.join(5)
    conn.close()
    up.close()


def front(conn, upstream):
    try:
        up = socket.create_connection(("127.0.0.1", upstream))
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        conn.close()
        return
    splice(conn, up)


def serve(ctx, handler, *args):
    s = listener()
    print("listening %d" % s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()
        # no Nagle: TLS 1.3 session tickets plus a small echo would otherwise
        # wait for the peer's delayed ACK (40 ms)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run(c=c):
            try:
                tc = ctx.wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError):
                c.close()
                return
            handler(tc, *args)
        threading.Thread(target=run, daemon=True).start()


def demand(conn, schemes):
    f = conn.makefile("rb")
    try:
        while True:
            auth = "none"
            line = f.readline()
            if not line:
                break
            while True:
                h = f.readline()
                if not h or h in (b"\r\n", b"\n"):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "proxy-authorization":
                    auth = v.strip().split(" ")[0]
            print("request %s auth=%s" % (line.decode("latin-1").split(" ")[0], auth), flush=True)
            conn.sendall(("HTTP/1.1 407 Proxy Authentication Required\r\n" +
                          "".join("Proxy-Authenticate: %s\r\n" % s for s in schemes) +
                          "Content-Length: 0\r\n\r\n").encode())
    except OSError:
        pass
    finally:
        conn.close()


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise OSError("short read")
        b += d
    return b


def socks5(conn):
    try:
        ver, nm = recv_exact(conn, 2)
        recv_exact(conn, nm)
        conn.sendall(b"\x05\x00")
        ver, cmd, _, atyp = recv_exact(conn, 4)
        if atyp == 1:
            host = socket.inet_ntoa(recv_exact(conn, 4))
        elif atyp == 3:
            host = recv_exact(conn, recv_exact(conn, 1)[0]).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, recv_exact(conn, 16))
        port = int.from_bytes(recv_exact(conn, 2), "big")
        print("socks5 connect %s:%d" % (host, port), flush=True)
        up = socket.create_connection((host, port))
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + b"\x00\x00")
    except OSError:
        conn.close()
        return
    splice(conn, up)


def serve_plain(handler, *args):
    s = listener()
    print("listening %d" % s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handler, args=(c,) + args, daemon=True).start()


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "demand":
        serve_plain(demand, sys.argv[2:])
    elif what == "socks5":
        serve_plain(socks5)
    ctx = tls_context(sys.argv[2], sys.argv[3])
    if what == "echo":
        serve(ctx, echo)
    elif what == "tlsfront":
        serve(ctx, front, int(sys.argv[4]))
    else:
        sys.exit("unknown server %s" % what)
