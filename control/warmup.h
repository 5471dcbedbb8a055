/*
 * warmup.h — IP warm-up schedules and per (source IP, provider) caps.
 *
 * A warm-up schedule (configs/warmup.yaml; docs/shaping.md) is a named set
 * of curves: one per provider (providers.h names) plus a `default` curve for
 * every other destination. A curve is a table of steps "from sending day N:
 * at most D messages a day and H an hour"; the cap of day N is the step with
 * the largest day <= N, so caps grow as the IP ages. A step may be
 * `unlimited`: from that day the IP is warm for that provider. Without an
 * explicit hourly cap a step's hourly cap is ceil(daily / hourly_spread)
 * (the schedule's hourly_spread; 0 = no hourly cap).
 *
 * The file also assigns source IPs to schedules with a start date, and gives
 * each pool an overflow policy: `wait` (hold mail for a warming IP until its
 * next hour/day window) or `spill` (send it from a fully warmed IP of the
 * same pool; warmup_spill_pick()).
 *
 * struct warmup_state is the counter for one (IP, provider): sending-day
 * index, sent this hour and today. It is sans-I/O: every call takes the time
 * in ms since the Unix epoch, so a test clock may run at any speed. Days and
 * hours are UTC calendar windows ([k*24h, (k+1)*24h) of that clock). The
 * sending-day index starts at 1 on the day of the start date and advances by
 * one at a day rollover only if the IP sent on the day that ended (idle
 * days do not age an IP). Before the start time nothing may be sent.
 *
 * Loading is strict like shaping.h (SL_ECONFIG, "FILE:LINE:COL: message").
 * The config owns schedules and curves; states point at curves and must not
 * outlive the config they came from (re-point them with warmup_state_rebind
 * after a reload).
 */
#ifndef SL_WARMUP_H
#define SL_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARMUP_UNLIMITED UINT64_MAX

struct warmup_step {
	uint32_t day;    /* first sending day this step applies to, >= 1 */
	uint64_t daily;  /* WARMUP_UNLIMITED: warm */
	uint64_t hourly; /* WARMUP_UNLIMITED: no hourly cap */
};

struct warmup_curve {
	const char *provider; /* NULL for the schedule's default curve */
	const char *schedule; /* the schedule's name */
	struct warmup_step *steps; /* by day, ascending; steps[0].day == 1 */
	size_t n_steps;
};

struct warmup_cap {
	uint64_t daily;  /* WARMUP_UNLIMITED or a count */
	uint64_t hourly;
};

enum warmup_overflow { WARMUP_WAIT = 0, WARMUP_SPILL = 1 };

struct warmup_schedule;
struct warmup_config;

/* An IP under warm-up. */
struct warmup_ip {
	const char *ip; /* canonical text */
	const struct warmup_schedule *schedule;
	uint64_t start_ms; /* 00:00 UTC of its start date */
};

/* Parse a warm-up file / document (`name` stands in for FILE). Caller frees
 * with warmup_free(). SL_ECONFIG (message in err), -errno, -ENOMEM. */
int warmup_load(const char *path, struct warmup_config **out, char *err, size_t errlen);
int warmup_load_string(const char *name, const char *yaml, size_t len,
		       struct warmup_config **out, char *err, size_t errlen);
void warmup_free(struct warmup_config *cfg);

/* Lookups; NULL when absent. */
const struct warmup_schedule *warmup_schedule_by_name(const struct warmup_config *cfg,
						      const char *name);
const struct warmup_ip *warmup_ip_for(const struct warmup_config *cfg, const char *ip);
/* A pool's overflow policy (WARMUP_WAIT when the pool is not listed). */
enum warmup_overflow warmup_pool_overflow(const struct warmup_config *cfg, const char *pool);

/* The curve for provider (its own, else the default; NULL provider = the
 * default). Never NULL for a loaded schedule. */
const struct warmup_curve *warmup_curve_for(const struct warmup_schedule *s, const char *provider);

/* The caps on sending day `day` (>= 1; 0 counts as 1). */
struct warmup_cap warmup_curve_cap(const struct warmup_curve *c, uint32_t day);
struct warmup_cap warmup_cap(const struct warmup_schedule *s, const char *provider, uint32_t day);

/* The next sending day after `day` whose caps differ, or 0 if none. */
uint32_t warmup_next_increase(const struct warmup_curve *c, uint32_t day);

/* The first day whose daily cap is unlimited, or 0 if the curve never ends. */
uint32_t warmup_warm_day(const struct warmup_curve *c);

/* ---- per (IP, provider) state ------------------------------------------ */

struct warmup_state {
	const struct warmup_curve *curve;
	uint64_t start_ms;
	uint32_t day;        /* sending-day index, >= 1 */
	int64_t cur_day;     /* calendar day of the counters (ms / 24h) */
	int64_t cur_hour;    /* calendar hour of sent_hour (ms / 1h) */
	uint64_t sent_today;
	uint64_t sent_hour;
	bool paused;
};

/* Start a warm-up on curve c at start_ms (day 1 = start_ms's UTC day). */
void warmup_state_init(struct warmup_state *st, const struct warmup_curve *c, uint64_t start_ms);

/* Point st at a curve of a reloaded config, keeping day and counters. */
void warmup_state_rebind(struct warmup_state *st, const struct warmup_curve *c);

/* Bring the windows up to now_ms (done by every call below). */
void warmup_roll(struct warmup_state *st, uint64_t now_ms);

/* Count n messages and return true if both caps allow all n now; false
 * (nothing counted) otherwise, also when paused or before the start. */
bool warmup_allow(struct warmup_state *st, uint64_t now_ms, uint64_t n);

/* Messages still allowed now: min(daily, hourly) left; WARMUP_UNLIMITED
 * when warm; 0 when paused or not started. */
uint64_t warmup_remaining(struct warmup_state *st, uint64_t now_ms);

/* The earliest time >= now_ms at which at least one message is allowed:
 * now_ms, the next hour, the next day or the start; UINT64_MAX when paused. */
uint64_t warmup_next_ms(struct warmup_state *st, uint64_t now_ms);

/* The caps in force now (after rolling). */
struct warmup_cap warmup_state_cap(struct warmup_state *st, uint64_t now_ms);

/* Is the IP fully warm for this provider (unlimited today, not paused)? */
bool warmup_is_warm(struct warmup_state *st, uint64_t now_ms);

/* Operator actions: pause/resume keep the day; restart goes back to day 1
 * from now_ms's day; jump sets the sending day (>= 1). Counters of the
 * current hour/day are kept. */
void warmup_pause(struct warmup_state *st);
void warmup_resume(struct warmup_state *st);
void warmup_restart(struct warmup_state *st, uint64_t now_ms);
void warmup_jump(struct warmup_state *st, uint32_t day);

/* Spill: among the n states of one pool's IPs for one provider (a NULL
 * entry is an IP not under warm-up, which is warm), the first warm one
 * found scanning round-robin from index `start`. Returns its index or
 * SL_ENOTFOUND (then the mail waits). */
int warmup_spill_pick(struct warmup_state *const *cands, size_t n, size_t start, uint64_t now_ms);

#endif
