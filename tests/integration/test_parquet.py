"""Integration: Parquet files written by the node's own writer
(node/copy/parquet.c, through tests/pq_write) read back by an independent
reader, npm hyparquet (with hyparquet-compressors for ZSTD), pinned and
installed once under $SHIR_BUILDDIR/tests/npm-parquet. Every value of every
column type is compared, with nulls, several row groups, and each codec."""
import base64
import datetime
import json
import os
import random
import struct

from shirtest import BUILDDIR, SRCDIR, check, main, npm_install, test

NPM_DIR = os.path.join(BUILDDIR, "tests", "npm-parquet")
PKG = """{ "name": "shir-parquet-readers", "version": "1.0.0", "private": true, "type": "module",
  "dependencies": { "hyparquet": "1.33.0", "hyparquet-compressors": "1.1.2" } }
"""
READER = os.path.join(SRCDIR, "tests", "integration", "parquet", "read.mjs")


def npm_parquet(h):
    """Installs hyparquet@1.33.0 and hyparquet-compressors@1.1.2 once (cached in the build dir)."""
    return npm_install(h, NPM_DIR, PKG, ("hyparquet", "hyparquet-compressors"),
                       "hyparquet@1.33.0 and hyparquet-compressors@1.1.2")


def read_back(h, path):
    mods = npm_parquet(h)
    # an ES module resolves packages from its own folder up: run a copy inside NPM_DIR
    script = os.path.join(NPM_DIR, "read.mjs")
    with open(READER) as src, open(script + ".tmp", "w") as dst:
        dst.write(src.read())
    os.replace(script + ".tmp", script)
    r = h.run(["node", script, path], timeout=120)
    check(r.returncode == 0, "hyparquet could not read %s:\n%s%s", path, r.stdout, r.stderr)
    del mods
    return json.loads(r.stdout)


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ts_text(rng, with_offset):
    micros = rng.randrange(-2208988800 * 10**6, 4102444800 * 10**6)  # 1900 .. 2100
    utc = EPOCH + datetime.timedelta(microseconds=micros)
    if not with_offset:
        sep = rng.choice([" ", "T"])
        if utc.microsecond:
            return utc.strftime("%Y-%m-%d" + sep + "%H:%M:%S.%f") + rng.choice(["", "Z"]), micros
        return utc.strftime("%Y-%m-%d" + sep + "%H:%M:%S"), micros
    off = rng.choice([0, 330, -240, 600, -690])
    local = utc + datetime.timedelta(minutes=off)
    sign = "+" if off >= 0 else "-"
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "%s%02d:%02d" % (sign, abs(off) // 60, abs(off) % 60), micros


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


COLUMNS = [("flag", "Boolean"), ("small", "Int16"), ("mid", "Int32"), ("big", "Int64"), ("single", "Single"),
           ("dbl", "Double"), ("price", "Decimal"), ("name", "String"), ("at", "DateTime"),
           ("atOffset", "DateTimeOffset"), ("span", "TimeSpan"), ("guid", "Guid"), ("blob", "ByteArray")]


def make_rows(rng, n):
    """Rows as the writer's input (text, as the connectors give it) and as hyparquet should return them."""
    ins, exp = [], []
    for i in range(n):
        row_in, row_exp = [], {}
        for name, t in COLUMNS:
            if name != "big" and rng.random() < 0.1:
                row_in.append(None)
                row_exp[name] = None
                continue
            if t == "Boolean":
                v = rng.random() < 0.5
                row_in.append(rng.choice(["t", "true", "1"]) if v else rng.choice(["f", "false", "0"]))
                row_exp[name] = v
            elif t in ("Int16", "Int32"):
                lim = 2**15 if t == "Int16" else 2**31
                v = rng.choice([-lim, lim - 1, 0, rng.randrange(-lim, lim)])
                row_in.append(str(v))
                row_exp[name] = {"num": v}
            elif t == "Int64":
                v = rng.choice([-2**63, 2**63 - 1, i, rng.randrange(-2**63, 2**63)])
                row_in.append(str(v))
                row_exp[name] = str(v)
            elif t in ("Single", "Double"):
                special = rng.random() < 0.05
                if special:
                    txt = rng.choice(["NaN", "Infinity", "-Infinity"])
                    row_in.append(txt)
                    row_exp[name] = {"num": txt}
                else:
                    v = rng.uniform(-1e6, 1e6) * 10 ** rng.randrange(-20, 20)
                    row_in.append(repr(v))
                    row_exp[name] = {"num": f32(v) if t == "Single" else v}
            elif t == "Decimal":
                v = "%d.%06d" % (rng.randrange(-10**20, 10**20), rng.randrange(10**6))
                row_in.append(v)
                row_exp[name] = v
            elif t == "String":
                v = rng.choice(["", "plain", "näïve ☃ 日本語 🚀", "quote \" and, comma\nnewline", "x" * 5000])
                row_in.append(v)
                row_exp[name] = v
            elif t in ("DateTime", "DateTimeOffset"):
                txt, micros = ts_text(rng, t == "DateTimeOffset")
                row_in.append(txt)
                row_exp[name] = {"micros": str(micros)}
            elif t == "TimeSpan":
                v = "%d.%02d:%02d:%02d" % (rng.randrange(0, 40), rng.randrange(24), rng.randrange(60), rng.randrange(60))
                row_in.append(v)
                row_exp[name] = v
            elif t == "Guid":
                v = "%08x-%04x-4%03x-8%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                     rng.getrandbits(12), rng.getrandbits(48))
                row_in.append(v)
                row_exp[name] = v
            else:
                b = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
                row_in.append(base64.b64encode(b).decode())
                row_exp[name] = {"b64": base64.b64encode(b).decode()}
        ins.append(row_in)
        exp.append(row_exp)
    return ins, exp


def write(h, rows, codec, rg, cols=COLUMNS, check_rc=0):
    schema = ",".join("%s:%s%s" % (n, t, "" if n == "big" else ":null") for n, t in cols)
    out = h.path("out-%s.parquet" % codec)
    data = "".join(json.dumps(r) + "\n" for r in rows)
    r = h.run([h.bin("pq_write"), out, codec, str(rg), schema], input=data, timeout=120)
    check(r.returncode == check_rc, "pq_write exited %d:\n%s%s", r.returncode, r.stdout, r.stderr)
    return out, r


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict) and "num" in a and "num" in b:
        x, y = a["num"], b["num"]
        if isinstance(x, str) or isinstance(y, str):
            return x == y
        return float(x) == float(y)  # JSON may print a whole double as an integer
    return a == b


