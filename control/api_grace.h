/*
 * api_grace.h — ends on_hold grace periods.
 *
 * A small thread beside the API server wakes every API_GRACE_PERIOD_MS,
 * lists the tenants, and applies grace_expired (on_hold -> disabled,
 * audited with actor "policy") to every tenant on hold whose deadline
 * (hold_until_ms, wall clock) has passed, then calls changed(daemon, name)
 * so the data path sees the new state. Holds without a deadline stay until
 * an operator acts.
 *
 * Errors: -ENOMEM, or a pthread_create error (negative errno).
 */
#ifndef SL_API_GRACE_H
#define SL_API_GRACE_H

#include <stdint.h>

#include "store.h"

#define API_GRACE_PERIOD_MS 1000

struct api_grace;

int api_grace_start(struct store *st, void *daemon, void (*changed)(void *daemon, const char *tenant),
		    struct api_grace **out);
/* Expire what is due at wall-clock now_ms (the thread's body; exposed for
 * tests). Returns how many tenants were disabled, or a negative code. */
int api_grace_sweep(struct store *st, uint64_t now_ms, void *daemon,
		    void (*changed)(void *daemon, const char *tenant));
/* Stop and join the thread; NULL is a no-op. */
void api_grace_stop(struct api_grace *g);

#endif
