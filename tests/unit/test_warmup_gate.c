/*
 * test_warmup_gate.c — source-IP selection under warm-up: warming IPs
 * first by most left, holds under `wait`, spills to warm IPs under `spill`
 * and stops spilling when a warming IP has room again, pauses per
 * provider, the test clock, export/restore, operator commands, and the
 * state file (warmup_db) with its command log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "err.h"
#include "warmup.h"
#include "warmup_db.h"
#include "warmup_gate.h"

#define HOUR 3600000ull
#define DAY (24 * HOUR)
#define D0 (20788ull * DAY) /* 2026-12-01 00:00 UTC */

static const char cfg_yaml[] =
	"pools:\n"
	"  - name: p\n"
	"    ips:\n"
	"      - {address: 198.51.100.10, ehlo: a.test}\n"
	"      - {address: 198.51.100.11, ehlo: b.test}\n"
	"      - {address: 198.51.100.12, ehlo: c.test}\n"
	"  - name: s\n"
	"    ips:\n"
	"      - {address: 198.51.100.10, ehlo: a.test}\n"
	"      - {address: 198.51.100.12, ehlo: c.test}\n"
	"  - name: plain\n"
	"    ips:\n"
	"      - {address: 198.51.100.12, ehlo: c.test}\n";

static const char warm_yaml[] =
	"schedules:\n"
	"  t:\n"
	"    default:\n"
	"      - {day: 1, daily: 4, hourly: 2}\n"
	"      - {day: 2, daily: 8, hourly: 8}\n"
	"      - {day: 3, daily: unlimited}\n"
	"  big:\n"
	"    default:\n"
	"      - {day: 1, daily: 10, hourly: 10}\n"
	"pools:\n"
	"  s: {overflow: spill}\n"
	"ips:\n"
	"  \"198.51.100.10\": {schedule: t, start: 2026-12-01}\n"
	"  \"198.51.100.11\": {schedule: big, start: 2026-12-01}\n";

struct fx {
	struct sl_config *cfg;
	struct warmup_config *wc;
	struct warmup_gate *g;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char err[512];

