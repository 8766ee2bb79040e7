/* shird: the shir node daemon. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <expat.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <wslay/wslayver.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "node/api.h"
#include "node/conf.h"
#include "node/ctlsock.h"
#include "common/evread.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "node/node.h"
#include "relay/ws.h"
#include "node/shird.h"

struct shird {
	struct event_base *base;
	struct node *node;
	struct ctlsock *ctl;
	struct event *ev_term, *ev_int, *ev_hup, *ev_drain, *ev_trim;
	struct sdnotify *sdn;	/* readiness and watchdog under systemd */
	struct timeval drain_deadline;
	int draining;
	int exit_code;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: shird [-t] [-f FILE] [-l LEVEL]\n"
	    "  -f, --config FILE   configuration file (default %s)\n"
	    "  -t, --test          check the configuration and exit (0: valid)\n"
	    "  -l, --log-level L   override log.level (error, warn, info, debug)\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          this help\n"
	    "Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration.\n"
	    "See shird(8) and shird.conf(5).\n", SHIRD_CONF_DEFAULT);
}

static void
log_versions(void)
{
	char pcre[64] = "";
	curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	nghttp2_info *nh = nghttp2_version(0);

	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	log_info("main", "event=versions shir=%s libevent=%s openssl=%s libcurl=%s nghttp2=%s "
	    "wslay=%s cjson=%s expat=%s pcre2=%s sqlite3=%s libpq=%d mariadb=%s",
	    PACKAGE_VERSION, event_get_version(), log_q(OpenSSL_version(OPENSSL_VERSION)),
	    cv->version, nh->version_str, WSLAY_VERSION, cJSON_Version(),
	    log_q(XML_ExpatVersion()), log_q(pcre), sqlite3_libversion(), PQlibVersion(),
	    mysql_get_client_info());
}

static void
shird_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct shird *d = arg;
	struct timeval now;
	unsigned left = api_inflight(node_api(d->node));

	evutil_gettimeofday(&now, NULL);
	if (left == 0) {
		log_info("main", "event=shutdown.done inflight=0");
		event_base_loopbreak(d->base);
		return;
	}
	if (evutil_timercmp(&now, &d->drain_deadline, >=)) {
		log_warn("main", "event=shutdown.done inflight=%u reason=\"drain deadline passed\"",
		    left);
		event_base_loopbreak(d->base);
		return;
	}
	{
		struct timeval tick = { 0, 100 * 1000 };

		event_add(d->ev_drain, &tick);
	}
}

static void
shird_on_term(evutil_socket_t sig, short what, void *arg)
{
	struct shird *d = arg;
	struct timeval dl = { node_conf(d->node)->shutdown_timeout, 0 }, now;

	if (d->draining) {
		log_warn("main", "event=shutdown.forced signal=%d", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->draining = 1;
	sdnotify_stopping();
	log_info("main", "event=shutdown.begin signal=%s inflight=%u deadline_s=%d",
	    sig == SIGTERM ? "TERM" : "INT", api_inflight(node_api(d->node)),
	    node_conf(d->node)->shutdown_timeout);
	node_set_status(d->node, NODE_OFFLINE, "shutting down");
	api_set_draining(node_api(d->node), 1);
	shird_hook_shutdown(d->node);
	evutil_gettimeofday(&now, NULL);
	evutil_timeradd(&now, &dl, &d->drain_deadline);
	d->ev_drain = evtimer_new(d->base, shird_drain_check, d);
	if (d->ev_drain == NULL) {
		event_base_loopbreak(d->base);
		return;
	}
	shird_drain_check(-1, 0, d);
}

/* Idle tunnels and channels give their buffers back: return the pages too. */
static void
shird_trim(evutil_socket_t fd, short what, void *arg)
{
	ws_trim_idle();
}

static void
shird_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct shird *d = arg;
	struct shir_error err;

	(void)node_reload(d->node, &err);
}

/* The folders the configuration names must exist before start, or start
 * fails after -t said OK: the control socket's, the log file's, and the
 * parent of the state directory (shird makes the last level itself). */
static int
shird_check_folder(const char *key, const char *file, bool parent_of_file, struct shir_error *err)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;

	snprintf(dir, sizeof dir, "%s", file);
	if ((slash = strrchr(dir, '/')) == NULL)
		return 0;	/* relative to the working directory */
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return shir_error_set(err, SHIR_ECONFIG, "%s = %s: the folder %s does not exist%s; create it "
	    "(install -d -o shir -g shir %s), or name another", key, file, dir,
	    parent_of_file ? "" : " (shird creates only the last level)", dir);
}

