/* shirctl: the shir admin and authoring command line. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "node/conf.h"
#include "ctl/ctl_client.h"
#include "common/log.h"
#include "ctl/shirctl.h"

struct ctl_cmd {
	const char *name;
	const char *aliases[4];	/* dmgcmd flags and short forms */
	ctl_cmd_fn fn;
	const char *usage;
	const char *help;
};

static int ctl_cmd_version(struct ctl_ctx *ctx, int argc, char **argv);
static int ctl_cmd_help(struct ctl_ctx *ctx, int argc, char **argv);

static const struct ctl_cmd ctl_cmds[] = {
	{ "status", { NULL }, ctl_cmd_status, "status [--json]",
	  "show the node's status (from the running shird); exit 0 Online, 3 Limited, "
	  "4 Offline, 5 NeedsRegistration, 6 Starting, 7 shird not running" },
	{ "get-ip", { NULL }, ctl_cmd_get_ip, "get-ip [--json]",
	  "the node's host name and addresses, as the service's Get IP sees them" },
	{ "send-logs", { NULL }, ctl_cmd_send_logs, "send-logs FILE [--lines N]",
	  "save the node's recent log lines, redacted (Send log), to a new file (0600)" },
	{ "logs", { NULL }, ctl_cmd_logs, "logs [--lines N] [--follow]",
	  "print the node's recent log lines (default 200); --follow prints new ones as they come" },
	{ "ui", { NULL }, ctl_cmd_ui, "ui [--json]",
	  "print the local status page's address with its token ([admin] status_page)" },
	{ "reload", { NULL }, ctl_cmd_reload, "reload",
	  "reload shird.conf in the running shird (like SIGHUP)" },
	/* proxy (proxy/ctl_proxy.c) */
	{ "proxy", { NULL }, ctl_cmd_proxy, "proxy explain URL [--config FILE] [--json]",
	  "which proxy (or DIRECT) a destination gets, and why; no daemon needed" },
	{ "proxy", { NULL }, ctl_cmd_proxy, "proxy show [--json]",
	  "the effective proxy settings from shird.conf (no secrets)" },

	/* authoring (ctl_author.c) */
	{ "author", { NULL }, ctl_cmd_author,
	  "author OP [--local|--service-key KEY] [--json] [REQUEST|-]",
	  "send an authoring request (testConnection, browse, schema, preview) to a node" },

	/* copy jobs (ctl_jobs.c) */
	{ "jobs", { NULL }, ctl_cmd_jobs, "jobs [--json]",
	  "the copy jobs the running shird works on: attempt, rows, bytes, time, source and sink" },

	/* registration, credentials, backups, dmgcmd actions (ctl_admin.c, ctl_dmg.c, ctl_net.c, ctl_register.c) */
	{ "register-node", { "-rn", "-RegisterNewNode" }, ctl_cmd_register_node,
	  "register-node [--skip-test] KEY|- [NODENAME]", "validate a node key, test the "
	  "connection to its relay, and register (KEY - reads it from stdin)" },
	{ "switch-key", { "-k", "-Key" }, ctl_cmd_switch_key, "switch-key [--skip-test] KEY|-",
	  "switch the node to another key (keeps its node name)" },
	{ "diagnose", { "-ts", "-TroubleShoot" }, ctl_cmd_diagnose,
	  "diagnose [--json] [--endpoint URL]", "walk DNS, proxy, TCP, CONNECT, TLS and the "
	  "relay's listen handshake; print where it breaks" },
	{ "service-urls", { NULL }, ctl_cmd_service_urls,
	  "service-urls [--resolve] [--json | --format text|json|nftables|iptables|ip6tables]",
	  "hosts and ports this node needs; --resolve gives firewall allowlist rules" },
	{ "credentials", { NULL }, ctl_cmd_credentials, "credentials list|set NAME|delete NAME",
	  "credentials stored on the node; the value is read from stdin or a prompt" },
	{ "backup", { "-gbf", "-GenerateBackupFile", "-ibf", "-ImportBackupFile" }, ctl_cmd_backup,
	  "backup create|import FILE", "registration, credentials and settings, encrypted "
	  "under a password (stdin or prompt)" },
	{ "nodes", { NULL }, ctl_cmd_nodes, "nodes [--json]",
	  "the runtime's nodes this node hears (sync digests): name, version, credentials" },
	{ "cluster", { NULL }, ctl_cmd_cluster,
	  "cluster init|export-key FILE|join FILE|request FILE|grant REQUEST FILE|status [--json]",
	  "the runtime data key the nodes of a runtime share to sync credentials; sync status" },
	{ "remote-access", { "-era", "-EnableRemoteAccess", "-dra", "-DisableRemoteAccess" },
	  ctl_cmd_remote_access, "remote-access enable --port N [--cert F]|disable|show|check H:P",
	  "node-to-node TLS: credential sync direct between the nodes (through the relay otherwise)" },
	{ "remote-access-in-container", { "-eraic", "-EnableRemoteAccessInContainer" },
	  ctl_cmd_remote_access, "-eraic PORT [CERT]",
	  "as -era (a container needs no different setting here)" },
	{ "start", { "-s", "-Start" }, ctl_cmd_service, "start",
	  "start shird (systemd when present, else in the background)" },
	{ "stop", { "-t", "-Stop" }, ctl_cmd_service, "stop",
	  "stop shird (systemd when present, else SIGTERM and wait for the drain)" },
	{ "restart", { "-r", "-Restart" }, ctl_cmd_service, "restart", "stop, then start shird" },
	{ "local-machine-access", { "-elma", "-EnableLocalMachineAccess", "-dlma",
	  "-DisableLocalMachineAccess" }, ctl_cmd_local_machine_access,
	  "local-machine-access enable|disable|show", "stores on this machine itself" },
	{ "local-folder-path-validation", { "-EnableLocalFolderPathValidation",
	  "-DisableLocalFolderPathValidation" }, ctl_cmd_local_folder_path_validation,
	  "local-folder-path-validation enable|disable|show",
	  "file stores must lie inside the allowed folders" },
	{ "allowed-folders", { NULL }, ctl_cmd_allowed_folders,
	  "allowed-folders list|add DIR|remove DIR|set DIRS", "folders file stores may use" },
	{ "switch-service-account", { "-ssa", "-SwitchServiceAccount" }, ctl_cmd_service_account,
	  "switch-service-account", "explains how to change the user shird runs as" },
	{ "auto-update", { "-tonau", "-TurnOnAutoUpdate", "-toffau", "-TurnOffAutoUpdate" },
	  ctl_cmd_auto_update, "auto-update", "explains: updates come from the package manager" },
	{ "upgrade-service", { "-sus", "-StartUpgradeService", "-tus", "-StopUpgradeService" },
	  ctl_cmd_auto_update, "upgrade-service", "explains: there is no upgrade service" },
	{ "proxy set", { NULL }, ctl_cmd_proxy_set,
	  "proxy set none|system [--user U]|custom --address H --port P [--user U]|pac URL",
	  "proxy settings, applied with a reload; the password from stdin or a prompt" },

	{ "version", { NULL }, ctl_cmd_version, "version", "print the version" },
	{ "help", { NULL }, ctl_cmd_help, "help", "this list" },
};
#define CTL_NCMDS (sizeof ctl_cmds / sizeof ctl_cmds[0])

