#!/bin/bash
# bench/listener.sh BUILDDIR: the relay listener's benchmarks, on loopback only, bounded in
# time (about two minutes). Prints the figures that go into BENCHMARKS.md,
# "Node listener (shird)".
#
#   1. relayed HTTP requests/s and p99 through one shir-relay: shird as the listener vs
#      Microsoft's hyco-https listener (npm hyco-https 1.4.5, bench/hyco_listener.js), same
#      relay, same wrk load; and two ceilings of this machine for the same wrk load: nginx
#      answering by itself (no relay, no listener), and the relay with a listener that does
#      nothing but answer (bench/relay_wsbench hc-sink)
#   2. TCP forward throughput: relay + shird (WebSocket tunnel to a [forward] echo target)
#      vs the same echo target directly
#   3. shird's memory with TUNNELS accepted tunnels held open (default 9000)
#
# Needs: wrk, node + npm (hyco-https is installed into BUILDDIR/bench-hyco once), a build
# without sanitizers (figures from an ASan build mean nothing).
set -euo pipefail
B=$(cd "${1:?usage: bench/listener.sh BUILDDIR}" && pwd)
S=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-15}
CONNS=${CONNS:-32}
TUNNELS=${TUNNELS:-9000}   # 2 descriptors each in the relay and in shird: under 20000
MB=${MB:-500}
T=$(mktemp -d /tmp/shir-bench-listener.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"   # the relay and shird hold two descriptors per tunnel

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_log() { # file regex [timeout]
	local i
	for i in $(seq $((${3:-20} * 10))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "timed out waiting for /$2/ in $1" >&2; tail -5 "$1" >&2; exit 1
}
key_of() { # irkey-line -> field
	python3 -c 'import sys,json,base64;s=sys.argv[1][6:];print(json.loads(base64.urlsafe_b64decode(s+"="*(-len(s)%4)))[sys.argv[2]])' "$1" "$2"
}
token() { # uri keyname key
	python3 - "$@" <<'EOF'
import sys, time, hmac, hashlib, base64, urllib.parse
uri, kn, key = sys.argv[1:4]
se = str(int(time.time()) + 3600); sr = urllib.parse.quote(uri, safe="")
sig = base64.b64encode(hmac.new(key.encode(), (sr + "\n" + se).encode(), hashlib.sha256).digest()).decode()
print("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (sr, urllib.parse.quote(sig, safe=""), se, kn))
EOF
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }	# utime + stime

command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
if [ ! -d "$B/bench-hyco/node_modules/hyco-https" ]; then
	mkdir -p "$B/bench-hyco/stub-http"
	echo '{"name":"http","version":"0.0.0-stub","main":"index.js"}' > "$B/bench-hyco/stub-http/package.json"
	echo 'module.exports = require("node:http");' > "$B/bench-hyco/stub-http/index.js"
	cat > "$B/bench-hyco/package.json" <<'EOF'
{ "name": "shir-bench-hyco", "version": "1.0.0", "private": true,
  "dependencies": { "hyco-https": "1.4.5" }, "overrides": { "http": "file:./stub-http" } }
EOF
	(cd "$B/bench-hyco" && npm install --ignore-scripts --silent >/dev/null)
fi

# --- relay -------------------------------------------------------------------------
RP=$(free_port)
cat > "$T/relay.conf" <<EOF
[relay]
listen = 127.0.0.1:$RP
state_file = $T/state.json
[log]
level = warn
[limits]
max_connections = 60000
# every benchmark client comes from 127.0.0.1
max_connections_per_address = 60000
max_handshakes_per_address = 60000
EOF
"$B/shir-relay" -f "$T/relay.conf" ir create myhc > "$T/ir1.txt"
"$B/shir-relay" -f "$T/relay.conf" ir create hycohc > "$T/ir2.txt"
"$B/shir-relay" -f "$T/relay.conf" ir create nullhc > "$T/ir3.txt"
"$B/shir-relay" -f "$T/relay.conf" > "$T/relay.log" 2>&1 & PIDS+=($!); RPID=$!
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$RP) 2>/dev/null && break; sleep 0.1; done
K1=$(grep -o 'IR@v1@[^ ]*' "$T/ir1.txt" | sed -n 1p); S1=$(grep -o 'IR@v1@[^ ]*' "$T/ir1.txt" | sed -n 3p)
K2=$(grep -o 'IR@v1@[^ ]*' "$T/ir2.txt" | sed -n 1p); S2=$(grep -o 'IR@v1@[^ ]*' "$T/ir2.txt" | sed -n 3p)
key_of "$K1" key > "$T/node.key"; chmod 600 "$T/node.key"
TOK1=$(token "http://127.0.0.1:$RP/myhc" service-key "$(key_of "$S1" key)")
TOK2=$(token "http://127.0.0.1:$RP/hycohc" service-key "$(key_of "$S2" key)")

# --- shird with an echo forward -----------------------------------------------------
"$B/bench/listener_pump" echo 0 > "$T/echo.out" & PIDS+=($!)
wait_log "$T/echo.out" "listening"
EP=$(awk '{print $2}' "$T/echo.out")
cat > "$T/shird.conf" <<EOF
[node]
name = bench
control_socket = $T/shird.sock
state_dir = $T/state
[log]
level = warn
[relay]
endpoint = ws://127.0.0.1:$RP
path = myhc
key_name = node-key1
key_file = $T/node.key
test_routes = true
[forward]
echo = 127.0.0.1:$EP
EOF
"$B/shird" -f "$T/shird.conf" > "$T/shird.log" 2>&1 & PIDS+=($!); SPID=$!
for i in $(seq 100); do "$B/shirctl" --socket "$T/shird.sock" status 2>/dev/null | grep -q "Status:   Online" && break; sleep 0.1; done

echo "== 1. relayed HTTP: wrk -t2 -c$CONNS -d${DUR}s --latency (GET, 64-byte body)"
# run_wrk NAME LISTENER_PID URL TOKEN: wrk, plus the CPU the listener and the relay used
run_wrk() {
	local l0 r0
	l0=$(cpu_ticks "$2"); r0=$(cpu_ticks "$RPID")
	wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -H "ServiceBusAuthorization: $4" "$3" > "$T/wrk-$1.txt"
	echo "$(( $(cpu_ticks "$2") - l0 )) $(( $(cpu_ticks "$RPID") - r0 ))" > "$T/cpu-$1.txt"
}
run_wrk shird "$SPID" "http://127.0.0.1:$RP/myhc/v1/test/blob?bytes=64" "$TOK1"
(cd "$B/bench-hyco" && NODE_PATH="$B/bench-hyco/node_modules" RELAY=ws://127.0.0.1:$RP HC=hycohc \
	KEYNAME=node-key1 KEY="$(key_of "$K2" key)" \
	exec node "$S/bench/hyco_listener.js" > "$T/hyco.log" 2>&1) & PIDS+=($!); HPID0=$!
wait_log "$T/hyco.log" "LISTENER listening"
run_wrk hyco "$HPID0" "http://127.0.0.1:$RP/hycohc/x" "$TOK2"
kill "$HPID0"
# ceiling 1: the relay with a listener that costs (almost) nothing
K3=$(grep -o 'IR@v1@[^ ]*' "$T/ir3.txt" | sed -n 1p); S3=$(grep -o 'IR@v1@[^ ]*' "$T/ir3.txt" | sed -n 3p)
TOK3=$(token "http://127.0.0.1:$RP/nullhc" service-key "$(key_of "$S3" key)")
"$B/bench/relay_wsbench" hc-sink "$RP" nullhc node-key1 "$(key_of "$K3" key)" > "$T/null.out" 2>&1 & PIDS+=($!); NPID=$!
wait_log "$T/null.out" "READY"
run_wrk null "$NPID" "http://127.0.0.1:$RP/nullhc/x" "$TOK3"
kill "$NPID"
# ceiling 2: nginx answering 64 bytes itself, one worker (no relay, no listener)
NP=$(free_port); mkdir -p "$T/ngx/logs"
cat > "$T/nginx.conf" <<NGX
daemon off; worker_processes 1; pid $T/nginx.pid; error_log $T/ngx/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $T/ngx; proxy_temp_path $T/ngx; fastcgi_temp_path $T/ngx;
  uwsgi_temp_path $T/ngx; scgi_temp_path $T/ngx;
  server { listen 127.0.0.1:$NP; location / { return 200 "$(printf 'a%.0s' $(seq 64))"; } } }
NGX
nginx -p "$T/ngx" -c "$T/nginx.conf" & PIDS+=($!); NGPID=$!
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$NP) 2>/dev/null && break; sleep 0.1; done
run_wrk nginx "$NGPID" "http://127.0.0.1:$NP/x" "-"
kill "$NGPID"
python3 - "$T" "$(getconf CLK_TCK)" <<'EOF'
import sys, re
t, hz = sys.argv[1], int(sys.argv[2])
r = {}
for who in ("shird", "hyco", "null", "nginx"):
    w = open("%s/wrk-%s.txt" % (t, who)).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w).group(1))
    n = int(re.search(r"(\d+) requests in", w).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", w, re.M).group(1)
    bad = re.findall(r"(Non-2xx.*|Socket errors.*)", w)
    lc, rc = map(int, open("%s/cpu-%s.txt" % (t, who)).read().split())
    r[who] = (rps, lc * 1e6 / hz / n)
    name = {"null": "relay + do-nothing listener", "nginx": "nginx alone (no relay)"}.get(who, who)
    cpu = ("" if who == "nginx" else "listener CPU/request %6.1f us  relay CPU/request %6.1f us"
           % (lc * 1e6 / hz / n, rc * 1e6 / hz / n))
    print("%-28s requests/s %9.0f  p99 %-8s %s %s" % (name, rps, p99, cpu, " ".join(bad)))
print("ratio shird/hyco-https: requests/s %.2f, listener CPU per request %.2f (lower is better)"
      % (r["shird"][0] / r["hyco"][0], r["shird"][1] / r["hyco"][1]))
print("ceilings on this machine, as multiples of hyco-https's rate: relay + do-nothing listener %.2fx, "
      "nginx alone %.2fx" % (r["null"][0] / r["hyco"][0], r["nginx"][0] / r["hyco"][0]))
EOF

echo "== 2. TCP forward: $MB MiB each way, one connection, SHA-256 checked"
"$B/bench/listener_pump" tcp 127.0.0.1 "$EP" "$MB" | sed 's/^/direct           /'
SHIR_TOKEN="$TOK1" "$B/bench/listener_pump" ws \
	"ws://127.0.0.1:$RP/\$hc/myhc/tcp/echo?sb-hc-action=connect" "$MB" | sed 's/^/relay+shird      /'

echo "== 3. memory: $TUNNELS tunnels held open"
before=$(rss_kb "$SPID")
mkfifo "$T/hold.in"
(SHIR_TOKEN="$TOK1" "$B/bench/listener_pump" hold \
	"ws://127.0.0.1:$RP/\$hc/myhc/tcp/echo?sb-hc-action=connect" "$TUNNELS" < "$T/hold.in" > "$T/hold.out" 2>&1) &
HPID=$!; PIDS+=($HPID)
exec 9> "$T/hold.in"
wait_log "$T/hold.out" "HELD" 120
busy=$(rss_kb "$SPID")
# idle tunnels free their wslay contexts after 2 s; shird returns freed pages every 5 s
sleep "${SETTLE:-8}"
after=$(rss_kb "$SPID")
tunnels=$("$B/shirctl" --socket "$T/shird.sock" status --json | python3 -c 'import sys,json;print(json.load(sys.stdin)["tunnels"])')
echo "$(cat "$T/hold.out"); shird reports tunnels=$tunnels"
n=$(( tunnels > 0 ? tunnels : 1 ))
echo "shird RSS: before ${before} KiB; just opened ${busy} KiB ($(( (busy - before) * 1024 / n )) bytes per tunnel); idle ${SETTLE:-8} s later ${after} KiB, per tunnel $(( (after - before) * 1024 / n )) bytes"
exec 9>&-
wait "$HPID" 2>/dev/null || true
