/* statuspage: see statuspage.h. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "common/random.h"
#include "node/admin/admin_node.h"
#include "node/admin/credstore.h"
#include "node/admin/registration.h"
#include "node/admin/statuspage.h"
#include "node/api.h"
#include "node/conf.h"
#include "node/node.h"
#include "node/proxy_node.h"
#include "proxy/proxy.h"

#ifndef BINDIR
#define BINDIR "/usr/bin"
#endif

extern const char statuspage_html[], statuspage_js[], statuspage_css[];

#define SP_TOKEN_BYTES 24
#define SP_DIAG_OUT_MAX (256 * 1024)	/* shirctl diagnose's output kept */
#define SP_DIAG_TIMEOUT_S 120
#define SP_LOG_LINES 200

struct sp_diag {
	pid_t pid;
	int fd[2];			/* stdout, stderr of the child; -1 once at EOF */
	struct event *ev[2];
	struct event *ev_timeout;
	struct evbuffer *out[2];
	int timed_out;
};

struct sp_http {
	struct evhttp *http;
	char host[64];
	int port;
};

struct statuspage {
	struct node *node;
	struct sp_http page, metrics;
	char token[SP_TOKEN_BYTES * 2 + 1];
	char token_file[PATH_MAX];
	struct sp_diag *diag;		/* a diagnose running, or NULL */
	cJSON *diag_result;		/* the last one's result */
	unsigned diag_runs;
};

static struct statuspage *sp_the;	/* one node per process */

/* ---- addresses ------------------------------------------------------------- */

int
statuspage_parse_addr(const char *key, const char *v, char *host, size_t hostlen, int *port,
    struct shir_error *err)
{
	const char *colon, *h = v;
	size_t hl;
	char *end;
	long p;
	struct in_addr a4;
	struct in6_addr a6;

	if (v[0] == '[') {
		const char *rb = strchr(v, ']');

		if (rb == NULL || rb[1] != ':')
			goto bad;
		h = v + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= hostlen)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
		goto bad;
	*port = (int)p;
	if (strcmp(host, "localhost") == 0) {
		snprintf(host, hostlen, "127.0.0.1");
		return 0;
	}
	if (inet_pton(AF_INET, host, &a4) == 1) {
		if ((ntohl(a4.s_addr) >> 24) == 127)
			return 0;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return 0;
	} else {
		goto bad;
	}
	return shir_error_set(err, SHIR_ECONFIG, "[admin] %s = %s: not a loopback address; the "
	    "status page and metrics are served on 127.0.0.0/8 or ::1 only (reach them from "
	    "elsewhere through an SSH tunnel or a reverse proxy of your own)", key, v);
bad:
	return shir_error_set(err, SHIR_ECONFIG, "[admin] %s = %s: want host:port on loopback, "
	    "e.g. 127.0.0.1:8062", key, v);
}

int
statuspage_validate(const struct conf *c, struct shir_error *err)
{
	char host[64];
	int port;

	if (c->admin_status_page && *c->admin_status_page &&
	    statuspage_parse_addr("status_page", c->admin_status_page, host, sizeof host, &port,
	    err) != 0)
		return err->code;
	if (c->admin_metrics && *c->admin_metrics &&
	    statuspage_parse_addr("metrics", c->admin_metrics, host, sizeof host, &port, err) != 0)
		return err->code;
	return 0;
}

/* ---- replies ------------------------------------------------------------------ */

static void
sp_send(struct evhttp_request *req, int status, const char *ctype, const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'; script-src 'self'; "
	    "style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; "
	    "form-action 'none'; frame-ancestors 'none'");
	if (b == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add(b, body, len);
	evhttp_send_reply(req, status, status == 200 ? "OK" : status == 202 ? "Accepted" : "Error", b);
	evbuffer_free(b);
}

static void
sp_send_json(struct evhttp_request *req, int status, cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;

	if (text == NULL)
		sp_send(req, 500, "text/plain", "out of memory\n", 14);
	else
		sp_send(req, status, "application/json", text, strlen(text));
	cJSON_free(text);
	cJSON_Delete(o);
}

