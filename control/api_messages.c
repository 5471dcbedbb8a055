/*
 * api_messages.c — HTTP injection and message inspection over the admin API.
 *
 *   POST /v1/messages        inject a batch (dataplane/inject.h for the body);
 *                            a tenant token injects as its tenant, an
 *                            operator names one with ?tenant=NAME
 * (GET /v1/messages/:id, a queued message, is in api_queues.c's table.)
 *
 * The reply to POST comes only after every accepted message's spool commit
 * (the same durability point as SMTP's 250): the handler's worker thread
 * waits in mailbox_await() meanwhile, so at most api_config.threads
 * injections wait for a commit at once. 200 carries per-message and
 * per-recipient results; the whole request is refused with 400 (body
 * invalid, message names the field), 403 (tenant awaiting review or
 * disabled: tenant.h's refusal codes), 404 (no such tenant), 413 (body
 * over api_config.max_body, answered by api.c) or 503 (no data plane).
 */
#include "api.h"
#include "verification.h"
#include "api_dataplane.h"

#include "err.h"
#include "inject.h"
#include "loop.h"
#include "mailbox.h"
#include "reputation.h"
#include "tenant.h"
#include "tenant_view.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct inject_call {
	struct api_dataplane *dp;
	struct inject_batch *b;
	const char *tenant;
	struct mailbox_wait *w;
};

static void inject_batch_done(struct inject_batch *b, void *ctx)
{
	struct inject_call *c = ctx;

	(void)b;
	mailbox_complete(c->w, 0);
}

/* --- suppressed recipients (reputation) ---------------------------------- */

static const char *const suppressed_reason[] = {
	"recipient suppressed (hard_bounce)", "recipient suppressed (complaint)",
	"recipient suppressed (unsubscribe)", "recipient suppressed (manual)",
};

/* API thread: reject every recipient the tenant's or the global
 * suppression list holds (the store is read directly). */
static void inject_suppress(const struct api_dataplane *dp, struct inject_batch *b,
			    const char *tenant)
{
	for (size_t i = 0; dp->rep && i < b->n_msgs; i++) {
		struct inject_message *m = &b->msgs[i];

		for (size_t j = 0; m->status == INJECT_PENDING && j < m->n_rcpts; j++) {
			struct inject_rcpt *r = &m->rcpts[j];
			const char *why = NULL;

			if (r->status != INJECT_PENDING ||
			    reputation_suppressed(dp->rep, tenant, r->addr, &why) != 1)
				continue;
			r->status = INJECT_REJECTED;
			r->reason = suppressed_reason[3];
			for (size_t k = 0; k < 4; k++)
				if (why && strstr(suppressed_reason[k], why))
					r->reason = suppressed_reason[k];
		}
	}
}

/* API thread: a tenant in the sandbox may send only to the addresses it
 * has verified (verify-by-email); every other recipient is rejected. */
static void inject_sandbox(struct api_request *req, struct inject_batch *b, const char *tenant,
			   enum tenant_state state)
{
	if (state != TENANT_SANDBOX || !api_store(req))
		return;
	for (size_t i = 0; i < b->n_msgs; i++)
		for (size_t j = 0; j < b->msgs[i].n_rcpts; j++) {
			struct inject_rcpt *r = &b->msgs[i].rcpts[j];

			if (r->status == INJECT_PENDING &&
			    !verification_address_verified(api_store(req), tenant, r->addr)) {
				r->status = INJECT_REJECTED;
				r->reason = "tenant in sandbox: only its verified addresses "
					    "(POST /v1/verifications)";
			}
		}
}

/* Loop thread: the suppressed recipients' events. */
static void inject_suppressed_events(struct inject_call *c)
{
	for (size_t i = 0; c->dp->rep && i < c->b->n_msgs; i++)
		for (size_t j = 0; j < c->b->msgs[i].n_rcpts; j++) {
			const struct inject_rcpt *r = &c->b->msgs[i].rcpts[j];

			for (size_t k = 0; k < 4; k++)
				if (r->reason == suppressed_reason[k])
					reputation_refused(c->dp->rep, c->tenant, r->addr,
							   strchr(r->reason, '(') + 1);
		}
}

/* Loop thread: reject each message whose envelope sender's domain is not
 * verified for the tenant (sender_auth; the same check as SMTP MAIL). */
