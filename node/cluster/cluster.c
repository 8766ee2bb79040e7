#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "node/admin/credstore.h"
#include "node/cluster/cluster.h"
#include "node/cluster/csync.h"
#include "node/cluster/peerlink.h"
#include "node/cluster/rtkey.h"
#include "node/listener/listener.h"
#include "node/node.h"

struct cluster_peer {
	char node[CREDSTORE_ORIGIN_MAX + 1];
	char digest[CSYNC_DIGEST_LEN + 1];
	char name[129];
	char version[33];
	char state[16];		/* as its digest says: "Active", "Inactive", "" */
	char addr[PEERLINK_ADDR_MAX + 1];	/* its remote-access host:port, or "" */
	char fp[PEERLINK_FP_LEN + 1];		/* its certificate's fingerprint, or "" */
	uint64_t count, store_version;
	time_t seen;
};

struct cluster {
	struct node *n;
	struct credstore *cs;	/* the admin subsystem's store */
	char *state_dir;
	char *store_path;
	uint8_t key[RTKEY_LEN];
	int have_key;
	char nokey[256];	/* why there is no key */
	unsigned nokey_ticks;
	char node_id[CREDSTORE_ORIGIN_MAX + 1];
	struct event *tick;
	struct stat seen;	/* the store file as last looked at */
	int dirty;		/* look at the store again */
	struct credstore_hlc pushed;	/* newest own version pushed */
	char digest[CSYNC_DIGEST_LEN + 1];
	uint64_t count, store_version;
	time_t last_digest, last_dump, last_refused_log;
	struct cluster_peer peers[CLUSTER_PEERS_MAX];
	size_t npeers;
	uint64_t sent, received, refused, applied;
	/* the node-to-node link (peerlink.h), when remote access is enabled */
	struct peerlink *pl;
	time_t pl_retry;
	unsigned pl_ticks;
	/* sync messages by [path: direct, relay][sent, received][digest, records] */
	uint64_t msgs[2][2][2];
	/* status parity: differing from most of the runtime's nodes */
	time_t differs_since;	/* 0: agrees (or no majority) */
	int inactive;
	char diff[8][CREDSTORE_NAME_MAX + 1];	/* names that differed in the last records */
	size_t ndiff;
};

#define CLUSTER_DIFF_MAX 8
#define CLUSTER_PL_RETRY_S 30	/* a remote-access port that could not be opened */

enum { PATH_DIRECT = 0, PATH_RELAY = 1 };
enum { DIR_SENT = 0, DIR_RECEIVED = 1 };

static struct cluster *
cluster_get(struct node *n)
{
	return node_ext(n, NODE_EXT_CLUSTER);
}

/* A message goes direct to each live peer whose link is up; through the relay
 * (which hands it to every other listener) when a peer is not reached
 * direct, and always for digests: they are how nodes and their addresses
 * are found, and how the relay learns a node's state. */
static void
cluster_send(struct cluster *cl, char *text, int kind)
{
	size_t i, len;
	int relay = kind == CSYNC_DIGEST || cl->pl == NULL || cl->npeers == 0;

	if (text == NULL)
		return;
	if (cl->inactive) {
		/* the relay shows the node Inactive in its roster */
		char *marked = csync_mark_inactive(text);

		if (marked != NULL) {
			free(text);
			text = marked;
		}
	}
	len = strlen(text);
	for (i = 0; cl->pl != NULL && i < cl->npeers; i++) {
		if (cl->peers[i].addr[0] && peerlink_send(cl->pl, cl->peers[i].node,
		    cl->peers[i].addr, cl->peers[i].fp, text, len)) {
			cl->sent++;
			cl->msgs[PATH_DIRECT][DIR_SENT][kind - 1]++;
		} else {
			relay = 1;
		}
	}
	if (relay && listener_sync_send(cl->n, text, len) > 0) {
		cl->sent++;
		cl->msgs[PATH_RELAY][DIR_SENT][kind - 1]++;
	}
	free(text);
}

