#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "relay/hcdial.h"
#include "common/log.h"
#include "node/listener/lspec.h"

#define LSPEC_MAX_SOURCES 8

static struct {
	lspec_source_fn fn;
	void *arg;
} lspec_sources[LSPEC_MAX_SOURCES];
static size_t lspec_nsources;

int
lspec_add_source(lspec_source_fn fn, void *arg)
{
	if (lspec_nsources == LSPEC_MAX_SOURCES)
		return SHIR_ETOOBIG;
	lspec_sources[lspec_nsources].fn = fn;
	lspec_sources[lspec_nsources].arg = arg;
	lspec_nsources++;
	return 0;
}

void
lspec_clear(struct lspec *s)
{
	if (s == NULL)
		return;
	free(s->name), free(s->endpoint), free(s->path), free(s->key_name);
	if (s->key != NULL) {
		OPENSSL_cleanse(s->key, strlen(s->key));
		free(s->key);
	}
	free(s->ca_file), free(s->tls_pin);
	memset(s, 0, sizeof *s);
}

static int
lspec_dup(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) == NULL ? SHIR_ENOMEM : 0;
}

int
lspec_copy(struct lspec *d, const struct lspec *s)
{
	memset(d, 0, sizeof *d);
	d->ping_interval = s->ping_interval;
	d->token_lifetime = s->token_lifetime;
	d->connect_timeout = s->connect_timeout;
	d->request_timeout = s->request_timeout;
	if (lspec_dup(&d->name, s->name) || lspec_dup(&d->endpoint, s->endpoint) ||
	    lspec_dup(&d->path, s->path) || lspec_dup(&d->key_name, s->key_name) ||
	    lspec_dup(&d->key, s->key) || lspec_dup(&d->ca_file, s->ca_file) ||
	    lspec_dup(&d->tls_pin, s->tls_pin)) {
		lspec_clear(d);
		return SHIR_ENOMEM;
	}
	return 0;
}

int
lspec_list_add(struct lspec_list *l, const struct lspec *s)
{
	struct lspec *nv = realloc(l->v, (l->n + 1) * sizeof *nv);

	if (nv == NULL)
		return SHIR_ENOMEM;
	l->v = nv;
	if (lspec_copy(&l->v[l->n], s) != 0)
		return SHIR_ENOMEM;
	l->n++;
	return 0;
}

