/*
 * link_guard.h — outbound link checking at acceptance, the asynchronous
 * half (link_check.h is the sans-I/O half): the hosts a message links to
 * are looked up in the local blocklist (link_check.blocklist) and in the
 * DNS URI blocklists (link_check.uribl_zones), and a listed host triggers
 * the configured action:
 *   reject  the message is refused (SMTP 550 5.7.1 at the end of DATA,
 *           HTTP per-message rejection), the refusal names host and list;
 *   hold    the message is accepted and its tenant put on hold (a policy
 *           hold in the control store, as a reputation decision makes it:
 *           its mail stays queued until an operator resumes it);
 *   log     the message is accepted; only the log line, event, audit
 *           entry and metric below.
 * Every hit, whatever the action: a warning log line naming the tenant,
 * the queue id, the Message-ID, the host and the list; a "link_listed"
 * event; an audit entry "link.listed" on target tenant:NAME (when there is
 * a control store; at most one a minute per tenant and host, since each is
 * a store commit on the loop thread); sluice_link_hits_total{list,action}. The first listed
 * host decides; the local list is asked first (no DNS when it names one).
 *
 * Waiting: the lookups run on the resolver of the event loop; the message
 * waits for them the way it waits for its spool commit (the client's
 * reply is simply not written yet), so nothing blocks. The wait is bounded
 * by link_check.dns_timeout: then the lookups still out are cancelled and
 * the message goes on as clean (fail open: a slow or dead blocklist must
 * not stop mail), with a warning and sluice_link_check_timeouts_total.
 * Lookup errors count in sluice_link_check_dns_errors_total and read as
 * not listed; so do 127.255.255.x answers (a refused query).
 *
 * Threads: the loop thread only. The guard borrows the resolver, loop,
 * config, metrics, events and store (all outlive it).
 */
#ifndef SL_LINK_GUARD_H
#define SL_LINK_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct events;
struct link_guard;
struct link_guard_check;
struct loop;
struct metrics;
struct resolver;
struct store;

struct link_guard_env {
	struct loop *loop;
	struct resolver *resolver;
	const struct sl_config *cfg; /* cfg->link_check */
	struct metrics *metrics;
	struct events *events;       /* may be NULL */
	struct store *store;         /* may be NULL: no audit; required for hold */
	/* The guard put tenant on hold in the store: refresh the view. */
	void (*tenant_changed)(void *ctx, const char *tenant);
	void *ctx;
};

/* Verdicts of link_guard_check and done. */
enum { LINK_GUARD_PASS = 0, LINK_GUARD_REJECT = 1, LINK_GUARD_PENDING = 2 };

struct link_guard_req {
	/* in: borrowed until done ran (or link_guard_check did not pend) */
	const char *tenant;
	uint64_t id;                /* queue id */
	const char *message_id;
	int stream;                 /* enum sl_stream */
	const char *body;
	size_t body_len;
	void (*done)(struct link_guard_req *rq, int verdict); /* PASS, REJECT or -ECANCELED */
	/* out: with REJECT, "it links to HOST (listed by LIST)" */
	char refusal[320];
	/* internal */
	struct link_guard_check *chk;
};

/* Load the blocklist (err: "FILE:LINE: ..."). */
int link_guard_create(const struct link_guard_env *env, struct link_guard **out, char *err,
		      size_t errlen);
/* Pending checks end with done(-ECANCELED). NULL is a no-op. */
void link_guard_destroy(struct link_guard *g);
/* SIGHUP: load the blocklist again; on error the old one stays. */
int link_guard_reload(struct link_guard *g, char *err, size_t errlen);
/* Domains in the blocklist now. */
size_t link_guard_blocklist_count(const struct link_guard *g);

/* Check rq's message. LINK_GUARD_PASS or LINK_GUARD_REJECT now (done is
 * not called), LINK_GUARD_PENDING (done will be, from the loop, never
 * before this returned), or -ENOMEM. */
int link_guard_check(struct link_guard *g, struct link_guard_req *rq);

#endif
