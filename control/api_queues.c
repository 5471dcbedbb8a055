/*
 * api_queues.c — queue visibility and control over the admin API.
 *
 *   GET  /v1/queues?by=domain&tenant=T&domain=D&stream=S
 *        groups of queued deliveries by tenant | stream | domain |
 *        source_ip | pool (default domain): counts, oldest age, last reply
 *   GET  /v1/messages/:id        one queued message: envelope, recipients
 *   POST /v1/queues/pause        body: selector {"tenant", "domain", "stream"}
 *   POST /v1/queues/resume       (the same selector that paused)
 *   POST /v1/queues/retry        deferred deliveries become ready now
 *   POST /v1/queues/purge        remove; one "purged" event per recipient
 *
 * Control replies {"action": "...", "recipients": N}. A tenant token sees
 * and acts on its own tenant's mail only: its selector's tenant is forced
 * to its own (naming another one is 404), and another tenant's message
 * id is 404. Purge needs a non-empty selector. Everything runs on the
 * data-plane loop through the mailbox (dataplane/queue.h has the rules).
 */
#include "api.h"
#include "api_dataplane.h"

#include "err.h"
#include "mailbox.h"
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum qaction { QA_LIST, QA_SHOW, QA_PAUSE, QA_RESUME, QA_RETRY, QA_PURGE };

struct qcall {
	struct queue *q;
	enum qaction action;
	enum queue_group by;
	struct queue_selector sel;
	uint64_t id;
	const char *tenant_only;
	struct sl_buf out;
};

static int qcall_run(void *arg)
{
	struct qcall *c = arg;

	switch (c->action) {
	case QA_LIST: return queue_list_json(c->q, c->by, &c->sel, &c->out);
	case QA_SHOW: return queue_message_json(c->q, c->id, c->tenant_only, &c->out);
	case QA_PAUSE: return queue_pause(c->q, &c->sel);
	case QA_RESUME: return queue_resume(c->q, &c->sel);
	case QA_RETRY: return queue_retry_now(c->q, &c->sel);
	case QA_PURGE: return queue_purge(c->q, &c->sel);
	}
	return -EINVAL;
}

static struct api_dataplane *dataplane(struct api_request *req, struct api_response *resp)
{
	struct api_dataplane *dp = api_daemon(req);

	if (!dp || !dp->queue || !api_mailbox(req)) {
		api_error(resp, 503, "unavailable", "the data plane is not running");
		return NULL;
	}
	return dp;
}

static int parse_stream(const char *s, int *out)
{
	if (!s)
		*out = -1;
	else if (!strcmp(s, "transactional"))
		*out = SL_STREAM_TRANSACTIONAL;
	else if (!strcmp(s, "marketing"))
		*out = SL_STREAM_MARKETING;
	else
		return -EINVAL;
	return 0;
}

/* A tenant token's selector is its own tenant; 0 or answered. */
static int scope_tenant(struct api_request *req, struct api_response *resp,
			struct queue_selector *sel)
{
	const struct api_principal *who = api_principal(req);

	if (who->role == STORE_ROLE_OPERATOR)
		return 0;
	if (sel->tenant && strcmp(sel->tenant, who->tenant)) {
		api_error(resp, 404, "not_found", "no tenant \"%s\"", sel->tenant);
		return -ENOENT;
	}
	sel->tenant = who->tenant;
	return 0;
}

static int queues_list(struct api_request *req, struct api_response *resp)
{
	struct api_dataplane *dp = dataplane(req, resp);
	const char *by = api_query(req, "by");
	struct qcall c = { .action = QA_LIST, .by = QUEUE_BY_DOMAIN };
	int rc;

	if (!dp)
		return 0;
	c.q = dp->queue;
	c.sel.tenant = api_query(req, "tenant");
	c.sel.domain = api_query(req, "domain");
	if (by && queue_group_parse(by, &c.by) < 0)
		return api_error(resp, 400, "bad_request",
				 "by: one of tenant, stream, domain, source_ip, pool");
	if (parse_stream(api_query(req, "stream"), &c.sel.stream) < 0)
		return api_error(resp, 400, "bad_request", "stream: transactional or marketing");
	if (scope_tenant(req, resp, &c.sel) < 0)
		return 0;
	rc = mailbox_call(api_mailbox(req), qcall_run, &c);
	if (rc == 0) {
		json_error_t jerr;
		json_t *items = json_loadb(c.out.data, c.out.len, 0, &jerr);

		rc = items ? api_reply_list(resp, items, NULL) : -ENOMEM;
	}
	sl_buf_free(&c.out);
	return rc;
}

