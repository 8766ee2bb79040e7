/* lctl: the listener's reading of one control-message text (pure: bytes in,
 * a decoded command out; no I/O). It accepts what Azure Relay, shir-relay
 * and the npm relays send: one JSON object with one known top-level key
 * (accept or request); unknown commands are reported as such so the caller
 * can ignore them, as .NET does. Bad input is an error, never a crash. */
#ifndef SHIR_LCTL_H
#define SHIR_LCTL_H

#include <stddef.h>

#include "shir_err.h"

enum lctl_kind {
	LCTL_UNKNOWN = 0,	/* a valid object with no command we handle */
	LCTL_ACCEPT,
	LCTL_REQUEST,		/* full: method and body present */
	LCTL_REQUEST_ADDRESS,	/* address only: open the rendezvous */
};

#define LCTL_MAX_HEADERS 64

struct lctl_header {
	char *name, *value;
};

struct lctl_msg {
	enum lctl_kind kind;
	char *address;		/* accept, request */
	char *id;
	char *target;		/* request: requestTarget */
	char *method;		/* request */
	int body;		/* request: a binary message follows */
	struct lctl_header headers[LCTL_MAX_HEADERS];	/* connectHeaders / requestHeaders */
	size_t nheaders;
	char unknown[32];	/* LCTL_UNKNOWN: the command's name (truncated) */
};

/* Decodes one text message. Returns 0 (m filled; free with lctl_msg_clear)
 * or SHIR_EPROTO with err saying what was wrong. */
int lctl_parse(const char *text, size_t len, struct lctl_msg *m, struct shir_error *err);
void lctl_msg_clear(struct lctl_msg *m);
/* A header's value (case-insensitive name), or NULL. */
const char *lctl_header(const struct lctl_msg *m, const char *name);

/* Builds {"response":{...}}: the caller frees the string with free().
 * headers: "Name: value\r\n" lines as the API gives them (may be NULL). */
char *lctl_response_json(const char *request_id, int status, const char *headers,
    const char *ctype, int body);
/* Builds {"renewToken":{"token":...}}; the caller frees it. */
char *lctl_renew_json(const char *token);

/* The path and query an application sees: requestTarget without its leading
 * /{hc} (case-insensitive), always starting with '/'. out gets at most len
 * bytes; returns SHIR_ETOOBIG if it does not fit. */
int lctl_strip_hc(const char *target, const char *hc, char *out, size_t len);

#endif
