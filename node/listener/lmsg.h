/* lmsg: the listener's handling of one control message (pure: text in, a
 * decision out; no I/O). It decodes with relay/hc_msg and then decides what
 * the listener does, following spec §8:
 *
 *   accept            -> bridge to a forward (LMSG_TUNNEL name) or reject
 *                        (LMSG_REJECT with 403/404 and a description)
 *   request (inline)  -> LMSG_REQUEST: dispatch target (without /{hc}),
 *                        read one binary message first if body is true
 *   request (address) -> LMSG_RENDEZVOUS: open the address, the full request
 *                        comes there
 *   cancel            -> LMSG_CANCEL (shir-relay's extension, control channel
 *                        only): the inline request `id` is void, its sender
 *                        went away
 *   shirSync          -> LMSG_SYNC (control channel only): a message from
 *                        another node of the runtime, for node/cluster
 *   anything else     -> LMSG_IGNORE (as .NET does); bad JSON -> error
 *
 * Also builds the messages the listener sends (response, renewToken). */
#ifndef SHIR_LCTL_H
#define SHIR_LCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "relay/hc_msg.h"
#include "common/shir_err.h"

enum lmsg_kind {
	LMSG_IGNORE = 0,
	LMSG_TUNNEL,		/* accept: bridge to forward `forward` */
	LMSG_REJECT,		/* accept: reject with code and desc */
	LMSG_REQUEST,		/* full request */
	LMSG_RENDEZVOUS,	/* address-only request */
	LMSG_CANCEL,		/* the inline request `id` is void */
	LMSG_SYNC,		/* a node sync message (control channel only) */
};

struct lmsg_msg {
	enum lmsg_kind kind;
	const char *address;	/* accept / request address (NULL for a request on a
				   rendezvous that carries none) */
	const char *id;
	const char *method;	/* LMSG_REQUEST */
	char target[4096];	/* LMSG_REQUEST: the API target, /{hc} removed */
	bool body;		/* LMSG_REQUEST: a binary message follows */
	char forward[128];	/* LMSG_TUNNEL */
	const char *protocol;	/* LMSG_TUNNEL: the chosen subprotocol or NULL */
	char proto_buf[128];
	int code;		/* LMSG_REJECT, or a request refused at once (414) */
	char desc[512];
	struct hc_msg raw;
};

/* What the decision needs to know about the node. */
struct lmsg_policy {
	const char *hc;		/* the hybrid connection (path) of the channel */
	bool control;		/* the message came on the control channel */
	/* is there a forward with this name? */
	bool (*has_forward)(void *arg, const char *name);
	void *arg;
};

/* Decodes and decides. Returns 0 (m filled; free with lmsg_msg_clear) or
 * SHIR_EPROTO with err saying what was wrong. */
int lmsg_handle(const char *text, size_t len, const struct lmsg_policy *p, struct lmsg_msg *m,
    struct shir_error *err);
void lmsg_msg_clear(struct lmsg_msg *m);

/* {"response":{...}} for an API answer: headers as "Name: value\r\n" lines
 * (may be NULL); the caller frees the string with free(). */
char *lmsg_response_json(const char *request_id, int status, const char *headers,
    const char *ctype, bool body);
/* {"renewToken":{"token":...}}; the caller frees it. */
char *lmsg_renew_json(const char *token);

/* The path and query an application sees: requestTarget without its leading
 * /{hc} (case-insensitive), always starting with '/'. */
int lmsg_strip_hc(const char *target, const char *hc, char *out, size_t len);
/* The part of an accept address after /$hc/{hc}, without the query:
 * "/tcp/echo" for ".../$hc/myhc/tcp/echo?sb-hc-action=accept...". */
int lmsg_suffix(const char *address, const char *hc, char *out, size_t len);
/* Appends &sb-hc-statusCode=..&sb-hc-statusDescription=.. to address. */
int lmsg_reject_url(const char *address, int code, const char *desc, char *out, size_t len);

#endif
