/*
 * reputation.h — the daemon's reputation automation: VERP return paths,
 * suppression at injection, the inbound listener's dispatch (async bounces,
 * ARF complaints, address verification), the policy engine fed by delivery
 * outcomes, and receiver response rules for egress. It wires the pure
 * libraries (control/verp, bounce, arf, suppression, policy,
 * response_rules) to the control store, the event log and the metrics;
 * docs/reputation.md says how.
 *
 * Threads: everything runs on the event-loop thread except
 * reputation_suppressed(), which only reads the control store and may be
 * called from any thread (HTTP injection checks from the API threads).
 * Inbound messages are processed on a worker thread (store writes fsync,
 * verification does DNS) and answered on the loop thread.
 *
 * Durability: an inbound message is answered 250 only after its
 * suppression writes committed; the policy engine's counters are memory
 * (a restart starts the windows afresh), its decisions are store
 * transitions (audited with the numbers).
 *
 * Errors: -ENOMEM, -EINVAL; files that do not load fail reputation_create
 * with the file's message in err.
 */
#ifndef SL_REPUTATION_H
#define SL_REPUTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "smtp_reply.h"
#include "spool.h"

struct events;
struct loop;
struct metrics;
struct reputation;
struct store;
struct verification;

struct reputation_env {
	struct loop *loop;
	const struct sl_config *cfg; /* cfg->bounces.enabled */
	struct store *store;         /* required */
	struct events *events;       /* may be NULL */
	struct metrics *metrics;
	/* The loop thread changed tenant's state in the store: refresh the
	 * data path's tenant view. */
	void (*tenant_changed)(void *ctx, const char *tenant);
	void *ctx;
};

/* Load the VERP secret (generated into secret_file, default
 * STORE/verp.secret, when absent), the bounce, response and policy rules
 * and the spam-trap list. */
int reputation_create(const struct reputation_env *env, struct reputation **out, char *err,
		      size_t errlen);
void reputation_destroy(struct reputation *r);

/* Route verify+TOKEN@ recipients to v (helper I's verification.h; may be
 * NULL: such mail is refused "550 5.7.1 verification not configured").
 * Borrowed; must outlive r. */
void reputation_set_verification(struct reputation *r, struct verification *v);

/* --- egress --------------------------------------------------------------- */

/* The VERP envelope sender for recipient rcpt_idx of m into out. Its
 * length; 0 when m keeps its own MAIL FROM (the null sender: DSNs); or an
 * error (egress then keeps m's). */
int reputation_return_path(struct reputation *r, const struct spool_msg *m, uint32_t rcpt_idx,
			   char *out, size_t outlen);
/* One receiver reply about m (any stage: greeting, MAIL, RCPT, DATA) from
 * source_ip to provider (may be ""): non-2xx replies go to the response
 * rules (suspend, throttle, hold the tenant). Once per reply. */
void reputation_reply(struct reputation *r, const struct spool_msg *m,
		      const struct smtp_reply *reply, const char *source_ip, const char *provider);
/* Recipient rcpt of m got its final word reply (2xx or 5xx; 4xx are
 * ignored until they end): feeds the policy engine (sent, delivered,
 * bounced, unknown user, trap hit) and suppresses hard bounces. */
void reputation_outcome(struct reputation *r, const struct spool_msg *m, const char *rcpt,
			const struct smtp_reply *reply);
/* May a new session (or message) go from source_ip to provider for
 * tenant now? false with *until_ms: a response rule suspended it. */
bool reputation_may_send(struct reputation *r, const char *provider, const char *source_ip,
			 const char *tenant, uint64_t *until_ms);
/* The factor (0..1] for the (source IP, provider) message rate. */
double reputation_rate_factor(struct reputation *r, const char *provider, const char *source_ip);
/* Every second or so: policy ticks (grace expiries, recoveries). */
void reputation_tick(struct reputation *r);
/* Any thread: tenant's state or one of its configuration sets changed in
 * the store (an operator action). When it is active (or sandbox) again,
 * the policy engine's hold on the tenant is lifted, and so is the hold on
 * each of its configuration sets that is no longer paused
 * (STORE_CFGSET_PAUSED); their counters are cleared, so they are judged
 * afresh and can be held again. */
void reputation_tenant_changed(struct reputation *r, const char *tenant);

/* --- injection ------------------------------------------------------------ */

/* m was taken into the spool (loop thread; r may be NULL): counted for
 * its tenant's volume-spike rule. The spike is judged by the next
 * reputation_tick(); a spike holds the tenant (on_hold, no grace
 * deadline) for an operator's review. */
void reputation_accepted(struct reputation *r, const struct spool_msg *m);

/* Is rcpt suppressed for tenant (its list or the global one)? 1 with the
 * reason name in *reason ("hard_bounce", ...) and the hit counted in
 * sluice_suppression_hits_total, 0, or an error. Any thread (a store read);
 * the refusal's event is reputation_refused()'s, on the loop thread. */
int reputation_suppressed(struct reputation *r, const char *tenant, const char *rcpt,
			  const char **reason);
/* The loop thread refused rcpt of tenant as suppressed: event + metric. */
void reputation_refused(struct reputation *r, const char *tenant, const char *rcpt,
			const char *reason);
/* Does the spam-trap list name rcpt? */
bool reputation_is_trap(struct reputation *r, const char *rcpt);

/* --- the inbound listener ------------------------------------------------- */

/* Is rcpt one of ours (the return-path domain, bounces.domains, the FBL
 * address's domain, verification recipients)? */
bool reputation_inbound_accepts(struct reputation *r, const char *rcpt);

struct reputation_inbound {
	const char *helo, *mail_from;
	const char *const *rcpts;
	size_t n_rcpts;
	const char *body;
	size_t body_len;
	struct sockaddr_storage client;
	/* The answer on the loop thread: code 250 when every recipient was
	 * processed, else the first failure's (e.g. 550 5.7.1 ...). */
	void (*done)(struct reputation_inbound *in, int code, const char *enhanced,
		     const char *text);
};

/* Process an inbound message (copies what it needs); done runs later on
 * the loop thread, never before this returns. -ENOMEM. */
int reputation_inbound_submit(struct reputation *r, struct reputation_inbound *in);
/* Inbound messages being processed (shutdown waits for 0). */
unsigned reputation_inbound_pending(const struct reputation *r);

/* --- visibility (any thread; a copy taken under a lock) ------------------- */

/* Append {"tenant", "policy_state", "counts": {...}, "rates": {...},
 * "holds", "grace_until_ms", "sets": [{"domain", "stream", "policy_state",
 * "counts", "rates", ...}], "recent": [{"time_ms", "action", "text"}]} for
 * tenant to b (zero counts when the engine has none). Any thread. */
int reputation_status_json(struct reputation *r, const char *tenant, struct sl_buf *b);
/* Decode a VERP address: 0 with the tenant's name, queue id, recipient
 * index and stream; SL_EAUTH / SL_EPROTO / -ESTALE as verp_decode. */
int reputation_verp_decode(struct reputation *r, const char *addr, char tenant[65],
			   uint64_t *queue_id, uint32_t *rcpt_index, uint8_t *stream);

#endif
