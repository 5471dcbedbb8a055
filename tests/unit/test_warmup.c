/*
 * test_warmup.c — warm-up schedules: the shipped file, caps by day (steps,
 * hourly spread, unlimited), the sending-day index and hour/day rollover on
 * a passed-in clock, exhaustion and next times, operator actions, spill
 * picks, and strict YAML errors.
 *
 * Run from the repository root; SLUICE_WARMUP overrides the shipped file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "err.h"
#include "warmup.h"

#define HOUR 3600000ull
#define DAY (24 * HOUR)
/* 2026-12-01 00:00 UTC */
#define D0 (20788ull * DAY)

static const char sched[] =
	"schedules:\n"
	"  t:\n"
	"    hourly_spread: 4\n"
	"    default:\n"
	"      - {day: 1, daily: 100}\n"
	"      - {day: 3, daily: 400, hourly: 400}\n"
	"      - {day: 5, daily: unlimited}\n"
	"    providers:\n"
	"      google:\n"
	"        - {day: 1, daily: 10, hourly: 3}\n"
	"        - {day: 2, daily: \"1,000\"}\n"
	"  flat:\n"
	"    default:\n"
	"      - {day: 1, daily: 5}\n"
	"pools:\n"
	"  mkt: {overflow: spill}\n"
	"  tx: {overflow: wait}\n"
	"ips:\n"
	"  \"203.0.113.20\": {schedule: t, start: 2026-12-01}\n"
	"  \"2001:db8::20\": {schedule: flat, start: 2024-02-29}\n";

static struct warmup_config *load(const char *yaml)
{
	struct warmup_config *w = NULL;
	char err[512];

	if (warmup_load_string("w.yaml", yaml, strlen(yaml), &w, err, sizeof err) != 0)
		fail_msg("%s", err);
	return w;
}

static void test_caps(void **state)
{
	struct warmup_config *w = load(sched);
	const struct warmup_schedule *s = warmup_schedule_by_name(w, "t");
	const struct warmup_curve *def = warmup_curve_for(s, NULL);
	const struct warmup_curve *g = warmup_curve_for(s, "GOOGLE");
	struct warmup_cap c;

	(void)state;
	assert_non_null(s);
	assert_null(warmup_schedule_by_name(w, "nope"));
	assert_ptr_equal(warmup_curve_for(s, "yahoo"), def);
	assert_string_equal(g->provider, "google");
	assert_string_equal(g->schedule, "t");

	c = warmup_cap(s, "yahoo", 1);
	assert_int_equal(c.daily, 100);
	assert_int_equal(c.hourly, 25); /* ceil(100 / 4) */
	c = warmup_cap(s, "yahoo", 0);  /* day 0 counts as 1 */
	assert_int_equal(c.daily, 100);
	c = warmup_cap(s, "yahoo", 2);
	assert_int_equal(c.daily, 100);
	c = warmup_cap(s, "yahoo", 3);
	assert_int_equal(c.daily, 400);
	assert_int_equal(c.hourly, 400);
	c = warmup_cap(s, NULL, 4);
	assert_int_equal(c.daily, 400);
	c = warmup_cap(s, NULL, 5);
	assert_true(c.daily == WARMUP_UNLIMITED && c.hourly == WARMUP_UNLIMITED);
	c = warmup_cap(s, NULL, 3000);
	assert_true(c.daily == WARMUP_UNLIMITED);

	c = warmup_cap(s, "google", 1);
	assert_int_equal(c.daily, 10);
	assert_int_equal(c.hourly, 3);
	c = warmup_cap(s, "google", 99); /* the last step holds: never warm */
	assert_int_equal(c.daily, 1000);
	assert_int_equal(c.hourly, 250);
	assert_int_equal(warmup_warm_day(g), 0);
	assert_int_equal(warmup_warm_day(def), 5);
	assert_int_equal(warmup_next_increase(def, 1), 3);
	assert_int_equal(warmup_next_increase(def, 3), 5);
	assert_int_equal(warmup_next_increase(def, 5), 0);

	/* flat has no spread: no hourly cap */
	c = warmup_cap(warmup_schedule_by_name(w, "flat"), "google", 1);
	assert_int_equal(c.daily, 5);
	assert_true(c.hourly == WARMUP_UNLIMITED);

	/* ips and pools */
	const struct warmup_ip *ip = warmup_ip_for(w, "203.0.113.20");
	assert_non_null(ip);
	assert_ptr_equal(ip->schedule, s);
	assert_int_equal(ip->start_ms, D0);
	ip = warmup_ip_for(w, "2001:DB8:0:0::20");
	assert_non_null(ip);
	assert_int_equal(ip->start_ms, 19782ull * DAY); /* 2024-02-29 */
	assert_null(warmup_ip_for(w, "203.0.113.21"));
	assert_null(warmup_ip_for(w, "bogus"));
	assert_int_equal(warmup_pool_overflow(w, "mkt"), WARMUP_SPILL);
	assert_int_equal(warmup_pool_overflow(w, "tx"), WARMUP_WAIT);
	assert_int_equal(warmup_pool_overflow(w, "other"), WARMUP_WAIT);
	warmup_free(w);
}

