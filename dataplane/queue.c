/* queue.c — in-memory scheduler over the spool; see queue.h. */
#include "queue.h"

#include "dsn.h"
#include "err.h"
#include "events.h"
#include "json.h"
#include "metrics.h"
#include "spool_waiter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_NONE = 0, R_DELIVERED, R_BOUNCED, R_DEFERRED, R_EXPIRED };
/* Where a delivery is (struct delivery.where). */
enum { W_NEW = 0, W_READY, W_ACTIVE, W_DEFERRED, W_PARKED, W_HELD };

#define STUCK_CHECK_MS 30000

struct qmsg {
	struct spool_msg m; /* deep copy; the recipients' states are the truth */
	struct qmsg *prev, *next; /* every message in memory */
	char id_hex[17];
	struct queue *q;
	uint32_t n_deliveries; /* alive deliveries; 0 => every recipient final */
	bool dirty;            /* recipient states changed since the last write */
	bool op_inflight;
	bool deleted;
	struct spool_waiter waiter;
	struct spool_op op;
	struct spool_msg snap; /* what the in-flight op writes */
	struct spool_rcpt *snap_rcpts;
};

struct domain_queue {
	char *pool, *domain;
	/* Ready deliveries, one FIFO per stream: transactional mail is taken
	 * first, so it never waits behind a marketing backlog, while both
	 * share the destination's connections and limits. */
	struct delivery *head[2], *tail[2];
	size_t n_ready;
	void *egress;
	struct domain_queue *hnext;
	/* Stuck-queue detection. */
	char last_defer[256];  /* the last deferral's reply */
	unsigned defer_repeat; /* identical deferrals in a row */
	uint64_t oldest_ms;    /* scratch of queue_check_stuck */
	bool stuck;
};

struct dsn_job {
	struct spool_waiter waiter;
	struct spool_op op;
	struct spool_msg m;
	struct spool_rcpt rcpt;
	struct sl_buf body;
	struct queue *q;
};

struct queue {
	struct queue_env env;
	struct qmsg *msgs;
	struct delivery *deliveries;
	struct domain_queue **buckets;
	size_t n_buckets, n_dq;
	struct delivery *held; /* ready work of tenants that may not deliver */
	struct queue_stats st;
	uint64_t *c_outcome[5];
	/* Pauses (selectors owning their strings) and the deliveries they park. */
	struct queue_selector *pauses;
	size_t n_pauses;
	struct delivery *parked;
	struct loop_timer stuck_timer;
	uint64_t *c_stuck, *c_purged;
	int64_t *g_stuck;
};

static bool delivery_paused(const struct queue *q, const struct delivery *d);

/* --- small helpers ------------------------------------------------------ */

static uint64_t hash_str(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ull;

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ull;
	h = (h ^ '/') * 1099511628211ull;
	for (; *b; b++)
		h = (h ^ (unsigned char)tolower((unsigned char)*b)) * 1099511628211ull;
	return h;
}

static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

static void format_reply(const struct smtp_reply *r, char *out, size_t len)
{
	if (r->enhanced[0])
		snprintf(out, len, "%d %s %s", r->code, r->enhanced, r->text);
	else
		snprintf(out, len, "%d %s", r->code, r->text);
}

/* Bytes of s with its NUL; NULL counts as "". */
static size_t str_bytes(const char *s)
{
	return (s ? strlen(s) : 0) + 1;
}

/* Copy s (NULL: "") to *p and advance *p past it; returns the copy. */
static char *str_place(char **p, const char *s)
{
	size_t n = str_bytes(s);
	char *d = *p;

	memcpy(d, s ? s : "", n);
	*p += n;
	return d;
}

/* --- domain queues ------------------------------------------------------ */

static struct domain_queue *dq_get(struct queue *q, const char *pool, const char *domain)
{
	uint64_t h = hash_str(pool, domain);
	struct domain_queue **b = &q->buckets[h & (q->n_buckets - 1)], *dq;

	for (dq = *b; dq; dq = dq->hnext)
		if (!strcmp(dq->pool, pool) && !strcasecmp(dq->domain, domain))
			return dq;
	dq = calloc(1, sizeof *dq);
	if (!dq)
		return NULL;
	dq->pool = strdup(pool);
	dq->domain = strdup(domain);
	if (!dq->pool || !dq->domain) {
		free(dq->pool);
		free(dq->domain);
		free(dq);
		return NULL;
	}
	for (char *p = dq->domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	dq->hnext = *b;
	*b = dq;
	q->n_dq++;
	return dq;
}

static bool tenant_held(const struct queue *q, const struct delivery *d)
{
	return q->env.hooks.may_deliver &&
	       !q->env.hooks.may_deliver(q->env.hooks.tenant_ctx, &d->msg->m);
}

static void dq_push(struct queue *q, struct domain_queue *dq, struct delivery *d, bool front)
{
	int st = d->msg->m.stream == SL_STREAM_MARKETING;

	d->next = NULL;
	d->where = W_HELD;
	if (tenant_held(q, d)) {
		d->next = q->held;
		q->held = d;
		q->st.held++;
		return;
	}
	if (q->n_pauses && delivery_paused(q, d)) {
		d->where = W_PARKED;
		d->next = q->parked;
		q->parked = d;
		q->st.paused++;
		return;
	}
	d->where = W_READY;
	if (front) {
		d->next = dq->head[st];
		dq->head[st] = d;
		if (!dq->tail[st])
			dq->tail[st] = d;
	} else {
		if (dq->tail[st])
			dq->tail[st]->next = d;
		else
			dq->head[st] = d;
		dq->tail[st] = d;
	}
	dq->n_ready++;
	q->st.ready++;
	if (q->env.hooks.kick)
		q->env.hooks.kick(q->env.hooks.ctx, dq);
}

struct delivery *domain_queue_take(struct domain_queue *dq)
{
	int st = dq->head[0] ? 0 : 1;
	struct delivery *d = dq->head[st];

