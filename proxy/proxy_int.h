/* proxy_int: what the tunnel code needs from a loaded configuration beyond
 * the public API (credentials stay inside proxy/). */
#ifndef SHIR_PROXY_INT_H
#define SHIR_PROXY_INT_H

#include "proxy/proxy.h"

struct proxy_cred {
	const char *user;	/* NULL: none */
	const char *password;	/* NULL: none */
	unsigned long auth;	/* CURLAUTH_* mask */
	const char *auth_name;	/* "any", "basic", ... */
};

/* Credentials for a proxy that proxy_decide() returned (its "scheme://host:port"). */
void proxy_config_cred(const struct proxy_config *pc, const char *proxy_url, struct proxy_cred *out);

/* proxy.ca_file, or NULL for the system's CA store. */
const char *proxy_config_ca_file(const struct proxy_config *pc);

/* proxy_dial() with a decision made elsewhere (PAC, tests); bad_url: dec.reason
 * says why the URL could not be decided, and the callback reports it. */
struct proxy_dial *proxy_dial_decided(struct event_base *base, struct proxy_config *pc,
    const struct proxy_decision *dec, int bad_url, const char *host, int port, int timeout_s,
    proxy_dial_cb cb, void *arg);

/* The PAC settings, or NULL when the configuration does not use PAC. */
struct pac_params;
const struct pac_params *proxy_config_pac(const struct proxy_config *pc);
/* proxy_decide() when it needs no PAC evaluation (loopback, a bad URL, a PAC
 * result still in the short cache): 1 decided, -1 a bad URL (d->reason says
 * why), 0 it would have to run the script. */
int proxy_decide_nowait(const struct proxy_config *pc, const char *url, struct proxy_decision *d);

#endif