/* Sends the records v[0..n) (split as needed). */
static void
cluster_send_records(struct cluster *cl, const struct credstore_rec *v, size_t n)
{
	struct shir_error err;
	size_t next = 0;
	char *text;

	while (next < n) {
		if (csync_encode_records(cl->key, cl->node_id, v, n, &next, &text, &err) != 0) {
			log_error("cluster", "event=sync.encode_failed reason=%s", log_q(err.msg));
			return;
		}
		cluster_send(cl, text, CSYNC_RECORDS);
	}
}

static void
cluster_send_digest(struct cluster *cl)
{
	struct shir_error err;
	char *text = NULL;

	if (cl->node_id[0] == 0)
		return;
	struct csync_digest_info d;

	memset(&d, 0, sizeof d);
	d.node = cl->node_id;
	d.digest = cl->digest;
	d.count = cl->count;
	d.name = node_name(cl->n);
	d.version = PACKAGE_VERSION;
	d.store_version = cl->store_version;
	d.state = cl->inactive ? "Inactive" : "Active";
	d.addr = peerlink_address(cl->pl);
	d.fp = peerlink_fingerprint(cl->pl);
	if (csync_encode_digest(cl->key, &d, &text, &err) != 0) {
		log_error("cluster", "event=sync.encode_failed reason=%s", log_q(err.msg));
		return;
	}
	cluster_send(cl, text, CSYNC_DIGEST);
	cl->last_digest = time(NULL);
}

/* Reads the store: the digest, and pushes this node's own changes since the
 * last push. */
static void
cluster_look(struct cluster *cl)
{
	struct credstore_rec *v = NULL;
	struct credstore_hlc newest;
	struct shir_error err;
	size_t n = 0, i, k = 0;
	char old[CSYNC_DIGEST_LEN + 1];

	if (credstore_node_id(cl->cs, cl->node_id, &err) != 0 ||
	    credstore_records(cl->cs, &v, &n, &err) != 0) {
		log_error("cluster", "event=sync.store_unreadable reason=%s", log_q(err.msg));
		return;
	}
	snprintf(old, sizeof old, "%s", cl->digest);
	if (credstore_version(cl->cs, &cl->store_version, &err) != 0)
		cl->store_version = 0;
	csync_digest(v, n, cl->digest);
	cl->count = n;
	newest = cl->pushed;
	/* own records newer than the last push go first in v */
	for (i = 0; i < n; i++) {
		if (strcmp(v[i].hlc.origin, cl->node_id) != 0 ||
		    credstore_hlc_cmp(&v[i].hlc, &cl->pushed) <= 0)
			continue;
		if (credstore_hlc_cmp(&v[i].hlc, &newest) > 0)
			newest = v[i].hlc;
		if (k != i) {
			struct credstore_rec t = v[k];

			v[k] = v[i];
			v[i] = t;
		}
		k++;
	}
	if (k > 0 && cl->have_key) {
		log_info("cluster", "event=sync.push records=%zu digest=%s", k, cl->digest);
		cluster_send_records(cl, v, k);
		cl->pushed = newest;
	}
	if (cl->have_key && strcmp(old, cl->digest) != 0)
		cluster_send_digest(cl);
	credstore_records_free(v, n);
}

static void
cluster_dump(struct cluster *cl, const char *why)
{
	struct credstore_rec *v = NULL;
	struct shir_error err;
	size_t n = 0;

	if (credstore_records(cl->cs, &v, &n, &err) != 0) {
		log_error("cluster", "event=sync.store_unreadable reason=%s", log_q(err.msg));
		return;
	}
	log_info("cluster", "event=sync.send_all records=%zu why=%s", n, log_q(why));
	cluster_send_records(cl, v, n);
	cl->last_dump = time(NULL);
	credstore_records_free(v, n);
}

