/* gzip_out: see gzip_out.h. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "node/copy/gzip_out.h"

#define GZ_OUT 65536

struct gzip_out {
	z_stream z;
	gzip_emit_fn emit;
	void *arg;
	unsigned char out[GZ_OUT];
	int failed;
};

struct gzip_out *
gzip_out_new(int level, gzip_emit_fn emit, void *arg)
{
	struct gzip_out *g = calloc(1, sizeof *g);

	if (g == NULL)
		return NULL;
	/* windowBits 15 + 16: a gzip header and trailer; memLevel 8, zlib's default */
	if (deflateInit2(&g->z, level < 1 || level > 9 ? 6 : level, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		free(g);
		return NULL;
	}
	g->emit = emit;
	g->arg = arg;
	return g;
}

/* Deflates the input in hand with flush, emitting each full buffer. */
static int
run(struct gzip_out *g, int flush)
{
	int rc;

	do {
		size_t have;

		g->z.next_out = g->out;
		g->z.avail_out = GZ_OUT;
		rc = deflate(&g->z, flush);
		if (rc == Z_STREAM_ERROR)
			return -1;
		have = GZ_OUT - g->z.avail_out;
		if (have > 0 && g->emit(g->arg, g->out, have) != 0)
			return -1;
	} while (g->z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
	return 0;
}

int
gzip_out_write(struct gzip_out *g, const void *p, size_t n)
{
	const unsigned char *c = p;

	if (g->failed)
		return -1;
	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;

		g->z.next_in = (unsigned char *)(uintptr_t)c;
		g->z.avail_in = k;
		if (run(g, Z_NO_FLUSH) != 0) {
			g->failed = 1;
			return -1;
		}
		c += k;
		n -= k;
	}
	return 0;
}

int
gzip_out_finish(struct gzip_out *g)
{
	if (g->failed)
		return -1;
	g->z.next_in = NULL;
	g->z.avail_in = 0;
	if (run(g, Z_FINISH) != 0) {
		g->failed = 1;
		return -1;
	}
	return 0;
}

void
gzip_out_free(struct gzip_out *g)
{
	if (g == NULL)
		return;
	deflateEnd(&g->z);
	free(g);
}
