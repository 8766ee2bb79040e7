/* sdnotify: see sdnotify.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/log.h"
#include "common/sdnotify.h"

struct sdnotify {
	struct event *ev_watchdog;
	unsigned long long pings;
};

bool
sdnotify_built(void)
{
#ifdef HAVE_LIBSYSTEMD
	return true;
#else
	return false;
#endif
}

#ifdef HAVE_LIBSYSTEMD
static void
sdnotify_ping(evutil_socket_t fd, short what, void *arg)
{
	struct sdnotify *n = arg;

	n->pings++;
	sd_notify(0, "WATCHDOG=1");
}

struct sdnotify *
sdnotify_ready(struct event_base *base, const char *who, const char *status)
{
	struct sdnotify *n;
	uint64_t usec = 0;
	char msg[512];

	if (getenv("NOTIFY_SOCKET") == NULL)
		return NULL;
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status ? status : "serving");
	if (sd_notify(0, msg) <= 0)
		log_warn(who, "event=sd_notify status=failed reason=\"cannot reach NOTIFY_SOCKET\"");
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return NULL;
	n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->ev_watchdog = event_new(base, -1, EV_PERSIST, sdnotify_ping, n);
	{
		struct timeval half = { (time_t)(usec / 2000000), (suseconds_t)(usec / 2 % 1000000) };

		if (n->ev_watchdog == NULL || event_add(n->ev_watchdog, &half) != 0) {
			log_warn(who, "event=watchdog status=failed reason=\"cannot arm the timer\"");
			sdnotify_free(n);
			return NULL;
		}
	}
	sd_notify(0, "WATCHDOG=1");
	log_info(who, "event=watchdog status=armed period_ms=%llu",
	    (unsigned long long)(usec / 1000));
	return n;
}

void
sdnotify_status(const char *status)
{
	char msg[512];

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	snprintf(msg, sizeof msg, "STATUS=%s", status);
	sd_notify(0, msg);
}

void
sdnotify_stopping(void)
{
	if (getenv("NOTIFY_SOCKET") != NULL)
		sd_notify(0, "STOPPING=1");
}
#else
struct sdnotify *
sdnotify_ready(struct event_base *base, const char *who, const char *status)
{
	if (getenv("NOTIFY_SOCKET") != NULL)
		log_warn(who, "event=sd_notify status=not_built reason=\"built without libsystemd: "
		    "no Type=notify readiness nor watchdog (install libsystemd-dev and rebuild)\"");
	return NULL;
}

void
sdnotify_status(const char *status)
{
}

void
sdnotify_stopping(void)
{
}
#endif

void
sdnotify_free(struct sdnotify *n)
{
	if (n == NULL)
		return;
	if (n->ev_watchdog)
		event_free(n->ev_watchdog);
	free(n);
}
