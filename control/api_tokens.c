/*
 * api_tokens.c — API tokens over the admin API.
 *
 *   GET    /v1/tokens        list ids (?tenant=T; a tenant token: its own)
 *   POST   /v1/tokens        mint one: {"role": "operator"|"tenant", "tenant": T}
 *   DELETE /v1/tokens/:id    revoke
 *
 * A tenant token may list, mint and revoke only its own tenant's tenant
 * tokens. The token text is in the POST reply once and never again.
 */
#include "api.h"

#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *role_name(enum store_role r)
{
	return r == STORE_ROLE_OPERATOR ? "operator" : "tenant";
}

static json_t *token_json(const struct store_token_info *t)
{
	return json_pack("{s:s,s:s,s:s?,s:I}", "id", t->id, "role", role_name(t->role), "tenant",
			 t->tenant[0] ? t->tenant : NULL, "created", (json_int_t)t->created_ms);
}

static int tokens_list(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	const char *tenant = api_query(req, "tenant"), *after;
	struct store_token_info *page;
	size_t limit, n;
	bool more;
	json_t *items;
	int rc;

	if (api_page(req, resp, &limit, &after) < 0)
		return 0;
	if (who->role != STORE_ROLE_OPERATOR) {
		if (tenant && strcmp(tenant, who->tenant) != 0)
			return api_error(resp, 404, "not_found", "no such tenant");
		tenant = who->tenant;
	}
	page = calloc(limit, sizeof *page);
	if (!page)
		return -ENOMEM;
	rc = store_token_list(api_store(req), tenant, after, page, limit, &n, &more);
	if (rc == -EINVAL) {
		free(page);
		return api_error(resp, 400, "bad_request", "after must be a token id");
	}
	if (rc < 0) {
		free(page);
		return rc;
	}
	items = json_array();
	for (size_t i = 0; items && i < n; i++)
		json_array_append_new(items, token_json(&page[i]));
	rc = api_reply_list(resp, items, more && n ? page[n - 1].id : NULL);
	free(page);
	return rc;
}

static const struct api_field create_fields[] = {
	{ "role", API_JSON_STRING, true, 16 },
	{ "tenant", API_JSON_STRING, false, STORE_NAME_MAX },
};

static int tokens_create(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	char tok[STORE_TOKEN_SIZE], id[STORE_TOKEN_ID_SIZE];
	struct store_tenant t;
	enum store_role role;
	const char *rs, *tenant;
	json_t *body;
	int rc;

	if (api_body_object(req, resp, create_fields, 2, &body) < 0)
		return 0;
	rs = json_string_value(json_object_get(body, "role"));
	tenant = json_string_value(json_object_get(body, "tenant"));
	if (!strcmp(rs, "operator")) {
		role = STORE_ROLE_OPERATOR;
	} else if (!strcmp(rs, "tenant")) {
		role = STORE_ROLE_TENANT;
	} else {
		rc = api_error(resp, 400, "bad_request", "role must be \"operator\" or \"tenant\"");
		goto out;
	}
	if (who->role != STORE_ROLE_OPERATOR) {
		if (role == STORE_ROLE_OPERATOR) {
			rc = api_error(resp, 403, "forbidden", "this needs an operator token");
			goto out;
		}
		if (tenant && strcmp(tenant, who->tenant) != 0) {
			rc = api_error(resp, 404, "not_found", "no such tenant");
			goto out;
		}
		tenant = who->tenant;
	}
	if (role == STORE_ROLE_TENANT && !tenant) {
		rc = api_error(resp, 400, "bad_request", "a tenant token needs \"tenant\"");
		goto out;
	}
	if (role == STORE_ROLE_OPERATOR && tenant) {
		rc = api_error(resp, 400, "bad_request", "an operator token has no tenant");
		goto out;
	}
	if (tenant && store_tenant_get(api_store(req), tenant, &t) < 0) {
		rc = api_error(resp, 404, "not_found", "no such tenant");
		goto out;
	}
	rc = store_token_create(api_store(req), tenant, role, who->actor, tok, id);
	if (rc == 0)
		rc = api_reply(resp, 201,
			       json_pack("{s:s,s:s,s:s,s:s?}", "token", tok, "id", id, "role", rs,
					 "tenant", tenant));
	memset(tok, 0, sizeof tok);
out:
	json_decref(body);
	return rc;
}

static int tokens_revoke(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	const char *id = api_param(req, "id");
	int rc;

	if (who->role != STORE_ROLE_OPERATOR) {
		/* Only its own tenant's: look the id up among them. */
		struct store_token_info page[64];
		char after[STORE_TOKEN_ID_SIZE] = "";
		bool more = true, mine = false;
		size_t n;

		while (more && !mine) {
			rc = store_token_list(api_store(req), who->tenant, after, page, 64, &n, &more);
			if (rc < 0)
				return rc;
			for (size_t i = 0; i < n; i++)
				mine |= !strcmp(page[i].id, id);
			if (n)
				memcpy(after, page[n - 1].id, sizeof after);
		}
		if (!mine)
			return api_error(resp, 404, "not_found", "no token %s", id);
	}
	rc = store_token_revoke(api_store(req), id, who->actor);
	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no token %s", id);
	if (rc < 0)
		return rc;
	return api_reply(resp, 204, NULL);
}

const struct api_route api_token_routes[] = {
	{ API_GET, "/v1/tokens", tokens_list, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/tokens", tokens_create, STORE_ROLE_TENANT, NULL },
	{ API_DELETE, "/v1/tokens/:id", tokens_revoke, STORE_ROLE_TENANT, NULL },
};
const size_t api_token_route_count = sizeof api_token_routes / sizeof api_token_routes[0];
