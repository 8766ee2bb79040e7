/* Fuzz target: relay/http1 (the HTTP/1.1 front end and the WebSocket upgrade
 * parser). The input is parsed as a request stream and as a response stream,
 * whole, split in two at a position taken from the first byte, and one byte
 * per feed. Whatever the cut, the outcome must be the same: accepted or
 * refused alike and, when accepted, the same body bytes and the same number
 * of messages (framing checks that span feeds, such as a chunk's closing
 * CRLF, must not depend on where the input was cut). */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "relay/http1.h"

struct out {
	uint64_t hash;
	size_t body, heads, completes;
};

static int
on_head(const struct http1_msg *m, void *arg)
{
	(void)http1_msg_get(m, "Content-Type");
	(void)http1_msg_has_token(m, "Connection", "upgrade");
	((struct out *)arg)->heads++;
	return 0;
}

static int
on_body(const uint8_t *d, size_t n, void *arg)
{
	struct out *o = arg;
	size_t i;

	for (i = 0; i < n; i++)
		o->hash = (o->hash ^ d[i]) * 1099511628211ull;
	o->body += n;
	return 0;
}

static int
on_complete(void *arg)
{
	((struct out *)arg)->completes++;
	return 0;
}

/* Feeds d in pieces: the first `split` bytes, then the rest in pieces of
 * `step` bytes (0: all at once). Returns true when nothing was refused. */
static bool
run(enum http1_kind kind, const uint8_t *d, size_t n, size_t split, size_t step, struct out *o)
{
	struct http1_callbacks cb = { .on_head = on_head, .on_body = on_body,
	    .on_complete = on_complete };
	struct http1_limits lim = { .max_head = 4096, .max_headers = 20 };
	struct http1 *p = http1_new(kind, &lim, &cb, o);
	struct shir_error e;
	size_t used, off = 0;
	bool ok = true;

	if (p == NULL)
		return false;
	if (split > n)
		split = n;
	while (ok && off < n) {
		size_t len = off == 0 && split > 0 ? split : step ? step : n - off;

		if (len > n - off)
			len = n - off;
		if (http1_feed(p, d + off, len, &used, &e) != 0)
			ok = false;
		else if (used < len)
			break;	/* an upgrade: the rest is not HTTP */
		off += len;
	}
	if (ok && http1_state(p) != HTTP1_S_UPGRADED)
		(void)http1_eof(p, &e);
	http1_free(p);
	return ok;
}

static void
compare(enum http1_kind kind, const uint8_t *d, size_t n, size_t split)
{
	struct out a = { 0 }, b = { 0 }, c = { 0 };
	bool oka = run(kind, d, n, n, 0, &a);
	bool okb = run(kind, d, n, split, 0, &b);
	bool okc = n <= 2048 ? run(kind, d, n, 1, 1, &c) : oka;

	if (oka != okb || oka != okc ||
	    (oka && (a.hash != b.hash || a.body != b.body || a.completes != b.completes)) ||
	    (oka && n <= 2048 && (a.hash != c.hash || a.body != c.body || a.completes != c.completes))) {
		size_t i;

		fprintf(stderr, "fuzz_http1: %s split at %zu: whole ok=%d body=%zu msgs=%zu, split "
		    "ok=%d body=%zu msgs=%zu, bytewise ok=%d body=%zu msgs=%zu; input: ",
		    kind == HTTP1_REQUEST ? "request" : "response", split, oka, a.body, a.completes,
		    okb, b.body, b.completes, okc, c.body, c.completes);
		for (i = 0; i < n; i++)
			fprintf(stderr, d[i] >= 32 && d[i] < 127 && d[i] != '\\' ? "%c" : "\\x%02x", d[i]);
		fprintf(stderr, "\n");
		abort();	/* the outcome depends on where the input was cut */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t split;

	if (size == 0)
		return 0;
	split = data[0];
	compare(HTTP1_REQUEST, data + 1, size - 1, split);
	compare(HTTP1_RESPONSE, data + 1, size - 1, split);
	return 0;
}
