/*
 * shaping.h — per-destination traffic shaping rules and rate limiters.
 *
 * A shaping file (configs/shaping.yaml; docs/shaping.md is the reference)
 * holds rule sets: partial sets of knobs (max_connections, message_rate,
 * ...) matched on the destination — `default`, a provider (providers.h), a
 * site (site_key()) or a domain — and the same four again under `pools:
 * NAME:` and under `ips: ADDRESS:` to override them for one pool or one
 * source IP. shaping_resolve() merges, for one (source IP, pool, provider,
 * site, domain), every matching rule set in this order, later winning
 * knob by knob:
 *
 *     builtin < default < provider < site < domain              (base)
 *       < pool.default < pool.provider < pool.site < pool.domain (the IP's pool)
 *       < ip.default < ip.provider < ip.site < ip.domain          (the source IP)
 *
 * and says for every knob which rule set gave its value (for `sluicectl
 * shaping explain`). The result depends only on its key, so callers cache
 * it per (IP, site) (and per domain when a domain rule exists:
 * shaping_has_domain_rule()) and re-resolve after a reload.
 *
 * Loading is strict: an unknown key, a bad value or a duplicate rule set is
 * SL_ECONFIG with "FILE:LINE:COL: message" in err. Rules own their strings;
 * a resolved shaping_values points into them (its `from` labels) and is
 * valid while the rules live.
 *
 * rate_limiter is a token bucket for message_rate / connection_rate. It is
 * sans-I/O: the caller passes the time in ms (any monotonic origin, e.g. a
 * test clock running faster than real time).
 */
#ifndef SL_SHAPING_H
#define SL_SHAPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHAPING_MAX_RETRY 32

/* A rate: `count` events per `per_ms` ms; count 0 means unlimited. */
struct shaping_rate {
	uint32_t count;
	uint64_t per_ms;
};

enum shaping_knob {
	SHAPING_MAX_CONNECTIONS,
	SHAPING_CONNECTION_RATE,
	SHAPING_MESSAGE_RATE,
	SHAPING_MAX_MESSAGES_PER_CONNECTION,
	SHAPING_MAX_RECIPIENTS_PER_TRANSACTION,
	SHAPING_RETRY_SCHEDULE,
	SHAPING_MAX_AGE,
	SHAPING_CONNECT_TIMEOUT,
	SHAPING_IDLE_TIMEOUT,
	SHAPING_N_KNOBS
};

/* Effective settings for one egress path. 0 in a count means unlimited. */
struct shaping_values {
	uint32_t max_connections;                /* concurrent, per (source IP, site) */
	struct shaping_rate connection_rate;     /* new connections, per (source IP, site) */
	struct shaping_rate message_rate;        /* messages, per (source IP, site) */
	uint32_t max_messages_per_connection;
	uint32_t max_recipients_per_transaction; /* RCPTs per MAIL transaction */
	uint64_t retry_ms[SHAPING_MAX_RETRY];    /* delays between attempts; the last repeats */
	size_t n_retry;
	uint64_t max_age_ms;                     /* bounce after this long in the queue */
	uint64_t connect_timeout_ms;
	uint64_t idle_timeout_ms;                /* keep an idle connection open this long */
	/* Which rule set set each knob: "builtin", "default", "provider google",
	 * "site mx1.example,mx2.example", "domain example.com", "pool mkt
	 * provider google", "ip 203.0.113.5 default", ... */
	const char *from[SHAPING_N_KNOBS];
};

/* What to resolve for. Any member may be NULL (that level is skipped). */
struct shaping_key {
	const char *ip;       /* source IP, any textual form inet_pton accepts */
	const char *pool;     /* the source IP's pool */
	const char *provider; /* provider_for_mxs() */
	const char *site;     /* site_key() */
	const char *domain;   /* recipient domain */
};

struct shaping_rules;

/* Parse a shaping file / document in memory (`name` stands in for FILE).
 * Caller frees with shaping_free(). SL_ECONFIG (message in err), -errno,
 * SL_ETOOBIG for a file over 16 MiB. */
int shaping_load(const char *path, struct shaping_rules **out, char *err, size_t errlen);
int shaping_load_string(const char *name, const char *yaml, size_t len,
			struct shaping_rules **out, char *err, size_t errlen);

/* Rules with no rule sets: everything resolves to the builtin values. */
struct shaping_rules *shaping_empty(void);

