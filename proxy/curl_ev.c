/* curl_ev: see curl_ev.h. */
#include "config.h"

#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "proxy/curl_ev.h"

struct curl_ev_sock {
	struct curl_ev *ce;
	struct event *ev;
	curl_socket_t fd;
	struct curl_ev_sock *next;
};

struct curl_ev {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct curl_ev_sock *socks;
	curl_ev_check_fn check;
	void *arg;
};

static void
sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct curl_ev_sock *s = arg;
	struct curl_ev *ce = s->ce;	/* s may be freed inside socket_action */
	int running = 0, act = 0;

	if (what & EV_READ)
		act |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		act |= CURL_CSELECT_OUT;
	curl_multi_socket_action(ce->multi, fd, act, &running);
	ce->check(ce->arg);
}

static void
sock_free(struct curl_ev *ce, struct curl_ev_sock *s)
{
	struct curl_ev_sock **pp;

	for (pp = &ce->socks; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (s->ev)
		event_free(s->ev);
	free(s);
}

static int
socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct curl_ev *ce = userp;
	struct curl_ev_sock *s = socketp;
	short kind = EV_PERSIST;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(ce->multi, fd, NULL);
			sock_free(ce, s);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s == NULL) {
		if ((s = calloc(1, sizeof *s)) == NULL)
			return -1;
		s->ce = ce;
		s->fd = fd;
		s->next = ce->socks;
		ce->socks = s;
		curl_multi_assign(ce->multi, fd, s);
	} else if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	s->ev = event_new(ce->base, fd, kind, sock_event, s);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		return -1;
	return 0;
}

static void
timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct curl_ev *ce = arg;
	int running = 0;

	(void)fd;
	(void)what;
	curl_multi_socket_action(ce->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	ce->check(ce->arg);
}

static int
timer_cb(CURLM *m, long ms, void *userp)
{
	struct curl_ev *ce = userp;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)m;
	if (ms < 0)
		return evtimer_del(ce->timer);
	return evtimer_add(ce->timer, &tv);
}

struct curl_ev *
curl_ev_new(struct event_base *base, curl_ev_check_fn check, void *arg)
{
	struct curl_ev *ce = calloc(1, sizeof *ce);

	if (ce == NULL)
		return NULL;
	ce->base = base;
	ce->check = check;
	ce->arg = arg;
	ce->multi = curl_multi_init();
	ce->timer = evtimer_new(base, timer_event, ce);
	if (ce->multi == NULL || ce->timer == NULL) {
		curl_ev_free(ce);
		return NULL;
	}
	curl_multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
	curl_multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
	return ce;
}

CURLM *
curl_ev_multi(const struct curl_ev *ce)
{
	return ce->multi;
}

void
curl_ev_forget(struct curl_ev *ce)
{
	while (ce->socks != NULL) {
		curl_multi_assign(ce->multi, ce->socks->fd, NULL);
		sock_free(ce, ce->socks);
	}
	evtimer_del(ce->timer);
}

CURLM *
curl_ev_detach(struct curl_ev *ce)
{
	CURLM *m = ce->multi;

	curl_ev_forget(ce);
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, NULL);
	ce->multi = NULL;
	curl_ev_free(ce);
	return m;
}

void
curl_ev_free(struct curl_ev *ce)
{
	if (ce == NULL)
		return;
	if (ce->multi)		/* may still tell of sockets it closes */
		curl_multi_cleanup(ce->multi);
	while (ce->socks != NULL)
		sock_free(ce, ce->socks);
	if (ce->timer)
		event_free(ce->timer);
	free(ce);
}
