/* relay_conf: shir-relay.conf (INI, libinih), one table of keys like
 * node/conf.c. See man/shir-relay.8 for every key. */
#ifndef SHIR_RELAY_CONF_H
#define SHIR_RELAY_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/shir_err.h"

struct relay_conf {
	char *listen;		/* plain HTTP/WebSocket: "127.0.0.1:9300" (loopback only) */
	char *listen_tls;	/* "0.0.0.0:9443" */
	char *tls_cert;
	char *tls_key;
	char *public_url;	/* base of rendezvous addresses, e.g. wss://relay.example:443 */
	char *namespace;	/* host name checked in token audiences and sent in Via; "" = any */
	char *admin;		/* "127.0.0.1:9301": /metrics and /status */
	char *state_file;
	char *log_level;
	char *log_file;
	int max_connections;
	int max_listeners;	/* per hybrid connection */
	int max_header_bytes;
	int inline_max;		/* bytes of request/response on the control channel */
	int tunnel_buffer;	/* per-direction high watermark of a tunnel */
	int max_message;	/* control messages and buffered bodies */
	int response_timeout;	/* seconds */
	int rendezvous_timeout;	/* seconds */
	int idle_timeout;	/* seconds an HTTP sender connection may idle */
	int handshake_timeout;	/* seconds from accept to a whole first head (a deadline) */
	int listen_fail_limit;	/* failed listen attempts per address per minute */
	int token_skew;		/* seconds */
	int max_per_address;	/* open connections per source address */
	int max_handshakes_per_address;	/* connections still sending their first head */
	int reserved_percent;	/* of max_connections, kept for listeners and rendezvous */
	int sender_backlog;	/* answer bytes held for a sender that does not read */
	int max_jobs;		/* copy jobs the queue keeps (relay_jobs.c) */
	bool allow_plain_nonloopback;
};

struct relay_conf *relay_conf_load(const char *path, struct shir_error *e);
void relay_conf_free(struct relay_conf *c);

#endif
