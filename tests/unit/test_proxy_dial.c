/* Unit tests for proxy_dial() on a real event loop with loopback sockets:
 * the callback never runs inside proxy_dial(), refused and timed-out dials
 * report their cause, cancel means no callback (and no leak, under ASan),
 * loopback destinations go direct even with a proxy configured. Tunnels
 * through real proxies are in tests/integration/test_proxy.py. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "node/conf.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

struct result {
	int called;
	int code;
	char msg[512];
	int connected_port;
	struct event_base *base;
};

static void
on_dial(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct result *r = arg;

	r->called++;
	if (bev == NULL) {
		r->code = err->code;
		snprintf(r->msg, sizeof r->msg, "%.500s", err->msg);
	} else {
		struct sockaddr_in sa;
		socklen_t sl = sizeof sa;

		if (getpeername(bufferevent_getfd(bev), (struct sockaddr *)&sa, &sl) == 0)
			r->connected_port = ntohs(sa.sin_port);
		bufferevent_free(bev);
	}
	event_base_loopbreak(r->base);
}

static int
listener(int *port, int backlog)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	if (backlog >= 0)
		assert_int_equal(listen(fd, backlog), 0);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	*port = ntohs(sa.sin_port);
	return fd;
}

static struct proxy_config *
custom_config(int proxy_port)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;
	struct conf *c = NULL;
	char text[256];

	if (proxy_port > 0)
		snprintf(text, sizeof text, "[proxy]\nmode = custom\naddress = 127.0.0.1\nport = %d\n",
		    proxy_port);
	else
		snprintf(text, sizeof text, "[proxy]\nmode = none\n");
	assert_int_equal(conf_load_buffer("t.conf", text, strlen(text), &c, &err), 0);
	assert_int_equal(proxy_config_load(&c->proxy, &pc, &err), 0);
	conf_free(c);
	return pc;
}

static void
run_until_called(struct result *r, int secs)
{
	struct timeval tv = { secs, 0 };

	event_base_loopexit(r->base, &tv);
	event_base_dispatch(r->base);
}

static void
test_refused_direct(void **state)
{
	struct result r = { 0 };
	struct proxy_config *pc = custom_config(0);
	int port, fd = listener(&port, -1);	/* bound, not listening: refused */

	r.base = event_base_new();
	assert_non_null(proxy_dial(r.base, pc, "https://127.0.0.1/", "127.0.0.1", port, 5, on_dial,
	    &r));
	assert_int_equal(r.called, 0);	/* never from inside proxy_dial() */
	run_until_called(&r, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, SHIR_ECONNREFUSED);
	assert_non_null(strstr(r.msg, "refused the connection"));
	close(fd);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

static void
test_refused_proxy(void **state)
{
	struct result r = { 0 };
	int pport, pfd = listener(&pport, -1);
	struct proxy_config *pc = custom_config(pport);

	r.base = event_base_new();
	assert_non_null(proxy_dial(r.base, pc, "https://relay.example.net/", "relay.example.net",
	    443, 5, on_dial, &r));
	proxy_config_unref(pc);	/* the dial holds its own reference */
	run_until_called(&r, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, SHIR_ECONNREFUSED);
	assert_non_null(strstr(r.msg, "proxy http://127.0.0.1:"));
	close(pfd);
	event_base_free(r.base);
}