	if (!d)
		return NULL;
	dq->head[st] = d->next;
	if (!dq->head[st])
		dq->tail[st] = NULL;
	dq->n_ready--;
	d->q->st.ready--;
	d->q->st.active++;
	d->where = W_ACTIVE;
	memset(d->result, 0, d->n_rcpts);
	return d;
}

const char *domain_queue_domain(const struct domain_queue *dq)
{
	return dq->domain;
}

const char *domain_queue_pool(const struct domain_queue *dq)
{
	return dq->pool;
}

size_t domain_queue_ready(const struct domain_queue *dq)
{
	return dq->n_ready;
}

void **domain_queue_egress_slot(struct domain_queue *dq)
{
	return &dq->egress;
}

void queue_tenants_changed(struct queue *q)
{
	struct delivery *rel = NULL, *d, *next;

	/* Park the ready work of tenants that may no longer deliver... */
	for (size_t i = 0; i < q->n_buckets; i++)
		for (struct domain_queue *dq = q->buckets[i]; dq; dq = dq->hnext)
			for (int st = 0; st < 2; st++) {
				struct delivery **pp = &dq->head[st], *prev = NULL;

				while ((d = *pp)) {
					if (!tenant_held(q, d)) {
						prev = d;
						pp = &d->next;
						continue;
					}
					*pp = d->next;
					if (dq->tail[st] == d)
						dq->tail[st] = prev;
					dq->n_ready--;
					q->st.ready--;
					d->where = W_HELD;
					d->next = q->held;
					q->held = d;
					q->st.held++;
				}
			}
	/* ...and release, oldest first, the work of those that may again. */
	for (d = q->held; d; d = next) {
		next = d->next;
		d->next = rel;
		rel = d;
	}
	q->held = NULL;
	q->st.held = 0;
	for (d = rel; d; d = next) {
		next = d->next;
		dq_push(q, d->dq, d, false);
	}
}

void queue_foreach_ready(struct queue *q, void (*fn)(void *ctx, struct domain_queue *dq),
			 void *ctx)
{
	for (size_t i = 0; i < q->n_buckets; i++)
		for (struct domain_queue *dq = q->buckets[i]; dq; dq = dq->hnext)
			if (dq->n_ready)
				fn(ctx, dq);
}

/* --- messages ----------------------------------------------------------- */

static void qmsg_free(struct qmsg *qm)
{
	struct queue *q = qm->q;

	if (qm->prev)
		qm->prev->next = qm->next;
	else if (q && q->msgs == qm)
		q->msgs = qm->next;
	if (qm->next)
		qm->next->prev = qm->prev;
	free(qm); /* its recipients and strings live in the same block */
}

static void qmsg_op_done(struct spool_waiter *w, struct spool_op *op);

/* Persist the recipients' states: one op in flight per message; changes
 * made meanwhile are written by the next op. */
static void qmsg_sync(struct qmsg *qm)
{
	struct queue *q = qm->q;

	if (qm->op_inflight || qm->deleted)
		return;
	if (qm->n_deliveries == 0) {
		qm->op = (struct spool_op){ .kind = SPOOL_OP_DELETE, .msg = &qm->snap,
					    .ctx = &qm->waiter };
		qm->snap = qm->m;
		qm->deleted = true;
	} else if (qm->dirty) {
		memcpy(qm->snap_rcpts, qm->m.rcpts, qm->m.n_rcpts * sizeof *qm->snap_rcpts);
		qm->snap = qm->m;
		qm->snap.rcpts = qm->snap_rcpts;
		qm->op = (struct spool_op){ .kind = SPOOL_OP_UPDATE, .msg = &qm->snap,
					    .ctx = &qm->waiter };
	} else {
		return;
	}
	qm->dirty = false;
	qm->op_inflight = true;
	if (spool_submit(q->env.spool, &qm->op) < 0) {
		/* The spool is failing; keep the message in memory. The
		 * recipients are retried after a restart at worst. */
		qm->op_inflight = false;
		if (qm->deleted && qm->n_deliveries == 0) {
			q->st.messages--;
			qmsg_free(qm);
		}
	}
}

static void qmsg_op_done(struct spool_waiter *w, struct spool_op *op)
{
	struct qmsg *qm = (struct qmsg *)((char *)w - offsetof(struct qmsg, waiter));

	(void)op;
	qm->op_inflight = false;
	if (qm->deleted) {
		qm->q->st.messages--;
		qmsg_free(qm);
		return;
	}
	qmsg_sync(qm);
}

static struct delivery *delivery_new(struct queue *q, struct qmsg *qm,
				     struct domain_queue *dq, uint32_t cap)
{
	/* One block: the delivery, then rcpt_idx[cap], then result[cap]. */
	struct delivery *d = calloc(1, sizeof *d + cap * (sizeof *d->rcpt_idx + 1));