void
lspec_list_clear(struct lspec_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		lspec_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
lspec_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
lspec_equal(const struct lspec *a, const struct lspec *b)
{
	int keq;

	if (a->key == NULL || b->key == NULL)
		keq = a->key == b->key;
	else
		keq = strlen(a->key) == strlen(b->key) &&
		    CRYPTO_memcmp(a->key, b->key, strlen(a->key)) == 0;
	return keq && lspec_str_eq(a->name, b->name) && lspec_str_eq(a->endpoint, b->endpoint) &&
	    lspec_str_eq(a->path, b->path) && lspec_str_eq(a->key_name, b->key_name) &&
	    lspec_str_eq(a->ca_file, b->ca_file) && lspec_str_eq(a->tls_pin, b->tls_pin) &&
	    a->ping_interval == b->ping_interval && a->token_lifetime == b->token_lifetime &&
	    a->connect_timeout == b->connect_timeout && a->request_timeout == b->request_timeout;
}

int
lspec_read_secret(const char *path, const char *what, char **out, struct shir_error *err)
{
	struct stat st;
	char buf[4096];
	ssize_t n;
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return shir_error_set(err, errno == ENOENT ? SHIR_ENOENT : SHIR_EPERM,
		    "%s %s cannot be opened: %s", what, path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = shir_error_set(err, SHIR_ECONFIG, "%s %s is not a regular file", what, path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = shir_error_set(err, SHIR_EPERM,
		    "%s %s may be read by others (mode %03o); it holds a secret: run chmod 600 %s",
		    what, path, (unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	n = read(fd, buf, sizeof buf - 1);
	if (n < 0) {
		rc = shir_error_set(err, SHIR_EIO, "%s %s cannot be read: %s", what, path,
		    strerror(errno));
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	if (n == 0 || memchr(buf, '\0', (size_t)n) != NULL || memchr(buf, '\n', (size_t)n)) {
		rc = shir_error_set(err, SHIR_ECONFIG, "%s %s must hold the key on one line", what,
		    path);
		goto out;
	}
	if ((*out = strdup(buf)) == NULL)
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
out:
	OPENSSL_cleanse(buf, sizeof buf);
	close(fd);
	return rc;
}

/* The [relay] section of shird.conf. */
static int
lspec_from_conf(const struct conf *c, struct lspec_list *out, struct shir_error *err)
{
	struct lspec s;
	int rc;

	if (c->relay_endpoint == NULL || !*c->relay_endpoint)
		return 0;
	memset(&s, 0, sizeof s);
	if (c->relay_path == NULL || !*c->relay_path || c->relay_key_name == NULL ||
	    !*c->relay_key_name || c->relay_key_file == NULL || !*c->relay_key_file)
		return shir_error_set(err, SHIR_ECONFIG,
		    "%s: [relay] endpoint is set, so path, key_name and key_file must be set too",
		    c->path ? c->path : "shird.conf");
	s.name = "relay";
	s.endpoint = c->relay_endpoint;
	s.path = c->relay_path;
	s.key_name = c->relay_key_name;
	s.ca_file = c->relay_ca_file && *c->relay_ca_file ? c->relay_ca_file : NULL;
	s.tls_pin = c->relay_tls_pin && *c->relay_tls_pin ? c->relay_tls_pin : NULL;
	s.ping_interval = c->relay_ping_interval;
	s.token_lifetime = c->relay_token_lifetime;
	s.connect_timeout = c->relay_connect_timeout;
	s.request_timeout = c->relay_request_timeout;
	if ((rc = lspec_read_secret(c->relay_key_file, "relay.key_file", &s.key, err)) != 0)
		return rc;
	rc = lspec_list_add(out, &s);
	OPENSSL_cleanse(s.key, strlen(s.key));
	free(s.key);
	return rc == 0 ? 0 : shir_error_set(err, rc, "out of memory");
}

static int
lspec_check(const struct lspec *s, struct shir_error *err)
{
	struct hcdial_url u;
	struct shir_error e;
	size_t i;
	int rc;

	if ((rc = hcdial_parse_url(s->endpoint, 0, &u, &e)) != 0)
		return shir_error_set(err, rc, "channel %s: %s", s->name, e.msg);
	if (strcmp(u.target, "/") != 0)
		return shir_error_set(err, SHIR_ECONFIG,
		    "channel %s: the relay endpoint %s must not have a path; put the hybrid "
		    "connection in relay.path", s->name, log_q(s->endpoint));
	if (s->path == NULL || !*s->path || strlen(s->path) > 120)
		return shir_error_set(err, SHIR_ECONFIG,
		    "channel %s: the hybrid connection name must have 1 to 120 characters", s->name);
	for (i = 0; s->path[i]; i++) {
		unsigned char ch = (unsigned char)s->path[i];

		if (ch <= ' ' || ch >= 0x7f || strchr("?#%&\"<>\\", ch))
			return shir_error_set(err, SHIR_ECONFIG,
			    "channel %s: the hybrid connection name %s has a character that is not "
			    "allowed", s->name, log_q(s->path));
	}
	if (s->path[0] == '/' || s->path[strlen(s->path) - 1] == '/')
		return shir_error_set(err, SHIR_ECONFIG,
		    "channel %s: write the hybrid connection name without leading or trailing '/'",
		    s->name);
	if (s->tls_pin && (rc = hcdial_pin_check(s->tls_pin, &e)) != 0)
		return shir_error_set(err, rc, "channel %s: %s", s->name, e.msg);
	if (s->key == NULL || !*s->key || s->key_name == NULL || !*s->key_name)
		return shir_error_set(err, SHIR_ECONFIG, "channel %s has no key", s->name);
	return 0;
}

int
lspec_collect(const struct conf *c, struct lspec_list *out, struct shir_error *err)
{
	size_t i, j;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = lspec_from_conf(c, out, err)) != 0)
		goto fail;
	for (i = 0; i < lspec_nsources; i++)
		if ((rc = lspec_sources[i].fn(lspec_sources[i].arg, c, out, err)) != 0)
			goto fail;
	for (i = 0; i < out->n; i++) {
		struct lspec *sp = &out->v[i];

		/* a source may leave the timings to the [relay] keys */
		if (sp->ping_interval <= 0)
			sp->ping_interval = c->relay_ping_interval;
		if (sp->token_lifetime <= 0)
			sp->token_lifetime = c->relay_token_lifetime;
		if (sp->connect_timeout <= 0)
			sp->connect_timeout = c->relay_connect_timeout;
		if (sp->request_timeout <= 0)
			sp->request_timeout = c->relay_request_timeout;
		if ((rc = lspec_check(sp, err)) != 0)
			goto fail;
		for (j = 0; j < i; j++)
			if (strcmp(out->v[i].name, out->v[j].name) == 0) {
				rc = shir_error_set(err, SHIR_ECONFIG, "two channels are named %s",
				    out->v[i].name);
				goto fail;
			}
	}
	return 0;
fail:
	lspec_list_clear(out);
	return rc;
}
