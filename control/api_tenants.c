/*
 * api_tenants.c — tenants, their lifecycle and their SMTP AUTH users over
 * the admin API (docs/api.md has every route with examples).
 *
 *   GET    /v1/tenants                         list (a tenant token: itself)
 *   POST   /v1/tenants                         create (pending_review)
 *   GET    /v1/tenants/:tenant                 show
 *   PATCH  /v1/tenants/:tenant                 change settings
 *   POST   /v1/tenants/:tenant/{approve,sandbox,hold,resume,disable}
 *   POST   /v1/tenants/:tenant/users           add an SMTP AUTH user
 *   DELETE /v1/tenants/:tenant/users/:user     remove one
 */
#include "api.h"

#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const stream_names[STORE_STREAMS] = { "transactional", "marketing" };

static int stream_parse(const char *s)
{
	for (int i = 0; i < STORE_STREAMS; i++)
		if (!strcmp(s, stream_names[i]))
			return i;
	return -EINVAL;
}

static json_t *tenant_json(const struct store_tenant *t)
{
	json_t *streams = json_object(), *o;

	if (!streams)
		return NULL;
	for (int i = 0; i < STORE_STREAMS; i++)
		json_object_set_new(streams, stream_names[i],
				    json_pack("{s:s,s:s}", "pool", t->streams[i].pool, "subdomain",
					      t->streams[i].subdomain));
	o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:o}", "name", t->name, "state",
		      tenant_state_name(t->state), "created", (json_int_t)t->created_ms,
		      "updated", (json_int_t)t->updated_ms, "default_stream",
		      t->default_stream < STORE_STREAMS ? stream_names[t->default_stream] : "?",
		      "quota_hour", (json_int_t)t->quota_hour, "quota_day",
		      (json_int_t)t->quota_day, "streams", streams);
	if (o)
		json_object_set_new(o, "hold_until",
				    t->hold_until_ms ? json_integer((json_int_t)t->hold_until_ms)
						     : json_null());
	return o;
}

static int reply_tenant(struct api_response *resp, unsigned status, const struct store_tenant *t)
{
	json_t *o = tenant_json(t);

	return o ? api_reply(resp, status, o) : -ENOMEM;
}

/* --- settings from a body -------------------------------------------------- */

static const struct api_field stream_fields[] = {
	{ "pool", API_JSON_STRING, false, STORE_NAME_MAX },
	{ "subdomain", API_JSON_STRING, false, STORE_DOMAIN_MAX },
};

#define SETTINGS_FIELDS                                                     \
	{ "default_stream", API_JSON_STRING, false, 32 },                   \
	{ "quota_hour", API_JSON_UINT, false, 0 },                          \
	{ "quota_day", API_JSON_UINT, false, 0 },                           \
	{ "streams", API_JSON_OBJECT, false, 0 },                           \
	{ "reason", API_JSON_STRING, false, STORE_REASON_MAX }

static const struct api_field create_fields[] = {
	{ "name", API_JSON_STRING, true, STORE_NAME_MAX },
	SETTINGS_FIELDS,
};

static const struct api_field update_fields[] = { SETTINGS_FIELDS };

int api_tenant_settings(const json_t *body, bool create, struct store_tenant *t, char *err,
			size_t errlen)
{
	json_t *v, *streams;
	int rc;

	rc = create ? api_json_check(body, create_fields, sizeof create_fields / sizeof create_fields[0],
				     err, errlen)
		    : api_json_check(body, update_fields, sizeof update_fields / sizeof update_fields[0],
				     err, errlen);
	if (rc < 0)
		return rc;
	if (create)
		snprintf(t->name, sizeof t->name, "%s",
			 json_string_value(json_object_get(body, "name")));
	if ((v = json_object_get(body, "default_stream"))) {
		int s = stream_parse(json_string_value(v));

		if (s < 0) {
			snprintf(err, errlen,
				 "default_stream must be \"transactional\" or \"marketing\"");
			return -EINVAL;
		}
		t->default_stream = (uint8_t)s;
	}
	if ((v = json_object_get(body, "quota_hour")))
		t->quota_hour = (uint64_t)json_integer_value(v);
	if ((v = json_object_get(body, "quota_day")))
		t->quota_day = (uint64_t)json_integer_value(v);
	streams = json_object_get(body, "streams");
	if (streams) {
		const char *key;
		char sub[200];

		json_object_foreach(streams, key, v) {
			int s = stream_parse(key);

			if (s < 0) {
				snprintf(err, errlen,
					 "streams: unknown stream \"%.64s\" (transactional, marketing)",
					 key);
				return -EINVAL;
			}
			if (api_json_check(v, stream_fields, 2, sub, sizeof sub) < 0) {
				snprintf(err, errlen, "streams.%s: %s", key, sub);
				return -EINVAL;
			}
			json_t *p = json_object_get(v, "pool"), *d = json_object_get(v, "subdomain");

			if (p)
				snprintf(t->streams[s].pool, sizeof t->streams[s].pool, "%s",
					 json_string_value(p));
			if (d)
				snprintf(t->streams[s].subdomain, sizeof t->streams[s].subdomain, "%s",
					 json_string_value(d));
		}
	}
	return 0;
}

