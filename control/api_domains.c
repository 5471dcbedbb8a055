/*
 * api_domains.c — sending domains over the admin API (docs/domains.md).
 *
 *   GET    /v1/domains                 list (?tenant=T for an operator; a
 *                                      tenant token sees its own)
 *   POST   /v1/domains                 register {"domain", "stream",
 *                                      "selector"?, "tenant"? (operator)}
 *   GET    /v1/domains/:domain         show, with the records to publish
 *   POST   /v1/domains/:domain/verify  check the records in DNS now
 *   DELETE /v1/domains/:domain         unregister
 *
 * A tenant token sees only its own domains (another tenant's is 404). The
 * DNS check blocks the handler's thread (a private libunbound context,
 * dns_sync.h), never the data-plane loop.
 */
#include "api.h"
#include "api_dataplane.h"
#include "dns_sync.h"
#include "domains.h"

#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static uint64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static const struct domains_env *env_of(struct api_request *req)
{
	const struct api_dataplane *dp = api_daemon(req);

	return dp ? dp->domains : NULL;
}

/* The tenant a request acts for: a tenant token's own; an operator's from
 * want (body or query; may be NULL = any). */
static const char *acting_tenant(struct api_request *req, const char *want)
{
	const struct api_principal *who = api_principal(req);

	return who->role == STORE_ROLE_OPERATOR ? want : who->tenant;
}

static int reply_domain(struct api_request *req, struct api_response *resp, unsigned status,
			const struct domain *d)
{
	json_t *o = domains_json(d, env_of(req));

	return o ? api_reply(resp, status, o) : -ENOMEM;
}

static int domains_list_h(struct api_request *req, struct api_response *resp)
{
	const char *tenant = acting_tenant(req, api_query(req, "tenant")), *after;
	struct domain *all;
	size_t limit, n, cap = 0, shown = 0, i = 0;
	json_t *items;
	int rc;

	if (api_page(req, resp, &limit, &after) < 0)
		return 0;
	if ((rc = domains_list(api_store(req), tenant, NULL, 0, &cap)) < 0)
		return rc == -EINVAL ? api_error(resp, 404, "not_found", "no such tenant") : rc;
	if (!(all = calloc(cap ? cap : 1, sizeof *all)))
		return -ENOMEM;
	if ((rc = domains_list(api_store(req), tenant, all, cap, &n)) < 0) {
		free(all);
		return rc;
	}
	if (n > cap)
		n = cap;
	if (after)
		while (i < n && strcmp(all[i].domain, after) <= 0 && !tenant)
			i++;
	if (after && tenant)
		while (i < n && strcmp(all[i].domain, after) <= 0)
			i++;
	items = json_array();
	for (; items && i < n && shown < limit; i++, shown++)
		json_array_append_new(items, domains_json(&all[i], NULL));
	rc = api_reply_list(resp, items, i < n && shown ? all[i - 1].domain : NULL);
	free(all);
	return rc;
}

static const struct api_field add_fields[] = {
	{ "domain", API_JSON_STRING, true, STORE_DOMAIN_MAX },
	{ "stream", API_JSON_STRING, false, 32 },
	{ "selector", API_JSON_STRING, false, STORE_SELECTOR_MAX },
	{ "tenant", API_JSON_STRING, false, STORE_NAME_MAX },
};

static int domains_add_h(struct api_request *req, struct api_response *resp)
{
	const char *tenant, *stream;
	struct domain d;
	json_t *body;
	uint8_t s = 0;
	int rc;

	if (api_body_object(req, resp, add_fields, 4, &body) < 0)
		return 0;
	tenant = acting_tenant(req, json_string_value(json_object_get(body, "tenant")));
	stream = json_string_value(json_object_get(body, "stream"));
	if (!tenant || !*tenant) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "tenant: an operator names the tenant");
	}
	if (stream && !strcmp(stream, "marketing"))
		s = 1;
	else if (stream && strcmp(stream, "transactional")) {
		json_decref(body);
		return api_error(resp, 400, "bad_request",
				 "stream: transactional or marketing");
	}
	rc = domains_add(api_store(req), tenant, json_string_value(json_object_get(body, "domain")),
			 s, json_string_value(json_object_get(body, "selector")),
			 api_principal(req)->actor, &d);
	json_decref(body);
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "no tenant \"%s\"", tenant);
	if (rc == -EEXIST)
		return api_error(resp, 409, "conflict", "the domain is already registered");
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request",
				 "domain: a DNS name [a-z0-9.-] with a dot; selector [A-Za-z0-9.-]");
	if (rc < 0)
		return rc;
	return reply_domain(req, resp, 201, &d);
}

static int domains_get_h(struct api_request *req, struct api_response *resp)
{
	struct domain d;
	int rc = domains_get(api_store(req), acting_tenant(req, NULL), api_param(req, "domain"), &d);

	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no such domain");
	if (rc < 0)
		return rc;
	return reply_domain(req, resp, 200, &d);
}

static int domains_verify_h(struct api_request *req, struct api_response *resp)
{
	const struct domains_env *env = env_of(req);
	struct dns_sync *dns;
	struct domain d;
	int rc;

	if (!env)
		return api_error(resp, 503, "unavailable", "sender_auth is not configured");
	if ((rc = domains_get(api_store(req), acting_tenant(req, NULL), api_param(req, "domain"),
			      &d)) < 0)
		return rc == SL_ENOTFOUND || rc == -EINVAL
			       ? api_error(resp, 404, "not_found", "no such domain")
			       : rc;
	if ((rc = dns_sync_create(env->dns_servers, env->dns_local_data, &dns)) < 0)
		return rc;
	rc = domains_verify(api_store(req), env, dns, d.tenant, d.domain,
			    api_principal(req)->actor, now_ms(), &d);
	dns_sync_destroy(dns);
	if (rc == -EIO)
		return api_error(resp, 503, "unavailable", "DNS lookups failed; try again");
	if (rc < 0)
		return rc;
	api_notify_tenant(req, d.tenant);
	return reply_domain(req, resp, 200, &d);
}

static int domains_remove_h(struct api_request *req, struct api_response *resp)
{
	struct domain d;
	int rc = domains_get(api_store(req), acting_tenant(req, NULL), api_param(req, "domain"), &d);

	if (rc >= 0)
		rc = domains_remove(api_store(req), d.tenant, d.domain, api_principal(req)->actor);
	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no such domain");
	if (rc < 0)
		return rc;
	api_notify_tenant(req, d.tenant);
	return api_reply(resp, 204, NULL);
}

const struct api_route api_domain_routes[] = {
	{ API_GET, "/v1/domains", domains_list_h, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/domains", domains_add_h, STORE_ROLE_TENANT, NULL },
	{ API_GET, "/v1/domains/:domain", domains_get_h, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/domains/:domain/verify", domains_verify_h, STORE_ROLE_TENANT, NULL },
	{ API_DELETE, "/v1/domains/:domain", domains_remove_h, STORE_ROLE_TENANT, NULL },
};
const size_t api_domain_route_count = sizeof api_domain_routes / sizeof api_domain_routes[0];
