/* shirctl register-node (-rn, -RegisterNewNode) and -k/-Key: validate a
 * node key, test the path to its relay (relaycheck), store the registration
 * (node.json + the SAS key in the credential store), and tell a running
 * shird. Also `shirctl diagnose` (-ts), the same walk for the current
 * registration. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/atomicfile.h"
#include "node/conf.h"
#include "node/admin/credstore.h"
#include "ctl/ctl_admin.h"
#include "proxy/proxy.h"
#include "node/admin/registration.h"
#include "relay/irkey.h"
#include "ctl/relaycheck.h"
#include "node/admin/servicehosts.h"
#include "ctl/shirctl.h"

/* Loads the node's proxy configuration; on failure *why holds the reason. */
static struct proxy_config *
ctl_reg_proxy(const struct conf *c, char *why, size_t len)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;

	if (proxy_config_load(&c->proxy, &pc, &err) != 0) {
		snprintf(why, len, "%.1000s", err.msg);
		return NULL;
	}
	why[0] = '\0';
	return pc;
}

static cJSON *
ctl_reg_json(const struct relaycheck_report *rep, const char *endpoint, const char *what)
{
	cJSON *o = cJSON_CreateObject(), *steps = cJSON_AddArrayToObject(o, "steps");
	int i;

	cJSON_AddStringToObject(o, "endpoint", endpoint);
	cJSON_AddStringToObject(o, "what", what);
	cJSON_AddStringToObject(o, "broken", rep->broken >= 0 ?
	    relaycheck_step_name((enum relaycheck_step)rep->broken) : "");
	for (i = 0; i < RELAYCHECK_NSTEPS; i++) {
		cJSON *st;

		if (!relaycheck_step_applies(rep, i))
			continue;
		st = cJSON_CreateObject();

		cJSON_AddStringToObject(st, "step", relaycheck_step_name((enum relaycheck_step)i));
		cJSON_AddStringToObject(st, "result", relaycheck_result_name(rep->res[i]));
		cJSON_AddStringToObject(st, "detail", rep->detail[i]);
		cJSON_AddItemToArray(steps, st);
	}
	return o;
}

static void
ctl_reg_print(const struct relaycheck_report *rep, const char *endpoint, const char *what)
{
	int i;

	printf("%s%s%s%s\n", endpoint, what ? " (" : "", what ? what : "", what ? ")" : "");
	for (i = 0; i < RELAYCHECK_NSTEPS; i++)
		if (relaycheck_step_applies(rep, i))
			printf("  %-8s %-8s %s\n", relaycheck_step_name((enum relaycheck_step)i),
			    relaycheck_result_name(rep->res[i]), rep->detail[i]);
	if (rep->broken >= 0)
		printf("  => broken at %s: %s\n", relaycheck_step_name((enum relaycheck_step)rep->broken),
		    rep->detail[rep->broken]);
	else if (rep->res[RELAYCHECK_LISTEN] == RELAYCHECK_OK)
		printf("  => the node can reach the relay and listen\n");
	else if (rep->res[RELAYCHECK_SETTINGS] == RELAYCHECK_OK)
		printf("  => the node can open its self-contained connection\n");
	else
		printf("  => reachable (no listen handshake for this endpoint)\n");
}

static void
ctl_reg_target(const struct conf *c, const struct registration *r, struct relaycheck_target *t)
{
	memset(t, 0, sizeof *t);
	t->endpoint = r->endpoint;
	t->hc = r->hc;
	t->key_name = r->key_name;
	t->key = r->key;
	t->tls_pin = r->tls_pin;
	t->ca_file = c->relay_ca_file;
	t->timeout_s = c->proxy.connect_timeout;
}

