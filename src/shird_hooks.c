#include "config.h"

#include "authoring.h"
#include "log.h"
#include "node.h"
#include "shird.h"

int
shird_hook_validate(const struct conf *c, struct shir_error *err)
{
	/* proxy: load and check the .NET config files / custom proxy */

	/* listener: check relay settings and key files */

	return 0;
}

int
shird_hook_start(struct node *n, struct shir_error *err)
{
	const struct conf *c = node_conf(n);

	/* proxy: register the reload hook */

	/* authoring: worker pool and /v1 routes */
	if (authoring_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;

	/* admin: credentials routes, registration state */

	/* listener: start the control channels (replaces the lines below) */

	if (c->relay_endpoint == NULL || !*c->relay_endpoint) {
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

	/* authoring: answer what is left, join the workers */
	authoring_stop(n);
}