	if (!d)
		return NULL;
	d->rcpt_idx = (uint32_t *)(d + 1);
	d->result = (uint8_t *)(d->rcpt_idx + cap);
	d->msg = qm;
	d->dq = dq;
	d->q = q;
	d->all_next = q->deliveries;
	if (d->all_next)
		d->all_next->all_prev = d;
	q->deliveries = d;
	qm->n_deliveries++;
	return d;
}

static void delivery_forget_failures(struct delivery *d)
{
	if (!d->failure)
		return;
	for (uint32_t i = 0; i < d->n_rcpts; i++)
		free(d->failure[i]);
	free(d->failure);
	d->failure = NULL;
}

static void delivery_free(struct delivery *d)
{
	delivery_forget_failures(d);
	if (d->all_prev)
		d->all_prev->all_next = d->all_next;
	else
		d->q->deliveries = d->all_next;
	if (d->all_next)
		d->all_next->all_prev = d->all_prev;
	d->msg->n_deliveries--;
	free(d); /* rcpt_idx and result included */
}

static void on_retry_timer(struct loop_timer *t)
{
	struct delivery *d = (struct delivery *)((char *)t - offsetof(struct delivery, timer));

	d->q->st.deferred--;
	dq_push(d->q, d->dq, d, false);
}

static void delivery_defer(struct queue *q, struct delivery *d, uint64_t delay_ms)
{
	q->st.deferred++;
	d->where = W_DEFERRED;
	d->timer.cb = on_retry_timer;
	loop_timer_arm(q->env.loop, &d->timer, delay_ms);
}

/* Recipients per message that qmsg_schedule handles without allocating. */
#define SCHEDULE_SMALL 16

/* Group the pending recipients of qm per domain into deliveries. */
static int qmsg_schedule(struct queue *q, struct qmsg *qm)
{
	uint64_t now_wall = loop_wall_ms();
	/* Most messages have a few recipients: no allocation for them. */
	struct delivery *ds_small[SCHEDULE_SMALL], **ds = ds_small;
	uint64_t due_small[SCHEDULE_SMALL] = { 0 }, *due = due_small;
	uint32_t n = 0;

	if (qm->m.n_rcpts > SCHEDULE_SMALL) {
		ds = calloc(qm->m.n_rcpts, sizeof *ds);
		due = calloc(qm->m.n_rcpts, sizeof *due);
		if (!ds || !due) {
			free(ds);
			free(due);
			return -ENOMEM;
		}
	}
	for (uint32_t i = 0; i < qm->m.n_rcpts; i++) {
		const struct spool_rcpt *r = &qm->m.rcpts[i];
		const char *dom = rcpt_domain(r->addr);
		uint32_t j;

		if (r->state != SPOOL_RCPT_PENDING)
			continue;
		for (j = 0; j < n; j++)
			if (!strcasecmp(dom, ds[j]->dq->domain))
				break;
		if (j == n) {
			struct domain_queue *dq = dq_get(q, qm->m.pool, dom);

			ds[n] = dq ? delivery_new(q, qm, dq, qm->m.n_rcpts) : NULL;
			if (!ds[n])
				break; /* out of memory: the rest waits for a restart */
			n++;
		}
		ds[j]->rcpt_idx[ds[j]->n_rcpts++] = i;
		if (r->next_attempt_ms > due[j])
			due[j] = r->next_attempt_ms;
	}
	for (uint32_t j = 0; j < n; j++) {
		if (due[j] > now_wall)
			delivery_defer(q, ds[j], due[j] - now_wall);
		else
			dq_push(q, ds[j]->dq, ds[j], false);
	}
	if (ds != ds_small) {
		free(ds);
		free(due);
	}
	return 0;
}

/*
 * A deep copy of m in one block: the qmsg, then the recipients and their
 * snapshot (n_rcpts each, at least one), then every string. One allocation
 * instead of one per string and array: queue_add is on every message's path.
 */
static int qmsg_from_spool(struct queue *q, const struct spool_msg *m, struct qmsg **out)
{
	uint32_t nr = m->n_rcpts ? m->n_rcpts : 1;
	size_t size = sizeof(struct qmsg) + 2 * nr * sizeof(struct spool_rcpt);
	struct qmsg *qm;
	char *p;

	size += str_bytes(m->tenant) + str_bytes(m->pool) + str_bytes(m->mail_from) +
		str_bytes(m->message_id);
	for (uint32_t i = 0; i < m->n_rcpts; i++)
		size += str_bytes(m->rcpts[i].addr);
	if (!(qm = calloc(1, size)))
		return -ENOMEM;
	qm->q = q;
	qm->waiter.done = qmsg_op_done;
	qm->m = *m;
	qm->m.rcpts = (struct spool_rcpt *)(qm + 1);
	qm->snap_rcpts = qm->m.rcpts + nr;
	p = (char *)(qm->snap_rcpts + nr);
	qm->m.tenant = str_place(&p, m->tenant);
	qm->m.pool = str_place(&p, m->pool);
	qm->m.mail_from = str_place(&p, m->mail_from);
	qm->m.message_id = str_place(&p, m->message_id);
	for (uint32_t i = 0; i < m->n_rcpts; i++) {
		qm->m.rcpts[i] = m->rcpts[i];
		qm->m.rcpts[i].addr = str_place(&p, m->rcpts[i].addr);
	}
	snprintf(qm->id_hex, sizeof qm->id_hex, "%016" PRIx64, m->id);
	qm->next = q->msgs;
	if (qm->next)
		qm->next->prev = qm;
	q->msgs = qm;
	*out = qm;
	return 0;
}

int queue_add(struct queue *q, const struct spool_msg *m)
{
	struct qmsg *qm;
	int rc = qmsg_from_spool(q, m, &qm);

	if (rc)
		return rc;
	q->st.messages++;
	rc = qmsg_schedule(q, qm);
	if (qm->n_deliveries == 0) /* nothing pending: finish it */
		qmsg_sync(qm);
	return rc;
}

static int recover_one(void *ctx, const struct spool_msg *m)
{
	int rc = queue_add(ctx, m);

	return rc < 0 ? rc : 0;
}

int queue_recover(struct queue *q)
{
	uint64_t before = q->st.messages;
	int rc = spool_scan(q->env.spool, recover_one, q);

	if (rc < 0)
		return rc;
	return (int)(q->st.messages - before);
}

/* --- outcomes ----------------------------------------------------------- */

const struct spool_msg *delivery_msg(const struct delivery *d)
{
	return &d->msg->m;
}

int delivery_read_body(struct queue *q, const struct delivery *d, struct sl_buf *out)
{
	return spool_read_body(q->env.spool, d->msg->m.id, out);
}

/* Wait before the next attempt: the outcome's schedule (the destination's
 * shaping) or delivery.retry_schedule; its last interval repeats. */
static uint64_t retry_delay(const struct queue *q, const struct rcpt_outcome *o,
			    uint32_t attempts)
{
	const struct sl_delivery_cfg *dc = &q->env.cfg->delivery;
	const uint64_t *sched = o->n_retry ? o->retry_ms : dc->retry_ms;
	size_t n = o->n_retry ? o->n_retry : dc->n_retry, i;

	if (!n)
		return 60000;
	i = attempts ? attempts - 1 : 0;
	if (i >= n)
		i = n - 1;
	return sched[i];
}

static void emit_event(struct queue *q, struct delivery *d, uint32_t ri, enum event_kind kind,
		       const struct rcpt_outcome *o, const char *response, uint64_t session_ms)
{
	const struct spool_msg *m = &d->msg->m;
	const struct spool_rcpt *r = &m->rcpts[ri];
	uint64_t now = loop_wall_ms();
	struct event_outcome ev = {
		.kind = kind,
		.time_ms = now,
		.id = d->msg->id_hex,
		.tenant = m->tenant,
		.stream = m->stream == SL_STREAM_MARKETING ? "marketing" : "transactional",
		.mail_from = m->mail_from,
		.rcpt = r->addr,
		.message_id = m->message_id,
		.source_ip = o ? o->source_ip : NULL,
		.site = o ? o->site : NULL,
		.domain = d->dq->domain,
		.response = response,
		.attempt = r->attempts,
		.queued_ms = now > m->received_ms ? now - m->received_ms : 0,
		.session_ms = session_ms,
		.next_attempt_ms = r->next_attempt_ms,
		.size = m->body_len,
		.tls = o ? o->tls : NULL,
	};

	if (q->env.events)
		events_write(q->env.events, &ev);
}

void delivery_rcpt_result(struct queue *q, struct delivery *d, uint32_t i,
			  const struct rcpt_outcome *o)
{
	struct spool_rcpt *r = &d->msg->m.rcpts[d->rcpt_idx[i]];
	const struct smtp_reply *rep = o->reply;
	uint64_t now_wall = loop_wall_ms();
	enum event_kind kind;
	char text[1200];
	uint8_t res;

	if (d->result[i] != R_NONE)
		return;
	format_reply(rep, text, sizeof text);
	r->attempts++;
	if (rep->code >= 200 && rep->code < 300) {
		res = R_DELIVERED;
		r->state = SPOOL_RCPT_DELIVERED;
		kind = EVENT_DELIVERED;
	} else if (rep->code >= 500) {
		res = R_BOUNCED;
		r->state = SPOOL_RCPT_BOUNCED;
		kind = EVENT_BOUNCED;
	} else if (now_wall - d->msg->m.received_ms >=
		   (o->max_age_ms ? o->max_age_ms : q->env.cfg->delivery.max_age_ms)) {
		res = R_EXPIRED;
		r->state = SPOOL_RCPT_EXPIRED;
		kind = EVENT_EXPIRED;
	} else {
		res = R_DEFERRED;
		r->next_attempt_ms = now_wall + retry_delay(q, o, r->attempts);
		kind = EVENT_DEFERRED;
	}
	d->result[i] = res;
	d->msg->dirty = true;
	d->last_ms = now_wall;
	snprintf(d->last_reply, sizeof d->last_reply, "%.255s", text);
	if (o->source_ip)
		snprintf(d->last_ip, sizeof d->last_ip, "%s", o->source_ip);
	if (res == R_DEFERRED) {
		struct domain_queue *dq = d->dq;

		if (!strcmp(dq->last_defer, d->last_reply)) {
			dq->defer_repeat++;
		} else {
			snprintf(dq->last_defer, sizeof dq->last_defer, "%s", d->last_reply);
			dq->defer_repeat = 1;
		}
	} else if (res == R_DELIVERED) {
		d->dq->defer_repeat = 0;
		d->dq->last_defer[0] = 0;
	}
	if ((res == R_BOUNCED || res == R_EXPIRED) && q->env.cfg->delivery.dsn &&
	    d->msg->m.mail_from[0]) {
		if (!d->failure)
			d->failure = calloc(d->n_rcpts, sizeof *d->failure);
		if (d->failure && !d->failure[i] &&
		    asprintf(&d->failure[i], "%s%c%s",
			     rep->enhanced[0] ? rep->enhanced : (res == R_EXPIRED ? "4.4.7" : "5.0.0"),
			     0, text) < 0)
			d->failure[i] = NULL;
	}
	(*q->c_outcome[res])++;
	emit_event(q, d, d->rcpt_idx[i], kind, o, text, 0);
}

void delivery_all_result(struct queue *q, struct delivery *d, const struct rcpt_outcome *o)
{
	for (uint32_t i = 0; i < d->n_rcpts; i++)
		delivery_rcpt_result(q, d, i, o);
}

static void dsn_job_done(struct spool_waiter *w, struct spool_op *op)
{
	struct dsn_job *j = (struct dsn_job *)((char *)w - offsetof(struct dsn_job, waiter));

	if (op->result == 0)
		queue_add(j->q, &j->m);
	sl_buf_free(&j->body);
	free(j);
}

/* Queue an RFC 3464 DSN to the sender for the failed recipients of d. */
static void delivery_send_dsn(struct queue *q, struct delivery *d)
{
	const struct spool_msg *m = &d->msg->m;
	struct sl_buf orig = { 0 };
	struct dsn_rcpt *rs;
	struct dsn_job *j;
	size_t n = 0;

	if (!d->failure)
		return;
	rs = calloc(d->n_rcpts, sizeof *rs);
	j = calloc(1, sizeof *j);
	if (!rs || !j)
		goto fail;
	for (uint32_t i = 0; i < d->n_rcpts; i++) {
		const char *f = d->failure[i];

		if (!f)
			continue;
		rs[n++] = (struct dsn_rcpt){ .addr = m->rcpts[d->rcpt_idx[i]].addr,
					     .status = f,
					     .diagnostic = f + strlen(f) + 1,
					     .action = "failed" };
	}
	j->q = q;
	j->waiter.done = dsn_job_done;
	if (spool_read_body(q->env.spool, m->id, &orig) < 0)
		sl_buf_reset(&orig);
	struct dsn_info info = {
		.reporting_mta = q->env.cfg->hostname,
		.mail_from = m->mail_from,
		.original_id = d->msg->id_hex,
		.arrival_ms = m->received_ms,
		.now_ms = loop_wall_ms(),
		.rcpts = rs,
		.n_rcpts = n,
		.original = orig.data ? orig.data : "",
		.original_len = orig.len,
		.boundary_seed = d->msg->id_hex,
	};
	if (dsn_build(&info, &j->body) < 0)
		goto fail;
	j->rcpt = (struct spool_rcpt){ .addr = (char *)m->mail_from };
	j->m = (struct spool_msg){
		.id = spool_next_id(q->env.spool),
		.tenant = m->tenant,
		.stream = SL_STREAM_TRANSACTIONAL,
		.pool = m->pool,
		.mail_from = "",
		.message_id = "",
		.received_ms = loop_wall_ms(),
		.body_len = j->body.len,
		.rcpts = &j->rcpt,
		.n_rcpts = 1,
	};
	j->op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &j->m, .body = j->body.data,
				   .body_len = j->body.len, .ctx = &j->waiter };
	/* The strings j->m borrows from the original stay alive: the original
	 * message is freed only after its own DELETE, which is submitted after
	 * this PUT and reaped after it (the spool completes ops in order). */
	if (spool_submit(q->env.spool, &j->op) < 0)
		goto fail;
	sl_buf_free(&orig);
	free(rs);
	return;
fail:
	sl_buf_free(&orig);
	if (j)
		sl_buf_free(&j->body);
	free(j);
	free(rs);
}