/* The request body as a JSON object ({} when empty): 0, or -EINVAL after a 400. */
static int parse_body(struct api_request *req, struct api_response *resp, json_t **out)
{
	size_t len;
	const char *text = api_body(req, &len);
	char err[256];

	if (len == 0) {
		*out = json_object();
		return *out ? 0 : -ENOMEM;
	}
	if (api_json_parse(text, len, out, err, sizeof err) < 0) {
		api_error(resp, 400, "bad_request", "%s", err);
		return -EINVAL;
	}
	return 0;
}

static const char *reason_of(json_t *body)
{
	const char *r = json_string_value(json_object_get(body, "reason"));

	return r ? r : "";
}

/* --- handlers -------------------------------------------------------------- */

static int tenants_list(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	struct store_tenant *page;
	const char *after;
	size_t limit, n;
	bool more;
	json_t *items;
	int rc;

	if (who->role != STORE_ROLE_OPERATOR) {
		struct store_tenant t;

		items = json_array();
		if (!items)
			return -ENOMEM;
		if (store_tenant_get(api_store(req), who->tenant, &t) == 0)
			json_array_append_new(items, tenant_json(&t));
		return api_reply_list(resp, items, NULL);
	}
	if ((rc = api_page(req, resp, &limit, &after)) < 0)
		return 0;
	page = calloc(limit, sizeof *page);
	if (!page)
		return -ENOMEM;
	rc = store_tenant_list(api_store(req), after, page, limit, &n, &more);
	if (rc < 0) {
		free(page);
		return rc;
	}
	items = json_array();
	for (size_t i = 0; items && i < n; i++)
		json_array_append_new(items, tenant_json(&page[i]));
	rc = api_reply_list(resp, items, more && n ? page[n - 1].name : NULL);
	free(page);
	return rc;
}

static int tenants_create(struct api_request *req, struct api_response *resp)
{
	struct store_tenant t = { 0 };
	char err[256];
	json_t *body;
	int rc;

	if (parse_body(req, resp, &body) < 0)
		return 0;
	if (api_tenant_settings(body, true, &t, err, sizeof err) < 0) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "%s", err);
	}
	rc = store_tenant_create(api_store(req), &t, api_principal(req)->actor, reason_of(body));
	json_decref(body);
	if (rc == -EEXIST)
		return api_error(resp, 409, "conflict", "tenant \"%s\" already exists", t.name);
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request",
				 "invalid tenant: names are 1-%d of [A-Za-z0-9._-], pools likewise, "
				 "subdomains [a-z0-9.-]",
				 STORE_NAME_MAX);
	if (rc < 0)
		return rc;
	if ((rc = store_tenant_get(api_store(req), t.name, &t)) < 0)
		return rc;
	api_notify_tenant(req, t.name);
	return reply_tenant(resp, 201, &t);
}

static int tenants_get(struct api_request *req, struct api_response *resp)
{
	struct store_tenant t;
	int rc = store_tenant_get(api_store(req), api_param(req, "tenant"), &t);

	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no such tenant");
	if (rc < 0)
		return rc;
	return reply_tenant(resp, 200, &t);
}

static int tenants_update(struct api_request *req, struct api_response *resp)
{
	struct store_tenant t;
	char err[256];
	json_t *body;
	int rc;

	if (parse_body(req, resp, &body) < 0)
		return 0;
	rc = store_tenant_get(api_store(req), api_param(req, "tenant"), &t);
	if (rc == 0 && api_tenant_settings(body, false, &t, err, sizeof err) < 0) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "%s", err);
	}
	if (rc == 0)
		rc = store_tenant_update(api_store(req), &t, api_principal(req)->actor,
					 reason_of(body));
	json_decref(body);
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "no such tenant");
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request", "invalid settings (pool or subdomain syntax)");
	if (rc < 0)
		return rc;
	if ((rc = store_tenant_get(api_store(req), t.name, &t)) < 0)
		return rc;
	api_notify_tenant(req, t.name);
	return reply_tenant(resp, 200, &t);
}

static const struct api_field action_fields[] = {
	{ "reason", API_JSON_STRING, false, STORE_REASON_MAX },
	{ "grace_seconds", API_JSON_UINT, false, 0 },
};

