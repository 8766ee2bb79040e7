/* relaycheck: walks the path from this node to a relay endpoint, step by
 * step, and says where it breaks and why: DNS, the proxy decision, TCP,
 * the proxy's CONNECT, TLS (verification and the key's pin), and the relay's
 * listen handshake (a WebSocket upgrade with the node key's SAS token).
 * The connection is made by shird's own code, so diagnose tests what the
 * node runs: relay/hcdial (proxy_dial through the proxy, TLS verification,
 * the pin) and the WebSocket client of relay/ws, with the listen URL and SAS
 * audience the node's channels use. The proxy decision and the DNS step come
 * first, to name whose name is resolved and where. Blocking (it runs a loop
 * of its own): for shirctl only (register-node's connection test and
 * `shirctl diagnose`), never for shird's loop. */
#ifndef SHIR_RELAYCHECK_H
#define SHIR_RELAYCHECK_H

#include "common/shir_err.h"

struct proxy_config;

enum relaycheck_step {
	RELAYCHECK_DNS = 0,
	RELAYCHECK_PROXY,
	RELAYCHECK_TCP,
	RELAYCHECK_CONNECT,
	RELAYCHECK_TLS,
	RELAYCHECK_LISTEN,
	/* a self-contained service endpoint instead of the listen handshake:
	 * the Upgrade: reverse request, then the relay's HTTP/2 SETTINGS */
	RELAYCHECK_UPGRADE,
	RELAYCHECK_SETTINGS,
	RELAYCHECK_NSTEPS
};

enum relaycheck_result { RELAYCHECK_NOT_RUN = 0, RELAYCHECK_OK, RELAYCHECK_FAILED,
	RELAYCHECK_SKIPPED };

struct relaycheck_target {
	const char *endpoint;	/* wss://host[:port] (ws:// for loopback test relays) */
	const char *hc;		/* hybrid connection; NULL: stop after TLS */
	const char *key_name;
	const char *key;
	const char *tls_pin;	/* "sha256/<base64>" or NULL */
	const char *ca_file;	/* NULL: the system's CA bundle */
	int timeout_s;
	int selfcontained;	/* a self-contained service endpoint (upgrade, SETTINGS) */
};

struct relaycheck_report {
	enum relaycheck_result res[RELAYCHECK_NSTEPS];
	char detail[RELAYCHECK_NSTEPS][600];
	int broken;		/* the first failed step, or -1 */
	int selfcontained;	/* the target was a self-contained service endpoint */
};

/* Whether step i belongs to this report's kind of endpoint (listen for a
 * Hybrid Connections endpoint, upgrade and settings for a service endpoint). */
int relaycheck_step_applies(const struct relaycheck_report *rep, int i);

/* pc: the node's proxy configuration, or NULL when it failed to load
 * (proxy_err then says why; the proxy step fails with it). */
void relaycheck_run(const struct proxy_config *pc, const char *proxy_err,
    const struct relaycheck_target *t, struct relaycheck_report *rep);
const char *relaycheck_step_name(enum relaycheck_step s);
const char *relaycheck_result_name(enum relaycheck_result r);

#endif
