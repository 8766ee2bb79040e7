#include "config.h"

#include "listener.h"
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
	if (listener_validate(c, err) != 0)
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

	/* admin: credentials routes, registration state */

	/* listener: start the control channels */
	if (listener_start(n, err) != 0)
		return err->code ? err->code : SHIR_EINTERNAL;
	(void)c;

	return 0;
}

void
shird_hook_shutdown(struct node *n)
{
	/* listener: stop accepting new requests on the channels */
	listener_shutdown(n);
}

void
shird_hook_stop(struct node *n)
{
	/* each subsystem frees its state, in reverse order of start */
	/* listener */
	listener_stop(n);

	/* proxy */
	proxy_node_stop(n);
}
