#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "relay/http1.h"
#include "proxy/proxy.h"
#include "node/admin/registration.h"
#include "common/random.h"
#include "ctl/relaycheck.h"
#include "relay/sas.h"
#include "relay/ws.h"

#define RELAYCHECK_HEAD_MAX (16 * 1024)

static const char *const relaycheck_names[] = {
	[RELAYCHECK_DNS] = "dns",
	[RELAYCHECK_PROXY] = "proxy",
	[RELAYCHECK_TCP] = "tcp",
	[RELAYCHECK_CONNECT] = "connect",
	[RELAYCHECK_TLS] = "tls",
	[RELAYCHECK_LISTEN] = "listen",
};

const char *
relaycheck_step_name(enum relaycheck_step s)
{
	return (unsigned)s < RELAYCHECK_NSTEPS ? relaycheck_names[s] : "?";
}

const char *
relaycheck_result_name(enum relaycheck_result r)
{
	switch (r) {
	case RELAYCHECK_OK: return "ok";
	case RELAYCHECK_FAILED: return "FAILED";
	case RELAYCHECK_SKIPPED: return "skipped";
	default: return "not run";
	}
}

static void
rc_set(struct relaycheck_report *rep, int step, enum relaycheck_result r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
rc_set(struct relaycheck_report *rep, int step, enum relaycheck_result r, const char *fmt, ...)
{
	va_list ap;

	rep->res[step] = r;
	va_start(ap, fmt);
	vsnprintf(rep->detail[step], sizeof rep->detail[step], fmt, ap);
	va_end(ap);
	if (r == RELAYCHECK_FAILED && rep->broken < 0)
		rep->broken = step;
}

/* Resolves host; the first addresses as text in out. */
static int
rc_resolve(const char *host, int port, struct addrinfo **res, char *out, size_t outlen,
    char *why, size_t whylen)
{
	struct addrinfo hints, *ai;
	char portbuf[8], addr[INET6_ADDRSTRLEN];
	size_t l = 0;
	int e, n = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(portbuf, sizeof portbuf, "%d", port);
	e = getaddrinfo(host, portbuf, &hints, res);
	if (e != 0) {
		snprintf(why, whylen, "%s cannot be resolved: %s", host, gai_strerror(e));
		return -1;
	}
	out[0] = '\0';
	for (ai = *res; ai != NULL && n < 4; ai = ai->ai_next, n++) {
		const void *a = ai->ai_family == AF_INET6
		    ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
		    : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;

		inet_ntop(ai->ai_family, a, addr, sizeof addr);
		l += (size_t)snprintf(out + l, l < outlen ? outlen - l : 0, "%s%s", n ? ", " : "",
		    addr);
	}
	return 0;
}

/* A TCP connect with a deadline to the first address that answers. */
static int
rc_tcp(struct addrinfo *res, int timeout_s, char *why, size_t whylen)
{
	struct addrinfo *ai;
	int last = ETIMEDOUT;

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd pfd;
		socklen_t sl = sizeof last;

		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			close(fd);
			return 0;
		}
		if (errno != EINPROGRESS) {
			last = errno;
			close(fd);
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, timeout_s * 1000) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &last, &sl) == 0 && last == 0) {
			close(fd);
			return 0;
		}
		if (last == 0)
			last = ETIMEDOUT;
		close(fd);
	}
	snprintf(why, whylen, "%s", strerror(last));
	return -1;
}

/* Splits "http://host:port" of a proxy decision. */
static int
rc_proxy_hostport(const char *url, char *host, size_t hl, int *port)
{
	int tls;

	if (registration_endpoint_hostport(url, host, hl, port, &tls) != 0)
		return -1;
	return 0;
}

struct rc_head {
	int done;
	int status;
	char reason[128];
	char accept[64];
	char server_msg[256];
};

static int
rc_on_head(const struct http1_msg *m, void *arg)
{
	struct rc_head *h = arg;
	const char *a = http1_msg_get(m, "Sec-WebSocket-Accept");

	h->done = 1;
	h->status = m->status;
	snprintf(h->reason, sizeof h->reason, "%s", m->reason ? m->reason : "");
	snprintf(h->accept, sizeof h->accept, "%s", a ? a : "");
	return 0;
}

