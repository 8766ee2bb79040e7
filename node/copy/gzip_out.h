/* gzip_out: a gzip stream (RFC 1952, zlib's deflate) written through a
 * callback, for copy jobs' text formats (format.compressionCodec "gzip").
 * Bounded: zlib's own state (about 256 KiB at level 6) and one 64 KiB output
 * buffer, whatever the input; each full output buffer goes to emit before
 * more input is taken. */
#ifndef SHIR_GZIP_OUT_H
#define SHIR_GZIP_OUT_H

#include <stddef.h>

struct gzip_out;

/* emit returns 0, or -1 to stop (the write then fails). */
typedef int (*gzip_emit_fn)(void *arg, const void *p, size_t n);

/* level 1 (fastest) to 9; NULL when out of memory. */
struct gzip_out *gzip_out_new(int level, gzip_emit_fn emit, void *arg);
int gzip_out_write(struct gzip_out *g, const void *p, size_t n);
/* Ends the stream (the trailer: CRC-32 and length); 0 or -1. */
int gzip_out_finish(struct gzip_out *g);
void gzip_out_free(struct gzip_out *g);

#endif