static int
ctl_register(struct ctl_ctx *ctx, const char *keyarg, const char *node_name, int switch_key,
    int skip_test)
{
	struct registration r, *old = NULL;
	struct relaycheck_report rep;
	struct relaycheck_target t;
	struct credstore *cs = NULL;
	struct proxy_config *pc = NULL;
	struct shir_error err;
	struct irkey k;
	struct conf *c = NULL;
	char *keytext = NULL, host[256] = "", why[1024];
	int rc = 1;

	memset(&k, 0, sizeof k);
	memset(&r, 0, sizeof r);
	if (strcmp(keyarg, "-") == 0) {
		if (ctl_read_secret("Node key (IR@v1@...): ", 0, &keytext, &err) != 0) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			return 1;
		}
	} else {
		fprintf(stderr, "note: a key on the command line is visible to other users (ps); "
		    "`shirctl register-node -` reads it from standard input\n");
		if ((keytext = strdup(keyarg)) == NULL)
			return 1;
	}
	if (node_name != NULL) {
		size_t i, l = strlen(node_name);

		for (i = 0; i < l && (unsigned char)node_name[i] >= 0x20 && node_name[i] != 0x7f; i++)
			;
		if (l == 0 || l > 128 || i < l) {
			fprintf(stderr, "shirctl: a node name has 1 to 128 printable characters\n");
			goto out;
		}
	}
	if (irkey_decode(keytext, &k, &err) != 0) {
		fprintf(stderr, "shirctl: this is not a valid node key: %s\n", err.msg);
		goto out;
	}
	if ((c = ctl_admin_conf(ctx)) == NULL)
		goto out;
	if (credstore_open(c->state_dir, &cs, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		goto out;
	}
	if (registration_load_public(c->state_dir, &old, &err) != 0)
		old = NULL;
	if (switch_key && old == NULL)
		printf("the node is not registered yet: registering it with this key\n");
	r.ir = k.ir;
	r.endpoint = k.endpoint;
	r.hc = k.hc;
	r.key_name = k.key_name;
	r.key = k.key;
	r.tls_pin = k.tls_pin;
	r.registered = time(NULL);
	if (node_name != NULL)
		r.node_name = (char *)node_name;
	else if (old != NULL && old->node_name != NULL)
		r.node_name = old->node_name;
	else if (c->node_name != NULL && *c->node_name)
		r.node_name = c->node_name;
	else {
		gethostname(host, sizeof host - 1);
		r.node_name = host;
	}
	if (!skip_test) {
		pc = ctl_reg_proxy(c, why, sizeof why);
		ctl_reg_target(c, &r, &t);
		printf("testing the connection to the relay (DNS, proxy, TCP, CONNECT, TLS, listen "
		    "handshake):\n");
		relaycheck_run(pc, why, &t, &rep);
		ctl_reg_print(&rep, r.endpoint, NULL);
		if (rep.broken >= 0) {
			fprintf(stderr, "shirctl: not registered: the node cannot listen on the relay "
			    "(broken at %s). Fix it and run this again, or add --skip-test to "
			    "register anyway.\n",
			    relaycheck_step_name((enum relaycheck_step)rep.broken));
			goto out;
		}
	} else {
		printf("connection test skipped (--skip-test)\n");
	}
	if (registration_save(c->state_dir, cs, &r, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		goto out;
	}
	printf("registered node %s to integration runtime %s (%s, hybrid connection %s, key %s)\n",
	    r.node_name, r.ir, r.endpoint, r.hc, r.key_name);
	rc = ctl_admin_apply(ctx, "/v1/node/registration");
out:
	proxy_config_unref(pc);
	registration_free(old);
	credstore_free(cs);
	conf_free(c);
	irkey_clear(&k);
	credstore_secret_free(keytext);
	return rc;
}

int
ctl_cmd_register_node(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "register-node [--skip-test] KEY|- [NODENAME] "
	    "(also -rn, -RegisterNewNode)";
	const char *args[2] = { NULL, NULL };
	int i, n = 0, skip = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--skip-test") == 0)
			skip = 1;
		else if (n < 2)
			args[n++] = argv[i];
		else
			ctl_die_usage("register-node", usage);
	}
	if (n == 0)
		ctl_die_usage("register-node", usage);
	return ctl_register(ctx, args[0], args[1], 0, skip);
}

int
ctl_cmd_switch_key(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "switch-key [--skip-test] KEY|- (also -k, -Key)";
	const char *key = NULL;
	int i, skip = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--skip-test") == 0)
			skip = 1;
		else if (key == NULL)
			key = argv[i];
		else
			ctl_die_usage("switch-key", usage);
	}
	if (key == NULL)
		ctl_die_usage("switch-key", usage);
	return ctl_register(ctx, key, NULL, 1, skip);
}

/* The key of [relay] in shird.conf (relay.key_file), or NULL. */
static char *
ctl_diag_relay_key(const struct conf *c)
{
	struct shir_error err;
	char *k = NULL;
	size_t n = 0;

	if (c->relay_key_file == NULL || atomicfile_read(c->relay_key_file, 4096, &k, &n, &err) != 0)
		return NULL;
	while (n > 0 && (k[n - 1] == '\n' || k[n - 1] == '\r'))
		k[--n] = '\0';
	return k;
}