void shaping_free(struct shaping_rules *r);

/* Replace the builtin layer (e.g. with sluice.yaml's delivery.* values). */
void shaping_set_builtin(struct shaping_rules *r, const struct shaping_values *v);

/* sluice's builtin values (max_connections 32, 100 messages per
 * connection, 100 recipients per transaction, retry 1m..4h, max_age 5d,
 * connect 30s, idle 60s, rates unlimited), every `from` = "builtin". */
void shaping_builtin(struct shaping_values *out);

/* Merge the rule sets matching key into *out (see the order above). No
 * allocation; O(12 log rule sets). Returns 0. */
int shaping_resolve(const struct shaping_rules *r, const struct shaping_key *key,
		    struct shaping_values *out);

/* Does any rule set (base, pool or ip) name this domain? */
bool shaping_has_domain_rule(const struct shaping_rules *r, const char *domain);

/* Number of rule sets loaded. */
size_t shaping_count(const struct shaping_rules *r);

/* The knob's YAML key ("max_connections", ...). */
const char *shaping_knob_name(enum shaping_knob k);

/* Parse "100/min", "10/s", "1,000/h", "5000/day", "unlimited" (count 0).
 * Periods: s sec second, m min minute, h hr hour, d day (plural too).
 * Returns 0 or SL_ECONFIG. */
int shaping_parse_rate(const char *s, struct shaping_rate *out);

/* Format a rate back ("100/min", "unlimited") into buf. */
void shaping_format_rate(const struct shaping_rate *r, char *buf, size_t len);

/* ---- token bucket ---------------------------------------------------- */

/* Up to `burst` tokens; one more every per_ms/count ms. Exact integer math:
 * the bucket holds tokens × per_ms "units" and gains count units per ms
 * (plus under one token of rounding slack, so the long-run rate is exact). */
struct rate_limiter {
	uint32_t count;   /* 0: unlimited */
	uint32_t burst;
	uint64_t per_ms;
	uint64_t units;   /* current fill, 0..burst*per_ms + slack */
	uint64_t last_ms; /* time of the last refill */
};

/* The default burst for a rate: the tokens 100 ms of it earns, at least 1
 * (so 100/min is smooth, 10000/s allows 1000 at once). */
uint32_t rate_default_burst(const struct shaping_rate *r);

/* Start full at now_ms. burst 0 means rate_default_burst(). */
void rate_init(struct rate_limiter *rl, const struct shaping_rate *r, uint32_t burst,
	       uint64_t now_ms);

/* Change the rate keeping the current fill (capped at the new burst). */
void rate_update(struct rate_limiter *rl, const struct shaping_rate *r, uint32_t burst,
		 uint64_t now_ms);

/* Take n tokens if all n are available at now_ms; false (nothing taken)
 * otherwise. n above the burst never succeeds; n 0 always does. A clock
 * going backwards counts as no time passing. */
bool rate_allow(struct rate_limiter *rl, uint64_t now_ms, uint32_t n);

/* Tokens available at now_ms (UINT32_MAX when unlimited). */
uint32_t rate_available(struct rate_limiter *rl, uint64_t now_ms);

/* The earliest time >= now_ms at which one token is available. */
uint64_t rate_next_ms(struct rate_limiter *rl, uint64_t now_ms);

/* ---- the strict YAML tree (shared with warmup.c) ----------------------- */

enum shaping_ynode_kind { SHAPING_Y_SCALAR, SHAPING_Y_SEQ, SHAPING_Y_MAP };

/* One YAML node with its position. Mappings hold key, value, key, value. */
struct shaping_ynode {
	enum shaping_ynode_kind kind;
	unsigned line, col; /* 1-based */
	bool plain;         /* unquoted scalar */
	char *val;          /* scalar text, NUL-terminated */
	size_t len;
	struct shaping_ynode **kids;
	size_t n, cap;
};

/* Parse one YAML document into a tree (aliases, a second document, nesting
 * deeper than 32 and NUL bytes are refused; duplicate mapping keys too).
 * *root is NULL for an empty document. SL_ECONFIG with "NAME:LINE:COL:
 * message" in err, or -ENOMEM. */
int shaping_yaml_parse(const char *name, const char *yaml, size_t len,
		       struct shaping_ynode **root, char *err, size_t errlen);
void shaping_yaml_free(struct shaping_ynode *n);

#endif