static void
cluster_note_peer(struct cluster *cl, const struct csync_msg *m)
{
	time_t now = time(NULL);
	size_t i, oldest = 0;

	for (i = 0; i < cl->npeers; i++)
		if (strcmp(cl->peers[i].node, m->node) == 0)
			break;
	if (i == cl->npeers) {
		if (cl->npeers < CLUSTER_PEERS_MAX) {
			cl->npeers++;
		} else {
			for (i = 1; i < cl->npeers; i++)
				if (cl->peers[i].seen < cl->peers[oldest].seen)
					oldest = i;
			i = oldest;
		}
		snprintf(cl->peers[i].node, sizeof cl->peers[i].node, "%s", m->node);
		log_info("cluster", "event=sync.peer_seen node=%s name=%s version=%s", log_q(m->node),
		    log_q(m->name), log_q(m->version));
	}
	snprintf(cl->peers[i].name, sizeof cl->peers[i].name, "%s", m->name);
	snprintf(cl->peers[i].version, sizeof cl->peers[i].version, "%s", m->version);
	cl->peers[i].store_version = m->store_version;
	snprintf(cl->peers[i].state, sizeof cl->peers[i].state, "%s", m->state);
	snprintf(cl->peers[i].digest, sizeof cl->peers[i].digest, "%s", m->digest);
	if (strcmp(cl->peers[i].addr, m->addr) != 0)
		log_info("cluster", "event=sync.peer_address node=%s addr=%s", log_q(m->node),
		    log_q(m->addr[0] ? m->addr : "none (remote access off)"));
	snprintf(cl->peers[i].addr, sizeof cl->peers[i].addr, "%s", m->addr);
	snprintf(cl->peers[i].fp, sizeof cl->peers[i].fp, "%s", m->fp);
	cl->peers[i].count = m->count;
	cl->peers[i].seen = now;
}

static int
cluster_rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct credstore_rec *)a)->name,
	    ((const struct credstore_rec *)b)->name);
}

/* Names whose version in a peer's records still differs from this store's
 * after the merge (what an Inactive node names). */
static void
cluster_note_diff(struct cluster *cl, const struct csync_msg *m)
{
	struct credstore_rec *v = NULL, *l;
	struct shir_error err;
	size_t n = 0, i, k = 0;

	if (credstore_records(cl->cs, &v, &n, &err) != 0)
		return;
	for (i = 0; i < m->nrecs && k < CLUSTER_DIFF_MAX; i++) {
		l = bsearch(&m->recs[i], v, n, sizeof *v, cluster_rec_cmp);
		if (l != NULL && credstore_hlc_cmp(&l->hlc, &m->recs[i].hlc) == 0 &&
		    (l->value == NULL) == (m->recs[i].value == NULL))
			continue;
		snprintf(cl->diff[k++], sizeof cl->diff[0], "%s", m->recs[i].name);
	}
	if (k > 0)
		cl->ndiff = k;
	credstore_records_free(v, n);
}

/* Active or Inactive: this node's digest against the most common one of the
 * live nodes (itself included). Inactive once it has differed from a strict
 * majority for node.inactive_after seconds. */
