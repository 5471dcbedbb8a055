/* ingress.c — tenants' ESMTP listeners and sessions; see ingress.h. */
#include "ingress.h"

#include "auth.h"
#include "dkim.h"
#include "err.h"
#include "events.h"
#include "message.h"
#include "metrics.h"
#include "offload.h"
#include "session_io.h"
#include "smtp_server.h"
#include "spool_waiter.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct listener {
	struct ingress *in;
	const struct sl_listener_cfg *cfg;
	struct uring_listener *ul;
	struct tls_ctx *tls;
};

struct in_session {
	struct ingress *in;
	struct listener *ls;
	struct session_io io;
	struct smtp_server *srv;
	struct loop_timer timer;
	struct in_session *prev, *next;
	char peer[INET6_ADDRSTRLEN];
	const struct sl_tenant_cfg *tenant; /* after AUTH */
	bool committing;                    /* a PUT is in flight */
	bool dead;                          /* conn gone; free when the PUT is reaped */
	bool closing;
	/* The message being committed. */
	struct spool_waiter waiter;
	struct spool_op op;
	struct spool_msg msg;
	struct spool_rcpt *rcpts;
	struct sl_buf body;
	char message_id[256];
	/* DKIM signing, on the offload thread, before the PUT. */
	struct offload_job sign_job;
	char from_domain[256];
	struct sl_buf sig;
	int sign_rc;
};

struct ingress {
	struct ingress_env env;
	struct listener *listeners;
	size_t n_listeners;
	struct in_session *sessions;
	unsigned n_sessions;
	bool shutting_down;
	bool destroying; /* late signatures must not reach the (closed) spool */
	struct dkim_signer *signer; /* used only on the offload thread */
	struct offload *offload;
	struct loop_op op_offload;
	uint64_t offload_ev;
	uint64_t *c_sessions, *c_rejected_clients, *c_auth_fail, *c_signed, *c_sign_fail;
	int64_t *g_sessions;
};

static const struct conn_handler in_handler;
static void session_drive(struct in_session *s);

static void session_free(struct in_session *s)
{
	struct ingress *in = s->in;

	if (s->prev)
		s->prev->next = s->next;
	else
		in->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	in->n_sessions--;
	(*in->g_sessions)--;
	session_io_release(&s->io);
	smtp_server_destroy(s->srv);
	sl_buf_free(&s->body);
	sl_buf_free(&s->sig);
	free(s->rcpts);
	free(s);
}

/* The connection is finished (closed by either side). */
static void session_end(struct in_session *s)
{
	if (s->dead)
		return;
	s->dead = true;
	loop_timer_cancel(s->in->env.loop, &s->timer);
	if (s->io.conn)
		conn_close(s->io.conn);
	s->io.conn = NULL;
	if (!s->committing) /* else the PUT completion frees it */
		session_free(s);
}

static void arm_timer(struct in_session *s)
{
	const struct sl_limits_cfg *lim = &s->in->env.cfg->limits;

	switch (smtp_server_timeout_kind(s->srv)) {
	case SMTP_SERVER_TIMEOUT_COMMAND:
		loop_timer_arm(s->in->env.loop, &s->timer, lim->command_timeout_ms);
		break;
	case SMTP_SERVER_TIMEOUT_DATA:
		loop_timer_arm(s->in->env.loop, &s->timer, lim->data_timeout_ms);
		break;
	default:
		loop_timer_cancel(s->in->env.loop, &s->timer);
	}
}

static void on_timer(struct loop_timer *t)
{
	struct in_session *s = (struct in_session *)((char *)t - offsetof(struct in_session, timer));

	smtp_server_timeout(s->srv);
	session_drive(s);
}

static const char *stream_name(enum sl_stream st)
{
	return st == SL_STREAM_MARKETING ? "marketing" : "transactional";
}

/* --- accepting a message ------------------------------------------------ */

