/*
 * api_cfgsets.c — configuration sets (tenant x sending domain x stream,
 * the unit reputation is tracked on) over the admin API.
 *
 *   GET /v1/tenants/:tenant/cfgsets                    list (?after=DOMAIN:STREAM)
 *   GET /v1/tenants/:tenant/cfgsets/:domain/:stream    show
 *   PUT /v1/tenants/:tenant/cfgsets/:domain/:stream    create or replace
 *       {"pool": P, "dkim_selector": S, "paused": bool}
 *   POST /v1/tenants/:tenant/cfgsets/:domain/:stream/{hold,resume}
 *       {"reason": R}: pause or release the set (a policy hold is released
 *       with resume); audited
 *
 * A paused set's mail is accepted and kept, not delivered, until it is
 * resumed; the data path is told at once (api_notify_tenant).
 */
#include "api.h"

#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stream_names[STORE_STREAMS] = { "transactional", "marketing" };

static int stream_parse(const char *s)
{
	for (int i = 0; i < STORE_STREAMS; i++)
		if (!strcmp(s, stream_names[i]))
			return i;
	return -EINVAL;
}

static json_t *cfgset_json(const struct store_cfgset *c)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:I}", "id", (json_int_t)c->id,
			 "tenant", c->tenant, "domain", c->domain, "stream",
			 c->stream < STORE_STREAMS ? stream_names[c->stream] : "?", "pool", c->pool,
			 "dkim_selector", c->dkim_selector, "paused",
			 (c->flags & STORE_CFGSET_PAUSED) != 0, "created", (json_int_t)c->created_ms,
			 "updated", (json_int_t)c->updated_ms);
}

/* The (domain, stream) of the path; 0 or -EINVAL after a 404. */
static int key_of(struct api_request *req, struct api_response *resp, struct store_cfgset *c)
{
	const char *d = api_param(req, "domain");
	int s = stream_parse(api_param(req, "stream"));

	memset(c, 0, sizeof *c);
	if (s < 0 || strlen(d) > STORE_DOMAIN_MAX) {
		api_error(resp, 404, "not_found", "no such configuration set (streams: transactional, marketing)");
		return -EINVAL;
	}
	snprintf(c->tenant, sizeof c->tenant, "%s", api_param(req, "tenant"));
	snprintf(c->domain, sizeof c->domain, "%s", d);
	c->stream = (uint8_t)s;
	return 0;
}

static int cfgsets_list(struct api_request *req, struct api_response *resp)
{
	struct store_cfgset after = { 0 }, *page;
	const char *cursor, *colon;
	char next[STORE_DOMAIN_MAX + 32];
	size_t limit, n;
	bool more;
	json_t *items;
	int rc;

	if (api_page(req, resp, &limit, &cursor) < 0)
		return 0;
	if (cursor) {
		int s;

		colon = strrchr(cursor, ':');
		if (!colon || (size_t)(colon - cursor) > STORE_DOMAIN_MAX ||
		    (s = stream_parse(colon + 1)) < 0)
			return api_error(resp, 400, "bad_request", "after must be DOMAIN:STREAM");
		memcpy(after.domain, cursor, (size_t)(colon - cursor));
		after.stream = (uint8_t)s;
	}
	page = calloc(limit, sizeof *page);
	if (!page)
		return -ENOMEM;
	rc = store_cfgset_list(api_store(req), api_param(req, "tenant"), cursor ? &after : NULL,
			       page, limit, &n, &more);
	if (rc == SL_ENOTFOUND || rc == -EINVAL) {
		free(page);
		return api_error(resp, 404, "not_found", "no such tenant");
	}
	if (rc < 0) {
		free(page);
		return rc;
	}
	items = json_array();
	for (size_t i = 0; items && i < n; i++)
		json_array_append_new(items, cfgset_json(&page[i]));
	if (more && n)
		snprintf(next, sizeof next, "%s:%s", page[n - 1].domain,
			 stream_names[page[n - 1].stream % STORE_STREAMS]);
	rc = api_reply_list(resp, items, more && n ? next : NULL);
	free(page);
	return rc;
}

