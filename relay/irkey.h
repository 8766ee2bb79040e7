/* irkey: the node/service key format of DESIGN §4, one pasteable string:
 *
 *   IR@v1@<base64url of a JSON object, without padding>
 *   {"ir":..., "endpoint":"wss://host:port", "hc":..., "keyName":..., "key":...,
 *    "tlsPin":"sha256/<base64>" (optional)}
 *
 * Decoding is strict: exact prefix, base64url alphabet only, no padding, a
 * JSON object whose required fields are non-empty strings, an endpoint that
 * is ws:// or wss://, and a tlsPin (if any) of the form sha256/<44 chars>.
 * Unknown fields are ignored (a newer writer may add some). Surrounding
 * whitespace (from pasting) is ignored. No I/O. */
#ifndef SHIR_IRKEY_H
#define SHIR_IRKEY_H

#include "common/shir_err.h"

#define IRKEY_PREFIX "IR@v1@"
#define IRKEY_MAX 8192

struct irkey {
	char *ir;
	char *endpoint;
	char *hc;
	char *key_name;
	char *key;
	char *tls_pin;		/* NULL if absent */
};

/* *out is malloc'ed. Returns 0, SHIR_EINVAL (a required field missing) or
 * SHIR_ENOMEM. */
int irkey_encode(const struct irkey *k, char **out, struct shir_error *e);
/* Fills k (free with irkey_clear). Returns 0 or SHIR_EINVAL with e saying
 * exactly what is wrong (never quoting the key). */
int irkey_decode(const char *s, struct irkey *k, struct shir_error *e);
void irkey_clear(struct irkey *k);

#endif