static void on_put_done(struct spool_waiter *w, struct spool_op *op)
{
	struct in_session *s = (struct in_session *)((char *)w - offsetof(struct in_session, waiter));
	struct ingress *in = s->in;
	char text[128];

	s->committing = false;
	/* Commit point passed: the message is durable (op->result == 0). Only
	 * now may the client hear 250. */
	if (op->result == 0) {
		char labels[256];
		struct sl_buf lb = { 0 };
		uint64_t *c;

		queue_add(in->env.queue, &s->msg);
		sl_buf_appendf(&lb, "tenant=\"");
		metrics_label_escape(&lb, s->msg.tenant);
		sl_buf_appendf(&lb, "\",stream=\"%s\"", stream_name(s->msg.stream));
		snprintf(labels, sizeof labels, "%.*s", (int)lb.len, lb.data ? lb.data : "");
		sl_buf_free(&lb);
		c = metrics_counter(in->env.metrics, "sluice_messages_accepted_total",
				    "Messages accepted into the spool", labels);
		if (c)
			(*c)++;
		snprintf(text, sizeof text, "Ok: queued as %016" PRIx64, s->msg.id);
		if (!s->dead)
			smtp_server_message_result(s->srv, 250, "2.0.0", text);
	} else if (!s->dead) {
		smtp_server_message_result(s->srv, 451, "4.3.0",
					   op->result == SL_ETOOBIG || op->result == -ENOSPC ?
						   "Spool full, try again later" :
						   "Local error in processing, try again later");
	}
	sl_buf_reset(&s->body);
	if (s->dead) {
		session_free(s);
		return;
	}
	session_drive(s);
}

static const struct sl_tenant_cfg *session_tenant(struct in_session *s)
{
	const struct sl_config *cfg = s->in->env.cfg;

	if (s->tenant)
		return s->tenant;
	return config_tenant_by_name(cfg, s->ls->cfg->relay_tenant);
}

/* Hand the finished message to the spool's group commit; on_put_done
 * answers the client once it is durable. */
static int session_put(struct in_session *s)
{
	s->msg.body_len = s->body.len;
	s->op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &s->msg, .body = s->body.data,
				   .body_len = s->body.len, .ctx = &s->waiter };
	return spool_submit(s->in->env.spool, &s->op);
}

static void sign_run(struct offload_job *j)
{
	struct in_session *s = (struct in_session *)((char *)j - offsetof(struct in_session, sign_job));

	sl_buf_reset(&s->sig);
	s->sign_rc = dkim_signer_sign(s->in->signer, s->from_domain, s->body.data, s->body.len,
				      &s->sig);
}

static void sign_done(struct offload_job *j)
{
	struct in_session *s = (struct in_session *)((char *)j - offsetof(struct in_session, sign_job));
	struct ingress *in = s->in;
	int rc = in->destroying ? -ECANCELED : s->sign_rc;

	if (rc >= 0) {
		(*in->c_signed)++;
		/* The signature goes in front of everything, Received included. */
		rc = sl_buf_append(&s->sig, s->body.data, s->body.len);
		if (rc == 0) {
			struct sl_buf t = s->body;

			s->body = s->sig;
			s->sig = t;
			rc = session_put(s);
		}
	} else if (rc != -ECANCELED) {
		(*in->c_sign_fail)++;
	}
	if (rc >= 0)
		return; /* on_put_done takes it from here */
	s->committing = false;
	if (s->dead) {
		session_free(s);
		return;
	}
	if (in->destroying)
		return; /* ingress_destroy frees the session */
	smtp_server_message_result(s->srv, 451, "4.3.0", "Local error in DKIM signing, try again later");
	session_drive(s);
}

/* Start signing when the From domain has keys; false when there is
 * nothing to sign. */
static bool session_sign(struct in_session *s)
{
	char from[512];

	if (!message_header_get(s->body.data, s->body.len, "From", from, sizeof from) ||
	    !message_from_domain(from, s->from_domain, sizeof s->from_domain) ||
	    dkim_signer_nkeys(s->in->signer, s->from_domain) <= 0)
		return false;
	s->sign_job = (struct offload_job){ .run = sign_run, .done = sign_done };
	offload_submit(s->in->offload, &s->sign_job);
	return true;
}

