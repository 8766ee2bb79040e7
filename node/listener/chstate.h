/* chstate: what a relay channel is doing, as users see it (pure: the caller
 * passes the time and a random value; no I/O).
 *
 *   Connecting --connected--> Connected --down--> Disconnected --retry--> Connecting
 *   Connecting --down--> Disconnected
 *
 * Every change goes through one setter that logs old -> new. chstate_down()
 * words the cause as a sentence for `shirctl status` and decides what comes
 * next: a retry after the backoff ladder, or no retry at all when the relay
 * says the hybrid connection does not exist (404) or the configuration is
 * unusable; such a channel waits for a configuration change. */
#ifndef SHIR_CHSTATE_H
#define SHIR_CHSTATE_H

#include <stdint.h>

#include "node/listener/backoff.h"

struct cJSON;

enum chstate_state { CHSTATE_CONNECTING = 0, CHSTATE_CONNECTED, CHSTATE_DISCONNECTED };

/* Why a channel went down or an attempt failed. */
enum chstate_why {
	CHSTATE_WHY_NETWORK = 0,	/* DNS, refused, reset, timeout: detail says which */
	CHSTATE_WHY_PROXY,		/* the proxy refused or failed: detail is its words */
	CHSTATE_WHY_TLS,		/* handshake or verification: detail is the reason */
	CHSTATE_WHY_HANDSHAKE,		/* the relay answered the upgrade with code */
	CHSTATE_WHY_CLOSED,		/* the relay closed the WebSocket with code */
	CHSTATE_WHY_DEAD,		/* no pong within the limit */
	CHSTATE_WHY_PROTOCOL,		/* the relay broke the protocol: detail */
	CHSTATE_WHY_CONFIG,		/* our configuration is unusable: detail (no retry) */
	CHSTATE_WHY_COUNT
};

/* What a proxy failure was (for /metrics), from the proxy dialer's words. */
enum chstate_proxy_kind {
	CHSTATE_PROXY_AUTH = 0,		/* 407: credentials missing or refused */
	CHSTATE_PROXY_DENIED,		/* the proxy answered CONNECT with another error */
	CHSTATE_PROXY_UNREACHABLE,	/* DNS, refused, reset on the way to the proxy */
	CHSTATE_PROXY_TIMEOUT,		/* no answer in proxy.connect_timeout */
	CHSTATE_PROXY_OTHER,
	CHSTATE_PROXY_COUNT
};

#define CHSTATE_ERR_MAX 1536	/* a proxy's 407 with its hint and offered schemes fits whole */

struct chstate {
	char name[96];
	char endpoint[256];	/* for the words: wss://host:port */
	char path[128];		/* the hybrid connection */
	enum chstate_state state;
	int stopped;		/* no retry until the configuration changes */
	char last_error[CHSTATE_ERR_MAX];
	int64_t next_retry_ms;	/* wall clock; 0 = none planned */
	int64_t connected_since_ms;	/* wall clock; 0 = not connected */
	uint64_t bytes_in, bytes_out;
	unsigned inflight;	/* requests and tunnels in flight */
	unsigned connects;	/* successful connects so far */
	unsigned downs[CHSTATE_WHY_COUNT];	/* failed attempts and drops, by cause */
	unsigned proxy_fails[CHSTATE_PROXY_COUNT];	/* CHSTATE_WHY_PROXY, by kind */
	struct backoff bo;
};

const char *chstate_name(enum chstate_state s);
/* "network", "proxy", "tls", "handshake", "closed", "dead", "protocol", "config" */
const char *chstate_why_name(enum chstate_why why);
/* "auth", "denied", "unreachable", "timeout", "other" */
const char *chstate_proxy_kind_name(enum chstate_proxy_kind k);
/* The kind of a proxy failure from the dialer's error code (SHIR_EAUTH ...). */
enum chstate_proxy_kind chstate_proxy_kind(int shir_code);
void chstate_init(struct chstate *cs, const char *name, const char *endpoint, const char *path);
/* An attempt starts. */
void chstate_connecting(struct chstate *cs, int64_t now_ms);
/* The relay accepted the listener (101). */
void chstate_connected(struct chstate *cs, int64_t now_ms);
/* The attempt failed or the channel dropped. code is the HTTP status
 * (HANDSHAKE), the close code (CLOSED), the ping limit in seconds (DEAD), an
 * enum chstate_proxy_kind (PROXY), or
 * 0; detail may be NULL. Returns the delay before the next attempt in ms, or
 * -1 when the channel must not retry (see chstate.stopped). */
int64_t chstate_down(struct chstate *cs, int64_t now_ms, enum chstate_why why, int code,
    const char *detail, uint32_t rnd);
/* Adds name, state, lastError, nextRetry, connectedSince, bytesIn, bytesOut,
 * requestsInFlight (and endpoint, path, connects) to obj. */
void chstate_to_json(const struct chstate *cs, struct cJSON *obj, int64_t now_ms);
/* Formats a wall-clock ms time as 2026-11-24T03:04:05Z. */
void chstate_iso8601(int64_t ms, char *buf, unsigned len);

/* The node status that follows from its channels (an enum node_status), with
 * the cause worded into cause: NeedsRegistration with none, Starting while
 * the first attempts run, Online when all are connected, Limited when some
 * are down (the cause names one and why), Offline when all are down. */
int chstate_node_status(const struct chstate *const *cs, unsigned n, char *cause, unsigned len);

#endif
