#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "node/workpool.h"

struct wp_item {
	struct wp_item *next;
	void *job;
	workpool_run_fn run;
	workpool_done_fn done;
	int ran;
};

struct wp_list {
	struct wp_item *head, *tail;
	int n;
};

struct workpool {
	struct event_base *base;
	struct event *ev_done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t *threads;
	int nthreads;
	int queue_max;
	int running;
	int closed;	/* no new jobs */
	int stopping;	/* threads exit */
	struct wp_list queue;	/* waiting for a worker */
	struct wp_list done;	/* finished, completion not yet run */
};

static void
wp_push(struct wp_list *l, struct wp_item *it)
{
	it->next = NULL;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
	l->n++;
}

static struct wp_item *
wp_pop(struct wp_list *l)
{
	struct wp_item *it = l->head;

	if (it == NULL)
		return NULL;
	l->head = it->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->n--;
	return it;
}

static void *
wp_thread(void *arg)
{
	struct workpool *p = arg;
	struct wp_item *it;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && p->queue.n == 0)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->queue.n == 0 && p->stopping)
			break;
		it = wp_pop(&p->queue);
		p->running++;
		pthread_mutex_unlock(&p->mu);
		it->run(it->job);
		it->ran = 1;
		pthread_mutex_lock(&p->mu);
		p->running--;
		wp_push(&p->done, it);
		/* the one libevent call from a worker: thread safe since
		 * evthread_use_pthreads() */
		event_active(p->ev_done, EV_READ, 0);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void
wp_drain_done(struct workpool *p)
{
	struct wp_list l;
	struct wp_item *it;

	pthread_mutex_lock(&p->mu);
	l = p->done;
	memset(&p->done, 0, sizeof p->done);
	pthread_mutex_unlock(&p->mu);
	while ((it = wp_pop(&l)) != NULL) {
		it->done(it->job, it->ran);
		free(it);
	}
}

static void
wp_on_done(evutil_socket_t fd, short what, void *arg)
{
	wp_drain_done(arg);
}

int
workpool_default_threads(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	long n = (cpus > 0 ? cpus : 1) * 4;

	if (pages > 0 && psz > 0) {
		long bymem = (long)((double)pages * (double)psz / (64.0 * 1024 * 1024));

		if (bymem < n)
			n = bymem;
	}
	if (n < 2)
		n = 2;
	if (n > 64)
		n = 64;
	return (int)n;
}

struct workpool *
workpool_new(struct event_base *base, int nthreads, int queue_max, struct shir_error *err)
{
	struct workpool *p = calloc(1, sizeof *p);
	int i, rc;

	if (p == NULL) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory creating the worker pool");
		return NULL;
	}
	p->base = base;
	p->queue_max = queue_max < 1 ? 1 : queue_max;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->ev_done = event_new(base, -1, 0, wp_on_done, p);
	p->threads = calloc((size_t)nthreads, sizeof *p->threads);
	if (p->ev_done == NULL || p->threads == NULL) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory creating the worker pool");
		goto fail;
	}
	for (i = 0; i < nthreads; i++) {
		rc = pthread_create(&p->threads[i], NULL, wp_thread, p);
		if (rc != 0) {
			shir_error_set(err, SHIR_EIO, "cannot start worker thread %d of %d: %s; "
			    "lower node.concurrent_jobs", i + 1, nthreads, strerror(rc));
			goto fail;
		}
		p->nthreads++;
	}
	return p;
fail:
	workpool_free(p);
	return NULL;
}

void
workpool_close(struct workpool *p)
{
	struct wp_list l;
	struct wp_item *it;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->closed = 1;
	l = p->queue;
	memset(&p->queue, 0, sizeof p->queue);
	pthread_mutex_unlock(&p->mu);
	while ((it = wp_pop(&l)) != NULL) {
		it->done(it->job, 0);
		free(it);
	}
}

void
workpool_free(struct workpool *p)
{
	int i;

	if (p == NULL)
		return;
	workpool_close(p);
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	if (p->ev_done != NULL) {
		wp_drain_done(p);
		event_free(p->ev_done);
	}
	free(p->threads);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int
workpool_submit(struct workpool *p, void *job, workpool_run_fn run, workpool_done_fn done)
{
	struct wp_item *it;

	pthread_mutex_lock(&p->mu);
	if (p->closed) {
		pthread_mutex_unlock(&p->mu);
		return SHIR_ECLOSED;
	}
	if (p->queue.n >= p->queue_max) {
		pthread_mutex_unlock(&p->mu);
		return SHIR_EBUSY;
	}
	pthread_mutex_unlock(&p->mu);
	it = calloc(1, sizeof *it);
	if (it == NULL)
		return SHIR_ENOMEM;
	it->job = job;
	it->run = run;
	it->done = done;
	pthread_mutex_lock(&p->mu);
	if (p->queue.n >= p->queue_max || p->closed) {
		int rc = p->closed ? SHIR_ECLOSED : SHIR_EBUSY;

		pthread_mutex_unlock(&p->mu);
		free(it);
		return rc;
	}
	wp_push(&p->queue, it);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void
workpool_set_queue_max(struct workpool *p, int queue_max)
{
	pthread_mutex_lock(&p->mu);
	p->queue_max = queue_max < 1 ? 1 : queue_max;
	pthread_mutex_unlock(&p->mu);
}

int
workpool_threads(const struct workpool *p)
{
	return p->nthreads;
}

#define WP_GETTER(name, expr) \
	int name(struct workpool *p) \
	{ \
		int v; \
		pthread_mutex_lock(&p->mu); \
		v = (expr); \
		pthread_mutex_unlock(&p->mu); \
		return v; \
	}
WP_GETTER(workpool_queued, p->queue.n)
WP_GETTER(workpool_running, p->running)
WP_GETTER(workpool_queue_max, p->queue_max)
