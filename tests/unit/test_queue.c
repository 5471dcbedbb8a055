/* test_queue.c — the scheduler over a real LMDB spool (dataplane/queue.c):
 * grouping per domain, outcomes, retries, DSNs and what is persisted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "queue.h"
#include "spool.h"
#include "spool_waiter.h"

struct fixture {
	char dir[64];
	struct sl_config *cfg;
	struct loop *loop;
	struct spool *spool;
	struct metrics *metrics;
	struct queue *q;
	struct domain_queue *kicked[8];
	int n_kicked;
	bool hold_t; /* tenant "t" may not deliver (on_hold) */
};

static bool may_deliver(void *ctx, const struct spool_msg *m)
{
	struct fixture *f = ctx;

	return !(f->hold_t && !strcmp(m->tenant, "t"));
}

static void kick(void *ctx, struct domain_queue *dq)
{
	struct fixture *f = ctx;

	for (int i = 0; i < f->n_kicked; i++)
		if (f->kicked[i] == dq)
			return;
	if (f->n_kicked < 8)
		f->kicked[f->n_kicked++] = dq;
}

static struct domain_queue *kicked_for(struct fixture *f, const char *domain)
{
	for (int i = 0; i < f->n_kicked; i++)
		if (!strcmp(domain_queue_domain(f->kicked[i]), domain))
			return f->kicked[i];
	return NULL;
}

/* Wait for the spool's writer and hand completions to their owners. */
static void reap(struct fixture *f)
{
	struct spool_op *ops[64];
	size_t n;

	for (int tries = 0; tries < 200; tries++) {
		usleep(2000);
		while ((n = spool_reap(f->spool, ops, 64)) > 0)
			for (size_t i = 0; i < n; i++) {
				struct spool_waiter *w = ops[i]->ctx;

				w->done(w, ops[i]);
			}
	}
}

static int setup(void **state)
{
	static const char yaml[] = "hostname: sluice.test\n"
				   "pools:\n  - name: default\n    ips:\n"
				   "      - address: 198.51.100.10\n        ehlo: a.test\n"
				   "delivery:\n  retry_schedule: [1s, 2s]\n  max_age: 1h\n";
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];
	struct queue_env env;

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/sluice-test-queue.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(config_load_string("t.yaml", yaml, sizeof yaml - 1, &f->cfg, err,
					    sizeof err), 0);
	assert_int_equal(loop_create(64, &f->loop), 0);
	assert_int_equal(spool_open(f->dir, 1 << 24, false, 64, &f->spool), 0);
	assert_int_equal(metrics_create(&f->metrics), 0);
	env = (struct queue_env){ .loop = f->loop, .spool = f->spool, .metrics = f->metrics,
				  .cfg = f->cfg, .hooks = { .kick = kick, .ctx = f,
							    .may_deliver = may_deliver,
							    .tenant_ctx = f } };
	assert_int_equal(queue_create(&env, &f->q), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	spool_close(f->spool);
	queue_destroy(f->q);
	metrics_destroy(f->metrics);
	loop_destroy(f->loop);
	config_free(f->cfg);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* PUT a message through the spool, then queue it as ingress does. */
static uint64_t add_message_stream(struct fixture *f, const char *from, const char **rcpts,
				   uint32_t n, uint8_t stream);
static uint64_t add_message(struct fixture *f, const char *from, const char **rcpts, uint32_t n)
{
	return add_message_stream(f, from, rcpts, n, SL_STREAM_TRANSACTIONAL);
}

static uint64_t add_message_stream(struct fixture *f, const char *from, const char **rcpts,
				   uint32_t n, uint8_t stream)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	struct spool_rcpt rs[8] = { 0 };
	struct spool_msg m = { .tenant = "t", .pool = "default", .mail_from = (char *)from,
			       .message_id = "<1@t>", .received_ms = loop_wall_ms(),
			       .rcpts = rs, .n_rcpts = n };
	struct spool_op op = { .kind = SPOOL_OP_PUT, .msg = &m, .body = body,
			       .body_len = sizeof body - 1 };
	struct spool_op *done;

	for (uint32_t i = 0; i < n; i++)
		rs[i].addr = (char *)rcpts[i];
	m.stream = stream;
	m.id = spool_next_id(f->spool);
	assert_int_equal(spool_submit(f->spool, &op), 0);
	while (spool_reap(f->spool, &done, 1) == 0)
		usleep(1000);
	assert_int_equal(done->result, 0);
	assert_int_equal(queue_add(f->q, &m), 0);
	return m.id;
}

