/*
 * api_unsubscribe.c — RFC 8058 one-click unsubscribe (docs/domains.md).
 *
 *   POST /v1/unsubscribe/:token   (public: no API token; the HMAC'd token,
 *                                 unsubscribe.h, is the credential) adds
 *                                 the recipient to the tenant's
 *                                 suppression list: 200 {"unsubscribed"}
 *   GET  /v1/unsubscribe/:token   a short confirmation page, changes
 *                                 nothing (link scanners fetch links)
 *
 * Receivers POST "List-Unsubscribe=One-Click" as the body; the body is not
 * needed and not checked.
 */
#include "api.h"
#include "api_dataplane.h"

#include "err.h"
#include "suppression.h"
#include "unsubscribe.h"

#include <errno.h>
#include <string.h>

static int parse(struct api_request *req, struct api_response *resp,
		 char tenant[UNSUBSCRIBE_TENANT_MAX + 1], char rcpt[UNSUBSCRIBE_ADDR_MAX + 1])
{
	const struct api_dataplane *dp = api_daemon(req);
	uint8_t key[32];

	if (!dp || !dp->cfg->sender_auth.unsubscribe_url) {
		api_error(resp, 404, "not_found", "no such resource");
		return -ENOENT;
	}
	unsubscribe_key(dp->cfg->sender_auth.unsubscribe_secret, key);
	if (unsubscribe_parse(key, api_param(req, "token"), tenant, rcpt) < 0) {
		api_error(resp, 404, "not_found", "no such unsubscribe link");
		return -ENOENT;
	}
	return 0;
}

static int unsub_post(struct api_request *req, struct api_response *resp)
{
	char tenant[UNSUBSCRIBE_TENANT_MAX + 1], rcpt[UNSUBSCRIBE_ADDR_MAX + 1];
	int rc;

	if (parse(req, resp, tenant, rcpt) < 0)
		return 0;
	rc = store_suppression_add(api_store(req), tenant, rcpt, SUPPRESSION_UNSUBSCRIBE, 0,
				   "unsubscribe");
	if (rc < 0)
		return rc;
	return api_reply(resp, 200, json_pack("{s:s}", "unsubscribed", rcpt));
}

static int unsub_get(struct api_request *req, struct api_response *resp)
{
	char tenant[UNSUBSCRIBE_TENANT_MAX + 1], rcpt[UNSUBSCRIBE_ADDR_MAX + 1];

	if (parse(req, resp, tenant, rcpt) < 0)
		return 0;
	return api_reply(resp, 200,
			 json_pack("{s:s,s:s}", "address", rcpt, "unsubscribe",
				   "POST to this URL (List-Unsubscribe=One-Click) to unsubscribe"));
}

const struct api_route api_unsubscribe_routes[] = {
	{ API_POST, "/v1/unsubscribe/:token", unsub_post, 0, NULL },
	{ API_GET, "/v1/unsubscribe/:token", unsub_get, 0, NULL },
};
const size_t api_unsubscribe_route_count =
	sizeof api_unsubscribe_routes / sizeof api_unsubscribe_routes[0];