static void test_hour_day_rollover(void **state)
{
	struct warmup_config *w = load(sched);
	const struct warmup_curve *g = warmup_curve_for(warmup_schedule_by_name(w, "t"), "google");
	struct warmup_state st;
	uint64_t t = D0 + 9 * HOUR + 15 * 60000; /* 09:15 on day 1 */

	(void)state;
	warmup_state_init(&st, g, D0);
	/* before the start nothing goes */
	assert_false(warmup_allow(&st, D0 - 1, 1));
	assert_int_equal(warmup_remaining(&st, D0 - 1), 0);
	assert_int_equal(warmup_next_ms(&st, D0 - 1), D0);

	/* hourly cap 3 */
	assert_int_equal(warmup_remaining(&st, t), 3);
	assert_true(warmup_allow(&st, t, 2));
	assert_false(warmup_allow(&st, t, 2)); /* all or nothing */
	assert_true(warmup_allow(&st, t + 1000, 1));
	assert_int_equal(warmup_remaining(&st, t + 1000), 0);
	assert_int_equal(warmup_next_ms(&st, t + 1000), D0 + 10 * HOUR);
	/* the next hour reopens */
	assert_int_equal(warmup_remaining(&st, D0 + 10 * HOUR), 3);
	assert_true(warmup_allow(&st, D0 + 10 * HOUR, 3));
	assert_true(warmup_allow(&st, D0 + 11 * HOUR, 3));
	/* daily cap 10: 9 sent, 1 left even in a fresh hour */
	assert_int_equal(warmup_remaining(&st, D0 + 12 * HOUR), 1);
	assert_true(warmup_allow(&st, D0 + 12 * HOUR, 1));
	assert_int_equal(st.sent_today, 10);
	assert_int_equal(warmup_remaining(&st, D0 + 13 * HOUR), 0);
	/* exhausted for the day: next time is midnight, not the next hour */
	assert_int_equal(warmup_next_ms(&st, D0 + 13 * HOUR), D0 + DAY);
	assert_int_equal(st.day, 1);

	/* day 2: the index advances because day 1 sent; cap 1000, hourly 250 */
	struct warmup_cap c = warmup_state_cap(&st, D0 + DAY + 5);
	assert_int_equal(st.day, 2);
	assert_int_equal(c.daily, 1000);
	assert_int_equal(st.sent_today, 0);
	assert_int_equal(warmup_remaining(&st, D0 + DAY + 5), 250);
	warmup_free(w);
}

static void test_idle_days_do_not_count(void **state)
{
	struct warmup_config *w = load(sched);
	const struct warmup_curve *d = warmup_curve_for(warmup_schedule_by_name(w, "t"), "yahoo");
	struct warmup_state st;

	(void)state;
	warmup_state_init(&st, d, D0);
	assert_true(warmup_allow(&st, D0 + HOUR, 1));   /* sends on day 1 */
	assert_int_equal(warmup_state_cap(&st, D0 + 10 * DAY).daily, 100);
	assert_int_equal(st.day, 2);                    /* nine idle days later: day 2 */
	assert_true(warmup_allow(&st, D0 + 10 * DAY, 1));
	warmup_roll(&st, D0 + 11 * DAY);
	assert_int_equal(st.day, 3);
	assert_int_equal(warmup_state_cap(&st, D0 + 11 * DAY).daily, 400);
	/* a clock going backwards neither rolls nor resets */
	assert_true(warmup_allow(&st, D0 + 11 * DAY + 1, 7));
	warmup_roll(&st, D0 + 5 * DAY);
	assert_int_equal(st.day, 3);
	assert_int_equal(st.sent_today, 7);
	warmup_free(w);
}

