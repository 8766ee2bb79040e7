#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "node/conf.h"
#include "common/log.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define O(f) offsetof(struct conf, f)

static const struct conf_key conf_table[] = {
	{ "node", "name", CONF_T_STR, 0, 0, NULL, NULL, true, O(node_name),
	  "node name shown in status (default: the host name)" },
	{ "node", "state_dir", CONF_T_PATH, 0, 0, NULL, LOCALSTATEDIR "/lib/shir", false, O(state_dir),
	  "registration, machine key and credentials" },
	{ "node", "control_socket", CONF_T_PATH, 0, 0, NULL, RUNSTATEDIR "/shir/shird.sock", false,
	  O(control_socket), "unix socket for shirctl (mode 0660)" },
	{ "node", "concurrent_jobs", CONF_T_INT, 0, 256, NULL, "0", false, O(concurrent_jobs),
	  "worker pool size; 0 derives it from cores and memory" },
	{ "node", "queue_size", CONF_T_INT, 1, 100000, NULL, "64", true, O(queue_size),
	  "requests waiting for a worker before 429 Busy" },
	{ "node", "operation_timeout", CONF_T_INT, 1, 55, NULL, "45", true, O(operation_timeout),
	  "seconds an authoring operation may take" },
	{ "node", "request_memory_limit", CONF_T_INT, 8, 4096, NULL, "64", true,
	  O(request_memory_limit), "MiB one authoring request may hold of a store's answer "
	  "(over it: 413 ResultTooLarge)" },
	{ "node", "shutdown_timeout", CONF_T_INT, 1, 300, NULL, "10", true, O(shutdown_timeout),
	  "seconds to drain on SIGTERM before exiting" },
	{ "node", "remote_access", CONF_T_BOOL, 0, 0, NULL, "false", true, O(remote_access),
	  "node-to-node TLS: credential sync direct between the runtime's nodes (docs/ha.md)" },
	{ "node", "remote_access_port", CONF_T_INT, 1, 65535, NULL, "8060", true,
	  O(remote_access_port), "TCP port of node-to-node communication" },
	{ "node", "remote_access_cert", CONF_T_PATH, 0, 0, NULL, NULL, true, O(remote_access_cert),
	  "PEM certificate (and key) for node-to-node TLS" },
	{ "node", "remote_access_listen", CONF_T_STR, 0, 0, NULL, NULL, true,
	  O(remote_access_listen), "address node-to-node TLS listens on (default: all)" },
	{ "node", "remote_access_address", CONF_T_STR, 0, 0, NULL, NULL, true,
	  O(remote_access_address), "host[:port] the runtime's other nodes reach this node at "
	  "(default: the host name and remote_access_port)" },
	{ "node", "inactive_after", CONF_T_INT, 1, 86400, NULL, "120", true, O(inactive_after),
	  "seconds this node's credentials may differ from most of its runtime's nodes before it "
	  "shows Inactive (docs/ha.md)" },
	{ "admin", "status_page", CONF_T_STR, 0, 0, NULL, NULL, false, O(admin_status_page),
	  "loopback host:port of the local status page (shirctl ui); unset: off" },
	{ "admin", "metrics", CONF_T_STR, 0, 0, NULL, NULL, false, O(admin_metrics),
	  "loopback host:port serving GET /metrics to Prometheus; unset: off" },
	{ "log", "level", CONF_T_ENUM, 0, 0, "error|warn|info|debug", "info", true, O(log_level),
	  "log verbosity" },
	{ "log", "file", CONF_T_STR, 0, 0, NULL, "-", true, O(log_file),
	  "log file, or - for standard error" },
	{ "security", "local_folder_path_validation", CONF_T_BOOL, 0, 0, NULL, "true", true,
	  O(local_folder_path_validation), "file stores must lie inside allowed_folders" },
	{ "security", "allowed_folders", CONF_T_STR, 0, 0, NULL, "", true, O(allowed_folders),
	  "colon-separated absolute folders that file stores may use" },
	{ "security", "writable_folders", CONF_T_STR, 0, 0, NULL, "", false, O(writable_folders),
	  "colon-separated absolute folders copy jobs may write files into (none by default)" },
	{ "node", "copy_jobs", CONF_T_INT, 0, 16, NULL, "0", false, O(copy_jobs),
	  "copy jobs run at once, leased from the relay (0: none)" },
	{ "node", "copy_ca_file", CONF_T_PATH, 0, 0, NULL, NULL, false, O(copy_ca_file),
	  "CA bundle to verify cloud storage (Azure Blob) in copy jobs (default: the system's)" },
	{ "security", "local_machine_access", CONF_T_BOOL, 0, 0, NULL, "false", true,
	  O(local_machine_access), "allow stores on this machine (loopback, own addresses)" },
	{ "proxy", "mode", CONF_T_ENUM, 0, 0, "none|system|custom", "none", true, O(proxy.mode),
	  "none, system (.NET config files and environment) or custom" },
	{ "proxy", "dotnet_config", CONF_T_PATH, 0, 0, NULL, SYSCONFDIR "/shir/diahost.exe.config", true,
	  O(proxy.dotnet_config), "diahost.exe.config read in system mode" },
	{ "proxy", "dotnet_config_worker", CONF_T_PATH, 0, 0, NULL, SYSCONFDIR "/shir/diawp.exe.config",
	  true, O(proxy.dotnet_config_worker), "diawp.exe.config read in system mode" },
	{ "proxy", "address", CONF_T_STR, 0, 0, NULL, NULL, true, O(proxy.address),
	  "custom proxy host (or http://host, https://host)" },
	{ "proxy", "port", CONF_T_INT, 1, 65535, NULL, "8080", true, O(proxy.port), "custom proxy port" },
	{ "proxy", "user", CONF_T_STR, 0, 0, NULL, NULL, true, O(proxy.user), "custom proxy user" },
	{ "proxy", "password_file", CONF_T_PATH, 0, 0, NULL, NULL, true, O(proxy.password_file),
	  "0600 file holding the proxy password" },
	{ "proxy", "auth", CONF_T_ENUM, 0, 0, "any|basic|digest|ntlm|negotiate", "any", true,
	  O(proxy.auth), "proxy authentication scheme" },
	{ "proxy", "connect_timeout", CONF_T_INT, 1, 120, NULL, "15", true, O(proxy.connect_timeout),
	  "seconds to set up a connection or tunnel" },
	{ "proxy", "ca_file", CONF_T_PATH, 0, 0, NULL, NULL, true, O(proxy.ca_file),
	  "CA bundle to verify an https:// proxy (default: the system's)" },
	{ "proxy", "wpad_devolution", CONF_T_BOOL, 0, 0, NULL, "false", true,
	  O(proxy.wpad_devolution), "system mode, autoDetect: also wpad.<parent domain> of this "
	  "machine's domain, never beyond its registrable domain" },
	{ "proxy", "pac_url", CONF_T_STR, 0, 0, NULL, NULL, true, O(proxy.pac_url),
	  "custom mode: a PAC file URL (http:, https:, file:) instead of address" },
	{ "relay", "endpoint", CONF_T_STR, 0, 0, NULL, NULL, true, O(relay_endpoint),
	  "relay URL, wss://host:port or ws://127.0.0.1:port" },
	{ "relay", "path", CONF_T_STR, 0, 0, NULL, NULL, true, O(relay_path), "hybrid connection name" },
	{ "relay", "key_name", CONF_T_STR, 0, 0, NULL, NULL, true, O(relay_key_name), "SAS rule name" },
	{ "relay", "key_file", CONF_T_PATH, 0, 0, NULL, NULL, true, O(relay_key_file),
	  "0600 file holding the SAS key" },
	{ "relay", "ca_file", CONF_T_PATH, 0, 0, NULL, NULL, true, O(relay_ca_file),
	  "CA bundle to verify the relay's certificate" },
	{ "relay", "ping_interval", CONF_T_INT, 5, 600, NULL, "30", true, O(relay_ping_interval),
	  "seconds between WebSocket pings on a control channel" },
	{ "relay", "tls_pin", CONF_T_STR, 0, 0, NULL, NULL, true, O(relay_tls_pin),
	  "optional pin of the relay certificate's key: sha256/<base64 SPKI hash>" },
	{ "relay", "token_lifetime", CONF_T_INT, 10, 86400, NULL, "3600", true,
	  O(relay_token_lifetime), "seconds a SAS token made by the node is valid (renewed well before)" },
	{ "relay", "connect_timeout", CONF_T_INT, 1, 120, NULL, "20", true, O(relay_connect_timeout),
	  "seconds to connect and upgrade a channel or rendezvous" },
	{ "relay", "request_timeout", CONF_T_INT, 1, 59, NULL, "57", true, O(relay_request_timeout),
	  "seconds before the node answers a relayed request itself (the relay allows 60)" },
	{ "relay", "test_routes", CONF_T_BOOL, 0, 0, NULL, "false", false, O(relay_test_routes),
	  "TESTING ONLY: serve GET /v1/test/blob?bytes=N (a large response) to every channel" },
	{ "selfcontained", "endpoint", CONF_T_STR, 0, 0, NULL, NULL, true, O(sc_endpoint),
	  "the relay's service endpoint for self-contained connections, wss://host:port (unset: none)" },
	{ "selfcontained", "connections", CONF_T_INT, 1, 4, NULL, "2", true, O(sc_connections),
	  "self-contained connections the node keeps open" },
};

