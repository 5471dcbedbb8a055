/* test_offload.c — worker pool hand-off (dataplane/offload.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "offload.h"

struct job {
	struct offload_job base;
	int in, out;
	pthread_t ran_on;
	int *done_count;
};

static void run(struct offload_job *j)
{
	struct job *x = (struct job *)j;

	x->out = x->in * 2;
	x->ran_on = pthread_self();
}

static void done(struct offload_job *j)
{
	(*((struct job *)j)->done_count)++;
}

static void test_jobs_run_on_workers_and_come_back(void **state)
{
	enum { N = 1000 };
	static struct job jobs[N];
	struct offload *o;
	int count = 0;

	(void)state;
	assert_int_equal(offload_create(2, &o), 0);
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct job){ .base = { .run = run, .done = done }, .in = i,
					.done_count = &count };
		assert_int_equal(offload_submit(o, &jobs[i].base), 0);
	}
	/* Bounded by time, not by wake-ups: on a loaded machine each wake-up
	 * may bring back only a few jobs. */
	for (time_t end = time(NULL) + 60; count < N && time(NULL) < end;) {
		struct pollfd p = { .fd = offload_fd(o), .events = POLLIN };

		poll(&p, 1, 10);
		offload_reap(o);
	}
	assert_int_equal(count, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].out, 2 * i);
		assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
	}
	offload_destroy(o);
}

static void test_destroy_finishes_pending_jobs(void **state)
{
	static struct job jobs[10];
	struct offload *o;
	int count = 0;

	(void)state;
	assert_int_equal(offload_create(1, &o), 0);
	for (int i = 0; i < 10; i++) {
		jobs[i] = (struct job){ .base = { .run = run, .done = done }, .in = i,
					.done_count = &count };
		offload_submit(o, &jobs[i].base);
	}
	offload_destroy(o);
	assert_int_equal(count, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_run_on_workers_and_come_back),
		cmocka_unit_test(test_destroy_finishes_pending_jobs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
