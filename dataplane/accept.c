/* accept.c — the acceptance path shared by SMTP and HTTP; see accept.h. */
#include "accept.h"

#include "dkim.h"
#include "err.h"
#include "loop.h"
#include "message.h"
#include "metrics.h"
#include "queue.h"
#include "quota.h"
#include "reputation.h"
#include "tenant_view.h"
#include "unsubscribe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct accept {
	struct accept_env env;
	bool destroying; /* late signatures must not reach the (closed) spool */
	struct dkim_signer *signer; /* used only on the offload thread */
	struct offload *offload;
	struct loop_op op_offload;
	uint64_t offload_ev;
	uint64_t *c_signed, *c_sign_fail, *c_quota;
	struct quota *quota;
	uint8_t unsub_key[32]; /* sender_auth.unsubscribe_secret's key, when unsubscribe_url is set */
	/* Keys of the control store's verified sending domains (sender_auth),
	 * replaced by accept_set_domain_keys(); a message being signed holds a
	 * reference, so a replaced signer lives until its last signature. */
	struct domain_signer *dsigner;
};

bool accept_quota_over(struct accept *acc, const char *tenant, char *why, size_t whylen)
{
	const struct tenant_view_entry *e =
		acc->env.tenants ? tenant_view_find(*acc->env.tenants, tenant) : NULL;

	return e && quota_over(acc->quota, tenant, e->quota_hour, e->quota_day, loop_wall_ms(), why,
			       whylen);
}

struct domain_signer {
	struct dkim_signer *s;
	unsigned refs; /* loop thread only */
};

static void dsigner_unref(struct domain_signer *d)
{
	if (d && --d->refs == 0) {
		dkim_signer_destroy(d->s);
		free(d);
	}
}

int accept_set_domain_keys(struct accept *acc, struct dkim_signer *s)
{
	struct domain_signer *d = NULL;

	if (s && !(d = calloc(1, sizeof *d))) {
		dkim_signer_destroy(s);
		return -ENOMEM;
	}
	if (d) {
		d->s = s;
		d->refs = 1;
	}
	dsigner_unref(acc->dsigner);
	acc->dsigner = d;
	return 0;
}

const char *accept_stream_name(int stream)
{
	return stream == SL_STREAM_MARKETING ? "marketing" : "transactional";
}

static void accept_finish(struct accept_msg *am, int result)
{
	free(am->spool_rcpts);
	am->spool_rcpts = NULL;
	sl_buf_free(&am->out);
	sl_buf_free(&am->sig);
	am->done(am, result);
}

static void count_accepted(struct accept *acc, const struct spool_msg *m)
{
	struct sl_buf lb = { 0 };
	uint64_t *c;

	sl_buf_appendf(&lb, "tenant=\"");
	metrics_label_escape(&lb, m->tenant);
	sl_buf_appendf(&lb, "\",stream=\"%s\"", accept_stream_name(m->stream));
	if (lb.data && sl_buf_append(&lb, "", 1) == 0) {
		c = metrics_counter(acc->env.metrics, "sluice_messages_accepted_total",
				    "Messages accepted into the spool", lb.data);
		if (c)
			(*c)++;
	}
	sl_buf_free(&lb);
}

static void on_put_done(struct spool_waiter *w, struct spool_op *op)
{
	struct accept_msg *am = (struct accept_msg *)((char *)w - offsetof(struct accept_msg, waiter));

	/* Commit point passed when op->result is 0: the message is durable, and
	 * only now may the client hear that it was accepted. */
	if (op->result == 0) {
		reputation_accepted(am->acc->env.rep, &am->msg);
		queue_add(am->acc->env.queue, &am->msg);
		count_accepted(am->acc, &am->msg);
	}
	accept_finish(am, op->result);
}

/* PUT am->out, followed by body (body_len bytes, or NULL / 0: out is the
 * whole message). */
