/* listener_pump: a WebSocket sender for the listener benchmarks (loopback
 * only). It plays the part of a client of a forwarded TCP port:
 *
 *   listener_pump ws  URL MB        one tunnel: send MB MiB, read the echo back,
 *                                   print MiB/s and whether the SHA-256 matched
 *   listener_pump tcp HOST PORT MB  the same straight to a TCP echo server
 *   listener_pump hold URL COUNT    open COUNT tunnels (each checked with a
 *                                   round trip), print "HELD n", keep them until
 *                                   stdin closes
 *   listener_pump echo PORT         a TCP echo server on 127.0.0.1:PORT (0: any;
 *                                   prints "listening PORT")
 *
 * URL is ws://127.0.0.1:PORT/$hc/HC/tcp/NAME?sb-hc-action=connect; the SAS
 * token comes from the environment (SHIR_TOKEN), never from argv. */
#include "config.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>

#include "relay/hcdial.h"
#include "relay/ws.h"

#define CHUNK (64 * 1024)

struct pump {
	struct event_base *base;
	struct hcdial_url u;
	const char *token;
	int mode;		/* 0 ws throughput, 1 tcp throughput, 2 hold */
	size_t total, sent, got;
	EVP_MD_CTX *hs, *hg;
	unsigned char blk[CHUNK];
	struct timespec t0;
	int count, opened, held, failed;
	struct bufferevent *tcp;
	struct ws *ws;
	int done;
};

static double
pump_secs(const struct pump *p)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - p->t0.tv_sec) + (double)(t.tv_nsec - p->t0.tv_nsec) / 1e9;
}

static void
pump_finish(struct pump *p)
{
	unsigned char a[32], b[32];
	unsigned la = 0, lb = 0;
	double s = pump_secs(p);

	EVP_DigestFinal_ex(p->hs, a, &la);
	EVP_DigestFinal_ex(p->hg, b, &lb);
	printf("bytes=%zu secs=%.3f MiBps=%.1f sha256_match=%s\n", p->got, s,
	    (double)p->got / 1048576.0 / s, la == lb && memcmp(a, b, la) == 0 ? "yes" : "NO");
	fflush(stdout);
	p->done = 1;
	event_base_loopexit(p->base, NULL);
}

/* --- ws throughput ------------------------------------------------------- */

static void
pump_ws_fill(struct pump *p)
{
	while (p->sent < p->total && !ws_is_congested(p->ws)) {
		size_t n = p->total - p->sent < CHUNK ? p->total - p->sent : CHUNK;

		EVP_DigestUpdate(p->hs, p->blk, n);
		ws_send(p->ws, WS_OP_BINARY, p->blk, n);
		p->sent += n;
	}
}

static void
pump_ws_open(struct ws *ws, void *arg)
{
	struct pump *p = arg;

	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	pump_ws_fill(p);
}

static int
pump_ws_frag(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	struct pump *p = arg;

	EVP_DigestUpdate(p->hg, d, n);
	p->got += n;
	if (p->got >= p->total && !p->done)
		pump_finish(p);
	return WS_STREAM;
}

static void
pump_ws_writable(struct ws *ws, void *arg)
{
	pump_ws_fill(arg);
}

static void
pump_ws_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err,
    void *arg)
{
	fprintf(stderr, "listener_pump: handshake failed: %d %s\n", status,
	    status ? reason : err ? err->msg : "");
}

static void
pump_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct pump *p = arg;

	if (!p->done) {
		fprintf(stderr, "listener_pump: closed early (%d %s) after %zu bytes\n", code,
		    reason ? reason : "", p->got);
		p->failed = 1;
		event_base_loopexit(p->base, NULL);
	}
}

static const struct ws_callbacks pump_ws_cbs = {
	.on_open = pump_ws_open,
	.on_handshake_failed = pump_ws_failed,
	.on_fragment = pump_ws_frag,
	.on_writable = pump_ws_writable,
	.on_close = pump_ws_close,
};

/* --- hold many ----------------------------------------------------------------- */