static void
cluster_parity(struct cluster *cl, time_t now)
{
	size_t i, j, mine = 1, best = 0, bi = 0, cnt;
	int differs;

	for (i = 0; i < cl->npeers; i++)
		if (strcmp(cl->peers[i].digest, cl->digest) == 0)
			mine++;
	for (i = 0; i < cl->npeers; i++) {
		for (cnt = 0, j = 0; j < cl->npeers; j++)
			cnt += strcmp(cl->peers[i].digest, cl->peers[j].digest) == 0;
		if (cnt > best) {
			best = cnt;
			bi = i;
		}
	}
	differs = cl->npeers > 0 && best > mine &&
	    strcmp(cl->peers[bi].digest, cl->digest) != 0 && 2 * best > cl->npeers + 1;
	if (!differs) {
		if (cl->inactive)
			log_info("cluster", "event=node.active why=%s",
			    log_q("its credentials agree with the runtime's majority again"));
		/* names noted before the majority's digest arrived are kept until
		 * the node has been seen to differ and then agree */
		if (cl->differs_since != 0 || cl->npeers == 0 ||
		    strcmp(cl->peers[bi].digest, cl->digest) == 0)
			cl->ndiff = 0;
		cl->inactive = 0;
		cl->differs_since = 0;
		return;
	}
	if (cl->differs_since == 0)
		cl->differs_since = now;
	if (!cl->inactive && now - cl->differs_since >= node_conf(cl->n)->inactive_after) {
		char names[CLUSTER_DIFF_MAX * (CREDSTORE_NAME_MAX + 1) + 1] = "";

		for (i = 0; i < cl->ndiff; i++) {
			strcat(names, i ? "," : "");
			strcat(names, cl->diff[i]);
		}
		cl->inactive = 1;
		log_warn("cluster", "event=node.inactive differs_for_s=%lld majority=%zu/%zu "
		    "differing=%s why=%s", (long long)(now - cl->differs_since), best,
		    cl->npeers + 1, log_q(names[0] ? names : "unknown yet"),
		    log_q("this node's credentials differ from most of its runtime's nodes"));
	}
}

static void
cluster_on_sync_path(struct cluster *cl, const char *text, size_t len, int path)
{
	struct shir_error err;
	struct csync_msg m;
	size_t applied = 0;

	if (!cl->have_key)
		return;
	if (csync_decode(cl->key, text, len, &m, &err) != 0) {
		time_t now = time(NULL);

		cl->refused++;
		if (now - cl->last_refused_log >= 10) {
			log_warn("cluster", "event=sync.refused bytes=%zu reason=%s refused=%llu", len,
			    log_q(err.msg), (unsigned long long)cl->refused);
			cl->last_refused_log = now;
		}
		return;
	}
	cl->received++;
	cl->msgs[path][DIR_RECEIVED][m.kind == CSYNC_DIGEST ? 0 : 1]++;
	if (strcmp(m.node, cl->node_id) == 0) {
		csync_msg_clear(&m);
		return;
	}
	if (m.kind == CSYNC_DIGEST) {
		cluster_note_peer(cl, &m);
		if (strcmp(m.digest, cl->digest) != 0 &&
		    time(NULL) - cl->last_dump >= CLUSTER_DUMP_MIN_S)
			cluster_dump(cl, "a peer's digest differs");
	} else if (credstore_merge(cl->cs, m.recs, m.nrecs, m.node, &applied, &err) != 0) {
		log_error("cluster", "event=sync.merge_failed from=%s reason=%s", log_q(m.node),
		    log_q(err.msg));
	} else if (applied > 0) {
		cl->applied += applied;
		cl->dirty = 1;
		log_info("cluster", "event=sync.merged from=%s records=%zu applied=%zu",
		    log_q(m.node), m.nrecs, applied);
	}
	if (m.kind == CSYNC_RECORDS)
		cluster_note_diff(cl, &m);
	csync_msg_clear(&m);
}

/* a sync message through the relay */
static void
cluster_on_sync(void *arg, const char *text, size_t len)
{
	cluster_on_sync_path(arg, text, len, PATH_RELAY);
}

/* a sync message on a node-to-node link */
static void
cluster_on_direct(void *arg, const char *text, size_t len)
{
	cluster_on_sync_path(arg, text, len, PATH_DIRECT);
}

/* A certificate that does not chain to the runtime CA is accepted when a
 * live member announced it in its sealed digest (an admin's certificate). */
static int
cluster_pinned(void *arg, const char *fp)
{
	struct cluster *cl = arg;
	size_t i;

	for (i = 0; i < cl->npeers; i++)
		if (cl->peers[i].fp[0] && strcmp(cl->peers[i].fp, fp) == 0)
			return 1;
	return 0;
}

/* Opens the remote-access port once the node has its data key (and closes
 * it when remote access is turned off). */
