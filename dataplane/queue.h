/*
 * queue.h — the in-memory scheduler over the durable spool.
 *
 * Every spooled message with undelivered recipients lives here as a qmsg.
 * Its pending recipients are grouped per (pool, destination domain) into
 * deliveries — the unit an outbound SMTP transaction carries — and each
 * delivery is either ready (in its domain queue: a FIFO per stream, the
 * transactional one served first), active (owned by an
 * egress session), or deferred (sleeping on a retry timer).
 *
 * Outcomes flow back through queue_delivery_done(): per recipient it records
 * delivered, deferred (next attempt from the retry schedule), bounced, or
 * expired (older than delivery.max_age), writes one event per outcome,
 * generates a DSN for bounces when configured, and persists the new
 * recipient states through the spool's group commit (UPDATE, or DELETE
 * once every recipient is final). A crash before that commit means the
 * recipient is tried again: at-least-once, never lost.
 *
 * The queue is rebuilt from the spool at start (queue_recover). All calls
 * come from the event loop's thread.
 */
#ifndef SL_QUEUE_H
#define SL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "events.h"
#include "loop.h"
#include "smtp_reply.h"
#include "spool.h"

struct loop;
struct events;
struct metrics;
struct queue;
struct domain_queue;
struct qmsg;

/* One (message, destination domain) unit of work. */
struct delivery {
	struct qmsg *msg;
	struct domain_queue *dq;
	uint32_t *rcpt_idx; /* indices into the message's recipients */
	uint32_t n_rcpts;
	uint8_t *result;    /* internal: per-recipient outcome so far */
	char **failure;     /* internal: "status\0reply" of failed recipients, for DSNs */
	struct delivery *next; /* internal: ready-list link */
	struct delivery *all_prev, *all_next; /* internal: every live delivery */
	struct loop_timer timer; /* internal: retry timer while deferred */
	struct queue *q;         /* internal */
	uint8_t where;           /* internal: ready, active, deferred, parked */
	uint64_t last_ms;        /* internal: wall clock of the last reply */
	char last_reply[256];    /* internal: the last reply text ("" none) */
	char last_ip[48];        /* internal: source IP of the last attempt */
};

/* What the egress side does with a domain queue that has ready work. */
struct queue_hooks {
	void (*kick)(void *ctx, struct domain_queue *dq);
	/* queue_destroy hands back each domain queue's egress state to free. */
	void (*forget)(void *ctx, void *egress_state);
	void *ctx;
	/* May message m be delivered now (its tenant's lifecycle, tenant.h;
	 * its configuration set's hold)? NULL: yes. Ready work that may not
	 * is held (kept, not offered to egress) until queue_tenants_changed()
	 * finds it may again. */
	bool (*may_deliver)(void *tenant_ctx, const struct spool_msg *m);
	void *tenant_ctx;
};

struct queue_env {
	/* Stuck-queue alarm: oldest message older than stuck_age_ms (0: 1 h),
	 * or stuck_deferrals (0: 5) identical deferrals in a row. */
	uint64_t stuck_age_ms;
	unsigned stuck_deferrals;
	struct loop *loop;
	struct spool *spool;
	struct events *events; /* may be NULL */
	struct metrics *metrics;
	const struct sl_config *cfg;
	struct queue_hooks hooks;
};

int queue_create(const struct queue_env *env, struct queue **out);
/* Frees everything in memory (messages, deliveries, domain queues); the
 * durable state is in the spool already. Call after the spool is closed or
 * its pending ops are reaped. */
void queue_destroy(struct queue *q);

/* Take a freshly spooled message (after its PUT committed). Copies m. */
int queue_add(struct queue *q, const struct spool_msg *m);
/* Rebuild from the spool; returns the number of messages loaded. */
int queue_recover(struct queue *q);

/* --- used by egress ------------------------------------------------------ */

const char *domain_queue_domain(const struct domain_queue *dq);
const char *domain_queue_pool(const struct domain_queue *dq);
size_t domain_queue_ready(const struct domain_queue *dq);
/* Egress-owned per-domain state (connections, resolved hosts). */
void **domain_queue_egress_slot(struct domain_queue *dq);
/* Pop the next ready delivery, or NULL: transactional before marketing,
 * each in arrival order. */
struct delivery *domain_queue_take(struct domain_queue *dq);
/* may_deliver's answers changed: hold the ready work of tenants that may
 * no longer deliver, release the held work of those that may again. */
void queue_tenants_changed(struct queue *q);
/* Every domain queue with ready work (for periodic kicks). */
void queue_foreach_ready(struct queue *q, void (*fn)(void *ctx, struct domain_queue *dq),
			 void *ctx);