/* Waits until the curl connection's socket is readable or writable. */
static int
rc_wait(CURL *c, int for_recv, int timeout_ms)
{
	curl_socket_t fd;
	struct pollfd pfd;

	if (curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
		return -1;
	pfd.fd = fd;
	pfd.events = for_recv ? POLLIN : POLLOUT;
	return poll(&pfd, 1, timeout_ms) == 1 ? 0 : -1;
}

static void
rc_listen(CURL *c, const char *host, int port, int tls, const struct relaycheck_target *t,
    struct relaycheck_report *rep)
{
	struct http1_callbacks cb = { rc_on_head, NULL, NULL };
	struct http1 *parser = NULL;
	struct rc_head head;
	struct shir_error e;
	char *aud = NULL, *token = NULL, *enc_hc = NULL, *req = NULL, uri[1024];
	char key[25], want[29], id[40], buf[4096];
	unsigned char rnd[16];
	size_t sent = 0, reqlen, got;
	time_t deadline = time(NULL) + t->timeout_s;
	int rc;

	memset(&head, 0, sizeof head);
	snprintf(uri, sizeof uri, "%s://%s:%d/%s", tls ? "wss" : "ws", host, port, t->hc);
	if (random_uuid(id) != 0 || random_bytes(rnd, sizeof rnd) != 0 || ws_make_key(key) != 0 ||
	    ws_accept_key(key, want) != 0 || sas_audience_hyco(uri, &aud) != 0 ||
	    sas_token_build(aud, t->key_name, t->key, (int64_t)time(NULL) + 300, &token) != 0 ||
	    (enc_hc = sas_url_encode(t->hc)) == NULL) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED,
		    "cannot build the listen request (the key's name or key is malformed)");
		goto out;
	}
	if (asprintf(&req, "GET /$hc/%s?sb-hc-action=listen&sb-hc-id=shirctl-check-%s HTTP/1.1\r\n"
	    "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
	    "ServiceBusAuthorization: %s\r\nUser-Agent: shirctl/%s\r\n\r\n", enc_hc, id, host,
	    port, key, token, PACKAGE_VERSION) < 0) {
		req = NULL;
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "out of memory");
		goto out;
	}
	reqlen = strlen(req);
	while (sent < reqlen) {
		size_t n = 0;
		CURLcode cc = curl_easy_send(c, req + sent, reqlen - sent, &n);

		if (cc == CURLE_AGAIN) {
			if (time(NULL) > deadline) {
				rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay did not take the "
				    "listen request within %d s", t->timeout_s);
				goto out;
			}
			rc_wait(c, 0, 500);
			continue;
		}
		if (cc != CURLE_OK) {
			rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "sending the listen request "
			    "failed: %s", curl_easy_strerror(cc));
			goto out;
		}
		sent += n;
	}
	parser = http1_new(HTTP1_RESPONSE, NULL, &cb, &head);
	if (parser == NULL) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "out of memory");
		goto out;
	}
	for (got = 0; !head.done && got < RELAYCHECK_HEAD_MAX;) {
		size_t n = 0, used = 0;
		CURLcode cc = curl_easy_recv(c, buf, sizeof buf, &n);

		if (cc == CURLE_AGAIN) {
			if (time(NULL) > deadline) {
				rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay did not answer "
				    "the listen request within %d s", t->timeout_s);
				goto out;
			}
			rc_wait(c, 1, 500);
			continue;
		}
		if (cc != CURLE_OK || n == 0) {
			rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay closed the "
			    "connection without answering the listen request%s%s",
			    cc != CURLE_OK ? ": " : "", cc != CURLE_OK ? curl_easy_strerror(cc) : "");
			goto out;
		}
		got += n;
		rc = http1_feed(parser, (const uint8_t *)buf, n, &used, &e);
		if (rc != 0 && !head.done) {
			rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the endpoint does not answer "
			    "like a relay (not HTTP: %s)", e.msg);
			goto out;
		}
	}
	if (!head.done) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the answer's head is over %d bytes",
		    RELAYCHECK_HEAD_MAX);
		goto out;
	}
	if (head.status == 101 && strcmp(head.accept, want) == 0) {
		/* leave politely: a masked Close 1000, so the relay logs a normal close */
		uint8_t close_frame[8] = { 0x88, 0x82, rnd[0], rnd[1], rnd[2], rnd[3] };
		size_t n = 0;

		close_frame[6] = 0x03 ^ rnd[0];
		close_frame[7] = 0xe8 ^ rnd[1];
		(void)curl_easy_send(c, close_frame, sizeof close_frame, &n);
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_OK, "the relay accepted the node key "
		    "(%s) as a listener on %s (101 Switching Protocols)", t->key_name, t->hc);
	} else if (head.status == 101) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "101 with a wrong "
		    "Sec-WebSocket-Accept: something between here and the relay rewrites the "
		    "handshake");
	} else if (head.status == 401) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay refused the node key: "
		    "401 %s (the key %s is wrong, was rotated, or is not a Listen key; get a current "
		    "key and run `shirctl register-node -k KEY`)", head.reason, t->key_name);
	} else if (head.status == 403) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay refused the node key: "
		    "403 %s (the key %s may not listen on %s: a service (Send) key is not a node key)",
		    head.reason, t->key_name, t->hc);
	} else if (head.status == 404) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay does not know the hybrid "
		    "connection %s: 404 %s (the IR was deleted, or the key is for another relay)",
		    t->hc, head.reason);
	} else {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay answered %d %s instead "
		    "of 101 Switching Protocols", head.status, head.reason);
	}