static void
cluster_peerlink(struct cluster *cl, time_t now)
{
	const struct conf *c = node_conf(cl->n);
	struct peerlink_cb cb = { cluster_on_direct, cluster_pinned, cl };
	struct shir_error err;

	if (!c->remote_access || !cl->have_key || cl->node_id[0] == 0) {
		if (cl->pl != NULL) {
			peerlink_free(cl->pl);
			cl->pl = NULL;
			log_info("cluster", "event=peer.stopped why=%s",
			    log_q("remote access is disabled"));
		}
		return;
	}
	if (cl->pl != NULL) {
		peerlink_tick(cl->pl);
		return;
	}
	if (now < cl->pl_retry)
		return;
	if (peerlink_start(node_base(cl->n), c, cl->key, cl->node_id, &cb, &cl->pl, &err) != 0) {
		cl->pl_retry = now + CLUSTER_PL_RETRY_S;
		log_error("cluster", "event=peer.disabled reason=%s retry_in_s=%d fallback=relay",
		    log_q(err.msg), CLUSTER_PL_RETRY_S);
		return;
	}
	cl->last_digest = 0;	/* announce the address at once */
}

static int
cluster_store_changed(struct cluster *cl)
{
	struct stat st;

	if (stat(cl->store_path, &st) != 0)
		memset(&st, 0, sizeof st);
	if (st.st_ino == cl->seen.st_ino && st.st_size == cl->seen.st_size &&
	    st.st_mtim.tv_sec == cl->seen.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == cl->seen.st_mtim.tv_nsec)
		return 0;
	cl->seen = st;
	return 1;
}

static void
cluster_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;
	struct shir_error err;
	time_t now = time(NULL);
	size_t i;

	(void)fd;
	(void)what;
	if (!cl->have_key) {
		/* looked for once a second (shirctl cluster init/join while running) */
		if (cl->nokey_ticks++ % (1000 / CLUSTER_TICK_MS) != 0)
			return;
		if (rtkey_load(cl->state_dir, cl->key, &err) != 0) {
			snprintf(cl->nokey, sizeof cl->nokey, "%.250s", err.msg);
			return;
		}
		cl->have_key = 1;
		cl->nokey[0] = 0;
		cl->dirty = 1;
		log_info("cluster", "event=sync.enabled why=%s",
		    log_q("the node has the runtime data key"));
	}
	if (cluster_store_changed(cl) || cl->dirty) {
		cl->dirty = 0;
		cluster_look(cl);
	}
	if (cl->pl_ticks++ % (1000 / CLUSTER_TICK_MS) == 0)
		cluster_peerlink(cl, now);
	if (now - cl->last_digest >= CLUSTER_DIGEST_S)
		cluster_send_digest(cl);
	for (i = 0; i < cl->npeers;) {
		if (now - cl->peers[i].seen > 4 * CLUSTER_DIGEST_S) {
			log_info("cluster", "event=sync.peer_gone node=%s", log_q(cl->peers[i].node));
			peerlink_forget(cl->pl, cl->peers[i].node);
			cl->peers[i] = cl->peers[--cl->npeers];
		} else {
			i++;
		}
	}
	cluster_parity(cl, now);
}

static const char *const cluster_path_names[] = { "direct", "relay" };
static const char *const cluster_dir_names[] = { "sent", "received" };
static const char *const cluster_kind_names[] = { "digest", "records" };

/* "syncMessages": {"direct": {"sent": {"digest": N, "records": N},
 * "received": {...}}, "relay": {...}} */
static void
cluster_status_paths(const struct cluster *cl, cJSON *c)
{
	cJSON *all = cJSON_AddObjectToObject(c, "syncMessages"), *p, *d;
	int i, j, k;

	for (i = 0; all != NULL && i < 2; i++) {
		if ((p = cJSON_AddObjectToObject(all, cluster_path_names[i])) == NULL)
			return;
		for (j = 0; j < 2; j++) {
			if ((d = cJSON_AddObjectToObject(p, cluster_dir_names[j])) == NULL)
				return;
			for (k = 0; k < 2; k++)
				cJSON_AddNumberToObject(d, cluster_kind_names[k], (double)cl->msgs[i][j][k]);
		}
	}
}