static int session_accept_message(struct in_session *s, const struct smtp_server_message *m)
{
	struct ingress *in = s->in;
	const struct sl_config *cfg = in->env.cfg;
	const struct sl_tenant_cfg *t = session_tenant(s);
	uint64_t now = loop_wall_ms(), id;
	char date[40], stream[32];
	enum sl_stream st;
	int rc;

	if (!t)
		return SL_EAUTH;
	st = t->stream;
	if (message_header_get(m->body, m->body_len, "X-Sluice-Stream", stream, sizeof stream)) {
		if (!strcasecmp(stream, "marketing"))
			st = SL_STREAM_MARKETING;
		else if (!strcasecmp(stream, "transactional"))
			st = SL_STREAM_TRANSACTIONAL;
	}
	id = spool_next_id(in->env.spool);
	message_date(now, date);
	sl_buf_reset(&s->body);
	rc = sl_buf_appendf(&s->body,
			    "Received: from %s ([%s])\r\n\tby %s (sluice) with %s%s%s id %016" PRIx64
			    "\r\n\t(tenant %s, stream %s)%s%s%s%s;\r\n\t%s\r\n",
			    m->helo, s->peer, cfg->hostname, m->esmtp ? "ESMTP" : "SMTP",
			    m->tls ? "S" : "", s->tenant ? "A" : "", id, t->name, stream_name(st),
			    m->tls ? "\r\n\t(using " : "",
			    m->tls ? tls_conn_version(s->io.tls) : "",
			    m->tls ? " " : "",
			    m->tls ? tls_conn_cipher(s->io.tls) : "", date);
	if (!rc && !message_header_get(m->body, m->body_len, "Message-ID", s->message_id,
				       sizeof s->message_id)) {
		snprintf(s->message_id, sizeof s->message_id, "<%016" PRIx64 "@%s>", id,
			 cfg->hostname);
		rc = sl_buf_appendf(&s->body, "Message-ID: %s\r\n", s->message_id);
	}
	if (!rc)
		rc = message_append_without(&s->body, m->body, m->body_len, "X-Sluice-Stream");
	if (rc)
		return rc;
	free(s->rcpts);
	s->rcpts = calloc(m->n_rcpts, sizeof *s->rcpts);
	if (!s->rcpts)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_rcpts; i++)
		s->rcpts[i].addr = (char *)m->rcpts[i];
	s->msg = (struct spool_msg){
		.id = id,
		.tenant = t->name,
		.stream = (uint8_t)st,
		.pool = t->stream_pool[st] ? t->stream_pool[st] : cfg->pools[0].name,
		.mail_from = (char *)m->mail_from,
		.message_id = s->message_id,
		.received_ms = now,
		.body_len = s->body.len,
		.flags = (m->body_type == SMTP_SERVER_BODY_8BITMIME ? SPOOL_F_8BITMIME : 0) |
			 (m->smtputf8 ? SPOOL_F_SMTPUTF8 : 0),
		.rcpts = s->rcpts,
		.n_rcpts = (uint32_t)m->n_rcpts,
	};
	s->committing = true;
	if (in->signer && session_sign(s)) /* the PUT follows the signature */
		return 0;
	rc = session_put(s);
	if (rc < 0)
		s->committing = false;
	return rc;
}

/* --- driving the session ------------------------------------------------ */

static void session_auth(struct in_session *s, const struct smtp_server_auth *a)
{
	const struct sl_tenant_cfg *t = config_tenant_by_user(s->in->env.cfg, a->username);
	bool ok = t && t->password_hash && auth_verify_password(a->password, t->password_hash) == 0;

	if (ok)
		s->tenant = t;
	else
		(*s->in->c_auth_fail)++;
	smtp_server_auth_result(s->srv, ok, ok ? t->name : NULL);
}

static void session_drive(struct in_session *s)
{
	struct smtp_server_event ev;
	int k, rc;

	if (s->dead)
		return;
	while ((k = smtp_server_next(s->srv, &ev)) > SMTP_SERVER_EV_NONE) {
		switch (k) {
		case SMTP_SERVER_EV_STARTTLS:
			session_io_flush(&s->io, smtp_server_output(s->srv));
			if (session_io_start_tls(&s->io, s->ls->tls, true, NULL) < 0) {
				session_end(s);
				return;
			}
			break;
		case SMTP_SERVER_EV_AUTH:
			session_auth(s, &ev.auth);
			break;
		case SMTP_SERVER_EV_MESSAGE:
			rc = session_accept_message(s, &ev.msg);
			if (rc < 0)
				smtp_server_message_result(s->srv, 451, "4.3.0",
							   "Local error in processing, try again later");
			break;
		case SMTP_SERVER_EV_CLOSE:
			s->closing = true;
			break;
		}
	}
	rc = session_io_flush(&s->io, smtp_server_output(s->srv));
	if (k < 0 || rc < 0) {
		session_end(s);
		return;
	}
	if (s->closing || smtp_server_want_close(s->srv)) {
		s->closing = true;
		if (conn_pending(s->io.conn) == 0)
			session_end(s);
		return; /* on_drained ends it */
	}
	arm_timer(s);
}

