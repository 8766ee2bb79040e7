/* relay_route: routing and authorization: the target taken apart, entity
 * lookup, SAS tokens checked (with the verified-token cache), the listener a
 * request goes to; the entities as loaded from the state file, and the rate
 * limit on failed listens. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "relay/hc_msg.h"
#include "relay/http1.h"
#include "common/log.h"
#include "relay/server/relay_state.h"
#include "relay/sas.h"
#include "relay/ws.h"
#include "relay/server/relay_srv_int.h"

/* Splits "/a/b?c" into path and query (query may be NULL). */
void
route_split_target(const char *t, char *path, size_t pl, const char **query)
{
	const char *q = strchr(t, '?');
	size_t n = q ? (size_t)(q - t) : strlen(t);

	if (n >= pl)
		n = pl - 1;
	memcpy(path, t, n);
	path[n] = '\0';
	*query = q ? q + 1 : NULL;
}

/* Longest entity name that is a case-insensitive prefix of path (which has no
 * leading slash), ending at '/' or the end. *rest is the suffix. */
struct ent *
route_entity(struct rsrv *s, const char *path, const char **rest)
{
	struct ent *e, *best = NULL;
	size_t bl = 0;

	for (e = s->ents; e != NULL; e = e->next) {
		size_t l = strlen(e->name);

		if (e->deleted || l <= bl || strncasecmp(path, e->name, l) != 0)
			continue;
		if (path[l] != '\0' && path[l] != '/')
			continue;
		best = e;
		bl = l;
	}
	if (best != NULL && rest != NULL)
		*rest = path + bl;
	return best;
}

int
route_decode_path(const char *raw, char **out)
{
	return sas_url_decode(raw, strlen(raw), false, out);
}

const char *
route_via_host(struct rsrv *s, const struct http1_msg *req)
{
	const char *h;

	if (*s->conf->namespace)
		return s->conf->namespace;
	h = req ? http1_msg_get(req, "Host") : NULL;
	return h && *h ? h : "shir-relay";
}

/* §2.5: the token of a request and which header carried it. */
char *
route_find_token(const struct http1_msg *req, const char *query, bool *used_authorization)
{
	char *t = NULL;
	const char *h;

	*used_authorization = false;
	if (query != NULL && hc_query_get(query, "sb-hc-token", &t) == 0)
		return t;
	if ((h = http1_msg_get(req, "ServiceBusAuthorization")) != NULL)
		return strdup(h);
	if ((h = http1_msg_get(req, "Authorization")) != NULL) {
		*used_authorization = true;
		return strdup(h);
	}
	return NULL;
}

void
tokcache_clear(struct tokcache *c)
{
	int i;

	for (i = 0; i < TOKCACHE_SLOTS; i++) {
		if (c->e[i].tok != NULL)
			OPENSSL_clear_free(c->e[i].tok, c->e[i].len + 1);
		c->e[i].tok = NULL;
	}
}

bool
tokcache_find(struct tokcache *c, const char *tok, const struct ent *e, unsigned need, int64_t now,
    int skew, struct sas_verified *v)
{
	size_t len = strlen(tok);
	int i;

	for (i = 0; i < TOKCACHE_SLOTS; i++) {
		struct tokcache_ent *t = &c->e[i];

		if (t->tok == NULL || t->ent != e || t->need != need || t->len != len ||
		    CRYPTO_memcmp(t->tok, tok, len) != 0)
			continue;
		if (t->v.expiry <= now - (skew > 0 ? skew : 0))
			return false;	/* as sas_verify: expired */
		if (v != NULL)
			*v = t->v;
		return true;
	}
	return false;
}

void
tokcache_add(struct tokcache *c, const char *tok, const struct ent *e, unsigned need,
    const struct sas_verified *v)
{
	struct tokcache_ent *t = &c->e[c->next++ % TOKCACHE_SLOTS];
	size_t len = strlen(tok);

	if (t->tok != NULL)
		OPENSSL_clear_free(t->tok, t->len + 1);
	if ((t->tok = OPENSSL_memdup(tok, len + 1)) == NULL)
		return;
	t->len = len;
	t->ent = e;
	t->need = need;
	t->v = *v;
}

/* Returns 0 or the HTTP status to answer (401/403). */
int
route_authorize(struct rsrv *s, struct ent *e, const struct http1_msg *req, const char *query,
    unsigned need, struct sas_verified *v, bool *used_auth, char *why, size_t wl)
{
	struct shir_error err;
	struct sas_verified ok;
	char *tok = route_find_token(req, query, used_auth);
	int64_t now;
	int rc;

	if (tok != NULL && *used_auth && need == SAS_SEND && e->anonymous) {
		/* §2.5: with anonymous senders, Authorization belongs to the listener */
		free(tok);
		tok = NULL;
		*used_auth = false;
	}
	if (tok == NULL) {
		if (need == SAS_SEND && e->anonymous)
			return 0;
		snprintf(why, wl, "no SAS token: send ServiceBusAuthorization or sb-hc-token");
		return 401;
	}
	now = (int64_t)time(NULL);
	if (tokcache_find(&s->tokens, tok, e, need, now, s->conf->token_skew, v)) {
		free(tok);
		return 0;
	}
	rc = sas_verify(tok, e->rules, e->nrules, e->name, *s->conf->namespace ? s->conf->namespace : NULL,
	    need, now, s->conf->token_skew, &ok, &err);
	if (rc == 0) {
		tokcache_add(&s->tokens, tok, e, need, &ok);
		if (v != NULL)
			*v = ok;
	}
	free(tok);
	if (rc == 0)
		return 0;
	if (need == SAS_SEND && e->anonymous && rc == SHIR_EAUTH)
		return 0;
	snprintf(why, wl, "%.400s", err.msg);
	return rc == SHIR_EPERM ? 403 : 401;
}