static const struct smtp_reply OK = { .code = 250, .enhanced = "2.0.0", .text = "Ok" };
static const struct smtp_reply LATER = { .code = 451, .enhanced = "4.3.0", .text = "later" };
static const struct smtp_reply GONE = { .code = 550, .enhanced = "5.1.1", .text = "no user" };

static int count_stored(void *ctx, const struct spool_msg *m)
{
	(void)m;
	(*(int *)ctx)++;
	return 0;
}

static void test_groups_recipients_per_domain(void **state)
{
	struct fixture *f = *state;
	const char *rcpts[] = { "a@gmail.test", "b@yahoo.test", "c@GMAIL.test" };
	struct domain_queue *g, *y;
	struct delivery *d;
	struct queue_stats st;

	add_message(f, "s@acme.test", rcpts, 3);
	g = kicked_for(f, "gmail.test");
	y = kicked_for(f, "yahoo.test");
	assert_non_null(g);
	assert_non_null(y);
	assert_int_equal(domain_queue_ready(g), 1);
	d = domain_queue_take(g);
	assert_int_equal(d->n_rcpts, 2); /* both gmail.test recipients, one transaction */
	queue_stats(f->q, &st);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.active, 1);
	assert_int_equal(st.ready, 1);
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	d = domain_queue_take(y);
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	reap(f);
	queue_stats(f->q, &st);
	assert_int_equal(st.messages, 0); /* every recipient final: deleted */
	{
		int n = 0;

		assert_int_equal(spool_scan(f->spool, count_stored, &n), 0);
		assert_int_equal(n, 0);
	}
}

static int first_rcpt_state(void *ctx, const struct spool_msg *m)
{
	struct spool_rcpt *out = ctx;

	*out = m->rcpts[0];
	out->addr = NULL;
	return 0;
}

static void test_deferral_is_persisted_and_retried(void **state)
{
	struct fixture *f = *state;
	const char *rcpts[] = { "a@gmail.test" };
	struct domain_queue *g;
	struct delivery *d;
	struct queue_stats st;
	struct spool_rcpt r;
	uint64_t t0;

	add_message(f, "s@acme.test", rcpts, 1);
	g = kicked_for(f, "gmail.test");
	d = domain_queue_take(g);
	t0 = loop_wall_ms();
	delivery_rcpt_result(f->q, d, 0, &(struct rcpt_outcome){ .reply = &LATER });
	queue_delivery_done(f->q, d, 1);
	queue_stats(f->q, &st);
	assert_int_equal(st.deferred, 1);
	assert_int_equal(domain_queue_ready(g), 0);
	reap(f);
	assert_int_equal(spool_scan(f->spool, first_rcpt_state, &r), 0);
	assert_int_equal(r.state, SPOOL_RCPT_PENDING);
	assert_int_equal(r.attempts, 1);
	/* the 1 s retry interval counts from the deferral, however slow the
	 * commit above was */
	assert_true(r.next_attempt_ms >= t0 + 1000);
	/* The retry timer (1 s) puts it back on the ready list. */
	for (int i = 0; i < 40 && !domain_queue_ready(g); i++)
		loop_run_once(f->loop, 100);
	assert_int_equal(domain_queue_ready(g), 1);
}

static int find_dsn(void *ctx, const struct spool_msg *m)
{
	if (m->mail_from[0] == 0 && m->n_rcpts == 1 &&
	    !strcmp(m->rcpts[0].addr, "sender@acme.test"))
		(*(int *)ctx)++;
	return 0;
}

static void test_bounce_makes_a_dsn(void **state)
{
	struct fixture *f = *state;
	const char *rcpts[] = { "gone@gmail.test", "ok@gmail.test" };
	struct delivery *d;
	int dsns = 0;

	add_message(f, "sender@acme.test", rcpts, 2);
	d = domain_queue_take(kicked_for(f, "gmail.test"));
	delivery_rcpt_result(f->q, d, 0, &(struct rcpt_outcome){ .reply = &GONE });
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	reap(f);
	assert_int_equal(spool_scan(f->spool, find_dsn, &dsns), 0);
	assert_int_equal(dsns, 1);
	/* The DSN itself is queued for the sender's domain. */
	assert_non_null(kicked_for(f, "acme.test"));
}