static void on_in_recv(void *ctx, const char *data, size_t len)
{
	struct in_session *s = ctx;
	const char *plain;
	size_t plain_len;
	int rc;

	if (len == 0 || s->closing) {
		session_end(s);
		return;
	}
	rc = session_io_input(&s->io, data, len, &plain, &plain_len);
	if (rc < 0) {
		session_end(s);
		return;
	}
	if (rc == SESSION_IO_TLS_READY)
		smtp_server_tls_started(s->srv);
	if (plain_len && smtp_server_input(s->srv, plain, plain_len) < 0) {
		session_end(s);
		return;
	}
	session_drive(s);
}

static void on_in_error(void *ctx, int err)
{
	(void)err;
	session_end(ctx);
}

static void on_in_drained(void *ctx)
{
	struct in_session *s = ctx;

	if (s->closing)
		session_end(s);
}

static const struct conn_handler in_handler = {
	.on_recv = on_in_recv,
	.on_error = on_in_error,
	.on_drained = on_in_drained,
};

static bool peer_may_relay(const struct sl_listener_cfg *lc, const struct sockaddr *peer)
{
	for (size_t i = 0; i < lc->n_relay_networks; i++)
		if (cidr_contains(&lc->relay_networks[i], peer))
			return true;
	return false;
}

static void on_accept(void *ctx, struct conn *c, const struct sockaddr *peer, socklen_t plen)
{
	struct listener *ls = ctx;
	struct ingress *in = ls->in;
	const struct sl_config *cfg = in->env.cfg;
	struct smtp_server_limits lim = {
		.hostname = cfg->hostname,
		.max_line = cfg->limits.max_line_length,
		.max_size = cfg->limits.max_message_size,
		.max_rcpts = cfg->limits.max_recipients,
		.max_errors = cfg->limits.max_errors,
		.tls_available = ls->tls != NULL,
		.auth_available = ls->tls != NULL && cfg->n_tenants > 0,
	};
	struct in_session *s;

	(void)plen;
	if (in->shutting_down || in->n_sessions >= cfg->limits.max_clients) {
		static const char busy[] = "421 4.3.2 Too many connections, try again later\r\n";

		(*in->c_rejected_clients)++;
		conn_send(c, busy, sizeof busy - 1);
		conn_close(c); /* queued bytes may be lost; the client retries */
		return;
	}
	s = calloc(1, sizeof *s);
	if (!s || smtp_server_create(&lim, &s->srv) < 0) {
		free(s);
		conn_close(c);
		return;
	}
	s->in = in;
	s->ls = ls;
	s->io.conn = c;
	s->timer.cb = on_timer;
	s->waiter.done = on_put_done;
	if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, s->peer,
			  sizeof s->peer);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, s->peer,
			  sizeof s->peer);
	smtp_server_set_relay_allowed(s->srv, peer_may_relay(ls->cfg, peer));
	s->next = in->sessions;
	if (s->next)
		s->next->prev = s;
	in->sessions = s;
	in->n_sessions++;
	(*in->g_sessions)++;
	(*in->c_sessions)++;
	conn_start(c, &in_handler, s);
	smtp_server_greet(s->srv);
	session_drive(s);
}

/* --- lifecycle ---------------------------------------------------------- */

static void arm_offload_read(struct ingress *in)
{
	struct io_uring_sqe *sqe = loop_sqe(in->env.loop, &in->op_offload);

	io_uring_prep_read(sqe, offload_fd(in->offload), &in->offload_ev, sizeof in->offload_ev, 0);
}

static void on_offload_event(struct loop_op *op, int res, uint32_t flags)
{
	struct ingress *in = (struct ingress *)((char *)op - offsetof(struct ingress, op_offload));

	(void)flags;
	offload_reap(in->offload);
	if (res != -ECANCELED)
		arm_offload_read(in);
}

/* Load every configured DKIM key once; signing runs on one offload thread
 * so RSA's cost never stalls the event loop. */
static int ingress_dkim_setup(struct ingress *in, char *err, size_t errlen)
{
	const struct sl_config *cfg = in->env.cfg;
	int rc;

	if (!cfg->n_dkim)
		return 0;
	in->signer = dkim_signer_create();
	if (!in->signer)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_dkim; i++) {
		const struct sl_dkim_key_cfg *k = &cfg->dkim[i];
		enum dkim_algo algo = DKIM_ALGO_AUTO;

		if (k->algorithm && dkim_algo_parse(k->algorithm, &algo) < 0)
			return SL_ECONFIG;
		rc = dkim_signer_add_key(in->signer, k->domain, k->selector, algo, k->key);
		if (rc < 0) {
			snprintf(err, errlen, "dkim key for %s (selector %s) from %s: %s", k->domain,
				 k->selector, k->key, sl_strerror(rc));
			return rc;
		}
	}
	rc = offload_create(1, &in->offload);
	if (rc < 0)
		return rc;
	in->op_offload.cb = on_offload_event;
	arm_offload_read(in);
	return 0;
}

