/* sdnotify: systemd readiness (Type=notify) and the watchdog, on an event loop.
 *
 * Under systemd (NOTIFY_SOCKET set), sdnotify_ready() tells the manager the
 * daemon is serving (READY=1 with a STATUS= line) and, when the unit has
 * WatchdogSec=, arms a timer on the daemon's own event loop that sends
 * WATCHDOG=1 every half period: a loop that stops turning stops the pings and
 * systemd restarts the service. Outside systemd every call does nothing.
 * Built on libsystemd's sd_notify when configure found it; without it, a
 * daemon started with NOTIFY_SOCKET logs once that readiness is not built. */
#ifndef SHIR_SDNOTIFY_H
#define SHIR_SDNOTIFY_H

#include <stdbool.h>

struct event_base;
struct sdnotify;

/* Sends READY=1 and STATUS=status, arms the watchdog. `who` names the log
 * subsystem. Returns NULL outside systemd or when nothing is built (not an
 * error: there is nothing to free). */
struct sdnotify *sdnotify_ready(struct event_base *base, const char *who, const char *status);

/* STATUS=... (a line for `systemctl status`); no-op outside systemd. */
void sdnotify_status(const char *status);

/* STOPPING=1; then the watchdog timer is freed by sdnotify_free. */
void sdnotify_stopping(void);

void sdnotify_free(struct sdnotify *n);

/* true when built with libsystemd */
bool sdnotify_built(void);

#endif
