/*
 * api_reputation.c — suppression lists, VERP decoding and reputation
 * status over the admin API (docs/api.md, docs/reputation.md).
 *
 *   GET    /v1/suppressions?tenant=T&limit=N&after=C   list (T "*" = global)
 *   POST   /v1/suppressions  {"address", "tenant"?, "reason"?}   add
 *   DELETE /v1/suppressions/:address?tenant=T          remove
 *   POST   /v1/suppressions/import  {"csv", "tenant"?, "reason"?}
 *   GET    /v1/suppressions/export?tenant=T            {"csv": "..."}
 *   GET    /v1/verp/decode?address=A                    operators
 *   GET    /v1/reputation/:tenant                       rates, state, recent actions
 *
 * A tenant token sees and changes only its own list (tenant is implied);
 * an operator names the tenant, or "*" (or nothing, when adding) for the
 * global list. Manual changes are audited ("suppression.add" / ".remove");
 * an import is one audit entry with the count.
 */
#include "api.h"
#include "api_dataplane.h"

#include "err.h"
#include "loop.h"
#include "reputation.h"
#include "suppression.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_MAX 100000

/* The list a request is about: a tenant's own, or the operator's choice
 * ("*" or "" = global; NULL = every list, for listing). 0 or an error
 * already answered. */
static int scope_of(struct api_request *req, struct api_response *resp, const char *given,
		    bool all_ok, const char **out)
{
	const struct api_principal *who = api_principal(req);

	if (who->role != STORE_ROLE_OPERATOR) {
		if (given && *given && strcmp(given, who->tenant) != 0) {
			api_error(resp, 404, "not_found", "no tenant \"%s\"", given);
			return -EINVAL;
		}
		*out = who->tenant;
		return 0;
	}
	if (!given)
		*out = all_ok ? NULL : "";
	else
		*out = strcmp(given, "*") == 0 ? "" : given;
	return 0;
}

static json_t *entry_json(const struct suppression_entry *e)
{
	return json_pack("{s:s,s:s,s:s,s:I}", "tenant", e->tenant[0] ? e->tenant : "*", "address",
			 e->address, "reason", suppression_reason_name(e->reason), "added_ms",
			 (json_int_t)e->added_ms);
}

static int suppressions_list(struct api_request *req, struct api_response *resp)
{
	char at[SUPPRESSION_TENANT_MAX + 1] = "", next[SUPPRESSION_TENANT_MAX + SUPPRESSION_ADDR_MAX + 2];
	const char *tenant, *after, *slash, *aa = NULL;
	struct suppression_entry *page;
	json_t *items;
	size_t limit, n;
	bool more;
	int rc;

	if (scope_of(req, resp, api_query(req, "tenant"), true, &tenant) < 0 ||
	    api_page(req, resp, &limit, &after) < 0)
		return 0;
	/* The cursor is "TENANT/ADDRESS" (tenant names hold no '/'). */
	if (after) {
		if (!(slash = strchr(after, '/')) || (size_t)(slash - after) > SUPPRESSION_TENANT_MAX)
			return api_error(resp, 400, "bad_request", "after: not a suppression cursor");
		memcpy(at, after, (size_t)(slash - after));
		at[slash - after] = 0;
		aa = slash + 1;
	}
	if (!(page = calloc(limit, sizeof *page)))
		return -ENOMEM;
	rc = store_suppression_list(api_store(req), tenant, at, aa, page, limit, &n, &more);
	if (rc < 0) {
		free(page);
		return rc;
	}
	items = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(items, entry_json(&page[i]));
	if (more && n)
		snprintf(next, sizeof next, "%s/%s", page[n - 1].tenant, page[n - 1].address);
	free(page);
	return api_reply_list(resp, items, more && n ? next : NULL);
}

static const struct api_field add_fields[] = {
	{ "address", API_JSON_STRING, true, SUPPRESSION_ADDR_MAX },
	{ "tenant", API_JSON_STRING, false, SUPPRESSION_TENANT_MAX },
	{ "reason", API_JSON_STRING, false, 32 },
};

static int reason_of(struct api_response *resp, json_t *body, enum suppression_reason *r)
{
	const char *name = json_string_value(json_object_get(body, "reason"));

	*r = SUPPRESSION_MANUAL;
	if (name && suppression_reason_parse(name, r) < 0) {
		api_error(resp, 400, "bad_request",
			  "reason: one of hard_bounce, complaint, unsubscribe, manual");
		return -EINVAL;
	}
	return 0;
}

