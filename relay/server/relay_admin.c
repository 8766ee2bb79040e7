/* relay_admin: the admin address: /metrics (Prometheus text) and /status. */
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

#include "relay/http1.h"
#include "common/log.h"
#include "relay/ws.h"
#include "relay/server/relay_roster.h"
#include "relay/server/relay_srv_int.h"

/* ---- admin: /metrics and /status -------------------------------------------------- */

void
admin_metrics(struct evhttp_request *req, void *arg)
{
	struct rsrv *s = arg;
	struct evbuffer *b = evbuffer_new();
	struct ent *e;
	int i;
	long ntun = 0, nh = 0;
	struct tunnel *t;
	struct hconn *h;

	for (t = s->tunnels; t; t = t->next)
		ntun += t->open;
	for (h = s->hconns; h; h = h->next)
		nh++;
	evbuffer_add_printf(b,
	    "# HELP shir_relay_connections Open TCP connections (all kinds).\n"
	    "# TYPE shir_relay_connections gauge\nshir_relay_connections %ld\n"
	    "# TYPE shir_relay_connections_total counter\nshir_relay_connections_total %llu\n"
	    "# TYPE shir_relay_connections_rejected_total counter\nshir_relay_connections_rejected_total %llu\n"
	    "# HELP shir_relay_listeners Connected control channels.\n"
	    "# TYPE shir_relay_listeners gauge\nshir_relay_listeners %ld\n"
	    "# TYPE shir_relay_tunnels gauge\nshir_relay_tunnels %ld\n"
	    "# TYPE shir_relay_http_connections gauge\nshir_relay_http_connections %ld\n"
	    "# TYPE shir_relay_pending_rendezvous gauge\nshir_relay_pending_rendezvous %zu\n"
	    "# TYPE shir_relay_listen_total counter\n"
	    "shir_relay_listen_total{result=\"ok\"} %llu\nshir_relay_listen_total{result=\"refused\"} %llu\n"
	    "shir_relay_listen_total{result=\"rate_limited\"} %llu\n"
	    "# TYPE shir_relay_tunnels_total counter\n"
	    "shir_relay_tunnels_total{result=\"accept_sent\"} %llu\n"
	    "shir_relay_tunnels_total{result=\"rejected\"} %llu\n"
	    "shir_relay_tunnels_total{result=\"timeout\"} %llu\n"
	    "# TYPE shir_relay_bytes_total counter\n"
	    "shir_relay_bytes_total{direction=\"to_listener\"} %llu\n"
	    "shir_relay_bytes_total{direction=\"to_sender\"} %llu\n"
	    "# TYPE shir_relay_token_events_total counter\n"
	    "shir_relay_token_events_total{event=\"renewed\"} %llu\n"
	    "shir_relay_token_events_total{event=\"renew_failed\"} %llu\n"
	    "shir_relay_token_events_total{event=\"expired\"} %llu\n"
	    "# TYPE shir_relay_http_requests_total counter\nshir_relay_http_requests_total %llu\n"
	    "# TYPE shir_relay_http_responses_total counter\n",
	    s->nconns, (unsigned long long)s->m.conns_total, (unsigned long long)s->m.conns_rejected,
	    s->nctl_total, ntun, nh, s->npend, (unsigned long long)s->m.listen_ok,
	    (unsigned long long)s->m.listen_fail, (unsigned long long)s->m.listen_ratelimited,
	    (unsigned long long)s->m.tunnels_total, (unsigned long long)s->m.tunnels_rejected,
	    (unsigned long long)s->m.tunnels_timeout, (unsigned long long)s->m.bytes_to_listener,
	    (unsigned long long)s->m.bytes_to_sender, (unsigned long long)s->m.renew_ok,
	    (unsigned long long)s->m.renew_fail, (unsigned long long)s->m.token_expired,
	    (unsigned long long)s->m.http_requests);
	for (i = 1; i < 6; i++)
		evbuffer_add_printf(b, "shir_relay_http_responses_total{class=\"%dxx\"} %llu\n", i,
		    (unsigned long long)s->m.http_status[i]);
	evbuffer_add_printf(b, "shir_relay_http_responses_total{status=\"401\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"403\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"404\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"502\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"504\"} %llu\n",
	    (unsigned long long)s->m.http_401, (unsigned long long)s->m.http_403,
	    (unsigned long long)s->m.http_404, (unsigned long long)s->m.http_502,
	    (unsigned long long)s->m.http_504);
	evbuffer_add_printf(b, "# HELP shir_relay_connections_by_kind Open connections: half-open "
	    "(first head not parsed yet), senders, node side (listeners and rendezvous).\n"
	    "# TYPE shir_relay_connections_by_kind gauge\n"
	    "shir_relay_connections_by_kind{kind=\"half_open\"} %ld\n"
	    "shir_relay_connections_by_kind{kind=\"sender\"} %ld\n"
	    "shir_relay_connections_by_kind{kind=\"node\"} %ld\n"
	    "# HELP shir_relay_limit_events_total Connections and requests the limits acted on.\n"
	    "# TYPE shir_relay_limit_events_total counter\n"
	    "shir_relay_limit_events_total{limit=\"per_address\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"evicted_half_open\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"sender_budget\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"head_timeout\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"sender_backlog\"} %llu\n"
	    "# HELP shir_relay_senders_gone_total Senders that left while their answer was owed.\n"
	    "# TYPE shir_relay_senders_gone_total counter\nshir_relay_senders_gone_total %llu\n"
	    "# TYPE shir_relay_cancels_sent_total counter\nshir_relay_cancels_sent_total %llu\n",
	    s->nhalf, s->nsender, s->nnode, (unsigned long long)s->m.conns_per_address,
	    (unsigned long long)s->m.conns_evicted, (unsigned long long)s->m.senders_refused,
	    (unsigned long long)s->m.head_timeouts, (unsigned long long)s->m.senders_dropped,
	    (unsigned long long)s->m.senders_gone, (unsigned long long)s->m.cancels_sent);
	evbuffer_add_printf(b, "# HELP shir_relay_sync_messages_total Nodes' sync messages handed "
	    "to another listener of their runtime, or dropped for a full output.\n"
	    "# TYPE shir_relay_sync_messages_total counter\n"
	    "shir_relay_sync_messages_total{result=\"relayed\"} %llu\n"
	    "shir_relay_sync_messages_total{result=\"dropped\"} %llu\n",
	    (unsigned long long)s->m.sync_relayed, (unsigned long long)s->m.sync_dropped);
	evbuffer_add_printf(b, "# HELP shir_relay_rendezvous_seconds Time from accept/request to the "
	    "listener's rendezvous.\n# TYPE shir_relay_rendezvous_seconds histogram\n");
	for (i = 0; i < 8; i++)
		evbuffer_add_printf(b, "shir_relay_rendezvous_seconds_bucket{le=\"%g\"} %llu\n", RV_BOUNDS[i],
		    (unsigned long long)s->m.rv_buckets[i]);
	evbuffer_add_printf(b, "shir_relay_rendezvous_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "shir_relay_rendezvous_seconds_sum %.6f\nshir_relay_rendezvous_seconds_count %llu\n",
	    (unsigned long long)s->m.rv_count, s->m.rv_sum, (unsigned long long)s->m.rv_count);
#ifdef __GLIBC__
	{
		struct mallinfo2 mi = mallinfo2();

		evbuffer_add_printf(b, "# HELP shir_relay_heap_bytes Heap memory in use (glibc mallinfo2).\n"
		    "# TYPE shir_relay_heap_bytes gauge\nshir_relay_heap_bytes %zu\n",
		    mi.uordblks + mi.hblkhd);
	}
#endif
	relay_sc_metrics(s, b);
	evbuffer_add_printf(b, "# TYPE shir_relay_entity_listeners gauge\n");
	for (e = s->ents; e; e = e->next)
		evbuffer_add_printf(b, "shir_relay_entity_listeners{hc=\"%s\"} %d\n", e->name, e->nctl);
	rjobs_metrics(s, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

void
admin_status(struct evhttp_request *req, void *arg)
{
	struct rsrv *s = arg;
	cJSON *o = cJSON_CreateObject(), *ents, *pend;
	struct ent *e;
	struct pend *p;
	struct evbuffer *b = evbuffer_new();
	char *txt;

	cJSON_AddStringToObject(o, "program", "shir-relay");
	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddNumberToObject(o, "uptimeSeconds", (double)(time(NULL) - s->started));
	cJSON_AddStringToObject(o, "publicUrl", s->public_base);
	cJSON_AddNumberToObject(o, "connections", (double)s->nconns);
	ents = cJSON_AddArrayToObject(o, "entities");
	for (e = s->ents; e; e = e->next) {
		cJSON *j = cJSON_CreateObject(), *ls = NULL;
		struct ctl *c;

		cJSON_AddItemToArray(ents, j);
		cJSON_AddStringToObject(j, "name", e->name);
		cJSON_AddBoolToObject(j, "anonymousSenders", e->anonymous);
		cJSON_AddNumberToObject(j, "requests", (double)e->requests);
		cJSON_AddNumberToObject(j, "accepts", (double)e->accepts);
		relay_sc_status(e, j);
		relay_roster_status(s, e, j);
		ls = cJSON_AddArrayToObject(j, "listeners");
		for (c = e->ctls; c; c = c->next) {
			cJSON *l = cJSON_CreateObject();

			cJSON_AddItemToArray(ls, l);
			cJSON_AddStringToObject(l, "id", c->id);
			cJSON_AddStringToObject(l, "remote", c->peer);
			cJSON_AddStringToObject(l, "node", c->ann.node);
			cJSON_AddStringToObject(l, "nodeVersion", c->ann.version);
			cJSON_AddStringToObject(l, "status", c->inactive ? "Inactive" : "Online");
			cJSON_AddNumberToObject(l, "connectedSeconds", (double)(time(NULL) - c->since));
			cJSON_AddNumberToObject(l, "tokenExpiry", (double)c->expiry);
		}
	}
	{
		static const char *const hs[] = { "head", "body", "wait", "response", "closing" };
		cJSON *hc = cJSON_AddArrayToObject(o, "httpConnections");
		struct hconn *h;
		int n = 0;

		for (h = s->hconns; h != NULL && n < 100; h = h->next, n++) {
			cJSON *j = cJSON_CreateObject();

			cJSON_AddItemToArray(hc, j);
			cJSON_AddStringToObject(j, "state", hs[h->st]);
			cJSON_AddStringToObject(j, "peer", h->peer);
			cJSON_AddStringToObject(j, "target", h->target);
			cJSON_AddBoolToObject(j, "rendezvous", h->rv != NULL);
			cJSON_AddBoolToObject(j, "paused", h->paused);
			cJSON_AddBoolToObject(j, "senderClosed", h->peer_eof);
			cJSON_AddNumberToObject(j, "outputBytes", h->bev ?
			    (double)evbuffer_get_length(bufferevent_get_output(h->bev)) : 0);
			cJSON_AddNumberToObject(j, "inputBytes", h->bev ?
			    (double)evbuffer_get_length(bufferevent_get_input(h->bev)) : 0);
			cJSON_AddNumberToObject(j, "events", h->bev ? bufferevent_get_enabled(h->bev) : 0);
			cJSON_AddNumberToObject(j, "ageSeconds", rs_since(&h->since));
		}
	}
	pend = cJSON_AddArrayToObject(o, "pendingRendezvous");
	for (p = s->pends; p; p = p->next) {
		cJSON *j = cJSON_CreateObject();

		cJSON_AddItemToArray(pend, j);
		cJSON_AddStringToObject(j, "kind", p->kind == P_ACCEPT ? "accept" : "request");
		cJSON_AddStringToObject(j, "id", p->id);
		cJSON_AddNumberToObject(j, "ageSeconds", rs_since(&p->created));
	}
	rjobs_status(s, o);
	txt = cJSON_Print(o);
	evbuffer_add_printf(b, "%s\n", txt ? txt : "{}");
	free(txt);
	cJSON_Delete(o);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