int
ctl_cmd_diagnose(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "diagnose [--json] [--endpoint URL] (also -ts)";
	struct relaycheck_target t[3 + SERVICEHOSTS_MAX];
	const char *what[3 + SERVICEHOSTS_MAX];
	char urls[SERVICEHOSTS_MAX][300];
	struct relaycheck_report rep;
	struct servicehost *sh = NULL;
	struct registration *r = NULL;
	struct proxy_config *pc = NULL;
	struct credstore *cs = NULL;
	struct shir_error err;
	struct conf *c = NULL;
	const char *endpoint = NULL;
	char why[1024], *relay_key = NULL, unreadable[SHIR_ERROR_MSG_MAX] = "";
	cJSON *all = NULL, *arr = NULL;
	size_t nsh = 0, k;
	int i, n = 0, json = ctx->json, rc = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc)
			endpoint = argv[++i];
		else
			ctl_die_usage("diagnose", usage);
	}
	if ((c = ctl_admin_conf(ctx)) == NULL)
		return 1;
	pc = ctl_reg_proxy(c, why, sizeof why);
	memset(t, 0, sizeof t);
	if (endpoint != NULL) {
		t[n].endpoint = endpoint;
		what[n++] = "--endpoint";
	} else {
		/* the registration, [relay] of shird.conf, and the rendezvous hosts seen */
		if (credstore_open(c->state_dir, &cs, &err) == 0 &&
		    registration_load(c->state_dir, cs, &r, &err) == 0) {
			ctl_reg_target(c, r, &t[n]);
			what[n++] = "registration";
		} else if (err.code != SHIR_ENOENT) {
			/* not "not registered": this user cannot tell */
			snprintf(unreadable, sizeof unreadable, "%s", err.msg);
			fprintf(stderr, "shirctl: cannot read the node's registration: %s\n", err.msg);
		}
		if (c->relay_endpoint != NULL && *c->relay_endpoint) {
			relay_key = ctl_diag_relay_key(c);
			t[n].endpoint = c->relay_endpoint;
			t[n].hc = relay_key ? c->relay_path : NULL;
			t[n].key_name = c->relay_key_name;
			t[n].key = relay_key;
			what[n++] = "[relay] of shird.conf";
		}
		if (servicehosts_list(c->state_dir, &sh, &nsh, &err) == 0) {
			for (k = 0; k < nsh; k++) {
				snprintf(urls[k], sizeof urls[k], "wss://%s:%d", sh[k].host, sh[k].port);
				t[n].endpoint = urls[k];
				what[n++] = "rendezvous host";
			}
		}
	}
	if (endpoint == NULL && c->sc_endpoint != NULL && *c->sc_endpoint && n > 0 &&
	    n < 3 + SERVICEHOSTS_MAX) {
		/* the self-contained service endpoint, with the runtime's key */
		t[n] = t[0];
		t[n].endpoint = c->sc_endpoint;
		t[n].selfcontained = 1;
		what[n++] = "self-contained service endpoint";
	}
	if (n == 0 && unreadable[0]) {
		fprintf(stderr, "shirctl: nothing to diagnose: whether the node is registered cannot be "
		    "read as this user (the state directory %s is the service's); run diagnose as "
		    "root, or name an endpoint with --endpoint URL\n", c->state_dir);
		rc = 1;
		goto out;
	}
	if (n == 0) {
		fprintf(stderr, "shirctl: nothing to diagnose: the node is not registered "
		    "(`shirctl register-node KEY`) and shird.conf names no relay; or name one with "
		    "--endpoint URL\n");
		rc = 1;
		goto out;
	}
	if (json) {
		all = cJSON_CreateObject();
		arr = cJSON_AddArrayToObject(all, "endpoints");
	}
	for (i = 0; i < n; i++) {
		if (t[i].ca_file == NULL)
			t[i].ca_file = c->relay_ca_file;
		if (t[i].timeout_s == 0)
			t[i].timeout_s = c->proxy.connect_timeout;
		relaycheck_run(pc, why, &t[i], &rep);
		if (json)
			cJSON_AddItemToArray(arr, ctl_reg_json(&rep, t[i].endpoint, what[i]));
		else
			ctl_reg_print(&rep, t[i].endpoint, what[i]);
		if (rep.broken >= 0)
			rc = 1;
	}
	if (json) {
		char *text = cJSON_Print(all);

		printf("%s\n", text);
		cJSON_free(text);
	}
out:
	cJSON_Delete(all);
	free(sh);
	credstore_secret_free(relay_key);
	proxy_config_unref(pc);
	registration_free(r);
	credstore_free(cs);
	conf_free(c);
	return rc;
}
