"""stores: real database servers for integration tests (PostgreSQL, MariaDB),
started once per test file on free loopback ports in their own temp dirs,
with real users and passwords, and stopped at exit.

    from stores import shared_pg, shared_mariadb
    pg = shared_pg()          # starts on first use
    pg.sql("CREATE TABLE ...")
    pg.linked_service()       # {"type": "PostgreSql", "properties": {...}}

Servers that refuse to run as root (both) run as their system users
(postgres, mysql) through runuser when the tests run as root.
"""
import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from shirtest import Harness, Missing, TestFailure, free_port

READER = "reader"
READER_PASSWORD = "r3ader-Secret"
ADMIN_PASSWORD = "adm1n-Secret"

_shared = {}


def _as_user(user, argv):
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--"] + argv
    return argv


def _own(path, user):
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _tmpdir(prefix, user):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    _own(d, user)
    return d


def _pg_bin(name):
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if not cands:
        raise Missing("PostgreSQL's %s is not installed: install the Debian package postgresql "
                      "(tools/install-deps does)" % name)
    return cands[-1]


class Postgres:
    """A PostgreSQL server with scram-sha-256 passwords on 127.0.0.1."""

    def __init__(self, tls=None):
        """tls: (certificate, key) files to serve TLS with (ssl=on)."""
        self.h = Harness("pg")
        self.dir = _tmpdir("shir-pg-", "postgres")
        self.h.on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.port = free_port()
        self.database = "shop"
        data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(ADMIN_PASSWORD + "\n")
        _own(pwfile, "postgres")
        r = subprocess.run(_as_user("postgres", [
            _pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=scram-sha-256",
            "--pwfile=" + pwfile, "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]),
            capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure("initdb failed:\n%s%s" % (r.stdout, r.stderr))
        extra = []
        if tls:
            for src, name in zip(tls, ("server.crt", "server.key")):
                dst = os.path.join(self.dir, name)
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)
                _own(dst, "postgres")
            extra = ["-c", "ssl=on", "-c", "ssl_cert_file=" + os.path.join(self.dir, "server.crt"),
                     "-c", "ssl_key_file=" + os.path.join(self.dir, "server.key")]
        self.proc = self.h.start("postgres", _as_user("postgres", [
            _pg_bin("postgres"), "-D", data, "-p", str(self.port), "-k", self.dir,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
            "-c", "shared_buffers=16MB"] + extra))
        self.proc.wait_log(r"database system is ready to accept connections", timeout=60)
        self.sql("CREATE DATABASE shop", db="postgres")
        self.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (READER, READER_PASSWORD), db="postgres")

    def sql(self, text, db=None, user="postgres", password=ADMIN_PASSWORD):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", user, "-d", db or self.database,
                            "-At", "-c", text],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PGPASSWORD=password))
        if r.returncode != 0:
            raise TestFailure("psql failed: %s\n%s" % (text, r.stderr))
        return r.stdout

    def linked_service(self, password=READER_PASSWORD, port=None, **extra):
        props = {"host": "127.0.0.1", "port": port or self.port, "database": self.database,
                 "username": READER, "password": password, "sslMode": "disable"}
        props.update(extra)
        return {"type": "PostgreSql", "properties": props}

    def odbc_linked_service(self, password=READER_PASSWORD):
        return {"type": "Odbc", "properties": {
            "connectionString": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=%d;"
                                "Database=%s;SSLMode=disable" % (self.port, self.database),
            "username": READER, "password": password}}

    def close(self):
        self.h.close()


class MariaDB:
    """A MariaDB server with a real password user on 127.0.0.1."""

    def __init__(self):
        self.h = Harness("mariadb")
        mariadbd = self.h.require("mariadbd", "mariadb-server")
        install = self.h.require("mariadb-install-db", "mariadb-server")
        self.dir = _tmpdir("shir-mariadb-", "mysql")
        self.h.on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.port = free_port()
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.database = "shop"
        data = os.path.join(self.dir, "data")
        user = ["--user=mysql"] if os.geteuid() == 0 else []
        r = subprocess.run([install, "--no-defaults", "--datadir=" + data,
                            "--auth-root-authentication-method=normal",
                            "--skip-test-db"] + user, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure("mariadb-install-db failed:\n%s%s" % (r.stdout, r.stderr))
        self.proc = self.h.start("mariadbd", [
            mariadbd, "--no-defaults", "--datadir=" + data, "--port=%d" % self.port,
            "--bind-address=127.0.0.1", "--socket=" + self.sock,
            "--pid-file=" + os.path.join(self.dir, "pid"), "--innodb-buffer-pool-size=16M",
            "--skip-log-bin", "--max-connections=300"] + user)
        self.proc.wait_log(r"ready for connections", timeout=60)
        self.sql("CREATE DATABASE shop; "
                 "CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'; "
                 "CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'; "
                 "GRANT SELECT ON shop.* TO '%s'@'127.0.0.1'; "
                 "GRANT SELECT ON shop.* TO '%s'@'localhost'; "
                 "GRANT PROCESS ON *.* TO '%s'@'127.0.0.1'; "
                 % (READER, READER_PASSWORD, READER, READER_PASSWORD, READER, READER, READER),
                 db="")

    def sql(self, text, db=None):
        argv = ["mariadb", "--no-defaults", "-S", self.sock, "-u", "root", "-N", "-B"]
        if db is None:
            argv.append(self.database)
        elif db:
            argv.append(db)
        r = subprocess.run(argv + ["-e", text], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise TestFailure("mariadb failed: %s\n%s" % (text, r.stderr))
        return r.stdout

    def linked_service(self, password=READER_PASSWORD, port=None, **extra):
        props = {"host": "127.0.0.1", "port": port or self.port, "database": self.database,
                 "username": READER, "password": password}
        props.update(extra)
        return {"type": "MySql", "properties": props}

    def close(self):
        self.h.close()


def _shared_server(key, cls):
    if key not in _shared:
        s = cls()
        _shared[key] = s
        atexit.register(s.close)
    return _shared[key]


def shared_pg():
    """The file's PostgreSQL server (started on first use)."""
    return _shared_server("pg", Postgres)


def shared_mariadb():
    """The file's MariaDB server (started on first use)."""
    return _shared_server("mariadb", MariaDB)


def odbcinst_dir(h):
    """A directory with an odbcinst.ini that registers the PostgreSQL ODBC
    driver; give it to shird as ODBCSYSINI."""
    lib = None
    for cand in glob.glob("/usr/lib/*/odbc/psqlodbcw.so") + glob.glob("/usr/lib/odbc/psqlodbcw.so"):
        lib = cand
        break
    if lib is None:
        raise Missing("the PostgreSQL ODBC driver is not installed: install the Debian package "
                      "odbc-postgresql (tools/install-deps does)")
    d = h.path("odbc")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "odbcinst.ini"), "w") as f:
        f.write("[PostgreSQL Unicode]\nDescription=PostgreSQL ODBC driver\nDriver=%s\n" % lib)
        # MariaDB Connector/ODBC when installed (odbc-mariadb)
        for ma in glob.glob("/usr/lib/*/odbc/libmaodbc.so"):
            f.write("[MariaDB Unicode]\nDescription=MariaDB Connector/ODBC\nDriver=%s\n" % ma)
            break
    with open(os.path.join(d, "odbc.ini"), "w") as f:
        f.write("")
    return d