static int suppressions_add(struct api_request *req, struct api_response *resp)
{
	const char *tenant;
	enum suppression_reason reason;
	json_t *body;
	int rc;

	if (api_body_object(req, resp, add_fields, 3, &body) < 0)
		return 0;
	if (scope_of(req, resp, json_string_value(json_object_get(body, "tenant")), false,
		     &tenant) < 0 ||
	    reason_of(resp, body, &reason) < 0) {
		json_decref(body);
		return 0;
	}
	rc = store_suppression_add(api_store(req), tenant,
				   json_string_value(json_object_get(body, "address")), reason, 0,
				   api_principal(req)->actor);
	json_decref(body);
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request", "address: not an address (or bad tenant)");
	if (rc < 0)
		return rc;
	return api_reply(resp, rc == 0 ? 201 : 200, json_pack("{s:b}", "added", rc == 0));
}

static int suppressions_remove(struct api_request *req, struct api_response *resp)
{
	const char *tenant;
	int rc;

	if (scope_of(req, resp, api_query(req, "tenant"), false, &tenant) < 0)
		return 0;
	rc = store_suppression_remove(api_store(req), tenant, api_param(req, "address"),
				      api_principal(req)->actor);
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "\"%s\" is not suppressed there",
				 api_param(req, "address"));
	if (rc < 0)
		return rc;
	return api_reply(resp, 200, json_pack("{s:b}", "removed", 1));
}

static const struct api_field import_fields[] = {
	{ "csv", API_JSON_STRING, true, 0 },
	{ "tenant", API_JSON_STRING, false, SUPPRESSION_TENANT_MAX },
	{ "reason", API_JSON_STRING, false, 32 },
};

/* Parse the CSV into a set first (all or nothing on a syntax error), then
 * write its entries (each one commit; an entry already there is kept). */
static int suppressions_import(struct api_request *req, struct api_response *resp)
{
	struct suppression *set = NULL;
	struct store_audit a = { 0 };
	struct sl_buf csv = { 0 };
	const char *tenant, *text, *p;
	enum suppression_reason reason;
	size_t added = 0, stored = 0;
	char err[256];
	json_t *body;
	int rc;

	if (api_body_object(req, resp, import_fields, 3, &body) < 0)
		return 0;
	if (scope_of(req, resp, json_string_value(json_object_get(body, "tenant")), true,
		     &tenant) < 0 ||
	    reason_of(resp, body, &reason) < 0) {
		json_decref(body);
		return 0;
	}
	text = json_string_value(json_object_get(body, "csv"));
	if (!(set = suppression_create(IMPORT_MAX))) {
		json_decref(body);
		return -ENOMEM;
	}
	rc = suppression_import(set, text, strlen(text), "csv", tenant, reason, loop_wall_ms(), &added,
				err, sizeof err);
	json_decref(body);
	if (rc < 0) {
		suppression_free(set);
		if (rc == SL_ECONFIG || rc == -EINVAL)
			return api_error(resp, 400, "bad_request", "%s", err[0] ? err : "bad CSV");
		return rc;
	}
	/* Walk the set through its own export: one line per entry. */
	rc = suppression_export(set, NULL, &csv);
	suppression_free(set);
	for (p = csv.data; rc >= 0 && p && p < csv.data + csv.len;) {
		const char *eol = memchr(p, '\n', (size_t)(csv.data + csv.len - p));
		char line[SUPPRESSION_TENANT_MAX + SUPPRESSION_ADDR_MAX + 64], *f[4], *save = NULL;
		enum suppression_reason r;
		size_t len = eol ? (size_t)(eol - p) : (size_t)(csv.data + csv.len - p);

		if (len && len < sizeof line && strncmp(p, "tenant,", 7) != 0) {
			memcpy(line, p, len);
			line[len] = 0;
			if (line[len - 1] == '\r')
				line[len - 1] = 0;
			/* Export quotes nothing for valid names and addresses. */
			f[0] = line[0] == ',' ? "" : strtok_r(line, ",", &save);
			f[1] = strtok_r(line[0] == ',' ? line + 1 : NULL, ",", &save);
			f[2] = strtok_r(NULL, ",", &save);
			f[3] = strtok_r(NULL, ",", &save);
			if (f[1] && f[2] && f[3] && suppression_reason_parse(f[2], &r) == 0) {
				rc = store_suppression_add(api_store(req), f[0], f[1], r,
							   strtoull(f[3], NULL, 10), NULL);
				if (rc == 0)
					stored++;
			}
		}
		p = eol ? eol + 1 : NULL;
	}
	sl_buf_free(&csv);
	if (rc < 0)
		return rc;
	snprintf(a.actor, sizeof a.actor, "%s", api_principal(req)->actor);
	snprintf(a.action, sizeof a.action, "suppression.import");
	snprintf(a.target, sizeof a.target, "tenant:%s", tenant ? (*tenant ? tenant : "*") : "(each)");
	snprintf(a.details, sizeof a.details, "{\"entries\":%zu,\"added\":%zu}", added, stored);
	store_audit_append(api_store(req), &a);
	return api_reply(resp, 200, json_pack("{s:I,s:I}", "entries", (json_int_t)added, "added",
					      (json_int_t)stored));
}