out:
	http1_free(parser);
	if (token != NULL)
		memset(token, 0, strlen(token));
	free(token);
	free(aud);
	free(enc_hc);
	free(req);
}

void
relaycheck_run(const struct proxy_config *pc, const char *proxy_err,
    const struct relaycheck_target *t, struct relaycheck_report *rep)
{
	struct proxy_decision d;
	struct addrinfo *res = NULL;
	char host[256], phost[256], addrs[256], why[400], url[600], pin[128];
	int port, pport = 0, tls, i, proxied = 0;
	CURL *c = NULL;
	CURLcode cc;
	long connect_code = 0;

	memset(rep, 0, sizeof *rep);
	rep->broken = -1;
	if (registration_endpoint_hostport(t->endpoint, host, sizeof host, &port, &tls) != 0) {
		rc_set(rep, RELAYCHECK_DNS, RELAYCHECK_FAILED, "%s is not a wss:// URL", t->endpoint);
		goto rest;
	}
	/* The proxy decision first: it says whose name this node resolves. */
	snprintf(url, sizeof url, "%s://%s:%d/", tls ? "https" : "http", host, port);
	if (pc == NULL) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_FAILED, "the proxy configuration does not "
		    "load: %s", proxy_err ? proxy_err : "unknown error");
	} else if (proxy_decide(pc, url, &d) != 0) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_FAILED, "no decision for %s: %s", url,
		    d.reason);
	} else if (d.direct || d.nproxies == 0) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_OK, "DIRECT (%s)", d.reason);
	} else if (rc_proxy_hostport(d.proxies[0], phost, sizeof phost, &pport) != 0) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_FAILED, "the proxy %s is not a host:port",
		    d.proxies[0]);
	} else {
		proxied = 1;
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_OK, "through %s (%s)%s", d.proxies[0],
		    d.reason, d.nproxies > 1 ? "; only the first proxy is checked" : "");
	}
	if (rep->broken >= 0)
		goto rest;
	/* DNS: the relay's name, or the proxy's when the proxy resolves the relay. */
	if (rc_resolve(proxied ? phost : host, proxied ? pport : port, &res, addrs, sizeof addrs,
	    why, sizeof why) != 0) {
		rc_set(rep, RELAYCHECK_DNS, RELAYCHECK_FAILED, "%s%s", why,
		    proxied ? " (the proxy's own name)" : "");
		goto rest;
	}
	rc_set(rep, RELAYCHECK_DNS, RELAYCHECK_OK, "%s resolves to %s%s%s", proxied ? phost : host,
	    addrs, proxied ? "; the proxy resolves " : "", proxied ? host : "");
	if (rc_tcp(res, t->timeout_s, why, sizeof why) != 0) {
		rc_set(rep, RELAYCHECK_TCP, RELAYCHECK_FAILED, "cannot connect to %s %s:%d: %s",
		    proxied ? "the proxy" : "the relay", proxied ? phost : host,
		    proxied ? pport : port, why);
		goto rest;
	}
	rc_set(rep, RELAYCHECK_TCP, RELAYCHECK_OK, "connected to %s %s:%d",
	    proxied ? "the proxy" : "the relay", proxied ? phost : host, proxied ? pport : port);
	/* CONNECT and TLS through libcurl (connect-only), then the listen
	 * handshake over the same connection. */
	c = curl_easy_init();
	if (c == NULL) {
		rc_set(rep, RELAYCHECK_CONNECT, RELAYCHECK_FAILED, "out of memory");
		goto rest;
	}
	snprintf(url, sizeof url, "%s://%s:%d/", tls ? "https" : "http", host, port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)t->timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (proxied) {
		proxy_curl_setup(pc, c, d.proxies[0]);
		curl_easy_setopt(c, CURLOPT_HTTPPROXYTUNNEL, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_PROXY, "");
	}
	if (tls) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
		if (t->ca_file != NULL)
			curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
		if (t->tls_pin != NULL && strncmp(t->tls_pin, "sha256/", 7) == 0) {
			snprintf(pin, sizeof pin, "sha256//%s", t->tls_pin + 7);
			curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, pin);
		}
	}
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	if (proxied) {
		if (cc != CURLE_OK && connect_code != 200) {
			if (connect_code == 407)
				rc_set(rep, RELAYCHECK_CONNECT, RELAYCHECK_FAILED, "the proxy %s answered "
				    "407 Proxy Authentication Required: %s; check the proxy user and "
				    "password (`shirctl proxy set custom ... --user USER`)", d.proxies[0],
				    proxy_config_user(pc, d.proxies[0]) ? "it refused the user" : "it wants credentials");
			else if (connect_code != 0)
				rc_set(rep, RELAYCHECK_CONNECT, RELAYCHECK_FAILED, "the proxy %s refused "
				    "CONNECT %s:%d with %ld %s", d.proxies[0], host, port, connect_code,
				    http1_reason((int)connect_code));
			else
				rc_set(rep, RELAYCHECK_CONNECT, RELAYCHECK_FAILED, "CONNECT %s:%d through "
				    "%s failed: %s", host, port, d.proxies[0], curl_easy_strerror(cc));
			goto rest;
		}
		rc_set(rep, RELAYCHECK_CONNECT, RELAYCHECK_OK, "the proxy opened a tunnel to %s:%d "
		    "(200)", host, port);
	} else {
		rc_set(rep, RELAYCHECK_CONNECT, RELAYCHECK_SKIPPED, "direct: no proxy tunnel");
	}
	if (cc != CURLE_OK) {
		int step = tls ? RELAYCHECK_TLS : RELAYCHECK_TCP;

		if (cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH)
			rc_set(rep, step, RELAYCHECK_FAILED, "the relay's certificate does not match the "
			    "key's pin %s (someone intercepts TLS, or the relay's key changed)",
			    t->tls_pin);
		else if (cc == CURLE_PEER_FAILED_VERIFICATION)
			rc_set(rep, step, RELAYCHECK_FAILED, "the relay's certificate is not trusted: %s "
			    "(set relay.ca_file, or install the CA that issued it)",
			    curl_easy_strerror(cc));
		else
			rc_set(rep, step, RELAYCHECK_FAILED, "%s", curl_easy_strerror(cc));
		goto rest;
	}
	if (tls)
		rc_set(rep, RELAYCHECK_TLS, RELAYCHECK_OK, "certificate of %s verified%s", host,
		    t->tls_pin ? " and matches the key's pin" : "");
	else
		rc_set(rep, RELAYCHECK_TLS, RELAYCHECK_SKIPPED, "ws:// endpoint: no TLS (loopback "
		    "test relays only)");
	if (t->hc == NULL || t->key == NULL) {
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_SKIPPED, "no node key to try");
		goto rest;
	}
	rc_listen(c, host, port, tls, t, rep);
rest:
	for (i = 0; i < RELAYCHECK_NSTEPS; i++)
		if (rep->res[i] == RELAYCHECK_NOT_RUN)
			rc_set(rep, i, RELAYCHECK_NOT_RUN, "%s", rep->broken >= 0 ? "not reached" : "");
	if (c != NULL)
		curl_easy_cleanup(c);
	if (res != NULL)
		freeaddrinfo(res);
}