static void
cluster_metrics(void *arg, struct evbuffer *out)
{
	struct cluster *cl = arg;
	int i, j, k;

	evbuffer_add_printf(out, "# HELP shird_cluster_sync_messages_total credential sync "
	    "messages by path (direct node-to-node TLS, or through the relay)\n"
	    "# TYPE shird_cluster_sync_messages_total counter\n");
	for (i = 0; i < 2; i++)
		for (j = 0; j < 2; j++)
			for (k = 0; k < 2; k++)
				evbuffer_add_printf(out, "shird_cluster_sync_messages_total{path=\"%s\","
				    "direction=\"%s\",kind=\"%s\"} %llu\n", cluster_path_names[i],
				    cluster_dir_names[j], cluster_kind_names[k],
				    (unsigned long long)cl->msgs[i][j][k]);
	peerlink_metrics(cl->pl, out);
}

static void
cluster_status(void *arg, cJSON *obj)
{
	struct cluster *cl = arg;
	cJSON *c = cJSON_AddObjectToObject(obj, "cluster"), *peers;
	time_t now = time(NULL);
	size_t i, agree = 0;

	if (c == NULL)
		return;
	cJSON_AddBoolToObject(c, "dataKey", cl->have_key);
	if (!cl->have_key)
		cJSON_AddStringToObject(c, "sync", cl->nokey[0] ? cl->nokey : "starting");
	else
		cJSON_AddStringToObject(c, "sync", "on");
	cJSON_AddStringToObject(c, "nodeId", cl->node_id);
	cJSON_AddStringToObject(c, "name", node_name(cl->n));
	cJSON_AddStringToObject(c, "version", PACKAGE_VERSION);
	cJSON_AddNumberToObject(c, "credentialsVersion", (double)cl->store_version);
	cJSON_AddStringToObject(c, "digest", cl->digest);
	cJSON_AddNumberToObject(c, "records", (double)cl->count);
	peers = cJSON_AddArrayToObject(c, "peers");
	for (i = 0; i < cl->npeers && peers != NULL; i++) {
		cJSON *p = cJSON_CreateObject();
		int same = strcmp(cl->peers[i].digest, cl->digest) == 0;

		if (p == NULL)
			break;
		agree += same;
		cJSON_AddStringToObject(p, "nodeId", cl->peers[i].node);
		cJSON_AddStringToObject(p, "name", cl->peers[i].name);
		cJSON_AddStringToObject(p, "version", cl->peers[i].version);
		cJSON_AddNumberToObject(p, "credentialsVersion", (double)cl->peers[i].store_version);
		cJSON_AddStringToObject(p, "digest", cl->peers[i].digest);
		cJSON_AddNumberToObject(p, "records", (double)cl->peers[i].count);
		cJSON_AddBoolToObject(p, "agrees", same);
		cJSON_AddStringToObject(p, "state", cl->peers[i].state[0] ? cl->peers[i].state :
		    "Active");
		cJSON_AddNumberToObject(p, "secondsSinceSeen", (double)(now - cl->peers[i].seen));
		cJSON_AddStringToObject(p, "address", cl->peers[i].addr);
		cJSON_AddStringToObject(p, "path", peerlink_up(cl->pl, cl->peers[i].node) ?
		    "direct" : "relay");
		cJSON_AddItemToArray(peers, p);
	}
	cJSON_AddNumberToObject(c, "peersAgreeing", (double)agree);
	cJSON_AddStringToObject(c, "state", cl->inactive ? "Inactive" : "Active");
	cJSON_AddNumberToObject(c, "differsSeconds",
	    cl->differs_since ? (double)(now - cl->differs_since) : 0);
	{
		cJSON *d = cJSON_AddArrayToObject(c, "differing");

		for (i = 0; i < cl->ndiff && d != NULL; i++)
			cJSON_AddItemToArray(d, cJSON_CreateString(cl->diff[i]));
	}
	cJSON_AddNumberToObject(c, "messagesSent", (double)cl->sent);
	cJSON_AddNumberToObject(c, "messagesReceived", (double)cl->received);
	cJSON_AddNumberToObject(c, "messagesRefused", (double)cl->refused);
	cJSON_AddNumberToObject(c, "recordsApplied", (double)cl->applied);
	cluster_status_paths(cl, c);
	peerlink_status(cl->pl, c);
}

