/* relay_srv_int: what the files of relay/server/ share: the state of the
 * running relay (struct rsrv), its connections, entities, control channels,
 * tunnels and HTTP senders, and the functions one file calls in another.
 * Private to relay/server/ (docs/layout.md). */
#ifndef SHIR_RELAY_SRV_INT_H
#define SHIR_RELAY_SRV_INT_H

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
#ifdef __GLIBC__
#include <malloc.h>
#endif

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

#include "relay/announce.h"
#include "relay/hc_msg.h"
#include "relay/http1.h"
#include "common/log.h"
#include "common/random.h"
#include "relay/server/relay_srv.h"
#include "relay/server/relay_state.h"
#include "relay/sas.h"
#include "relay/ws.h"

#define ID_MAX 160
#define TARGET_MAX 8192	/* longer request targets get 414 */
#define FAIL_SLOTS 256

struct rsrv;
struct ctl;
struct hconn;
struct tunnel;
struct rjobs;
struct jwait;

/* A hybrid connection as the running relay sees it. */
struct ent {
	struct ent *next;
	char *name;
	struct sas_rule *rules;
	size_t nrules;
	bool anonymous;
	bool deleted;
	bool self_contained;	/* senders' requests go over self-contained connections */
	struct scconn *scs;	/* self-contained connections of its nodes (relay_sc.c) */
	int nsc;
	struct ctl *ctls;	/* control channels (listeners) */
	int nctl;
	uint64_t requests, accepts;
};

struct ctl {
	struct ctl *next, *prev;
	struct rsrv *s;
	struct ent *ent;
	struct ws *ws;
	bool cancel_ok;		/* the listener asked for {"cancel":...} messages */
	bool sync_ok;		/* the listener sends and takes {"shirSync":...} */
	struct announce ann;	/* node name, version, instance (relay/announce.h) */
	bool inactive;		/* its last sync message said Inactive (relay_roster.h) */
	char id[ID_MAX];
	char peer[64];
	int64_t expiry;
	time_t since;
	struct event *expiry_timer;
	struct event *probe;	/* another listen presented our id: a ping must come back */
	bool probing;
	struct hconn *body_for;	/* a response body is expected for it */
	bool discard_body;	/* the body's sender went away: drop the rest */
	bool closing;
};

enum pkind { P_ACCEPT, P_REQUEST };

struct pend {
	struct pend *next, *prev;
	enum pkind kind;
	char id[ID_MAX];
	struct tunnel *t;
	struct hconn *h;
	struct timespec created;
};

struct tunnel {
	struct tunnel *next, *prev;
	struct rsrv *s;
	struct ent *ent;
	struct ws *snd, *lst;
	struct pend *p;
	struct event *timer;
	bool open;
	bool snd_closed, lst_closed;
	char id[ID_MAX];
	struct event *reap;
};

/* An HTTP sender's connection is one state machine (docs/relay.md, "HTTP
 * senders"): where the exchange is (st, set only by h_set_state, which
 * checks the transition and logs it) and, while a request is open, how far
 * it has gone to the listener (fwd, set only by h_set_fwd).
 *
 *   st:  HEAD -> BODY (a head was read) -> WAIT (the body is complete)
 *        BODY|WAIT -> RESP (the listener's answer started)
 *        RESP -> HEAD (answer written, keep-alive: the next request)
 *        any -> CLOSING (answer written, then close)
 *   fwd: NONE -> INLINE (the request went whole on the control channel)
 *        NONE -> ADDRESS (too large: a rendezvous address went instead)
 *        NONE|ADDRESS -> RV_STREAMING (the head went on the rendezvous, the
 *                        body follows) -> RV_SENT (all of it did)
 *        NONE|ADDRESS -> RV_SENT (a head without a body)
 *        any -> NONE (the next request)
 */
enum hstate { H_HEAD = 0, H_BODY, H_WAIT, H_RESP, H_CLOSING };
enum hfwd { HF_NONE = 0, HF_INLINE, HF_ADDRESS, HF_RV_STREAMING, HF_RV_SENT };

