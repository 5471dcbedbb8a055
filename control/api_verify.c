/*
 * api_verify.c — verify-by-email requests over the admin API
 * (docs/domains.md).
 *
 *   POST /v1/verifications             {"address", "tenant"? (operator)}:
 *                                      201 with "write_to", the address the
 *                                      user must send any message to
 *   GET  /v1/verifications/:address    the request and whether it is verified
 *
 * Rate-limited per tenant and per client address (429 rate_limited).
 */
#include "api.h"
#include "api_dataplane.h"
#include "verification.h"

#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static struct verification *verif_of(struct api_request *req)
{
	const struct api_dataplane *dp = api_daemon(req);

	return dp ? dp->verification : NULL;
}

static const struct api_field req_fields[] = {
	{ "address", API_JSON_STRING, true, VERIFICATION_ADDR_MAX },
	{ "tenant", API_JSON_STRING, false, STORE_NAME_MAX },
};

static int verif_create(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	struct verification *v = verif_of(req);
	struct verification_request r;
	struct timeval tv;
	const char *tenant;
	char source[64];
	json_t *body;
	int rc;

	if (!v)
		return api_error(resp, 503, "unavailable",
				 "verify-by-email is off (sender_auth.verification_domain)");
	if (api_body_object(req, resp, req_fields, 2, &body) < 0)
		return 0;
	tenant = who->role == STORE_ROLE_OPERATOR
			 ? json_string_value(json_object_get(body, "tenant"))
			 : who->tenant;
	if (!tenant || !*tenant) {
		json_decref(body);
		return api_error(resp, 400, "bad_request", "tenant: an operator names the tenant");
	}
	if (api_client_ip(req, source, sizeof source) < 0)
		source[0] = 0;
	gettimeofday(&tv, NULL);
	rc = verification_request(v, tenant, json_string_value(json_object_get(body, "address")),
				  *source ? source : NULL,
				  (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000, &r);
	json_decref(body);
	if (rc == -EAGAIN)
		return api_error(resp, 429, "rate_limited",
				 "too many verification requests this hour; try later");
	if (rc == -EINVAL)
		return api_error(resp, 400, "bad_request", "address: one mailbox, local@domain");
	if (rc == SL_ENOTFOUND)
		return api_error(resp, 404, "not_found", "no tenant \"%s\"", tenant);
	if (rc < 0)
		return rc;
	return api_reply(resp, 201, verification_request_json(&r));
}

static int verif_get(struct api_request *req, struct api_response *resp)
{
	const struct api_principal *who = api_principal(req);
	struct verification *v = verif_of(req);
	struct verification_request r;
	const char *tenant = who->role == STORE_ROLE_OPERATOR ? api_query(req, "tenant") : who->tenant;
	int rc;

	if (!v)
		return api_error(resp, 503, "unavailable", "verify-by-email is off");
	if (!tenant || !*tenant)
		return api_error(resp, 400, "bad_request", "tenant: an operator adds ?tenant=NAME");
	rc = verification_get(v, tenant, api_param(req, "address"), &r);
	if (rc == SL_ENOTFOUND || rc == -EINVAL)
		return api_error(resp, 404, "not_found", "no verification request for that address");
	if (rc < 0)
		return rc;
	return api_reply(resp, 200, verification_request_json(&r));
}

const struct api_route api_verify_routes[] = {
	{ API_POST, "/v1/verifications", verif_create, STORE_ROLE_TENANT, NULL },
	{ API_GET, "/v1/verifications/:address", verif_get, STORE_ROLE_TENANT, NULL },
};
const size_t api_verify_route_count = sizeof api_verify_routes / sizeof api_verify_routes[0];
