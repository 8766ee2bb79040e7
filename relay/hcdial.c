#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "relay/hcdial.h"
#include "common/log.h"
#include "proxy/proxy.h"
#include "relay/sas.h"

struct hcdial {
	struct event_base *base;
	struct evdns_base *dns;
	char url[2048];
	struct hcdial_url u;
	SSL_CTX *ssl_ctx;
	char pin[128];
	int timeout_s;
	void *proxy;
	struct proxy_dial *pd;
	struct bufferevent *bev;	/* raw, then TLS over it */
	struct event *ev_timeout;
	struct event *ev_done;
	struct shir_error err;
	int failed;
	int finished;
	hcdial_cb cb;
	void (*on_raw)(void *arg);
	void *arg;
};

/* --- URLs ------------------------------------------------------------------- */

int
hcdial_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int
hcdial_parse_url(const char *url, int allow_plain, struct hcdial_url *out, struct shir_error *err)
{
	struct http_parser_url pu;
	size_t len = strlen(url);
	const char *sch;
	size_t sl, hl;

	memset(out, 0, sizeof *out);
	http_parser_url_init(&pu);
	if (len == 0 || http_parser_parse_url(url, len, 0, &pu) != 0 ||
	    !(pu.field_set & (1 << UF_SCHEMA)) || !(pu.field_set & (1 << UF_HOST)))
		return shir_error_set(err, SHIR_EINVAL,
		    "%s is not a relay URL; write wss://host[:port] (or ws://127.0.0.1:port for a "
		    "relay on this machine)", log_q(url));
	sch = url + pu.field_data[UF_SCHEMA].off;
	sl = pu.field_data[UF_SCHEMA].len;
	if (sl == 3 && strncasecmp(sch, "wss", 3) == 0)
		out->tls = 1;
	else if (sl == 2 && strncasecmp(sch, "ws", 2) == 0)
		out->tls = 0;
	else
		return shir_error_set(err, SHIR_EINVAL,
		    "%s: the relay URL must start with wss:// (or ws:// for a relay on this machine)",
		    log_q(url));
	hl = pu.field_data[UF_HOST].len;
	if (hl == 0 || hl >= sizeof out->host)
		return shir_error_set(err, SHIR_EINVAL, "%s: bad host name", log_q(url));
	memcpy(out->host, url + pu.field_data[UF_HOST].off, hl);
	out->host[hl] = '\0';
	if (pu.field_set & (1 << UF_USERINFO))
		return shir_error_set(err, SHIR_EINVAL,
		    "%s: a relay URL must not carry a user name or password", log_q(url));
	out->port = (pu.field_set & (1 << UF_PORT)) ? pu.port : (out->tls ? 443 : 80);
	if (pu.field_set & (1 << UF_PATH)) {
		size_t off = pu.field_data[UF_PATH].off;
		size_t end = len;

		if (pu.field_set & (1 << UF_FRAGMENT))
			end = pu.field_data[UF_FRAGMENT].off - 1;
		if (end - off >= sizeof out->target)
			return shir_error_set(err, SHIR_ETOOBIG, "%s: the URL is too long", log_q(url));
		memcpy(out->target, url + off, end - off);
		out->target[end - off] = '\0';
	} else if (pu.field_set & (1 << UF_QUERY)) {
		snprintf(out->target, sizeof out->target, "/?%.*s", (int)pu.field_data[UF_QUERY].len,
		    url + pu.field_data[UF_QUERY].off);
	} else {
		strcpy(out->target, "/");
	}
	if (!out->tls && !allow_plain && !hcdial_host_is_loopback(out->host))
		return shir_error_set(err, SHIR_EPERM,
		    "%s: ws:// (no TLS) is allowed only for a relay on this machine; use wss://",
		    log_q(url));
	return 0;
}

/* --- TLS contexts and pins ---------------------------------------------------- */

int
hcdial_tls_ctx_new(const char *ca_file, SSL_CTX **out, struct shir_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int rc = 0;

	*out = NULL;
	if (ctx == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL && *ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			unsigned long e = ERR_get_error();

			rc = shir_error_set(err, SHIR_ECONFIG,
			    "relay.ca_file %s cannot be used: %s; it must be a PEM file of CA "
			    "certificates", ca_file, e ? ERR_reason_error_string(e) : "unreadable");
			ERR_clear_error();
			goto out;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		rc = shir_error_set(err, SHIR_ETLS, "the system's CA certificates cannot be loaded");
		goto out;
	}
	*out = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return rc;
}

