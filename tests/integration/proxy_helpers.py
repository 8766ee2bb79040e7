"""Servers for test_proxy.py, run as their own processes (so the harness
stops them): a TLS echo server (the destination behind the proxy) and a TLS
front that makes a plain proxy an https:// proxy.

    python3 proxy_helpers.py echo CERT KEY
    python3 proxy_helpers.py tlsfront CERT KEY UPSTREAM_PORT
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


def front(conn, upstream):
    try:
        up = socket.create_connection(("127.0.0.1", upstream))
    except OSError:
        conn.close()
        return
    t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    t.start()
    pipe(conn, up)
    t.join(5)
    conn.close()
    up.close()


def serve(ctx, handler, *args):
    s = listener()
    print("listening %d" % s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()

        def run(c=c):
            try:
                tc = ctx.wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError):
                c.close()
                return
            handler(tc, *args)
        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    what = sys.argv[1]
    ctx = tls_context(sys.argv[2], sys.argv[3])
    if what == "echo":
        serve(ctx, echo)
    elif what == "tlsfront":
        serve(ctx, front, int(sys.argv[4]))
    else:
        sys.exit("unknown server %s" % what)
