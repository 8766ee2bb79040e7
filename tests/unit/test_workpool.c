/* Unit tests for the worker pool: bounded queue (SHIR_EBUSY when full),
 * completions on the loop thread, dropped jobs at close, join at free. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "node/workpool.h"

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_t loop_thread;

struct job {
	int ran, done, done_ran;
	pthread_t done_on;
	struct event_base *base;
	int *left;
};

static void
job_run(void *arg)
{
	struct job *j = arg;

	pthread_mutex_lock(&gate);	/* held by the test to keep workers busy */
	pthread_mutex_unlock(&gate);
	j->ran = 1;
}

static void
job_done(void *arg, int ran)
{
	struct job *j = arg;

	j->done++;
	j->done_ran = ran;
	j->done_on = pthread_self();
	if (--*j->left == 0)
		event_base_loopbreak(j->base);
}

static void
test_queue_bounded(void **state)
{
	struct event_base *base;
	struct workpool *p;
	struct shir_error err;
	struct job jobs[6];
	int left = 0, i, accepted = 0, busy = 0;

	evthread_use_pthreads();
	base = event_base_new();
	loop_thread = pthread_self();
	p = workpool_new(base, 2, 3, &err);
	assert_non_null(p);
	assert_int_equal(workpool_threads(p), 2);
	memset(jobs, 0, sizeof jobs);
	pthread_mutex_lock(&gate);
	for (i = 0; i < 6; i++) {
		int rc;

		jobs[i].base = base;
		jobs[i].left = &left;
		rc = workpool_submit(p, &jobs[i], job_run, job_done);
		if (rc == 0) {
			accepted++;
			left++;
			/* let a worker take the first two so the queue holds the rest */
			while (i < 2 && workpool_running(p) < i + 1)
				usleep(1000);
		} else {
			assert_int_equal(rc, SHIR_EBUSY);
			busy++;
		}
	}
	assert_int_equal(accepted, 5);	/* 2 running + 3 queued */
	assert_int_equal(busy, 1);
	assert_int_equal(workpool_queued(p), 3);
	pthread_mutex_unlock(&gate);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	for (i = 0; i < 5; i++) {
		assert_int_equal(jobs[i].ran, 1);
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].done_ran, 1);
		assert_true(pthread_equal(jobs[i].done_on, loop_thread));
	}
	assert_int_equal(jobs[5].done, 0);
	workpool_free(p);
	event_base_free(base);
}

static void
test_close_drops_queued(void **state)
{
	struct event_base *base = event_base_new();
	struct shir_error err;
	struct workpool *p = workpool_new(base, 1, 4, &err);
	struct job jobs[3];
	int left = 3, i;

	memset(jobs, 0, sizeof jobs);
	pthread_mutex_lock(&gate);
	for (i = 0; i < 3; i++) {
		jobs[i].base = base;
		jobs[i].left = &left;
		assert_int_equal(workpool_submit(p, &jobs[i], job_run, job_done), 0);
		while (i == 0 && workpool_running(p) < 1)
			usleep(1000);
	}
	workpool_close(p);	/* the two queued: done now with ran = 0 */
	assert_int_equal(jobs[1].done, 1);
	assert_int_equal(jobs[1].done_ran, 0);
	assert_int_equal(jobs[2].done_ran, 0);
	assert_int_equal(workpool_submit(p, &jobs[0], job_run, job_done), SHIR_ECLOSED);
	pthread_mutex_unlock(&gate);
	workpool_free(p);	/* joins; the running one completes here */
	assert_int_equal(jobs[0].done, 1);
	assert_int_equal(jobs[0].done_ran, 1);
	event_base_free(base);
	workpool_free(NULL);
	assert_true(workpool_default_threads() >= 2 && workpool_default_threads() <= 64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_bounded),
		cmocka_unit_test(test_close_drops_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
