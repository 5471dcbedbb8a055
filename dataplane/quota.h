/*
 * quota.h — tenants' message quotas per hour and per day.
 *
 * Operators give a tenant quota_hour / quota_day (messages; 0 = none) in
 * the control store. The acceptance path asks quota_over() before taking
 * a message and calls quota_count() as it takes it (so the messages of
 * one HTTP batch count against each other; one whose commit then fails
 * still counts, erring on the safe side), so SMTP
 * (451 4.7.1 at MAIL FROM and at end of data) and HTTP injection (a
 * per-message error) refuse alike; the refusal is temporary because the
 * windows reset.
 *
 * Windows are fixed UTC clock hours and days (what a tenant's dashboard
 * says "this hour" means), not sliding ones. Counts live in memory on the
 * loop thread: a restart starts the current windows at zero (stated to
 * operators in docs/api.md).
 *
 * Single-threaded (the event loop); -ENOMEM is the only error.
 */
#ifndef SL_QUOTA_H
#define SL_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct quota;

int quota_create(struct quota **out);
void quota_destroy(struct quota *q);

/* Has tenant used up hour_limit this clock hour or day_limit this UTC day
 * (0 = no limit) at wall time now_ms? When so, why names which one, e.g.
 * "hourly quota of 1000 messages reached". */
bool quota_over(struct quota *q, const char *tenant, uint64_t hour_limit, uint64_t day_limit,
		uint64_t now_ms, char *why, size_t whylen);
/* Count one accepted message for tenant. 0 or -ENOMEM. */
int quota_count(struct quota *q, const char *tenant, uint64_t now_ms);

#endif
