/*
 * test_policy.c — reputation windows and the threshold engine: bucket and
 * window math, volume guards, every threshold, escalation warn -> hold ->
 * grace_expired, recovery, repeat holds, spam traps, volume spikes,
 * configuration, the memory bound and the audit output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>

#include <cmocka.h>

#include "err.h"
#include "policy.h"

#define MIN (60ull * 1000)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define T0 (1700000000000ull / HOUR * HOUR) /* on a bucket boundary */

static struct policy *mk(void)
{
	struct policy_config c;
	struct policy *p;

	policy_config_default(&c);
	p = policy_create(&c, 0);
	assert_non_null(p);
	return p;
}

static const struct policy_key ck = { "acme", "News.Example.com", 1 }; /* a cfgset */
static const struct policy_key tk = { "acme", NULL, 0 };               /* the tenant */

static void rec(struct policy *p, const struct policy_key *k, enum policy_metric m, uint32_t n,
		uint64_t t)
{
	assert_int_equal(policy_record(p, k, m, n, t), 0);
}

/* Send n, deliver n - bounced, bounce `bounced` (of which `unknown` unknown users). */
static void batch(struct policy *p, const struct policy_key *k, uint32_t n, uint32_t bounced,
		  uint32_t unknown, uint64_t t)
{
	rec(p, k, POLICY_ACCEPTED, n, t);
	rec(p, k, POLICY_SENT, n, t);
	rec(p, k, POLICY_DELIVERED, n - bounced, t);
	if (bounced)
		rec(p, k, POLICY_BOUNCED, bounced, t);
	if (unknown)
		rec(p, k, POLICY_UNKNOWN_USER, unknown, t);
}

static int eval(struct policy *p, const struct policy_key *k, uint64_t t, struct policy_decision *d)
{
	int n = policy_evaluate(p, k, t, d, 2);
	assert_true(n >= 0);
	return n;
}

static void test_window_math(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_status st;

	/* one sent in each of 30 hours: the 24h window holds the last 24 */
	for (unsigned h = 0; h < 30; h++)
		rec(p, &ck, POLICY_SENT, 1, T0 + h * HOUR + 5 * MIN);
	assert_int_equal(policy_status(p, &ck, T0 + 29 * HOUR + 6 * MIN, &st), 0);
	assert_int_equal(st.n.count[POLICY_SENT], 24);
	/* the tenant counts the same */
	assert_int_equal(policy_status(p, &tk, T0 + 29 * HOUR + 6 * MIN, &st), 0);
	assert_int_equal(st.n.count[POLICY_SENT], 24);
	/* a later "now" slides the window even without new events */
	assert_int_equal(policy_status(p, &ck, T0 + 40 * HOUR, &st), 0);
	assert_int_equal(st.n.count[POLICY_SENT], 13);
	assert_int_equal(policy_status(p, &ck, T0 + 60 * HOUR, &st), 0);
	assert_int_equal(st.n.count[POLICY_SENT], 0);
	/* the ring reuses slots: an old bucket's counts do not leak into a new one */
	rec(p, &ck, POLICY_SENT, 7, T0 + 100 * DAY);
	assert_int_equal(policy_status(p, &ck, T0 + 100 * DAY, &st), 0);
	assert_int_equal(st.n.count[POLICY_SENT], 7);
	/* domains are case-insensitive; other streams and domains are other sets */
	{
		struct policy_key k2 = { "acme", "news.EXAMPLE.com", 1 };
		struct policy_key k3 = { "acme", "news.example.com", 0 };
		assert_int_equal(policy_status(p, &k2, T0 + 100 * DAY, &st), 0);
		assert_int_equal(st.n.count[POLICY_SENT], 7);
		assert_int_equal(policy_status(p, &k3, T0 + 100 * DAY, &st), SL_ENOTFOUND);
	}
	assert_int_equal(policy_count(p), 2);
	policy_free(p);
}

