/* pac: the PAC engine (see pac.h and docs/proxy.md "PAC and WPAD"). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "proxy/pac.h"
#include "proxy/pac_fetch.h"
#include "proxy/pac_result.h"

#ifndef PKGLIBEXECDIR
#define PKGLIBEXECDIR "/usr/libexec/shir"
#endif

#define PAC_NSCRIPTS 8
#define PAC_NRESULTS 128
#define PAC_NBAD 32
#define PAC_DNS_MS 2000		/* per DNS question of the script */
#define PAC_MAX_FRAME (64 * 1024)	/* frames from the helper */
#define PAC_RETRY_MIN 30	/* first retry after a failed download, doubling */

extern char **environ;

struct pac_script {
	char url[1024];
	char *text;
	size_t len;
	char hash[65];
	time_t fetched;		/* monotonic seconds of the last success, 0 none */
	time_t next_try;	/* after a failure: not before */
	int fails;
	char error[1024];	/* the last failure */
	time_t used;		/* last asked for (which slot to reuse) */
	unsigned net_gen;	/* pac_net_gen when last fetched or failed */
};

struct pac_cached {
	char key[1700];		/* the source + scheme://host:port */
	time_t at;
	struct pac_result r;	/* reordered for bad proxies at each use */
	char base[400];		/* the reason without the chosen entry */
};

struct pac_bad {
	char url[512];
	time_t until;
};

static pthread_mutex_t pac_mu = PTHREAD_MUTEX_INITIALIZER;	/* the caches */
static pthread_mutex_t pac_eval_mu = PTHREAD_MUTEX_INITIALIZER;	/* scripts, the helper */
static struct pac_script pac_scripts[PAC_NSCRIPTS];
static struct pac_cached pac_results[PAC_NRESULTS];
static struct pac_bad pac_bads[PAC_NBAD];
static char pac_last_err[1200];
/* Network changes (pac_network_check): a route netlink socket the kernel
 * queues address, link and route changes on; under pac_mu. Each change seen
 * bumps pac_net_gen, which the scripts compare under pac_eval_mu. */
static int pac_nl_fd = -1;	/* -1 not opened yet, -2 cannot watch */
static volatile unsigned pac_net_gen;
static time_t pac_last_err_at;
/* the helper (under pac_eval_mu) */
static pid_t pac_pid = -1;
static int pac_fd = -1;
static char pac_loaded[65];
static unsigned pac_restarts;

static long pac_clock_skew;	/* pac_test_clock_advance() */

static time_t
pac_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1 + __atomic_load_n(&pac_clock_skew, __ATOMIC_RELAXED);	/* never 0 */
}

void
pac_test_clock_advance(long seconds)
{
	__atomic_add_fetch(&pac_clock_skew, seconds, __ATOMIC_RELAXED);
}

static uint64_t
pac_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
pac_sha256(const char *s, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int ml = 0;
	int i;

	EVP_Digest(s, n, md, &ml, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + i * 2, 3, "%02x", md[i]);
}

/* --- the helper process ---------------------------------------------------- */

static void
pac_helper_path(char *buf, size_t len)
{
	const char *e = getenv("SHIR_PAC_HELPER");

	/* the installed helper; SHIR_PAC_HELPER names another (a build tree's) */
	snprintf(buf, len, "%s", e != NULL && *e ? e : PKGLIBEXECDIR "/shir-pac-helper");
}

static void
pac_helper_stop(const char *why)
{
	int st;

	if (pac_pid > 0) {
		kill(pac_pid, SIGKILL);
		while (waitpid(pac_pid, &st, 0) < 0 && errno == EINTR)
			;
		log_info("proxy", "event=pac.helper.stopped pid=%d reason=%s", (int)pac_pid,
		    log_q(why));
	}
	if (pac_fd >= 0)
		close(pac_fd);
	pac_pid = -1;
	pac_fd = -1;
	pac_loaded[0] = '\0';
}