static int tenant_action(struct api_request *req, struct api_response *resp, enum tenant_event ev)
{
	const char *name = api_param(req, "tenant"), *why = NULL;
	struct store_tenant t;
	uint64_t until = 0;
	json_t *body, *g;
	int rc;

	if (api_body_object(req, resp, action_fields, 2, &body) < 0)
		return 0;
	g = json_object_get(body, "grace_seconds");
	if (g && ev != TENANT_EV_OPERATOR_HOLD) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "grace_seconds applies only to hold");
	}
	if (g) {
		struct timespec ts;
		uint64_t secs = (uint64_t)json_integer_value(g);

		if (secs > 10ull * 365 * 86400) {
			json_decref(body);
			return api_error(resp, 400, "bad_request",
					 "grace_seconds is at most ten years");
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		until = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + secs * 1000;
	}
	rc = store_tenant_set_state(api_store(req), name, ev, until, api_principal(req)->actor,
				    reason_of(body), &t, &why);
	json_decref(body);
	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no such tenant");
	if (rc == -EPERM)
		return api_error(resp, 409, "conflict", "%s", why ? why : "transition refused");
	if (rc < 0)
		return rc;
	api_notify_tenant(req, name);
	return reply_tenant(resp, 200, &t);
}

static int tenant_approve(struct api_request *req, struct api_response *resp)
{
	return tenant_action(req, resp, TENANT_EV_OPERATOR_APPROVE);
}

static int tenant_sandbox(struct api_request *req, struct api_response *resp)
{
	return tenant_action(req, resp, TENANT_EV_OPERATOR_SANDBOX);
}

static int tenant_hold(struct api_request *req, struct api_response *resp)
{
	return tenant_action(req, resp, TENANT_EV_OPERATOR_HOLD);
}

static int tenant_resume(struct api_request *req, struct api_response *resp)
{
	return tenant_action(req, resp, TENANT_EV_OPERATOR_RESUME);
}

static int tenant_disable(struct api_request *req, struct api_response *resp)
{
	return tenant_action(req, resp, TENANT_EV_OPERATOR_DISABLE);
}

static const struct api_field user_fields[] = {
	{ "username", API_JSON_STRING, true, STORE_USER_MAX },
	{ "password", API_JSON_STRING, false, 1024 },
	{ "password_hash", API_JSON_STRING, false, STORE_HASH_MAX },
};

static int users_add(struct api_request *req, struct api_response *resp)
{
	const char *tenant = api_param(req, "tenant"), *user, *pw, *hash;
	json_t *body;
	int rc;

	if (api_body_object(req, resp, user_fields, 3, &body) < 0)
		return 0;
	user = json_string_value(json_object_get(body, "username"));
	pw = json_string_value(json_object_get(body, "password"));
	hash = json_string_value(json_object_get(body, "password_hash"));
	if (!pw == !hash) {
		json_decref(body);
		return api_error(resp, 400, "bad_request",
				 "give exactly one of \"password\" and \"password_hash\"");
	}
	if (pw && !*pw) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "the password must not be empty");
	}
	rc = pw ? store_credential_add(api_store(req), user, tenant, pw, api_principal(req)->actor)
		: store_credential_add_hash(api_store(req), user, tenant, hash,
					    api_principal(req)->actor);
	if (rc == -EEXIST)
		rc = api_error(resp, 409, "conflict", "user \"%s\" already exists", user);
	else if (rc == SL_ENOTFOUND)
		rc = api_error(resp, 404, "not_found", "no such tenant");
	else if (rc == -EINVAL)
		rc = api_error(resp, 400, "bad_request",
			       "invalid username (printable ASCII, no spaces, at most %d bytes) "
			       "or password hash",
			       STORE_USER_MAX);
	else if (rc == 0)
		rc = api_reply(resp, 201, json_pack("{s:s,s:s}", "username", user, "tenant", tenant));
	json_decref(body);
	return rc;
}

static int users_remove(struct api_request *req, struct api_response *resp)
{
	const char *tenant = api_param(req, "tenant"), *user = api_param(req, "user");
	char owner[STORE_NAME_MAX + 1];
	int rc = store_credential_tenant(api_store(req), user, owner);

	if (rc == 0 && strcmp(owner, tenant) != 0)
		rc = SL_ENOTFOUND;
	if (rc == 0)
		rc = store_credential_remove(api_store(req), user, api_principal(req)->actor);
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "tenant %s has no user \"%s\"", tenant, user);
	if (rc < 0)
		return rc;
	return api_reply(resp, 204, NULL);
}

const struct api_route api_tenant_routes[] = {
	{ API_GET, "/v1/tenants", tenants_list, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/tenants", tenants_create, STORE_ROLE_OPERATOR, NULL },
	{ API_GET, "/v1/tenants/:tenant", tenants_get, STORE_ROLE_TENANT, "tenant" },
	{ API_PATCH, "/v1/tenants/:tenant", tenants_update, STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/approve", tenant_approve, STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/sandbox", tenant_sandbox, STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/hold", tenant_hold, STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/resume", tenant_resume, STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/disable", tenant_disable, STORE_ROLE_OPERATOR, "tenant" },
	{ API_POST, "/v1/tenants/:tenant/users", users_add, STORE_ROLE_OPERATOR, "tenant" },
	{ API_DELETE, "/v1/tenants/:tenant/users/:user", users_remove, STORE_ROLE_OPERATOR,
	  "tenant" },
};
const size_t api_tenant_route_count = sizeof api_tenant_routes / sizeof api_tenant_routes[0];