static int
shird_check_paths(const struct conf *c, struct shir_error *err)
{
	if (shird_check_folder("node.control_socket", c->control_socket, true, err) != 0)
		return err->code;
	if (strcmp(c->log_file, "-") != 0 && shird_check_folder("log.file", c->log_file, true, err) != 0)
		return err->code;
	return shird_check_folder("node.state_dir", c->state_dir, false, err);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'f' },
		{ "test", no_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct shird d;
	struct conf *conf = NULL;
	struct shir_error err;
	const struct timeval trim_every = { 5, 0 };
	const char *path = SHIRD_CONF_DEFAULT, *level = NULL;
	enum log_level lvl;
	int test = 0, ch;

	memset(&d, 0, sizeof d);
	while ((ch = getopt_long(argc, argv, "f:tl:Vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': path = optarg; break;
		case 't': test = 1; break;
		case 'l': level = optarg; break;
		case 'V': printf("shird %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "shird: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (level != NULL && log_level_parse(level, &lvl) != 0) {
		fprintf(stderr, "shird: --log-level must be error, warn, info or debug\n");
		return 2;
	}
	if (conf_load_file(path, &conf, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		if (err.code == SHIR_ENOENT)
			fprintf(stderr, "shird: copy the sample (conf/shird.conf) there or name "
			    "another file with -f\n");
		return 1;
	}
	if (shird_hook_validate(conf, &err) != 0 || shird_check_paths(conf, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		conf_free(conf);
		return 1;
	}
	if (test) {
		printf("%s: configuration OK\n", path);
		conf_free(conf);
		return 0;
	}
	if (log_open(conf->log_file) != 0) {
		fprintf(stderr, "shird: cannot open log file %s: %s\n", conf->log_file,
		    strerror(errno));
		conf_free(conf);
		return 1;
	}
	log_set_level(level ? lvl : (enum log_level)conf->log_level);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	evthread_use_pthreads();
	log_info("main", "event=start version=%s config=%s pid=%d", PACKAGE_VERSION, log_q(path),
	    (int)getpid());
	log_versions();

	d.exit_code = 1;
	evread_tune_malloc();
	json_arena_install();
	d.base = event_base_new();
	if (d.base == NULL) {
		log_error("main", "event=fatal reason=\"cannot create the event loop\"");
		goto out;
	}
	d.node = node_new(d.base, conf);
	if (d.node == NULL) {
		log_error("main", "event=fatal reason=\"out of memory\"");
		goto out;
	}
	conf = NULL;	/* owned by the node */
	d.ev_term = evsignal_new(d.base, SIGTERM, shird_on_term, &d);
	d.ev_int = evsignal_new(d.base, SIGINT, shird_on_term, &d);
	d.ev_hup = evsignal_new(d.base, SIGHUP, shird_on_hup, &d);
	if (!d.ev_term || !d.ev_int || !d.ev_hup || event_add(d.ev_term, NULL) ||
	    event_add(d.ev_int, NULL) || event_add(d.ev_hup, NULL)) {
		log_error("main", "event=fatal reason=\"cannot install signal handlers\"");
		goto out;
	}
	d.ev_trim = event_new(d.base, -1, EV_PERSIST, shird_trim, &d);
	if (d.ev_trim == NULL || event_add(d.ev_trim, &trim_every) != 0) {
		log_error("main", "event=fatal reason=\"out of memory\"");
		goto out;
	}
	if (ctlsock_open(d.node, node_conf(d.node)->control_socket, &d.ctl, &err) != 0) {
		log_error("main", "event=fatal reason=%s", log_q(err.msg));
		goto out;
	}
	if (shird_hook_start(d.node, &err) != 0) {
		log_error("main", "event=fatal reason=%s", log_q(err.msg));
		goto out;
	}
	api_log_routes(node_api(d.node));
	d.sdn = sdnotify_ready(d.base, "main", "serving; shirctl status for the channels");
	event_base_dispatch(d.base);
	d.exit_code = 0;
out:
	sdnotify_free(d.sdn);
	shird_hook_stop(d.node);
	ctlsock_free(d.ctl);
	if (d.ev_drain)
		event_free(d.ev_drain);
	if (d.ev_trim)
		event_free(d.ev_trim);
	if (d.ev_term)
		event_free(d.ev_term);
	if (d.ev_int)
		event_free(d.ev_int);
	if (d.ev_hup)
		event_free(d.ev_hup);
	node_free(d.node);
	conf_free(conf);
	if (d.base)
		event_base_free(d.base);
	log_info("main", "event=exit code=%d", d.exit_code);
	curl_global_cleanup();
	log_close();
	return d.exit_code;
}