#define CONF_NKEYS (sizeof conf_table / sizeof conf_table[0])
#define CONF_LINE_MAX 200	/* libinih's INI_MAX_LINE on Debian */

const struct conf_key *
conf_keys(size_t *n)
{
	*n = CONF_NKEYS;
	return conf_table;
}

static int
conf_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

static int
conf_parse_enum(const char *choices, const char *v, int *out)
{
	const char *p = choices;
	size_t vl = strlen(v);
	int i = 0;

	while (*p) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);

		if (l == vl && strncasecmp(p, v, l) == 0) {
			*out = i;
			return 0;
		}
		i++;
		p += l + (bar ? 1 : 0);
	}
	return -1;
}

static int
conf_parse_int(const char *v, long min, long max, int *out)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || l < min || l > max)
		return -1;
	*out = (int)l;
	return 0;
}

/* Stores text v into key k of c; on error writes a sentence into why. */
static int
conf_set(struct conf *c, const struct conf_key *k, const char *v, char *why, size_t whylen)
{
	char *base = (char *)c;

	switch (k->type) {
	case CONF_T_PATH:
		if (*v != '\0' && *v != '/') {
			snprintf(why, whylen, "%s.%s must be an absolute path, not %s", k->section,
			    k->name, log_q(v));
			return -1;
		}
		/* FALLTHROUGH */
	case CONF_T_STR: {
		char **slot = (char **)(base + k->offset), *dup = strdup(v);

		if (dup == NULL) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		free(*slot);
		*slot = dup;
		return 0;
	}
	case CONF_T_INT:
		if (conf_parse_int(v, k->min, k->max, (int *)(base + k->offset)) != 0) {
			snprintf(why, whylen, "%s.%s must be a whole number from %ld to %ld, not %s",
			    k->section, k->name, k->min, k->max, log_q(v));
			return -1;
		}
		return 0;
	case CONF_T_BOOL:
		if (conf_parse_bool(v, (bool *)(base + k->offset)) != 0) {
			snprintf(why, whylen, "%s.%s must be true or false, not %s", k->section,
			    k->name, log_q(v));
			return -1;
		}
		return 0;
	case CONF_T_ENUM:
		if (conf_parse_enum(k->choices, v, (int *)(base + k->offset)) != 0) {
			snprintf(why, whylen, "%s.%s must be one of %s, not %s", k->section, k->name,
			    k->choices, log_q(v));
			return -1;
		}
		return 0;
	}
	return -1;
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_table[i];

		if (k->type == CONF_T_STR || k->type == CONF_T_PATH)
			free(*(char **)((char *)c + k->offset));
	}
	for (i = 0; i < c->nforwards; i++)
		free(c->forwards[i].name), free(c->forwards[i].host);
	free(c->forwards);
	free(c->path);
	free(c);
}