void queue_delivery_done(struct queue *q, struct delivery *d, uint64_t session_ms)
{
	struct qmsg *qm = d->msg;
	uint32_t kept = 0;
	bool failed = false;

	(void)session_ms;
	q->st.active--;
	for (uint32_t i = 0; i < d->n_rcpts; i++) {
		if (d->result[i] == R_NONE) {
			/* No answer for this recipient: try again later. */
			struct smtp_reply r = { .code = 451, .enhanced = "4.3.0",
						.text = "delivery attempt ended without a reply" };
			struct rcpt_outcome o = { .reply = &r };

			delivery_rcpt_result(q, d, i, &o);
		}
		if (d->result[i] == R_BOUNCED || d->result[i] == R_EXPIRED)
			failed = true;
	}
	if (failed)
		delivery_send_dsn(q, d);
	delivery_forget_failures(d);
	for (uint32_t i = 0; i < d->n_rcpts; i++)
		if (d->result[i] == R_DEFERRED)
			d->rcpt_idx[kept++] = d->rcpt_idx[i];
	d->n_rcpts = kept;
	if (kept) {
		uint64_t due = qm->m.rcpts[d->rcpt_idx[0]].next_attempt_ms;
		uint64_t now = loop_wall_ms();

		delivery_defer(q, d, due > now ? due - now : 0);
	} else {
		delivery_free(d);
	}
	qmsg_sync(qm);
}

