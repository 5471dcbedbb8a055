/*
 * api_ips.c — the pools' source IPs over the admin API.
 *
 *   GET /v1/ips   {"items": [{"pool", "ip", "ehlo", "rdns", "fcrdns":
 *                 "ok"|"mismatch"|"unknown", "why", "transport",
 *                 "warmup", "dnsbl": "clean"|"listed"|"off",
 *                 "dnsbl_zones": "zone,...", "dnsbl_why", "paused"}],
 *                 "next": null}
 *
 * The daemon renders the list on its loop (api_dataplane.ips_json): the
 * forward-confirmed rDNS results of the check at start (dataplane/fcrdns.h),
 * each IP's warm-up schedule and its DNSBL self-check (dataplane/dnsbl.h;
 * paused: a listed IP sends nothing). Operators only.
 */
#include "api.h"
#include "api_dataplane.h"

#include "mailbox.h"

#include <errno.h>

struct ips_call {
	struct api_dataplane *dp;
	struct sl_buf out;
};

static int ips_run(void *arg)
{
	struct ips_call *c = arg;

	return c->dp->ips_json(c->dp->daemon, &c->out);
}

static int ips_list(struct api_request *req, struct api_response *resp)
{
	struct api_dataplane *dp = api_daemon(req);
	struct ips_call c = { .dp = dp };
	int rc;

	if (!dp || !dp->ips_json || !api_mailbox(req))
		return api_error(resp, 503, "unavailable", "the data plane is not running");
	rc = mailbox_call(api_mailbox(req), ips_run, &c);
	if (rc == 0) {
		json_error_t jerr;
		json_t *items = json_loadb(c.out.data, c.out.len, 0, &jerr);

		rc = items ? api_reply_list(resp, items, NULL) : -ENOMEM;
	}
	sl_buf_free(&c.out);
	return rc;
}

const struct api_route api_ip_routes[] = {
	{ API_GET, "/v1/ips", ips_list, STORE_ROLE_OPERATOR, NULL },
};
const size_t api_ip_route_count = sizeof api_ip_routes / sizeof *api_ip_routes;
