/* relay_conf: see relay_conf.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "common/log.h"
#include "relay/server/relay_conf.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

enum kt { K_STR, K_INT, K_BOOL };

struct key {
	const char *section, *name;
	enum kt type;
	long min, max;
	const char *def;
	size_t off;
};

#define O(f) offsetof(struct relay_conf, f)

static const struct key keys[] = {
	{ "relay", "listen", K_STR, 0, 0, "", O(listen) },
	{ "relay", "listen_tls", K_STR, 0, 0, "", O(listen_tls) },
	{ "relay", "tls_cert", K_STR, 0, 0, "", O(tls_cert) },
	{ "relay", "tls_key", K_STR, 0, 0, "", O(tls_key) },
	{ "relay", "public_url", K_STR, 0, 0, "", O(public_url) },
	{ "relay", "namespace", K_STR, 0, 0, "", O(namespace) },
	{ "relay", "admin", K_STR, 0, 0, "", O(admin) },
	{ "relay", "state_file", K_STR, 0, 0, LOCALSTATEDIR "/lib/shir-relay/state.json", O(state_file) },
	{ "relay", "allow_plain_nonloopback", K_BOOL, 0, 0, "false", O(allow_plain_nonloopback) },
	{ "log", "level", K_STR, 0, 0, "info", O(log_level) },
	{ "log", "file", K_STR, 0, 0, "-", O(log_file) },
	{ "limits", "max_connections", K_INT, 1, 1000000, "20000", O(max_connections) },
	{ "limits", "max_listeners", K_INT, 1, 100000, "25", O(max_listeners) },
	{ "limits", "max_header_bytes", K_INT, 1024, 1048576, "32768", O(max_header_bytes) },
	{ "limits", "inline_max", K_INT, 1024, 1048576, "65536", O(inline_max) },
	{ "limits", "tunnel_buffer", K_INT, 4096, 67108864, "262144", O(tunnel_buffer) },
	{ "limits", "max_message", K_INT, 65536, 1073741824, "16777216", O(max_message) },
	{ "limits", "response_timeout", K_INT, 1, 3600, "60", O(response_timeout) },
	{ "limits", "rendezvous_timeout", K_INT, 1, 600, "30", O(rendezvous_timeout) },
	{ "limits", "idle_timeout", K_INT, 1, 86400, "120", O(idle_timeout) },
	{ "limits", "handshake_timeout", K_INT, 1, 600, "15", O(handshake_timeout) },
	{ "limits", "listen_fail_limit", K_INT, 1, 1000000, "30", O(listen_fail_limit) },
	{ "limits", "token_skew", K_INT, 0, 600, "5", O(token_skew) },
	{ "limits", "max_connections_per_address", K_INT, 1, 1000000, "1024", O(max_per_address) },
	{ "limits", "max_handshakes_per_address", K_INT, 1, 1000000, "64", O(max_handshakes_per_address) },
	{ "limits", "reserved_percent", K_INT, 0, 90, "5", O(reserved_percent) },
	{ "limits", "sender_backlog", K_INT, 65536, 1073741824, "1048576", O(sender_backlog) },
	{ "limits", "max_jobs", K_INT, 1, 100000, "10000", O(max_jobs) },
};
#define NKEYS (sizeof keys / sizeof keys[0])

struct ld {
	struct relay_conf *c;
	struct shir_error *e;
	bool bad;
};

static int
set(struct relay_conf *c, const struct key *k, const char *v, char *why, size_t wl)
{
	char *b = (char *)c;

	switch (k->type) {
	case K_STR: {
		char **slot = (char **)(b + k->off), *d = strdup(v);

		if (d == NULL)
			return snprintf(why, wl, "out of memory"), -1;
		free(*slot);
		*slot = d;
		return 0;
	}
	case K_INT: {
		char *end;
		long l;

		errno = 0;
		l = strtol(v, &end, 10);
		if (errno || end == v || *end || l < k->min || l > k->max)
			return snprintf(why, wl, "%s.%s must be a whole number from %ld to %ld, not %s",
			    k->section, k->name, k->min, k->max, log_q(v)), -1;
		*(int *)(b + k->off) = (int)l;
		return 0;
	}
	case K_BOOL:
		if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
			*(bool *)(b + k->off) = true;
		else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
			*(bool *)(b + k->off) = false;
		else
			return snprintf(why, wl, "%s.%s must be true or false", k->section, k->name), -1;
		return 0;
	}
	return -1;
}

static int
handler(void *u, const char *section, const char *name, const char *value)
{
	struct ld *l = u;
	char why[256];
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) {
			if (set(l->c, &keys[i], value, why, sizeof why) != 0) {
				shir_error_append(l->e, SHIR_ECONFIG, "%s", why);
				l->bad = true;
			}
			return 1;
		}
	}
	shir_error_append(l->e, SHIR_ECONFIG, "unknown key [%s] %s", section, name);
	l->bad = true;
	return 1;
}

void
relay_conf_free(struct relay_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < NKEYS; i++)
		if (keys[i].type == K_STR)
			free(*(char **)((char *)c + keys[i].off));
	free(c);
}

struct relay_conf *
relay_conf_load(const char *path, struct shir_error *e)
{
	struct relay_conf *c = calloc(1, sizeof *c);
	struct ld l = { c, e, false };
	char why[256];
	size_t i;
	int rc;

	shir_error_clear(e);
	if (c == NULL) {
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	for (i = 0; i < NKEYS; i++)
		if (set(c, &keys[i], keys[i].def, why, sizeof why) != 0)
			goto bad;
	rc = ini_parse(path, handler, &l);
	if (rc < 0) {
		shir_error_set(e, SHIR_ECONFIG, "cannot read %s: %s", path, strerror(errno));
		goto bad;
	}
	if (rc > 0) {
		shir_error_append(e, SHIR_ECONFIG, "%s line %d: syntax error", path, rc);
		goto bad;
	}
	if (l.bad)
		goto bad;
	if (!*c->listen && !*c->listen_tls) {
		shir_error_set(e, SHIR_ECONFIG,
		    "%s: set [relay] listen (plain, loopback) or listen_tls (with tls_cert and tls_key)", path);
		goto bad;
	}
	if (*c->listen_tls && (!*c->tls_cert || !*c->tls_key)) {
		shir_error_set(e, SHIR_ECONFIG, "%s: listen_tls needs tls_cert and tls_key", path);
		goto bad;
	}
	if (!*c->state_file) {
		shir_error_set(e, SHIR_ECONFIG, "%s: state_file must not be empty", path);
		goto bad;
	}
	return c;
bad:
	if (e != NULL && e->code == 0)
		e->code = SHIR_ECONFIG;
	relay_conf_free(c);
	return NULL;
}