static int accept_put(struct accept_msg *am, const char *body, size_t body_len)
{
	am->msg.body_len = am->out.len + body_len;
	am->op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &am->msg, .head = am->out.data,
				    .head_len = am->out.len, .body = body, .body_len = body_len,
				    .ctx = &am->waiter };
	return spool_submit(am->acc->env.spool, &am->op);
}

static void sign_run(struct offload_job *j)
{
	struct accept_msg *am = (struct accept_msg *)((char *)j - offsetof(struct accept_msg, sign_job));

	sl_buf_reset(&am->sig);
	am->sign_rc = dkim_signer_sign(am->dsigner ? am->dsigner->s : am->acc->signer,
				       am->from_domain, am->out.data, am->out.len, &am->sig);
}

static void sign_done(struct offload_job *j)
{
	struct accept_msg *am = (struct accept_msg *)((char *)j - offsetof(struct accept_msg, sign_job));
	struct accept *acc = am->acc;
	int rc = acc->destroying ? -ECANCELED : am->sign_rc;

	dsigner_unref(am->dsigner);
	am->dsigner = NULL;

	if (rc >= 0) {
		(*acc->c_signed)++;
		/* The signature goes in front of everything, Received included. */
		rc = sl_buf_append(&am->sig, am->out.data, am->out.len);
		if (rc == 0) {
			struct sl_buf t = am->out;

			am->out = am->sig;
			am->sig = t;
			rc = accept_put(am, NULL, 0);
		}
	} else if (rc != -ECANCELED) {
		(*acc->c_sign_fail)++;
		rc = ACCEPT_ESIGN;
	}
	if (rc >= 0)
		return; /* on_put_done takes it from here */
	accept_finish(am, rc);
}

/* Start signing when the From domain has keys; false when there is
 * nothing to sign. */
static bool accept_sign(struct accept_msg *am)
{
	struct accept *acc = am->acc;
	char from[512];

	am->dsigner = NULL;
	if (!acc->signer ||
	    !message_header_get(am->out.data, am->out.len, "From", from, sizeof from) ||
	    !message_from_domain(from, am->from_domain, sizeof am->from_domain))
		return false;
	/* the configuration's keys first, then a verified domain's */
	if (dkim_signer_nkeys(acc->signer, am->from_domain) <= 0) {
		if (!acc->dsigner || dkim_signer_nkeys(acc->dsigner->s, am->from_domain) <= 0)
			return false;
		am->dsigner = acc->dsigner;
		am->dsigner->refs++;
	}
	am->sign_job = (struct offload_job){ .run = sign_run, .done = sign_done };
	offload_submit(acc->offload, &am->sign_job);
	return true;
}

/* Sign (the PUT follows) or put am. */
static int accept_continue(struct accept_msg *am)
{
	if (accept_sign(am)) /* the PUT follows the signature */
		return 0;
	return am->body_in_out ? accept_put(am, NULL, 0) : accept_put(am, am->body, am->body_len);
}

/* The DNS blocklists answered (or timed out) for am. */
static void links_done(struct link_guard_req *rq, int verdict)
{
	struct accept_msg *am = (struct accept_msg *)((char *)rq - offsetof(struct accept_msg, links));
	int rc = verdict;

	if (verdict == LINK_GUARD_PASS && (rc = accept_continue(am)) == 0)
		return;
	if (verdict == LINK_GUARD_REJECT) {
		snprintf(am->refusal, sizeof am->refusal, "%s", rq->refusal);
		rc = ACCEPT_ELINK;
	}
	accept_finish(am, rc);
}

