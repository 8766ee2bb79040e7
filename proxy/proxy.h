/* proxy: which proxy a destination goes through, exactly as a Windows node
 * decides it from the .NET <defaultProxy> element of diahost.exe.config /
 * diawp.exe.config (or the service's environment, or a custom proxy from
 * shird.conf), and asynchronous tunnels through it.
 *
 * A struct proxy_config is immutable once loaded and reference counted: the
 * daemon swaps the current one on reload while dials that started with the
 * old one keep their own reference. proxy_decide() is safe to call from any
 * thread; it does no I/O unless the configuration uses PAC (scriptLocation,
 * autoDetect, proxy.pac_url): then it may fetch and run the script, bounded by
 * the download and per-call time limits, so it is never called on the event
 * loop (proxy_dial() runs it on a thread of its own).
 * See docs/proxy.md. */
#ifndef SHIR_PROXY_H
#define SHIR_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/shir_err.h"

struct proxy_config;

enum proxy_mode { PROXY_MODE_NONE = 0, PROXY_MODE_SYSTEM, PROXY_MODE_CUSTOM };
const char *proxy_mode_name(int mode);	/* "none", "system", "custom" */

/* What the node's configuration says about proxies (shird.conf's [proxy]
 * section; node/conf.c owns the strings). */
struct proxy_settings {
	int mode;			/* enum proxy_mode */
	char *dotnet_config;		/* diahost.exe.config, read in system mode */
	char *dotnet_config_worker;	/* diawp.exe.config */
	char *address;			/* custom mode */
	int port;
	char *user;
	char *password_file;
	int auth;			/* index into "any|basic|digest|ntlm|negotiate" */
	int connect_timeout;		/* seconds */
	char *ca_file;
	char *pac_url;			/* custom mode: a PAC file (http:, https:, file:) */
	bool wpad_devolution;		/* system mode, autoDetect: wpad.<parent domains> too */
	const char *source;		/* the file they came from, for messages */
};
struct event_base;
struct bufferevent;
struct cJSON;

/* Builds the configuration of shird.conf's [proxy] section: mode none reads
 * nothing; system reads both .NET files (diahost's wins when they differ)
 * plus the environment where the .NET rules lead there; custom reads the
 * password file (it must not be readable by group or others). */
int proxy_config_load(const struct proxy_settings *c, struct proxy_config **out, struct shir_error *err);
/* Mode system from one .NET config file (for `shirctl proxy explain --config`). */
int proxy_config_load_dotnet(const char *file, struct proxy_config **out, struct shir_error *err);

/* What the decision needs from the machine; every NULL member is detected
 * (environ, getifaddrs, the host name / resolv.conf domain). For tests and
 * tools. */
struct proxy_sysinfo {
	const char *const *env;		/* "NAME=value" strings, NULL-terminated */
	const char *domain;		/* the machine's primary DNS domain ("" = none) */
	const char *const *addrs;	/* the machine's own addresses, as text */
	size_t naddrs;
};
int proxy_config_load_with(const struct proxy_settings *c, const struct proxy_sysinfo *si,
    struct proxy_config **out, struct shir_error *err);
int proxy_config_load_dotnet_with(const char *file, const struct proxy_sysinfo *si,
    struct proxy_config **out, struct shir_error *err);

struct proxy_config *proxy_config_ref(struct proxy_config *pc);
void proxy_config_unref(struct proxy_config *pc);	/* accepts NULL */

/* Warnings found while loading (one per line, "" when none): the files
 * disagree, PAC/WPAD not evaluated and which fallback applies, ... */
const char *proxy_config_warnings(const struct proxy_config *pc);
/* The effective settings, without secrets (for status and `proxy show`). */
void proxy_config_describe(const struct proxy_config *pc, struct cJSON *obj);
/* Whether two loaded configurations decide and authenticate alike (what the
 * .NET files, the environment and shird.conf said, the password included):
 * a reload re-dials only when they do not. */
int proxy_config_same(const struct proxy_config *a, const struct proxy_config *b);
/* proxy.connect_timeout of the configuration it came from (seconds). */
int proxy_config_connect_timeout(const struct proxy_config *pc);

#define PROXY_MAX_PROXIES 8
struct proxy_decision {
	int direct;
	size_t nproxies;
	char proxies[PROXY_MAX_PROXIES][512];	/* "http://host:port", in failover order */
	char reason[512];			/* which step or rule decided */
};

/* Decides for a destination URL (scheme://host[:port][/...]). Returns 0, or
 * SHIR_EINVAL for a URL it cannot parse (d->reason then says why). */
int proxy_decide(const struct proxy_config *pc, const char *url, struct proxy_decision *d);

/* Points a libcurl easy handle at proxy_url (one of a decision's proxies): the
 * proxy, its user and password or Negotiate, its CA file. The credentials stay
 * inside proxy/: callers never see them. */
void proxy_curl_setup(const struct proxy_config *pc, void *curl_easy, const char *proxy_url);
/* The user configured for proxy_url: NULL for none, "" for the service's own
 * Kerberos identity (Negotiate). Never the password. */
const char *proxy_config_user(const struct proxy_config *pc, const char *proxy_url);

/* --- tunnels ----------------------------------------------------------------
 * bev: a connected bufferevent carrying the raw stream to host:port (the
 * caller adds TLS to the destination on top, e.g. bufferevent_openssl_filter_new).
 * Ownership passes to the callback; NULL with err set on failure. */
typedef void (*proxy_dial_cb)(void *arg, struct bufferevent *bev, const struct shir_error *err);
struct proxy_dial;

/* Dials host:port, direct or through the proxies that proxy_decide() gives for
 * dest_url (tried in order), within timeout_s seconds (0: the configuration's
 * connect_timeout). Never blocks the loop; cb runs later on the loop, never
 * from inside this call. Returns NULL only when out of memory. */
struct proxy_dial *proxy_dial(struct event_base *base, struct proxy_config *pc,
    const char *dest_url, const char *host, int port, int timeout_s, proxy_dial_cb cb, void *arg);
/* Before the callback ran: stops the dial, cb will not be called. The handle
 * is gone once the callback has run (do not cancel it then). */
void proxy_dial_cancel(struct proxy_dial *d);

/* A URL's parts, read by libcurl's URL parser (CURLU): scheme and host in
 * lower case (an IPv6 literal in brackets), the port (explicit, else the
 * scheme's default, -1 unknown), the path (decoded as given, "/" when none),
 * whether the host is an IP literal and whether it is loopback (localhost,
 * 127.0.0.0/8, ::1). 0, or -1 with why. */
struct proxy_url {
	char scheme[32];
	char host[300];
	int port;
	char path[1024];
	bool ip, loopback;
};
int proxy_url_parse(const char *url, struct proxy_url *u, char *why, size_t wl);

#endif
