/*
 * policy.h — reputation counters and the threshold engine: when to warn,
 * hold and disable a configuration set or a tenant on its own numbers.
 *
 * Subjects. Every event is counted twice: for its configuration set
 * (tenant x sending domain x stream) and for the tenant as a whole. Both
 * are judged by the same thresholds; a configuration set's hold pauses
 * that stream of that domain (STORE_CFGSET_PAUSED), a tenant's hold is the
 * tenant lifecycle's on_hold (tenant.h).
 *
 * Counters. Per subject, sent / delivered / bounced (hard) / unknown-user
 * / complaints / spam-trap hits in a sliding window of window_ms made of
 * buckets of bucket_ms (default 24 h of 1 h buckets). Rates:
 *     bounce rate    = bounced / sent          (guard: at least min_volume sent)
 *     unknown rate   = unknown_user / sent     (guard: at least min_volume sent)
 *     complaint rate = complaints / delivered  (guard: at least min_volume delivered)
 * Below its guard a rate is not judged (reported as -1). Count a hard
 * bounce as POLICY_BOUNCED and, if its reason is userunknown, also as
 * POLICY_UNKNOWN_USER (policy_metrics_for_bounce() does the mapping).
 * Late signals (async bounces, complaints) count when they arrive.
 *
 * Decisions (as tenant_event values, with the numbers behind them):
 *   policy_warn     a rate at or above its warn threshold
 *   policy_hold     a rate at or above its hold threshold; trap hits at or
 *                   above trap_hold (configuration sets; tenant_trap_hold
 *                   for tenants); a volume spike (tenants): this bucket's
 *                   accepted > spike_factor x the median of the tenant's
 *                   non-empty buckets over spike_baseline_ms and >=
 *                   spike_floor, once it has spike_min_buckets such buckets
 *                   (accepted, not sent: a blast is caught at the door,
 *                   while most of it still waits in the queue)
 *   policy_disable  a hold again within repeat_ms of an operator resume
 *   grace_expired   the hold's grace period passed and the subject's
 *                   numbers (over the window before the hold plus
 *                   everything that arrived since) are still at or above a
 *                   hold threshold; a hold for a volume spike alone (rates
 *                   fine) stays held for an operator
 *   policy_recover  a warned subject whose numbers are below every warn
 *                   threshold again
 * The engine tracks the state it has driven each subject to (ok, warned,
 * held, disabled); operator actions reach it through policy_set_state().
 * A resume clears the subject's counters (a fresh start, judged again from
 * zero) and its spike history (the operator accepted the volume: the
 * baseline is learnt afresh, spike_min_buckets buckets before the next
 * spike can hold) and starts the repeat_ms clock.
 *
 * Memory: at most max_subjects subjects; when full, the least recently
 * updated subject in state ok is forgotten (others are never dropped:
 * -ENOSPC then). Time is passed in (wall-clock ms). Not thread-safe.
 *
 * Errors: -EINVAL bad arguments, -ENOMEM, -ENOSPC no room for a subject,
 * SL_ECONFIG a bad configuration value (err says which).
 */
#ifndef SL_POLICY_H
#define SL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounce.h"
#include "buf.h"
#include "tenant.h"

#define POLICY_NAME_MAX 64    /* tenant names (STORE_NAME_MAX) */
#define POLICY_DOMAIN_MAX 253 /* sending domains (STORE_DOMAIN_MAX) */

enum policy_metric {
	POLICY_SENT = 0,     /* a recipient handed to a receiver (accepted or not) */
	POLICY_DELIVERED,    /* accepted by the receiver */
	POLICY_BOUNCED,      /* hard bounce, sync or async */
	POLICY_UNKNOWN_USER, /* hard bounce with reason userunknown (also counted as bounced) */
	POLICY_COMPLAINT,    /* an ARF complaint */
	POLICY_TRAP_HIT,     /* mail to an address on an operator spam-trap list */
	POLICY_ACCEPTED,     /* a message taken into the spool (the volume-spike count) */
	POLICY_N_METRICS
};

/* A rate's thresholds as fractions (0.05 = 5%); 0 turns a level off. */
struct policy_threshold {
	double warn, hold;
	uint32_t min_volume; /* the guard: denominator needed to judge */
};

/* All knobs; policy_config_default() fills the documented defaults. */
struct policy_config {
	uint64_t window_ms;                  /* 24h */
	uint64_t bucket_ms;                  /* 1h */
	struct policy_threshold bounce;      /* 5% / 10%, 100 sent */
	struct policy_threshold unknown;     /* 3% / 8%, 100 sent */
	struct policy_threshold complaint;   /* 0.1% / 0.3%, 1000 delivered */
	uint32_t trap_hold;                  /* 1 hit holds a configuration set (0 = off) */
	uint32_t tenant_trap_hold;           /* 3 hits hold the tenant (0 = off) */
	uint64_t grace_ms;                   /* 24h from hold to grace_expired */
	uint64_t repeat_ms;                  /* 7d: a hold this soon after a resume disables */
	double spike_factor;                 /* 10 */
	uint32_t spike_floor;                /* 1000 accepted in the bucket */
	uint32_t spike_min_buckets;          /* 6 non-empty buckets of history */
	uint64_t spike_baseline_ms;          /* 7d */
};