struct hconn {
	struct hconn *next, *prev;
	struct rsrv *s;
	struct bufferevent *bev;
	struct http1 *hp;
	char peer[64];
	int peer_port;
	enum hstate st;
	bool upgrade;		/* the head is an upgrade: hand the connection to ws */
	bool auth_header_used;	/* Authorization carried the token: do not forward it */
	struct http1_msg *req;
	struct ent *ent;
	struct ctl *ctl;	/* listener chosen for the current request */
	char req_id[ID_MAX];
	char target[TARGET_MAX + 1];
	struct evbuffer *body;
	bool body_done;
	bool big;		/* too large or chunked-and-growing: use the rendezvous */
	enum hfwd fwd;		/* how far the request went to the listener */
	struct ws *rv;		/* request rendezvous */
	char rv_id[ID_MAX];
	struct pend *rv_pend;
	struct ent *rv_ent;	/* the hybrid connection rv_id was issued for (entities
				   are freed only in rsrv_free, deleted ones wait in the
				   graveyard: the address is never reused while running) */
	struct ws *resp_src;	/* response source paused while our output is above tunnel_buffer */
	bool rv_discard;	/* drop the body of an ignored response on the rendezvous */
	bool resp_started, resp_chunked, resp_nobody;
	bool head_req;
	bool keep_alive;
	bool paused;
	struct event *deadline;
	struct event *reap;
	struct event *resume;	/* zero-delay: read buffered input after a pause */
	struct event *head_timer;	/* deadline for a whole head (handshake_timeout, then
				   idle_timeout between keep-alive requests) */
	bool head_seen;		/* bytes of the current head arrived */
	bool evicted;		/* closed to make room (counted in nevicting until reaped) */
	struct connrec *conn;	/* NULL for adopted connections (fuzzing) */
	struct timespec since;
	bool peer_eof;		/* the sender half-closed while we owed it a response */
	bool dead;
	/* a request for the job queue (relay_jobs.c), answered by the relay */
	bool jobs, jobs_started;
	int jobs_op;
	int jobs_filter;	/* GET /v1/jobs?state=: a state, or -1 */
	char jobs_id[40];
	struct jwait *jobs_wait;	/* a lease request waiting for a job */
	/* self-contained mode (relay_sc.c) */
	bool sc_mode;		/* this request goes over a self-contained connection */
	struct scstream *sc;	/* its stream, while open */
	bool sc_sent, sc_retried, sc_retry_pending, sc_queued;
	bool sc_draining;	/* taken off the queue by sc_queue_drain */
	const struct scconn *sc_exclude;	/* retry elsewhere than here (compared, never used) */
	struct event *sc_wait;	/* queued: 503 when it fires */
};

/* Connection accounting (docs/relay.md "Connection budgets"): per source
 * address, and by kind. A connection is half-open from accept until its first
 * head is parsed; then a sender (HTTP requests, WebSocket connect), a node
 * side (listen, accept and request rendezvous) or other (refused upgrades). */
enum ckind { CK_NONE = 0, CK_HALF, CK_SENDER, CK_NODE, CK_OTHER };

struct addrrec {
	struct addrrec *next;
	int open, half;
	char addr[64];
};

/* One accepted connection: with its hconn, then with the ws it became
 * (ws_tag), freed with the socket (conn_gone). */
struct connrec {
	struct connrec *next, *prev;
	struct addrrec *a;
	unsigned char kind;
};

#define ADDR_BUCKETS 1024

struct failrec {
	char addr[64];
	time_t window;
	int count;
};

/* a listening socket (listen or listen_tls) */
struct rs_listen_sock {
	struct rs_listen_sock *next;
	struct evconnlistener *l;
	void *ctx;
	bool tls;
	char addr[80];
};

struct metrics {
	uint64_t conns_total, conns_rejected;
	uint64_t conns_per_address, conns_evicted, senders_refused, head_timeouts;
	uint64_t senders_gone, senders_dropped, cancels_sent;
	uint64_t listen_ok, listen_fail, listen_ratelimited;
	uint64_t tunnels_total, tunnels_rejected, tunnels_timeout;
	uint64_t bytes_to_listener, bytes_to_sender;
	uint64_t http_requests;
	uint64_t http_status[6];	/* 1xx..5xx by first digit */
	uint64_t http_502, http_504, http_401, http_403, http_404;
	uint64_t rv_count;
	double rv_sum;
	uint64_t rv_buckets[8];
	uint64_t renew_ok, renew_fail, token_expired;
	uint64_t sync_relayed, sync_dropped;	/* node sync messages (docs/ha.md) */
};

static const double RV_BOUNDS[8] = { 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30 };

/* Tokens verified lately: a sender reuses its token for the token's lifetime,
 * so each HTTP request need not be verified again (HMAC and parsing were a
 * fifth of the relay's CPU per request). A hit needs the whole token equal
 * (compared in constant time), the same entity and right, the same keys (the
 * table is dropped by every state load) and an unexpired token. */
