/* registration: which integration runtime this node belongs to.
 * state_dir/node.json holds the node name, IR, endpoint, hybrid connection,
 * SAS rule name and optional TLS pin (no secrets); the SAS key itself is the
 * reserved credential "_node-key" in the credential store (encrypted under
 * the machine key). See docs/admin.md.
 *
 * struct registration is plain data (like struct conf): built whole by
 * registration_load, read by the listener, freed whole. */
#ifndef SHIR_REGISTRATION_H
#define SHIR_REGISTRATION_H

#include <time.h>

#include "common/shir_err.h"

struct credstore;

#define REGISTRATION_FILE "node.json"
#define REGISTRATION_KEY_CREDENTIAL "_node-key"

struct registration {
	char *node_name;
	char *ir;
	char *endpoint;		/* wss://host:port (or ws:// on loopback for tests) */
	char *hc;		/* hybrid connection path */
	char *key_name;		/* SAS rule, e.g. node-key1 */
	char *key;		/* the SAS key, decrypted; wiped on free */
	char *tls_pin;		/* "sha256/<base64>" or NULL */
	time_t registered;	/* when register-node ran */
};

/* Loads node.json and the key. SHIR_ENOENT (err filled) when the node is not
 * registered. */
int registration_load(const char *state_dir, struct credstore *cs, struct registration **out,
    struct shir_error *err);
/* Stores the key first, then node.json (both atomically). */
int registration_save(const char *state_dir, struct credstore *cs, const struct registration *r,
    struct shir_error *err);
/* node.json without the store (service-urls): every field but key. */
int registration_load_public(const char *state_dir, struct registration **out,
    struct shir_error *err);
/* Parses the text of a node.json (what names it in errors). */
int registration_parse(const char *text, const char *what, struct registration **out,
    struct shir_error *err);
/* Same registration (every field; the key compared in constant time). NULLs
 * are equal to each other only. */
int registration_equal(const struct registration *a, const struct registration *b);
struct registration *registration_dup(const struct registration *r);
void registration_free(struct registration *r);

/* host and port of r->endpoint (default port 443 for wss, 80 for ws). */
int registration_endpoint_hostport(const char *endpoint, char *host, size_t hostlen, int *port,
    int *tls);

#endif
