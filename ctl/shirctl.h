/* shirctl.h: commands of shirctl. Each command lives in its own ctl_*.c file
 * (or in shirctl.c for the basic ones) and is listed once in the table in
 * shirctl.c, with its dmgcmd flags as aliases. */
#ifndef SHIR_SHIRCTL_H
#define SHIR_SHIRCTL_H

struct cJSON;
struct shir_error;

struct ctl_ctx {
	const char *socket;	/* control socket path */
	const char *shird_conf;	/* shird.conf path */
	int json;		/* --json given before the command */
};

/* A command gets argv starting at its own name. Returns the exit code. */
typedef int (*ctl_cmd_fn)(struct ctl_ctx *ctx, int argc, char **argv);

/* status's exit codes, for scripts (shirctl(8)) */
enum {
	CTL_STATUS_ONLINE = 0,
	CTL_STATUS_ERROR = 1,		/* shird answered an error, or the socket is not ours to use */
	CTL_STATUS_USAGE = 2,
	CTL_STATUS_LIMITED = 3,
	CTL_STATUS_OFFLINE = 4,
	CTL_STATUS_NEEDS_REGISTRATION = 5,
	CTL_STATUS_STARTING = 6,
	CTL_STATUS_NOT_RUNNING = 7,	/* no shird listens on the control socket */
};
int ctl_cmd_status(struct ctl_ctx *ctx, int argc, char **argv);
/* The exit code for a request to shird that failed (err from ctl_client_request):
 * CTL_STATUS_NOT_RUNNING when no shird listens, else CTL_STATUS_ERROR. */
int ctl_request_exit_code(const struct shir_error *err);
/* A string member of o, or "" (never NULL). */
const char *ctl_json_str(const struct cJSON *o, const char *k);
int ctl_cmd_reload(struct ctl_ctx *ctx, int argc, char **argv);
/* ctl_node.c */
/* One request to shird whose answer must be 200 JSON: *out is the parsed object
 * (and *raw the body when raw is not NULL); else a message on stderr and the
 * exit code to return. */
int ctl_node_get(struct ctl_ctx *ctx, const char *method, const char *path, const char *body,
    struct cJSON **out, char **raw);
int ctl_cmd_get_ip(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_send_logs(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_logs(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_ui(struct ctl_ctx *ctx, int argc, char **argv);
/* proxy (proxy/ctl_proxy.c) */
int ctl_cmd_proxy(struct ctl_ctx *ctx, int argc, char **argv);

/* admin (ctl_admin.c, ctl_dmg.c, ctl_net.c) */
int ctl_cmd_register_node(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_switch_key(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_diagnose(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_service_urls(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_credentials(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_backup(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_cluster(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_nodes(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_remote_access(struct ctl_ctx *ctx, int argc, char **argv);
/* remote-access check HOST:PORT (ctl_racheck.c) */
struct conf;
int ctl_remote_access_check(const struct conf *c, const char *addr);
int ctl_cmd_service(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_local_machine_access(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_local_folder_path_validation(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_allowed_folders(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_service_account(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_auto_update(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_proxy_set(struct ctl_ctx *ctx, int argc, char **argv);

/* authoring (ctl_author.c) */
int ctl_cmd_author(struct ctl_ctx *ctx, int argc, char **argv);
/* copy jobs the running shird works on (ctl_jobs.c) */
int ctl_cmd_jobs(struct ctl_ctx *ctx, int argc, char **argv);

/* Helpers for commands. */
int ctl_has_flag(int argc, char **argv, const char *flag);
void ctl_die_usage(const char *cmd, const char *usage);

#endif