static void
ctl_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: shirctl [--socket PATH] [--conf FILE] COMMAND [ARGS]\n\n"
	    "Global options:\n"
	    "  --socket PATH   shird's control socket (default: $SHIR_SOCKET, else\n"
	    "                  node.control_socket of shird.conf)\n"
	    "  --conf FILE     shird.conf to read (default %s)\n\n"
	    "Commands:\n", SHIRD_CONF_DEFAULT);
	for (i = 0; i < CTL_NCMDS; i++) {
		const struct ctl_cmd *c = &ctl_cmds[i];
		char al[256] = "";
		size_t j, l = 0;

		for (j = 0; j < 4 && c->aliases[j]; j++)
			l += (size_t)snprintf(al + l, sizeof al - l, "%s%s", j ? ", " : "\n      also ",
			    c->aliases[j]);
		if (strlen(c->usage) > 34)
			fprintf(f, "  %s\n  %-34s %s%s\n", c->usage, "", c->help, al);
		else
			fprintf(f, "  %-34s %s%s\n", c->usage, c->help, al);
	}
	fprintf(f, "\nSee shirctl(8).\n");
}

int
ctl_has_flag(int argc, char **argv, const char *flag)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return 1;
	return 0;
}

void
ctl_die_usage(const char *cmd, const char *usage)
{
	fprintf(stderr, "usage: shirctl %s\n", usage);
	exit(2);
}

