#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "node/listener/chstate.h"
#include "common/log.h"
#include "node/node.h"
#include "relay/announce.h"

static const char *const chstate_names[] = {
	[CHSTATE_CONNECTING] = "Connecting",
	[CHSTATE_CONNECTED] = "Connected",
	[CHSTATE_DISCONNECTED] = "Disconnected",
};

static const char *const chstate_why_names[CHSTATE_WHY_COUNT] = {
	[CHSTATE_WHY_NETWORK] = "network", [CHSTATE_WHY_PROXY] = "proxy",
	[CHSTATE_WHY_TLS] = "tls", [CHSTATE_WHY_HANDSHAKE] = "handshake",
	[CHSTATE_WHY_CLOSED] = "closed", [CHSTATE_WHY_DEAD] = "dead",
	[CHSTATE_WHY_PROTOCOL] = "protocol", [CHSTATE_WHY_CONFIG] = "config",
};

static const char *const chstate_proxy_kinds[CHSTATE_PROXY_COUNT] = {
	[CHSTATE_PROXY_AUTH] = "auth", [CHSTATE_PROXY_DENIED] = "denied",
	[CHSTATE_PROXY_UNREACHABLE] = "unreachable", [CHSTATE_PROXY_TIMEOUT] = "timeout",
	[CHSTATE_PROXY_OTHER] = "other",
};

const char *
chstate_why_name(enum chstate_why why)
{
	return (unsigned)why < CHSTATE_WHY_COUNT ? chstate_why_names[why] : "?";
}

const char *
chstate_proxy_kind_name(enum chstate_proxy_kind k)
{
	return (unsigned)k < CHSTATE_PROXY_COUNT ? chstate_proxy_kinds[k] : "?";
}

/* The proxy dialer's error codes (proxy/proxy_dial.c) sorted into kinds. */
enum chstate_proxy_kind
chstate_proxy_kind(int shir_code)
{
	switch (shir_code) {
	case SHIR_EAUTH:
		return CHSTATE_PROXY_AUTH;
	case SHIR_EPROXY:
		return CHSTATE_PROXY_DENIED;
	case SHIR_ETIMEDOUT:
		return CHSTATE_PROXY_TIMEOUT;
	case SHIR_EDNS:
	case SHIR_ECONNREFUSED:
	case SHIR_EIO:
		return CHSTATE_PROXY_UNREACHABLE;
	default:
		return CHSTATE_PROXY_OTHER;
	}
}

const char *
chstate_name(enum chstate_state s)
{
	if ((unsigned)s >= sizeof chstate_names / sizeof chstate_names[0])
		return "?";
	return chstate_names[s];
}

void
chstate_init(struct chstate *cs, const char *name, const char *endpoint, const char *path)
{
	memset(cs, 0, sizeof *cs);
	snprintf(cs->name, sizeof cs->name, "%s", name ? name : "");
	snprintf(cs->endpoint, sizeof cs->endpoint, "%s", endpoint ? endpoint : "");
	snprintf(cs->path, sizeof cs->path, "%s", path ? path : "");
	cs->state = CHSTATE_CONNECTING;
	backoff_init(&cs->bo, BACKOFF_STABLE_MS_DEFAULT);
}

/* The one setter: logs old -> new. */
static void
chstate_set(struct chstate *cs, enum chstate_state to)
{
	if (cs->state != to)
		log_info("listener", "event=channel.state channel=%s old=%s new=%s", log_q(cs->name),
		    chstate_name(cs->state), chstate_name(to));
	cs->state = to;
}

void
chstate_connecting(struct chstate *cs, int64_t now_ms)
{
	cs->next_retry_ms = 0;
	cs->stopped = 0;
	chstate_set(cs, CHSTATE_CONNECTING);
}

void
chstate_connected(struct chstate *cs, int64_t now_ms)
{
	cs->connected_since_ms = now_ms;
	cs->next_retry_ms = 0;
	cs->last_error[0] = '\0';
	cs->connects++;
	backoff_up(&cs->bo, now_ms);
	chstate_set(cs, CHSTATE_CONNECTED);
}