/* What a subject is: domain NULL (or "") means the tenant as a whole. */
struct policy_key {
	const char *tenant;
	const char *domain; /* sending domain; case-insensitive */
	uint8_t stream;     /* enum sl_stream */
};

enum policy_state { POLICY_OK = 0, POLICY_WARNED, POLICY_HELD, POLICY_DISABLED };

enum policy_reason {
	POLICY_R_BOUNCE_RATE = 0,
	POLICY_R_UNKNOWN_RATE,
	POLICY_R_COMPLAINT_RATE,
	POLICY_R_SPAM_TRAP,
	POLICY_R_VOLUME_SPIKE,
	POLICY_R_RECOVERED,
};

/* A subject's numbers over its window. */
struct policy_numbers {
	uint64_t count[POLICY_N_METRICS];
	double bounce_rate, unknown_rate, complaint_rate; /* -1 under the guard */
	uint64_t bucket_sent;  /* accepted in the current bucket (tenants) */
	double baseline;       /* median of non-empty buckets; -1 without enough history */
};

struct policy_decision {
	bool cfgset;                          /* a configuration set, else the tenant */
	char tenant[POLICY_NAME_MAX + 1];
	char domain[POLICY_DOMAIN_MAX + 1];   /* "" for the tenant */
	uint8_t stream;
	enum tenant_event event;              /* policy_warn/hold/disable/recover, grace_expired */
	enum policy_reason reason;
	double value, threshold;              /* the triggering number and its limit */
	struct policy_numbers n;
	uint64_t at_ms;
	uint64_t grace_until_ms;              /* policy_hold: when grace_expired may follow */
	char text[768];                       /* one line for the audit log */
};

struct policy_status {
	enum policy_state state;
	struct policy_numbers n;
	uint64_t held_at_ms, grace_until_ms, resumed_at_ms;
	unsigned holds;       /* holds so far */
	bool recovered;       /* held, grace passed, numbers fine: awaiting an operator */
};

struct policy;

void policy_config_default(struct policy_config *cfg);
/* Set one knob by name ("bounce_warn", "grace", ... see docs/reputation.md)
 * from text ("5%", "0.05", "24h", "1000"). 0 or SL_ECONFIG with err. */
int policy_config_set(struct policy_config *cfg, const char *key, const char *value, char *err,
		      size_t errlen);
/* Check a whole configuration (bucket divides window, warn <= hold, ...). */
int policy_config_check(const struct policy_config *cfg, char *err, size_t errlen);
/* Apply a YAML document (configs/policy.yaml: a mapping of the knobs of
 * policy_config_set() to scalars) on top of *cfg, then check it. name is
 * FILE in "FILE:LINE:COL: message" errors. 0 or SL_ECONFIG, -ENOMEM. */
int policy_config_parse(struct policy_config *cfg, const char *name, const char *yaml,
			size_t len, char *err, size_t errlen);
/* policy_config_parse() of a file (-errno if unreadable). */
int policy_config_load(struct policy_config *cfg, const char *path, char *err, size_t errlen);

/* An engine with cfg (copied; must pass policy_config_check) and room for
 * max_subjects subjects (0 = 100000). NULL on a bad cfg or no memory. */
struct policy *policy_create(const struct policy_config *cfg, size_t max_subjects);
void policy_free(struct policy *p);

/* Which metrics a classified bounce counts as: writes up to 2 into m and
 * returns how many (0 for soft failures, vacation, undefined...). */
int policy_metrics_for_bounce(enum bounce_reason reason, bool hard, enum policy_metric m[2]);

/* Count n events of metric for key's configuration set (if key->domain)
 * and its tenant at now_ms. 0, -EINVAL, -ENOMEM, -ENOSPC. */
int policy_record(struct policy *p, const struct policy_key *key, enum policy_metric metric,
		  uint32_t n, uint64_t now_ms);

/* Judge key's configuration set (if key->domain) and tenant now; write up
 * to max decisions into out and return how many (0..2), or an error. */
int policy_evaluate(struct policy *p, const struct policy_key *key, uint64_t now_ms,
		    struct policy_decision *out, size_t max);

/* Judge every subject (grace expiries, recoveries as the window slides);
 * up to max decisions, continuing where the last call stopped when out
 * fills. Returns how many. Call it every minute or so. */
int policy_tick(struct policy *p, uint64_t now_ms, struct policy_decision *out, size_t max);

/* Tell the engine about a state set from outside (an operator action, a
 * state loaded at start-up). Resuming to POLICY_OK clears the counters. A
 * hold set this way has no grace deadline unless grace_until_ms != 0. */
int policy_set_state(struct policy *p, const struct policy_key *key, enum policy_state st,
		     uint64_t grace_until_ms, uint64_t now_ms);

/* The subject's state and numbers; SL_ENOTFOUND if it has none. */
int policy_status(struct policy *p, const struct policy_key *key, uint64_t now_ms,
		  struct policy_status *out);

/* Subjects in use. */
size_t policy_count(const struct policy *p);

const char *policy_state_name(enum policy_state s);
const char *policy_reason_name(enum policy_reason r);
const char *policy_metric_name(enum policy_metric m);

/* The decision as a JSON object (the audit entry's details). */
int policy_decision_json(const struct policy_decision *d, struct sl_buf *b);

#endif
