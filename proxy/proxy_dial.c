/* proxy_dial: asynchronous connections to host:port, direct or through HTTP
 * CONNECT (or SOCKS) proxies, with libcurl's proxy authentication (Basic,
 * Digest, NTLM, Negotiate) driven by the caller's libevent base through the
 * multi_socket API (as curl's docs/examples/hiperfifo.c). Never blocks.
 *
 * Every attempt is one easy handle with CURLOPT_CONNECT_ONLY on a URL
 * "http://host:port/", so libcurl only resolves, connects and builds the
 * tunnel. Then:
 *  - direct, http:// and socks proxies: the socket is taken from libcurl
 *    (CURLINFO_ACTIVESOCKET; our close-socket callback skips it at cleanup)
 *    and wrapped in a plain bufferevent_socket;
 *  - https:// proxies: the stream still runs inside libcurl's TLS session to
 *    the proxy, so the caller gets a bufferevent on one end of a socketpair; a
 *    pump moves bytes between the other end and curl_easy_send/curl_easy_recv,
 *    driven by events on the proxy socket, with watermarks for backpressure.
 * See docs/proxy.md. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "proxy/curl_ev.h"
#include "proxy/pac.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

/* A PAC decision made on a thread of its own (it may fetch and run the
 * script); the dial waits for it on a pipe. Two references: the thread's and
 * the dial's; the last one frees. */
struct dial_pac_job {
	int refs;
	int fds[2];
	struct proxy_config *pc;
	char url[2048];
	struct proxy_decision dec;
	int bad;
};

#define DIAL_CHUNK (16 * 1024)
#define DIAL_HIGH (256 * 1024)	/* stop reading the proxy above this much unread */
#define DIAL_LOW (64 * 1024)	/* and resume below this */

struct proxy_dial {
	struct event_base *base;
	struct proxy_config *pc;
	char host[300];		/* bracketed when IPv6 */
	int port;
	int timeout_s;
	uint64_t deadline_ms;
	struct proxy_decision dec;
	size_t next;		/* next proxy to try */
	const char *cur;	/* proxy of the current attempt, NULL: direct */
	struct curl_ev *ce;	/* curl on the loop */
	CURLM *multi;		/* its multi handle */
	CURL *easy;
	struct event *step_ev;
	int started, bad_url;
	int done;		/* the attempt finished: result holds its code */
	CURLcode result;
	char errbuf[CURL_ERROR_SIZE];
	char offered[256];	/* schemes from Proxy-Authenticate */
	char failures[1200];	/* earlier attempts, for the final message */
	proxy_dial_cb cb;
	void *arg;
	struct dial_pac_job *pac_job;	/* a PAC decision pending */
	struct event *pac_ev;
};

struct dial_pump {
	struct event_base *base;
	CURLM *multi;
	CURL *easy;
	curl_socket_t fd;
	struct bufferevent *inner;
	struct event *rd, *wr, *close_ev;
	int proxy_eof;
	char proxy[512];
};

static uint64_t
dial_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- libcurl multi_socket on libevent (proxy/curl_ev.c) ----------------- */

static void dial_check(void *arg);

/* Collects the schemes of Proxy-Authenticate headers (for the 407 message). */
static size_t
dial_header_cb(char *buf, size_t size, size_t n, void *userp)
{
	struct proxy_dial *d = userp;
	size_t len = size * n;
	static const char name[] = "proxy-authenticate:";

	if (d != NULL && len > sizeof name && strncasecmp(buf, name, sizeof name - 1) == 0) {
		const char *p = buf + sizeof name - 1, *end = buf + len;
		char scheme[40];
		size_t l = 0;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (p < end && l + 1 < sizeof scheme && *p != ' ' && *p != '\r' && *p != '\n' &&
		    *p != ',')
			scheme[l++] = *p++;
		scheme[l] = '\0';
		if (l > 0 && strstr(d->offered, scheme) == NULL &&
		    strlen(d->offered) + l + 3 < sizeof d->offered) {
			if (*d->offered)
				strcat(d->offered, ", ");
			strcat(d->offered, scheme);
		}
	}
	return len;
}

