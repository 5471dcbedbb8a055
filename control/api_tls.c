/*
 * api_tls.c — the outbound TLS-RPT counters over the admin API.
 *
 *   GET /v1/tls   {"domains": [{"domain", "policy", "success", "failure",
 *                 "failures": {RFC 8460 result type: count}}]}
 *
 * The daemon renders them on its loop (api_dataplane.tls_json, from
 * dataplane/tls_report.h); docs/tls.md. Operators only.
 */
#include "api.h"
#include "api_dataplane.h"

#include "mailbox.h"

struct tls_call {
	struct api_dataplane *dp;
	struct sl_buf out;
};

static int tls_run(void *arg)
{
	struct tls_call *c = arg;

	return c->dp->tls_json(c->dp->daemon, &c->out);
}

static int tls_get(struct api_request *req, struct api_response *resp)
{
	struct api_dataplane *dp = api_daemon(req);
	struct tls_call c = { .dp = dp };
	int rc;

	if (!dp || !dp->tls_json || !api_mailbox(req))
		return api_error(resp, 503, "unavailable", "the data plane is not running");
	rc = mailbox_call(api_mailbox(req), tls_run, &c);
	if (rc == 0)
		rc = api_reply_text(resp, 200, sl_buf_head(&c.out), sl_buf_avail(&c.out));
	sl_buf_free(&c.out);
	return rc;
}

const struct api_route api_tls_routes[] = {
	{ API_GET, "/v1/tls", tls_get, STORE_ROLE_OPERATOR, NULL },
};
const size_t api_tls_route_count = sizeof api_tls_routes / sizeof *api_tls_routes;
