/* lspec: what one relay channel needs to know (the "channel spec"), and
 * where the list of specs comes from. Today: the [relay] section of
 * shird.conf. The registration code adds stored registrations with
 * lspec_add_source() (before shird starts the listener); the listener asks
 * every source on start and on each reload, so a new, changed or removed
 * registration takes effect like a changed [relay] section. */
#ifndef SHIR_LSPEC_H
#define SHIR_LSPEC_H

#include <stddef.h>

#include "node/conf.h"
#include "common/shir_err.h"

struct lspec {
	char *name;		/* unique among channels; shown in status */
	char *endpoint;		/* wss://host[:port] or ws://127.0.0.1:port */
	char *path;		/* the hybrid connection */
	char *key_name;		/* SAS rule */
	char *key;		/* SAS key (secret: never logged) */
	char *ca_file;		/* NULL: the system's CAs */
	char *tls_pin;		/* NULL or sha256/... */
	int ping_interval;	/* seconds */
	int token_lifetime;	/* seconds */
	int connect_timeout;	/* seconds */
	int request_timeout;	/* seconds: answer 503 ourselves after this */
};

struct lspec_list {
	struct lspec *v;
	size_t n;
};

/* A source appends specs for configuration c to out (lspec_list_add), or
 * fills err and returns non-zero to refuse the configuration. Timings left
 * at 0 (ping_interval, token_lifetime, connect_timeout, request_timeout) take
 * the [relay] values of c. */
typedef int (*lspec_source_fn)(void *arg, const struct conf *c, struct lspec_list *out,
    struct shir_error *err);
/* Registers a source (at most 8; not thread safe: call at startup). */
int lspec_add_source(lspec_source_fn fn, void *arg);

/* Collects and checks the specs of every source for c: names unique, URL
 * form (ws:// only for loopback), pin form, key present. */
int lspec_collect(const struct conf *c, struct lspec_list *out, struct shir_error *err);
/* Adds a copy of s (every string duplicated). */
int lspec_list_add(struct lspec_list *l, const struct lspec *s);
void lspec_list_clear(struct lspec_list *l);
/* Same settings (the key compared in constant time). */
int lspec_equal(const struct lspec *a, const struct lspec *b);
int lspec_copy(struct lspec *dst, const struct lspec *src);
void lspec_clear(struct lspec *s);

/* Reads a secret file: must be a regular file that group and others cannot
 * read; trailing newlines are dropped. */
int lspec_read_secret(const char *path, const char *what, char **out, struct shir_error *err);

#endif