static int message_show(struct api_request *req, struct api_response *resp)
{
	struct api_dataplane *dp = dataplane(req, resp);
	const struct api_principal *who = api_principal(req);
	const char *id = api_param(req, "id");
	struct qcall c = { .action = QA_SHOW };
	char *end;
	int rc;

	if (!dp)
		return 0;
	c.q = dp->queue;
	if (!id || strlen(id) != 16 || (c.id = strtoull(id, &end, 16), *end))
		return api_error(resp, 400, "bad_request", "id: a queue id is 16 hex digits");
	c.tenant_only = who->role == STORE_ROLE_OPERATOR ? NULL : who->tenant;
	rc = mailbox_call(api_mailbox(req), qcall_run, &c);
	if (rc == SL_ENOTFOUND)
		rc = api_error(resp, 404, "not_found", "no queued message %s", id);
	else if (rc == 0)
		rc = api_reply_text(resp, 200, c.out.data, c.out.len);
	sl_buf_free(&c.out);
	return rc;
}

static const struct api_field selector_fields[] = {
	{ "tenant", API_JSON_STRING, false, STORE_NAME_MAX },
	{ "domain", API_JSON_STRING, false, STORE_DOMAIN_MAX },
	{ "stream", API_JSON_STRING, false, 16 },
};

static int queues_control(struct api_request *req, struct api_response *resp,
			  enum qaction action, const char *name)
{
	struct api_dataplane *dp = dataplane(req, resp);
	struct qcall c = { .action = action };
	json_t *body;
	int rc;

	if (!dp)
		return 0;
	c.q = dp->queue;
	if (api_body_object(req, resp, selector_fields,
			    sizeof selector_fields / sizeof *selector_fields, &body) < 0)
		return 0;
	c.sel.tenant = json_string_value(json_object_get(body, "tenant"));
	c.sel.domain = json_string_value(json_object_get(body, "domain"));
	if (parse_stream(json_string_value(json_object_get(body, "stream")), &c.sel.stream) < 0) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "stream: transactional or marketing");
	}
	if (action == QA_PURGE && !c.sel.tenant && !c.sel.domain && c.sel.stream < 0 &&
	    api_principal(req)->role == STORE_ROLE_OPERATOR) {
		json_decref(body);
		return api_error(resp, 400, "bad_request",
				 "purge needs a selector: tenant, domain and/or stream");
	}
	if (scope_tenant(req, resp, &c.sel) < 0) {
		json_decref(body);
		return 0;
	}
	rc = mailbox_call(api_mailbox(req), qcall_run, &c);
	json_decref(body);
	if (rc < 0)
		return rc;
	return api_reply(resp, 200, json_pack("{s:s,s:i}", "action", name, "recipients", rc));
}

static int queues_pause(struct api_request *req, struct api_response *resp)
{
	return queues_control(req, resp, QA_PAUSE, "pause");
}

static int queues_resume(struct api_request *req, struct api_response *resp)
{
	return queues_control(req, resp, QA_RESUME, "resume");
}

static int queues_retry(struct api_request *req, struct api_response *resp)
{
	return queues_control(req, resp, QA_RETRY, "retry");
}

static int queues_purge(struct api_request *req, struct api_response *resp)
{
	return queues_control(req, resp, QA_PURGE, "purge");
}

const struct api_route api_queue_routes[] = {
	{ API_GET, "/v1/queues", queues_list, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/queues/pause", queues_pause, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/queues/resume", queues_resume, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/queues/retry", queues_retry, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/queues/purge", queues_purge, STORE_ROLE_TENANT, NULL },
	{ API_GET, "/v1/messages/:id", message_show, STORE_ROLE_TENANT, NULL },
};
const size_t api_queue_route_count = sizeof api_queue_routes / sizeof *api_queue_routes;
