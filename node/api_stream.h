/* api_stream: a streamed answer of the node API (docs/self-contained.md). A
 * bounded byte pipe between a producer (a worker thread: the answer as the
 * store's rows arrive) and a channel that sends the bytes as its peer takes
 * them (the loop thread). The producer waits while the pipe is full, so a
 * peer that stops reading stops the store's row fetch, and the node holds at
 * most the pipe's capacity of the answer.
 *
 * Ownership: references (the producer's and the channel's), dropped with
 * api_stream_unref() on any thread. The callbacks run on the loop thread. */
#ifndef SHIR_API_STREAM_H
#define SHIR_API_STREAM_H

#include <stddef.h>

struct event_base;
struct api_stream;

#define API_STREAM_CAP (256 * 1024)	/* bytes a pipe holds */

/* A pipe of cap bytes (at most API_STREAM_CAP is sensible); one reference for
 * the producer. on_full runs (once, loop thread) when the producer first finds
 * the pipe full: the answer is larger than the pipe and must start leaving. */
struct api_stream *api_stream_new(struct event_base *base, size_t cap,
    void (*on_full)(void *arg), void *arg);
/* The producer's side is gone (loop thread): on_full will not run. */
void api_stream_forget_producer(struct api_stream *s);
/* Did the producer ever find the pipe full (is the answer leaving as a
 * stream)? Any thread. */
int api_stream_started(struct api_stream *s);
void api_stream_ref(struct api_stream *s);
void api_stream_unref(struct api_stream *s);

/* Producer (any thread). Writes all of d, waiting while the pipe is full;
 * returns 0, or -1 once the pipe was cancelled (the reader went away, or
 * api_stream_cancel): the producer then stops its work. */
int api_stream_write(struct api_stream *s, const void *d, size_t n);
/* The end of the answer: complete, or failed (the reader resets it). */
void api_stream_end(struct api_stream *s, int failed);
/* Either side: writes fail from now on; a waiting producer wakes. */
void api_stream_cancel(struct api_stream *s);

/* Reader (loop thread). readable runs when bytes or the end arrive after a
 * read found the pipe empty. */
void api_stream_set_reader(struct api_stream *s, void (*readable)(void *arg), void *arg);
/* Takes up to n bytes. *end: 0 more may come, 1 complete and all read, -1
 * failed (after the bytes read). Returns the bytes taken; 0 with *end == 0:
 * nothing yet (readable will run). */
size_t api_stream_read(struct api_stream *s, void *buf, size_t n, int *end);
/* Bytes waiting in the pipe now. */
size_t api_stream_buffered(struct api_stream *s);

/* Bytes held in every pipe of the process now (a gauge for /metrics and the
 * memory tests), and the most ever held at once. */
size_t api_stream_total_buffered(void);
size_t api_stream_peak_buffered(void);

#endif
