/* shir-relay: a self-hostable relay, wire-compatible with Azure Relay Hybrid
 * Connections. `shir-relay -f FILE` runs the server; `shir-relay -f FILE ir
 * ...` manages integration runtimes in the state file. See shir-relay(8). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include "common/evread.h"
#include "relay/irkey.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "relay/server/relay_conf.h"
#include "relay/server/relay_jobsctl.h"
#include "relay/server/relay_nodes.h"
#include "relay/server/relay_srv.h"
#include "relay/server/relay_state.h"
#include "relay/sas.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: shir-relay [-f FILE] [-t]                 run the relay (default %s/shir/shir-relay.conf)\n"
	    "       shir-relay [-f FILE] ir create NAME [--endpoint wss://host:port] [--anonymous-senders]\n"
	    "                                                  [--self-contained]\n"
	    "       shir-relay [-f FILE] ir set NAME --self-contained on|off\n"
	    "       shir-relay [-f FILE] ir list [--json]\n"
	    "       shir-relay [-f FILE] ir keys NAME          (root: print its keys again)\n"
	    "       shir-relay [-f FILE] ir regenerate-key NAME key1|key2|service\n"
	    "       shir-relay [-f FILE] ir delete NAME\n"
	    "       shir-relay [-f FILE] ir nodes NAME [--json]  (runtime status and nodes; needs relay.admin)\n"
	    "       shir-relay [-f FILE] jobs list [--state STATE] [--json] | show ID | cancel ID\n"
	    "       shir-relay --version\n", SYSCONFDIR);
}

static struct event *sig_hup, *sig_term, *sig_int;
static struct sdnotify *sdn;	/* readiness and watchdog under systemd */

static void
on_signal(evutil_socket_t sig, short w, void *arg)
{
	struct rsrv *s = arg;

	if (sig == SIGHUP) {
		log_info("relay", "event=reload status=begin trigger=SIGHUP");
		rsrv_reload(s);
	} else {
		sdnotify_stopping();
		rsrv_shutdown(s);
	}
}

