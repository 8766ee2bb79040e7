/* workpool: a bounded pool of worker threads with a bounded queue. Jobs run
 * on a worker; their completion runs on the event loop thread (the pool wakes
 * the loop with event_active, the only libevent call made from a worker).
 * A full queue refuses the job at once (SHIR_EBUSY), so memory never grows
 * with the number of callers. */
#ifndef SHIR_WORKPOOL_H
#define SHIR_WORKPOOL_H

#include <stddef.h>

#include "common/shir_err.h"

struct event_base;
struct workpool;

/* run: on a worker thread. done: on the loop thread, exactly once per
 * accepted job (also for jobs dropped at shutdown: then ran is 0). */
typedef void (*workpool_run_fn)(void *job);
typedef void (*workpool_done_fn)(void *job, int ran);

/* nthreads >= 1, queue_max >= 1. Returns NULL on failure (err filled). */
struct workpool *workpool_new(struct event_base *base, int nthreads, int queue_max,
    struct shir_error *err);
/* Stops taking jobs, drops queued ones (their done runs with ran = 0 from
 * here, on the calling loop thread), waits for running ones, joins the
 * threads. NULL is fine. Jobs that finished but whose completion had not run
 * yet are completed here too. */
void workpool_free(struct workpool *p);

/* Queues a job. SHIR_EBUSY when the queue is full, SHIR_ECLOSED after
 * workpool_close(). */
int workpool_submit(struct workpool *p, void *job, workpool_run_fn run, workpool_done_fn done);
/* Drops every queued (not started) job: done runs with ran = 0, now, on the
 * loop thread. Later submits fail with SHIR_ECLOSED. */
void workpool_close(struct workpool *p);
void workpool_set_queue_max(struct workpool *p, int queue_max);

int workpool_threads(const struct workpool *p);
int workpool_queued(struct workpool *p);
int workpool_running(struct workpool *p);
int workpool_queue_max(struct workpool *p);

/* The worker count to use for concurrent_jobs = 0: four per core (store
 * calls mostly wait on the network), at most one per 64 MiB of memory,
 * between 2 and 64. */
int workpool_default_threads(void);

#endif