static void
sp_send_error(struct evhttp_request *req, int status, const char *msg)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", msg);
	sp_send_json(req, status, o);
}

/* ---- the node's API on the page's behalf ---------------------------------- */

static void
sp_api_done(void *arg, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	sp_send(arg, status, ctype && *ctype ? ctype : "application/json", body, len);
}

/* Read-only routes of the control socket. Each answers within api_dispatch
 * (no worker, no I/O), so the evhttp request cannot go away before. */
static void
sp_forward(struct statuspage *sp, struct evhttp_request *req, const char *method,
    const char *target, const char *body)
{
	struct api_request rq;

	memset(&rq, 0, sizeof rq);
	rq.method = method;
	rq.target = target;
	rq.body = body;
	rq.body_len = strlen(body);
	rq.channel = API_CH_LOCAL;
	api_dispatch(node_api(sp->node), &rq, sp_api_done, req, NULL);
}

/* Settings: the effective proxy and why, the folders authoring may use. */
static void
sp_settings(struct statuspage *sp, struct evhttp_request *req)
{
	const struct conf *c = node_conf(sp->node);
	const struct registration *r = admin_node_registration(sp->node);
	struct proxy_config *pc = proxy_node_current(sp->node);
	cJSON *o = cJSON_CreateObject(), *px, *dec, *sec, *fol;
	const char *eps[2];
	size_t i, n = 0;

	cJSON_AddStringToObject(o, "configFile", c->path ? c->path : "");
	cJSON_AddStringToObject(o, "stateDir", c->state_dir);
	cJSON_AddStringToObject(o, "logFile", c->log_file);
	px = cJSON_AddObjectToObject(o, "proxy");
	cJSON_AddStringToObject(px, "mode", proxy_mode_name(c->proxy.mode));
	if (pc != NULL) {
		proxy_config_describe(pc, px);
		cJSON_AddStringToObject(px, "warnings", proxy_config_warnings(pc));
	}
	dec = cJSON_AddArrayToObject(px, "decisions");
	if (r != NULL && r->endpoint)
		eps[n++] = r->endpoint;
	if (c->relay_endpoint && *c->relay_endpoint)
		eps[n++] = c->relay_endpoint;
	for (i = 0; i < n && pc != NULL; i++) {
		struct proxy_decision d;
		cJSON *e = cJSON_CreateObject(), *pl;
		size_t k;
		char url[600];

		snprintf(url, sizeof url, "%s%s", strncmp(eps[i], "ws", 2) == 0 ? "http" : "",
		    eps[i] + (strncmp(eps[i], "ws", 2) == 0 ? 2 : 0));
		cJSON_AddStringToObject(e, "endpoint", eps[i]);
		if (proxy_decide(pc, url, &d) == 0) {
			cJSON_AddBoolToObject(e, "direct", d.direct);
			pl = cJSON_AddArrayToObject(e, "proxies");
			for (k = 0; k < d.nproxies; k++)
				cJSON_AddItemToArray(pl, cJSON_CreateString(d.proxies[k]));
		}
		cJSON_AddStringToObject(e, "reason", d.reason);
		cJSON_AddItemToArray(dec, e);
	}
	sec = cJSON_AddObjectToObject(o, "security");
	cJSON_AddBoolToObject(sec, "localFolderPathValidation", c->local_folder_path_validation);
	cJSON_AddBoolToObject(sec, "localMachineAccess", c->local_machine_access);
	fol = cJSON_AddArrayToObject(sec, "allowedFolders");
	if (c->allowed_folders) {
		const char *p = c->allowed_folders;

		while (*p) {
			const char *e = strchr(p, ':');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			char f[PATH_MAX];

			if (l > 0 && l < sizeof f) {
				memcpy(f, p, l);
				f[l] = '\0';
				cJSON_AddItemToArray(fol, cJSON_CreateString(f));
			}
			p += l + (e ? 1 : 0);
		}
	}
	cJSON_AddStringToObject(o, "statusPage", c->admin_status_page ? c->admin_status_page : "");
	cJSON_AddStringToObject(o, "metrics", c->admin_metrics ? c->admin_metrics : "");
	proxy_config_unref(pc);
	sp_send_json(req, 200, o);
}