static const char *
chstate_close_meaning(int code)
{
	switch (code) {
	case 1000: return "normal closure";
	case 1001: return "the hybrid connection was deleted or disabled, or the relay is going away";
	case 1006: return "the connection dropped without a close frame";
	case 1008: return "the token expired or a token renewal was refused";
	case 1011: return "internal error in the relay";
	}
	return "unexpected close code";
}

int64_t
chstate_down(struct chstate *cs, int64_t now_ms, enum chstate_why why, int code,
    const char *detail, uint32_t rnd)
{
	const char *d = detail && *detail ? detail : NULL;
	char *e = cs->last_error;
	size_t n = sizeof cs->last_error;
	int retry = 1;
	int64_t delay;

	if ((unsigned)why < CHSTATE_WHY_COUNT)
		cs->downs[why]++;
	if (why == CHSTATE_WHY_PROXY)
		cs->proxy_fails[(unsigned)code < CHSTATE_PROXY_COUNT ? code : CHSTATE_PROXY_OTHER]++;
	switch (why) {
	case CHSTATE_WHY_NETWORK:
		snprintf(e, n, "relay %s unreachable: %s", cs->endpoint, d ? d : "network error");
		break;
	case CHSTATE_WHY_PROXY:
		snprintf(e, n, "relay %s unreachable through %s", cs->endpoint,
		    d ? d : "the proxy: the proxy failed");
		break;
	case CHSTATE_WHY_TLS:
		snprintf(e, n, "TLS with relay %s failed: %s", cs->endpoint, d ? d : "handshake error");
		break;
	case CHSTATE_WHY_HANDSHAKE:
		if (code == 404) {
			snprintf(e, n,
			    "the hybrid connection %s does not exist on relay %s (404 %s); create it "
			    "on the relay or fix relay.path; not retrying until the configuration "
			    "changes", cs->path, cs->endpoint, d ? d : "Endpoint does not exist");
			retry = 0;
		} else if (code == 401) {
			snprintf(e, n,
			    "relay %s refused the node's key (401 %s): authorization failed; check "
			    "relay.key_name and relay.key_file (or register the node again)",
			    cs->endpoint, d ? d : "Unauthorized");
		} else if (code == 403) {
			snprintf(e, n,
			    "relay %s refused the node's key for %s (403 %s): authorization failed; "
			    "the key needs the Listen right on this hybrid connection", cs->endpoint,
			    cs->path, d ? d : "Forbidden");
		} else if (code == 409 && d != NULL &&
		    strncmp(d, ANNOUNCE_NAME_IN_USE, strlen(ANNOUNCE_NAME_IN_USE)) == 0) {
			snprintf(e, n,
			    "relay %s refused this node (409 %s): another machine is connected to "
			    "%s under this node's name; give each node its own name ([node] name in "
			    "shird.conf); retrying in case the other one is gone", cs->endpoint, d,
			    cs->path);
		} else {
			snprintf(e, n, "relay %s answered the listen request with %d%s%s", cs->endpoint,
			    code, d ? " " : "", d ? d : "");
		}
		break;
	case CHSTATE_WHY_CLOSED:
		snprintf(e, n, "relay %s closed the channel with %d (%s)%s%s", cs->endpoint, code,
		    chstate_close_meaning(code), d ? ": " : "", d ? d : "");
		break;
	case CHSTATE_WHY_DEAD:
		snprintf(e, n, "relay %s stopped answering pings for %d s; the connection is "
		    "considered dead", cs->endpoint, code);
		break;
	case CHSTATE_WHY_PROTOCOL:
		snprintf(e, n, "relay %s broke the protocol: %s", cs->endpoint, d ? d : "?");
		break;
	case CHSTATE_WHY_CONFIG:
		snprintf(e, n, "%s", d ? d : "the channel's configuration is unusable");
		retry = 0;
		break;
	case CHSTATE_WHY_COUNT:
		snprintf(e, n, "%s", d ? d : "?");
		break;
	}
	backoff_down(&cs->bo, now_ms);
	/* a refused key will not fix itself in a second: back off to 5 s at least */
	if (why == CHSTATE_WHY_HANDSHAKE && (code == 401 || code == 403) && cs->bo.step < 3)
		cs->bo.step = 3;
	cs->connected_since_ms = 0;
	if (!retry) {
		cs->stopped = 1;
		cs->next_retry_ms = 0;
		delay = -1;
	} else {
		delay = backoff_next_ms(&cs->bo, rnd);
		cs->next_retry_ms = now_ms + delay;
	}
	chstate_set(cs, CHSTATE_DISCONNECTED);
	return delay;
}