static void test_accelerated_30_days(void **state)
{
	/* Drive the shipped standard curve through 31 sending days at full
	 * tilt, as a test with a fast clock would, checking the caps hold
	 * per hour and per day. */
	const char *path = getenv("SLUICE_WARMUP") ? getenv("SLUICE_WARMUP")
						   : "configs/warmup.yaml";
	struct warmup_config *w;
	char err[512];

	(void)state;
	if (warmup_load(path, &w, err, sizeof err) != 0)
		fail_msg("%s", err);
	const struct warmup_schedule *s = warmup_schedule_by_name(w, "standard");
	assert_non_null(s);
	assert_non_null(warmup_schedule_by_name(w, "conservative"));
	assert_int_equal(warmup_warm_day(warmup_curve_for(s, "google")), 30);
	assert_int_equal(warmup_warm_day(warmup_curve_for(warmup_schedule_by_name(w, "conservative"),
							  "google")),
			 45);
	struct warmup_state st;
	warmup_state_init(&st, warmup_curve_for(s, "google"), D0);
	for (unsigned day = 1; day <= 31; day++) {
		uint64_t today = D0 + (day - 1) * DAY, sent = 0;
		struct warmup_cap cap = warmup_state_cap(&st, today);

		assert_int_equal(st.day, day);
		for (unsigned h = 0; h < 24; h++) {
			uint64_t now = today + h * HOUR, r = warmup_remaining(&st, now), hs = 0;

			if (r == WARMUP_UNLIMITED) {
				assert_true(warmup_allow(&st, now, 1000000));
				assert_true(day >= 30);
				break;
			}
			/* take what is left in chunks, then one more must fail */
			while (r) {
				uint64_t n = r > 97 ? 97 : r;
				assert_true(warmup_allow(&st, now, n));
				hs += n;
				r = warmup_remaining(&st, now);
			}
			assert_false(warmup_allow(&st, now, 1));
			assert_true(hs <= cap.hourly);
			sent += hs;
		}
		if (day < 30)
			assert_int_equal(sent, cap.daily); /* 24 h × hourly >= daily */
	}
	warmup_free(w);
}

static void test_operator_actions(void **state)
{
	struct warmup_config *w = load(sched);
	const struct warmup_curve *d = warmup_curve_for(warmup_schedule_by_name(w, "t"), NULL);
	struct warmup_state st;

	(void)state;
	warmup_state_init(&st, d, D0);
	warmup_pause(&st);
	assert_false(warmup_allow(&st, D0 + 1, 1));
	assert_int_equal(warmup_remaining(&st, D0 + 1), 0);
	assert_int_equal(warmup_next_ms(&st, D0 + 1), UINT64_MAX);
	assert_false(warmup_is_warm(&st, D0 + 1));
	warmup_resume(&st);
	assert_true(warmup_allow(&st, D0 + 1, 1));

	warmup_jump(&st, 5);
	assert_true(warmup_is_warm(&st, D0 + 2));
	assert_int_equal(warmup_remaining(&st, D0 + 2), WARMUP_UNLIMITED);
	assert_int_equal(warmup_next_ms(&st, D0 + 2), D0 + 2);

	/* restart mid-day 3: back to day 1 from today, today's count kept */
	warmup_roll(&st, D0 + 2 * DAY + HOUR);
	assert_true(warmup_allow(&st, D0 + 2 * DAY + HOUR, 20));
	warmup_restart(&st, D0 + 2 * DAY + HOUR + 10);
	assert_int_equal(st.day, 1);
	assert_int_equal(st.start_ms, D0 + 2 * DAY);
	assert_int_equal(st.sent_today, 20);
	assert_int_equal(warmup_remaining(&st, D0 + 2 * DAY + HOUR + 10), 5); /* 25/h - 20 */
	assert_int_equal(warmup_remaining(&st, D0 + 2 * DAY + 2 * HOUR), 25);
	warmup_jump(&st, 0);
	assert_int_equal(st.day, 1);

	/* rebind keeps the counters */
	const struct warmup_curve *g = warmup_curve_for(warmup_schedule_by_name(w, "t"), "google");
	warmup_state_rebind(&st, g);
	assert_ptr_equal(st.curve, g);
	assert_int_equal(st.sent_today, 20);
	warmup_free(w);
}

static void test_spill(void **state)
{
	struct warmup_config *w = load(sched);
	const struct warmup_curve *d = warmup_curve_for(warmup_schedule_by_name(w, "t"), NULL);
	struct warmup_state a, b, c;
	struct warmup_state *cands[3] = { &a, &b, &c };

	(void)state;
	warmup_state_init(&a, d, D0);
	warmup_state_init(&b, d, D0);
	warmup_state_init(&c, d, D0);
	assert_int_equal(warmup_spill_pick(cands, 3, 0, D0 + 1), SL_ENOTFOUND);
	warmup_jump(&b, 7);
	warmup_jump(&c, 9);
	assert_int_equal(warmup_spill_pick(cands, 3, 0, D0 + 1), 1);
	assert_int_equal(warmup_spill_pick(cands, 3, 2, D0 + 1), 2);
	warmup_pause(&c);
	assert_int_equal(warmup_spill_pick(cands, 3, 2, D0 + 1), 1);
	cands[0] = NULL; /* not under warm-up: warm */
	assert_int_equal(warmup_spill_pick(cands, 3, 0, D0 + 1), 0);
	assert_int_equal(warmup_spill_pick(cands, 0, 0, D0 + 1), SL_ENOTFOUND);
	warmup_free(w);
}

