/* ingress.c — tenants' ESMTP listeners and sessions; see ingress.h. */
#include "ingress.h"

#include "accept.h"
#include "auth.h"
#include "err.h"
#include "events.h"
#include "metrics.h"
#include "session_io.h"
#include "smtp_server.h"
#include "store.h"
#include "reputation.h"
#include "tenant_view.h"
#include "verification.h"
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
	struct tenant_view_cfg store_tenant; /* s->tenant for a store-only tenant */
	bool committing;                    /* the message is being accepted */
	bool dead;                          /* conn gone; free when accepting ends */
	bool closing;
	struct accept_msg am;               /* the message being accepted */
	struct reputation_inbound rin;      /* inbound listeners: the message being processed */
	struct sockaddr_storage peer_addr;
	char received_from[600];
	char received_with[8];
	char received_comment[200];
};

struct ingress {
	struct ingress_env env;
	struct listener *listeners;
	size_t n_listeners;
	struct in_session *sessions;
	unsigned n_sessions;
	bool shutting_down;
	bool destroying;
	struct accept *acc; /* shared with HTTP injection */
	uint64_t *c_sessions, *c_rejected_clients, *c_auth_fail;
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

/* --- accepting a message ------------------------------------------------ */

/* The message is durable (result 0) or refused: answer the client. */
/* Link checking refused the message (a blocklisted host): 550, naming it. */
static void answer_link_refusal(struct in_session *s)
{
	char text[400];

	snprintf(text, sizeof text, "Message refused: %s", s->am.refusal);
	smtp_server_message_result(s->srv, 550, "5.7.1", text);
}

static void on_accepted(struct accept_msg *am, int result)
{
	struct in_session *s = (struct in_session *)((char *)am - offsetof(struct in_session, am));
	char text[128];

	s->committing = false;
	if (s->dead) {
		session_free(s);
		return;
	}
	if (s->in->destroying)
		return; /* ingress_destroy frees the session */
	if (result == 0) {
		snprintf(text, sizeof text, "Ok: queued as %016" PRIx64, am->id);
		smtp_server_message_result(s->srv, 250, "2.0.0", text);
	} else if (result == ACCEPT_ELINK) {
		answer_link_refusal(s);
	} else {
		smtp_server_message_result(s->srv, 451, "4.3.0",
					   result == SL_ETOOBIG || result == -ENOSPC ?
						   "Spool full, try again later" :
					   result == ACCEPT_ESIGN ?
						   "Local error in DKIM signing, try again later" :
						   "Local error in processing, try again later");
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

/* The lifecycle refusal for the session's tenant now, or NULL. */
static const struct tenant_refusal *session_refusal(struct in_session *s)
{
	const struct sl_tenant_cfg *t = session_tenant(s);

	if (!t || !s->in->env.tenants)
		return NULL;
	return tenant_view_inject_refusal(*s->in->env.tenants, t->name);
}

/* Make MAIL FROM answer the tenant's refusal (awaiting review, disabled)
 * while its state says so; called before each input and after AUTH. */
static void session_policy(struct in_session *s)
{
	const struct tenant_refusal *r = session_refusal(s);
	const struct sl_tenant_cfg *t;
	char why[128], text[192];

	if (r) {
		smtp_server_set_mail_refusal(s->srv, r->smtp_code, r->enhanced, r->text);
	} else if ((t = session_tenant(s)) && accept_quota_over(s->in->acc, t->name, why, sizeof why)) {
		snprintf(text, sizeof text, "Tenant %s: %s, try again later", t->name, why);
		smtp_server_set_mail_refusal(s->srv, 451, "4.7.1", text);
	} else {
		smtp_server_set_mail_refusal(s->srv, 0, NULL, NULL);
	}
}

/* MAIL on a submission listener: refuse a sending domain that is not
 * verified for the tenant (sender_auth; tenant_view_sender_check). */
static int mail_check_domain(void *ctx, const char *tenant, const char *from, char *reply,
			     size_t len)
{
	struct in_session *s = ctx;
	const struct sl_tenant_cfg *t = session_tenant(s);

	(void)tenant;
	if (!t || !s->in->env.tenants)
		return 0;
	return tenant_view_sender_check(*s->in->env.tenants, s->in->env.cfg, t->name, from, reply,
					len);
}

/* --- reputation: suppressed recipients, the inbound listener ------------- */

/* RCPT on a submission listener: refuse recipients the tenant's (or the
 * global) suppression list holds. */
static int rcpt_check_suppressed(void *ctx, const char *tenant, const char *rcpt, char *reply,
				 size_t len)
{
	struct in_session *s = ctx;
	const struct sl_tenant_cfg *t = session_tenant(s);
	const char *why = "suppressed";

	(void)tenant;
	if (!t || reputation_suppressed(s->in->env.rep, t->name, rcpt, &why) != 1)
		return 0;
	reputation_refused(s->in->env.rep, t->name, rcpt, why);
	snprintf(reply, len, "5.7.1 recipient suppressed (%s)", why);
	return 550;
}

/* RCPT on a submission listener: a sandbox tenant only to the addresses
 * it verified; then the suppression lists. */
static int rcpt_check_submission(void *ctx, const char *tenant, const char *rcpt, char *reply,
				 size_t len)
{
	struct in_session *s = ctx;
	const struct sl_tenant_cfg *t = session_tenant(s);
	const struct tenant_view_entry *e =
		t && s->in->env.tenants ? tenant_view_find(*s->in->env.tenants, t->name) : NULL;

	if (e && e->state == TENANT_SANDBOX && s->in->env.store &&
	    !verification_address_verified(s->in->env.store, t->name, rcpt)) {
		snprintf(reply, len, "5.7.1 tenant %s is in the sandbox: it may send only to "
				     "addresses it has verified", t->name);
		return 550;
	}
	return s->in->env.rep ? rcpt_check_suppressed(ctx, tenant, rcpt, reply, len) : 0;
}

/* RCPT on an inbound listener: only the appliance's own domains. */
static int rcpt_check_inbound(void *ctx, const char *tenant, const char *rcpt, char *reply,
			      size_t len)
{
	struct in_session *s = ctx;

	(void)tenant;
	if (s->in->env.rep && reputation_inbound_accepts(s->in->env.rep, rcpt))
		return 0;
	snprintf(reply, len, "5.7.1 relay access denied");
	return 550;
}

static void on_inbound_done(struct reputation_inbound *rin, int code, const char *enhanced,
			    const char *text)
{
	struct in_session *s = (struct in_session *)((char *)rin - offsetof(struct in_session, rin));

	s->committing = false;
	if (s->dead) {
		session_free(s);
		return;
	}
	if (s->in->destroying)
		return;
	smtp_server_message_result(s->srv, code, enhanced, text);
	session_drive(s);
}

/* Bounces, complaints and verifications: processed, never spooled; the
 * reply waits until the processing (and its store writes) finished. */
static int session_inbound_message(struct in_session *s, const struct smtp_server_message *m)
{
	int rc;

	if (!s->in->env.rep)
		return smtp_server_message_result(s->srv, 550, "5.7.1", "relay access denied");
	s->rin = (struct reputation_inbound){ .helo = m->helo, .mail_from = m->mail_from,
					      .rcpts = m->rcpts, .n_rcpts = m->n_rcpts,
					      .body = m->body, .body_len = m->body_len,
					      .client = s->peer_addr, .done = on_inbound_done };
	s->committing = true;
	rc = reputation_inbound_submit(s->in->env.rep, &s->rin);
	if (rc < 0)
		s->committing = false;
	return rc;
}

static int session_accept_message(struct in_session *s, const struct smtp_server_message *m)
{
	const struct sl_tenant_cfg *t = session_tenant(s);
	const struct tenant_refusal *r = session_refusal(s);
	int rc;

	if (s->ls->cfg->inbound)
		return session_inbound_message(s, m);
	if (!t)
		return SL_EAUTH;
	if (r) /* the state changed during the transaction */
		return smtp_server_message_result(s->srv, r->smtp_code, r->enhanced, r->text);
	snprintf(s->received_from, sizeof s->received_from, "%s ([%s])", m->helo, s->peer);
	snprintf(s->received_with, sizeof s->received_with, "%s%s%s", m->esmtp ? "ESMTP" : "SMTP",
		 m->tls ? "S" : "", s->tenant ? "A" : "");
	if (m->tls)
		snprintf(s->received_comment, sizeof s->received_comment, "using %s %s",
			 tls_conn_version(s->io.tls), tls_conn_cipher(s->io.tls));
	s->am = (struct accept_msg){
		.tenant = t,
		.stream = -1,
		.mail_from = m->mail_from,
		.rcpts = m->rcpts,
		.n_rcpts = m->n_rcpts,
		.body = m->body,
		.body_len = m->body_len,
		.flags = (m->body_type == SMTP_SERVER_BODY_8BITMIME ? SPOOL_F_8BITMIME : 0) |
			 (m->smtputf8 ? SPOOL_F_SMTPUTF8 : 0),
		.received_from = s->received_from,
		.received_with = s->received_with,
		.received_comment = m->tls ? s->received_comment : NULL,
		.done = on_accepted,
	};
	s->committing = true;
	rc = accept_submit(s->in->acc, &s->am);
	if (rc < 0)
		s->committing = false;
	return rc;
}

/* --- driving the session ------------------------------------------------ */

static void session_auth(struct in_session *s, const struct smtp_server_auth *a)
{
	const struct sl_config *cfg = s->in->env.cfg;
	const struct sl_tenant_cfg *t = config_tenant_by_user(cfg, a->username);
	bool ok = t && t->password_hash && auth_verify_password(a->password, t->password_hash) == 0;
	char name[STORE_NAME_MAX + 1];

	/* Then the control store's users (tenants created over the API); a
	 * user the YAML config declares is the config's (and costs one
	 * PBKDF2, not two, when the password is wrong). */
	if (!ok && !t && s->in->env.store &&
	    store_credential_verify(s->in->env.store, a->username, a->password, name) == 0) {
		const struct tenant_view_entry *e =
			s->in->env.tenants ? tenant_view_find(*s->in->env.tenants, name) : NULL;
		struct tenant_view_entry bare = { 0 };

		ok = true;
		t = config_tenant_by_name(cfg, name);
		if (!t) {
			if (!e) { /* created a moment ago: the view has not caught up */
				memcpy(bare.name, name, sizeof bare.name);
				e = &bare;
			}
			tenant_view_cfg_fill(e, cfg, &s->store_tenant);
			t = &s->store_tenant.cfg;
		}
	}
	if (ok)
		s->tenant = t;
	else
		(*s->in->c_auth_fail)++;
	smtp_server_auth_result(s->srv, ok, ok ? t->name : NULL);
	session_policy(s);
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
			if (rc == ACCEPT_EQUOTA) {
				char text[512];

				snprintf(text, sizeof text, "Tenant %s: %s, try again later",
					 session_tenant(s)->name, s->am.refusal);
				smtp_server_message_result(s->srv, 451, "4.7.1", text);
			} else if (rc == ACCEPT_ELINK) {
				answer_link_refusal(s);
			} else if (rc < 0)
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
	session_policy(s);
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
		.auth_available = ls->tls != NULL && (cfg->n_tenants > 0 || in->env.store) &&
				  !ls->cfg->inbound,
	};
	struct in_session *s;

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
	if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, s->peer,
			  sizeof s->peer);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, s->peer,
			  sizeof s->peer);
	if (plen <= sizeof s->peer_addr)
		memcpy(&s->peer_addr, peer, plen);
	if (ls->cfg->inbound) {
		smtp_server_set_relay_allowed(s->srv, true);
		smtp_server_set_rcpt_check(s->srv, rcpt_check_inbound, s);
	} else {
		smtp_server_set_relay_allowed(s->srv, peer_may_relay(ls->cfg, peer));
		if (in->env.cfg->sender_auth.enabled)
			smtp_server_set_mail_check(s->srv, mail_check_domain, s);
		if (in->env.rep || in->env.store)
			smtp_server_set_rcpt_check(s->srv, rcpt_check_submission, s);
	}
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

int ingress_create(const struct ingress_env *env, struct ingress **out, char *err,
		   size_t errlen)
{
	const struct sl_config *cfg = env->cfg;
	struct ingress *in = calloc(1, sizeof *in);
	struct accept_env acc_env;
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
	if (!in->listeners || !in->c_sessions || !in->c_rejected_clients || !in->c_auth_fail ||
	    !in->g_sessions)
		goto fail;
	acc_env = (struct accept_env){ .loop = env->loop, .spool = env->spool,
				       .queue = env->queue, .metrics = env->metrics, .cfg = cfg,
				       .tenants = env->tenants, .links = env->links,
				       .rep = env->rep };
	rc = accept_create(&acc_env, &in->acc, err, errlen);
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

struct accept *ingress_accept(struct ingress *in)
{
	return in->acc;
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
	accept_destroy(in->acc);
	in->acc = NULL;
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
	free(in->listeners);
	free(in);
}