static int
pac_helper_start(char *err, size_t el)
{
	static const char *const pass[] = { "TZ=", "SHIR_PAC_TEST_NOW=", "ASAN_OPTIONS=",
		"UBSAN_OPTIONS=", "LSAN_OPTIONS=" };
	char path[4096], *argv[2], *envp[8];
	posix_spawn_file_actions_t fa;
	int sv[2], rc;
	size_t i, j, ne = 0;
	pid_t pid;

	pac_helper_path(path, sizeof path);
	for (i = 0; environ && environ[i] && ne < 7; i++)
		for (j = 0; j < sizeof pass / sizeof pass[0]; j++)
			if (strncmp(environ[i], pass[j], strlen(pass[j])) == 0)
				envp[ne++] = environ[i];
	envp[ne] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, el, "socketpair: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	argv[0] = path;
	argv[1] = NULL;
	rc = posix_spawn(&pid, path, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc != 0) {
		close(sv[0]);
		snprintf(err, el, "cannot start the PAC helper %.600s: %s (is shir installed whole? "
		    "SHIR_PAC_HELPER names another path)", path, strerror(rc));
		return -1;
	}
	pac_pid = pid;
	pac_fd = sv[0];
	pac_loaded[0] = '\0';
	log_info("proxy", "event=pac.helper.started pid=%d path=%s restarts=%u", (int)pid,
	    log_q(path), pac_restarts);
	return 0;
}

/* 0 ready; -1 timeout; -2 the helper is gone */
static int
pac_io_wait(short ev, uint64_t deadline)
{
	struct pollfd pf = { pac_fd, ev, 0 };

	for (;;) {
		uint64_t now = pac_now_ms();
		int r;

		if (now >= deadline)
			return -1;
		r = poll(&pf, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -2;
		if (r == 0)
			return -1;
		return 0;
	}
}

static int
pac_send(char type, const void *p, size_t n, uint64_t deadline)
{
	unsigned char h[5];
	uint32_t l = (uint32_t)n + 1;
	size_t off = 0, total = n + 5;

	h[0] = (unsigned char)(l >> 24);
	h[1] = (unsigned char)(l >> 16);
	h[2] = (unsigned char)(l >> 8);
	h[3] = (unsigned char)l;
	h[4] = (unsigned char)type;
	while (off < total) {
		const unsigned char *src = off < 5 ? h + off : (const unsigned char *)p + (off - 5);
		size_t chunk = off < 5 ? 5 - off : total - off;
		ssize_t w;
		int r;

		if ((r = pac_io_wait(POLLOUT, deadline)) != 0)
			return r;
		w = send(pac_fd, src, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return -2;
		off += (size_t)w;
	}
	return 0;
}

static int
pac_read_n(void *p, size_t n, uint64_t deadline)
{
	unsigned char *q = p;

	while (n > 0) {
		ssize_t r;
		int w;

		if ((w = pac_io_wait(POLLIN, deadline)) != 0)
			return w;
		r = recv(pac_fd, q, n, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return -2;
		q += r;
		n -= (size_t)r;
	}
	return 0;
}

/* a frame into buf (cap bytes, NUL-terminated): -1 timeout, -2 gone, -3 too big */
static int
pac_recv(char *type, char *buf, size_t cap, size_t *len, uint64_t deadline)
{
	unsigned char h[5];
	uint32_t l;
	int r;

	if ((r = pac_read_n(h, 5, deadline)) != 0)
		return r;
	l = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	if (l < 1 || l > PAC_MAX_FRAME || l > cap)
		return -3;
	*type = (char)h[4];
	if ((r = pac_read_n(buf, l - 1, deadline)) != 0)
		return r;
	buf[l - 1] = '\0';
	*len = l - 1;
	return 0;
}

/* why the helper is gone, after a -2 */
static void
pac_helper_gone(char *err, size_t el, const char *doing)
{
	int st = 0;
	pid_t pid = pac_pid;

	if (pid > 0) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		int i;

		for (i = 0; i < 20 && waitpid(pid, &st, WNOHANG) == 0; i++)
			nanosleep(&ts, NULL);
		if (i == 20) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
	}
	if (WIFSIGNALED(st))
		snprintf(err, el, "the PAC helper died %s (signal %d%s); it is restarted for the "
		    "next call", doing, WTERMSIG(st), WTERMSIG(st) == SIGXCPU ? ", its CPU limit" :
		    WTERMSIG(st) == SIGSYS ? ", its system call filter" : "");
	else
		snprintf(err, el, "the PAC helper exited %s (status %d, probably out of memory "
		    "or a broken installation); it is restarted for the next call", doing,
		    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	if (pac_fd >= 0)
		close(pac_fd);
	pac_pid = -1;
	pac_fd = -1;
	pac_loaded[0] = '\0';
	pac_restarts++;
}

/* --- DNS for the script, with a time limit ------------------------------------- */

struct pac_dns {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, done;
	char op;
	char host[256];
	char out[1024];
};

static void
pac_dns_unref(struct pac_dns *q)
{
	int last;

	pthread_mutex_lock(&q->mu);
	last = --q->refs == 0;
	pthread_mutex_unlock(&q->mu);
	if (last) {
		pthread_mutex_destroy(&q->mu);
		pthread_cond_destroy(&q->cv);
		free(q);
	}
}

static void
pac_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		    (socklen_t)len);
	else
		buf[0] = '\0';
}

static void
pac_append(char *out, size_t cap, const char *a)
{
	size_t o = strlen(out);

	if (*a == '\0' || strstr(out, a) != NULL)
		return;
	snprintf(out + o, cap - o, "%s%s", o ? ";" : "", a);
}

static void *
pac_dns_thread(void *arg)
{
	struct pac_dns *q = arg;
	struct addrinfo hints, *res = NULL, *ai;
	char out[1024] = "", a[INET6_ADDRSTRLEN];

	memset(&hints, 0, sizeof hints);
	hints.ai_family = q->op == 'r' ? AF_INET : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(q->host, NULL, &hints, &res) == 0) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			pac_addr_text(ai->ai_addr, a, sizeof a);
			pac_append(out, sizeof out, a);
			if (q->op == 'r')
				break;
		}
		freeaddrinfo(res);
	}
	pthread_mutex_lock(&q->mu);
	snprintf(q->out, sizeof q->out, "%s", out);
	q->done = 1;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pac_dns_unref(q);
	return NULL;
}

