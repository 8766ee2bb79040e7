/* relay_srv: the service side of Azure Relay Hybrid Connections (spec §7):
 * the HTTP/WebSocket front end, the listener registry, rendezvous, WebSocket
 * tunnels, HTTP relaying, limits, metrics and status. One libevent loop.
 * The server is split by concern (docs/relay.md): relay_srv.c (life cycle,
 * accept), relay_route.c, relay_listen.c, relay_tunnel.c, relay_http.c,
 * relay_admin.c, sharing relay_srv_int.h. */
#ifndef SHIR_RELAY_SRV_H
#define SHIR_RELAY_SRV_H

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "relay/server/relay_conf.h"
#include "common/shir_err.h"

struct rsrv;

/* Takes ownership of conf. */
struct rsrv *rsrv_new(struct event_base *base, struct relay_conf *conf, const char *conf_path,
    struct shir_error *e);
/* What start would refuse in a configuration, without binding anything: the
 * listen addresses (a plain one only on loopback unless allowed), the admin
 * address, the TLS certificate and key. shir-relay -t runs it. */
int rsrv_check_conf(const struct relay_conf *c, struct shir_error *e);
/* Loads the state file, binds the listening sockets. */
int rsrv_start(struct rsrv *s, struct shir_error *e);
/* SIGHUP: reloads the config file (log level, limits, namespace, public URL,
 * the TLS certificate and key for new connections) and the state file;
 * connections stay up; deleted entities' listeners get Close 1001; a
 * regenerated key applies to new connections. listen, listen_tls, admin and
 * state_file need a restart (a changed value is logged, the running one kept). */
void rsrv_reload(struct rsrv *s);
/* Graceful shutdown: stops accepting, closes channels with 1001, then leaves
 * the loop when everything is closed (or after a few seconds). */
void rsrv_shutdown(struct rsrv *s);
void rsrv_free(struct rsrv *s);

/* For tests and fuzzing: load the state without binding sockets, hand the
 * server an accepted connection, and count its open connections. */
int rsrv_start_unbound(struct rsrv *s, struct shir_error *e);
void rsrv_adopt(struct rsrv *s, struct bufferevent *bev);
long rsrv_connections(const struct rsrv *s);

#endif
