/* pac: PAC decisions for proxy_decide()/proxy_dial(): the script (fetched,
 * cached 12 h, stale-while-error, retried with back-off), its evaluation in
 * shir-pac-helper (a process of its own, killed and restarted when a call
 * takes longer than its limit), the DNS answers the script asks for, a short
 * cache of results, and proxies marked bad after a failed connection.
 * Blocking: called from the PAC threads, workers and shirctl, never from the
 * event loop (proxy_dial() runs it on a thread of its own). Thread-safe. */
#ifndef SHIR_PAC_H
#define SHIR_PAC_H

#include <stddef.h>

#include "proxy/proxy.h"

#define PAC_BAD_SECONDS 300	/* a proxy that failed to connect is tried last (Chromium) */
#define PAC_RESULT_TTL 60	/* seconds a FindProxyForURL answer is reused per scheme+host+port */
#define PAC_SCRIPT_TTL (12 * 3600)

struct pac_params {
	char script_url[1024];	/* scriptLocation or proxy.pac_url; "" none */
	char origin[600];	/* where it was set, for messages */
	int auto_detect;	/* WPAD first */
	char devolve[4][300];	/* opt-in: wpad.<domain>, wpad.<parent> ... (host names) */
	int ndevolve;
	long download_timeout_ms;
	int retry_interval_s;	/* a failed download is retried after this at the latest */
	int call_timeout_ms;	/* per FindProxyForURL call (5 s) */
};

/* What a decision saw, for `shirctl proxy explain`. */
struct pac_explain {
	char source[1100];	/* the script's URL (WPAD: which name) */
	char tried[1200];	/* sources that failed before, and why */
	char hash[65];		/* SHA-256 of the script text, hex */
	long age_s;		/* since it was fetched */
	char sanitized[600];	/* the URL the script saw */
	char host[300];		/* and the host */
	char result[1024];	/* what FindProxyForURL(Ex) returned */
	int ex_fn;		/* 1: the script's FindProxyForURLEx answered */
	char error[1200];	/* why PAC gave no answer ("" when it did) */
	int cached;		/* the result came from the short cache */
	int stale;		/* the script is older than 12 h: a refresh failed */
};

/* Decides url (already parsed by proxy_decide: scheme, host, port) with PAC.
 * Never fails: a broken PAC falls back to DIRECT with d->reason saying why.
 * ex may be NULL. */
void pac_decide(const struct pac_params *p, const char *scheme, const char *host, int port,
    struct proxy_decision *d, struct pac_explain *ex);
/* Only from the result cache; 1 when it answered. Never blocks on the helper. */
int pac_decide_cached(const struct pac_params *p, const char *scheme, const char *host, int port,
    struct proxy_decision *d);

/* A proxy of a PAC decision could not be reached: tried last for 5 minutes. */
void pac_mark_bad(const char *proxy_url);
/* The last PAC failure (for status and diagnose), "" when the last attempt
 * worked; age in seconds in *age. */
void pac_last_error(char *buf, size_t len, long *age);
/* proxy_decide() plus what PAC saw (ex->source "" when PAC was not asked). */
int proxy_decide_explain(const struct proxy_config *pc, const char *url, struct proxy_decision *d,
    struct pac_explain *ex);
/* Stops the helper (tests, shutdown). */
void pac_shutdown(void);
/* Unit tests only: moves the clock of the caches (script age, retry delays,
 * result cache, bad proxies) forward. */
void pac_test_clock_advance(long seconds);
/* The helper's pid, or -1 (tests and benchmarks). */
int pac_helper_pid(void);

#endif
