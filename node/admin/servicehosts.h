/* servicehosts: the small list of hosts a node has been sent to besides its
 * relay endpoint (rendezvous addresses may name other hosts than the
 * endpoint, see the hybrid-connections spec §2.3), kept in
 * state_dir/service-hosts.json so `shirctl service-urls` can list them for
 * firewall rules. At most SERVICEHOSTS_MAX entries; the oldest goes first. */
#ifndef SHIR_SERVICEHOSTS_H
#define SHIR_SERVICEHOSTS_H

#include <time.h>

#include "common/shir_err.h"

#define SERVICEHOSTS_FILE "service-hosts.json"
#define SERVICEHOSTS_MAX 32

struct servicehost {
	char host[256];
	int port;
	char purpose[64];	/* "rendezvous", ... */
	time_t last_seen;
};

/* Records host:port (a no-op when it is known and was seen in the last hour,
 * so calling it per rendezvous is cheap). Blocking file I/O: call it from a
 * worker or rarely. */
int servicehosts_note(const char *state_dir, const char *host, int port, const char *purpose,
    struct shir_error *err);
/* The list, newest first; free *out with free(). A missing file is empty. */
int servicehosts_list(const char *state_dir, struct servicehost **out, size_t *n,
    struct shir_error *err);

#endif