int accept_submit(struct accept *acc, struct accept_msg *am)
{
	const struct sl_config *cfg = acc->env.cfg;
	const struct sl_tenant_cfg *t = am->tenant;
	uint64_t now = loop_wall_ms();
	char date[40], stream[32];
	bool copy;
	int st, rc;

	if (!am->n_rcpts)
		return -EINVAL;
	if (accept_quota_over(acc, t->name, am->refusal, sizeof am->refusal)) {
		(*acc->c_quota)++;
		return ACCEPT_EQUOTA;
	}
	quota_count(acc->quota, t->name, now);
	am->acc = acc;
	am->waiter.done = on_put_done;
	am->out = (struct sl_buf){ 0 };
	am->sig = (struct sl_buf){ 0 };
	st = am->stream;
	if (st < 0) {
		st = t->stream;
		if (message_header_get(am->body, am->body_len, "X-Sluice-Stream", stream,
				       sizeof stream)) {
			if (!strcasecmp(stream, "marketing"))
				st = SL_STREAM_MARKETING;
			else if (!strcasecmp(stream, "transactional"))
				st = SL_STREAM_TRANSACTIONAL;
		}
	}
	am->id = spool_next_id(acc->env.spool);
	message_date(now, date);
	rc = sl_buf_appendf(&am->out,
			    "Received: from %s\r\n\tby %s (sluice) with %s id %016" PRIx64
			    "\r\n\t(tenant %s, stream %s)%s%s%s;\r\n\t%s\r\n",
			    am->received_from, cfg->hostname, am->received_with, am->id, t->name,
			    accept_stream_name(st), am->received_comment ? "\r\n\t(" : "",
			    am->received_comment ? am->received_comment : "",
			    am->received_comment ? ")" : "", date);
	if (!rc && !message_header_get(am->body, am->body_len, "Message-ID", am->message_id,
				       sizeof am->message_id)) {
		snprintf(am->message_id, sizeof am->message_id, "<%016" PRIx64 "@%s>", am->id,
			 cfg->hostname);
		rc = sl_buf_appendf(&am->out, "Message-ID: %s\r\n", am->message_id);
	}
	/* One-click unsubscribe (RFC 8058) on marketing mail to one recipient
	 * (the link names it) that has no List-Unsubscribe of its own; added
	 * before signing, so DKIM covers it. */
	if (!rc && st == SL_STREAM_MARKETING && am->n_rcpts == 1 &&
	    cfg->sender_auth.unsubscribe_url &&
	    !message_header_get(am->body, am->body_len, "List-Unsubscribe", stream, sizeof stream))
		rc = unsubscribe_headers(acc->unsub_key, cfg->sender_auth.unsubscribe_url, t->name,
					 am->rcpts[0], &am->out);
	/* Without a signature or a header to drop, the spool stores out (the
	 * new header fields) and then the caller's body: no copy of it here. */
	copy = acc->signer || message_header_get(am->body, am->body_len, "X-Sluice-Stream",
						 stream, sizeof stream);
	am->body_in_out = copy;
	if (!rc && copy)
		rc = message_append_without(&am->out, am->body, am->body_len, "X-Sluice-Stream");
	if (!rc && !(am->spool_rcpts = calloc(am->n_rcpts, sizeof *am->spool_rcpts)))
		rc = -ENOMEM;
	if (rc)
		goto fail;
	for (size_t i = 0; i < am->n_rcpts; i++)
		am->spool_rcpts[i].addr = (char *)am->rcpts[i];
	am->msg = (struct spool_msg){
		.id = am->id,
		.tenant = t->name,
		.stream = (uint8_t)st,
		.pool = t->stream_pool[st] ? t->stream_pool[st] : cfg->pools[0].name,
		.mail_from = (char *)am->mail_from,
		.message_id = am->message_id,
		.received_ms = now,
		.body_len = am->out.len + (copy ? 0 : am->body_len),
		.flags = am->flags,
		.rcpts = am->spool_rcpts,
		.n_rcpts = (uint32_t)am->n_rcpts,
	};
	if (acc->env.links) {
		am->links = (struct link_guard_req){ .tenant = t->name, .id = am->id,
						     .message_id = am->message_id, .stream = st,
						     .body = am->body, .body_len = am->body_len,
						     .done = links_done };
		rc = link_guard_check(acc->env.links, &am->links);
		if (rc == LINK_GUARD_PENDING)
			return 0; /* links_done goes on */
		if (rc == LINK_GUARD_REJECT) {
			snprintf(am->refusal, sizeof am->refusal, "%s", am->links.refusal);
			rc = ACCEPT_ELINK;
		}
		if (rc)
			goto fail;
	}
	rc = accept_continue(am);
	if (rc == 0)
		return 0;
fail:
	free(am->spool_rcpts);
	am->spool_rcpts = NULL;
	sl_buf_free(&am->out);
	return rc;
}

