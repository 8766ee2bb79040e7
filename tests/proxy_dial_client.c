/* proxy_dial_client: a test and benchmark client of proxy_dial(). Loads the
 * proxy configuration (shird.conf or one .NET config file), dials host:port
 * for URL, adds TLS to the destination on top of the returned bufferevent
 * (bufferevent_openssl_filter_new, verifying with --ca and --sni), sends
 * --bytes of a pattern and checks that the same bytes come back (an echo
 * server). Repeats --count times, --parallel at once.
 *
 * Prints "OK n=COUNT bytes=B ms=T" or "ERROR code=NAME ms=T msg=..." (exit 1). */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "node/conf.h"
#include "common/log.h"
#include "proxy/pac.h"
#include "proxy/proxy.h"

struct client {
	struct event_base *base;
	struct proxy_config *pc;
	SSL_CTX *ctx;
	const char *url, *url2, *host, *sni;
	int port, timeout, bytes, count, parallel;
	int started, finished, failed;
	int verbose;
	int keep_going;		/* dial --count times even after a failure */
	const char *between;	/* --between CMD: a shell command run after the first dial */
	struct shir_error first_err;
};

struct conn {
	struct client *c;
	struct bufferevent *bev;
	size_t got;
};

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void start_one(struct client *c);

static void
next_or_stop(struct client *c)
{
	if ((!c->failed || c->keep_going) && c->started < c->count) {
		if (c->between != NULL && c->started == 1 && system(c->between) != 0) {
			fprintf(stderr, "--between %s failed\n", c->between);
			exit(1);
		}
		start_one(c);
	}
	else if (c->finished == c->started)
		event_base_loopbreak(c->base);
}

static void
conn_done(struct conn *k, const char *err)
{
	struct client *c = k->c;

	if (err != NULL && !c->failed) {
		c->failed = 1;
		shir_error_set(&c->first_err, SHIR_EPROTO, "%s", err);
	}
	if (k->bev)
		bufferevent_free(k->bev);
	free(k);
	c->finished++;
	next_or_stop(c);
}

static unsigned char
pattern(size_t i)
{
	return (unsigned char)("0123456789abcdefghijklmnopqrstuvwxyz"[i % 36]);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char buf[4096];
	int n;

	while ((n = evbuffer_remove(in, buf, sizeof buf)) > 0) {
		int i;

		for (i = 0; i < n; i++) {
			if (buf[i] != pattern(k->got + (size_t)i)) {
				conn_done(k, "the bytes that came back differ from those sent");
				return;
			}
		}
		k->got += (size_t)n;
	}
	if (k->got == (size_t)k->c->bytes)
		conn_done(k, NULL);
	else if (k->got > (size_t)k->c->bytes)
		conn_done(k, "more bytes came back than were sent");
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *k = arg;
	char msg[512];

	if (what & BEV_EVENT_CONNECTED) {
		size_t i;
		unsigned char chunk[4096];
		size_t left = (size_t)k->c->bytes, off = 0;

		while (left > 0) {
			size_t n = left < sizeof chunk ? left : sizeof chunk;

			for (i = 0; i < n; i++)
				chunk[i] = pattern(off + i);
			bufferevent_write(bev, chunk, n);
			off += n;
			left -= n;
		}
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		snprintf(msg, sizeof msg, "destination stream ended after %zu of %d bytes (%s%s)",
		    k->got, k->c->bytes, what & BEV_EVENT_EOF ? "EOF" : "error",
		    e ? ERR_reason_error_string(e) : "");
		conn_done(k, msg);
	}
}

