/* relay_wsbench: load generator for bench/relay_bench.py (not installed).
 * Built on relay/ws, so the same client and server code runs direct, through
 * nginx and through shir-relay.
 *
 *   sink PORT                         plain WebSocket server: counts bytes; answers "END" with "OK n"
 *   hc-sink PORT HC KEYNAME KEY [N]   N listeners on shir-relay: sink for every accepted tunnel,
 *                                     and "200 hello" for every HTTP request (inline)
 *   send PORT TARGET SIZE COUNT [KEYNAME KEY HC]   stream COUNT binary messages of SIZE bytes
 *   idle PORT HC KEYNAME KEY N        N idle control channels (listeners); prints READY
 *   tunnels PORT HC KEYNAME KEY N     N idle sender tunnels; prints READY
 *   http-backend PORT                 evhttp server answering "hello" (the nginx backend)
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "common/evread.h"
#include "relay/hc_msg.h"
#include "relay/sas.h"
#include "relay/ws.h"

static struct event_base *base;
static int port;
static const char *hc, *keyname, *key;
static long target_n, opened, failed;
static char *payload;
static size_t msg_size;
static long msg_count, sent;
static struct timespec t0;

static struct bufferevent *
dial(void)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	char ps[16];

	snprintf(ps, sizeof ps, "%d", port);
	if (bufferevent_socket_connect_hostname(bev, NULL, AF_INET, "127.0.0.1", port) != 0) {
		fprintf(stderr, "connect failed\n");
		exit(1);
	}
	return bev;
}

static char *
token(void)
{
	char aud[256], *t = NULL;

	snprintf(aud, sizeof aud, "http://127.0.0.1:%d/%s", port, hc);
	sas_token_build(aud, keyname, key, (int64_t)time(NULL) + 3600, &t);
	return t;
}

/* ---- sink (plain server, or a tunnel's listener end) ---- */
struct sinkst {
	unsigned long long bytes;
};

static int
sink_frag(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin, void *arg)
{
	struct sinkst *s = arg;

	if (op == WS_OP_TEXT)
		return WS_ASSEMBLE;
	if (getenv("WSB_DEBUG"))
		fprintf(stderr, "frag n=%zu first=%d fin=%d\n", n, first, fin);
	s->bytes += n;
	return WS_STREAM;
}

static void
sink_msg(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg)
{
	struct sinkst *s = arg;
	char r[64];

	if (n == 3 && memcmp(d, "END", 3) == 0) {
		snprintf(r, sizeof r, "OK %llu", s->bytes);
		ws_send(ws, WS_OP_TEXT, r, strlen(r));
	} else {
		s->bytes += n;
	}
}

static void
sink_req(struct ws *ws, const struct http1_msg *req, void *arg)
{
	ws_accept(ws, NULL, NULL);
}

static void
sink_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	free(arg);
	ws_free(ws);
}

static const struct ws_callbacks SINK_CB = { .on_request = sink_req, .on_message = sink_msg,
	.on_fragment = sink_frag, .on_close = sink_close };

static void
sink_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);

	ws_new_server(bev, NULL, &SINK_CB, calloc(1, sizeof(struct sinkst)));
}

/* ---- hc listener ---- */
static void
hc_open(struct ws *ws, void *arg)
{
	if (++opened == target_n) {
		printf("READY %ld\n", opened);
		fflush(stdout);
	}
}

static void
hc_failed(struct ws *ws, int status, const char *reason, const struct shir_error *e, void *arg)
{
	failed++;
	fprintf(stderr, "handshake failed: %d %s\n", status, reason);
}

static void
hc_ctl_msg(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg)
{
	struct hc_msg m;
	struct shir_error e;

	if (op != WS_OP_TEXT || hc_msg_decode((const char *)d, n, &m, &e) != 0)
		return;
	if (m.type == HC_MSG_ACCEPT) {
		const char *p = strstr(m.accept.address, "://");
		const char *path = p ? strchr(p + 3, '/') : NULL;
		struct ws_client_request cr = { "127.0.0.1", path, NULL, NULL };

		if (path != NULL)
			ws_new_client(dial(), &cr, NULL, &SINK_CB, calloc(1, sizeof(struct sinkst)));
	} else if (m.type == HC_MSG_REQUEST && hc_request_is_inline(&m.request)) {
		struct hc_response r = { 0 };
		char *j;

		r.request_id = m.request.id;
		r.status = 200;
		r.body = true;
		hc_headers_add(&r.headers, "Content-Type", "text/plain");
		j = hc_msg_encode_response(&r);
		ws_send(ws, WS_OP_TEXT, j, strlen(j));
		ws_send(ws, WS_OP_BINARY, "hello", 5);
		free(j);
		hc_headers_clear(&r.headers);
	}
	hc_msg_clear(&m);
}

static int
hc_ctl_frag(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin, void *arg)
{
	return op == WS_OP_TEXT ? WS_ASSEMBLE : WS_STREAM;	/* request bodies are ignored */
}

static void
hc_ctl_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	ws_free(ws);
}

static void
open_listener(void)
{
	static char target[512], hdr[2048];
	const char *hdrs[2] = { hdr, NULL };
	char *t = token();
	struct ws_client_request cr = { "127.0.0.1", target, hdrs, NULL };
	struct ws_callbacks cb = { .on_open = hc_open, .on_handshake_failed = hc_failed,
		.on_message = hc_ctl_msg, .on_fragment = hc_ctl_frag, .on_close = hc_ctl_close };

	snprintf(target, sizeof target, "/$hc/%s?sb-hc-action=listen", hc);
	snprintf(hdr, sizeof hdr, "ServiceBusAuthorization: %s", t);
	free(t);
	ws_new_client(dial(), &cr, NULL, &cb, NULL);
}