int
hcdial_pin_check(const char *pin, struct shir_error *err)
{
	unsigned char raw[64];
	size_t bl;
	int n;

	if (strncmp(pin, "sha256/", 7) != 0)
		goto bad;
	bl = strlen(pin + 7);
	if (bl != 44)
		goto bad;
	n = EVP_DecodeBlock(raw, (const unsigned char *)pin + 7, (int)bl);
	if (n != 33)	/* 32 bytes plus one of padding */
		goto bad;
	return 0;
bad:
	return shir_error_set(err, SHIR_EINVAL,
	    "the TLS pin %s is not of the form sha256/<base64 of 32 bytes>", log_q(pin));
}

int
hcdial_spki_pin(X509 *cert, char *out, size_t len)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int dl;

	dl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (dl <= 0)
		return SHIR_ETLS;
	if (EVP_Digest(der, (size_t)dl, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return SHIR_ECRYPTO;
	}
	OPENSSL_free(der);
	if (len < 7 + 45)
		return SHIR_ETOOBIG;
	memcpy(out, "sha256/", 7);
	EVP_EncodeBlock((unsigned char *)out + 7, md, (int)mdlen);
	return 0;
}

/* --- the listen handshake ------------------------------------------------------ */

int
hcdial_listen_url(const char *endpoint, const char *hc, const char *listener_id, char *out,
    size_t len)
{
	char *enc = sas_url_encode(hc);
	size_t el = strlen(endpoint);
	int n;

	if (enc == NULL)
		return SHIR_ENOMEM;
	/* keep '/' in hybrid connection names that have it */
	for (char *p = strstr(enc, "%2F"); p; p = strstr(p, "%2F"))
		*p = '/', memmove(p + 1, p + 3, strlen(p + 3) + 1);
	n = snprintf(out, len, "%s%s$hc/%s?sb-hc-action=listen&sb-hc-id=%s", endpoint,
	    el > 0 && endpoint[el - 1] == '/' ? "" : "/", enc, listener_id);
	free(enc);
	return n < 0 || (size_t)n >= len ? SHIR_ETOOBIG : 0;
}

int
hcdial_listen_token(const char *endpoint, const char *hc, const char *key_name, const char *key,
    int64_t expiry, char **out)
{
	char uri[1024], *aud = NULL;
	int rc;

	*out = NULL;
	snprintf(uri, sizeof uri, "%s/$hc/%s", endpoint, hc);
	if ((rc = sas_audience_dotnet(uri, &aud)) != 0)
		return rc;
	rc = sas_token_build(aud, key_name, key, expiry, out);
	free(aud);
	return rc;
}

void
hcdial_host_header(const struct hcdial_url *u, char *out, size_t len)
{
	int v6 = strchr(u->host, ':') != NULL;
	int dflt = (u->tls && u->port == 443) || (!u->tls && u->port == 80);

	if (dflt)
		snprintf(out, len, v6 ? "[%s]" : "%s", u->host);
	else
		snprintf(out, len, v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
}

/* --- the dial ------------------------------------------------------------------ */

static void
hcdial_free(struct hcdial *d)
{
	if (d == NULL)
		return;
	if (d->pd)
		proxy_dial_cancel(d->pd);
	if (d->bev)
		bufferevent_free(d->bev);
	if (d->ev_timeout)
		event_free(d->ev_timeout);
	if (d->ev_done)
		event_free(d->ev_done);
	free(d);
}

static void
hcdial_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hcdial *d = arg;
	struct bufferevent *bev = d->failed ? NULL : d->bev;

	if (!d->failed) {
		d->bev = NULL;
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	}
	d->cb(d->arg, bev, d->failed ? &d->err : NULL);
	hcdial_free(d);
}

/* Ends the dial: the callback runs from a zero-delay event. */
static void
hcdial_finish(struct hcdial *d, int failed)
{
	if (d->finished)
		return;
	d->finished = 1;
	d->failed = failed;
	event_del(d->ev_timeout);
	if (d->bev)
		bufferevent_disable(d->bev, EV_READ | EV_WRITE);
	event_active(d->ev_done, EV_TIMEOUT, 0);
}