/* Accessors for an active delivery. */
const struct spool_msg *delivery_msg(const struct delivery *d);
int delivery_read_body(struct queue *q, const struct delivery *d, struct sl_buf *out);

/* Outcome of one recipient of an active delivery. */
struct rcpt_outcome {
	const struct smtp_reply *reply; /* the receiver's (or a synthesized) reply */
	const char *source_ip;          /* may be NULL */
	const char *site;               /* remote host, may be NULL */
	const struct event_tls *tls;    /* the attempt's TLS for the event log; may be NULL */
	/* The destination's retry policy (from shaping); n_retry 0 and
	 * max_age_ms 0 mean delivery.retry_schedule and delivery.max_age. */
	const uint64_t *retry_ms;
	size_t n_retry;
	uint64_t max_age_ms;
};

/* Record reply for recipient i (0-based within the delivery). */
void delivery_rcpt_result(struct queue *q, struct delivery *d, uint32_t i,
			  const struct rcpt_outcome *o);
/* Every recipient of the delivery gets the same outcome (connection-level
 * failures, DATA replies). Recipients already given a result are skipped. */
void delivery_all_result(struct queue *q, struct delivery *d, const struct rcpt_outcome *o);
/* The session is done with d: deferred recipients go to the retry timer,
 * the rest is persisted; d is freed or re-queued. */
void queue_delivery_done(struct queue *q, struct delivery *d, uint64_t session_ms);

/* Put a delivery back to the front of its ready list untouched (e.g. the
 * session died before sending anything). */
void queue_delivery_requeue(struct queue *q, struct delivery *d);

/* Defer every ready delivery of dq with reply (DNS or connection failure)
 * or bounce them when the reply is permanent. */
void domain_queue_fail_ready(struct queue *q, struct domain_queue *dq,
			     const struct rcpt_outcome *o);

struct queue_stats {
	uint64_t messages, ready, active, deferred;
	uint64_t held; /* ready, but may not deliver (tenant on_hold, cfgset held ...) */
	uint64_t paused; /* deliveries parked by a queue pause */
	uint64_t stuck;  /* destination queues currently flagged stuck */
};
void queue_stats(const struct queue *q, struct queue_stats *st);

/* --- visibility and control (admin API, through the loop's mailbox) ------
 *
 * A selector picks deliveries: every non-NULL / non-negative field must
 * match (tenant exactly, domain case-insensitively, stream). An empty
 * selector matches everything.
 *
 * Pauses are kept as selectors: a delivery matching any pause is parked
 * instead of being made ready (deliveries already with egress finish
 * their attempt); resuming removes the pauses equal to the selector and
 * makes ready what no other pause holds. Pauses live in memory only: a
 * restart resumes everything.
 *
 * Purge removes matching recipients that are not in an attempt right now
 * (ready, held, deferred or parked): one "purged" event each, recorded as
 * final (expired) in the spool, and the message deleted from the spool
 * once no recipient is left pending. Retry-now makes matching deferred
 * deliveries ready at once. Each returns how many recipients it touched.
 */
struct queue_selector {
	const char *tenant;
	const char *domain;
	int stream; /* enum sl_stream or -1 */
};

enum queue_group {
	QUEUE_BY_TENANT,
	QUEUE_BY_STREAM,
	QUEUE_BY_DOMAIN,
	QUEUE_BY_SOURCE_IP, /* of each delivery's last attempt; "" before any */
	QUEUE_BY_POOL,
};
/* "tenant", "stream", "domain", "source_ip", "pool" -> enum; -EINVAL. */
int queue_group_parse(const char *s, enum queue_group *out);

/* Append a JSON array of groups of the deliveries matching sel, sorted by
 * key: [{"key": K, "deliveries": N, "recipients": N, "ready": N,
 * "active": N, "deferred": N, "paused": N, "oldest_age_s": N,
 * "last_response": "..."|null}]. */
int queue_list_json(struct queue *q, enum queue_group by, const struct queue_selector *sel,
		    struct sl_buf *out);
/* Append message id as a JSON object (envelope, recipients with state,
 * attempts, next attempt, last reply); SL_ENOTFOUND when there is none or
 * tenant is non-NULL and the message belongs to another tenant. */
int queue_message_json(struct queue *q, uint64_t id, const char *tenant, struct sl_buf *out);

int queue_pause(struct queue *q, const struct queue_selector *sel);
int queue_resume(struct queue *q, const struct queue_selector *sel);
int queue_retry_now(struct queue *q, const struct queue_selector *sel);
int queue_purge(struct queue *q, const struct queue_selector *sel);
/* Check every destination queue for the stuck alarm now (also runs every
 * 30 s by itself): one "queue_stuck" event per newly stuck queue; returns
 * how many are stuck. */
int queue_check_stuck(struct queue *q);

#endif