static void
dial_step_later(struct proxy_dial *d)
{
	struct timeval zero = { 0, 0 };

	evtimer_add(d->step_ev, &zero);
}

static void
dial_check(void *arg)
{
	struct proxy_dial *d = arg;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg == CURLMSG_DONE && m->easy_handle == d->easy && !d->done) {
			d->done = 1;
			d->result = m->data.result;
			dial_step_later(d);	/* never clean up inside curl's callbacks */
		}
	}
}

/* --- attempts ----------------------------------------------------------------- */

static void
dial_end_attempt(struct proxy_dial *d)
{
	if (d->easy != NULL) {
		curl_multi_remove_handle(d->multi, d->easy);
		curl_easy_cleanup(d->easy);
		d->easy = NULL;
	}
	if (d->ce != NULL)
		curl_ev_forget(d->ce);
	d->done = 0;
	d->offered[0] = '\0';
	d->errbuf[0] = '\0';
}

static int
dial_start_attempt(struct proxy_dial *d, struct shir_error *err)
{
	char url[400];
	uint64_t now = dial_now_ms();
	long left = d->deadline_ms > now ? (long)(d->deadline_ms - now) : 1;

	d->easy = curl_easy_init();
	if (d->easy == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	snprintf(url, sizeof url, "http://%s:%d/", d->host, d->port);
	curl_easy_setopt(d->easy, CURLOPT_URL, url);
	curl_easy_setopt(d->easy, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->easy, CURLOPT_NOPROXY, "");	/* we decided already */
	curl_easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS, left);
	curl_easy_setopt(d->easy, CURLOPT_TIMEOUT_MS, left);
	curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(d->easy, CURLOPT_HEADERFUNCTION, dial_header_cb);
	curl_easy_setopt(d->easy, CURLOPT_HEADERDATA, d);
	if (d->cur == NULL) {
		curl_easy_setopt(d->easy, CURLOPT_PROXY, "");
	} else {
		proxy_curl_setup(d->pc, d->easy, d->cur);
		curl_easy_setopt(d->easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
	}
	if (curl_multi_add_handle(d->multi, d->easy) != CURLM_OK) {
		curl_easy_cleanup(d->easy);
		d->easy = NULL;
		return shir_error_set(err, SHIR_EINTERNAL, "libcurl refused a new transfer");
	}
	log_debug("proxy", "event=dial.attempt dest=%s port=%d via=%s", log_q(d->host), d->port,
	    log_q(d->cur ? d->cur : "DIRECT"));
	return 0;
}

void
proxy_curl_setup(const struct proxy_config *pc, void *curl_easy, const char *proxy_url)
{
	CURL *h = curl_easy;
	struct proxy_cred cred;
	const char *ca;

	curl_easy_setopt(h, CURLOPT_PROXY, proxy_url);
	proxy_config_cred(pc, proxy_url, &cred);
	curl_easy_setopt(h, CURLOPT_PROXYAUTH, cred.auth);
	if (cred.user != NULL && *cred.user == '\0') {
		curl_easy_setopt(h, CURLOPT_PROXYUSERPWD, ":");	/* GSS-API credentials cache */
	} else if (cred.user != NULL) {
		curl_easy_setopt(h, CURLOPT_PROXYUSERNAME, cred.user);
		curl_easy_setopt(h, CURLOPT_PROXYPASSWORD, cred.password ? cred.password : "");
	}
	if ((ca = proxy_config_ca_file(pc)) != NULL)
		curl_easy_setopt(h, CURLOPT_PROXY_CAINFO, ca);
}

const char *
proxy_config_user(const struct proxy_config *pc, const char *proxy_url)
{
	struct proxy_cred cred;

	proxy_config_cred(pc, proxy_url, &cred);
	return cred.user;
}

static const char *
dial_user(struct proxy_dial *d, char *buf, size_t len)
{
	struct proxy_cred cred;

	proxy_config_cred(d->pc, d->cur, &cred);
	if (cred.user == NULL)
		snprintf(buf, len, "no proxy user is configured (set proxy.user and "
		    "proxy.password_file in shird.conf)");
	else if (*cred.user == '\0')
		snprintf(buf, len, "the service's own Kerberos identity (Negotiate, from "
		    "useDefaultCredentials or proxy.auth = negotiate) could not authenticate: the "
		    "service user has no valid ticket for the proxy's realm, or the proxy's "
		    "HTTP/<proxy host> principal is unknown to the KDC; get a ticket as that user "
		    "(kinit, or kinit -k -t KEYTAB for a keytab), point KRB5CCNAME at its cache in "
		    "the service's environment and check it with klist; or set proxy.user and "
		    "proxy.password_file for another scheme");
	else
		snprintf(buf, len, "the user '%s' was refused; check the proxy password "
		    "(proxy.password_file) and proxy.auth", cred.user);
	return buf;
}

/* The failure of the current attempt, in words. */
static int
dial_describe(struct proxy_dial *d, struct shir_error *err)
{
	long code = 0, oserr = 0;
	char who[600], what[700];
	const char *detail = *d->errbuf ? d->errbuf : curl_easy_strerror(d->result);

	curl_easy_getinfo(d->easy, CURLINFO_HTTP_CONNECTCODE, &code);
	curl_easy_getinfo(d->easy, CURLINFO_OS_ERRNO, &oserr);
	if (d->cur)
		snprintf(who, sizeof who, "proxy %s", d->cur);
	else
		snprintf(who, sizeof who, "%s:%d", d->host, d->port);
	if (d->cur && code == 407) {
		char u[640];

		return shir_error_set(err, SHIR_EAUTH, "%s answered 407 Proxy Authentication "
		    "Required to CONNECT %s:%d: %s (the proxy offers: %s)", who, d->host, d->port,
		    dial_user(d, u, sizeof u), *d->offered ? d->offered : "no scheme");
	}
	if (d->cur && code == 403)
		return shir_error_set(err, SHIR_EPROXY, "%s answered 403 Forbidden to CONNECT "
		    "%s:%d: its rules do not allow this destination; ask the proxy's admins to "
		    "allow it (or bypass the proxy for it)", who, d->host, d->port);
	if (d->cur && code >= 300)
		return shir_error_set(err, SHIR_EPROXY, "%s answered %ld to CONNECT %s:%d (%s)",
		    who, code, d->host, d->port, detail);
	switch (d->result) {
	case CURLE_COULDNT_RESOLVE_PROXY:
		return shir_error_set(err, SHIR_EDNS, "cannot resolve the %s (DNS failure): check "
		    "the proxy address and the node's DNS", who);
	case CURLE_COULDNT_RESOLVE_HOST:
		return shir_error_set(err, SHIR_EDNS, "cannot resolve %s (DNS failure): check the "
		    "host name and the node's DNS", d->host);
	case CURLE_OPERATION_TIMEDOUT:
		return shir_error_set(err, SHIR_ETIMEDOUT, "connecting to %s timed out after %d s; "
		    "check that it is reachable from this node (firewall, route)", who,
		    d->timeout_s);
	case CURLE_COULDNT_CONNECT:
		if (oserr == ECONNREFUSED)
			return shir_error_set(err, SHIR_ECONNREFUSED, "%s refused the connection: "
			    "nothing listens on that port%s", who, d->cur ? " (is the proxy "
			    "running?)" : "");
		return shir_error_set(err, SHIR_EIO, "cannot connect to %s: %s", who,
		    oserr ? strerror((int)oserr) : detail);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
		if (d->cur) {
			snprintf(what, sizeof what, "%s", detail);
			return shir_error_set(err, SHIR_ETLS, "TLS to the %s failed: %s; check its "
			    "certificate and proxy.ca_file", who, what);
		}
		break;
	default:
		break;
	}
	return shir_error_set(err, d->cur ? SHIR_EPROXY : SHIR_EIO, "connecting to %s failed: %s",
	    who, detail);
}

static void
dial_pac_job_unref(struct dial_pac_job *j)
{
	if (j == NULL || __atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	close(j->fds[0]);
	close(j->fds[1]);
	proxy_config_unref(j->pc);
	free(j);
}

static void
dial_free(struct proxy_dial *d)
{
	if (d == NULL)
		return;
	if (d->pac_ev)
		event_free(d->pac_ev);
	dial_pac_job_unref(d->pac_job);
	dial_end_attempt(d);
	curl_ev_free(d->ce);
	if (d->step_ev)
		event_free(d->step_ev);
	proxy_config_unref(d->pc);
	free(d);
}

static void
dial_deliver(struct proxy_dial *d, struct bufferevent *bev, const struct shir_error *err)
{
	proxy_dial_cb cb = d->cb;
	void *arg = d->arg;

	if (err != NULL)
		log_info("proxy", "event=dial.failed dest=%s port=%d reason=%s", log_q(d->host),
		    d->port, log_q(err->msg));
	else
		log_debug("proxy", "event=dial.connected dest=%s port=%d via=%s", log_q(d->host),
		    d->port, log_q(d->cur ? d->cur : "DIRECT"));
	dial_free(d);
	cb(arg, bev, err);
}

/* --- the https:// proxy pump --------------------------------------------------- */

static void pump_close_later(struct dial_pump *p);

static void
pump_free(struct dial_pump *p)
{
	if (p->rd)
		event_free(p->rd);
	if (p->wr)
		event_free(p->wr);
	if (p->close_ev)
		event_free(p->close_ev);
	if (p->inner)
		bufferevent_free(p->inner);
	if (p->easy) {
		curl_multi_remove_handle(p->multi, p->easy);
		curl_easy_cleanup(p->easy);
	}
	if (p->multi)
		curl_multi_cleanup(p->multi);
	free(p);
}

static void
pump_close_event(evutil_socket_t fd, short what, void *arg)
{
	pump_free(arg);
}

static void
pump_close_later(struct dial_pump *p)
{
	struct timeval zero = { 0, 0 };

	if (p->rd)
		event_del(p->rd);
	if (p->wr)
		event_del(p->wr);
	if (p->inner)
		bufferevent_disable(p->inner, EV_READ | EV_WRITE);
	evtimer_add(p->close_ev, &zero);
}

/* proxy -> caller, until curl has nothing more or the caller is full. */
static void
pump_read(struct dial_pump *p)
{
	char buf[DIAL_CHUNK];
	struct evbuffer *out = bufferevent_get_output(p->inner);

	while (!p->proxy_eof) {
		size_t n = 0;
		CURLcode rc;

		if (evbuffer_get_length(out) >= DIAL_HIGH) {
			event_del(p->rd);	/* resumed by pump_inner_write below DIAL_LOW */
			return;
		}
		rc = curl_easy_recv(p->easy, buf, sizeof buf, &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK || n == 0) {
			p->proxy_eof = 1;
			event_del(p->rd);
			if (rc != CURLE_OK)
				log_info("proxy", "event=tunnel.error via=%s reason=%s", log_q(p->proxy),
				    log_q(curl_easy_strerror(rc)));
			if (evbuffer_get_length(out) == 0)
				pump_close_later(p);
			return;
		}
		bufferevent_write(p->inner, buf, n);
	}
}

/* caller -> proxy */
static void
pump_send(struct dial_pump *p)
{
	struct evbuffer *in = bufferevent_get_input(p->inner);

	while (evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_length(in), sent = 0;
		unsigned char *data;
		CURLcode rc;

		if (len > DIAL_CHUNK)
			len = DIAL_CHUNK;
		data = evbuffer_pullup(in, (ev_ssize_t)len);
		rc = curl_easy_send(p->easy, data, len, &sent);
		if (rc == CURLE_AGAIN) {
			event_add(p->wr, NULL);
			return;
		}
		if (rc != CURLE_OK) {
			log_info("proxy", "event=tunnel.error via=%s reason=%s", log_q(p->proxy),
			    log_q(curl_easy_strerror(rc)));
			pump_close_later(p);
			return;
		}
		evbuffer_drain(in, sent);
	}
	/* a TLS write can bring records in without the socket turning readable */
	pump_read(p);
}

static void
pump_fd_readable(evutil_socket_t fd, short what, void *arg)
{
	pump_read(arg);
}

static void
pump_fd_writable(evutil_socket_t fd, short what, void *arg)
{
	pump_send(arg);
}

static void
pump_inner_read(struct bufferevent *bev, void *arg)
{
	pump_send(arg);
}

static void
pump_inner_write(struct bufferevent *bev, void *arg)
{
	struct dial_pump *p = arg;

	if (p->proxy_eof) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			pump_close_later(p);
		return;
	}
	if (!event_pending(p->rd, EV_READ, NULL)) {
		event_add(p->rd, NULL);
		pump_read(p);
	}
}

static void
pump_inner_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		pump_close_later(arg);	/* the caller closed its end */
}