static void
hcdial_fail(struct hcdial *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
hcdial_fail(struct hcdial *d, int code, const char *fmt, ...)
{
	va_list ap;

	if (d->finished)
		return;
	va_start(ap, fmt);
	vsnprintf(d->err.msg, sizeof d->err.msg, fmt, ap);
	va_end(ap);
	d->err.code = code;
	hcdial_finish(d, 1);
}

static void
hcdial_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hcdial *d = arg;

	hcdial_fail(d, SHIR_ETIMEDOUT, "no connection to %s:%d within %d s", d->u.host, d->u.port,
	    d->timeout_s);
}

static void
hcdial_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hcdial *d = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (what & BEV_EVENT_CONNECTED) {
		if (d->pin[0]) {
			X509 *cert = SSL_get1_peer_certificate(ssl);
			char got[128];
			int ok = cert != NULL && hcdial_spki_pin(cert, got, sizeof got) == 0 &&
			    strlen(got) == strlen(d->pin) &&
			    CRYPTO_memcmp(got, d->pin, strlen(got)) == 0;

			X509_free(cert);
			if (!ok) {
				hcdial_fail(d, SHIR_ETLS,
				    "the certificate of %s verifies but its key does not match the pin "
				    "%s; the relay's key changed or someone is in between (fix "
				    "relay.tls_pin or the key)", d->u.host, d->pin);
				return;
			}
		}
		hcdial_finish(d, 0);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		unsigned long e = bufferevent_get_openssl_error(bev);
		char es[256] = "";

		if (e)
			ERR_error_string_n(e, es, sizeof es);
		if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
			hcdial_fail(d, SHIR_ETLS,
			    "certificate verify failed: the certificate of %s:%d is not for the name "
			    "%s; use the host name the certificate names in the relay URL", d->u.host,
			    d->u.port, d->u.host);
		else if (vr != X509_V_OK)
			hcdial_fail(d, SHIR_ETLS,
			    "certificate verify failed: %s (the certificate of %s:%d is not signed by a "
			    "CA this node trusts; set relay.ca_file to the CA that signed it)",
			    X509_verify_cert_error_string(vr), d->u.host, d->u.port);
		else
			hcdial_fail(d, SHIR_ETLS, "TLS handshake with %s:%d failed: %s", d->u.host,
			    d->u.port, es[0] ? es : (what & BEV_EVENT_EOF) ?
			    "the peer closed the connection (is it a TLS server?)" : "I/O error");
		ERR_clear_error();
	}
}

/* The raw stream is up: start TLS on it, or finish. */
static void
hcdial_raw_done(struct hcdial *d, struct bufferevent *raw)
{
	struct bufferevent *tls;
	SSL *ssl;
	X509_VERIFY_PARAM *vp;
	struct in_addr a4;
	struct in6_addr a6;
	int is_ip;

	d->bev = raw;
	if (d->on_raw != NULL)
		d->on_raw(d->arg);
	if (!d->u.tls) {
		hcdial_finish(d, 0);
		return;
	}
	ssl = SSL_new(d->ssl_ctx);
	if (ssl == NULL) {
		hcdial_fail(d, SHIR_ENOMEM, "cannot create a TLS session");
		return;
	}
	is_ip = inet_pton(AF_INET, d->u.host, &a4) == 1 || inet_pton(AF_INET6, d->u.host, &a6) == 1;
	vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, d->u.host) != 1 :
	    (SSL_set_tlsext_host_name(ssl, d->u.host) != 1 || SSL_set1_host(ssl, d->u.host) != 1)) {
		SSL_free(ssl);
		hcdial_fail(d, SHIR_ETLS, "cannot set the TLS host name %s", d->u.host);
		return;
	}
	bufferevent_setcb(raw, NULL, NULL, NULL, NULL);
	tls = bufferevent_openssl_filter_new(d->base, raw, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		SSL_free(ssl);
		hcdial_fail(d, SHIR_ENOMEM, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	d->bev = tls;
	bufferevent_setcb(tls, NULL, NULL, hcdial_tls_event_cb, d);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* --- raw stage: direct TCP (the seam for proxy_dial) -------------------------- */

static void
hcdial_direct_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hcdial *d = arg;

	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		hcdial_raw_done(d, bev);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int dnserr = bufferevent_socket_get_dns_error(bev);
		int e = EVUTIL_SOCKET_ERROR();

		if (dnserr)
			hcdial_fail(d, SHIR_EDNS, "cannot resolve %s: %s", d->u.host,
			    evutil_gai_strerror(dnserr));
		else if (e == ECONNREFUSED)
			hcdial_fail(d, SHIR_ECONNREFUSED, "%s:%d refused the connection", d->u.host,
			    d->u.port);
		else
			hcdial_fail(d, SHIR_EIO, "cannot connect to %s:%d: %s", d->u.host, d->u.port,
			    e ? evutil_socket_error_to_string(e) : "connection failed");
	}
}

