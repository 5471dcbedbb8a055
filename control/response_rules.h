/*
 * response_rules.h — acting on what receivers say: rules that match SMTP
 * replies per provider and suspend or throttle traffic in response
 * (traffic shaping automation, after KumoMTA's TSA).
 *
 * A rules file (configs/response-rules.conf is the shipped default; the
 * format is documented there and in docs/reputation.md) holds one rule a
 * line:
 *
 *     PROVIDER  MATCH...  action=ACTION  [ARGS...]
 *
 *   PROVIDER  a provider name from providers.conf, or '*' for any
 *   MATCH     code=421 | code=4xx        the basic reply code
 *             status=4.7.28 | status=5.7  enhanced status, component prefix
 *             text="..."                  case-insensitive substring of the
 *                                         reply (lines joined by spaces); with
 *                                         '*' or '?' a glob matched anywhere
 *             (at least one; all given must match)
 *   ACTION    suspend      stop delivering for duration=DUR; scope=ip (the
 *                          source IP x provider, the default) or
 *                          scope=tenant (the tenant x provider)
 *             throttle     multiply the (source IP, provider) message rate by
 *                          factor=F (0 < F < 1), then add step=S (default
 *                          0.1) every=DUR (default 10m) until back to 1
 *             hold-tenant  hand the tenant to the policy engine for a hold
 *   ARGS      trigger=immediate (default) | trigger=N/DUR, e.g. 5/10m: fire
 *             on the Nth match within DUR for the same key; name=WORD (for
 *             logs; default FILE:LINE)
 *
 * Evaluation: a reply from provider P is tried against P's rules in file
 * order, then the '*' rules in file order; the first match decides. A rule
 * whose trigger has not fired yet still "takes" the reply (later rules are
 * not tried): rules are ordered specific to general.
 *
 * The engine keeps, per (rule, key), the timestamps of recent matches for
 * threshold triggers, and per key the suspensions and throttles in force.
 * Memory is bounded by max_entries in each of the two tables: expired
 * entries go first, then the least recently touched. Time is passed in (ms,
 * any monotonic origin). The engine is not thread-safe (one per control
 * thread, or lock around it); the rules are immutable and shareable, and
 * must outlive every engine using them.
 *
 * Errors: SL_ECONFIG a bad rules file (err holds "FILE:LINE: message"),
 * -ENOMEM, -EINVAL bad arguments, -errno from reading a file.
 */
#ifndef SL_RESPONSE_RULES_H
#define SL_RESPONSE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESPONSE_THRESHOLD_MAX 64 /* largest N in trigger=N/DUR */
#define RESPONSE_KEY_MAX 64       /* provider, IP and tenant names are cut to this */

enum response_action_kind {
	RESPONSE_NONE = 0,
	RESPONSE_SUSPEND,
	RESPONSE_THROTTLE,
	RESPONSE_HOLD_TENANT,
};

enum response_scope {
	RESPONSE_SCOPE_IP = 0, /* (source IP, provider) */
	RESPONSE_SCOPE_TENANT, /* (tenant, provider) */
};

/* What a fired rule asks for; filled by response_engine_observe(). */
struct response_action {
	enum response_action_kind kind;
	enum response_scope scope;
	const char *rule;    /* its name (static while the rules live) */
	unsigned line;       /* its line in the rules file */
	char provider[RESPONSE_KEY_MAX + 1]; /* the provider observed ("" unknown) */
	char key[RESPONSE_KEY_MAX + 1];      /* source IP or tenant, per scope */
	uint64_t until_ms;   /* suspend: end; throttle: when fully ramped back */
	double factor;       /* throttle: the rate factor now (suspend: 0) */
	unsigned matches;    /* matches that made the trigger fire */
	uint64_t window_ms;  /* threshold triggers: the window; 0 if immediate */
};

struct response_rules;
struct response_engine;

const char *response_action_name(enum response_action_kind k);

/* Parse rules from text in memory; name is FILE in error messages. */
int response_rules_parse(const char *text, size_t len, const char *name,
			 struct response_rules **out, char *err, size_t errlen);
/* Read and parse a rules file. */
int response_rules_load(const char *path, struct response_rules **out, char *err, size_t errlen);
void response_rules_free(struct response_rules *r);
size_t response_rules_count(const struct response_rules *r);

/* The rule that decides reply from provider (NULL or "" = unknown: only
 * '*' rules): its index, or -1 if none matches. For explain tools. */
int response_rules_match(const struct response_rules *r, const char *provider,
			 const char *reply);
/* Name and line of rule i (NULL / 0 when out of range). */
const char *response_rules_name(const struct response_rules *r, size_t i, unsigned *line);

/* An engine over rules keeping at most max_entries counters and as many
 * suspensions/throttles (0 = 65536). NULL when out of memory. */
struct response_engine *response_engine_create(const struct response_rules *rules,
					       size_t max_entries);
void response_engine_free(struct response_engine *e);

/* One reply from a receiver of provider (NULL = unknown), sent from
 * source_ip on behalf of tenant (NULL if none), at now_ms. Returns 1 with
 * *out filled when a rule fired (a suspension or throttle is now in force,
 * or a hold-tenant is asked for), 0 when nothing fired (no match, or a
 * threshold not reached yet), -EINVAL. */
int response_engine_observe(struct response_engine *e, const char *provider,
			    const char *source_ip, const char *tenant, const char *reply,
			    uint64_t now_ms, struct response_action *out);

/* The factor (0..1] to apply to the (source IP, provider) message rate at
 * now_ms: 1 when no throttle is in force. */
double response_engine_rate_factor(struct response_engine *e, const char *provider,
				   const char *source_ip, uint64_t now_ms);

/* Is traffic from source_ip for tenant (NULL: only the IP scope is
 * checked) to provider suspended at now_ms? If so, *until_ms (may be NULL)
 * is when the later of the suspensions in force ends. */
bool response_engine_suspended(struct response_engine *e, const char *provider,
			       const char *source_ip, const char *tenant, uint64_t now_ms,
			       uint64_t *until_ms);

/* Entries in use: threshold counters and suspensions/throttles. */
void response_engine_usage(const struct response_engine *e, size_t *counters, size_t *effects);

#endif