struct held {
	struct pump *p;
	struct ws *ws;
	int ok;
};

static void
held_open(struct ws *ws, void *arg)
{
	ws_send(ws, WS_OP_BINARY, "x", 1);
}

static int
held_frag(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	struct held *h = arg;

	if (!h->ok) {
		h->ok = 1;
		h->p->held++;
		if (h->p->held + h->p->failed == h->p->count) {
			printf("HELD %d failed=%d\n", h->p->held, h->p->failed);
			fflush(stdout);
		}
	}
	return WS_STREAM;
}

static void
held_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct held *h = arg;

	if (!h->ok) {
		h->p->failed++;
		if (h->p->held + h->p->failed == h->p->count) {
			printf("HELD %d failed=%d\n", h->p->held, h->p->failed);
			fflush(stdout);
		}
	}
	h->ok = -1;
}

static const struct ws_callbacks held_cbs = {
	.on_open = held_open,
	.on_fragment = held_frag,
	.on_close = held_close,
};

static struct ws *
pump_connect(struct pump *p, const struct ws_callbacks *cb, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct sockaddr_in sin;
	struct ws_client_request rq;
	struct ws_options opt;
	static char host[300], auth[2048];
	const char *hdrs[2] = { auth, NULL };

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)p->u.port);
	inet_pton(AF_INET, p->u.host, &sin.sin_addr);
	if (bev == NULL || bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof sin) != 0)
		return NULL;
	snprintf(host, sizeof host, "%s:%d", p->u.host, p->u.port);
	snprintf(auth, sizeof auth, "ServiceBusAuthorization: %s", p->token);
	memset(&rq, 0, sizeof rq);
	rq.host = host;
	rq.target = p->u.target;
	rq.headers = p->token[0] ? hdrs : NULL;
	memset(&opt, 0, sizeof opt);
	opt.max_frame = 16 * 1024 * 1024;
	return ws_new_client(bev, &rq, &opt, cb, arg);
}

static void
stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	if (read(fd, buf, sizeof buf) <= 0)
		event_base_loopexit(arg, NULL);
}

/* --- tcp baseline ----------------------------------------------------------------- */

static void
tcp_fill(struct pump *p)
{
	struct evbuffer *out = bufferevent_get_output(p->tcp);

	while (p->sent < p->total && evbuffer_get_length(out) < 16 * CHUNK) {
		size_t n = p->total - p->sent < CHUNK ? p->total - p->sent : CHUNK;

		EVP_DigestUpdate(p->hs, p->blk, n);
		evbuffer_add(out, p->blk, n);
		p->sent += n;
	}
}

static void
tcp_read(struct bufferevent *bev, void *arg)
{
	struct pump *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char buf[CHUNK];
	int n;

	while ((n = evbuffer_remove(in, buf, sizeof buf)) > 0) {
		EVP_DigestUpdate(p->hg, buf, (size_t)n);
		p->got += (size_t)n;
	}
	if (p->got >= p->total && !p->done)
		pump_finish(p);
}

static void
tcp_write(struct bufferevent *bev, void *arg)
{
	tcp_fill(arg);
}

static void
tcp_event(struct bufferevent *bev, short what, void *arg)
{
	struct pump *p = arg;

	if (what & BEV_EVENT_CONNECTED) {
		clock_gettime(CLOCK_MONOTONIC, &p->t0);
		tcp_fill(p);
		return;
	}
	fprintf(stderr, "listener_pump: tcp connection failed or closed\n");
	p->failed = 1;
	event_base_loopexit(p->base, NULL);
}

/* --- echo server ----------------------------------------------------------------- */

static void
echo_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	evbuffer_add_buffer(out, bufferevent_get_input(bev));
	if (evbuffer_get_length(out) > 1024 * 1024)
		bufferevent_disable(bev, EV_READ);
}

static void
echo_write(struct bufferevent *bev, void *arg)
{
	bufferevent_enable(bev, EV_READ);
}