static void inject_sender_check(struct inject_call *c)
{
	for (size_t i = 0; c->dp->tenants && i < c->b->n_msgs; i++) {
		struct inject_message *m = &c->b->msgs[i];
		char reply[320];

		if (m->status == INJECT_PENDING &&
		    tenant_view_sender_check(*c->dp->tenants, c->dp->cfg, c->tenant, m->mail_from,
					     reply, sizeof reply)) {
			m->status = INJECT_REJECTED;
			m->reason = "sending domain is not verified for this tenant "
				    "(sluicectl domain verify)";
		}
	}
}

/* On the loop thread: start accepting; the reply waits for the commits. */
static void inject_on_loop(struct mailbox_wait *w, void *arg)
{
	struct inject_call *c = arg;

	c->w = w;
	inject_sender_check(c);
	c->b->tenant = config_tenant_by_name(c->dp->cfg, c->tenant);
	c->b->done = inject_batch_done;
	c->b->ctx = c;
	inject_submit(c->dp->accept, c->b, c->tenant);
	inject_suppressed_events(c);
}

/* Which tenant injects, in which state (*state), and may it? 0, or an
 * error already answered. */
static int inject_tenant(struct api_request *req, struct api_response *resp,
			 const struct api_dataplane *dp, const char **tenant,
			 enum tenant_state *state)
{
	const struct api_principal *who = api_principal(req);
	const struct tenant_refusal *ref;
	struct store_tenant st;
	int rc;

	*tenant = who->role == STORE_ROLE_OPERATOR ? api_query(req, "tenant") : who->tenant;
	if (!*tenant || !**tenant) {
		api_error(resp, 400, "bad_request", "tenant: an operator names the tenant with "
						    "?tenant=NAME");
		return -EINVAL;
	}
	/* The control store's lifecycle state decides; a tenant only in the
	 * configuration file (no store entry) sends as active. */
	*state = TENANT_ACTIVE;
	rc = api_store(req) ? store_tenant_get(api_store(req), *tenant, &st) : SL_ENOTFOUND;
	if (rc == SL_ENOTFOUND) {
		if (config_tenant_by_name(dp->cfg, *tenant))
			return 0;
		api_error(resp, 404, "not_found", "no tenant \"%s\"", *tenant);
		return rc;
	}
	if (rc < 0) {
		api_error_errno(resp, rc, NULL);
		return rc;
	}
	*state = st.state;
	ref = tenant_inject_refusal(st.state);
	if (ref) {
		api_error(resp, (unsigned)ref->http_status, ref->error, "%s", ref->text);
		return -EACCES;
	}
	return 0;
}

static int messages_inject(struct api_request *req, struct api_response *resp)
{
	struct api_dataplane *dp = api_daemon(req);
	struct inject_batch b;
	struct inject_call c;
	struct sl_buf out = { 0 };
	const char *tenant, *body;
	enum tenant_state state;
	char err[256];
	size_t len;
	int rc;

	if (!dp || !api_mailbox(req))
		return api_error(resp, 503, "unavailable", "the data plane is not running");
	if (inject_tenant(req, resp, dp, &tenant, &state) < 0)
		return 0;
	body = api_body(req, &len);
	rc = inject_parse(body ? body : "", len, &dp->limits, loop_wall_ms(), &b, err, sizeof err);
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request", "%s", err);
	if (rc < 0)
		return rc;
	snprintf(b.peer, sizeof b.peer, "%s", api_principal(req)->actor);
	inject_sandbox(req, &b, tenant, state);
	inject_suppress(dp, &b, tenant);
	c = (struct inject_call){ .dp = dp, .b = &b, .tenant = tenant };
	rc = mailbox_await(api_mailbox(req), inject_on_loop, &c);
	if (rc == 0)
		rc = inject_reply_json(&b, &out);
	if (rc == 0)
		rc = api_reply_text(resp, 200, out.data, out.len);
	else if (rc == -EPIPE)
		rc = api_error(resp, 503, "unavailable", "shutting down, try again later");
	sl_buf_free(&out);
	inject_batch_free(&b);
	return rc;
}

const struct api_route api_message_routes[] = {
	{ API_POST, "/v1/messages", messages_inject, STORE_ROLE_TENANT, NULL },
};
const size_t api_message_route_count = sizeof api_message_routes / sizeof *api_message_routes;
