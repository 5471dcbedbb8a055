/*
 * warmup_gate.h — which source IP of a pool may send the next message to a
 * provider, under the warm-up schedules (control/warmup.h).
 *
 * The gate holds one warmup_state per (IP under warm-up, provider) it has
 * seen, created on first use from the IP's schedule and start date (or
 * from a saved record, warmup_gate_restore). Per pool and provider:
 *
 *   - a *warming* IP (under warm-up, not yet unlimited for the provider,
 *     not paused) may send while its hourly and daily caps allow;
 *   - a *warm* IP (not under warm-up, or unlimited for the provider) may
 *     send without a cap, but while the pool has warming IPs for that
 *     provider only as overflow: when none of them has capacity left and
 *     the pool's overflow policy is `spill`. Under `wait` (the default) the
 *     mail is held until the earliest next window of a warming IP;
 *   - a paused IP sends nothing to that provider and does not count as
 *     warming, so the rest of the pool carries on without it.
 * Among warming IPs with capacity the one with the most messages left now
 * wins (ties: round-robin), which spreads a pool's volume over its warming
 * IPs in proportion to their caps; warm IPs are taken round-robin.
 *
 * Messages are counted by warmup_gate_take(): one per delivery (one SMTP
 * transaction, whatever its recipient count), when the session takes it.
 *
 * Time: every call takes `now`, ms since the epoch on the warm-up clock —
 * the wall clock, or under a test clock scale S, a clock that runs S times
 * faster from the daemon's start (warmup_gate_clock). Only the warm-up
 * calendar uses it.
 *
 * The gate borrows the warm-up and daemon configs (they outlive it).
 * No I/O: the daemon persists records through warmup_db.h.
 */
#ifndef SL_WARMUP_GATE_H
#define SL_WARMUP_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "warmup.h"
#include "warmup_db.h"

struct warmup_gate;

/* A gate over cfg's pools with wc's schedules; scale >= 1 is the clock's
 * speed, origin_wall_ms / origin_mono_ms the instant it starts from. */
int warmup_gate_create(const struct warmup_config *wc, const struct sl_config *cfg,
		       uint32_t scale, uint64_t origin_wall_ms, uint64_t origin_mono_ms,
		       struct warmup_gate **out);
void warmup_gate_destroy(struct warmup_gate *g);

/* The warm-up clock at monotonic time mono_ms. */
uint64_t warmup_gate_clock(const struct warmup_gate *g, uint64_t mono_ms);
/* Real ms until warm-up time `at` (>= 1; UINT64_MAX stays UINT64_MAX). */
uint64_t warmup_gate_real_delay(const struct warmup_gate *g, uint64_t now, uint64_t at);

/* The id of a provider name (NULL or "" = no provider, id 0); ids are
 * stable for the gate's life. -ENOMEM. */
int warmup_gate_provider(struct warmup_gate *g, const char *name);

/* Does pool (index into cfg->pools) have any IP under warm-up? */
bool warmup_gate_pool_gated(const struct warmup_gate *g, size_t pool);

/* Pick the IP (index into the pool's ips) a new session to provider prov
 * should use. -EAGAIN when none may send now: *next is then the
 * warm-up time to look again (UINT64_MAX: not before an operator acts). */
int warmup_gate_pick(struct warmup_gate *g, size_t pool, int prov, uint64_t now,
		     uint64_t *next);

/* warmup_gate_pick() among the IPs usable(ctx, ip) accepts (say, those
 * whose own shaping limits allow a session now); the others are skipped
 * as if busy, the gate's choice among the rest is unchanged. -EBUSY when
 * the IP the gate would use is only unusable (the caller knows when that
 * ends); -EAGAIN and *next as warmup_gate_pick() otherwise. */
int warmup_gate_pick_usable(struct warmup_gate *g, size_t pool, int prov, uint64_t now,
			    bool (*usable)(void *ctx, size_t ip), void *ctx, uint64_t *next);

/* A session from IP ip of pool is about to send one message to prov:
 * true if allowed (and counted), false if that IP must stop now (it ran
 * out of capacity, was paused, or is warm while warming IPs have room). */
bool warmup_gate_take(struct warmup_gate *g, size_t pool, size_t ip, int prov, uint64_t now);

/* Restore a saved state (records for IPs not under warm-up, or whose
 * schedule changed, are adopted onto the IP's current schedule or
 * ignored). */
int warmup_gate_restore(struct warmup_gate *g, const struct warmup_record *r);

/* Apply an operator command. SL_ENOTFOUND: the IP is not under warm-up. */
int warmup_gate_command(struct warmup_gate *g, const struct warmup_command *c, uint64_t now);

/* Fill out with up to max records of the states that changed since the
 * last export (all of them when all is true), rolled to now; returns how
 * many were written and clears their change marks. */
size_t warmup_gate_export(struct warmup_gate *g, uint64_t now, bool all, struct warmup_record *out,
			  size_t max);
/* How many states the gate holds. */
size_t warmup_gate_count(const struct warmup_gate *g);

#endif