static void
pac_my_addrs(int all, char *out, size_t cap)
{
	struct ifaddrs *ifa = NULL, *i;
	char a[INET6_ADDRSTRLEN];

	out[0] = '\0';
	if (getifaddrs(&ifa) != 0)
		return;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6))
			continue;
		if (!all && i->ifa_addr->sa_family != AF_INET)
			continue;
		pac_addr_text(i->ifa_addr, a, sizeof a);
		if (strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
		    strncasecmp(a, "fe80:", 5) == 0)
			continue;
		pac_append(out, cap, a);
		if (!all)
			break;
	}
	freeifaddrs(ifa);
}

/* The answer to one question of the script ("" = none), within ms. */
static void
pac_dns_answer(char op, const char *host, uint64_t deadline, char *out, size_t cap)
{
	struct pac_dns *q;
	pthread_t t;
	pthread_attr_t at;
	struct timespec ts;
	uint64_t lim = pac_now_ms() + PAC_DNS_MS;

	out[0] = '\0';
	if (op == 'm' || op == 'n') {
		pac_my_addrs(op == 'n', out, cap);
		return;
	}
	if ((op != 'r' && op != 'x') || *host == '\0' || strlen(host) > 253)
		return;
	if ((q = calloc(1, sizeof *q)) == NULL)
		return;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->refs = 2;
	q->op = op;
	snprintf(q->host, sizeof q->host, "%s", host);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, pac_dns_thread, q) != 0) {
		pthread_attr_destroy(&at);
		q->refs = 1;
		pac_dns_unref(q);
		return;
	}
	pthread_attr_destroy(&at);
	if (deadline < lim)
		lim = deadline;
	clock_gettime(CLOCK_REALTIME, &ts);
	{
		uint64_t left = lim > pac_now_ms() ? lim - pac_now_ms() : 0;

		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&q->mu);
	while (!q->done && pthread_cond_timedwait(&q->cv, &q->mu, &ts) == 0)
		;
	if (q->done)
		snprintf(out, cap, "%s", q->out);
	else
		log_info("proxy", "event=pac.dns.timeout host=%s", log_q(host));
	pthread_mutex_unlock(&q->mu);
	pac_dns_unref(q);
}

