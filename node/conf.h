/* conf: shird.conf. INI syntax read by libinih; every key is defined once in
 * the table in conf.c (section, name, type, bounds, default, reloadable).
 *
 * struct conf is plain data on purpose (not opaque): it is built whole by the
 * loader, validated, then swapped in on reload; readers only read it. */
#ifndef SHIR_CONF_H
#define SHIR_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/shir_err.h"
#include "proxy/proxy.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define SHIRD_CONF_DEFAULT SYSCONFDIR "/shir/shird.conf"

struct conf_forward {
	char *name;
	char *host;
	int port;
};

struct conf {
	char *path;		/* the file it was loaded from */
	/* [node] */
	char *node_name;
	char *state_dir;
	char *control_socket;
	int concurrent_jobs;	/* 0 = derived from cores and memory */
	int queue_size;
	int operation_timeout;	/* seconds */
	int request_memory_limit;	/* MiB per authoring request */
	int shutdown_timeout;	/* seconds */
	int inactive_after;	/* seconds: credentials differing from the runtime's majority */
	bool remote_access;	/* node-to-node TLS (node/cluster/peerlink.c) */
	int remote_access_port;
	char *remote_access_cert;
	char *remote_access_listen;	/* NULL: all addresses */
	char *remote_access_address;	/* host[:port] announced to peers; NULL: host name */
	/* [admin] loopback listeners (node/admin/statuspage.c) */
	char *admin_status_page;	/* host:port or NULL */
	char *admin_metrics;		/* host:port or NULL */
	/* [log] */
	int log_level;		/* enum log_level */
	char *log_file;
	/* [security] */
	bool local_folder_path_validation;
	char *allowed_folders;	/* colon-separated absolute paths */
	char *writable_folders;	/* colon-separated: where copy jobs may write files */
	int copy_jobs;		/* copy jobs run at once; 0: the node leases none */
	char *copy_ca_file;	/* CA bundle for cloud storage in copy jobs; NULL: the system's */
	bool local_machine_access;
	/* [proxy] */
	struct proxy_settings proxy;
	/* [relay] (a channel named directly, until registration stores keys) */
	char *relay_endpoint;
	char *relay_path;
	char *relay_key_name;
	char *relay_key_file;
	char *relay_ca_file;
	int relay_ping_interval;
	char *relay_tls_pin;
	int relay_token_lifetime;	/* seconds */
	int relay_connect_timeout;	/* seconds */
	int relay_request_timeout;	/* seconds */
	bool relay_test_routes;
	/* [selfcontained] (docs/self-contained.md) */
	char *sc_endpoint;
	int sc_connections;
	/* [forward] NAME = host:port */
	struct conf_forward *forwards;
	size_t nforwards;
};

enum conf_type { CONF_T_STR, CONF_T_PATH, CONF_T_INT, CONF_T_BOOL, CONF_T_ENUM };

struct conf_key {
	const char *section;
	const char *name;
	enum conf_type type;
	long min, max;		/* CONF_T_INT */
	const char *choices;	/* CONF_T_ENUM: "a|b|c"; the index is stored */
	const char *def;	/* default as text; NULL = unset */
	bool reloadable;
	size_t offset;
	const char *help;
};

const struct conf_key *conf_keys(size_t *n);

struct conf *conf_new_defaults(void);
void conf_free(struct conf *c);

/* Loads and validates; on failure err->msg has one "file:line: message" line
 * per problem and *out is NULL. */
int conf_load_file(const char *path, struct conf **out, struct shir_error *err);
/* Like conf_load_file; on a configuration error (SHIR_ECONFIG) *partial gets
 * what the good lines said, defaults elsewhere, for a tool that must still
 * find the running daemon (shirctl's control socket). Never for running. */
int conf_load_file_partial(const char *path, struct conf **out, struct conf **partial,
    struct shir_error *err);
int conf_load_buffer(const char *name, const char *buf, size_t len, struct conf **out,
    struct shir_error *err);

/* For reload: keys that are not reloadable keep their value from old; each
 * such change is described in warn (one line each). Returns how many. */
int conf_keep_unreloadable(struct conf *newc, const struct conf *old, struct shir_error *warn);


#endif