/* Moves the finished easy handle (and its multi) into a pump; returns the
 * caller's end of the pair. */
static struct bufferevent *
dial_make_pump(struct proxy_dial *d, curl_socket_t fd, struct shir_error *err)
{
	struct dial_pump *p = calloc(1, sizeof *p);
	struct bufferevent *outer = NULL;
	int sp[2] = { -1, -1 };

	if (p == NULL)
		goto oom;
	p->base = d->base;
	p->fd = fd;
	snprintf(p->proxy, sizeof p->proxy, "%s", d->cur);
	/* a socket pair rather than a bufferevent pair: the pump sees the caller
	 * close its end (EOF), and the kernel buffers add backpressure */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0)
		goto oom;
	if ((outer = bufferevent_socket_new(d->base, sp[0], BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto oom;
	sp[0] = -1;
	if ((p->inner = bufferevent_socket_new(d->base, sp[1], BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto oom;
	sp[1] = -1;
	p->rd = event_new(d->base, fd, EV_READ | EV_PERSIST, pump_fd_readable, p);
	p->wr = event_new(d->base, fd, EV_WRITE, pump_fd_writable, p);
	p->close_ev = evtimer_new(d->base, pump_close_event, p);
	if (p->rd == NULL || p->wr == NULL || p->close_ev == NULL)
		goto oom;
	/* curl keeps the finished connect-only transfer; we drive its socket now */
	curl_easy_setopt(d->easy, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, NULL);
	p->multi = curl_ev_detach(d->ce);
	p->easy = d->easy;
	d->ce = NULL;
	d->multi = NULL;
	d->easy = NULL;
	bufferevent_setcb(p->inner, pump_inner_read, pump_inner_write, pump_inner_event, p);
	bufferevent_setwatermark(p->inner, EV_READ, 0, DIAL_HIGH);
	bufferevent_setwatermark(p->inner, EV_WRITE, DIAL_LOW, 0);
	bufferevent_enable(p->inner, EV_READ | EV_WRITE);
	event_add(p->rd, NULL);
	pump_read(p);	/* TLS may hold bytes already */
	return outer;
oom:
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	if (outer)
		bufferevent_free(outer);
	if (p != NULL) {
		p->easy = NULL;
		p->multi = NULL;
		pump_free(p);
	}
	shir_error_set(err, SHIR_ENOMEM, "out of memory");
	return NULL;
}

/* --- the state machine ------------------------------------------------------------ */

static int
dial_next(struct proxy_dial *d, struct shir_error *err)
{
	if (d->dec.direct) {
		if (d->next > 0)
			return 1;	/* direct was tried */
		d->cur = NULL;
	} else {
		if (d->next >= d->dec.nproxies)
			return 1;
		d->cur = d->dec.proxies[d->next];
		if (strcmp(d->cur, "DIRECT") == 0)	/* a PAC list's DIRECT entry */
			d->cur = NULL;
	}
	d->next++;
	return dial_start_attempt(d, err);
}

static void
dial_step(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_dial *d = arg;
	struct bufferevent *bev = NULL;
	struct shir_error err;
	curl_socket_t sock = CURL_SOCKET_BAD;
	int rc;

	shir_error_clear(&err);
	if (!d->started) {
		d->started = 1;
		if (d->bad_url) {
			shir_error_set(&err, SHIR_EINVAL, "%s", d->dec.reason);
			dial_deliver(d, NULL, &err);
			return;
		}
		if ((rc = dial_next(d, &err)) != 0) {
			dial_deliver(d, NULL, &err);
			return;
		}
		return;
	}
	if (d->result == CURLE_OK &&
	    curl_easy_getinfo(d->easy, CURLINFO_ACTIVESOCKET, &sock) == CURLE_OK &&
	    sock != CURL_SOCKET_BAD) {
		if (d->cur != NULL && strncmp(d->cur, "https://", 8) == 0) {
			bev = dial_make_pump(d, sock, &err);
		} else {
			/* our own descriptor of the socket; libcurl closes its one */
			int fd2 = fcntl(sock, F_DUPFD_CLOEXEC, 0);

			dial_end_attempt(d);
			if (fd2 < 0)
				shir_error_set(&err, SHIR_EIO, "cannot take over the socket: %s",
				    strerror(errno));
			else if ((bev = bufferevent_socket_new(d->base, fd2,
			    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
				close(fd2);
				shir_error_set(&err, SHIR_ENOMEM, "out of memory");
			}
		}
		dial_deliver(d, bev, bev ? NULL : &err);
		return;
	}
	if (d->result == CURLE_OK)
		shir_error_set(&err, SHIR_EINTERNAL, "libcurl connected but gave no socket");
	else
		dial_describe(d, &err);
	dial_end_attempt(d);
	/* a PAC proxy that could not be reached is tried last for a while */
	if (d->cur != NULL && err.code != SHIR_EAUTH && err.code != SHIR_EPROXY &&
	    proxy_config_pac(d->pc) != NULL)
		pac_mark_bad(d->cur);
	/* fail over to the next proxy while time is left, unless the proxy answered */
	if (err.code != SHIR_EAUTH && err.code != SHIR_EPROXY && dial_now_ms() < d->deadline_ms &&
	    !d->dec.direct && d->next < d->dec.nproxies) {
		size_t o = strlen(d->failures);

		snprintf(d->failures + o, sizeof d->failures - o, "%s%s", o ? "; " : "", err.msg);
		log_info("proxy", "event=dial.failover dest=%s reason=%s", log_q(d->host),
		    log_q(err.msg));
		if (dial_next(d, &err) == 0)
			return;
	}
	if (d->failures[0]) {
		char msg[SHIR_ERROR_MSG_MAX];

		snprintf(msg, sizeof msg, "%s", err.msg);
		shir_error_set(&err, err.code, "%s (earlier: %s)", msg, d->failures);
	}
	dial_deliver(d, NULL, &err);
}

static struct proxy_dial *
dial_new(struct event_base *base, struct proxy_config *pc,
    const struct proxy_decision *dec, int bad_url, const char *host, int port, int timeout_s,
    proxy_dial_cb cb, void *arg)
{
	struct proxy_dial *d = calloc(1, sizeof *d);

	if (d == NULL)
		return NULL;
	d->base = base;
	d->pc = proxy_config_ref(pc);
	d->port = port;
	d->cb = cb;
	d->arg = arg;
	d->dec = *dec;
	d->bad_url = bad_url;
	if (d->dec.nproxies > PROXY_MAX_PROXIES)
		d->dec.nproxies = PROXY_MAX_PROXIES;
	d->timeout_s = timeout_s > 0 ? timeout_s : proxy_config_connect_timeout(pc);
	d->deadline_ms = dial_now_ms() + (uint64_t)d->timeout_s * 1000;
	if (strchr(host, ':') != NULL && host[0] != '[')
		snprintf(d->host, sizeof d->host, "[%s]", host);
	else
		snprintf(d->host, sizeof d->host, "%s", host);
	d->ce = curl_ev_new(base, dial_check, d);
	d->step_ev = evtimer_new(base, dial_step, d);
	if (d->ce == NULL || d->step_ev == NULL) {
		dial_free(d);
		return NULL;
	}
	d->multi = curl_ev_multi(d->ce);
	return d;
}

struct proxy_dial *
proxy_dial_decided(struct event_base *base, struct proxy_config *pc,
    const struct proxy_decision *dec, int bad_url, const char *host, int port, int timeout_s,
    proxy_dial_cb cb, void *arg)
{
	struct proxy_dial *d = dial_new(base, pc, dec, bad_url, host, port, timeout_s, cb, arg);

	if (d != NULL)
		dial_step_later(d);	/* the callback never runs inside proxy_dial() */
	return d;
}

static void *
dial_pac_thread(void *arg)
{
	struct dial_pac_job *j = arg;
	char b = 1;

	j->bad = proxy_decide(j->pc, j->url, &j->dec) != 0;
	while (write(j->fds[1], &b, 1) < 0 && errno == EINTR)
		;
	dial_pac_job_unref(j);
	return NULL;
}

/* the PAC thread is done: dial with its decision */
static void
dial_pac_done(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_dial *d = arg;
	struct dial_pac_job *j = d->pac_job;

	(void)fd;
	(void)what;
	d->dec = j->dec;
	d->bad_url = j->bad;
	if (d->dec.nproxies > PROXY_MAX_PROXIES)
		d->dec.nproxies = PROXY_MAX_PROXIES;
	event_free(d->pac_ev);
	d->pac_ev = NULL;
	d->pac_job = NULL;
	dial_pac_job_unref(j);
	/* the connect timeout starts now, after the script */
	d->deadline_ms = dial_now_ms() + (uint64_t)d->timeout_s * 1000;
	log_debug("proxy", "event=dial.pac dest=%s port=%d decision=%s reason=%s", log_q(d->host),
	    d->port, d->dec.direct ? "DIRECT" : "PROXY", log_q(d->dec.reason));
	dial_step_later(d);
}

/* PAC not in the short cache: decide on a thread, dial when it is done */
static struct proxy_dial *
dial_with_pac(struct event_base *base, struct proxy_config *pc, const char *dest_url,
    const char *host, int port, int timeout_s, proxy_dial_cb cb, void *arg)
{
	struct proxy_decision none;
	struct dial_pac_job *j;
	struct proxy_dial *d;
	pthread_attr_t at;
	pthread_t t;

	memset(&none, 0, sizeof none);
	none.direct = 1;
	if ((d = dial_new(base, pc, &none, 0, host, port, timeout_s, cb, arg)) == NULL)
		return NULL;
	if ((j = calloc(1, sizeof *j)) == NULL)
		goto fail;
	j->refs = 2;
	j->pc = proxy_config_ref(pc);
	snprintf(j->url, sizeof j->url, "%s", dest_url);
	if (pipe2(j->fds, O_CLOEXEC | O_NONBLOCK) != 0) {
		j->fds[0] = j->fds[1] = -1;
		proxy_config_unref(j->pc);
		free(j);
		goto fail;
	}
	d->pac_job = j;
	if ((d->pac_ev = event_new(base, j->fds[0], EV_READ, dial_pac_done, d)) == NULL ||
	    event_add(d->pac_ev, NULL) != 0)
		goto fail_job;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, dial_pac_thread, j) != 0) {
		pthread_attr_destroy(&at);
		goto fail_job;
	}
	pthread_attr_destroy(&at);
	return d;
fail_job:
	j->refs = 1;	/* no thread */
fail:
	dial_free(d);
	return NULL;
}

struct proxy_dial *
proxy_dial(struct event_base *base, struct proxy_config *pc, const char *dest_url,
    const char *host, int port, int timeout_s, proxy_dial_cb cb, void *arg)
{
	struct proxy_decision dec;
	int bad, r;

	if (proxy_config_pac(pc) != NULL) {
		if ((r = proxy_decide_nowait(pc, dest_url, &dec)) == 0)
			return dial_with_pac(base, pc, dest_url, host, port, timeout_s, cb, arg);
		bad = r < 0;
	} else {
		bad = proxy_decide(pc, dest_url, &dec) != 0;
	}

	log_debug("proxy", "event=dial.begin dest=%s port=%d url=%s decision=%s reason=%s",
	    log_q(host), port, log_q(dest_url), bad ? "ERROR" : dec.direct ? "DIRECT" : "PROXY",
	    log_q(dec.reason));
	return proxy_dial_decided(base, pc, &dec, bad, host, port, timeout_s, cb, arg);
}

void
proxy_dial_cancel(struct proxy_dial *d)
{
	dial_free(d);
}