static void test_null_sender_gets_no_dsn(void **state)
{
	struct fixture *f = *state;
	const char *rcpts[] = { "gone@gmail.test" };
	struct delivery *d;
	int n = 0;

	add_message(f, "", rcpts, 1);
	d = domain_queue_take(kicked_for(f, "gmail.test"));
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &GONE });
	queue_delivery_done(f->q, d, 1);
	reap(f);
	assert_int_equal(spool_scan(f->spool, count_stored, &n), 0);
	assert_int_equal(n, 0);
}

static void test_recover_rebuilds_the_queue(void **state)
{
	struct fixture *f = *state;
	const char *rcpts[] = { "a@gmail.test", "b@outlook.test" };
	struct queue_env env = { .loop = f->loop, .spool = f->spool, .metrics = f->metrics,
				 .cfg = f->cfg, .hooks = { .kick = kick, .ctx = f } };
	struct queue_stats st;

	add_message(f, "s@acme.test", rcpts, 2);
	queue_destroy(f->q);
	f->n_kicked = 0;
	assert_int_equal(queue_create(&env, &f->q), 0);
	assert_int_equal(queue_recover(f->q), 1);
	queue_stats(f->q, &st);
	assert_int_equal(st.ready, 2);
	assert_non_null(kicked_for(f, "outlook.test"));
}

static void test_transactional_first(void **state)
{
	struct fixture *f = *state;
	const char *rcpts[] = { "a@gmail.test" };
	uint64_t mkt1, mkt2, tx;
	struct domain_queue *g;
	struct delivery *d;

	mkt1 = add_message_stream(f, "m@acme.test", rcpts, 1, SL_STREAM_MARKETING);
	mkt2 = add_message_stream(f, "m@acme.test", rcpts, 1, SL_STREAM_MARKETING);
	tx = add_message_stream(f, "t@acme.test", rcpts, 1, SL_STREAM_TRANSACTIONAL);
	g = kicked_for(f, "gmail.test");
	assert_int_equal(domain_queue_ready(g), 3);
	d = domain_queue_take(g);
	assert_int_equal(delivery_msg(d)->id, tx); /* came last, goes first */
	queue_delivery_requeue(f->q, d);
	d = domain_queue_take(g); /* a requeued delivery keeps its place */
	assert_int_equal(delivery_msg(d)->id, tx);
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	d = domain_queue_take(g);
	assert_int_equal(delivery_msg(d)->id, mkt1);
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	d = domain_queue_take(g);
	assert_int_equal(delivery_msg(d)->id, mkt2);
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	reap(f);
}

/* A tenant that may not deliver: its ready work is held, not offered,
 * and released in order once it may again. */
static void test_held_tenant(void **state)
{
	struct fixture *f = *state;
	const char *r1[] = { "a@gmail.test" }, *r2[] = { "b@gmail.test" };
	struct domain_queue *g;
	struct delivery *d;
	struct queue_stats st;
	uint64_t id1, id2;

	id1 = add_message(f, "s@acme.test", r1, 1);
	g = kicked_for(f, "gmail.test");
	assert_non_null(g);
	assert_int_equal(domain_queue_ready(g), 1);
	f->hold_t = true;
	queue_tenants_changed(f->q); /* ready work is pulled back */
	assert_int_equal(domain_queue_ready(g), 0);
	assert_null(domain_queue_take(g));
	id2 = add_message(f, "s@acme.test", r2, 1); /* new work is held at once */
	queue_stats(f->q, &st);
	assert_int_equal(st.held, 2);
	assert_int_equal(st.ready, 0);
	assert_int_equal(domain_queue_ready(g), 0);
	queue_tenants_changed(f->q); /* still held: nothing moves */
	queue_stats(f->q, &st);
	assert_int_equal(st.held, 2);
	f->hold_t = false;
	queue_tenants_changed(f->q);
	queue_stats(f->q, &st);
	assert_int_equal(st.held, 0);
	assert_int_equal(st.ready, 2);
	assert_int_equal(domain_queue_ready(g), 2);
	d = domain_queue_take(g);
	assert_int_equal(delivery_msg(d)->id, id1); /* oldest first */
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	d = domain_queue_take(g);
	assert_int_equal(delivery_msg(d)->id, id2);
	delivery_all_result(f->q, d, &(struct rcpt_outcome){ .reply = &OK });
	queue_delivery_done(f->q, d, 1);
	reap(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_groups_recipients_per_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferral_is_persisted_and_retried, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bounce_makes_a_dsn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_sender_gets_no_dsn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_rebuilds_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactional_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_tenant, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
