/* Unit tests for api_stream, the bounded pipe of a streamed API answer: a
 * producer thread writes far more than the pipe holds, a slow reader on the
 * loop thread takes it all in order, the pipe never holds more than its
 * capacity, on_full runs once, and a cancel wakes a producer waiting for
 * room. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "node/api_stream.h"

#define CAP (8 * 1024)
#define TOTAL (1024 * 1024)

struct ctx {
	struct api_stream *s;
	struct event_base *base;
	struct event *tick;
	int fulls;
	size_t got, max_seen;
	int end;
	int bad_byte;
	int write_rc;
};

static void *
producer(void *arg)
{
	struct ctx *x = arg;
	unsigned char buf[1000];
	size_t sent = 0;

	while (sent < TOTAL) {
		size_t n = TOTAL - sent < sizeof buf ? TOTAL - sent : sizeof buf, i;

		for (i = 0; i < n; i++)
			buf[i] = (unsigned char)((sent + i) % 251);
		if ((x->write_rc = api_stream_write(x->s, buf, n)) != 0)
			return NULL;
		sent += n;
	}
	api_stream_end(x->s, 0);
	return NULL;
}

static void
on_full(void *arg)
{
	((struct ctx *)arg)->fulls++;
}

/* the reader: takes a little at a time (a slow peer) */
static void
read_some(struct ctx *x)
{
	unsigned char buf[3000];
	size_t n, i, held = api_stream_buffered(x->s);

	if (held > x->max_seen)
		x->max_seen = held;
	n = api_stream_read(x->s, buf, sizeof buf, &x->end);
	for (i = 0; i < n; i++)
		if (buf[i] != (unsigned char)((x->got + i) % 251))
			x->bad_byte = 1;
	x->got += n;
	if (x->end != 0)
		event_base_loopbreak(x->base);
}

static void
on_readable(void *arg)
{
	read_some(arg);
}

static void
on_tick(evutil_socket_t fd, short w, void *arg)
{
	read_some(arg);
}

static void
test_bounded_in_order(void **state)
{
	struct ctx x;
	pthread_t t;
	struct timeval tv = { 0, 200 };

	memset(&x, 0, sizeof x);
	evthread_use_pthreads();
	x.base = event_base_new();
	x.s = api_stream_new(x.base, CAP, on_full, &x);
	assert_non_null(x.s);
	api_stream_set_reader(x.s, on_readable, &x);
	x.tick = event_new(x.base, -1, EV_PERSIST, on_tick, &x);
	evtimer_add(x.tick, &tv);
	assert_int_equal(pthread_create(&t, NULL, producer, &x), 0);
	event_base_dispatch(x.base);
	pthread_join(t, NULL);
	assert_int_equal(x.write_rc, 0);
	assert_int_equal(x.end, 1);
	assert_int_equal(x.got, TOTAL);
	assert_int_equal(x.bad_byte, 0);
	assert_true(x.max_seen <= CAP);
	assert_true(api_stream_peak_buffered() <= CAP);
	assert_int_equal(api_stream_total_buffered(), 0);
	assert_int_equal(x.fulls, 1);
	assert_true(api_stream_started(x.s));
	event_free(x.tick);
	api_stream_unref(x.s);
	event_base_free(x.base);
}

static void
on_full_cancel(void *arg)
{
	struct ctx *x = arg;

	x->fulls++;
	api_stream_cancel(x->s);	/* the reader went away */
	event_base_loopbreak(x->base);
}

static void
on_idle(evutil_socket_t fd, short w, void *arg)
{
}

static void
test_cancel_wakes_producer(void **state)
{
	struct ctx x;
	struct timeval tv = { 0, 10000 };
	pthread_t t;
	int end;
	char buf[64];

	memset(&x, 0, sizeof x);
	evthread_use_pthreads();
	x.base = event_base_new();
	x.s = api_stream_new(x.base, CAP, on_full_cancel, &x);
	assert_non_null(x.s);
	/* a timer keeps the loop running until on_full (no reader here) */
	x.tick = event_new(x.base, -1, EV_PERSIST, on_idle, &x);
	evtimer_add(x.tick, &tv);
	assert_int_equal(pthread_create(&t, NULL, producer, &x), 0);
	event_base_dispatch(x.base);
	event_free(x.tick);
	pthread_join(t, NULL);	/* returns: the waiting write failed */
	assert_int_equal(x.write_rc, -1);
	assert_int_equal(x.fulls, 1);
	assert_int_equal(api_stream_buffered(x.s), CAP);
	assert_int_equal(api_stream_read(x.s, buf, sizeof buf, &end), sizeof buf);
	assert_int_equal(end, 0);
	assert_int_equal(api_stream_write(x.s, "x", 1), -1);
	api_stream_unref(x.s);
	assert_int_equal(api_stream_total_buffered(), 0);
	event_base_free(x.base);
}

static void
test_small_answer_never_full(void **state)
{
	struct event_base *base = event_base_new();
	struct ctx x;
	struct api_stream *s;
	char buf[16];
	int end;

	memset(&x, 0, sizeof x);
	s = api_stream_new(base, CAP, on_full, &x);
	assert_int_equal(api_stream_write(s, "{\"a\":1}", 7), 0);
	api_stream_end(s, 0);
	assert_false(api_stream_started(s));
	assert_int_equal(api_stream_read(s, buf, sizeof buf, &end), 7);
	assert_int_equal(end, 1);
	assert_memory_equal(buf, "{\"a\":1}", 7);
	assert_int_equal(x.fulls, 0);
	api_stream_unref(s);
	/* a failed end is seen after the bytes */
	s = api_stream_new(base, CAP, NULL, NULL);
	assert_int_equal(api_stream_write(s, "ab", 2), 0);
	api_stream_end(s, 1);
	assert_int_equal(api_stream_read(s, buf, 1, &end), 1);
	assert_int_equal(end, 0);
	assert_int_equal(api_stream_read(s, buf, sizeof buf, &end), 1);
	assert_int_equal(end, -1);
	api_stream_unref(s);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded_in_order),
		cmocka_unit_test(test_cancel_wakes_producer),
		cmocka_unit_test(test_small_answer_never_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