static void
echo_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void
echo_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, echo_read, echo_write, echo_event, NULL);
	bufferevent_setwatermark(bev, EV_WRITE, 256 * 1024, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static int
echo_main(struct event_base *base, int port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	struct evconnlistener *l;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	l = evconnlistener_new_bind(base, echo_accept, base, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 4096, (struct sockaddr *)&sin, sizeof sin);
	if (l == NULL) {
		perror("listener_pump: bind");
		return 1;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &sl);
	printf("listening %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	evconnlistener_free(l);
	return 0;
}

int
main(int argc, char **argv)
{
	struct pump p;
	struct shir_error err;
	struct event *ev_in = NULL;
	int i, rc = 1;

	signal(SIGPIPE, SIG_IGN);
	memset(&p, 0, sizeof p);
	if (argc < 3 || (argc < 4 && strcmp(argv[1], "echo") != 0)) {
		fprintf(stderr, "usage: listener_pump ws URL MB | tcp HOST PORT MB | hold URL COUNT | echo PORT\n");
		return 2;
	}
	p.base = event_base_new();
	p.hs = EVP_MD_CTX_new();
	p.hg = EVP_MD_CTX_new();
	EVP_DigestInit_ex(p.hs, EVP_sha256(), NULL);
	EVP_DigestInit_ex(p.hg, EVP_sha256(), NULL);
	for (i = 0; i < CHUNK; i++)
		p.blk[i] = (unsigned char)(i * 131 + (i >> 8));
	p.token = getenv("SHIR_TOKEN") ? getenv("SHIR_TOKEN") : "";
	if (strcmp(argv[1], "echo") == 0) {
		rc = echo_main(p.base, atoi(argv[2]));
		goto out;
	}
	if (strcmp(argv[1], "tcp") == 0 && argc == 5) {
		struct sockaddr_in sin;

		p.total = (size_t)atol(argv[4]) << 20;
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)atoi(argv[3]));
		inet_pton(AF_INET, argv[2], &sin.sin_addr);
		p.tcp = bufferevent_socket_new(p.base, -1, BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(p.tcp, tcp_read, tcp_write, tcp_event, &p);
		bufferevent_setwatermark(p.tcp, EV_WRITE, 4 * CHUNK, 0);
		bufferevent_enable(p.tcp, EV_READ | EV_WRITE);
		bufferevent_socket_connect(p.tcp, (struct sockaddr *)&sin, sizeof sin);
		event_base_dispatch(p.base);
		rc = p.done ? 0 : 1;
		bufferevent_free(p.tcp);
		goto out;
	}
	if (hcdial_parse_url(argv[2], 0, &p.u, &err) != 0) {
		fprintf(stderr, "listener_pump: %s\n", err.msg);
		goto out;
	}
	if (strcmp(argv[1], "ws") == 0) {
		p.total = (size_t)atol(argv[3]) << 20;
		p.ws = pump_connect(&p, &pump_ws_cbs, &p);
		if (p.ws == NULL)
			goto out;
		event_base_dispatch(p.base);
		rc = p.done && !p.failed ? 0 : 1;
		ws_free(p.ws);
	} else if (strcmp(argv[1], "hold") == 0) {
		struct held *hs;

		p.count = atoi(argv[3]);
		hs = calloc((size_t)p.count, sizeof *hs);
		for (i = 0; i < p.count; i++) {
			hs[i].p = &p;
			hs[i].ws = pump_connect(&p, &held_cbs, &hs[i]);
			if (hs[i].ws == NULL)
				p.failed++;
		}
		ev_in = event_new(p.base, 0, EV_READ | EV_PERSIST, stdin_cb, p.base);
		event_add(ev_in, NULL);
		event_base_dispatch(p.base);
		for (i = 0; i < p.count; i++)
			ws_free(hs[i].ws);
		free(hs);
		rc = 0;
	}
out:
	if (ev_in)
		event_free(ev_in);
	EVP_MD_CTX_free(p.hs);
	EVP_MD_CTX_free(p.hg);
	event_base_free(p.base);
	return rc;
}