void queue_delivery_requeue(struct queue *q, struct delivery *d)
{
	q->st.active--;
	dq_push(q, d->dq, d, true);
}

void domain_queue_fail_ready(struct queue *q, struct domain_queue *dq,
			     const struct rcpt_outcome *o)
{
	struct delivery *d;

	while ((d = domain_queue_take(dq))) {
		delivery_all_result(q, d, o);
		queue_delivery_done(q, d, 0);
	}
}

/* --- visibility and control -------------------------------------------- */

static const char *stream_str(int st)
{
	return st == SL_STREAM_MARKETING ? "marketing" : "transactional";
}

static bool sel_match(const struct queue_selector *sel, const struct delivery *d)
{
	const struct spool_msg *m = &d->msg->m;

	return (!sel->tenant || !strcmp(sel->tenant, m->tenant)) &&
	       (!sel->domain || !strcasecmp(sel->domain, d->dq->domain)) &&
	       (sel->stream < 0 || sel->stream == m->stream);
}

static bool delivery_paused(const struct queue *q, const struct delivery *d)
{
	for (size_t i = 0; i < q->n_pauses; i++)
		if (sel_match(&q->pauses[i], d))
			return true;
	return false;
}

static bool sel_equal(const struct queue_selector *a, const struct queue_selector *b)
{
	return !a->tenant == !b->tenant && (!a->tenant || !strcmp(a->tenant, b->tenant)) &&
	       !a->domain == !b->domain && (!a->domain || !strcasecmp(a->domain, b->domain)) &&
	       a->stream == b->stream;
}