static void test_guards(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct policy_status st;

	/* 50 sent, 25 bounced: 50% but under the 100-sent guard */
	batch(p, &ck, 50, 25, 25, T0);
	assert_int_equal(eval(p, &ck, T0, d), 0);
	assert_int_equal(policy_status(p, &ck, T0, &st), 0);
	assert_true(st.n.bounce_rate < 0 && st.n.unknown_rate < 0 && st.n.complaint_rate < 0);
	/* 999 delivered, 5 complaints: under the 1000-delivered guard */
	batch(p, &ck, 974, 0, 0, T0);
	rec(p, &ck, POLICY_COMPLAINT, 5, T0);
	assert_int_equal(policy_status(p, &ck, T0, &st), 0);
	assert_int_equal(st.n.count[POLICY_DELIVERED], 999);
	assert_true(st.n.complaint_rate < 0);
	/* but the bounce guard is met now: 25 / 1024 = 2.4%, fine */
	assert_int_equal(eval(p, &ck, T0, d), 0);
	policy_free(p);

	p = mk();
	batch(p, &ck, 1024, 0, 0, T0);
	rec(p, &ck, POLICY_COMPLAINT, 3, T0);
	assert_int_equal(policy_status(p, &ck, T0, &st), 0);
	assert_true(st.n.complaint_rate > 0);
	/* 3 / 1024 = 0.29%: judged now, a warn for the set and the tenant */
	assert_int_equal(eval(p, &ck, T0, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_WARN);
	policy_free(p);
}

static void test_thresholds(void **state)
{
	(void)state;
	static const struct {
		uint32_t sent, bounced, unknown, complaints, traps;
		enum tenant_event ev;
		enum policy_reason reason;
	} cases[] = {
		{ 1000, 40, 0, 0, 0, 0, 0 },                                       /* 4%: fine */
		{ 1000, 50, 0, 0, 0, TENANT_EV_POLICY_WARN, POLICY_R_BOUNCE_RATE }, /* 5% */
		{ 1000, 99, 0, 0, 0, TENANT_EV_POLICY_WARN, POLICY_R_BOUNCE_RATE },
		{ 1000, 100, 0, 0, 0, TENANT_EV_POLICY_HOLD, POLICY_R_BOUNCE_RATE }, /* 10% */
		{ 1000, 30, 30, 0, 0, TENANT_EV_POLICY_WARN, POLICY_R_UNKNOWN_RATE }, /* 3% */
		{ 1000, 80, 80, 0, 0, TENANT_EV_POLICY_HOLD, POLICY_R_UNKNOWN_RATE }, /* 8% */
		{ 2000, 0, 0, 1, 0, 0, 0 },                                          /* 0.05% */
		{ 2000, 0, 0, 2, 0, TENANT_EV_POLICY_WARN, POLICY_R_COMPLAINT_RATE }, /* 0.1% */
		{ 2000, 0, 0, 6, 0, TENANT_EV_POLICY_HOLD, POLICY_R_COMPLAINT_RATE }, /* 0.3% */
		{ 10, 0, 0, 0, 1, TENANT_EV_POLICY_HOLD, POLICY_R_SPAM_TRAP },      /* any trap */
		/* the worst finding decides: a complaint hold over a bounce warn */
		{ 2000, 120, 0, 6, 0, TENANT_EV_POLICY_HOLD, POLICY_R_COMPLAINT_RATE },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy *p = mk();
		struct policy_decision d[2];
		int n;

		batch(p, &ck, cases[i].sent, cases[i].bounced, cases[i].unknown, T0);
		if (cases[i].complaints)
			rec(p, &ck, POLICY_COMPLAINT, cases[i].complaints, T0);
		if (cases[i].traps)
			rec(p, &ck, POLICY_TRAP_HIT, cases[i].traps, T0);
		n = eval(p, &ck, T0 + MIN, d);
		if (!cases[i].ev) {
			assert_int_equal(n, 0);
		} else {
			assert_true(n >= 1);
			if (d[0].event != cases[i].ev || d[0].reason != cases[i].reason || !d[0].cfgset)
				fail_msg("case %zu: %s", i, d[0].text);
			/* the tenant has the same numbers, except one trap is not enough */
			if (cases[i].traps)
				assert_int_equal(n, 1);
			else
				assert_true(n == 2 && !d[1].cfgset && d[1].event == cases[i].ev);
			assert_true(d[0].value >= d[0].threshold);
		}
		policy_free(p);
	}
}

static void test_escalation_and_grace(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct policy_status st;

	batch(p, &ck, 1000, 60, 0, T0);
	assert_int_equal(eval(p, &ck, T0, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_WARN);
	/* warned stays warned: no repeated decision */
	assert_int_equal(eval(p, &ck, T0 + MIN, d), 0);
	/* worse: hold, with a grace deadline */
	batch(p, &ck, 100, 60, 0, T0 + HOUR);
	assert_int_equal(eval(p, &ck, T0 + HOUR, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_HOLD);
	assert_true(d[0].grace_until_ms == T0 + HOUR + DAY);
	assert_non_null(strstr(d[0].text, "configuration set acme/news.example.com/marketing"));
	assert_non_null(strstr(d[0].text, "bounce_rate 10.91% >= 10.00%"));
	/* held: nothing new until the grace deadline */
	assert_int_equal(eval(p, &ck, T0 + 2 * HOUR, d), 0);
	assert_int_equal(policy_tick(p, T0 + HOUR + DAY - 1, d, 2), 0);
	/* at the deadline the numbers (before the hold + since) are still bad */
	assert_int_equal(policy_tick(p, T0 + HOUR + DAY, d, 1), 1);
	assert_int_equal(d[0].event, TENANT_EV_GRACE_EXPIRED);
	assert_int_equal(policy_tick(p, T0 + HOUR + DAY, d, 2), 1); /* the other subject */
	assert_int_equal(d[0].event, TENANT_EV_GRACE_EXPIRED);
	assert_int_equal(policy_status(p, &ck, T0 + HOUR + DAY, &st), 0);
	assert_int_equal(st.state, POLICY_DISABLED);
	assert_int_equal(policy_tick(p, T0 + 3 * DAY, d, 2), 0);
	policy_free(p);
}

static void test_recovery(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];

	batch(p, &ck, 1000, 70, 0, T0);
	assert_int_equal(eval(p, &ck, T0, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_WARN);
	/* clean mail dilutes the rate: 70 / 1500 = 4.7% < 5% */
	batch(p, &ck, 500, 0, 0, T0 + 2 * HOUR);
	assert_int_equal(eval(p, &ck, T0 + 2 * HOUR, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_RECOVER);
	assert_int_equal(d[0].reason, POLICY_R_RECOVERED);
	/* warn again, then recover as the bad hour leaves the window (tick) */
	batch(p, &ck, 100, 50, 0, T0 + 3 * HOUR);
	assert_int_equal(eval(p, &ck, T0 + 3 * HOUR, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_WARN);
	/* at +25h the window (hours 2..25) is 600 sent, 50 bounced: 8.3%, warned */
	assert_int_equal(policy_tick(p, T0 + 25 * HOUR, d, 2), 0);
	/* at +27h nothing is left: under the guard is not a finding */
	assert_int_equal(policy_tick(p, T0 + 27 * HOUR, d, 2), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_RECOVER);
	policy_free(p);
}

static void test_repeat_disables(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct policy_status st;

	batch(p, &ck, 1000, 200, 0, T0);
	assert_int_equal(eval(p, &ck, T0, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_HOLD);
	/* the operator resumes both: counters start afresh */
	assert_int_equal(policy_set_state(p, &ck, POLICY_OK, 0, T0 + HOUR), 0);
	assert_int_equal(policy_set_state(p, &tk, POLICY_OK, 0, T0 + HOUR), 0);
	assert_int_equal(policy_status(p, &ck, T0 + HOUR, &st), 0);
	assert_int_equal(st.n.count[POLICY_SENT], 0);
	assert_int_equal(st.holds, 1);
	assert_int_equal(eval(p, &ck, T0 + HOUR, d), 0);
	/* bad again within 7 days: disabled at once */
	batch(p, &ck, 1000, 200, 0, T0 + 2 * DAY);
	assert_int_equal(eval(p, &ck, T0 + 2 * DAY, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_DISABLE);
	assert_int_equal(d[1].event, TENANT_EV_POLICY_DISABLE);
	policy_free(p);

	/* ... but after 7 days it is a first-time hold again */
	p = mk();
	batch(p, &ck, 1000, 200, 0, T0);
	assert_int_equal(eval(p, &ck, T0, d), 2);
	assert_int_equal(policy_set_state(p, &ck, POLICY_OK, 0, T0 + HOUR), 0);
	assert_int_equal(policy_set_state(p, &tk, POLICY_OK, 0, T0 + HOUR), 0);
	batch(p, &ck, 1000, 200, 0, T0 + 8 * DAY);
	assert_int_equal(eval(p, &ck, T0 + 8 * DAY, d), 2);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_HOLD);
	assert_int_equal(d[1].event, TENANT_EV_POLICY_HOLD);
	policy_free(p);
}

static void test_spam_traps(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct policy_key other = { "acme", "shop.example.com", 0 };

	/* a trap holds the configuration set at once; three hold the tenant */
	rec(p, &ck, POLICY_TRAP_HIT, 1, T0);
	assert_int_equal(eval(p, &ck, T0, d), 1);
	assert_true(d[0].cfgset && d[0].event == TENANT_EV_POLICY_HOLD &&
		    d[0].reason == POLICY_R_SPAM_TRAP);
	rec(p, &other, POLICY_TRAP_HIT, 2, T0 + MIN);
	assert_int_equal(eval(p, &other, T0 + MIN, d), 2);
	assert_true(d[0].cfgset && d[0].event == TENANT_EV_POLICY_HOLD);
	assert_true(!d[1].cfgset && d[1].event == TENANT_EV_POLICY_HOLD &&
		    d[1].reason == POLICY_R_SPAM_TRAP && d[1].value == 3);
	policy_free(p);
}

static void test_volume_spike(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct policy_status st;
	const struct policy_key t2 = { "newco", NULL, 0 };

	/* 8 hours of about 100 an hour, with quiet hours between */
	for (unsigned h = 0; h < 16; h += 2)
		batch(p, &tk, 90 + h, 0, 0, T0 + h * HOUR);
	assert_int_equal(eval(p, &tk, T0 + 15 * HOUR, d), 0);
	/* baseline: the median of 90, 92, ..., 104 is 97, so the limit is 970 */
	batch(p, &tk, 960, 0, 0, T0 + 16 * HOUR);
	assert_int_equal(eval(p, &tk, T0 + 16 * HOUR, d), 0);
	assert_int_equal(policy_status(p, &tk, T0 + 16 * HOUR, &st), 0);
	assert_true(fabs(st.n.baseline - 97) < 1e-9);
	assert_int_equal(st.n.bucket_sent, 960);
	batch(p, &tk, 20, 0, 0, T0 + 16 * HOUR + MIN);
	assert_int_equal(eval(p, &tk, T0 + 16 * HOUR + MIN, d), 0); /* 980 < floor 1000 */
	batch(p, &tk, 21, 0, 0, T0 + 16 * HOUR + 2 * MIN);
	assert_int_equal(eval(p, &tk, T0 + 16 * HOUR + 2 * MIN, d), 1);
	assert_int_equal(d[0].event, TENANT_EV_POLICY_HOLD);
	assert_int_equal(d[0].reason, POLICY_R_VOLUME_SPIKE);
	assert_true(d[0].value == 1001 && fabs(d[0].threshold - 970) < 1e-9);
	assert_non_null(strstr(d[0].text, "volume spike"));
	/* at the grace deadline the rates are fine: held for an operator, not disabled */
	assert_int_equal(policy_tick(p, T0 + 17 * HOUR + DAY, d, 2), 0);
	assert_int_equal(policy_status(p, &tk, T0 + 17 * HOUR + DAY, &st), 0);
	assert_int_equal(st.state, POLICY_HELD);
	assert_true(st.recovered);

	/* no history, no spike: a new tenant's first 5000 */
	batch(p, &t2, 5000, 0, 0, T0);
	assert_int_equal(eval(p, &t2, T0, d), 0);
	policy_free(p);
}

/* The spike counts accepted messages: a burst of sends (retries, a queue
 * draining after a pause) with no new acceptances is no spike. */
static void test_volume_spike_counts_accepted(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct policy_status st;

	for (unsigned h = 0; h < 8; h++)
		batch(p, &tk, 100, 0, 0, T0 + h * HOUR);
	rec(p, &tk, POLICY_SENT, 5000, T0 + 8 * HOUR);
	rec(p, &tk, POLICY_DELIVERED, 5000, T0 + 8 * HOUR);
	assert_int_equal(eval(p, &tk, T0 + 8 * HOUR, d), 0);
	rec(p, &tk, POLICY_ACCEPTED, 1001, T0 + 8 * HOUR + MIN);
	assert_int_equal(eval(p, &tk, T0 + 8 * HOUR + MIN, d), 1);
	assert_true(d[0].reason == POLICY_R_VOLUME_SPIKE && d[0].value == 1001);
	assert_non_null(strstr(d[0].text, "1001 accepted this bucket > 10 x median 100.0"));
	assert_int_equal(policy_status(p, &tk, T0 + 8 * HOUR + MIN, &st), 0);
	assert_int_equal(st.n.count[POLICY_ACCEPTED], 8 * 100 + 1001);
	/* the operator releases it, accepting the new volume: the baseline is
	 * learnt afresh, so the next busy hours are no spike */
	assert_int_equal(policy_set_state(p, &tk, POLICY_OK, 0, T0 + 8 * HOUR + 2 * MIN), 0);
	assert_int_equal(policy_status(p, &tk, T0 + 8 * HOUR + 2 * MIN, &st), 0);
	assert_true(st.n.baseline < 0);
	rec(p, &tk, POLICY_ACCEPTED, 1200, T0 + 9 * HOUR);
	assert_int_equal(eval(p, &tk, T0 + 9 * HOUR, d), 0);
	policy_free(p);
}

/* The incident, at library level: three tenants share a pool; one mails a
 * stale list (30% unknown users, a trap every 500, complaints) while the
 * others send clean mail. The bad one is held within a bounded number of
 * messages; the others are never touched. */
static void test_incident(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	const struct policy_key keys[3] = {
		{ "good1", "a.example", 0 }, { "good2", "b.example", 1 }, { "stale", "c.example", 1 },
	};
	unsigned held_after = 0, bad_decisions = 0;
	uint64_t t = T0;

	for (unsigned i = 1; i <= 5000; i++) {
		t += 100;
		for (int k = 0; k < 3; k++) {
			bool bad = k == 2;
			int n;

			if (bad && held_after)
				continue; /* held: nothing more is delivered */
			rec(p, &keys[k], POLICY_SENT, 1, t);
			if (bad && i % 10 < 3) {
				rec(p, &keys[k], POLICY_BOUNCED, 1, t);
				rec(p, &keys[k], POLICY_UNKNOWN_USER, 1, t);
			} else {
				rec(p, &keys[k], POLICY_DELIVERED, 1, t);
			}
			if (bad && i % 500 == 0)
				rec(p, &keys[k], POLICY_TRAP_HIT, 1, t);
			if (bad && i % 50 == 0)
				rec(p, &keys[k], POLICY_COMPLAINT, 1, t);
			/* the control plane judges every 10 messages */
			if (i % 10)
				continue;
			n = eval(p, &keys[k], t, d);
			if (!bad) {
				assert_int_equal(n, 0);
				continue;
			}
			for (int j = 0; j < n; j++)
				if (d[j].cfgset && d[j].event == TENANT_EV_POLICY_HOLD) {
					held_after = i;
					assert_int_equal(d[j].reason, POLICY_R_UNKNOWN_RATE);
				}
			bad_decisions += (unsigned)n;
		}
	}
	/* the unknown-user guard (100 sent) is what bounds it */
	assert_true(held_after > 0 && held_after <= 110);
	assert_int_equal(bad_decisions, 2); /* the set and the tenant, both held at once */
	policy_free(p);
}

static void test_config(void **state)
{
	(void)state;
	struct policy_config c;
	char err[128];

	policy_config_default(&c);
	assert_int_equal(policy_config_check(&c, err, sizeof err), 0);
	assert_int_equal(policy_config_set(&c, "complaint_hold", "0.5%", err, sizeof err), 0);
	assert_true(fabs(c.complaint.hold - 0.005) < 1e-12);
	assert_int_equal(policy_config_set(&c, "bounce_warn", "0.04", err, sizeof err), 0);
	assert_int_equal(policy_config_set(&c, "grace", "48h", err, sizeof err), 0);
	assert_true(c.grace_ms == 2 * DAY);
	assert_int_equal(policy_config_set(&c, "spike_floor", "500", err, sizeof err), 0);
	assert_int_equal(policy_config_set(&c, "spike_factor", "5", err, sizeof err), 0);
	assert_int_equal(policy_config_set(&c, "bounce_hold", "120%", err, sizeof err), SL_ECONFIG);
	assert_non_null(strstr(err, "bounce_hold"));
	assert_int_equal(policy_config_set(&c, "spike_floor", "-1", err, sizeof err), SL_ECONFIG);
	assert_int_equal(policy_config_set(&c, "grace", "soon", err, sizeof err), SL_ECONFIG);
	assert_int_equal(policy_config_set(&c, "bogus", "1", err, sizeof err), SL_ECONFIG);
	assert_string_equal(err, "unknown policy key \"bogus\"");
	assert_int_equal(policy_config_set(&c, "bounce_warn", "20%", err, sizeof err), 0);
	assert_int_equal(policy_config_check(&c, err, sizeof err), SL_ECONFIG);
	assert_string_equal(err, "bounce_warn is above bounce_hold");
	assert_null(policy_create(&c, 0));
	policy_config_default(&c);
	assert_int_equal(policy_config_set(&c, "bucket", "7m", err, sizeof err), 0);
	assert_int_equal(policy_config_check(&c, err, sizeof err), SL_ECONFIG);
}

static void test_config_yaml(void **state)
{
	(void)state;
	struct policy_config c, d;
	char err[200];
	static const char y1[] = "complaint_hold: 0.5%\ngrace: 48h\n";
	static const char y2[] = "bounce_warn: 5%\nbounce_hold: lots\n";
	static const char y3[] = "bounce_warn: 5%\ncolour: red\n";
	static const char y4[] = "bounce_warn: 20%\n";
	static const char y5[] = "- a\n";

	/* the shipped file is the defaults */
	policy_config_default(&c);
	policy_config_default(&d);
	assert_int_equal(policy_config_load(&c, "configs/policy.yaml", err, sizeof err), 0);
	assert_memory_equal(&c, &d, sizeof c);
	assert_int_equal(policy_config_parse(&c, "p.yaml", y1, sizeof y1 - 1, err, sizeof err), 0);
	assert_true(fabs(c.complaint.hold - 0.005) < 1e-12 && c.grace_ms == 2 * DAY);
	assert_int_equal(policy_config_parse(&c, "p.yaml", y2, sizeof y2 - 1, err, sizeof err),
			 SL_ECONFIG);
	assert_string_equal(err, "p.yaml:2:14: bounce_hold: \"lots\" is not a rate (\"5%\", \"0.05\")");
	assert_int_equal(policy_config_parse(&c, "p.yaml", y3, sizeof y3 - 1, err, sizeof err),
			 SL_ECONFIG);
	assert_string_equal(err, "p.yaml:2:1: unknown policy key \"colour\"");
	assert_int_equal(policy_config_parse(&c, "p.yaml", y4, sizeof y4 - 1, err, sizeof err),
			 SL_ECONFIG);
	assert_string_equal(err, "p.yaml: bounce_warn is above bounce_hold");
	assert_int_equal(policy_config_parse(&c, "p.yaml", y5, sizeof y5 - 1, err, sizeof err),
			 SL_ECONFIG);
	/* failures leave the configuration as it was */
	assert_true(fabs(c.complaint.hold - 0.005) < 1e-12 && c.bounce.warn == 0.05);
	assert_int_equal(policy_config_load(&c, "/nonexistent.yaml", err, sizeof err), -ENOENT);
}

static void test_memory_bound(void **state)
{
	(void)state;
	struct policy_config c;
	struct policy *p;
	struct policy_decision d[2];
	char name[32];

	policy_config_default(&c);
	p = policy_create(&c, 4);
	assert_non_null(p);
	for (unsigned i = 0; i < 100; i++) {
		struct policy_key k = { name, NULL, 0 };
		snprintf(name, sizeof name, "t%u", i);
		rec(p, &k, POLICY_SENT, 1, T0 + i);
		assert_true(policy_count(p) <= 4);
	}
	/* held subjects are never dropped: with all four held there is no room */
	for (unsigned i = 0; i < 4; i++) {
		struct policy_key k = { name, NULL, 0 };
		snprintf(name, sizeof name, "h%u", i);
		rec(p, &k, POLICY_SENT, 200, T0 + 1000);
		rec(p, &k, POLICY_BOUNCED, 100, T0 + 1000);
		assert_int_equal(policy_evaluate(p, &k, T0 + 1000, d, 2), 1);
	}
	{
		struct policy_key k = { "late", NULL, 0 };
		assert_int_equal(policy_record(p, &k, POLICY_SENT, 1, T0 + 2000), -ENOSPC);
	}
	policy_free(p);
}

static void test_output(void **state)
{
	(void)state;
	struct policy *p = mk();
	struct policy_decision d[2];
	struct sl_buf b = { 0 };
	enum policy_metric m[2];

	batch(p, &ck, 1000, 120, 100, T0);
	assert_int_equal(eval(p, &ck, T0, d), 2);
	assert_int_equal(policy_decision_json(&d[0], &b), 0);
	assert_int_equal(sl_buf_append(&b, "", 1), 0);
	assert_non_null(strstr(b.data, "\"scope\":\"cfgset\",\"tenant\":\"acme\","
				       "\"domain\":\"news.example.com\",\"stream\":\"marketing\","
				       "\"event\":\"policy_hold\",\"reason\":\"unknown_user_rate\","
				       "\"value\":0.1,\"threshold\":0.08,\"sent\":1000,"
				       "\"delivered\":880,\"bounced\":120,\"unknown_user\":100,"
				       "\"complaints\":0,\"trap_hits\":0,\"accepted\":1000,"
				       "\"bounce_rate\":0.12,"
				       "\"unknown_user_rate\":0.1,\"complaint_rate\":null"));
	assert_non_null(strstr(b.data, "\"grace_until\":"));
	sl_buf_free(&b);
	policy_free(p);

	assert_int_equal(policy_metrics_for_bounce(BOUNCE_R_USERUNKNOWN, true, m), 2);
	assert_true(m[0] == POLICY_BOUNCED && m[1] == POLICY_UNKNOWN_USER);
	assert_int_equal(policy_metrics_for_bounce(BOUNCE_R_MAILBOXFULL, false, m), 0);
	assert_int_equal(policy_metrics_for_bounce(BOUNCE_R_BLOCKED, true, m), 1);
	assert_int_equal(policy_metrics_for_bounce(BOUNCE_R_FEEDBACK, false, m), 1);
	assert_int_equal(m[0], POLICY_COMPLAINT);
	assert_int_equal(policy_metrics_for_bounce(BOUNCE_R_VACATION, false, m), 0);
	assert_string_equal(policy_state_name(POLICY_HELD), "held");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_math),
		cmocka_unit_test(test_guards),
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_escalation_and_grace),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_repeat_disables),
		cmocka_unit_test(test_spam_traps),
		cmocka_unit_test(test_volume_spike),
		cmocka_unit_test(test_volume_spike_counts_accepted),
		cmocka_unit_test(test_incident),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_yaml),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