static void
test_loopback_goes_direct(void **state)
{
	struct result r = { 0 };
	int pport, pfd = listener(&pport, -1);	/* a dead proxy that must not be used */
	int dport, dfd = listener(&dport, 4);
	struct proxy_config *pc = custom_config(pport);

	r.base = event_base_new();
	assert_non_null(proxy_dial(r.base, pc, "https://localhost/", "127.0.0.1", dport, 5, on_dial,
	    &r));
	run_until_called(&r, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.connected_port, dport);
	close(pfd);
	close(dfd);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

static void
test_timeout(void **state)
{
	struct result r = { 0 };
	int pport, pfd = listener(&pport, 4);	/* accepts in the kernel, never answers */
	struct proxy_config *pc = custom_config(pport);

	r.base = event_base_new();
	assert_non_null(proxy_dial(r.base, pc, "https://relay.example.net/", "relay.example.net",
	    443, 1, on_dial, &r));
	run_until_called(&r, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, SHIR_ETIMEDOUT);
	assert_non_null(strstr(r.msg, "timed out after 1 s"));
	close(pfd);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

static void
cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	proxy_dial_cancel(arg);
}

static void
test_cancel(void **state)
{
	struct result r = { 0 };
	int pport, pfd = listener(&pport, 4);
	struct proxy_config *pc = custom_config(pport);
	struct proxy_dial *d;
	struct event *ev;
	struct timeval t = { 0, 200 * 1000 };

	r.base = event_base_new();
	d = proxy_dial(r.base, pc, "https://relay.example.net/", "relay.example.net", 443, 5,
	    on_dial, &r);
	assert_non_null(d);
	ev = evtimer_new(r.base, cancel_cb, d);
	evtimer_add(ev, &t);
	run_until_called(&r, 1);
	assert_int_equal(r.called, 0);
	event_free(ev);
	/* cancelled before its first step ran */
	d = proxy_dial(r.base, pc, "https://relay.example.net/", "relay.example.net", 443, 5,
	    on_dial, &r);
	proxy_dial_cancel(d);
	run_until_called(&r, 1);
	assert_int_equal(r.called, 0);
	close(pfd);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

static void
test_bad_url(void **state)
{
	struct result r = { 0 };
	struct proxy_config *pc = custom_config(0);

	r.base = event_base_new();
	assert_non_null(proxy_dial(r.base, pc, "no scheme here", "x", 1, 5, on_dial, &r));
	assert_int_equal(r.called, 0);
	run_until_called(&r, 2);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, SHIR_EINVAL);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

/* A CONNECT proxy inside the test's own loop: answers 200 or 407. */
struct fake_proxy {
	struct evconnlistener *l;
	int port;
	int answer;		/* 200 or 407 */
	int connects;
	char last[256];
	struct bufferevent *conns[8];
};

static void
fake_stop(struct fake_proxy *fp)
{
	size_t i;

	for (i = 0; i < 8; i++)
		if (fp->conns[i])
			bufferevent_free(fp->conns[i]);
	evconnlistener_free(fp->l);
}

static void
fake_read(struct bufferevent *bev, void *arg)
{
	struct fake_proxy *fp = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	size_t n;

	if (end.pos < 0)
		return;
	n = (size_t)end.pos < sizeof fp->last - 1 ? (size_t)end.pos : sizeof fp->last - 1;
	evbuffer_copyout(in, fp->last, n);
	fp->last[n] = '\0';
	evbuffer_drain(in, (size_t)end.pos + 4);
	fp->connects++;
	if (fp->answer == 200)
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "HTTP/1.1 200 Connection established\r\n\r\n");
	else
		evbuffer_add_printf(bufferevent_get_output(bev), "HTTP/1.1 407 Proxy Authentication "
		    "Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n");
}

static void
fake_event(struct bufferevent *bev, short what, void *arg)
{
	struct fake_proxy *fp = arg;
	size_t i;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	for (i = 0; i < 8; i++)
		if (fp->conns[i] == bev)
			fp->conns[i] = NULL;
	bufferevent_free(bev);
}

static void
fake_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	struct fake_proxy *fp = arg;
	size_t i;

	for (i = 0; i < 8; i++)
		if (fp->conns[i] == NULL) {
			fp->conns[i] = bev;
			break;
		}
	bufferevent_setcb(bev, fake_read, NULL, fake_event, arg);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
fake_start(struct event_base *base, struct fake_proxy *fp, int answer)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;

	memset(fp, 0, sizeof *fp);
	fp->answer = answer;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fp->l = evconnlistener_new_bind(base, fake_accept, fp, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sa, sizeof sa);
	assert_non_null(fp->l);
	getsockname(evconnlistener_get_fd(fp->l), (struct sockaddr *)&sa, &sl);
	fp->port = ntohs(sa.sin_port);
}

static void
decision2(struct proxy_decision *dec, int p1, int p2)
{
	memset(dec, 0, sizeof *dec);
	dec->nproxies = 2;
	snprintf(dec->proxies[0], sizeof dec->proxies[0], "http://127.0.0.1:%d", p1);
	snprintf(dec->proxies[1], sizeof dec->proxies[1], "http://127.0.0.1:%d", p2);
	snprintf(dec->reason, sizeof dec->reason, "test");
}

static void
test_failover_to_second_proxy(void **state)
{
	struct result r = { 0 };
	struct proxy_config *pc = custom_config(0);
	struct proxy_decision dec;
	struct fake_proxy ok;
	int dead, dfd = listener(&dead, -1);

	r.base = event_base_new();
	fake_start(r.base, &ok, 200);
	decision2(&dec, dead, ok.port);
	assert_non_null(proxy_dial_decided(r.base, pc, &dec, 0, "relay.example.net", 443, 5,
	    on_dial, &r));
	run_until_called(&r, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, 0);
	assert_int_equal(ok.connects, 1);
	assert_non_null(strstr(ok.last, "CONNECT relay.example.net:443 HTTP/1.1"));
	fake_stop(&ok);
	close(dfd);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

static void
test_no_failover_after_407(void **state)
{
	struct result r = { 0 };
	struct proxy_config *pc = custom_config(0);
	struct proxy_decision dec;
	struct fake_proxy deny, ok;

	r.base = event_base_new();
	fake_start(r.base, &deny, 407);
	fake_start(r.base, &ok, 200);
	decision2(&dec, deny.port, ok.port);
	assert_non_null(proxy_dial_decided(r.base, pc, &dec, 0, "relay.example.net", 443, 5,
	    on_dial, &r));
	run_until_called(&r, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, SHIR_EAUTH);
	assert_non_null(strstr(r.msg, "the proxy offers: Basic"));
	assert_int_equal(ok.connects, 0);
	fake_stop(&deny);
	fake_stop(&ok);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

static void
test_all_proxies_fail(void **state)
{
	struct result r = { 0 };
	struct proxy_config *pc = custom_config(0);
	struct proxy_decision dec;
	int p1, p2, f1 = listener(&p1, -1), f2 = listener(&p2, -1);
	char want[64];

	r.base = event_base_new();
	decision2(&dec, p1, p2);
	assert_non_null(proxy_dial_decided(r.base, pc, &dec, 0, "relay.example.net", 443, 5,
	    on_dial, &r));
	run_until_called(&r, 5);
	assert_int_equal(r.code, SHIR_ECONNREFUSED);
	snprintf(want, sizeof want, "(earlier: proxy http://127.0.0.1:%d refused", p1);
	if (strstr(r.msg, want) == NULL)
		fail_msg("%s", r.msg);
	close(f1);
	close(f2);
	proxy_config_unref(pc);
	event_base_free(r.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_direct),
		cmocka_unit_test(test_refused_proxy),
		cmocka_unit_test(test_loopback_goes_direct),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_bad_url),
		cmocka_unit_test(test_failover_to_second_proxy),
		cmocka_unit_test(test_no_failover_after_407),
		cmocka_unit_test(test_all_proxies_fail),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
