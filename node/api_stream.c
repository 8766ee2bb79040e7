/* api_stream: a bounded pipe for a streamed API answer (api_stream.h). */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "node/api_stream.h"

#define API_STREAM_FIRST (16 * 1024)	/* the buffer grows from this to cap */
#define API_STREAM_NOTIFY (16 * 1024)	/* a waiting reader is woken for this much, or the end */

struct api_stream {
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* the producer waits for room */
	atomic_int refs;
	char *buf;
	size_t size, cap, off, len;
	int ended;		/* 1 complete, -1 failed */
	int cancelled;
	int full_said;		/* on_full was asked for */
	int reader_waits;	/* a read found it empty: tell the reader */
	int pending_full, pending_read;
	struct event *ev;
	void (*on_full)(void *arg);
	void *full_arg;
	void (*readable)(void *arg);
	void *read_arg;
};

static atomic_size_t api_stream_total, api_stream_peak;

static void
api_stream_count(long delta)
{
	size_t now = atomic_fetch_add(&api_stream_total, (size_t)delta) + (size_t)delta;
	size_t peak = atomic_load(&api_stream_peak);

	while (delta > 0 && now > peak && !atomic_compare_exchange_weak(&api_stream_peak, &peak, now))
		;
}

size_t
api_stream_total_buffered(void)
{
	return atomic_load(&api_stream_total);
}

size_t
api_stream_peak_buffered(void)
{
	return atomic_load(&api_stream_peak);
}

/* Loop thread: what the producer asked for. */
static void
api_stream_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_stream *s = arg;
	int full, rd;

	void (*on_full)(void *arg), (*readable)(void *arg);
	void *full_arg, *read_arg;

	pthread_mutex_lock(&s->mu);
	full = s->pending_full;
	rd = s->pending_read;
	s->pending_full = s->pending_read = 0;
	on_full = s->on_full;
	full_arg = s->full_arg;
	pthread_mutex_unlock(&s->mu);
	/* the callbacks may drop references: hold one across them */
	atomic_fetch_add(&s->refs, 1);
	if (full && on_full != NULL)
		on_full(full_arg);
	pthread_mutex_lock(&s->mu);
	readable = s->readable;
	read_arg = s->read_arg;
	pthread_mutex_unlock(&s->mu);
	if (rd && readable != NULL)
		readable(read_arg);
	api_stream_unref(s);
}

struct api_stream *
api_stream_new(struct event_base *base, size_t cap, void (*on_full)(void *arg), void *arg)
{
	struct api_stream *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	if ((s->ev = event_new(base, -1, 0, api_stream_cb, s)) == NULL) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	atomic_init(&s->refs, 1);
	s->cap = cap > 0 ? cap : API_STREAM_CAP;
	s->on_full = on_full;
	s->full_arg = arg;
	return s;
}

void
api_stream_forget_producer(struct api_stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->on_full = NULL;
	s->full_arg = NULL;
	pthread_mutex_unlock(&s->mu);
}

int
api_stream_started(struct api_stream *s)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = s->full_said;
	pthread_mutex_unlock(&s->mu);
	return v;
}

void
api_stream_ref(struct api_stream *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void
api_stream_unref(struct api_stream *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) > 1)
		return;
	event_free(s->ev);
	api_stream_count(-(long)s->len);
	free(s->buf);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* With mu held: room for at least one byte, growing the buffer up to cap. */
static size_t
api_stream_room(struct api_stream *s)
{
	if (s->len == 0)
		s->off = 0;
	if (s->off + s->len == s->size && s->off > 0) {
		memmove(s->buf, s->buf + s->off, s->len);
		s->off = 0;
	}
	if (s->off + s->len == s->size && s->size < s->cap) {
		size_t nsize = s->size ? s->size * 2 : API_STREAM_FIRST;
		char *nb;

		if (nsize > s->cap)
			nsize = s->cap;
		if ((nb = realloc(s->buf, nsize)) == NULL)
			return 0;
		s->buf = nb;
		s->size = nsize;
	}
	return s->size - s->off - s->len;
}

int
api_stream_write(struct api_stream *s, const void *d, size_t n)
{
	const char *p = d;

	pthread_mutex_lock(&s->mu);
	while (n > 0) {
		size_t room, k;

		if (s->cancelled || s->ended) {
			pthread_mutex_unlock(&s->mu);
			return -1;
		}
		room = api_stream_room(s);
		if (room == 0) {
			if (s->len == 0) {	/* out of memory */
				pthread_mutex_unlock(&s->mu);
				return -1;
			}
			if (!s->full_said) {
				s->full_said = 1;
				s->pending_full = 1;
				event_active(s->ev, EV_READ, 0);
			}
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		k = n < room ? n : room;
		memcpy(s->buf + s->off + s->len, p, k);
		s->len += k;
		api_stream_count((long)k);
		p += k;
		n -= k;
		if (s->reader_waits && (s->len >= API_STREAM_NOTIFY || s->len == s->cap)) {
			s->reader_waits = 0;
			s->pending_read = 1;
			event_active(s->ev, EV_READ, 0);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void
api_stream_end(struct api_stream *s, int failed)
{
	pthread_mutex_lock(&s->mu);
	if (!s->ended) {
		s->ended = failed ? -1 : 1;
		if (s->reader_waits) {
			s->reader_waits = 0;
			s->pending_read = 1;
			event_active(s->ev, EV_READ, 0);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

void
api_stream_cancel(struct api_stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->cancelled = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void
api_stream_set_reader(struct api_stream *s, void (*readable)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->readable = readable;
	s->read_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

size_t
api_stream_read(struct api_stream *s, void *buf, size_t n, int *end)
{
	size_t k;

	pthread_mutex_lock(&s->mu);
	k = n < s->len ? n : s->len;
	if (k > 0) {
		memcpy(buf, s->buf + s->off, k);
		s->off += k;
		s->len -= k;
		api_stream_count(-(long)k);
		pthread_cond_signal(&s->cv);	/* room for the producer */
	}
	*end = s->len == 0 ? s->ended : 0;
	if (k == 0 && *end == 0)
		s->reader_waits = 1;
	if (s->len == 0 && s->ended != 0 && s->buf != NULL) {
		free(s->buf);	/* all read: the memory goes now */
		s->buf = NULL;
		s->size = s->off = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return k;
}

size_t
api_stream_buffered(struct api_stream *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->len;
	pthread_mutex_unlock(&s->mu);
	return n;
}