static int
ctl_cmd_version(struct ctl_ctx *ctx, int argc, char **argv)
{
	printf("shirctl %s\n", PACKAGE_VERSION);
	return 0;
}

static int
ctl_cmd_help(struct ctl_ctx *ctx, int argc, char **argv)
{
	ctl_usage(stdout);
	return 0;
}

const char *
ctl_json_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void
ctl_print_duration(double s)
{
	long t = s >= 0 && s < 1e12 ? (long)s : 0;	/* NaN (missing) shows as 0s */

	if (t >= 86400)
		printf("%ldd %ldh %ldm", t / 86400, (t % 86400) / 3600, (t % 3600) / 60);
	else if (t >= 3600)
		printf("%ldh %ldm %lds", t / 3600, (t % 3600) / 60, t % 60);
	else if (t >= 60)
		printf("%ldm %lds", t / 60, t % 60);
	else
		printf("%lds", t);
}

int
ctl_request_exit_code(const struct shir_error *err)
{
	return err->code == SHIR_ENOENT || err->code == SHIR_ECONNREFUSED ?
	    CTL_STATUS_NOT_RUNNING : CTL_STATUS_ERROR;
}

static int
ctl_status_code(const cJSON *o)
{
	const char *st = ctl_json_str(o, "status");

	if (strcmp(st, "Online") == 0)
		return CTL_STATUS_ONLINE;
	if (strcmp(st, "Limited") == 0)
		return CTL_STATUS_LIMITED;
	if (strcmp(st, "Offline") == 0)
		return CTL_STATUS_OFFLINE;
	if (strcmp(st, "NeedsRegistration") == 0)
		return CTL_STATUS_NEEDS_REGISTRATION;
	if (strcmp(st, "Starting") == 0)
		return CTL_STATUS_STARTING;
	return CTL_STATUS_ERROR;
}

int
ctl_cmd_status(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_response resp;
	struct shir_error err;
	cJSON *o, *chs, *ch;
	int json = ctx->json || ctl_has_flag(argc, argv, "--json"), rc;
	const char *conf_err = ctl_client_conf_error();

	if (argc > 2 || (argc == 2 && !json))
		ctl_die_usage("status", "status [--json]");
	if (conf_err != NULL)	/* say it, whatever shird answers: the next start would fail */
		fprintf(stderr, "shirctl: warning: the configuration does not load; a running shird "
		    "keeps its last good one, a restart would fail:\n%s\nshirctl: asking the control "
		    "socket %s\n", conf_err, ctx->socket);
	if (ctl_client_request(ctx->socket, "GET", "/v1/node", NULL, &resp, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return ctl_request_exit_code(&err);
	}
	o = cJSON_Parse(resp.body);
	if (o == NULL || resp.status != 200) {
		if (json)
			printf("%s\n", resp.body);
		else
			fprintf(stderr, "shirctl: shird answered %ld: %s\n", resp.status, resp.body);
		cJSON_Delete(o);
		ctl_response_clear(&resp);
		return CTL_STATUS_ERROR;
	}
	rc = ctl_status_code(o);
	if (json) {
		printf("%s\n", resp.body);
		cJSON_Delete(o);
		ctl_response_clear(&resp);
		return rc;
	}
	printf("Node:     %s\n", ctl_json_str(o, "name"));
	printf("Status:   %s\n", ctl_json_str(o, "status"));
	if (*ctl_json_str(o, "statusDetail"))
		printf("Detail:   %s\n", ctl_json_str(o, "statusDetail"));
	printf("Version:  %s\n", ctl_json_str(o, "version"));
	printf("Uptime:   ");
	ctl_print_duration(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "uptimeSeconds")));
	printf("\nConfig:   %s\n", ctl_json_str(o, "configFile"));
	printf("Proxy:    %s\n", ctl_json_str(o, "proxyMode"));
	if (*ctl_json_str(cJSON_GetObjectItem(o, "proxy"), "pacError"))
		printf("PAC:      %s\n", ctl_json_str(cJSON_GetObjectItem(o, "proxy"), "pacError"));
	chs = cJSON_GetObjectItem(o, "channels");
	if (cJSON_GetArraySize(chs) == 0) {
		printf("Channels: none\n");
	} else {
		printf("Channels:\n");
		cJSON_ArrayForEach(ch, chs) {
			/* self-contained connections say so (kind, transport) */
			int sc = strcmp(ctl_json_str(ch, "kind"), "selfContained") == 0;

			printf("  %-14s %-13s %s %s%s%s%s\n", ctl_json_str(ch, "name"),
			    ctl_json_str(ch, "state"), ctl_json_str(ch, "endpoint"),
			    ctl_json_str(ch, "path"), sc ? " [self-contained, " : "",
			    sc ? ctl_json_str(ch, "transport") : "", sc ? "]" : "");
			if (*ctl_json_str(ch, "lastError"))
				printf("      %s\n", ctl_json_str(ch, "lastError"));
		}
		{
			const cJSON *m = cJSON_GetObjectItem(o, "selfContained");

			if (cJSON_IsTrue(cJSON_GetObjectItem(m, "configured")))
				printf("Self-contained interactive authoring: %s (the runtime's switch on "
				    "the relay)\n", cJSON_IsTrue(cJSON_GetObjectItem(m, "mode")) ? "on" :
				    "off");
		}
	}
	cJSON_Delete(o);
	ctl_response_clear(&resp);
	return rc;
}

