#include "config.h"

#include "admin_node.h"
#include "authoring.h"
#include "credstore.h"
#include "log.h"
#include "node.h"
#include "proxy_node.h"
#include "shird.h"

int
shird_hook_validate(const struct conf *c, struct shir_error *err)
{
	/* proxy: load and check the .NET config files / custom proxy */
	if (proxy_node_validate(c, err) != 0)
		return err->code;

	/* listener: check relay settings and key files */

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

	/* listener: start the control channels (replaces the lines below) */

	if ((c->relay_endpoint == NULL || !*c->relay_endpoint) &&
	    node_ext(n, NODE_EXT_REGISTRATION) == NULL) {
		node_set_status(n, NODE_NEEDS_REGISTRATION,
		    "no relay channel is configured: register the node with "
		    "`shirctl register-node KEY` or set [relay] in shird.conf");
		return 0;
	}
	node_set_status(n, NODE_LIMITED,
	    "the relay listener is not built yet: [relay] is configured but this build "
	    "cannot connect to it");
	return 0;
}

void
shird_hook_shutdown(struct node *n)
{
	/* listener: stop accepting new requests on the channels */

	/* authoring: queued operations get 503 ShuttingDown */
	authoring_shutdown(n);
}

void
shird_hook_stop(struct node *n)
{
	/* each subsystem frees its state, in reverse order of start */

	/* admin */
	admin_node_stop(n);

	/* authoring: answer what is left, join the workers */
	authoring_stop(n);

	/* proxy */
	proxy_node_stop(n);
}
