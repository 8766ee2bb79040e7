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

#include <stddef.h>
#include <stdint.h>

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
	/* optional: the raw stream is up (TCP, or the proxy's CONNECT tunnel),
	 * TLS comes next; called with the dial's arg (shirctl diagnose reports
	 * the steps one by one) */
	void (*on_raw)(void *arg);
};

/* err->code: SHIR_EDNS, SHIR_ECONNREFUSED, SHIR_ETIMEDOUT, SHIR_EIO,
 * SHIR_ETLS, SHIR_EPROXY or SHIR_EAUTH; err->msg says what happened in words.
 * EPROXY: the proxy answered and refused (CONNECT status, TLS to an https
 * proxy); EAUTH: it asked for credentials (407) it did not get or refused. A
 * proxy that could not be reached keeps the network code, and its words start
 * with "proxy " (hcdial_via_proxy()). */
typedef void (*hcdial_cb)(void *arg, struct bufferevent *bev, const struct shir_error *err);

/* Whether a failure is about the proxy (answered or unreachable). */
int hcdial_via_proxy(const struct shir_error *err);

/* Starts a dial. cb runs exactly once, later (never from inside this call),
 * unless hcdial_cancel() came first. The hcdial is freed after cb. */
struct hcdial *hcdial_start(struct event_base *base, struct evdns_base *dns,
    const struct hcdial_opts *o, hcdial_cb cb, void *arg);
void hcdial_cancel(struct hcdial *d);

/* --- the listen handshake, as the node makes it ------------------------------
 * The control channel's URL: endpoint + "/$hc/" + hc (URL-encoded, '/' kept)
 * + "?sb-hc-action=listen&sb-hc-id=" + listener_id. 0 or SHIR_ETOOBIG/ENOMEM. */
int hcdial_listen_url(const char *endpoint, const char *hc, const char *listener_id,
    char *out, size_t len);
/* Its SAS token (ServiceBusAuthorization), for the audience .NET's listener
 * uses (endpoint/$hc/hc); *out is the caller's to wipe and free. */
int hcdial_listen_token(const char *endpoint, const char *hc, const char *key_name,
    const char *key, int64_t expiry, char **out);
/* Host header value: host[:port] (port left out when it is the scheme's),
 * IPv6 in brackets. */
void hcdial_host_header(const struct hcdial_url *u, char *out, size_t len);

/* "sha256/<base64>" of the certificate's SubjectPublicKeyInfo. */
int hcdial_spki_pin(X509 *cert, char *out, size_t len);

#endif