void
chstate_iso8601(int64_t ms, char *buf, unsigned len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
chstate_add_time(cJSON *o, const char *key, int64_t ms)
{
	char buf[32];

	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	chstate_iso8601(ms, buf, sizeof buf);
	cJSON_AddStringToObject(o, key, buf);
}

void
chstate_to_json(const struct chstate *cs, cJSON *o, int64_t now_ms)
{
	cJSON_AddStringToObject(o, "name", cs->name);
	cJSON_AddStringToObject(o, "state", chstate_name(cs->state));
	cJSON_AddStringToObject(o, "lastError", cs->last_error);
	chstate_add_time(o, "nextRetry", cs->next_retry_ms);
	if (cs->next_retry_ms > 0)
		cJSON_AddNumberToObject(o, "nextRetryInSeconds",
		    (double)((cs->next_retry_ms - now_ms + 999) / 1000 > 0 ?
		    (cs->next_retry_ms - now_ms + 999) / 1000 : 0));
	chstate_add_time(o, "connectedSince", cs->connected_since_ms);
	cJSON_AddNumberToObject(o, "bytesIn", (double)cs->bytes_in);
	cJSON_AddNumberToObject(o, "bytesOut", (double)cs->bytes_out);
	cJSON_AddNumberToObject(o, "requestsInFlight", cs->inflight);
	cJSON_AddStringToObject(o, "endpoint", cs->endpoint);
	cJSON_AddStringToObject(o, "path", cs->path);
	cJSON_AddNumberToObject(o, "connects", cs->connects);
	cJSON_AddBoolToObject(o, "retrying", !cs->stopped);
}

int
chstate_node_status(const struct chstate *const *cs, unsigned n, char *cause, unsigned len)
{
	const struct chstate *down = NULL;
	unsigned i, up = 0, fresh = 0;

	if (n == 0) {
		snprintf(cause, len, "no relay channel is configured: register the node with "
		    "`shirctl register-node KEY` or set [relay] in shird.conf");
		return NODE_NEEDS_REGISTRATION;
	}
	for (i = 0; i < n; i++) {
		if (cs[i]->state == CHSTATE_CONNECTED) {
			up++;
			continue;
		}
		if (cs[i]->state == CHSTATE_CONNECTING && cs[i]->connects == 0 &&
		    cs[i]->last_error[0] == '\0')
			fresh++;
		/* prefer a channel that has a reason to show */
		if (down == NULL || (down->last_error[0] == '\0' && cs[i]->last_error[0] != '\0'))
			down = cs[i];
	}
	if (up == n) {
		snprintf(cause, len, "%u channel%s connected to %s", n, n == 1 ? "" : "s",
		    cs[0]->endpoint);
		return NODE_ONLINE;
	}
	if (up == 0 && fresh == n) {
		snprintf(cause, len, "connecting to relay %s", cs[0]->endpoint);
		return NODE_STARTING;
	}
	if (n > 1)
		snprintf(cause, len, "%u of %u channels down; channel %s: %s", n - up, n, down->name,
		    down->last_error[0] ? down->last_error : "connecting");
	else
		snprintf(cause, len, "%s", down->last_error[0] ? down->last_error : "connecting");
	return up == 0 ? NODE_OFFLINE : NODE_LIMITED;
}