static int
cluster_validate(void *arg, const struct conf *newc, struct shir_error *err)
{
	(void)arg;
	return peerlink_validate(newc, err);
}

static int
cluster_str_differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* A reload that changes remote access closes the port; the next tick opens
 * it again with the new settings (or not, when it is now disabled). */
static void
cluster_apply(void *arg, const struct conf *newc, const struct conf *oldc)
{
	struct cluster *cl = arg;

	if (cl->pl == NULL || (newc->remote_access == oldc->remote_access &&
	    newc->remote_access_port == oldc->remote_access_port &&
	    !cluster_str_differ(newc->remote_access_cert, oldc->remote_access_cert) &&
	    !cluster_str_differ(newc->remote_access_listen, oldc->remote_access_listen) &&
	    !cluster_str_differ(newc->remote_access_address, oldc->remote_access_address)))
		return;
	peerlink_free(cl->pl);
	cl->pl = NULL;
	cl->pl_retry = 0;
	log_info("cluster", "event=peer.stopped why=%s", log_q("the remote-access settings changed"));
}

static void
cluster_free(struct cluster *cl)
{
	if (cl == NULL)
		return;
	if (cl->tick != NULL)
		event_free(cl->tick);
	peerlink_free(cl->pl);
	OPENSSL_cleanse(cl->key, sizeof cl->key);
	free(cl->state_dir);
	free(cl->store_path);
	free(cl);
}

int
cluster_start(struct node *n, struct shir_error *err)
{
	struct node_hooks h;
	struct cluster *cl;
	struct timeval tv = { 0, CLUSTER_TICK_MS * 1000 };

	if (cluster_get(n) != NULL)
		return 0;
	if ((cl = calloc(1, sizeof *cl)) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	cl->n = n;
	cl->cs = node_ext(n, NODE_EXT_CREDS);
	if (cl->cs == NULL) {
		free(cl);
		return shir_error_set(err, SHIR_EINTERNAL, "the credential store is not open");
	}
	if ((cl->state_dir = strdup(node_conf(n)->state_dir)) == NULL ||
	    asprintf(&cl->store_path, "%s/%s", cl->state_dir, CREDSTORE_FILE) < 0 ||
	    (cl->tick = event_new(node_base(n), -1, EV_PERSIST, cluster_tick, cl)) == NULL ||
	    event_add(cl->tick, &tv) != 0) {
		cluster_free(cl);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	memset(&h, 0, sizeof h);
	h.name = "cluster";
	h.status = cluster_status;
	h.metrics = cluster_metrics;
	h.apply = cluster_apply;
	h.validate = cluster_validate;
	h.arg = cl;
	if (node_add_hooks(n, &h) != 0) {
		cluster_free(cl);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	node_set_ext(n, NODE_EXT_CLUSTER, cl);
	listener_set_sync_handler(n, cluster_on_sync, cl);
	cluster_tick(-1, 0, cl);
	return 0;
}

void
cluster_stop(struct node *n)
{
	struct cluster *cl = n ? cluster_get(n) : NULL;

	if (cl == NULL)
		return;
	listener_set_sync_handler(n, NULL, NULL);
	node_set_ext(n, NODE_EXT_CLUSTER, NULL);
	cluster_free(cl);
}
