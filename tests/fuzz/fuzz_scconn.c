/* Fuzz target: the node's self-contained stream glue (node/selfcont/scconn):
 * bytes from the relay after the 101, fed to the nghttp2 server session and
 * the stream callbacks (headers, bodies, resets, GOAWAY, SETTINGS). Requests
 * are answered without the node API. The input starts after the client
 * preface, which is prepended so the session gets past it. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/selfcont/scconn.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct scctx ctx;
	struct scconn *c;

	memset(&ctx, 0, sizeof ctx);
	ctx.capacity = 8;
	if ((c = scconn_new_fuzz(&ctx)) == NULL)
		return 0;
	if (scconn_fuzz_feed(c, (const uint8_t *)preface, sizeof preface - 1) == 0)
		(void)scconn_fuzz_feed(c, data, size);
	scconn_free(c);
	return 0;
}