/* --- lifecycle ---------------------------------------------------------- */

static void arm_offload_read(struct accept *acc)
{
	struct io_uring_sqe *sqe = loop_sqe(acc->env.loop, &acc->op_offload);

	io_uring_prep_read(sqe, offload_fd(acc->offload), &acc->offload_ev,
			   sizeof acc->offload_ev, 0);
}

static void on_offload_event(struct loop_op *op, int res, uint32_t flags)
{
	struct accept *acc = (struct accept *)((char *)op - offsetof(struct accept, op_offload));

	(void)flags;
	offload_reap(acc->offload);
	if (res != -ECANCELED)
		arm_offload_read(acc);
}

/* Load every configured DKIM key once; signing runs on one offload thread
 * so RSA's cost never stalls the event loop. */
static int accept_dkim_setup(struct accept *acc, char *err, size_t errlen)
{
	const struct sl_config *cfg = acc->env.cfg;
	int rc;

	if (!cfg->n_dkim && !cfg->sender_auth.enabled)
		return 0;
	acc->signer = dkim_signer_create();
	if (!acc->signer)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_dkim; i++) {
		const struct sl_dkim_key_cfg *k = &cfg->dkim[i];
		enum dkim_algo algo = DKIM_ALGO_AUTO;

		if (k->algorithm && dkim_algo_parse(k->algorithm, &algo) < 0)
			return SL_ECONFIG;
		rc = dkim_signer_add_key(acc->signer, k->domain, k->selector, algo, k->key);
		if (rc < 0) {
			snprintf(err, errlen, "dkim key for %s (selector %s) from %s: %s", k->domain,
				 k->selector, k->key, sl_strerror(rc));
			return rc;
		}
	}
	rc = offload_create(1, &acc->offload);
	if (rc < 0)
		return rc;
	acc->op_offload.cb = on_offload_event;
	arm_offload_read(acc);
	return 0;
}

int accept_create(const struct accept_env *env, struct accept **out, char *err, size_t errlen)
{
	struct accept *acc = calloc(1, sizeof *acc);
	int rc = -ENOMEM;

	if (!acc)
		return -ENOMEM;
	acc->env = *env;
	if (env->cfg->sender_auth.unsubscribe_url)
		unsubscribe_key(env->cfg->sender_auth.unsubscribe_secret, acc->unsub_key);
	acc->c_signed = metrics_counter(env->metrics, "sluice_dkim_signed_total",
					"Messages DKIM-signed at acceptance", "");
	acc->c_sign_fail = metrics_counter(env->metrics, "sluice_dkim_failures_total",
					   "Messages whose DKIM signing failed (answered 451)", "");
	acc->c_quota = metrics_counter(env->metrics, "sluice_quota_refusals_total",
				       "Messages refused because the tenant's quota was used up", "");
	if (!acc->c_signed || !acc->c_sign_fail || !acc->c_quota || quota_create(&acc->quota) < 0)
		goto fail;
	rc = accept_dkim_setup(acc, err, errlen);
	if (rc < 0)
		goto fail;
	*out = acc;
	return 0;
fail:
	accept_destroy(acc);
	return rc;
}

void accept_destroy(struct accept *acc)
{
	if (!acc)
		return;
	acc->destroying = true;
	if (acc->offload)
		offload_destroy(acc->offload); /* runs sign_done: -ECANCELED */
	if (acc->signer)
		dkim_signer_destroy(acc->signer);
	quota_destroy(acc->quota);
	dsigner_unref(acc->dsigner); /* signatures under way were cancelled above */
	free(acc);
}
