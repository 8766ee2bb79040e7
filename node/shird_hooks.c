#include "config.h"

#include <string.h>

#include "node/admin/admin_node.h"
#include "node/authoring/authoring.h"
#include "node/cluster/cluster.h"
#include "node/cluster/peerlink.h"
#include "node/copy/copy_node.h"
#include "node/admin/credstore.h"
#include "node/listener/listener.h"
#include "node/listener/lspec.h"
#include "node/selfcont/selfcont.h"
#include "node/admin/registration.h"
#include "node/admin/statuspage.h"
#include "common/log.h"
#include "node/node.h"
#include "node/proxy_node.h"
#include "node/shird.h"

static int registration_source_added;

/* Channel specs from the node's registration (shirctl register-node). */
static int
shird_registration_source(void *arg, const struct conf *c, struct lspec_list *out,
    struct shir_error *err)
{
	const struct registration *r = admin_node_registration(arg);
	struct lspec s;

	if (r == NULL)
		return 0;	/* not registered: no channel from here */
	memset(&s, 0, sizeof s);
	s.name = "registration";
	s.endpoint = r->endpoint;
	s.path = r->hc;
	s.key_name = r->key_name;
	s.key = r->key;
	s.tls_pin = r->tls_pin;
	s.ca_file = c->relay_ca_file;
	return lspec_list_add(out, &s);
}

int
shird_hook_validate(const struct conf *c, struct shir_error *err)
{
	/* proxy: load and check the .NET config files / custom proxy */
	if (proxy_node_validate(c, err) != 0)
		return err->code;

	/* status page and metrics: loopback addresses only */
	if (statuspage_validate(c, err) != 0)
		return err->code;

	/* listener: check relay settings and key files */
	if (listener_validate(c, err) != 0)
		return err->code ? err->code : SHIR_ECONFIG;

	/* self-contained channel: the service endpoint */
	if (selfcont_validate(c, err) != 0)
		return err->code ? err->code : SHIR_ECONFIG;

	/* node-to-node TLS: the remote-access addresses */
	if (peerlink_validate(c, err) != 0)
		return err->code ? err->code : SHIR_ECONFIG;

	return 0;
}

int
shird_hook_start(struct node *n, struct shir_error *err)
{
	const struct conf *c = node_conf(n);

	/* proxy: register the reload hook */
	if (proxy_node_start(n, err) != 0)
		return err->code;

	/* authoring: worker pool and /v1 routes */
	if (authoring_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;

	/* admin: credentials routes, registration state */
	if (admin_node_start(n, err) != 0)
		return err->code;
	/* CredentialReference resolution from the credential store; reserved
	 * names (the node's own SAS key) are never resolvable, or an author
	 * could send the node key to a store of their choosing. */
	authoring_set_credential_resolver(n, credstore_resolve, node_ext(n, NODE_EXT_CREDS));
	/* The stored registration is one source of control channels (the
	 * [relay] section is the other); registered after admin's hooks so a
	 * reload sees the new registration first. */
	if (!registration_source_added) {
		if (lspec_add_source(shird_registration_source, n) != 0)
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		registration_source_added = 1;
	}

	/* listener: start the control channels */
	if (listener_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;

	/* the local status page and /metrics on loopback ([admin]) */
	if (statuspage_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;

	/* copy: lease copy jobs from the relay (node.copy_jobs > 0, registered) */
	if (copy_node_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;

	/* self-contained channel: connections to the service endpoint */
	if (selfcont_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;
	(void)c;

	/* cluster: credential sync with the runtime's other nodes, over the
	 * listener's control channels */
	if (cluster_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;

	return 0;
}

void
shird_hook_shutdown(struct node *n)
{
	/* copy: no new leases; running jobs stop (their leases expire) */
	copy_node_shutdown(n);

	/* listener: stop accepting new requests on the channels */
	listener_shutdown(n);
	selfcont_shutdown(n);

	/* authoring: queued operations get 503 ShuttingDown */
	authoring_shutdown(n);
}

void
shird_hook_stop(struct node *n)
{
	/* each subsystem frees its state, in reverse order of start */
	/* cluster */
	cluster_stop(n);

	/* self-contained channel */
	selfcont_stop(n);

	/* copy */
	copy_node_stop(n);

	/* status page (its diagnose child, its listeners) */
	statuspage_stop(n);

	/* listener */
	listener_stop(n);

	/* admin */
	admin_node_stop(n);

	/* authoring: answer what is left, join the workers */
	authoring_stop(n);

	/* proxy */
	proxy_node_stop(n);
}
