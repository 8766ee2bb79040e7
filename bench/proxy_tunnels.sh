#!/bin/sh
# bench/proxy_tunnels.sh BUILDDIR [COUNT] [PARALLEL]
# 1,000 (COUNT) TLS connections to a local echo server: direct, then through
# a CONNECT tunnel of a local squid, then through squid with Basic auth; each
# sends and checks 1,000 bytes. Side by side in one run; prints the ratios.
# Loopback only; squid runs as the "proxy" user from a temp dir.
set -eu
B=$(cd "${1:?usage: proxy_tunnels.sh BUILDDIR [COUNT] [PARALLEL]}" && pwd)
N=${2:-1000}
P=${3:-1}
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/shir-bench-tunnels-XXXXXX)
chmod 755 "$T"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
python3 "$SRC/tests/integration/proxy_helpers.py" echo "$T/cert.pem" "$T/key.pem" > "$T/echo.out" 2>&1 &
pids="$pids $!"

SP=$(free_port)
htpasswd -b -c "$T/htpasswd" svc bench-pw 2>/dev/null
printf 'bench-pw\n' > "$T/pw"; chmod 600 "$T/pw"
for kind in plain basic; do
	port=$SP; [ $kind = basic ] && port=$((SP + 0)) && port=$(free_port)
	mkdir -p "$T/$kind"
	{
		echo "http_port 127.0.0.1:$port"
		echo "pid_filename none"
		echo "access_log none"
		echo "cache_log $T/$kind/cache.log"
		echo "cache_store_log none"
		echo "cache deny all"
		echo "cache_mem 8 MB"
		echo "pinger_enable off"
		echo "shutdown_lifetime 0 seconds"
		echo "max_filedescriptors 4096"
		if [ $kind = basic ]; then
			echo "auth_param basic program /usr/lib/squid/basic_ncsa_auth $T/htpasswd"
			echo "auth_param basic credentialsttl 1 hour"
			echo "acl authed proxy_auth REQUIRED"
			echo "http_access allow authed"
		else
			echo "http_access allow localhost"
		fi
		echo "http_access deny all"
	} > "$T/$kind/squid.conf"
	chown -R proxy "$T/$kind"
	squid -N -f "$T/$kind/squid.conf" > "$T/$kind/out" 2>&1 &
	pids="$pids $!"
	eval "PORT_$kind=$port"
done
for i in $(seq 100); do
	grep -q listening "$T/echo.out" 2>/dev/null && grep -q Accepting "$T/plain/cache.log" 2>/dev/null &&
		grep -q Accepting "$T/basic/cache.log" 2>/dev/null && break
	sleep 0.1
done
EP=$(awk '{print $2}' "$T/echo.out")
printf '[proxy]\nmode = none\n' > "$T/direct.conf"
printf '[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %s\n' "$PORT_plain" > "$T/squid.conf"
printf '[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %s\nuser = svc\npassword_file = %s\nauth = basic\n' \
	"$PORT_basic" "$T/pw" > "$T/basic.conf"

run() {
	"$B/tests/proxy_dial_client" --conf "$T/$1.conf" --url "https://echo.test:$EP/" --host 127.0.0.1 \
		--port "$EP" --ca "$T/cert.pem" --sni localhost --bytes 1000 --count "$N" --parallel "$P" |
		sed -n 's/^OK n=\([0-9]*\) .* ms=\([0-9.]*\)$/\2/p'
}
echo "tunnels=$N parallel=$P bytes_each=1000 (TLS handshake to the destination included)"
D=$(run direct); S=$(run squid); A=$(run basic)
[ -n "$D" ] && [ -n "$S" ] && [ -n "$A" ] || { echo "a run failed"; exit 1; }
awk -v d="$D" -v s="$S" -v a="$A" -v n="$N" 'BEGIN {
	printf "direct:             %8.0f ms  %6.2f ms/tunnel\n", d, d / n
	printf "squid CONNECT:      %8.0f ms  %6.2f ms/tunnel  %.2fx direct\n", s, s / n, s / d
	printf "squid CONNECT+Basic:%8.0f ms  %6.2f ms/tunnel  %.2fx direct\n", a, a / n, a / d
}'