/* --- evaluation ------------------------------------------------------------- */

/* FindProxyForURLEx(url, host) in the helper, or FindProxyForURL when the
 * script has no Ex: 0 and the string in out (*ex_fn 1 when Ex answered), else
 * -1 with err set. Under pac_eval_mu. */
static int
pac_eval(const struct pac_script *s, const char *url, const char *host, int limit_ms,
    char *out, size_t cap, int *ex_fn, char *err, size_t el)
{
	uint64_t deadline = pac_now_ms() + (uint64_t)limit_ms;
	char type, *buf = NULL, call[1200];
	size_t len, cl;
	int r, rc = -1, phase = 0;

	if ((buf = malloc(PAC_MAX_FRAME + 1)) == NULL) {
		snprintf(err, el, "out of memory");
		return -1;
	}
	if (pac_pid < 0 && pac_helper_start(err, el) != 0)
		goto out;
	if (strcmp(pac_loaded, s->hash) != 0) {
		/* loading runs the script's top level: the same limit applies */
		if ((r = pac_send('L', s->text, s->len, deadline)) != 0)
			goto fail;
		if ((r = pac_recv(&type, buf, PAC_MAX_FRAME + 1, &len, deadline)) != 0)
			goto fail;
		if (type == 'E') {
			snprintf(err, el, "%s", buf);
			goto out;
		}
		if (type != 'O') {
			r = -3;
			goto fail;
		}
		snprintf(pac_loaded, sizeof pac_loaded, "%s", s->hash);
	}
	phase = 1;
	cl = (size_t)snprintf(call, sizeof call, "%s%c%s", url, '\0', host);
	if (cl >= sizeof call) {
		snprintf(err, el, "the URL is too long for the script");
		goto out;
	}
	if ((r = pac_send('F', call, cl, deadline)) != 0)
		goto fail;
	for (;;) {
		if ((r = pac_recv(&type, buf, PAC_MAX_FRAME + 1, &len, deadline)) != 0)
			goto fail;
		if (type == 'D' && len >= 1) {
			char ans[1024];

			pac_dns_answer(buf[0], buf + 1, deadline, ans, sizeof ans);
			if ((r = pac_send('A', ans, strlen(ans), deadline)) != 0)
				goto fail;
		} else if (type == 'M') {
			log_info("proxy", "event=pac.alert text=%s", log_q(buf));
		} else if (type == 'R' || type == 'X') {
			snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), buf);
			*ex_fn = type == 'X';
			rc = 0;
			goto out;
		} else if (type == 'E') {
			snprintf(err, el, "%s", buf);
			goto out;
		} else {
			r = -3;
			goto fail;
		}
	}
fail:
	if (r == -1) {
		snprintf(err, el, "%s did not finish within %d ms (a loop or a slow script); "
		    "the helper was killed and is restarted for the next call",
		    phase ? "FindProxyForURL" : "loading the script", limit_ms);
		pac_helper_stop("time limit");
		pac_restarts++;
	} else if (r == -2) {
		pac_helper_gone(err, el, phase ? "in FindProxyForURL" : "loading the script");
	} else {
		snprintf(err, el, "the PAC helper sent a malformed answer; it was restarted");
		pac_helper_stop("malformed answer");
		pac_restarts++;
	}
out:
	free(buf);
	return rc;
}