int ingress_create(const struct ingress_env *env, struct ingress **out, char *err,
		   size_t errlen)
{
	const struct sl_config *cfg = env->cfg;
	struct ingress *in = calloc(1, sizeof *in);
	int rc = -ENOMEM;

	if (!in)
		return -ENOMEM;
	in->env = *env;
	in->listeners = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof *in->listeners);
	in->c_sessions = metrics_counter(env->metrics, "sluice_ingress_connections_total",
					 "Inbound submission connections accepted", "");
	in->c_rejected_clients = metrics_counter(env->metrics,
						 "sluice_ingress_connections_refused_total",
						 "Submission connections refused (limits)", "");
	in->c_auth_fail = metrics_counter(env->metrics, "sluice_ingress_auth_failures_total",
					  "Failed SMTP AUTH attempts", "");
	in->g_sessions = metrics_gauge(env->metrics, "sluice_ingress_sessions",
				       "Open submission sessions", "");
	in->c_signed = metrics_counter(env->metrics, "sluice_dkim_signed_total",
				       "Messages DKIM-signed at acceptance", "");
	in->c_sign_fail = metrics_counter(env->metrics, "sluice_dkim_failures_total",
					  "Messages whose DKIM signing failed (answered 451)", "");
	if (!in->listeners || !in->c_sessions || !in->c_rejected_clients || !in->c_auth_fail ||
	    !in->g_sessions || !in->c_signed || !in->c_sign_fail)
		goto fail;
	rc = ingress_dkim_setup(in, err, errlen);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct sl_listener_cfg *lc = &cfg->listeners[i];
		struct listener *ls = &in->listeners[i];

		ls->in = in;
		ls->cfg = lc;
		in->n_listeners++;
		if (lc->tls_cert) {
			rc = tls_ctx_server_create(lc->tls_cert, lc->tls_key, &ls->tls);
			if (rc < 0) {
				char detail[256] = "";

				tls_last_error(detail, sizeof detail);
				snprintf(err, errlen, "listener %s: TLS certificate %s / key %s: %s",
					 lc->name, lc->tls_cert, lc->tls_key, detail);
				goto fail;
			}
		}
		rc = transport_uring_listen(env->tu, (const struct sockaddr *)&lc->addr,
					    lc->addr_len, on_accept, ls, &ls->ul);
		if (rc < 0) {
			snprintf(err, errlen, "listener %s: %s", lc->name, sl_strerror(rc));
			goto fail;
		}
	}
	*out = in;
	return 0;
fail:
	ingress_destroy(in);
	return rc;
}

void ingress_shutdown(struct ingress *in)
{
	in->shutting_down = true;
	for (size_t i = 0; i < in->n_listeners; i++) {
		transport_uring_listener_close(in->listeners[i].ul);
		in->listeners[i].ul = NULL;
	}
	for (struct in_session *s = in->sessions, *next; s; s = next) {
		next = s->next;
		if (!s->dead && !s->committing) {
			static const char bye[] = "421 4.3.2 Service shutting down\r\n";

			session_io_send(&s->io, bye, sizeof bye - 1);
			session_end(s);
		}
	}
}

bool ingress_idle(const struct ingress *in)
{
	for (const struct in_session *s = in->sessions; s; s = s->next)
		if (s->committing)
			return false;
	return true;
}

void ingress_destroy(struct ingress *in)
{
	if (!in)
		return;
	/* Finish signatures under way first: their sessions are freed below. */
	in->destroying = true;
	if (in->offload)
		offload_destroy(in->offload);
	in->offload = NULL;
	while (in->sessions) {
		struct in_session *s = in->sessions;

		if (s->io.conn)
			conn_close(s->io.conn);
		s->io.conn = NULL;
		session_free(s);
	}
	for (size_t i = 0; i < in->n_listeners; i++) {
		if (in->listeners[i].ul)
			transport_uring_listener_close(in->listeners[i].ul);
		if (in->listeners[i].tls)
			tls_ctx_destroy(in->listeners[i].tls);
	}
	if (in->signer)
		dkim_signer_destroy(in->signer);
	free(in->listeners);
	free(in);
}