static int suppressions_export(struct api_request *req, struct api_response *resp)
{
	struct suppression_entry *page;
	struct sl_buf csv = { 0 };
	const char *tenant;
	char at[SUPPRESSION_TENANT_MAX + 1] = "", aa[SUPPRESSION_ADDR_MAX + 1] = "";
	size_t n;
	bool more = true;
	int rc = 0;

	if (scope_of(req, resp, api_query(req, "tenant"), true, &tenant) < 0)
		return 0;
	if (!(page = calloc(1000, sizeof *page)))
		return -ENOMEM;
	sl_buf_appendf(&csv, "tenant,address,reason,added_at_ms\n");
	while (more && rc == 0) {
		rc = store_suppression_list(api_store(req), tenant, at, aa, page, 1000, &n, &more);
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = sl_buf_appendf(&csv, "%s,%s,%s,%llu\n", page[i].tenant, page[i].address,
					    suppression_reason_name(page[i].reason),
					    (unsigned long long)page[i].added_ms);
		if (n) {
			snprintf(at, sizeof at, "%s", page[n - 1].tenant);
			snprintf(aa, sizeof aa, "%s", page[n - 1].address);
		}
		if (!n)
			break;
	}
	free(page);
	if (rc == 0)
		rc = api_reply(resp, 200, json_pack("{s:s%}", "csv", csv.data ? csv.data : "", csv.len));
	sl_buf_free(&csv);
	return rc;
}

static struct reputation *rep_of(struct api_request *req)
{
	struct api_dataplane *dp = api_daemon(req);

	return dp ? dp->rep : NULL;
}

static int verp_decode_route(struct api_request *req, struct api_response *resp)
{
	struct reputation *r = rep_of(req);
	const char *addr = api_query(req, "address");
	char tenant[65], id[17];
	uint64_t qid;
	uint32_t idx;
	uint8_t stream;
	int rc;

	if (!r)
		return api_error(resp, 503, "unavailable", "bounces are not configured");
	if (!addr || !*addr)
		return api_error(resp, 400, "bad_request", "address: required");
	rc = reputation_verp_decode(r, addr, tenant, &qid, &idx, &stream);
	if (rc < 0 && rc != -ESTALE)
		return api_error(resp, 404, "not_found", "not a return path of this appliance: %s",
				 rc == SL_EAUTH ? "the MAC does not verify" : "malformed");
	snprintf(id, sizeof id, "%016llx", (unsigned long long)qid);
	return api_reply(resp, 200,
			 json_pack("{s:s,s:s,s:I,s:s,s:b}", "tenant", tenant, "id", id, "rcpt_index",
				   (json_int_t)idx, "stream",
				   stream == 1 ? "marketing" : "transactional", "stale",
				   rc == -ESTALE));
}

static int reputation_show(struct api_request *req, struct api_response *resp)
{
	struct reputation *r = rep_of(req);
	const char *tenant = api_param(req, "tenant");
	struct store_tenant t;
	struct sl_buf b = { 0 };
	int rc;

	if (!r)
		return api_error(resp, 503, "unavailable", "bounces are not configured");
	if ((rc = store_tenant_get(api_store(req), tenant, &t)) < 0)
		return rc;
	rc = reputation_status_json(r, tenant, &b);
	if (rc == 0 && b.len > 1) {
		/* Splice the lifecycle state into the object. */
		b.len--;
		rc = sl_buf_appendf(&b, ",\"state\":\"%s\"}", tenant_state_name(t.state));
	}
	if (rc == 0)
		rc = api_reply_text(resp, 200, b.data, b.len);
	sl_buf_free(&b);
	return rc;
}

const struct api_route api_reputation_routes[] = {
	{ API_GET, "/v1/suppressions", suppressions_list, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/suppressions", suppressions_add, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/suppressions/import", suppressions_import, STORE_ROLE_TENANT, NULL },
	{ API_GET, "/v1/suppressions/export", suppressions_export, STORE_ROLE_TENANT, NULL },
	{ API_DELETE, "/v1/suppressions/:address", suppressions_remove, STORE_ROLE_TENANT, NULL },
	{ API_GET, "/v1/verp/decode", verp_decode_route, STORE_ROLE_OPERATOR, NULL },
	{ API_GET, "/v1/reputation/:tenant", reputation_show, STORE_ROLE_TENANT, "tenant" },
};
const size_t api_reputation_route_count =
	sizeof api_reputation_routes / sizeof api_reputation_routes[0];