/* --- scripts ------------------------------------------------------------------ */

static struct pac_script *
pac_script_slot(const char *url)
{
	struct pac_script *s, *old = NULL;
	size_t i;

	for (i = 0; i < PAC_NSCRIPTS; i++) {
		s = &pac_scripts[i];
		if (strcmp(s->url, url) == 0) {
			s->used = pac_mono();
			return s;
		}
		/* an empty slot, else the one used longest ago */
		if (old == NULL || (old->url[0] != '\0' && (s->url[0] == '\0' || s->used < old->used)))
			old = s;
	}
	free(old->text);
	memset(old, 0, sizeof *old);
	snprintf(old->url, sizeof old->url, "%s", url);
	old->used = pac_mono();
	return old;
}

/* The script of url, fetched when needed. 0 usable (maybe stale), -1 not. */
static int
pac_script_get(const struct pac_params *p, const char *url, struct pac_script **out,
    int *stale, long *retry_in, char *err, size_t el)
{
	struct pac_script *s = pac_script_slot(url);
	time_t now = pac_mono();
	char *text = NULL;
	size_t len = 0;
	struct shir_error e;
	int backoff;

	*out = s;
	*stale = 0;
	if (s->net_gen != pac_net_gen) {
		/* a new network: forget the failure, fetch again (the old text stays
		 * for stale-while-error) */
		s->net_gen = pac_net_gen;
		s->fails = 0;
		s->next_try = 0;
		s->fetched = 0;
	}
	if (s->text != NULL && now - s->fetched < PAC_SCRIPT_TTL)
		return 0;
	if (s->next_try != 0 && now < s->next_try) {
		if (s->text != NULL) {
			*stale = 1;
			return 0;
		}
		snprintf(err, el, "%s", s->error);
		*retry_in = (long)(s->next_try - now);
		return -1;
	}
	shir_error_clear(&e);
	if (pac_fetch(url, p->download_timeout_ms, &text, &len, &e) == 0) {
		free(s->text);
		s->text = text;
		s->len = len;
		pac_sha256(text, len, s->hash);
		s->fetched = pac_mono();
		s->fails = 0;
		s->next_try = 0;
		s->error[0] = '\0';
		log_info("proxy", "event=pac.fetched url=%s bytes=%zu sha256=%s", log_q(url), len,
		    s->hash);
		return 0;
	}
	snprintf(s->error, sizeof s->error, "%.1000s", e.msg);
	backoff = PAC_RETRY_MIN << (s->fails < 8 ? s->fails : 8);
	if (backoff > p->retry_interval_s)
		backoff = p->retry_interval_s;
	s->fails++;
	s->next_try = pac_mono() + backoff;
	log_warn("proxy", "event=pac.fetch.failed url=%s reason=%s retry_in=%d", log_q(url),
	    log_q(e.msg), backoff);
	if (s->text != NULL) {
		*stale = 1;	/* stale-while-error */
		return 0;
	}
	snprintf(err, el, "%.1000s", e.msg);
	*retry_in = backoff;
	return -1;
}

/* --- caches -------------------------------------------------------------------- */

static int
pac_is_bad(const char *url, time_t now)
{
	size_t i;

	for (i = 0; i < PAC_NBAD; i++)
		if (pac_bads[i].until > now && strcmp(pac_bads[i].url, url) == 0)
			return 1;
	return 0;
}

void
pac_mark_bad(const char *proxy_url)
{
	time_t now = pac_mono();
	size_t i, slot = 0;

	pthread_mutex_lock(&pac_mu);
	for (i = 0; i < PAC_NBAD; i++) {
		if (strcmp(pac_bads[i].url, proxy_url) == 0) {
			slot = i;
			break;
		}
		if (pac_bads[i].until < pac_bads[slot].until)
			slot = i;
	}
	snprintf(pac_bads[slot].url, sizeof pac_bads[slot].url, "%s", proxy_url);
	pac_bads[slot].until = now + PAC_BAD_SECONDS;
	pthread_mutex_unlock(&pac_mu);
	log_info("proxy", "event=pac.proxy.bad proxy=%s for_s=%d", log_q(proxy_url),
	    PAC_BAD_SECONDS);
}

