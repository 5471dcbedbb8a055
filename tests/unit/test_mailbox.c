/* test_mailbox.c — closures from other threads run on the loop (dataplane/mailbox.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "loop.h"
#include "mailbox.h"

struct fixture {
	struct loop *loop;
	struct mailbox *mb;
	pthread_t loop_thread;
	int counter;         /* touched only on the loop thread */
	atomic_int finished; /* client threads done */
	int bad_thread;      /* closures that ran elsewhere than the loop thread */
};

static int incr(void *arg)
{
	struct fixture *f = arg;

	if (!pthread_equal(pthread_self(), f->loop_thread))
		f->bad_thread++;
	return ++f->counter;
}

enum { CALLS = 500 };

static void *caller(void *arg)
{
	struct fixture *f = arg;
	int last = 0;

	for (int i = 0; i < CALLS; i++) {
		int v = mailbox_call(f->mb, incr, f);

		if (v <= last) /* results are fresh and increasing for each caller */
			break;
		last = v;
	}
	atomic_fetch_add(&f->finished, 1);
	return NULL;
}

static void setup_fixture(struct fixture *f)
{
	*f = (struct fixture){ .loop_thread = pthread_self() };
	assert_int_equal(loop_create(64, &f->loop), 0);
	assert_int_equal(mailbox_create(f->loop, &f->mb), 0);
}

static void run_until(struct fixture *f, int finished)
{
	for (int spins = 0; atomic_load(&f->finished) < finished && spins < 100000; spins++)
		loop_run_once(f->loop, 10);
}

static void test_calls_from_threads_run_on_loop(void **state)
{
	struct fixture f;
	pthread_t t[3];

	(void)state;
	setup_fixture(&f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, caller, &f), 0);
	run_until(&f, 3);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(f.counter, 3 * CALLS);
	assert_int_equal(f.bad_thread, 0);
	mailbox_destroy(f.mb);
	loop_destroy(f.loop);
}

/* mailbox_await: the completion comes from a later loop callback (a timer
 * here, the spool commit in the daemon). */
struct later {
	struct loop_timer timer;
	struct mailbox_wait *w;
	struct fixture *f;
};

static void later_fire(struct loop_timer *t)
{
	struct later *l = (struct later *)t;

	mailbox_complete(l->w, 42);
}

static void start_later(struct mailbox_wait *w, void *arg)
{
	struct later *l = arg;

	l->w = w;
	l->timer.cb = later_fire;
	loop_timer_arm(l->f->loop, &l->timer, 5);
}

struct await_ctx {
	struct fixture *f;
	struct later later;
	int result;
};

static void *awaiter(void *arg)
{
	struct await_ctx *a = arg;

	a->later.f = a->f;
	a->result = mailbox_await(a->f->mb, start_later, &a->later);
	atomic_fetch_add(&a->f->finished, 1);
	return NULL;
}

static void test_await_completes_from_later_callback(void **state)
{
	struct fixture f;
	struct await_ctx a;
	pthread_t t;

	(void)state;
	setup_fixture(&f);
	a = (struct await_ctx){ .f = &f };
	assert_int_equal(pthread_create(&t, NULL, awaiter, &a), 0);
	run_until(&f, 1);
	pthread_join(t, NULL);
	assert_int_equal(a.result, 42);
	mailbox_destroy(f.mb);
	loop_destroy(f.loop);
}

static int never(void *arg)
{
	(void)arg;
	return 0;
}

struct posted {
	struct mailbox_msg m; /* first */
	int count;
};

static void ran(struct mailbox_msg *m)
{
	((struct posted *)m)->count++;
}

static void test_close_runs_queued_then_refuses(void **state)
{
	struct fixture f;
	struct posted posted = { .m.run = ran };

	(void)state;
	setup_fixture(&f);
	/* On the loop thread the blocking calls refuse instead of hanging. */
	assert_int_equal(mailbox_call(f.mb, never, NULL), -EDEADLK);
	assert_true(mailbox_on_loop(f.mb));
	assert_int_equal(mailbox_post(f.mb, &posted.m), 0);
	mailbox_close(f.mb);
	assert_int_equal(posted.count, 1);
	assert_int_equal(mailbox_post(f.mb, &posted.m), -EPIPE);
	mailbox_destroy(f.mb);
	loop_destroy(f.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calls_from_threads_run_on_loop),
		cmocka_unit_test(test_await_completes_from_later_callback),
		cmocka_unit_test(test_close_runs_queued_then_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