	assert_int_equal(config_load_string("c", cfg_yaml, strlen(cfg_yaml), &f->cfg, err,
					    sizeof err), 0);
	assert_int_equal(warmup_load_string("w", warm_yaml, strlen(warm_yaml), &f->wc, err,
					    sizeof err), 0);
	assert_int_equal(warmup_gate_create(f->wc, f->cfg, 1, D0, 0, &f->g), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	warmup_gate_destroy(f->g);
	warmup_free(f->wc);
	config_free(f->cfg);
	free(f);
	return 0;
}

/* Pool p: .10 (t: 2/h, 4/day), .11 (big: 10), .12 warm; overflow wait. */
static void test_most_left_first_then_hold(void **state)
{
	struct fx *f = *state;
	struct warmup_gate *g = f->g;
	int gp = warmup_gate_provider(g, "google");
	uint64_t now = D0 + 10, next;
	int sent[3] = { 0 };

	assert_true(warmup_gate_pool_gated(g, 0));
	assert_false(warmup_gate_pool_gated(g, 2));
	for (int i = 0; i < 12; i++) {
		int ip = warmup_gate_pick(g, 0, gp, now, &next);

		assert_true(ip == 0 || ip == 1); /* never the warm .12 under wait */
		assert_true(warmup_gate_take(g, 0, (size_t)ip, gp, now));
		sent[ip]++;
	}
	assert_int_equal(sent[0], 2);  /* .10's hourly cap */
	assert_int_equal(sent[1], 10); /* .11's daily cap */
	/* Everyone warming is full: hold until .10's next hour. */
	assert_int_equal(warmup_gate_pick(g, 0, gp, now, &next), -EAGAIN);
	assert_int_equal(next, D0 + HOUR);
	assert_false(warmup_gate_take(g, 0, 2, gp, now)); /* warm IP: no overflow */
	assert_false(warmup_gate_take(g, 0, 0, gp, now));
	assert_int_equal(warmup_gate_pick(g, 0, gp, D0 + HOUR, &next), 0);
	/* Other providers have their own counters. */
	assert_true(warmup_gate_pick(g, 0, warmup_gate_provider(g, "yahoo"), now, &next) >= 0);
}

/* Pool s: .10 warming, .12 warm; spill. */
static void test_spill_and_stop(void **state)
{
	struct fx *f = *state;
	struct warmup_gate *g = f->g;
	int gp = warmup_gate_provider(g, "google");
	uint64_t now = D0 + 10, next;

	assert_int_equal(warmup_gate_pick(g, 1, gp, now, &next), 0);
	assert_false(warmup_gate_take(g, 1, 1, gp, now)); /* .10 has room: no spill */
	assert_true(warmup_gate_take(g, 1, 0, gp, now));
	assert_true(warmup_gate_take(g, 1, 0, gp, now));
	assert_false(warmup_gate_take(g, 1, 0, gp, now));
	assert_int_equal(warmup_gate_pick(g, 1, gp, now, &next), 1); /* spill */
	assert_true(warmup_gate_take(g, 1, 1, gp, now));
	/* Next hour .10 has room again: the spill session must stop. */
	assert_false(warmup_gate_take(g, 1, 1, gp, D0 + HOUR));
	assert_int_equal(warmup_gate_pick(g, 1, gp, D0 + HOUR, &next), 0);
	/* Day 3 (after sending days 1 and 2): .10 is warm itself. */
	assert_true(warmup_gate_take(g, 1, 0, gp, D0 + DAY));
	assert_int_equal(warmup_gate_pick(g, 1, gp, D0 + 2 * DAY, &next) >= 0, 1);
	assert_true(warmup_gate_take(g, 1, 1, gp, D0 + 2 * DAY));
}

/* Which IPs the caller's own (shaping) limits let open a session. */
static bool only(void *ctx, size_t ip)
{
	return ((const bool *)ctx)[ip];
}

/* warmup_gate_pick_usable: the gate's choice among usable IPs; a warming
 * IP with room that is only busy makes the caller wait (-EBUSY), never
 * spill to a warm IP; the warm-up hold (-EAGAIN) is unchanged. */
static void test_pick_usable(void **state)
{
	struct fx *f = *state;
	struct warmup_gate *g = f->g;
	int gp = warmup_gate_provider(g, "google");
	uint64_t now = D0 + 10, next;
	bool all[3] = { true, true, true }, not11[3] = { true, false, true };
	bool none[3] = { false, false, false }, not10[3] = { false, true, true };

	/* Pool p: .11 has the most left; unusable, .10 is next. */
	assert_int_equal(warmup_gate_pick_usable(g, 0, gp, now, only, all, &next), 1);
	assert_int_equal(warmup_gate_pick_usable(g, 0, gp, now, only, not11, &next), 0);
	assert_int_equal(warmup_gate_pick_usable(g, 0, gp, now, only, none, &next), -EBUSY);
	/* Pool s (spill): .10 warming with room but busy: wait, no spill. */
	assert_int_equal(warmup_gate_pick_usable(g, 1, gp, now, only, not10, &next), -EBUSY);
	assert_true(warmup_gate_take(g, 1, 0, gp, now));
	assert_true(warmup_gate_take(g, 1, 0, gp, now));
	/* .10 full: spill to the warm .12 (index 1) if usable, else wait. */
	assert_int_equal(warmup_gate_pick_usable(g, 1, gp, now, only, not10, &next), 1);
	assert_int_equal(warmup_gate_pick_usable(g, 1, gp, now, only, none, &next), -EBUSY);
	/* Pool p, every warming IP full (wait): the warm-up hold wins. */
	for (int i = 0; i < 12; i++) {
		int ip = warmup_gate_pick(g, 0, gp, now, &next);

		if (ip < 0)
			break;
		warmup_gate_take(g, 0, (size_t)ip, gp, now);
	}
	assert_int_equal(warmup_gate_pick_usable(g, 0, gp, now, only, all, &next), -EAGAIN);
	assert_int_equal(next, D0 + HOUR);
	/* A pool without warm-up: round-robin over the usable IPs. */
	assert_int_equal(warmup_gate_pick_usable(g, 2, gp, now, only, none, &next), -EBUSY);
	assert_int_equal(warmup_gate_pick_usable(g, 2, gp, now, only, all, &next), 0);
}

static struct warmup_command cmd(enum warmup_action a, const char *ip, const char *prov,
				 uint32_t day)
{
	struct warmup_command c = { .action = a, .day = day };

	snprintf(c.ip, sizeof c.ip, "%s", ip);
	snprintf(c.provider, sizeof c.provider, "%s", prov);
	return c;
}

static void test_pause_is_per_provider(void **state)
{
	struct fx *f = *state;
	struct warmup_gate *g = f->g;
	int gp = warmup_gate_provider(g, "google"), yp = warmup_gate_provider(g, "yahoo");
	struct warmup_command c = cmd(WARMUP_CMD_PAUSE, "198.51.100.11", "google", 0);
	uint64_t now = D0 + 10, next;

	assert_int_equal(warmup_gate_command(g, &c, now), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(warmup_gate_pick(g, 0, gp, now, &next), 0);
	assert_false(warmup_gate_take(g, 0, 1, gp, now));
	assert_int_equal(warmup_gate_pick(g, 0, yp, now, &next), 1); /* most left */
	assert_true(warmup_gate_take(g, 0, 1, yp, now));
	c.action = WARMUP_CMD_RESUME;
	assert_int_equal(warmup_gate_command(g, &c, now), 0);
	assert_int_equal(warmup_gate_pick(g, 0, gp, now, &next), 1);
	c = cmd(WARMUP_CMD_PAUSE, "198.51.100.12", "google", 0);
	assert_int_equal(warmup_gate_command(g, &c, now), SL_ENOTFOUND);
}

static void test_jump_export_restore_clock(void **state)
{
	struct fx *f = *state;
	struct warmup_gate *g = f->g, *g2;
	int gp = warmup_gate_provider(g, "google");
	struct warmup_command c = cmd(WARMUP_CMD_JUMP, "198.51.100.10", "google", 3);
	struct warmup_record r[8];
	uint64_t now = D0 + 10, next;
	size_t n;

	assert_true(warmup_gate_take(g, 0, 0, gp, now));
	assert_int_equal(warmup_gate_command(g, &c, now), 0);
	n = warmup_gate_export(g, now, false, r, 8);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].ip, "198.51.100.10");
	assert_string_equal(r[0].provider, "google");
	assert_string_equal(r[0].schedule, "t");
	assert_int_equal(r[0].day, 3);
	assert_int_equal(r[0].sent_today, 1);
	assert_int_equal(r[0].phase, WARMUP_PHASE_WARM);
	assert_int_equal(warmup_gate_export(g, now, false, r + 1, 7), 0); /* nothing changed */
	assert_int_equal(warmup_gate_create(f->wc, f->cfg, 3600, D0, 1000, &g2), 0);
	assert_int_equal(warmup_gate_restore(g2, &r[0]), 0);
	assert_int_equal(warmup_gate_export(g2, now, true, r + 1, 7), 1);
	assert_int_equal(r[1].day, 3);
	assert_int_equal(r[1].sent_today, 1);
	/* The test clock: one real second is an hour. */
	assert_int_equal(warmup_gate_clock(g2, 2000), D0 + HOUR);
	assert_int_equal(warmup_gate_real_delay(g2, D0, D0 + HOUR), 1000);
	assert_int_equal(warmup_gate_real_delay(g2, D0, D0 + 1), 1);
	(void)next;
	warmup_gate_destroy(g2);
}