def compare(got, exp):
    check(got["numRows"] == len(exp) and len(got["rows"]) == len(exp), "row count: %d/%d vs %d",
          got["numRows"], len(got["rows"]), len(exp))
    bad = []
    for i, (g, e) in enumerate(zip(got["rows"], exp)):
        for k, v in e.items():
            if not same(g.get(k), v):
                bad.append((i, k, g.get(k), v))
    check(not bad, "%d values differ, first ones: %r", len(bad), bad[:5])


@test
def test_every_type_every_codec(h):
    """every column type, nulls, several row groups, Snappy, ZSTD and none: hyparquet reads back each value exactly"""
    rng = random.Random(17)
    ins, exp = make_rows(rng, 3000)
    for codec in ("snappy", "zstd", "none"):
        path, r = write(h, ins, codec, 65536)
        got = read_back(h, path)
        compare(got, exp)
        check(len(got["groups"]) > 3, "several row groups (bounded at 64 KiB): %r", got["groups"])
        want_codec = {"snappy": "SNAPPY", "zstd": "ZSTD", "none": "UNCOMPRESSED"}[codec]
        check(all(g["codec"] == want_codec for g in got["groups"]), "codec: %r", got["groups"])
        check(sum(g["rows"] for g in got["groups"]) == 3000, "rows in groups: %r", got["groups"])
        buffered = int(r.stdout.split("max_buffered=")[1])
        check(buffered < 65536 + 16384, "the writer held %d bytes for a 64 KiB row group", buffered)
    types = {s["name"]: (s["type"], s["converted"], s["logical"], s["repetition"]) for s in got["schema"]}
    check(types["small"] == ("INT32", "INT_16", "INTEGER", "OPTIONAL"), "Int16: %r", types["small"])
    check(types["big"] == ("INT64", None, None, "REQUIRED"), "Int64: %r", types["big"])
    check(types["at"][:3] == ("INT64", "TIMESTAMP_MICROS", "TIMESTAMP"), "DateTime: %r", types["at"])
    check(types["name"][:3] == ("BYTE_ARRAY", "UTF8", "STRING"), "String: %r", types["name"])
    check(types["blob"][:3] == ("BYTE_ARRAY", None, None), "ByteArray: %r", types["blob"])
    check(types["flag"][0] == "BOOLEAN" and types["single"][0] == "FLOAT" and types["dbl"][0] == "DOUBLE",
          "scalars: %r", types)


@test
def test_large_file_bounded_memory(h):
    """200,000 rows into 1 MiB row groups: the writer never holds much more than one group; every row is read back"""
    rng = random.Random(5)
    cols = [("big", "Int64"), ("name", "String"), ("at", "DateTime")]
    ins, exp = [], []
    for i in range(200000):
        txt, micros = ts_text(rng, False)
        name = "customer-%d" % rng.randrange(10**9)
        ins.append([str(i), name, txt])
        exp.append({"big": str(i), "name": name, "at": {"micros": str(micros)}})
    path, r = write(h, ins, "zstd", 1 << 20, cols)
    buffered = int(r.stdout.split("max_buffered=")[1])
    check(buffered < (1 << 20) + 4096, "held %d bytes for 1 MiB row groups", buffered)
    got = read_back(h, path)
    compare(got, exp)
    check(len(got["groups"]) >= 5, "row groups: %r", got["groups"])


@test
def test_bad_value_is_a_precise_error(h):
    """a value that is not its column's type stops the writer with the row, the column and the value"""
    _, r = write(h, [["1", "2026-11-01"], ["2", "yesterday"]], "snappy", 65536, [("big", "Int64"), ("at", "DateTime")],
                 check_rc=1)
    check("row 2, column 'at': 'yesterday' is not an ISO 8601 date and time" in r.stderr, "%s", r.stderr)


if __name__ == "__main__":
    main()