static int cfgsets_get(struct api_request *req, struct api_response *resp)
{
	struct store_cfgset k, c;
	int rc;

	if (key_of(req, resp, &k) < 0)
		return 0;
	rc = store_cfgset_get(api_store(req), k.tenant, k.domain, k.stream, &c);
	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no such configuration set");
	if (rc < 0)
		return rc;
	return api_reply(resp, 200, cfgset_json(&c));
}

static const struct api_field put_fields[] = {
	{ "pool", API_JSON_STRING, false, STORE_NAME_MAX },
	{ "dkim_selector", API_JSON_STRING, false, STORE_SELECTOR_MAX },
	{ "paused", API_JSON_BOOL, false, 0 },
};

static int cfgsets_put(struct api_request *req, struct api_response *resp)
{
	struct store_cfgset c;
	json_t *body, *v;
	int rc;

	if (key_of(req, resp, &c) < 0)
		return 0;
	if (api_body_object(req, resp, put_fields, 3, &body) < 0)
		return 0;
	if ((v = json_object_get(body, "pool")))
		snprintf(c.pool, sizeof c.pool, "%s", json_string_value(v));
	if ((v = json_object_get(body, "dkim_selector")))
		snprintf(c.dkim_selector, sizeof c.dkim_selector, "%s", json_string_value(v));
	if (json_is_true(json_object_get(body, "paused")))
		c.flags |= STORE_CFGSET_PAUSED;
	json_decref(body);
	rc = store_cfgset_put(api_store(req), &c, api_principal(req)->actor);
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "no such tenant");
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request",
				 "invalid configuration set (domain [a-z0-9.-], pool name)");
	if (rc < 0)
		return rc;
	api_notify_tenant(req, c.tenant);
	return api_reply(resp, 200, cfgset_json(&c));
}

static const struct api_field action_fields[] = {
	{ "reason", API_JSON_STRING, false, STORE_REASON_MAX },
};

static int cfgsets_action(struct api_request *req, struct api_response *resp, bool paused)
{
	struct store_cfgset k, c;
	json_t *body;
	int rc;

	if (key_of(req, resp, &k) < 0)
		return 0;
	if (api_body_object(req, resp, action_fields, 1, &body) < 0)
		return 0;
	rc = store_cfgset_set_paused(api_store(req), k.tenant, k.domain, k.stream, paused,
				     api_principal(req)->actor,
				     json_string_value(json_object_get(body, "reason")));
	json_decref(body);
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "no such tenant");
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request", "invalid configuration set");
	if (rc == 1)
		return api_error(resp, 409, "conflict", "the configuration set is already %s",
				 paused ? "paused" : "running");
	if (rc < 0)
		return rc;
	api_notify_tenant(req, k.tenant);
	if ((rc = store_cfgset_get(api_store(req), k.tenant, k.domain, k.stream, &c)) < 0)
		return rc;
	return api_reply(resp, 200, cfgset_json(&c));
}

static int cfgsets_hold(struct api_request *req, struct api_response *resp)
{
	return cfgsets_action(req, resp, true);
}

static int cfgsets_resume(struct api_request *req, struct api_response *resp)
{
	return cfgsets_action(req, resp, false);
}

const struct api_route api_cfgset_routes[] = {
	{ API_GET, "/v1/tenants/:tenant/cfgsets", cfgsets_list, STORE_ROLE_TENANT, "tenant" },
	{ API_GET, "/v1/tenants/:tenant/cfgsets/:domain/:stream", cfgsets_get, STORE_ROLE_TENANT,
	  "tenant" },
	{ API_PUT, "/v1/tenants/:tenant/cfgsets/:domain/:stream", cfgsets_put, STORE_ROLE_OPERATOR,
	  "tenant" },
	{ API_POST, "/v1/tenants/:tenant/cfgsets/:domain/:stream/hold", cfgsets_hold,
	  STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/cfgsets/:domain/:stream/resume", cfgsets_resume,
	  STORE_ROLE_OPERATOR, "tenant" },
};
const size_t api_cfgset_route_count = sizeof api_cfgset_routes / sizeof api_cfgset_routes[0];