int
ctl_cmd_reload(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_response resp;
	struct shir_error err;
	cJSON *o, *e;
	int rc;

	if (argc != 1)
		ctl_die_usage("reload", "reload");
	if (ctl_client_request(ctx->socket, "POST", "/v1/node/reload", "{}", &resp, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	if (resp.status == 200) {
		printf("reloaded\n");
		rc = 0;
	} else {
		o = cJSON_Parse(resp.body);
		e = cJSON_GetObjectItem(o, "error");
		fprintf(stderr, "shirctl: reload refused, the old configuration stays:\n%s\n",
		    e ? ctl_json_str(e, "message") : resp.body);
		cJSON_Delete(o);
		rc = 1;
	}
	ctl_response_clear(&resp);
	return rc;
}

/* Commands are one word ("status"), a dmgcmd flag (case-insensitive), or two
 * words ("proxy set"), which win over a one-word command of the same start. */
static const struct ctl_cmd *
ctl_find(int argc, char **argv, int i)
{
	const char *name = argv[i];
	size_t k, j;

	for (k = 0; k < CTL_NCMDS; k++) {
		const char *n = ctl_cmds[k].name, *sp = strchr(n, ' ');

		if (sp != NULL && i + 1 < argc && strlen(name) == (size_t)(sp - n) &&
		    strncmp(n, name, (size_t)(sp - n)) == 0 && strcmp(sp + 1, argv[i + 1]) == 0)
			return &ctl_cmds[k];
	}
	for (k = 0; k < CTL_NCMDS; k++) {
		if (strcmp(ctl_cmds[k].name, name) == 0)
			return &ctl_cmds[k];
		for (j = 0; j < 4 && ctl_cmds[k].aliases[j]; j++)
			if (strcasecmp(ctl_cmds[k].aliases[j], name) == 0)
				return &ctl_cmds[k];
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct ctl_ctx ctx = { NULL, NULL, 0 };
	const char *sock_opt = NULL;
	const struct ctl_cmd *cmd;
	int i = 1, rc;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			sock_opt = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc) {
			ctx.shird_conf = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--json") == 0) {
			ctx.json = 1;
			i++;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			ctl_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			return ctl_cmd_version(&ctx, 0, NULL);
		} else if (ctl_find(argc, argv, i) != NULL) {
			break;	/* a dmgcmd-style flag command such as -rn */
		} else {
			fprintf(stderr, "shirctl: unknown option %s\n", argv[i]);
			ctl_usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		ctl_usage(stderr);
		return 2;
	}
	cmd = ctl_find(argc, argv, i);
	if (cmd == NULL) {
		fprintf(stderr, "shirctl: unknown command %s (see shirctl --help)\n", argv[i]);
		return 2;
	}
	ctx.socket = ctl_client_socket(sock_opt, ctx.shird_conf);
	/* shirctl prints its own results; the library's info lines would be noise */
	log_set_level(LOG_LVL_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmd->fn(&ctx, argc - i, argv + i);
	curl_global_cleanup();
	return rc;
}