struct conf *
conf_new_defaults(void)
{
	struct conf *c = calloc(1, sizeof *c);
	char why[256];
	size_t i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < CONF_NKEYS; i++) {
		if (conf_table[i].def != NULL &&
		    conf_set(c, &conf_table[i], conf_table[i].def, why, sizeof why) != 0) {
			conf_free(c);
			return NULL;
		}
	}
	return c;
}

/* --- loading --------------------------------------------------------------- */

struct conf_parse {
	const char *name;
	const char *buf;
	size_t len, pos;
	int line;		/* line number of the line inih is handling */
	struct conf *c;
	struct shir_error *err;
	int nerr;
	int seen_line[sizeof conf_table / sizeof conf_table[0]];
};

/* An fgets over the buffer that counts lines, strips leading blanks (so an
 * indented key is a key, not a libinih continuation line) and reports lines
 * that are too long instead of letting libinih split them. */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_parse *p = stream;
	size_t start, end, n;

	if (p->pos >= p->len)
		return NULL;
	start = p->pos;
	end = start;
	while (end < p->len && p->buf[end] != '\n')
		end++;
	p->pos = end < p->len ? end + 1 : end;
	p->line++;
	while (start < end && (p->buf[start] == ' ' || p->buf[start] == '\t'))
		start++;
	n = end - start;
	if (memchr(p->buf + start, '\0', n) != NULL) {
		shir_error_append(p->err, SHIR_ECONFIG, "%s:%d: the line contains a NUL byte",
		    p->name, p->line);
		p->nerr++;
		n = 0;
	} else if (n + 2 > (size_t)num) {
		shir_error_append(p->err, SHIR_ECONFIG,
		    "%s:%d: the line is too long (at most %d characters)", p->name, p->line,
		    num - 2);
		p->nerr++;
		n = 0;
	}
	memcpy(str, p->buf + start, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static int
conf_add_forward(struct conf_parse *p, const char *name, const char *v)
{
	struct conf *c = p->c;
	struct conf_forward *nf;
	const char *colon = strrchr(v, ':');
	char host[256];
	size_t hl, i;
	int port;

	for (i = 0; name[i]; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.')) {
			shir_error_append(p->err, SHIR_ECONFIG,
			    "%s:%d: forward name %s may hold only letters, digits, '-', '_' and '.'",
			    p->name, p->line, log_q(name));
			return -1;
		}
	}
	for (i = 0; i < c->nforwards; i++) {
		if (strcmp(c->forwards[i].name, name) == 0) {
			shir_error_append(p->err, SHIR_ECONFIG, "%s:%d: forward %s is defined twice",
			    p->name, p->line, log_q(name));
			return -1;
		}
	}
	if (colon == NULL || colon == v || conf_parse_int(colon + 1, 1, 65535, &port) != 0) {
		shir_error_append(p->err, SHIR_ECONFIG,
		    "%s:%d: forward %s must be host:port with a port from 1 to 65535, not %s",
		    p->name, p->line, name, log_q(v));
		return -1;
	}
	hl = (size_t)(colon - v);
	if (v[0] == '[' && hl >= 2 && v[hl - 1] == ']')
		v++, hl -= 2;
	if (hl >= sizeof host) {
		shir_error_append(p->err, SHIR_ECONFIG, "%s:%d: forward %s: host name too long",
		    p->name, p->line, name);
		return -1;
	}
	memcpy(host, v, hl);
	host[hl] = '\0';
	nf = realloc(c->forwards, (c->nforwards + 1) * sizeof *nf);
	if (nf == NULL)
		return -1;
	c->forwards = nf;
	nf[c->nforwards].name = strdup(name);
	nf[c->nforwards].host = strdup(host);
	nf[c->nforwards].port = port;
	if (nf[c->nforwards].name == NULL || nf[c->nforwards].host == NULL) {
		free(nf[c->nforwards].name), free(nf[c->nforwards].host);
		return -1;
	}
	c->nforwards++;
	return 0;
}

