/* hc_msg: the Hybrid Connections control messages (spec §3) as JSON with
 * cJSON, plus the header and query rules of §2.3 and §2.6. No I/O.
 *
 * Decoding accepts what real clients send: statusCode as a number or a
 * string, header names in any case, unknown keys ignored (the message type
 * is then HC_MSG_UNKNOWN). Encoding always writes header values as strings
 * and follows §3.4's compatibility rule: an inline request carries method
 * and an explicit body; an address-only request carries neither. */
#ifndef SHIR_HC_MSG_H
#define SHIR_HC_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/shir_err.h"

#define HC_INLINE_MAX (64 * 1024)	/* control-channel message limit */

/* A header map with case-insensitive names and merged values. */
struct hc_header {
	char *name;
	char *value;
};
struct hc_headers {
	struct hc_header *v;
	size_t n;
};

void hc_headers_clear(struct hc_headers *h);
/* Adds a header; a repeated name (any case) is merged into the existing
 * value: joined with ", ", or "; " for Cookie. */
int hc_headers_add(struct hc_headers *h, const char *name, const char *value);
const char *hc_headers_get(const struct hc_headers *h, const char *name);
void hc_headers_remove(struct hc_headers *h, const char *name);

/* RFC 7230 connection-level headers the relay never forwards (§2.6):
 * Connection, Content-Length, Host, TE, Trailer, Transfer-Encoding, Upgrade,
 * Close, plus Keep-Alive, Proxy-Connection, Proxy-Authenticate and
 * Proxy-Authorization (RFC 2616 §13.5.1). Headers named in a Connection
 * header are hop-by-hop too (RFC 7230 §6.1): hc_header_is_connection_option. */
bool hc_is_hop_header(const char *name);
/* True if the comma-separated list holds token (case-insensitive, blanks and
 * empty elements ignored). */
bool hc_list_has_token(const char *list, const char *token);
/* True if a Connection header in h names `name` as a connection option. */
bool hc_header_is_connection_option(const struct hc_headers *h, const char *name);
/* RFC 7230 §3.2: a field name is a non-empty token; a value has no control
 * characters but HTAB (so no CR, LF or NUL). */
bool hc_header_name_ok(const char *name);
bool hc_header_value_ok(const char *value);

struct hc_endpoint {
	bool set;
	char *address;
	int port;
};

struct hc_accept {
	char *address;
	char *id;
	struct hc_headers connect_headers;
	struct hc_endpoint remote;
};

struct hc_request {
	char *address;
	char *id;
	/* Present on an inline (full) request, NULL on an address-only one. */
	char *method;
	char *request_target;
	struct hc_headers headers;
	struct hc_endpoint remote;
	bool has_body;		/* "body" key present */
	bool body;
};

struct hc_response {
	char *request_id;
	int status;
	char *status_description;	/* may be NULL */
	struct hc_headers headers;
	bool body;
};

enum hc_msg_type {
	HC_MSG_UNKNOWN = 0,
	HC_MSG_ACCEPT,
	HC_MSG_REQUEST,
	HC_MSG_RESPONSE,
	HC_MSG_RENEW,
	/* shir-relay -> listener, only to listeners that sent
	 * "Shir-Relay-Features: cancel" on their listen: {"cancel":{"id":...}},
	 * the inline request with that id is void (its sender went away) */
	HC_MSG_CANCEL,
	/* between the nodes of one runtime, both ways, only with listeners that
	 * sent "Shir-Relay-Features: sync": {"shirSync":{...}}, opaque to the
	 * relay (sealed under the runtime's data key, docs/ha.md), which hands
	 * it to every other such listener of the hybrid connection */
	HC_MSG_SYNC,
};

struct hc_msg {
	enum hc_msg_type type;
	struct hc_accept accept;
	struct hc_request request;
	struct hc_response response;
	char *renew_token;
	char *cancel_id;
	bool sync_inactive;	/* HC_MSG_SYNC with "state":"Inactive" (the sender's own word) */
};

/* Decodes one control message. Returns 0 (type may be HC_MSG_UNKNOWN for a
 * valid object with no known key), or SHIR_EPROTO for invalid JSON or a
 * known command with wrong field types. */
int hc_msg_decode(const char *json, size_t len, struct hc_msg *m, struct shir_error *e);
void hc_msg_clear(struct hc_msg *m);
/* True when a request is inline (§3.4: method present). */
bool hc_request_is_inline(const struct hc_request *r);

/* Encoders return malloc'ed compact JSON, or NULL when out of memory. */
char *hc_msg_encode_accept(const struct hc_accept *a);
/* Inline when r->method != NULL (method, requestTarget, requestHeaders,
 * remoteEndpoint, body always written); address-only otherwise. */
char *hc_msg_encode_request(const struct hc_request *r);
char *hc_msg_encode_response(const struct hc_response *r);
char *hc_msg_encode_renew(const char *token);

/* §2.3: removes every key=value pair whose key starts with "sb-hc-" (any
 * case) from a query (without '?'); keeps everything else as is, including
 * empty pairs and a bare "sb-hc-x" without '='. Returns a malloc'ed string,
 * "" when nothing is left. */
char *hc_strip_query(const char *query);
/* Looks up the first value of key in a query and form-decodes it. Returns 0,
 * SHIR_ENOENT, or SHIR_EINVAL (bad escape). *out malloc'ed. */
int hc_query_get(const char *query, const char *key, char **out);

#endif