/* ---- diagnose: shirctl diagnose --json in a child ------------------------ */

static void
sp_shirctl_path(char *out, size_t len)
{
	char self[PATH_MAX - 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			snprintf(out, len, "%s/shirctl", self);
			if (access(out, X_OK) == 0)
				return;	/* beside shird: a build tree */
		}
	}
	snprintf(out, len, "%s/shirctl", BINDIR);
}

static void
sp_diag_free(struct sp_diag *d)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (d->ev[i])
			event_free(d->ev[i]);
		if (d->fd[i] >= 0)
			close(d->fd[i]);
		if (d->out[i])
			evbuffer_free(d->out[i]);
	}
	if (d->ev_timeout)
		event_free(d->ev_timeout);
	free(d);
}

static char *
sp_evbuffer_str(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void
sp_diag_finish(struct statuspage *sp)
{
	struct sp_diag *d = sp->diag;
	int st = 0, rc;
	char *out = sp_evbuffer_str(d->out[0]), *errs = sp_evbuffer_str(d->out[1]);
	cJSON *o = cJSON_CreateObject(), *rep = out ? cJSON_Parse(out) : NULL;
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;

	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(o, "state", "done");
	cJSON_AddStringToObject(o, "finished", ts);
	cJSON_AddNumberToObject(o, "exitCode", rc);
	cJSON_AddBoolToObject(o, "timedOut", d->timed_out);
	if (rep != NULL)
		cJSON_AddItemToObject(o, "report", rep);
	else
		cJSON_AddNullToObject(o, "report");
	cJSON_AddStringToObject(o, "messages", errs ? errs : "");
	log_info("statuspage", "event=diagnose.done exit=%d timed_out=%d", rc, d->timed_out);
	free(out);
	free(errs);
	cJSON_Delete(sp->diag_result);
	sp->diag_result = o;
	sp_diag_free(d);
	sp->diag = NULL;
}

static void
sp_diag_read(evutil_socket_t fd, short what, void *arg)
{
	struct statuspage *sp = arg;
	struct sp_diag *d = sp->diag;
	int i = fd == d->fd[0] ? 0 : 1;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		if (evbuffer_get_length(d->out[i]) + (size_t)n <= SP_DIAG_OUT_MAX)
			evbuffer_add(d->out[i], buf, (size_t)n);
		return;
	}
	event_free(d->ev[i]);
	d->ev[i] = NULL;
	close(d->fd[i]);
	d->fd[i] = -1;
	if (d->fd[0] < 0 && d->fd[1] < 0)
		sp_diag_finish(sp);
}

static void
sp_diag_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct statuspage *sp = arg;

	if (sp->diag == NULL)
		return;
	log_warn("statuspage", "event=diagnose.timeout after_s=%d", SP_DIAG_TIMEOUT_S);
	sp->diag->timed_out = 1;
	kill(sp->diag->pid, SIGKILL);	/* its pipes close: sp_diag_read finishes */
}