static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = user;
	char why[512];
	size_t i;
	int known_section = 0;

	if (strcmp(section, "forward") == 0) {
		if (conf_add_forward(p, name, value) != 0)
			p->nerr++;
		return 1;
	}
	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_table[i];

		if (strcmp(k->section, section) != 0)
			continue;
		known_section = 1;
		if (strcmp(k->name, name) != 0)
			continue;
		if (p->seen_line[i] != 0) {
			shir_error_append(p->err, SHIR_ECONFIG,
			    "%s:%d: %s.%s is set twice (first at line %d)", p->name, p->line,
			    section, name, p->seen_line[i]);
			p->nerr++;
			return 1;
		}
		p->seen_line[i] = p->line;
		if (conf_set(p->c, k, value, why, sizeof why) != 0) {
			shir_error_append(p->err, SHIR_ECONFIG, "%s:%d: %s", p->name, p->line, why);
			p->nerr++;
		}
		return 1;
	}
	if (*section == '\0')
		shir_error_append(p->err, SHIR_ECONFIG,
		    "%s:%d: %s is outside any section; put it under [node], [log], [security], "
		    "[proxy], [relay] or [forward]", p->name, p->line, log_q(name));
	else if (!known_section)
		shir_error_append(p->err, SHIR_ECONFIG,
		    "%s:%d: unknown section [%s]; the sections are node, log, security, proxy, "
		    "relay and forward", p->name, p->line, section);
	else
		shir_error_append(p->err, SHIR_ECONFIG, "%s:%d: unknown key %s in [%s]", p->name,
		    p->line, log_q(name), section);
	p->nerr++;
	return 1;
}

