/* queue.c — in-memory scheduler over the spool; see queue.h. */
#include "queue.h"

#include "dsn.h"
#include "err.h"
#include "events.h"
#include "metrics.h"
#include "spool_waiter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_NONE = 0, R_DELIVERED, R_BOUNCED, R_DEFERRED, R_EXPIRED };

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
};

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

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
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
	       !q->env.hooks.may_deliver(q->env.hooks.tenant_ctx, d->msg->m.tenant);
}

static void dq_push(struct queue *q, struct domain_queue *dq, struct delivery *d, bool front)
{
	int st = d->msg->m.stream == SL_STREAM_MARKETING;

	d->next = NULL;
	if (tenant_held(q, d)) {
		d->next = q->held;
		q->held = d;
		q->st.held++;
		return;
	}
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
	for (uint32_t i = 0; i < qm->m.n_rcpts; i++)
		free(qm->m.rcpts[i].addr);
	free(qm->m.rcpts);
	free(qm->m.tenant);
	free(qm->m.pool);
	free(qm->m.mail_from);
	free(qm->m.message_id);
	free(qm->snap_rcpts);
	free(qm);
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
	struct delivery *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	d->rcpt_idx = calloc(cap, sizeof *d->rcpt_idx);
	d->result = calloc(cap, 1);
	if (!d->rcpt_idx || !d->result) {
		free(d->rcpt_idx);
		free(d->result);
		free(d);
		return NULL;
	}
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
	free(d->rcpt_idx);
	free(d->result);
	free(d);
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
	d->timer.cb = on_retry_timer;
	loop_timer_arm(q->env.loop, &d->timer, delay_ms);
}

/* Group the pending recipients of qm per domain into deliveries. */
static int qmsg_schedule(struct queue *q, struct qmsg *qm)
{
	uint64_t now_wall = loop_wall_ms();
	struct delivery **ds = calloc(qm->m.n_rcpts, sizeof *ds);
	uint64_t *due = calloc(qm->m.n_rcpts, sizeof *due);
	uint32_t n = 0;

	if (!ds || !due) {
		free(ds);
		free(due);
		return -ENOMEM;
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
	free(ds);
	free(due);
	return 0;
}

static int qmsg_from_spool(struct queue *q, const struct spool_msg *m, struct qmsg **out)
{
	struct qmsg *qm = calloc(1, sizeof *qm);

	if (!qm)
		return -ENOMEM;
	qm->q = q;
	qm->waiter.done = qmsg_op_done;
	qm->m = *m;
	qm->m.tenant = xstrdup(m->tenant);
	qm->m.pool = xstrdup(m->pool);
	qm->m.mail_from = xstrdup(m->mail_from);
	qm->m.message_id = xstrdup(m->message_id);
	qm->m.rcpts = calloc(m->n_rcpts ? m->n_rcpts : 1, sizeof *qm->m.rcpts);
	qm->snap_rcpts = calloc(m->n_rcpts ? m->n_rcpts : 1, sizeof *qm->snap_rcpts);
	if (!qm->m.tenant || !qm->m.pool || !qm->m.mail_from || !qm->m.message_id ||
	    !qm->m.rcpts || !qm->snap_rcpts)
		goto fail;
	for (uint32_t i = 0; i < m->n_rcpts; i++) {
		qm->m.rcpts[i] = m->rcpts[i];
		qm->m.rcpts[i].addr = xstrdup(m->rcpts[i].addr);
		if (!qm->m.rcpts[i].addr)
			goto fail;
	}
	snprintf(qm->id_hex, sizeof qm->id_hex, "%016" PRIx64, m->id);
	qm->next = q->msgs;
	if (qm->next)
		qm->next->prev = qm;
	q->msgs = qm;
	*out = qm;
	return 0;
fail:
	qm->m.n_rcpts = m->n_rcpts;
	qm->q = NULL; /* not linked yet */
	qmsg_free(qm);
	return -ENOMEM;
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
	*out = q;
	return 0;
}

void queue_destroy(struct queue *q)
{
	if (!q)
		return;
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