static int
sp_diag_start(struct statuspage *sp, char *why, size_t whylen)
{
	const struct conf *c = node_conf(sp->node);
	struct sp_diag *d = calloc(1, sizeof *d);
	posix_spawn_file_actions_t fa;
	int p0[2] = { -1, -1 }, p1[2] = { -1, -1 }, rc, i;
	char prog[PATH_MAX];
	char *argv[6];
	struct timeval tv = { SP_DIAG_TIMEOUT_S, 0 };
	extern char **environ;

	if (d == NULL || pipe2(p0, O_CLOEXEC) != 0 || pipe2(p1, O_CLOEXEC) != 0) {
		snprintf(why, whylen, "cannot start diagnose: %s", strerror(errno));
		goto fail;
	}
	sp_shirctl_path(prog, sizeof prog);
	argv[0] = prog;
	argv[1] = (char *)"--conf";
	argv[2] = c->path ? c->path : (char *)SHIRD_CONF_DEFAULT;
	argv[3] = (char *)"diagnose";
	argv[4] = (char *)"--json";
	argv[5] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p0[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p1[1], 2);
	rc = posix_spawn(&d->pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p0[1]);
	close(p1[1]);
	p0[1] = p1[1] = -1;
	if (rc != 0) {
		snprintf(why, whylen, "cannot run %s: %s", prog, strerror(rc));
		goto fail;
	}
	d->fd[0] = p0[0];
	d->fd[1] = p1[0];
	sp->diag = d;
	for (i = 0; i < 2; i++) {
		evutil_make_socket_nonblocking(d->fd[i]);
		d->out[i] = evbuffer_new();
		d->ev[i] = event_new(node_base(sp->node), d->fd[i], EV_READ | EV_PERSIST, sp_diag_read,
		    sp);
		if (d->out[i] == NULL || d->ev[i] == NULL || event_add(d->ev[i], NULL) != 0) {
			snprintf(why, whylen, "out of memory");
			kill(d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
			sp_diag_free(d);
			sp->diag = NULL;
			return -1;
		}
	}
	d->ev_timeout = evtimer_new(node_base(sp->node), sp_diag_timeout, sp);
	if (d->ev_timeout)
		evtimer_add(d->ev_timeout, &tv);
	sp->diag_runs++;
	log_info("statuspage", "event=diagnose.start program=%s pid=%d", log_q(prog), (int)d->pid);
	return 0;
fail:
	for (i = 0; i < 2; i++) {
		if (p0[i] >= 0)
			close(p0[i]);
		if (p1[i] >= 0)
			close(p1[i]);
	}
	free(d);
	return -1;
}

static void
sp_diagnose(struct statuspage *sp, struct evhttp_request *req, int post)
{
	cJSON *o;
	char why[PATH_MAX + 100];

	if (post && sp->diag == NULL) {
		if (sp_diag_start(sp, why, sizeof why) != 0) {
			sp_send_error(req, 500, why);
			return;
		}
	}
	if (sp->diag != NULL) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "state", "running");
		sp_send_json(req, post ? 202 : 200, o);
		return;
	}
	if (sp->diag_result == NULL) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "state", "none");
		sp_send_json(req, 200, o);
		return;
	}
	sp_send_json(req, 200, cJSON_Duplicate(sp->diag_result, 1));
}

/* ---- requests ------------------------------------------------------------- */

/* A browser sends the Host it was pointed at: anything but our own loopback
 * address is a page of another site rebinding a name to 127.0.0.1. */
static int
sp_host_ok(const struct sp_http *l, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	char want[96];

	if (h == NULL)
		return 0;
	snprintf(want, sizeof want, strchr(l->host, ':') ? "[%s]:%d" : "%s:%d", l->host, l->port);
	if (strcmp(h, want) == 0)
		return 1;
	snprintf(want, sizeof want, "localhost:%d", l->port);
	return strcmp(h, want) == 0;
}

static int
sp_token_ok(const struct statuspage *sp, struct evhttp_request *req)
{
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	size_t tl = strlen(sp->token);

	if (a == NULL || strncmp(a, "Bearer ", 7) != 0 || strlen(a + 7) != tl)
		return 0;
	return CRYPTO_memcmp(a + 7, sp->token, tl) == 0;
}

