/* Fuzz target: relay/http1 (the HTTP/1.1 front end and the WebSocket upgrade
 * parser). The input is parsed as a request stream and as a response stream,
 * each split in two at a position taken from the first byte. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "relay/http1.h"

static int
on_head(const struct http1_msg *m, void *arg)
{
	(void)http1_msg_get(m, "Content-Type");
	(void)http1_msg_has_token(m, "Connection", "upgrade");
	return 0;
}

static void
run(enum http1_kind kind, const uint8_t *d, size_t n, size_t split)
{
	struct http1_callbacks cb = { .on_head = on_head };
	struct http1_limits lim = { .max_head = 4096, .max_headers = 20 };
	struct http1 *p = http1_new(kind, &lim, &cb, NULL);
	struct shir_error e;
	size_t used;

	if (p == NULL)
		return;
	if (split > n)
		split = n;
	if (http1_feed(p, d, split, &used, &e) == 0 && used == split)
		http1_feed(p, d + split, n - split, &used, &e);
	http1_eof(p, &e);
	http1_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t split;

	if (size == 0)
		return 0;
	split = data[0];
	run(HTTP1_REQUEST, data + 1, size - 1, split);
	run(HTTP1_RESPONSE, data + 1, size - 1, split);
	return 0;
}