/* The raw stream through proxy/: direct or through the proxies the decision
 * names for this URL. */
static void
hcdial_proxy_cb(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct hcdial *d = arg;
	int code;

	d->pd = NULL;
	if (bev != NULL) {
		hcdial_raw_done(d, bev);
		return;
	}
	/* before TLS to the relay, a TLS failure can only be the proxy's; a 407
	 * keeps SHIR_EAUTH (metrics count it apart from a refusal), and so do the
	 * others (refused, timed out, DNS): their words start with "proxy " */
	code = err->code;
	if (code == SHIR_ETLS)
		code = SHIR_EPROXY;
	hcdial_fail(d, code, "%s", err->msg);
}

int
hcdial_via_proxy(const struct shir_error *err)
{
	return err->code == SHIR_EPROXY || err->code == SHIR_EAUTH ||
	    strncmp(err->msg, "proxy ", 6) == 0;
}

static int
hcdial_raw_start(struct hcdial *d)
{
	struct bufferevent *bev;

	if (d->proxy != NULL) {
		char url[2400];

		/* decide as for the http(s) URL a WebSocket upgrade is made on */
		snprintf(url, sizeof url, "%s://%s%s%s:%d%s", d->u.tls ? "https" : "http",
		    strchr(d->u.host, ':') ? "[" : "", d->u.host, strchr(d->u.host, ':') ? "]" : "",
		    d->u.port, d->u.target);
		d->pd = proxy_dial(d->base, d->proxy, url, d->u.host, d->u.port, d->timeout_s,
		    hcdial_proxy_cb, d);
		return d->pd != NULL ? 0 : SHIR_ENOMEM;
	}
	/* no proxy configuration at all (tools, tests): a direct connection */
	bev = bufferevent_socket_new(d->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return SHIR_ENOMEM;
	d->bev = bev;
	bufferevent_setcb(bev, NULL, NULL, hcdial_direct_event_cb, d);
	if (bufferevent_socket_connect_hostname(bev, d->dns, AF_UNSPEC, d->u.host, d->u.port) != 0) {
		/* the error callback may already have run; if not, fail now */
		hcdial_fail(d, SHIR_EIO, "cannot connect to %s:%d", d->u.host, d->u.port);
	}
	return 0;
}

struct hcdial *
hcdial_start(struct event_base *base, struct evdns_base *dns, const struct hcdial_opts *o,
    hcdial_cb cb, void *arg)
{
	struct hcdial *d = calloc(1, sizeof *d);
	struct timeval tv = { o->timeout_s > 0 ? o->timeout_s : 20, 0 };

	if (d == NULL)
		return NULL;
	d->base = base;
	d->dns = dns;
	snprintf(d->url, sizeof d->url, "%s", o->url ? o->url : "");
	d->u = *o->u;
	d->ssl_ctx = o->ssl_ctx;
	snprintf(d->pin, sizeof d->pin, "%s", o->tls_pin ? o->tls_pin : "");
	d->timeout_s = (int)tv.tv_sec;
	d->proxy = o->proxy;
	d->cb = cb;
	d->on_raw = o->on_raw;
	d->arg = arg;
	d->ev_timeout = evtimer_new(base, hcdial_timeout_cb, d);
	d->ev_done = event_new(base, -1, 0, hcdial_done_cb, d);
	if (d->ev_timeout == NULL || d->ev_done == NULL || (d->u.tls && d->ssl_ctx == NULL)) {
		hcdial_free(d);
		return NULL;
	}
	evtimer_add(d->ev_timeout, &tv);
	if (hcdial_raw_start(d) != 0) {
		hcdial_free(d);
		return NULL;
	}
	return d;
}

void
hcdial_cancel(struct hcdial *d)
{
	hcdial_free(d);
}