static size_t
pac_key_slot(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % PAC_NRESULTS;
}

/* the PAC string into a decision: bad proxies last, DIRECT first means direct */
static void
pac_to_decision(const struct pac_result *r, struct proxy_decision *d, char *chosen, size_t cl)
{
	char urls[PAC_RESULT_MAX][512];
	int bad[PAC_RESULT_MAX];
	size_t i, n = 0, pass;
	time_t now = pac_mono();

	pthread_mutex_lock(&pac_mu);
	for (i = 0; i < r->n; i++) {
		pac_entry_url(&r->e[i], urls[i], sizeof urls[i]);
		bad[i] = r->e[i].type != PAC_DIRECT && pac_is_bad(urls[i], now);
	}
	pthread_mutex_unlock(&pac_mu);
	d->direct = 0;
	d->nproxies = 0;
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < r->n && n < PROXY_MAX_PROXIES; i++)
			if (bad[i] == (int)pass)
				snprintf(d->proxies[n++], sizeof d->proxies[0], "%s", urls[i]);
	if (n == 0 || strcmp(d->proxies[0], "DIRECT") == 0) {
		d->direct = 1;
		d->nproxies = 0;
		snprintf(chosen, cl, "DIRECT");
		return;
	}
	d->nproxies = n;
	snprintf(chosen, cl, "%s", d->proxies[0]);
	for (i = 0; i < r->n; i++)
		if (bad[i]) {
			size_t o = strlen(chosen);

			snprintf(chosen + o, cl - o, " (%s failed to connect lately: tried last)",
			    urls[i]);
			break;
		}
}

static void
pac_set_last_error(const char *msg)
{
	pthread_mutex_lock(&pac_mu);
	snprintf(pac_last_err, sizeof pac_last_err, "%s", msg);
	pac_last_err_at = pac_mono();
	pthread_mutex_unlock(&pac_mu);
}

void
pac_last_error(char *buf, size_t len, long *age)
{
	pthread_mutex_lock(&pac_mu);
	snprintf(buf, len, "%s", pac_last_err);
	*age = pac_last_err_at ? (long)(pac_mono() - pac_last_err_at) : 0;
	pthread_mutex_unlock(&pac_mu);
}

/* "https://host:port/" with the default port left out, as the script sees it */
static void
pac_sanitize(const char *scheme, const char *host, int port, char *url, size_t ul,
    char *key, size_t kl)
{
	const char *s = scheme;
	int def;

	if (strcasecmp(scheme, "wss") == 0)
		s = "https";
	else if (strcasecmp(scheme, "ws") == 0)
		s = "http";
	def = strcasecmp(s, "https") == 0 ? 443 : strcasecmp(s, "http") == 0 ? 80 :
	    strcasecmp(s, "ftp") == 0 ? 21 : -1;
	if (port == def || port <= 0)
		snprintf(url, ul, "%s://%s/", s, host);
	else
		snprintf(url, ul, "%s://%s:%d/", s, host, port);
	snprintf(key, kl, "%s://%s:%d", s, host, port);
}

/* the result cache's key: the configured source and the destination */
static void
pac_cache_key(const struct pac_params *p, const char *key, char *out, size_t ol)
{
	snprintf(out, ol, "%d|%s|%s", p->auto_detect, p->script_url, key);
}

/* Whether the network changed since the last call: WinHTTP forgets a failed
 * auto-detection, and its cached answers, when it does. The kernel queues the
 * changes on a route netlink socket; a non-blocking read drains them, so the
 * check costs one system call and needs no event loop (shirctl uses it too).
 * Under pac_mu. */