static int
run(const char *path, bool test_only)
{
	struct shir_error e;
	struct relay_conf *c = relay_conf_load(path, &e);
	struct event_base *base = NULL;
	struct rsrv *s = NULL;
	enum log_level lvl;
	int rc = 1;

	if (c == NULL) {
		fprintf(stderr, "shir-relay: %s: %s\n", path, e.msg);
		return 1;
	}
	if (test_only) {
		if (rsrv_check_conf(c, &e) != 0) {
			fprintf(stderr, "shir-relay: %s: %s\n", path, e.msg);
			relay_conf_free(c);
			return 1;
		}
		printf("shir-relay: %s is valid\n", path);
		relay_conf_free(c);
		return 0;
	}
	if (log_open(c->log_file) != 0) {
		fprintf(stderr, "shir-relay: cannot open the log file %s\n", c->log_file);
		relay_conf_free(c);
		return 1;
	}
	if (log_level_parse(c->log_level, &lvl) == 0)
		log_set_level(lvl);
	signal(SIGPIPE, SIG_IGN);
	{
		struct rlimit rl;

		/* one descriptor per listener, two per tunnel */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	log_info("main", "event=versions shir=%s libevent=%s openssl=%s cjson=%s", PACKAGE_VERSION,
	    event_get_version(), OpenSSL_version(OPENSSL_VERSION_STRING), cJSON_Version());
	evread_tune_malloc();
	json_arena_install();
	{
		/* epoll changes are applied together before each wait: a write event
		 * added and deleted within one loop turn costs no system call (the
		 * relay never dup()s a socket, the flag's one caveat) */
		struct event_config *ec = event_config_new();

		if (ec != NULL)
			event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		base = ec != NULL ? event_base_new_with_config(ec) : NULL;
		event_config_free(ec);
	}
	if (base == NULL) {
		relay_conf_free(c);
		goto out;
	}
	s = rsrv_new(base, c, path, &e);
	if (s == NULL || rsrv_start(s, &e) != 0) {
		log_error("main", "event=start status=failed error=%s", log_q(e.msg));
		fprintf(stderr, "shir-relay: %s\n", e.msg);
		goto out;
	}
	sig_hup = evsignal_new(base, SIGHUP, on_signal, s);
	sig_term = evsignal_new(base, SIGTERM, on_signal, s);
	sig_int = evsignal_new(base, SIGINT, on_signal, s);
	evsignal_add(sig_hup, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	sdn = sdnotify_ready(base, "main", "serving");
	event_base_dispatch(base);
	log_info("main", "event=shutdown.done");
	rc = 0;
out:
	sdnotify_free(sdn);
	sdn = NULL;
	if (sig_hup)
		event_free(sig_hup);
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	rsrv_free(s);
	if (base)
		event_base_free(base);
	log_close();
	return rc;
}

/* ---- ir subcommands ---------------------------------------------------------- */

static const char *
default_endpoint(const struct relay_conf *c, char *buf, size_t len)
{
	const char *hp;

	if (*c->public_url)
		return c->public_url;
	if (*c->listen_tls) {
		hp = c->listen_tls;
		if (strncmp(hp, "0.0.0.0:", 8) == 0)
			snprintf(buf, len, "wss://localhost:%s", hp + 8);
		else
			snprintf(buf, len, "wss://%s", hp);
		return buf;
	}
	snprintf(buf, len, "ws://%s", c->listen);
	return buf;
}

static int
print_key(const char *label, const struct rstate_entity *en, const char *rule)
{
	struct rstate_rule *r = rstate_rule(en, rule);
	struct irkey k = { 0 };
	struct shir_error e;
	char *s = NULL;

	if (r == NULL)
		return 0;
	k.ir = en->name;
	k.endpoint = en->endpoint;
	k.hc = en->name;
	k.key_name = r->name;
	k.key = r->key;
	if (irkey_encode(&k, &s, &e) != 0) {
		fprintf(stderr, "shir-relay: %s\n", e.msg);
		return 1;
	}
	printf("%-22s %s\n", label, s);
	OPENSSL_cleanse(s, strlen(s));
	free(s);
	return 0;
}

/* The runtime status of hybrid connection name in the running relay's /status
 * (relay_roster.h), "unknown" without it; "Need Registration" for one the
 * running relay does not know yet (created after it started). */
static const char *
ir_live_status(const cJSON *live, const char *name)
{
	const cJSON *e;

	if (live == NULL)
		return "unknown";
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(live, "entities"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")) ?: "", name) == 0)
			return cJSON_GetStringValue(cJSON_GetObjectItem(e, "runtimeStatus")) ?:
			    "unknown";
	return "Need Registration";
}

static int
ir_cmd(const char *path, int argc, char **argv)
{
	struct shir_error e;
	struct relay_conf *c = relay_conf_load(path, &e);
	struct rstate *st = NULL;
	int lock = -1, rc = 1;
	const char *sub = argc > 0 ? argv[0] : NULL;
	bool dirty = false;

	if (c == NULL) {
		fprintf(stderr, "shir-relay: %s: %s\n", path, e.msg);
		return 1;
	}
	if (sub == NULL) {
		usage(stderr);
		goto out;
	}
	if (strcmp(sub, "nodes") == 0 && (argc == 2 || (argc == 3 &&
	    strcmp(argv[2], "--json") == 0))) {
		rc = relay_nodes_print(c->admin, argv[1], argc == 3);
		goto out;
	}
	if ((lock = rstate_lock(c->state_file, &e)) < 0 || rstate_load(c->state_file, &st, &e) != 0) {
		fprintf(stderr, "shir-relay: %s\n", e.msg);
		goto out;
	}
	if (strcmp(sub, "create") == 0 && argc >= 2) {
		const char *name = argv[1], *ep = NULL;
		char buf[512], k1[45], k2[45], k3[45];
		struct rstate_entity *en;
		bool anon = false, selfc = false;
		int i;

		for (i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc)
				ep = argv[++i];
			else if (strcmp(argv[i], "--anonymous-senders") == 0)
				anon = true;
			else if (strcmp(argv[i], "--self-contained") == 0)
				selfc = true;
			else if (strncmp(argv[i], "--endpoint=", 11) == 0)
				ep = argv[i] + 11;
			else {
				fprintf(stderr, "shir-relay: unknown option %s\n", argv[i]);
				goto out;
			}
		}
		if (ep == NULL)
			ep = default_endpoint(c, buf, sizeof buf);
		if (strncmp(ep, "ws://", 5) != 0 && strncmp(ep, "wss://", 6) != 0) {
			fprintf(stderr, "shir-relay: --endpoint must be wss://host:port (or ws:// on loopback)\n");
			goto out;
		}
		if ((en = rstate_add(st, name, &e)) == NULL) {
			fprintf(stderr, "shir-relay: cannot create %s: %s\n", name, e.msg);
			goto out;
		}
		en->ir = true;
		en->anonymous_senders = anon;
		en->self_contained = selfc;
		if ((en->endpoint = strdup(ep)) == NULL || sas_make_key(k1) || sas_make_key(k2) ||
		    sas_make_key(k3) || rstate_add_rule(en, "node-key1", k1, SAS_LISTEN) ||
		    rstate_add_rule(en, "node-key2", k2, SAS_LISTEN) ||
		    rstate_add_rule(en, "service-key", k3, SAS_SEND)) {
			fprintf(stderr, "shir-relay: out of memory\n");
			goto out;
		}
		OPENSSL_cleanse(k1, sizeof k1);
		OPENSSL_cleanse(k2, sizeof k2);
		OPENSSL_cleanse(k3, sizeof k3);
		if (rstate_save(st, c->state_file, &e) != 0) {
			fprintf(stderr, "shir-relay: %s\n", e.msg);
			goto out;
		}
		printf("Integration runtime %s created (hybrid connection %s, endpoint %s).\n", name, name,
		    en->endpoint);
		rc = print_key("Node key 1 (Listen):", en, "node-key1") |
		    print_key("Node key 2 (Listen):", en, "node-key2") |
		    print_key("Service key (Send):", en, "service-key");
		goto out;
	} else if (strcmp(sub, "list") == 0) {
		size_t i, j;
		bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
		cJSON *arr = json ? cJSON_CreateArray() : NULL;

		char why[512];
		cJSON *live = relay_nodes_status(c->admin, why, sizeof why);

		if (live == NULL)
			fprintf(stderr, "shir-relay: runtime status unknown: %s\n", why);
		if (!json)
			printf("%-24s %-8s %-18s %-34s %s\n", "NAME", "IR", "STATUS", "ENDPOINT", "RULES");
		for (i = 0; i < st->n; i++) {
			const struct rstate_entity *en = &st->e[i];
			char rules[512] = "";
			const char *status = ir_live_status(live, en->name);

			for (j = 0; j < en->nrules; j++) {
				size_t l = strlen(rules);

				snprintf(rules + l, sizeof rules - l, "%s%s(%s%s%s)", j ? " " : "",
				    en->rules[j].name, en->rules[j].rights & SAS_LISTEN ? "L" : "",
				    en->rules[j].rights & SAS_SEND ? "S" : "",
				    en->rules[j].rights & SAS_MANAGE ? "M" : "");
			}
			if (json) {
				cJSON *o = cJSON_CreateObject();

				cJSON_AddItemToArray(arr, o);
				cJSON_AddStringToObject(o, "name", en->name);
				cJSON_AddBoolToObject(o, "ir", en->ir);
				cJSON_AddStringToObject(o, "endpoint", en->endpoint ? en->endpoint : "");
				cJSON_AddStringToObject(o, "rules", rules);
				cJSON_AddBoolToObject(o, "selfContained", en->self_contained);
				cJSON_AddStringToObject(o, "status", en->ir ? status : "-");
			} else {
				printf("%-24s %-8s %-18s %-34s %s\n", en->name, en->ir ? "yes" : "no",
				    en->ir ? status : "-", en->endpoint ? en->endpoint : "-", rules);
			}
		}
		cJSON_Delete(live);
		if (json) {
			char *t = cJSON_Print(arr);

			printf("%s\n", t ? t : "[]");
			free(t);
			cJSON_Delete(arr);
		}
		rc = 0;
		goto out;
	} else if (strcmp(sub, "keys") == 0 && argc == 2) {
		const struct rstate_entity *en = rstate_find(st, argv[1]);

		if (geteuid() != 0) {	/* the state file is 0600 too; say it plainly */
			fprintf(stderr, "shir-relay: only root may print a runtime's keys (they are "
			    "secrets); run it as root on the relay host\n");
			goto out;
		}
		if (en == NULL || !en->ir) {
			fprintf(stderr, "shir-relay: no integration runtime named %s (see: shir-relay ir "
			    "list)\n", argv[1]);
			goto out;
		}
		printf("Integration runtime %s (hybrid connection %s, endpoint %s).\n", en->name,
		    en->name, en->endpoint ? en->endpoint : "-");
		rc = print_key("Node key 1 (Listen):", en, "node-key1") |
		    print_key("Node key 2 (Listen):", en, "node-key2") |
		    print_key("Service key (Send):", en, "service-key");
		goto out;
	} else if (strcmp(sub, "regenerate-key") == 0 && argc == 3) {
		struct rstate_entity *en = rstate_find(st, argv[1]);
		const char *rule = strcmp(argv[2], "key1") == 0 ? "node-key1" :
		    strcmp(argv[2], "key2") == 0 ? "node-key2" :
		    strcmp(argv[2], "service") == 0 ? "service-key" : NULL;
		struct rstate_rule *r;
		char k[45];

		if (en == NULL) {
			fprintf(stderr, "shir-relay: no integration runtime named %s (see: shir-relay ir list)\n",
			    argv[1]);
			goto out;
		}
		if (rule == NULL || (r = rstate_rule(en, rule)) == NULL) {
			fprintf(stderr, "shir-relay: which key? key1, key2 or service\n");
			goto out;
		}
		if (sas_make_key(k) != 0)
			goto out;
		OPENSSL_cleanse(r->key, strlen(r->key));
		free(r->key);
		r->key = strdup(k);
		OPENSSL_cleanse(k, sizeof k);
		if (r->key == NULL || rstate_save(st, c->state_file, &e) != 0) {
			fprintf(stderr, "shir-relay: %s\n", e.msg);
			goto out;
		}
		printf("Key %s of %s regenerated; the old key no longer opens new connections.\n", argv[2],
		    en->name);
		rc = print_key(strcmp(rule, "service-key") == 0 ? "Service key (Send):" :
		    strcmp(rule, "node-key1") == 0 ? "Node key 1 (Listen):" : "Node key 2 (Listen):", en, rule);
		goto out;
	} else if (strcmp(sub, "set") == 0 && argc == 4 && strcmp(argv[2], "--self-contained") == 0) {
		struct rstate_entity *en = rstate_find(st, argv[1]);
		bool on = strcmp(argv[3], "on") == 0;

		if (en == NULL) {
			fprintf(stderr, "shir-relay: no integration runtime named %s (see: shir-relay ir list)\n",
			    argv[1]);
			goto out;
		}
		if (!on && strcmp(argv[3], "off") != 0) {
			fprintf(stderr, "shir-relay: --self-contained takes on or off\n");
			goto out;
		}
		en->self_contained = on;
		if (rstate_save(st, c->state_file, &e) != 0) {
			fprintf(stderr, "shir-relay: %s\n", e.msg);
			goto out;
		}
		printf("Self-contained interactive authoring of %s is %s; a running relay tells its "
		    "nodes within seconds.\n", en->name, on ? "on" : "off");
		rc = 0;
		goto out;
	} else if (strcmp(sub, "delete") == 0 && argc == 2) {
		if (rstate_remove(st, argv[1]) != 0) {
			fprintf(stderr, "shir-relay: no integration runtime named %s (see: shir-relay ir list)\n",
			    argv[1]);
			goto out;
		}
		dirty = true;
		if (rstate_save(st, c->state_file, &e) != 0) {
			fprintf(stderr, "shir-relay: %s\n", e.msg);
			goto out;
		}
		printf("Integration runtime %s deleted; a running relay closes its listeners (1001).\n", argv[1]);
		rc = 0;
		goto out;
	}
	usage(stderr);
out:
	(void)dirty;
	rstate_free(st);
	rstate_unlock(lock);
	relay_conf_free(c);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *path = SYSCONFDIR "/shir/shir-relay.conf";
	bool test_only = false;
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
			path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-t") == 0) {
			test_only = true;
			i++;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("shir-relay %s\n", PACKAGE_VERSION);
			return 0;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i < argc) {
		if (strcmp(argv[i], "ir") == 0)
			return ir_cmd(path, argc - i - 1, argv + i + 1);
		if (strcmp(argv[i], "jobs") == 0)
			return relay_jobsctl(path, argc - i - 1, argv + i + 1);
		usage(stderr);
		return 2;
	}
	return run(path, test_only);
}
