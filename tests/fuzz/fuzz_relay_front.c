/* Fuzz target: shir-relay's HTTP/WebSocket front end as a whole. Each input
 * is the byte stream of one client connection (over a socketpair) to a relay
 * that knows "myhc" (rule k / key "secret", Listen+Send) and "open"
 * (anonymous senders): routing, SAS checks, HTTP relaying without a listener,
 * upgrades to control channels (then frames), connect, accept and request
 * rendezvous ids. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "relay/server/relay_conf.h"
#include "relay/server/relay_srv.h"

static struct event_base *base;
static struct rsrv *srv;

static void
cleanup(void)
{
	rsrv_free(srv);
	event_base_free(base);
}

static int
init(void)
{
	char dir[] = "/tmp/shir-fuzz-relay-XXXXXX", path[128], state[128];
	struct shir_error e;
	struct relay_conf *c;
	FILE *f;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(state, sizeof state, "%s/state.json", dir);
	snprintf(path, sizeof path, "%s/relay.conf", dir);
	f = fopen(state, "w");
	if (f == NULL)
		return -1;
	fputs("{\"entities\":[{\"name\":\"myhc\",\"rules\":[{\"name\":\"k\",\"key\":\"secret\","
	    "\"rights\":[\"Listen\",\"Send\"]}]},{\"name\":\"open\",\"anonymousSenders\":true,"
	    "\"rules\":[]}]}", f);
	fclose(f);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "[relay]\nlisten = 127.0.0.1:1\nstate_file = %s\n[limits]\nmax_header_bytes = 4096\n"
	    "inline_max = 2048\nresponse_timeout = 1\n", state);
	fclose(f);
	log_set_level(getenv("FUZZ_RELAY_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	c = relay_conf_load(path, &e);
	if (base == NULL || c == NULL)
		return -1;
	srv = rsrv_new(base, c, path, &e);
	if (srv == NULL || rsrv_start_unbound(srv, &e) != 0)
		return -1;
	/* loaded once and kept in memory: the files can go */
	unlink(state);
	unlink(path);
	rmdir(dir);
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	int sv[2], i;
	struct bufferevent *bev;
	size_t off = 0;

	if (!ready) {
		if (init() != 0)
			abort();
		ready = true;
	}
	if (size > 60000)
		size = 60000;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	rsrv_adopt(srv, bev);
	while (off < size) {
		ssize_t w = write(sv[1], data + off, size - off);

		if (w <= 0)
			break;
		off += (size_t)w;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	for (i = 0; i < 6; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	close(sv[1]);
	for (i = 0; i < 50 && rsrv_connections(srv) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return 0;
}