#define TOKCACHE_SLOTS 16

struct tokcache {
	struct tokcache_ent {
		char *tok;
		size_t len;
		const struct ent *ent;
		unsigned need;
		struct sas_verified v;
	} e[TOKCACHE_SLOTS];
	unsigned next;
};

struct rsrv {
	struct event_base *base;
	struct relay_conf *conf;
	char *conf_path;
	struct ent *ents;
	struct ent *graveyard;
	struct pend *pends;
	size_t npend;
	struct tunnel *tunnels;
	struct hconn *hconns;
	struct rs_listen_sock *lsocks;
	SSL_CTX *ssl;
	struct evhttp *admin;
	struct event *state_poll;
	struct stat state_st;
	bool state_seen;
	struct failrec fails[FAIL_SLOTS];
	long nconns;
	long nhalf, nsender, nnode;
	long nevicting;		/* evicted, closed by the next reap: not counted at accept */
	struct addrrec *addrs[ADDR_BUCKETS];
	struct connrec *conns;	/* every record, freed at the end whatever happened */
	long nctl_total;
	struct metrics m;
	bool shutting_down;
	struct event *shutdown_timer;
	char public_base[512];
	time_t started;
	struct tokcache tokens;
	struct rjobs *jobs;	/* the copy-job queue (relay_jobs.c) */
	long nscqueued;		/* senders waiting for a self-contained stream */
};

/* ---- across the files of relay/server/ ----------------------------------- */

void admin_metrics(struct evhttp_request *req, void *arg);
void admin_status(struct evhttp_request *req, void *arg);
void hconn_reap(evutil_socket_t fd, short w, void *arg);
void hconn_close(struct hconn *h);
void hconn_free_parts(struct hconn *h);
void hconn_fail(struct hconn *h, int status, const char *msg);
void h_deadline(evutil_socket_t fd, short w, void *arg);
void h_head_expired(evutil_socket_t fd, short w, void *arg);
void h_send_request(struct hconn *h);
void h_set_state(struct hconn *h, enum hstate st);
/* the request (or its rendezvous address) went to the listener */
static inline bool
h_sent(const struct hconn *h)
{
	return h->fwd != HF_NONE;
}
/* the request itself goes (or went) on the rendezvous */
static inline bool
h_on_rv(const struct hconn *h)
{
	return h->fwd == HF_RV_STREAMING || h->fwd == HF_RV_SENT;
}
int h_on_head(const struct http1_msg *m, void *arg);
int h_on_body(const uint8_t *d, size_t n, void *arg);
int h_on_complete(void *arg);
void h_feed(struct hconn *h);
void h_read(struct bufferevent *bev, void *arg);
void h_resume_cb(evutil_socket_t fd, short w, void *arg);
void hconn_try_resume(struct hconn *h);
void h_write(struct bufferevent *bev, void *arg);
void h_event(struct bufferevent *bev, short what, void *arg);
void h_response(struct hconn *h, const struct hc_response *r, void **src);
void h_resp_body(struct hconn *h, const uint8_t *d, size_t n, bool fin);
void ctl_unlink(struct ctl *c);
void ctl_close(struct ctl *c, int code, const char *reason);
void h_resp_unthrottle(struct hconn *h);
void h_resp_throttle(struct hconn *h, struct ws *src);
struct hconn *h_find_inflight(struct rsrv *s, const char *req_id, const struct ctl *c);
void ctl_on_message(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg);
void rs_ws_fail(struct rsrv *s, struct ws *ws, int status, const char *reason, const char *msg);
void front_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg);
void front_ws_request(struct ws *ws, const struct http1_msg *req, void *arg);
void route_split_target(const char *t, char *path, size_t pl, const char **query);
struct ent *route_entity(struct rsrv *s, const char *path, const char **rest);
int route_decode_path(const char *raw, char **out);
const char *route_via_host(struct rsrv *s, const struct http1_msg *req);
/* routing and authorization (relay_route.c; unit test: tests/unit/test_relay_route.c) */
void tokcache_clear(struct tokcache *c);
/* A verified token for e with the right need, unexpired (skew allowed):
 * compared in constant time; *v is what sas_verify said. */
bool tokcache_find(struct tokcache *c, const char *tok, const struct ent *e, unsigned need,
    int64_t now, int skew, struct sas_verified *v);
void tokcache_add(struct tokcache *c, const char *tok, const struct ent *e, unsigned need,
    const struct sas_verified *v);