bool
route_listener_allowed(const struct ctl *c, const struct http1_msg *req)
{
	const char *al = http1_msg_get(req, "Microsoft-Relay-AllowedListeners");
	const char *dl = http1_msg_get(req, "Microsoft-Relay-DisallowedListeners");
	struct http1_msg tmp = { 0 };
	struct http1_header hh;

	tmp.h = &hh;
	tmp.nh = 1;
	hh.name = (char *)"L";
	if (al != NULL) {
		hh.value = (char *)al;
		if (!http1_msg_has_token(&tmp, "L", c->id))
			return false;
	}
	if (dl != NULL) {
		hh.value = (char *)dl;
		if (http1_msg_has_token(&tmp, "L", c->id))
			return false;
	}
	return true;
}

/* A random live listener honouring the pinning headers; *filtered tells
 * whether listeners existed but none qualified. */
struct ctl *
route_pick_listener(struct ent *e, const struct http1_msg *req, bool *filtered)
{
	struct ctl *c, *cand[1024];
	int n = 0;

	*filtered = false;
	for (c = e->ctls; c != NULL && n < 1024; c = c->next) {
		if (c->closing)
			continue;
		if (!route_listener_allowed(c, req)) {
			*filtered = true;
			continue;
		}
		cand[n++] = c;
	}
	if (n == 0)
		return NULL;
	*filtered = false;
	return cand[rs_rnd((unsigned)n)];
}

/* ---- entities -------------------------------------------------------------- */

static void
ent_set_rules(struct ent *e, const struct rstate_entity *se)
{
	size_t i;

	for (i = 0; i < e->nrules; i++) {
		free((char *)e->rules[i].name);
		OPENSSL_cleanse((char *)e->rules[i].key, strlen(e->rules[i].key));
		free((char *)e->rules[i].key);
	}
	free(e->rules);
	e->rules = calloc(se->nrules ? se->nrules : 1, sizeof *e->rules);
	e->nrules = 0;
	if (e->rules == NULL)
		return;
	for (i = 0; i < se->nrules; i++) {
		e->rules[i].name = strdup(se->rules[i].name);
		e->rules[i].key = strdup(se->rules[i].key);
		e->rules[i].rights = se->rules[i].rights;
		if (e->rules[i].name == NULL || e->rules[i].key == NULL)
			break;
		e->nrules++;
	}
	e->anonymous = se->anonymous_senders;
	relay_sc_set_mode(e, se->self_contained);
}

void
ent_free(struct ent *e)
{
	struct rstate_entity empty = { 0 };

	ent_set_rules(e, &empty);
	free(e->rules);
	free(e->name);
	free(e);
}

int
ent_load_state(struct rsrv *s, struct shir_error *err)
{
	struct rstate *st = NULL;
	struct ent *e, **pp;
	size_t i;
	int rc, added = 0, removed = 0;

	if ((rc = rstate_load(s->conf->state_file, &st, err)) != 0)
		return rc;
	tokcache_clear(&s->tokens);	/* keys may have changed */
	for (i = 0; i < st->n; i++) {
		for (e = s->ents; e != NULL; e = e->next)
			if (strcasecmp(e->name, st->e[i].name) == 0)
				break;
		if (e == NULL) {
			e = calloc(1, sizeof *e);
			if (e == NULL || (e->name = strdup(st->e[i].name)) == NULL) {
				free(e);
				rstate_free(st);
				return shir_error_set(err, SHIR_ENOMEM, "out of memory");
			}
			e->next = s->ents;
			s->ents = e;
			added++;
		}
		ent_set_rules(e, &st->e[i]);
	}
	for (pp = &s->ents; *pp != NULL;) {
		e = *pp;
		if (rstate_find(st, e->name) == NULL) {
			*pp = e->next;
			e->deleted = true;
			log_info("relay", "event=entity.deleted hc=%s listeners=%d", log_q(e->name), e->nctl);
			{
				struct ctl *c;

				for (c = e->ctls; c != NULL; c = c->next)
					ctl_close(c, WS_CLOSE_GOING_AWAY, "hybrid connection deleted");
			}
			relay_sc_close_ent(e, "the integration runtime was deleted");
			e->next = s->graveyard;
			s->graveyard = e;
			removed++;
			continue;
		}
		pp = &e->next;
	}
	log_info("relay", "event=state.loaded entities=%zu added=%d removed=%d file=%s", st->n, added,
	    removed, log_q(s->conf->state_file));
	rstate_free(st);
	return 0;
}

/* ---- listen failures rate limit --------------------------------------------- */

static struct failrec *
fail_slot(struct rsrv *s, const char *addr)
{
	unsigned h = 5381;
	const char *p;

	for (p = addr; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return &s->fails[h % FAIL_SLOTS];
}

bool
fail_limited(struct rsrv *s, const char *addr)
{
	struct failrec *f = fail_slot(s, addr);
	time_t now = time(NULL);

	return strcmp(f->addr, addr) == 0 && now - f->window < 60 &&
	    f->count >= s->conf->listen_fail_limit;
}

void
fail_note(struct rsrv *s, const char *addr)
{
	struct failrec *f = fail_slot(s, addr);
	time_t now = time(NULL);

	if (strcmp(f->addr, addr) != 0 || now - f->window >= 60) {
		snprintf(f->addr, sizeof f->addr, "%s", addr);
		f->window = now;
		f->count = 0;
	}
	f->count++;
}
