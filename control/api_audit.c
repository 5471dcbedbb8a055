/*
 * api_audit.c — the audit log over the admin API.
 *
 *   GET /v1/audit?tenant=T&limit=N&after=SEQ   oldest first
 *
 * tenant=T keeps the entries whose target is "tenant:T" (its lifecycle,
 * settings, SMTP users and tokens). A tenant token sees only its own.
 */
#include "api.h"

#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int audit_list(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	const char *tenant = api_query(req, "tenant"), *after;
	char target[STORE_TARGET_MAX + 1], next[24];
	struct store_audit *page;
	struct sl_buf b = { 0 };
	uint64_t from = 0;
	size_t limit, n;
	bool more;
	int rc;

	if (api_page(req, resp, &limit, &after) < 0)
		return 0;
	if (after) {
		char *end;

		from = strtoull(after, &end, 10);
		if (*end || after[0] == '-')
			return api_error(resp, 400, "bad_request",
					 "after must be an audit sequence number");
	}
	if (who->role != STORE_ROLE_OPERATOR) {
		if (tenant && strcmp(tenant, who->tenant) != 0)
			return api_error(resp, 404, "not_found", "no such tenant");
		tenant = who->tenant;
	}
	if (tenant)
		snprintf(target, sizeof target, "tenant:%s", tenant);
	page = calloc(limit, sizeof *page);
	if (!page)
		return -ENOMEM;
	rc = store_audit_list(api_store(req), from, tenant ? target : NULL, page, limit, &n, &more);
	if (rc < 0)
		goto out;
	/* store_audit_json writes the entries; the envelope is written here. */
	rc = sl_buf_append(&b, "{\"items\":[", 10);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i)
			rc = sl_buf_append(&b, ",", 1);
		if (rc == 0)
			rc = store_audit_json(&page[i], &b);
	}
	if (more && n)
		snprintf(next, sizeof next, "\"%llu\"", (unsigned long long)page[n - 1].seq);
	else
		strcpy(next, "null");
	if (rc == 0)
		rc = sl_buf_appendf(&b, "],\"next\":%s}", next);
	if (rc == 0)
		rc = api_reply_text(resp, 200, b.data, b.len);
out:
	sl_buf_free(&b);
	free(page);
	return rc;
}

const struct api_route api_audit_routes[] = {
	{ API_GET, "/v1/audit", audit_list, STORE_ROLE_TENANT, NULL },
};
const size_t api_audit_route_count = sizeof api_audit_routes / sizeof api_audit_routes[0];
