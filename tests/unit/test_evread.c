/* Unit tests for evread: after libevent's own 4 KiB read, evread_more takes
 * the rest the socket holds in one call, up to the limit; it never blocks,
 * leaves EOF for the bufferevent to report, and leaves alone what is not a
 * plain socket or has reading disabled. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/evread.h"

#define BIG (200 * 1024)

struct rd {
	size_t limit;
	size_t first_len;	/* input length after the first callback's evread_more */
	size_t total;		/* bytes drained by the callbacks */
	int calls, eof;
	size_t added;
	uint8_t *got;
};

static void
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct rd *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;

	r->added += evread_more(bev, r->limit);
	n = evbuffer_get_length(in);
	assert_true(n <= (r->limit > 4096 ? r->limit : 4096));
	if (r->calls++ == 0)
		r->first_len = n;
	assert_int_equal(evbuffer_remove(in, r->got + r->total, n), (int)n);
	r->total += n;
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct rd *r = arg;

	if (what & BEV_EVENT_EOF) {
		r->eof = 1;
		event_base_loopbreak(bufferevent_get_base(bev));
	}
}

/* 200 KiB waiting, then EOF: all of it arrives in order, in a few callbacks
 * instead of fifty, and EOF comes after the data. blocking: the socket the
 * bufferevent reads was left blocking (evread_more must not block on it). */
static void
run_stream(size_t limit, int blocking)
{
	struct event_base *base = event_base_new();
	uint8_t *data = malloc(BIG);
	struct rd r = { .limit = limit, .got = malloc(BIG) };
	struct bufferevent *bev;
	int sv[2], one = BIG * 2;
	size_t i;

	assert_non_null(base);
	for (i = 0; i < BIG; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 9));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
	if (!blocking)
		evutil_make_socket_nonblocking(sv[0]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, on_read, NULL, on_event, &r);
	bufferevent_enable(bev, EV_READ);
	write_all(sv[1], data, BIG);
	close(sv[1]);
	event_base_dispatch(base);
	assert_int_equal(r.eof, 1);
	assert_int_equal(r.total, BIG);
	assert_memory_equal(r.got, data, BIG);
	assert_true(r.added > 0);
	assert_true(r.first_len > 4096);	/* more than libevent's single read */
	assert_true(r.first_len <= limit);
	assert_true(r.calls < BIG / 4096);
	bufferevent_free(bev);
	event_base_free(base);
	free(data);
	free(r.got);
}

static void
test_stream_nonblocking(void **state)
{
	run_stream(256 * 1024, 0);
}

static void
test_stream_blocking_socket(void **state)
{
	run_stream(256 * 1024, 1);
}

static void
test_stream_small_limit(void **state)
{
	run_stream(16 * 1024, 0);	/* the limit caps what is buffered */
}

static void prefill(struct bufferevent *bev);

/* Nothing waiting: returns 0 at once, even on a blocking socket. */
static void
test_nothing_waiting(void **state)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_enable(bev, EV_READ);
	prefill(bev);
	assert_int_equal(evread_more(bev, 65536), 0);
	evbuffer_drain(bufferevent_get_input(bev), 4096);
	/* the input buffer still takes libevent's own reads afterwards */
	write_all(sv[1], (const uint8_t *)"abc", 3);
	event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(evbuffer_get_length(bufferevent_get_input(bev)), 3);
	close(sv[1]);
	bufferevent_free(bev);
	event_base_free(base);
}

/* What libevent's own read leaves: 4 KiB in the input. */
static void
prefill(struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char x[4096];

	memset(x, 'x', sizeof x);
	evbuffer_unfreeze(in, 0);
	assert_int_equal(evbuffer_add(in, x, sizeof x), 0);
	evbuffer_freeze(in, 0);
}

/* Less than 4 KiB buffered (libevent found the socket nearly empty), reading
 * disabled (backpressure), a limit already reached, or not a socket (a
 * bufferevent pair): nothing is read. */
static void
test_left_alone(void **state)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev, *pair[2];
	int sv[2];
	char buf[4096 + 8];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	write_all(sv[1], (const uint8_t *)"0123456789", 10);
	bufferevent_enable(bev, EV_READ);
	assert_int_equal(evread_more(bev, 65536), 0);	/* under 4 KiB buffered */
	prefill(bev);
	bufferevent_disable(bev, EV_READ);
	assert_int_equal(evread_more(bev, 65536), 0);
	bufferevent_enable(bev, EV_READ);
	assert_int_equal(evread_more(bev, 4096 + 4), 4);
	assert_int_equal(evread_more(bev, 4096 + 4), 0);	/* limit reached */
	assert_int_equal(evread_more(bev, 65536), 6);
	assert_int_equal(evbuffer_remove(bufferevent_get_input(bev), buf, sizeof buf), (int)sizeof buf);
	assert_memory_equal(buf + 4096, "01234567", 8);
	close(sv[1]);
	bufferevent_free(bev);

	assert_int_equal(bufferevent_pair_new(base, 0, pair), 0);
	bufferevent_enable(pair[1], EV_READ);
	bufferevent_write(pair[0], "x", 1);
	prefill(pair[1]);
	assert_int_equal(evread_more(pair[1], 65536), 0);
	bufferevent_free(pair[0]);
	bufferevent_free(pair[1]);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_nonblocking),
		cmocka_unit_test(test_stream_blocking_socket),
		cmocka_unit_test(test_stream_small_limit),
		cmocka_unit_test(test_nothing_waiting),
		cmocka_unit_test(test_left_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
