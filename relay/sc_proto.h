/* sc_proto: the self-contained channel's handshake, as both sides speak it
 * (docs/self-contained.md). The node opens a TLS connection to the relay's
 * service endpoint and asks, in HTTP/1.1, to reverse the roles:
 *
 *   GET /$shir/v1/tunnel/<hc> HTTP/1.1
 *   Connection: upgrade
 *   Upgrade: reverse
 *   ALPN: h2
 *   ServiceBusAuthorization: <SAS token of a Listen rule>
 *   Shir-Node-Name, Shir-Node-Id, Shir-Version, Shir-Capacity
 *
 * The relay answers 101 with Upgrade: reverse, Selected-ALPN: h2, a
 * connection id and whether the runtime's self-contained mode is on; from the
 * next byte on, HTTP/2 runs with the node as the server. Any other status is
 * a refusal (401/403 token, 404 runtime, 409, 429/503 with Retry-After). */
#ifndef SHIR_SC_PROTO_H
#define SHIR_SC_PROTO_H

#include <stddef.h>

#include "common/shir_err.h"

struct announce_lines;

#define SC_PROTO_PATH "/$shir/v1/tunnel/"
#define SC_PROTO_HEAD_MAX 8192	/* the relay's answer head, at most */
/* the relay -> node stream that carries a mode change ({"selfContained":b}) */
#define SC_PROTO_MODE_PATH "/$shir/v1/mode"

struct sc_hello {
	const char *host;	/* Host header value */
	const char *hc;		/* the runtime's hybrid connection */
	const char *token;	/* SAS token (Listen) */
	const char *node_name;
	const char *node_id;
	const char *version;
	int capacity;		/* streams the node serves at once */
	const struct announce_lines *ann;	/* relay/announce.h; NULL: not announced */
};

/* The upgrade request head; NULL when out of memory or a value would break
 * the head (control characters). The caller wipes and frees it (token). */
char *sc_proto_request(const struct sc_hello *h);

struct sc_answer {
	int status;		/* 101 when accepted */
	char reason[128];	/* the status line's words (control characters blanked) */
	char conn_id[64];	/* Shir-Connection-Id */
	int self_contained;	/* Shir-Self-Contained: on */
	int retry_after;	/* seconds; 0 = none */
};

/* Parses the relay's answer head at the start of buf. Returns the head's
 * length (the HTTP/2 bytes start there) when complete, 0 when more bytes are
 * needed, or a negative SHIR_E* with err worded: SHIR_ETOOBIG (no head end
 * within SC_PROTO_HEAD_MAX), SHIR_EPROTO (not an HTTP/1.1 status line, a bad
 * header line, a 101 without Upgrade: reverse or with a Selected-ALPN other
 * than h2). */
int sc_proto_parse_answer(const char *buf, size_t len, struct sc_answer *out,
    struct shir_error *err);

/* The relay's 101 head. */
int sc_proto_answer_101(char *out, size_t len, const char *conn_id, int self_contained);

#endif