static void
dialed(void *arg, struct bufferevent *raw, const struct shir_error *err)
{
	struct conn *k = arg;
	struct client *c = k->c;
	SSL *ssl;

	if (raw == NULL) {
		if (!c->failed) {
			c->failed = 1;
			c->first_err = *err;
		}
		free(k);
		c->finished++;
		next_or_stop(c);
		return;
	}
	ssl = SSL_new(c->ctx);
	SSL_set_tlsext_host_name(ssl, c->sni);
	SSL_set1_host(ssl, c->sni);
	k->bev = bufferevent_openssl_filter_new(c->base, raw, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (k->bev == NULL) {
		bufferevent_free(raw);
		conn_done(k, "cannot add TLS");
		return;
	}
	bufferevent_setcb(k->bev, conn_read, NULL, conn_event, k);
	bufferevent_enable(k->bev, EV_READ | EV_WRITE);
}

static void
start_one(struct client *c)
{
	struct conn *k = calloc(1, sizeof *k);
	const char *url;

	k->c = c;
	/* with --url2 the dials alternate between the two URLs */
	url = c->url2 != NULL && c->started % 2 == 1 ? c->url2 : c->url;
	c->started++;
	if (proxy_dial(c->base, c->pc, url, c->host, c->port, c->timeout, dialed, k) == NULL) {
		free(k);
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "conf", required_argument, NULL, 'c' }, { "dotnet", required_argument, NULL, 'd' },
		{ "url", required_argument, NULL, 'u' }, { "url2", required_argument, NULL, 'U' }, { "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' }, { "timeout", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'a' }, { "sni", required_argument, NULL, 's' },
		{ "bytes", required_argument, NULL, 'b' }, { "count", required_argument, NULL, 'n' },
		{ "parallel", required_argument, NULL, 'P' }, { "verbose", no_argument, NULL, 'v' },
		{ "keep-going", no_argument, NULL, 'k' }, { "between", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	struct client c;
	struct shir_error err;
	struct conf *conf = NULL;
	const char *conf_path = NULL, *dotnet = NULL, *ca = NULL;
	double t0;
	int ch, i, rc;

	memset(&c, 0, sizeof c);
	c.timeout = 10;
	c.bytes = 1000;
	c.count = 1;
	c.parallel = 1;
	c.sni = "localhost";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'd': dotnet = optarg; break;
		case 'u': c.url = optarg; break;
		case 'U': c.url2 = optarg; break;
		case 'H': c.host = optarg; break;
		case 'p': c.port = atoi(optarg); break;
		case 't': c.timeout = atoi(optarg); break;
		case 'a': ca = optarg; break;
		case 's': c.sni = optarg; break;
		case 'b': c.bytes = atoi(optarg); break;
		case 'n': c.count = atoi(optarg); break;
		case 'P': c.parallel = atoi(optarg); break;
		case 'v': c.verbose = 1; break;
		case 'k': c.keep_going = 1; break;
		case 'B': c.between = optarg; break;
		default: return 2;
		}
	}
	if (c.url == NULL || c.host == NULL || c.port <= 0 || (!conf_path && !dotnet)) {
		fprintf(stderr, "usage: proxy_dial_client (--conf F | --dotnet F) --url U --host H "
		    "--port P [--url2 U2] [--timeout S] [--ca PEM] [--sni NAME] [--bytes N] [--count N] "
		    "[--parallel N] [--verbose] [--keep-going] [--between CMD]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(c.verbose ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (dotnet != NULL) {
		rc = proxy_config_load_dotnet(dotnet, &c.pc, &err);
	} else {
		rc = conf_load_file(conf_path, &conf, &err);
		if (rc == 0)
			rc = proxy_config_load(&conf->proxy, &c.pc, &err);
		conf_free(conf);
	}
	if (rc != 0) {
		printf("ERROR code=config ms=0 msg=%s\n", err.msg);
		return 1;
	}
	c.ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, NULL);
	if (ca != NULL && SSL_CTX_load_verify_locations(c.ctx, ca, NULL) != 1) {
		printf("ERROR code=config ms=0 msg=cannot load %s\n", ca);
		return 1;
	}
	c.base = event_base_new();
	t0 = now_ms();
	for (i = 0; i < c.parallel && c.started < c.count; i++)
		start_one(&c);
	event_base_dispatch(c.base);
	if (c.failed) {
		printf("ERROR code=%s ms=%.0f msg=%s\n", shir_strerror(c.first_err.code),
		    now_ms() - t0, c.first_err.msg);
		rc = 1;
	} else {
		printf("OK n=%d bytes=%d ms=%.1f\n", c.finished, c.bytes, now_ms() - t0);
		rc = 0;
	}
	fflush(stdout);
	{
		/* let tunnels close (their teardown is deferred) */
		struct timeval tv = { 0, 100 * 1000 };

		event_base_loopexit(c.base, &tv);
		event_base_dispatch(c.base);
	}
	event_base_free(c.base);
	SSL_CTX_free(c.ctx);
	proxy_config_unref(c.pc);
	pac_shutdown();		/* the PAC helper, when the configuration used one */
	curl_global_cleanup();
	return rc;
}