/* ---- sender ---- */
static void pump(struct ws *ws);

static void
send_open(struct ws *ws, void *arg)
{
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pump(ws);
}

static void
pump(struct ws *ws)
{
	while (sent < msg_count && !ws_is_congested(ws)) {
		ws_send(ws, WS_OP_BINARY, payload, msg_size);
		sent++;
	}
	if (sent == msg_count) {
		ws_send(ws, WS_OP_TEXT, "END", 3);
		sent++;
	}
}

static void
send_writable(struct ws *ws, void *arg)
{
	pump(ws);
}

static void
send_msg(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg)
{
	struct timespec t1;
	double secs;
	char txt[64];
	unsigned long long got;

	snprintf(txt, sizeof txt, "%.*s", (int)(n < 63 ? n : 63), (const char *)d);
	got = strtoull(txt + 3, NULL, 10);

	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("RESULT bytes=%llu seconds=%.3f MBps=%.1f msgs_per_s=%.0f\n", got, secs,
	    (double)got / secs / 1e6, (double)msg_count / secs);
	fflush(stdout);
	event_base_loopexit(base, NULL);
}

static void
send_failed(struct ws *ws, int status, const char *reason, const struct shir_error *e, void *arg)
{
	fprintf(stderr, "handshake failed: %d %s\n", status, reason);
	exit(1);
}

/* ---- idle tunnels ---- */
static void
tun_open(struct ws *ws, void *arg)
{
	if (++opened == target_n) {
		printf("READY %ld\n", opened);
		fflush(stdout);
	}
}

static void
open_tunnel(void)
{
	static char target[512], hdr[2048];
	const char *hdrs[2] = { hdr, NULL };
	struct ws_client_request cr = { "127.0.0.1", target, hdrs, NULL };
	struct ws_callbacks cb = { .on_open = tun_open, .on_handshake_failed = hc_failed,
		.on_close = hc_ctl_close };
	static char *t;

	if (t == NULL)
		t = token();
	snprintf(target, sizeof target, "/$hc/%s?sb-hc-action=connect", hc);
	snprintf(hdr, sizeof hdr, "ServiceBusAuthorization: %s", t);
	ws_new_client(dial(), &cr, NULL, &cb, NULL);
}

static long launched;
static void (*opener)(void);

static void
batch(evutil_socket_t fd, short w, void *arg)
{
	struct event *ev = arg;
	struct timeval tv = { 0, 20000 };
	int i;

	/* at most 200 outstanding handshakes */
	for (i = 0; i < 200 && launched < target_n && launched - opened - failed < 400; i++, launched++)
		opener();
	if (launched < target_n)
		evtimer_add(ev, &tv);
}

static void
http_hello(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, "hello", 5);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	struct evconnlistener *l = NULL;
	struct evhttp *http = NULL;

	signal(SIGPIPE, SIG_IGN);
	evread_tune_malloc();	/* as shir-relay and shird do */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (argc < 3) {
		fprintf(stderr, "see the comment at the top of bench/relay_wsbench.c\n");
		return 2;
	}
	base = event_base_new();
	port = atoi(argv[2]);
	if (strcmp(argv[1], "sink") == 0) {
		struct sockaddr_in sin = { 0 };

		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)port);
		sin.sin_addr.s_addr = htonl(0x7f000001);
		l = evconnlistener_new_bind(base, sink_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
		    (struct sockaddr *)&sin, sizeof sin);
		if (l == NULL) {
			fprintf(stderr, "cannot listen on %d\n", port);
			return 1;
		}
		printf("READY\n");
		fflush(stdout);
	} else if (strcmp(argv[1], "http-backend") == 0) {
		http = evhttp_new(base);
		evhttp_bind_socket(http, "127.0.0.1", (unsigned short)port);
		evhttp_set_gencb(http, http_hello, NULL);
		printf("READY\n");
		fflush(stdout);
	} else if ((strcmp(argv[1], "hc-sink") == 0 || strcmp(argv[1], "idle") == 0 ||
	    strcmp(argv[1], "tunnels") == 0) && argc >= 6) {
		struct event *ev;

		hc = argv[3];
		keyname = argv[4];
		key = argv[5];
		target_n = argc > 6 ? atol(argv[6]) : 1;
		opener = strcmp(argv[1], "tunnels") == 0 ? open_tunnel : open_listener;
		ev = evtimer_new(base, batch, NULL);
		event_assign(ev, base, -1, 0, batch, ev);
		batch(-1, 0, ev);
	} else if (strcmp(argv[1], "send") == 0 && argc >= 6) {
		static char hdr[2048];
		const char *hdrs[2] = { hdr, NULL };
		struct ws_client_request cr = { "127.0.0.1", argv[3], NULL, NULL };
		struct ws_callbacks cb = { .on_open = send_open, .on_writable = send_writable,
			.on_message = send_msg, .on_handshake_failed = send_failed };
		struct ws_options o = { .high_water = 1 << 20 };

		msg_size = (size_t)atol(argv[4]);
		msg_count = atol(argv[5]);
		payload = calloc(1, msg_size ? msg_size : 1);
		if (argc >= 9) {
			char *t;

			keyname = argv[6];
			key = argv[7];
			hc = argv[8];
			t = token();
			snprintf(hdr, sizeof hdr, "ServiceBusAuthorization: %s", t);
			free(t);
			cr.headers = hdrs;
		}
		ws_new_client(dial(), &cr, &o, &cb, NULL);
	} else {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	event_base_dispatch(base);
	return 0;
}