static void
sp_page_cb(struct evhttp_request *req, void *arg)
{
	struct statuspage *sp = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	int get = m == EVHTTP_REQ_GET;

	if (path == NULL || !sp_host_ok(&sp->page, req)) {
		sp_send_error(req, 403, "wrong Host header: open the address shirctl ui prints");
		return;
	}
	if (get && (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)) {
		sp_send(req, 200, "text/html; charset=utf-8", statuspage_html, strlen(statuspage_html));
		return;
	}
	if (get && strcmp(path, "/app.js") == 0) {
		sp_send(req, 200, "text/javascript; charset=utf-8", statuspage_js,
		    strlen(statuspage_js));
		return;
	}
	if (get && strcmp(path, "/app.css") == 0) {
		sp_send(req, 200, "text/css; charset=utf-8", statuspage_css, strlen(statuspage_css));
		return;
	}
	if (strncmp(path, "/api/", 5) != 0) {
		sp_send_error(req, 404, "no such page");
		return;
	}
	if (!sp_token_ok(sp, req)) {
		log_warn("statuspage", "event=statuspage.denied path=%s reason=\"missing or wrong token\"",
		    log_q(path));
		sp_send_error(req, 401, "missing or wrong token: open the address `shirctl ui` prints");
		return;
	}
	if (get && strcmp(path, "/api/node") == 0)
		sp_forward(sp, req, "GET", "/v1/node", "");
	else if (get && strcmp(path, "/api/credentials") == 0)
		sp_forward(sp, req, "GET", "/v1/credentials", "");
	else if (get && strcmp(path, "/api/logs") == 0)
		sp_forward(sp, req, "POST", "/v1/node/logs", "{\"maxLines\":200}");
	else if (get && strcmp(path, "/api/settings") == 0)
		sp_settings(sp, req);
	else if (strcmp(path, "/api/diagnose") == 0 && (get || m == EVHTTP_REQ_POST))
		sp_diagnose(sp, req, !get);
	else
		sp_send_error(req, get ? 404 : 405, "no such route (the page is read-only)");
}

static void
sp_metrics_cb(struct evhttp_request *req, void *arg)
{
	struct statuspage *sp = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;

	if (path == NULL || strcmp(path, "/metrics") != 0 ||
	    evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		sp_send(req, 404, "text/plain", "GET /metrics only\n", 18);
		return;
	}
	sp_forward(sp, req, "GET", "/metrics", "");
}

/* ---- life cycle ------------------------------------------------------------ */