static void
pac_network_check(void)
{
	struct sockaddr_nl sa;
	char buf[8192];
	ssize_t n;
	int changed = 0;
	size_t i;

	if (pac_nl_fd == -2)
		return;
	if (pac_nl_fd == -1) {
		pac_nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
		memset(&sa, 0, sizeof sa);
		sa.nl_family = AF_NETLINK;
		sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
		    RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
		if (pac_nl_fd < 0 || bind(pac_nl_fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
			log_warn("proxy", "event=pac.netwatch.off reason=%s (a failed WPAD "
			    "discovery is retried after its back-off only)", log_q(strerror(errno)));
			if (pac_nl_fd >= 0)
				close(pac_nl_fd);
			pac_nl_fd = -2;
		}
		return;
	}
	/* ENOBUFS: the kernel dropped notifications, so something changed */
	while ((n = recv(pac_nl_fd, buf, sizeof buf, MSG_DONTWAIT)) > 0 ||
	    (n < 0 && errno == ENOBUFS))
		changed = 1;
	if (!changed)
		return;
	pac_net_gen++;
	for (i = 0; i < PAC_NRESULTS; i++)
		pac_results[i].at = 0;
	log_info("proxy", "event=pac.network.changed gen=%u (cached PAC answers dropped; a "
	    "failed discovery or download is tried again)", pac_net_gen);
}

int
pac_decide_cached(const struct pac_params *p, const char *scheme, const char *host, int port,
    struct proxy_decision *d)
{
	char url[600], key[600], ck[1700], base[400], chosen[700];
	struct pac_result r;
	size_t slot;
	int hit = 0;

	pac_sanitize(scheme, host, port, url, sizeof url, key, sizeof key);
	pac_cache_key(p, key, ck, sizeof ck);
	slot = pac_key_slot(ck);
	pthread_mutex_lock(&pac_mu);
	pac_network_check();
	if (pac_results[slot].at != 0 && strcmp(pac_results[slot].key, ck) == 0 &&
	    pac_mono() - pac_results[slot].at < PAC_RESULT_TTL) {
		r = pac_results[slot].r;
		memcpy(base, pac_results[slot].base, sizeof base);
		hit = 1;
	}
	pthread_mutex_unlock(&pac_mu);
	if (hit) {
		memset(d, 0, sizeof *d);
		pac_to_decision(&r, d, chosen, sizeof chosen);
		snprintf(d->reason, sizeof d->reason, "%s -> %.100s (cached)", base, chosen);
	}
	return hit;
}

void
pac_decide(const struct pac_params *p, const char *scheme, const char *host, int port,
    struct proxy_decision *d, struct pac_explain *ex)
{
	struct pac_explain ex0;
	struct pac_script *s = NULL;
	struct pac_result r;
	char cands[6][1100], err[1200], key[600], ck[1700], chosen[700], hhost[300], base[400];
	size_t nc = 0, nwpad = 0, i, slot, hl;
	int stale = 0, ok = -1;
	long retry_in = 0;

	if (ex == NULL)
		ex = &ex0;
	memset(ex, 0, sizeof *ex);
	memset(d, 0, sizeof *d);
	pac_sanitize(scheme, host, port, ex->sanitized, sizeof ex->sanitized, key, sizeof key);
	if (pac_decide_cached(p, scheme, host, port, d)) {
		ex->cached = 1;
		return;
	}
	/* the host argument without IPv6 brackets, as browsers pass it */
	hl = strlen(host);
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
		snprintf(hhost, sizeof hhost, "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(hhost, sizeof hhost, "%s", host);
	snprintf(ex->host, sizeof ex->host, "%s", hhost);
	if (p->auto_detect) {
		int k;

		snprintf(cands[nc++], sizeof cands[0], "http://wpad/wpad.dat");
		for (k = 0; k < p->ndevolve && k < 4; k++)
			snprintf(cands[nc++], sizeof cands[0], "http://%s/wpad.dat", p->devolve[k]);
		nwpad = nc;
	}
	if (p->script_url[0])
		snprintf(cands[nc++], sizeof cands[0], "%s", p->script_url);
	pthread_mutex_lock(&pac_eval_mu);
	for (i = 0; i < nc; i++) {
		err[0] = '\0';
		if (pac_script_get(p, cands[i], &s, &stale, &retry_in, err, sizeof err) == 0) {
			ok = 0;
			break;
		}
		size_t o = strlen(ex->tried);
		snprintf(ex->tried + o, sizeof ex->tried - o, "%sPAC %.300s%s: %.300s", o ? "; " : "",
		    cands[i], i < nwpad ? " (WPAD)" : "", err);
	}
	if (ok == 0) {
		snprintf(ex->source, sizeof ex->source, "%s%s", s->url, i < nwpad ? " (WPAD)" : "");
		snprintf(ex->hash, sizeof ex->hash, "%s", s->hash);
		ex->age_s = (long)(pac_mono() - s->fetched);
		ex->stale = stale;
		ok = pac_eval(s, ex->sanitized, hhost, p->call_timeout_ms, ex->result,
		    sizeof ex->result, &ex->ex_fn, err, sizeof err);
		if (ok != 0)
			snprintf(ex->error, sizeof ex->error, "PAC %s: %s", s->url, err);
	} else {
		snprintf(ex->error, sizeof ex->error, "%s", ex->tried);
	}
	pthread_mutex_unlock(&pac_eval_mu);
	if (ok == 0 && pac_result_parse(ex->result, strlen(ex->result), &r) != 0) {
		snprintf(ex->error, sizeof ex->error, "PAC %.600s: FindProxyForURL returned \"%.200s\", "
		    "which is not a proxy list (%s)", ex->source, ex->result, r.note);
		ok = -1;
	}
	if (ok != 0) {
		d->direct = 1;
		char again[64] = "";

		if (retry_in > 0)
			snprintf(again, sizeof again, " (next download in %ld s)", retry_in);
		snprintf(d->reason, sizeof d->reason, "%.400s; using DIRECT as .NET does%s",
		    ex->error, again);
		pac_set_last_error(d->reason);
		log_warn("proxy", "event=pac.failed dest=%s reason=%s", log_q(key), log_q(d->reason));
		return;	/* failures are not cached: the next call retries (with back-off) */
	}
	pac_set_last_error("");
	pac_to_decision(&r, d, chosen, sizeof chosen);
	snprintf(base, sizeof base, "PAC %.200s%s (sha256 %.12s, %ld s old): \"%.120s\"",
	    ex->source, stale ? " (stale: its refresh failed)" : "", ex->hash, ex->age_s,
	    ex->result);
	snprintf(d->reason, sizeof d->reason, "%s -> %.100s", base, chosen);
	pac_cache_key(p, key, ck, sizeof ck);
	slot = pac_key_slot(ck);
	pthread_mutex_lock(&pac_mu);
	snprintf(pac_results[slot].key, sizeof pac_results[slot].key, "%s", ck);
	pac_results[slot].at = pac_mono();
	pac_results[slot].r = r;
	memcpy(pac_results[slot].base, base, sizeof base);
	pthread_mutex_unlock(&pac_mu);
}

void
pac_shutdown(void)
{
	size_t i;

	pthread_mutex_lock(&pac_eval_mu);
	if (pac_pid > 0 || pac_fd >= 0)
		pac_helper_stop("shutdown");
	for (i = 0; i < PAC_NSCRIPTS; i++) {
		free(pac_scripts[i].text);
		memset(&pac_scripts[i], 0, sizeof pac_scripts[i]);
	}
	pthread_mutex_unlock(&pac_eval_mu);
	pthread_mutex_lock(&pac_mu);
	memset(pac_results, 0, sizeof pac_results);
	memset(pac_bads, 0, sizeof pac_bads);
	pthread_mutex_unlock(&pac_mu);
}

int
pac_helper_pid(void)
{
	int pid;

	pthread_mutex_lock(&pac_eval_mu);
	pid = pac_pid;
	pthread_mutex_unlock(&pac_eval_mu);
	return pid;
}
