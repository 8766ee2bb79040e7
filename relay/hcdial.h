/* hcdial: how the listener reaches the relay. One asynchronous dial: a raw
 * stream (directly, or through the proxy layer when the proxy decision says
 * so), then TLS for wss:// with verification on (system CAs or relay.ca_file),
 * the host name checked, and the optional SPKI pin. The result is a connected
 * bufferevent ready for the WebSocket upgrade.
 *
 * The raw stage is one function (hcdial_raw_start): proxy_dial() from proxy/
 * when the node has a proxy configuration, else a direct connection. */
#ifndef SHIR_LDIAL_H
#define SHIR_LDIAL_H

#include <openssl/ssl.h>

#include "common/shir_err.h"

struct event_base;
struct evdns_base;
struct bufferevent;
struct hcdial;

/* A relay URL taken apart (ws:// or wss://). */
struct hcdial_url {
	int tls;		/* wss */
	char host[256];		/* without brackets for IPv6 */
	int port;
	char target[2048];	/* path and query, at least "/" */
};

/* Parses url; ws:// is accepted only for loopback hosts (127.0.0.0/8, ::1,
 * localhost) unless allow_plain. */
int hcdial_parse_url(const char *url, int allow_plain, struct hcdial_url *out,
    struct shir_error *err);
int hcdial_host_is_loopback(const char *host);

/* A TLS client context: peer verification on, TLS 1.2 at least, ca_file or
 * the system's CAs. */
int hcdial_tls_ctx_new(const char *ca_file, SSL_CTX **out, struct shir_error *err);
/* Checks a pin's form: "sha256/" + base64 of 32 bytes. */
int hcdial_pin_check(const char *pin, struct shir_error *err);

struct hcdial_opts {
	const char *url;	/* the full URL (for the proxy decision and words) */
	const struct hcdial_url *u;
	SSL_CTX *ssl_ctx;	/* for wss; not owned */
	const char *tls_pin;	/* NULL or "sha256/..." */
	int timeout_s;
	void *proxy;		/* struct proxy_config * or NULL (direct) */
};

/* err->code: SHIR_EDNS, SHIR_ECONNREFUSED, SHIR_ETIMEDOUT, SHIR_EIO,
 * SHIR_ETLS or SHIR_EPROXY; err->msg says what happened in words. */
typedef void (*hcdial_cb)(void *arg, struct bufferevent *bev, const struct shir_error *err);

/* Starts a dial. cb runs exactly once, later (never from inside this call),
 * unless hcdial_cancel() came first. The hcdial is freed after cb. */
struct hcdial *hcdial_start(struct event_base *base, struct evdns_base *dns,
    const struct hcdial_opts *o, hcdial_cb cb, void *arg);
void hcdial_cancel(struct hcdial *d);

/* "sha256/<base64>" of the certificate's SubjectPublicKeyInfo. */
int hcdial_spki_pin(X509 *cert, char *out, size_t len);

#endif