static void test_errors(void **state)
{
	static const struct {
		const char *yaml, *msg;
	} cases[] = {
		{ "schedule: {}\n", "w.yaml:1:1: unknown key 'schedule'" },
		{ "schedules:\n  s:\n    default:\n      - {day: 2, daily: 5}\n",
		  "w.yaml:4:9: schedules.s.default[0]: the first step must be day 1" },
		{ "schedules:\n  s:\n    default:\n      - {day: 1, daily: 5}\n      - {day: 1, daily: 6}\n",
		  "w.yaml:5:9: schedules.s.default[1]: days must increase" },
		{ "schedules:\n  s:\n    default:\n      - {day: 1, daily: 5}\n      - {day: 2, daily: 4}\n",
		  "w.yaml:5:9: schedules.s.default[1]: the daily cap must not shrink" },
		{ "schedules:\n  s:\n    default:\n      - {day: 1, daily: 5, hourly: 6}\n",
		  "w.yaml:4:9: schedules.s.default[0]: the hourly cap is above the daily cap" },
		{ "schedules:\n  s:\n    default:\n      - {day: 1, dialy: 5}\n",
		  "w.yaml:4:18: schedules.s.default[0]: unknown key 'dialy'" },
		{ "schedules:\n  s:\n    default:\n      - {day: 1}\n",
		  "w.yaml:4:9: schedules.s.default[0]: a step needs day and daily" },
		{ "schedules:\n  s:\n    default:\n      - {day: 1, daily: 0}\n",
		  "w.yaml:4:25: schedules.s.default[0]: expected a count" },
		{ "schedules:\n  s:\n    default:\n      - {day: x, daily: 1}\n",
		  "w.yaml:4:15: schedules.s.default[0]: day must be a number" },
		{ "schedules:\n  s:\n    providers: {}\n", "w.yaml:3:5: schedules.s: a schedule needs a default curve" },
		{ "schedules:\n  s:\n    hourly_spread: 25\n    default: [{day: 1, daily: 1}]\n",
		  "w.yaml:3:20: schedules.s.hourly_spread: expected a number of hours" },
		{ "schedules:\n  s:\n    default: [{day: 1, daily: 1}]\n    providers:\n      google: []\n",
		  "w.yaml:5:15: schedules.s.providers.google: expected a list of steps" },
		{ "pools:\n  p: {overflow: later}\n", "w.yaml:2:17: pools.p: overflow is 'spill' or 'wait'" },
		{ "ips:\n  \"10.0.0.1\": {schedule: none, start: 2026-01-01}\n",
		  "w.yaml:2:26: ips.10.0.0.1: no schedule named 'none'" },
		{ "schedules:\n  s:\n    default: [{day: 1, daily: 1}]\n"
		  "ips:\n  \"10.0.0.1\": {schedule: s, start: 2026-02-30}\n",
		  "w.yaml:5:36: ips.10.0.0.1: start must be a date YYYY-MM-DD" },
		{ "schedules:\n  s:\n    default: [{day: 1, daily: 1}]\n"
		  "ips:\n  \"10.0.0.1\": {schedule: s, start: 2025-02-29}\n",
		  "w.yaml:5:36: ips.10.0.0.1: start must be a date" },
		{ "schedules:\n  s:\n    default: [{day: 1, daily: 1}]\n"
		  "ips:\n  \"10.0.0.1\": {schedule: s}\n",
		  "w.yaml:5:15: ips.10.0.0.1: an IP needs schedule and start" },
		{ "schedules:\n  s:\n    default: [{day: 1, daily: 1}]\n"
		  "ips:\n  \"10.0.0.1\": {schedule: s, start: 2026-01-01}\n"
		  "  \"10.0.0.01\": {schedule: s, start: 2026-01-01}\n",
		  "w.yaml:6:3: ips.10.0.0.01:" },
		{ "[1]\n", "w.yaml:1:1: expected a mapping" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct warmup_config *w = (void *)1;
		int rc = warmup_load_string("w.yaml", cases[i].yaml, strlen(cases[i].yaml), &w, err,
					    sizeof err);

		if (rc != SL_ECONFIG || w != NULL)
			fail_msg("case %zu: rc %d", i, rc);
		if (strncmp(err, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].msg);
	}
	struct warmup_config *w;
	assert_int_equal(warmup_load("/nonexistent.yaml", &w, err, sizeof err), -ENOENT);
	w = load("");
	assert_null(warmup_schedule_by_name(w, "standard"));
	warmup_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_hour_day_rollover),
		cmocka_unit_test(test_idle_days_do_not_count),
		cmocka_unit_test(test_accelerated_30_days),
		cmocka_unit_test(test_operator_actions),
		cmocka_unit_test(test_spill),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
