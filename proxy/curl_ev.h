/* curl_ev: libcurl's multi_socket API driven by a libevent base (as curl's
 * docs/examples/hiperfifo.c): the socket callback keeps one persistent event
 * per socket curl watches, the timer callback one timer, and after every
 * socket or timer action the owner's check function runs, where it reads
 * curl_multi_info_read for finished transfers. The proxy's CONNECT dialer and
 * the node's copy-job queue client use it; nothing here blocks.
 *
 * The owner adds and removes easy handles on curl_ev_multi() itself; it should
 * not free a transfer inside curl's callbacks (do it from an event of its own,
 * as both owners do). */
#ifndef SHIR_CURL_EV_H
#define SHIR_CURL_EV_H

#include <curl/curl.h>

struct event_base;
struct curl_ev;

/* Runs after each curl_multi_socket_action, on the loop. */
typedef void (*curl_ev_check_fn)(void *arg);

/* A new multi handle on base; NULL when out of memory. */
struct curl_ev *curl_ev_new(struct event_base *base, curl_ev_check_fn check, void *arg);
CURLM *curl_ev_multi(const struct curl_ev *ce);
/* Forgets every socket curl told about and stops the timer (the owner ended
 * its transfers and starts afresh). */
void curl_ev_forget(struct curl_ev *ce);
/* Forgets the sockets and the timer, unhooks the callbacks and hands the multi
 * handle to the caller, who drives what is left of it (its transfers, its
 * sockets) by itself and cleans it up; ce is freed. */
CURLM *curl_ev_detach(struct curl_ev *ce);
/* Cleans up the multi handle (remove the easy handles first) and the events. */
void curl_ev_free(struct curl_ev *ce);

#endif