static int
sp_listen(struct statuspage *sp, struct sp_http *l, const char *key, const char *addr,
    void (*cb)(struct evhttp_request *, void *), struct shir_error *err)
{
	if (statuspage_parse_addr(key, addr, l->host, sizeof l->host, &l->port, err) != 0)
		return err->code;
	l->http = evhttp_new(node_base(sp->node));
	if (l->http == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(l->http, 16 * 1024);
	evhttp_set_max_body_size(l->http, 1024);
	evhttp_set_timeout(l->http, 30);
	evhttp_set_gencb(l->http, cb, sp);
	if (evhttp_bind_socket_with_handle(l->http, l->host, (ev_uint16_t)l->port) == NULL)
		return shir_error_set(err, SHIR_EIO, "[admin] %s: cannot listen on %s: %s", key, addr,
		    strerror(errno));
	log_info("statuspage", "event=listening what=%s address=%s", key, log_q(addr));
	return 0;
}

/* The token: kept across restarts in a 0600 file of the state directory. */
static int
sp_token_load(struct statuspage *sp, const char *state_dir, struct shir_error *err)
{
	unsigned char raw[SP_TOKEN_BYTES];
	char *buf = NULL;
	size_t len = 0, i;
	struct stat st;

	snprintf(sp->token_file, sizeof sp->token_file, "%s/%s", state_dir, STATUSPAGE_TOKEN_FILE);
	if (stat(sp->token_file, &st) == 0 && (st.st_mode & 077) == 0 &&
	    atomicfile_read(sp->token_file, 256, &buf, &len, err) == 0) {
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = '\0';
		if (len == SP_TOKEN_BYTES * 2 && strspn(buf, "0123456789abcdef") == len) {
			memcpy(sp->token, buf, len + 1);
			atomicfile_secret_free(buf, len);
			return 0;
		}
		atomicfile_secret_free(buf, len);
	}
	if (random_bytes(raw, sizeof raw) != 0)
		return shir_error_set(err, SHIR_ECRYPTO, "cannot draw the status page token");
	for (i = 0; i < sizeof raw; i++)
		snprintf(sp->token + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof raw);
	{
		char line[sizeof sp->token + 1];

		snprintf(line, sizeof line, "%s\n", sp->token);
		if (atomicfile_write(sp->token_file, line, strlen(line), 0600, err) != 0)
			return err->code;
		OPENSSL_cleanse(line, sizeof line);
	}
	log_info("statuspage", "event=token.created file=%s", log_q(sp->token_file));
	return 0;
}

/* GET /v1/node/ui (control socket): the page's address with its token. */
static void
sp_api_ui(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct statuspage *sp = ud;
	cJSON *o = cJSON_CreateObject();
	char url[256];

	if (sp->page.http == NULL) {
		cJSON_Delete(o);
		api_reply_error(r, 404, "StatusPageOff", "the status page is off: set [admin] "
		    "status_page = 127.0.0.1:8062 in shird.conf and restart shird");
		return;
	}
	snprintf(url, sizeof url, strchr(sp->page.host, ':') ? "http://[%s]:%d/" :
	    "http://%s:%d/", sp->page.host, sp->page.port);
	cJSON_AddStringToObject(o, "status", "Succeeded");
	cJSON_AddStringToObject(o, "url", url);
	cJSON_AddStringToObject(o, "token", sp->token);
	cJSON_AddStringToObject(o, "tokenFile", sp->token_file);
	api_reply_json(r, 200, o);
}

/* GET /metrics: the credential store's version and each credential's (names
 * only; a value never leaves the store). */
static void
sp_metrics_hook(void *arg, struct evbuffer *out)
{
	struct statuspage *sp = arg;
	struct credstore *cs = node_ext(sp->node, NODE_EXT_CREDS);
	struct credstore_info *v = NULL;
	struct shir_error err;
	uint64_t ver = 0;
	size_t i, n = 0;

	if (cs == NULL || credstore_version(cs, &ver, &err) != 0 ||
	    credstore_list(cs, 0, &v, &n, &err) != 0)
		return;
	evbuffer_add_printf(out, "# HELP shird_credentials_version The credential store's version "
	    "(grows with each change).\n# TYPE shird_credentials_version gauge\n"
	    "shird_credentials_version %llu\n# HELP shird_credential_version A credential's "
	    "version (its changes).\n# TYPE shird_credential_version gauge\n",
	    (unsigned long long)ver);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(out, "shird_credential_version{name=\"%s\"} %llu\n", v[i].name,
		    (unsigned long long)v[i].version);
	free(v);
}

int
statuspage_start(struct node *n, struct shir_error *err)
{
	const struct conf *c = node_conf(n);
	struct statuspage *sp;
	int rc;

	if (sp_the != NULL)
		return 0;
	sp = calloc(1, sizeof *sp);
	if (sp == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	sp->node = n;
	sp_the = sp;
	if ((rc = api_route(node_api(n), "GET", "/v1/node/ui", API_FROM_LOCAL, sp_api_ui, sp)) != 0)
		return shir_error_set(err, rc, "cannot add the /v1/node/ui route");
	{
		struct node_hooks h;

		memset(&h, 0, sizeof h);
		h.name = "statuspage";
		h.metrics = sp_metrics_hook;
		h.arg = sp;
		if ((rc = node_add_hooks(n, &h)) != 0)
			return shir_error_set(err, rc, "cannot register the status page's hooks");
	}
	if (c->admin_status_page && *c->admin_status_page) {
		if (sp_token_load(sp, c->state_dir, err) != 0 ||
		    sp_listen(sp, &sp->page, "status_page", c->admin_status_page, sp_page_cb, err) != 0)
			return err->code;
	}
	if (c->admin_metrics && *c->admin_metrics &&
	    sp_listen(sp, &sp->metrics, "metrics", c->admin_metrics, sp_metrics_cb, err) != 0)
		return err->code;
	return 0;
}

void
statuspage_stop(struct node *n)
{
	struct statuspage *sp = sp_the;

	if (sp == NULL)
		return;
	if (sp->diag != NULL) {
		kill(sp->diag->pid, SIGKILL);
		waitpid(sp->diag->pid, NULL, 0);
		sp_diag_free(sp->diag);
	}
	if (sp->page.http)
		evhttp_free(sp->page.http);
	if (sp->metrics.http)
		evhttp_free(sp->metrics.http);
	cJSON_Delete(sp->diag_result);
	OPENSSL_cleanse(sp->token, sizeof sp->token);
	free(sp);
	sp_the = NULL;
}
