#!/bin/sh
# The dependency rule of docs/layout.md, checked on every #include "..." of the
# tree: ctl/ -> node/ -> relay/ -> proxy/ -> common/ (relay/server/ is shir-relay
# and only it includes relay/server/); never back up. Private headers stay in
# their folder. TAP: one case per rule, the offending lines as diagnostics.
src=${SHIR_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || exit 1
allowed() {	# folder of the including file -> folders it may include
	case $1 in
	common) echo "common" ;;
	proxy) echo "common proxy" ;;
	relay) echo "common proxy relay" ;;
	relay/server) echo "common proxy relay relay/server" ;;
	node|node/*) echo "common proxy relay node" ;;
	ctl) echo "common proxy relay node ctl" ;;
	*) echo "ANY" ;;
	esac
}
group() {	# folder a header belongs to, as the rule names it
	case $1 in
	relay/server/*) echo relay/server ;;
	node/*) echo node ;;
	*) echo "${1%%/*}" ;;
	esac
}
bad=$(mktemp); trap 'rm -f "$bad"' EXIT
for f in $(find common proxy relay node ctl -name '*.[ch]' | sort); do
	dir=$(dirname "$f")
	ok=$(allowed "$dir")
	grep -n '^#include "' "$f" | while IFS= read -r line; do
		inc=$(printf '%s\n' "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
		[ "$inc" = config.h ] && continue
		case $inc in
		*/*) ;;
		*) echo "$f:${line%%:*}: \"$inc\" is not written from the top of the tree" >>"$bad"; continue ;;
		esac
		[ -f "$inc" ] || { echo "$f:${line%%:*}: \"$inc\" does not exist" >>"$bad"; continue; }
		g=$(group "$inc")
		case " $ok " in
		*" $g "*) ;;
		*) echo "$f:${line%%:*}: $dir may not include $inc ($g is above it)" >>"$bad" ;;
		esac
		case $inc in
		*_int.h) [ "$(dirname "$inc")" = "$dir" ] || echo "$f:${line%%:*}: $inc is private to $(dirname "$inc")/" >>"$bad" ;;
		esac
	done
done
echo "1..1"
if [ -s "$bad" ]; then
	echo "not ok 1 - includes follow the layout's dependency rule"
	sed 's/^/# /' "$bad"
	exit 1
fi
echo "ok 1 - includes follow the layout's dependency rule ($(find common proxy relay node ctl -name '*.[ch]' | wc -l) files)"