static void test_db_roundtrip(void **state)
{
	char path[] = "/tmp/test_warmup_db.XXXXXX", file[64];
	struct warmup_record r = { .day = 4, .sent_today = 7, .cap_today = UINT64_MAX }, *out;
	struct warmup_command c = cmd(WARMUP_CMD_JUMP, "198.51.100.10", "google", 9), got[4];
	struct warmup_db *db;
	uint64_t seq;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(path));
	snprintf(file, sizeof file, "%s/w.mdb", path);
	assert_int_equal(warmup_db_open(file, false, &db), 0);
	snprintf(r.ip, sizeof r.ip, "198.51.100.10");
	snprintf(r.provider, sizeof r.provider, "*");
	assert_int_equal(warmup_db_put_states(db, &r, 1), 0);
	r.day = 5;
	assert_int_equal(warmup_db_put_states(db, &r, 1), 0);
	assert_int_equal(warmup_db_states(db, &out, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].day, 5);
	assert_int_equal(out[0].sent_today, 7);
	free(out);
	assert_int_equal(warmup_db_command_seq(db, &seq), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(warmup_db_command_add(db, &c), 0);
	assert_int_equal(warmup_db_command_add(db, &c), 0);
	assert_int_equal(c.seq, 2);
	assert_int_equal(warmup_db_commands_after(db, 1, got, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].seq, 2);
	assert_int_equal(got[0].day, 9);
	assert_int_equal(warmup_db_set_applied(db, 2), 0);
	assert_int_equal(warmup_db_applied(db, &seq), 0);
	assert_int_equal(seq, 2);
	c.action = 0;
	assert_int_equal(warmup_db_command_add(db, &c), -EINVAL);
	assert_int_equal(warmup_action_parse("restart"), WARMUP_CMD_RESTART);
	warmup_db_close(db);
	unlink(file);
	snprintf(file, sizeof file, "%s/w.mdb-lock", path);
	unlink(file);
	rmdir(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_most_left_first_then_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spill_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pick_usable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_is_per_provider, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jump_export_restore_clock, setup, teardown),
		cmocka_unit_test(test_db_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