/* Checks that need several keys at once. */
static void
conf_validate(struct conf_parse *p)
{
	struct conf *c = p->c;

	if (c->proxy.mode == PROXY_MODE_CUSTOM && (c->proxy.address == NULL || !*c->proxy.address) &&
	    (c->proxy.pac_url == NULL || !*c->proxy.pac_url)) {
		shir_error_append(p->err, SHIR_ECONFIG,
		    "%s: proxy.mode is custom but neither proxy.address nor proxy.pac_url is set",
		    p->name);
		p->nerr++;
	}
	if (c->allowed_folders != NULL && *c->allowed_folders) {
		const char *s = c->allowed_folders;

		while (*s) {
			size_t l = strcspn(s, ":");

			if (l > 0 && *s != '/') {
				shir_error_append(p->err, SHIR_ECONFIG,
				    "%s: security.allowed_folders: %.*s is not an absolute path",
				    p->name, (int)l, s);
				p->nerr++;
			}
			s += l + (s[l] == ':');
		}
	}
}

static int
conf_load_buffer_partial(const char *name, const char *buf, size_t len, struct conf **out,
    struct conf **partial, struct shir_error *err)
{
	struct conf_parse *p;
	int r, rc = 0;

	*out = NULL;
	shir_error_clear(err);
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	p->name = name;
	p->buf = buf;
	p->len = len;
	p->err = err;
	p->c = conf_new_defaults();
	if (p->c == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	r = ini_parse_stream(conf_reader, p, conf_handler, p);
	if (r > 0) {
		/* The handler never refuses a line, so r is the first line that
		 * libinih itself could not parse. */
		shir_error_append(err, SHIR_ECONFIG,
		    "%s:%d: syntax error: expected [section], key = value, or a ; or # comment",
		    name, r);
		p->nerr++;
	} else if (r < 0) {
		shir_error_append(err, SHIR_ECONFIG, "%s: could not be parsed", name);
		p->nerr++;
	}
	if (p->nerr == 0)
		conf_validate(p);
	if (p->nerr > 0) {
		rc = SHIR_ECONFIG;
		if (partial != NULL) {	/* what the good lines said */
			*partial = p->c;
			p->c = NULL;
		}
		goto out;
	}
	if ((p->c->path = strdup(name)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	p->c->proxy.source = p->c->path;
	*out = p->c;
	p->c = NULL;
out:
	if (p != NULL)
		conf_free(p->c);
	free(p);
	return rc;
}

int
conf_load_buffer(const char *name, const char *buf, size_t len, struct conf **out,
    struct shir_error *err)
{
	return conf_load_buffer_partial(name, buf, len, out, NULL, err);
}

static int
conf_load_file_partial_(const char *path, struct conf **out, struct conf **partial,
    struct shir_error *err)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc;

	*out = NULL;
	f = fopen(path, "r");
	if (f == NULL)
		return shir_error_set(err, errno == ENOENT ? SHIR_ENOENT : SHIR_EIO,
		    "%s: cannot open: %s", path, strerror(errno));
	for (;;) {
		size_t n;

		if (cap - len < 4096) {
			char *nb;

			if (cap > 1024 * 1024) {
				rc = shir_error_set(err, SHIR_ETOOBIG,
				    "%s: larger than 1 MiB; this is not a shird.conf", path);
				goto out;
			}
			nb = realloc(buf, cap + 8192);
			if (nb == NULL) {
				rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
				goto out;
			}
			buf = nb;
			cap += 8192;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		rc = shir_error_set(err, SHIR_EIO, "%s: read error", path);
		goto out;
	}
	rc = conf_load_buffer_partial(path, buf, len, out, partial, err);
out:
	if (f != NULL)
		fclose(f);
	free(buf);
	return rc;
}

int
conf_load_file(const char *path, struct conf **out, struct shir_error *err)
{
	return conf_load_file_partial_(path, out, NULL, err);
}

int
conf_load_file_partial(const char *path, struct conf **out, struct conf **partial,
    struct shir_error *err)
{
	*partial = NULL;
	return conf_load_file_partial_(path, out, partial, err);
}

static int
conf_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
conf_keep_unreloadable(struct conf *newc, const struct conf *old, struct shir_error *warn)
{
	size_t i;
	int n = 0;

	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_table[i];
		char *nb = (char *)newc;
		const char *ob = (const char *)old;
		int same;

		if (k->reloadable)
			continue;
		if (k->type == CONF_T_STR || k->type == CONF_T_PATH) {
			char **ns = (char **)(nb + k->offset);
			char *const *os = (char *const *)(ob + k->offset);

			same = conf_str_eq(*ns, *os);
			if (!same) {
				char *dup = *os ? strdup(*os) : NULL;

				free(*ns);
				*ns = dup;
			}
		} else if (k->type == CONF_T_BOOL) {
			same = *(bool *)(nb + k->offset) == *(const bool *)(ob + k->offset);
			*(bool *)(nb + k->offset) = *(const bool *)(ob + k->offset);
		} else {
			same = *(int *)(nb + k->offset) == *(const int *)(ob + k->offset);
			*(int *)(nb + k->offset) = *(const int *)(ob + k->offset);
		}
		if (!same) {
			shir_error_append(warn, SHIR_ECONFIG,
			    "%s.%s cannot change on reload; restart shird to apply it", k->section,
			    k->name);
			n++;
		}
	}
	return n;
}