static bool list_unlink(struct delivery **head, struct delivery *d)
{
	for (struct delivery **pp = head; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			d->next = NULL;
			return true;
		}
	return false;
}

/* Take d out of wherever it waits (not active); false if it is active. */
static bool delivery_detach(struct queue *q, struct delivery *d)
{
	struct domain_queue *dq = d->dq;
	int st = d->msg->m.stream == SL_STREAM_MARKETING;

	switch (d->where) {
	case W_ACTIVE:
		return false;
	case W_DEFERRED:
		loop_timer_cancel(q->env.loop, &d->timer);
		q->st.deferred--;
		return true;
	default:
		break;
	}
	if (list_unlink(&dq->head[st], d)) {
		if (dq->tail[st] == d) {
			struct delivery *t = dq->head[st];

			while (t && t->next)
				t = t->next;
			dq->tail[st] = t;
		}
		dq->n_ready--;
		q->st.ready--;
	} else if (list_unlink(&q->held, d)) {
		q->st.held--;
	} else if (list_unlink(&q->parked, d)) {
		q->st.paused--;
	}
	return true;
}

int queue_group_parse(const char *s, enum queue_group *out)
{
	static const char *const names[] = { "tenant", "stream", "domain", "source_ip", "pool" };

	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum queue_group)i;
			return 0;
		}
	return -EINVAL;
}

struct qgroup {
	const char *key;
	uint64_t deliveries, rcpts, ready, active, deferred, paused, oldest_ms, last_ms;
	const char *last_reply;
};

static int qgroup_cmp(const void *a, const void *b)
{
	return strcmp(((const struct qgroup *)a)->key, ((const struct qgroup *)b)->key);
}

int queue_list_json(struct queue *q, enum queue_group by, const struct queue_selector *sel,
		    struct sl_buf *out)
{
	struct qgroup *g = NULL;
	size_t n = 0, cap = 0, hit = 0;
	uint64_t now = loop_wall_ms();
	int rc = 0;

	for (struct delivery *d = q->deliveries; d; d = d->all_next) {
		const char *key;
		struct qgroup *x;

		if (!sel_match(sel, d))
			continue;
		switch (by) {
		case QUEUE_BY_TENANT: key = d->msg->m.tenant; break;
		case QUEUE_BY_STREAM: key = stream_str(d->msg->m.stream); break;
		case QUEUE_BY_SOURCE_IP: key = d->last_ip; break;
		case QUEUE_BY_POOL: key = d->dq->pool; break;
		default: key = d->dq->domain; break;
		}
		if (hit >= n || strcmp(g[hit].key, key)) {
			for (hit = 0; hit < n && strcmp(g[hit].key, key); hit++)
				;
		}
		if (hit == n) {
			if (n == cap) {
				struct qgroup *t = realloc(g, (cap = cap ? 2 * cap : 16) * sizeof *g);

				if (!t) {
					free(g);
					return -ENOMEM;
				}
				g = t;
			}
			g[n++] = (struct qgroup){ .key = key, .oldest_ms = UINT64_MAX };
		}
		x = &g[hit];
		x->deliveries++;
		x->rcpts += d->n_rcpts;
		x->ready += d->where == W_READY;
		x->active += d->where == W_ACTIVE;
		x->deferred += d->where == W_DEFERRED;
		x->paused += d->where == W_PARKED || d->where == W_HELD;
		if (d->msg->m.received_ms < x->oldest_ms)
			x->oldest_ms = d->msg->m.received_ms;
		if (d->last_reply[0] && d->last_ms >= x->last_ms) {
			x->last_ms = d->last_ms;
			x->last_reply = d->last_reply;
		}
	}
	if (n)
		qsort(g, n, sizeof *g, qgroup_cmp);
	rc = sl_buf_append(out, "[", 1);
	for (size_t i = 0; i < n && !rc; i++) {
		struct json_obj o;

		if (i)
			rc = sl_buf_append(out, ",", 1);
		json_obj_begin(&o, out);
		json_obj_str(&o, "key", g[i].key);
		json_obj_u64(&o, "deliveries", g[i].deliveries);
		json_obj_u64(&o, "recipients", g[i].rcpts);
		json_obj_u64(&o, "ready", g[i].ready);
		json_obj_u64(&o, "active", g[i].active);
		json_obj_u64(&o, "deferred", g[i].deferred);
		json_obj_u64(&o, "paused", g[i].paused);
		json_obj_u64(&o, "oldest_age_s",
			     now > g[i].oldest_ms ? (now - g[i].oldest_ms) / 1000 : 0);
		if (g[i].last_reply)
			json_obj_str(&o, "last_response", g[i].last_reply);
		else
			json_obj_raw(&o, "last_response", "null", 4);
		if (!rc)
			rc = json_obj_end(&o);
	}
	if (!rc)
		rc = sl_buf_append(out, "]", 1);
	free(g);
	return rc;
}