/* The request's token: sb-hc-token in the query, else ServiceBusAuthorization,
 * else Authorization (*used_authorization). A copy, or NULL. */
char *route_find_token(const struct http1_msg *req, const char *query, bool *used_authorization);
/* Microsoft-Relay-AllowedListeners / -DisallowedListeners for listener c. */
bool route_listener_allowed(const struct ctl *c, const struct http1_msg *req);
int route_authorize(struct rsrv *s, struct ent *e, const struct http1_msg *req, const char *query,
    unsigned need, struct sas_verified *v, bool *used_auth, char *why, size_t wl);
struct ctl *route_pick_listener(struct ent *e, const struct http1_msg *req, bool *filtered);
void ent_free(struct ent *e);
int ent_load_state(struct rsrv *s, struct shir_error *err);
bool fail_limited(struct rsrv *s, const char *addr);
void fail_note(struct rsrv *s, const char *addr);
void rs_uuid(char out[37]);
unsigned rs_rnd(unsigned n);
void rs_peer_of(struct bufferevent *bev, char *out, size_t len, int *port);
double rs_since(const struct timespec *t0);
void rs_observe_rv(struct rsrv *s, double secs);
struct ws_options rs_ws_opts(struct rsrv *s);
void conn_set_kind(struct rsrv *s, struct connrec *r, enum ckind k);
enum ckind conn_kind(const struct connrec *r);
struct connrec *rs_ws_conn(struct ws *ws);
long sender_budget(const struct rsrv *s);
bool conn_sender_ok(struct rsrv *s, struct connrec *r);
void conn_gone(struct rsrv *s, struct connrec *r);
void rs_ws_free(struct rsrv *s, struct ws *ws);
char *rs_error_json(const char *code, const char *msg);
const char *rs_error_code(int status);
struct pend *pend_add(struct rsrv *s, enum pkind k, const char *id);
void pend_del(struct rsrv *s, struct pend *p);
void tunnel_reap(evutil_socket_t fd, short w, void *arg);
void tunnel_check_done(struct tunnel *t);
struct ws *tunnel_other(struct tunnel *t, struct ws *ws);
void route_connect(struct rsrv *s, struct ws *ws, const struct http1_msg *req, struct ent *e,
    const char *suffix, const char *query);
void route_rendezvous(struct rsrv *s, struct ws *ws, const struct http1_msg *req, const char *action,
    const char *query);
extern const struct ws_callbacks RV_CB;
/* the copy-job queue (relay_jobs.c, docs/copy.md) */
int rjobs_start(struct rsrv *s, struct shir_error *e);
void rjobs_free(struct rsrv *s);
void rjobs_shutdown(struct rsrv *s);
bool rjobs_path(const char *suffix);
void rjobs_begin(struct hconn *h, const char *suffix, const char *query);
int rjobs_body(struct hconn *h, const uint8_t *d, size_t n);
void rjobs_request(struct hconn *h);
void rjobs_forget(struct hconn *h);
void rjobs_metrics(struct rsrv *s, struct evbuffer *b);
void rjobs_status(struct rsrv *s, cJSON *o);
void rjobs_admin(struct evhttp_request *req, void *arg);
/* hconn_fail with a Retry-After header (seconds; 0 = none) */
void hconn_fail_retry(struct hconn *h, int status, int retry_after, const char *msg);
/* The same with a reason phrase of the status line (no control bytes). */
void hconn_fail_reason(struct hconn *h, int status, const char *reason, int retry_after,
    const char *msg);
/* self-contained connections (relay_sc.c; docs/self-contained.md) */
bool relay_sc_wants(const struct http1_msg *req);
void relay_sc_adopt(struct hconn *h);
void relay_sc_send(struct hconn *h);
void relay_sc_detach(struct hconn *h);
void relay_sc_unqueue(struct hconn *h);
void relay_sc_writable(struct hconn *h);
/* The peer of a live self-contained connection of e announcing node from
 * another instance (*since: when it connected), or NULL. */
const char *relay_sc_name_user(struct ent *e, const char *node, const char *instance,
    time_t *since);
void relay_sc_set_mode(struct ent *e, bool on);
void relay_sc_close_ent(struct ent *e, const char *why);
void relay_sc_free_ent(struct ent *e);
void relay_sc_shutdown(struct rsrv *s);
void relay_sc_status(const struct ent *e, cJSON *o);
void relay_sc_metrics(struct rsrv *s, struct evbuffer *out);

#endif