int queue_message_json(struct queue *q, uint64_t id, const char *tenant, struct sl_buf *out)
{
	static const char *const states[] = { "pending", "delivered", "bounced", "expired" };
	struct qmsg *qm;
	struct json_obj o;
	char t[28];
	int rc;

	for (qm = q->msgs; qm && qm->m.id != id; qm = qm->next)
		;
	if (!qm || qm->deleted || (tenant && strcmp(tenant, qm->m.tenant)))
		return SL_ENOTFOUND;
	json_obj_begin(&o, out);
	json_obj_str(&o, "id", qm->id_hex);
	json_obj_str(&o, "tenant", qm->m.tenant);
	json_obj_str(&o, "stream", stream_str(qm->m.stream));
	json_obj_str(&o, "pool", qm->m.pool);
	json_obj_str(&o, "mail_from", qm->m.mail_from);
	json_obj_str(&o, "message_id", qm->m.message_id);
	events_format_time(qm->m.received_ms, t);
	json_obj_str(&o, "received", t);
	json_obj_u64(&o, "size", qm->m.body_len);
	rc = json_obj_end(&o);
	if (rc)
		return rc;
	out->len--; /* reopen the object for the recipients */
	rc = sl_buf_append(out, ",\"recipients\":[", 15);
	for (uint32_t i = 0; i < qm->m.n_rcpts && !rc; i++) {
		const struct spool_rcpt *r = &qm->m.rcpts[i];
		const struct delivery *dv = NULL;
		const char *where = "final";

		for (const struct delivery *d = q->deliveries; d && !dv; d = d->all_next)
			for (uint32_t k = 0; d->msg == qm && k < d->n_rcpts; k++)
				if (d->rcpt_idx[k] == i) {
					dv = d;
					break;
				}
		if (dv)
			where = dv->where == W_READY    ? "ready" :
				dv->where == W_ACTIVE   ? "active" :
				dv->where == W_DEFERRED ? "deferred" :
				dv->where == W_PARKED   ? "paused" :
				dv->where == W_HELD     ? "held" : "new";
		if (i)
			rc = sl_buf_append(out, ",", 1);
		json_obj_begin(&o, out);
		json_obj_str(&o, "rcpt", r->addr);
		json_obj_str(&o, "state", r->state < 4 ? states[r->state] : "?");
		json_obj_str(&o, "queue", r->state == SPOOL_RCPT_PENDING ? where : "final");
		json_obj_u64(&o, "attempts", r->attempts);
		if (r->state == SPOOL_RCPT_PENDING && r->next_attempt_ms) {
			events_format_time(r->next_attempt_ms, t);
			json_obj_str(&o, "next_attempt", t);
		}
		if (dv && dv->last_reply[0])
			json_obj_str(&o, "last_response", dv->last_reply);
		if (dv && dv->last_ip[0])
			json_obj_str(&o, "source_ip", dv->last_ip);
		if (!rc)
			rc = json_obj_end(&o);
	}
	if (!rc)
		rc = sl_buf_append(out, "]}", 2);
	return rc;
}

static void release_parked(struct queue *q)
{
	struct delivery *rel = NULL, *d, *next;

	for (d = q->parked; d; d = next) { /* oldest first */
		next = d->next;
		d->next = rel;
		rel = d;
	}
	q->parked = NULL;
	q->st.paused = 0;
	for (d = rel; d; d = next) {
		next = d->next;
		dq_push(q, d->dq, d, false); /* parks again what is still paused */
	}
}

int queue_pause(struct queue *q, const struct queue_selector *sel)
{
	struct queue_selector *t, p = { .stream = sel->stream };
	int n = 0;

	for (size_t i = 0; i < q->n_pauses; i++)
		if (sel_equal(&q->pauses[i], sel))
			goto park;
	t = realloc(q->pauses, (q->n_pauses + 1) * sizeof *t);
	if (!t)
		return -ENOMEM;
	q->pauses = t;
	if ((sel->tenant && !(p.tenant = strdup(sel->tenant))) ||
	    (sel->domain && !(p.domain = strdup(sel->domain)))) {
		free((char *)p.tenant);
		return -ENOMEM;
	}
	q->pauses[q->n_pauses++] = p;
park:
	/* Ready work that is now paused moves to the parked list. */
	for (struct delivery *d = q->deliveries; d; d = d->all_next)
		if (d->where == W_READY && sel_match(sel, d)) {
			delivery_detach(q, d);
			d->where = W_PARKED;
			d->next = q->parked;
			q->parked = d;
			q->st.paused++;
			n += (int)d->n_rcpts;
		}
	return n;
}

int queue_resume(struct queue *q, const struct queue_selector *sel)
{
	uint64_t before = q->st.paused;
	size_t k = 0;

	for (size_t i = 0; i < q->n_pauses; i++) {
		if (sel_equal(&q->pauses[i], sel)) {
			free((char *)q->pauses[i].tenant);
			free((char *)q->pauses[i].domain);
			continue;
		}
		q->pauses[k++] = q->pauses[i];
	}
	q->n_pauses = k;
	release_parked(q);
	return (int)(before - q->st.paused);
}

int queue_retry_now(struct queue *q, const struct queue_selector *sel)
{
	int n = 0;

	for (struct delivery *d = q->deliveries; d; d = d->all_next) {
		if (d->where != W_DEFERRED || !sel_match(sel, d))
			continue;
		delivery_detach(q, d);
		for (uint32_t i = 0; i < d->n_rcpts; i++)
			d->msg->m.rcpts[d->rcpt_idx[i]].next_attempt_ms = 0;
		n += (int)d->n_rcpts;
		dq_push(q, d->dq, d, false);
	}
	return n;
}

int queue_purge(struct queue *q, const struct queue_selector *sel)
{
	struct delivery *d, *next;
	int n = 0;

	for (d = q->deliveries; d; d = next) {
		struct qmsg *qm = d->msg;

		next = d->all_next;
		if (!sel_match(sel, d) || !delivery_detach(q, d))
			continue;
		for (uint32_t i = 0; i < d->n_rcpts; i++) {
			qm->m.rcpts[d->rcpt_idx[i]].state = SPOOL_RCPT_EXPIRED;
			emit_event(q, d, d->rcpt_idx[i], EVENT_PURGED, NULL, "purged from the queue", 0);
			(*q->c_purged)++;
			n++;
		}
		qm->dirty = true;
		delivery_free(d);
		qmsg_sync(qm);
	}
	return n;
}

int queue_check_stuck(struct queue *q)
{
	uint64_t now = loop_wall_ms();
	int stuck = 0;

	for (size_t i = 0; i < q->n_buckets; i++)
		for (struct domain_queue *dq = q->buckets[i]; dq; dq = dq->hnext)
			dq->oldest_ms = UINT64_MAX;
	for (struct delivery *d = q->deliveries; d; d = d->all_next)
		if (d->msg->m.received_ms < d->dq->oldest_ms)
			d->dq->oldest_ms = d->msg->m.received_ms;
	for (size_t i = 0; i < q->n_buckets; i++)
		for (struct domain_queue *dq = q->buckets[i]; dq; dq = dq->hnext) {
			bool old = dq->oldest_ms != UINT64_MAX && now > dq->oldest_ms &&
				   now - dq->oldest_ms >= q->env.stuck_age_ms;
			bool is = old || dq->defer_repeat >= q->env.stuck_deferrals;

			if (is && !dq->stuck && q->env.events) {
				struct event_outcome ev = {
					.kind = EVENT_QUEUE_STUCK,
					.time_ms = now,
					.domain = dq->domain,
					.response = dq->last_defer[0] ? dq->last_defer : NULL,
					.queued_ms = dq->oldest_ms != UINT64_MAX && now > dq->oldest_ms ?
							     now - dq->oldest_ms : 0,
				};

				events_write(q->env.events, &ev);
			}
			if (is && !dq->stuck)
				(*q->c_stuck)++;
			dq->stuck = is;
			stuck += is;
		}
	q->st.stuck = (uint64_t)stuck;
	*q->g_stuck = stuck;
	return stuck;
}

static void on_stuck_timer(struct loop_timer *t)
{
	struct queue *q = (struct queue *)((char *)t - offsetof(struct queue, stuck_timer));

	queue_check_stuck(q);
	loop_timer_arm(q->env.loop, t, STUCK_CHECK_MS);
}

/* --- lifecycle ---------------------------------------------------------- */

int queue_create(const struct queue_env *env, struct queue **out)
{
	static const char *names[] = { "none", "delivered", "bounced", "deferred", "expired" };
	struct queue *q = calloc(1, sizeof *q);

	if (!q)
		return -ENOMEM;
	q->env = *env;
	q->n_buckets = 4096;
	q->buckets = calloc(q->n_buckets, sizeof *q->buckets);
	if (!q->buckets) {
		free(q);
		return -ENOMEM;
	}
	for (int i = 0; i < 5; i++) {
		char labels[64];

		snprintf(labels, sizeof labels, "outcome=\"%s\"", names[i]);
		q->c_outcome[i] = metrics_counter(env->metrics, "sluice_recipient_outcomes_total",
						  "Recipient delivery outcomes", labels);
		if (!q->c_outcome[i]) {
			free(q->buckets);
			free(q);
			return -ENOMEM;
		}
	}
	q->c_stuck = metrics_counter(env->metrics, "sluice_queue_stuck_total",
				     "Destination queues that became stuck", "");
	q->c_purged = metrics_counter(env->metrics, "sluice_queue_purged_total",
				      "Recipients removed by a queue purge", "");
	q->g_stuck = metrics_gauge(env->metrics, "sluice_queues_stuck",
				   "Destination queues currently stuck", "");
	if (!q->c_stuck || !q->c_purged || !q->g_stuck) {
		free(q->buckets);
		free(q);
		return -ENOMEM;
	}
	if (!q->env.stuck_age_ms)
		q->env.stuck_age_ms = 3600 * 1000;
	if (!q->env.stuck_deferrals)
		q->env.stuck_deferrals = 5;
	q->stuck_timer.cb = on_stuck_timer;
	if (q->env.loop)
		loop_timer_arm(q->env.loop, &q->stuck_timer, STUCK_CHECK_MS);
	*out = q;
	return 0;
}

void queue_destroy(struct queue *q)
{
	if (!q)
		return;
	if (q->env.loop)
		loop_timer_cancel(q->env.loop, &q->stuck_timer);
	for (size_t i = 0; i < q->n_pauses; i++) {
		free((char *)q->pauses[i].tenant);
		free((char *)q->pauses[i].domain);
	}
	free(q->pauses);
	while (q->deliveries) {
		struct delivery *d = q->deliveries;

		loop_timer_cancel(q->env.loop, &d->timer);
		delivery_free(d);
	}
	while (q->msgs)
		qmsg_free(q->msgs);
	for (size_t i = 0; i < q->n_buckets; i++) {
		struct domain_queue *dq = q->buckets[i], *next;

		for (; dq; dq = next) {
			next = dq->hnext;
			if (dq->egress && q->env.hooks.forget)
				q->env.hooks.forget(q->env.hooks.ctx, dq->egress);
			free(dq->pool);
			free(dq->domain);
			free(dq);
		}
	}
	free(q->buckets);
	free(q);
}

void queue_stats(const struct queue *q, struct queue_stats *st)
{
	*st = q->st;
}
