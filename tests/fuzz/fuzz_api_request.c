/* fuzz_api_request.c — the admin API's request handling on arbitrary
 * input: the first line is a path routed against the real route tables,
 * the rest a JSON body parsed, checked against a field table and applied
 * as tenant settings (create and update). No crash, no leak, and what is
 * accepted holds what the checks promise. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static const struct api_field fields[] = {
	{ "name", API_JSON_STRING, true, 64 },  { "n", API_JSON_UINT, false, 0 },
	{ "b", API_JSON_BOOL, false, 0 },       { "o", API_JSON_OBJECT, false, 0 },
	{ "a", API_JSON_ARRAY, false, 0 },      { "x", API_JSON_ANY, false, 0 },
};

static void route(const char *path)
{
	const struct api_route *const tables[] = { api_tenant_routes, api_token_routes,
						   api_audit_routes, api_message_routes,
						   api_queue_routes, api_cfgset_routes };
	const size_t counts[] = { api_tenant_route_count, api_token_route_count,
				  api_audit_route_count, api_message_route_count,
				  api_queue_route_count, api_cfgset_route_count };
	struct api_match m;
	unsigned allowed;

	for (int meth = API_GET; meth <= API_DELETE; meth <<= 1) {
		int rc = api_route_find(tables, counts, 6, (enum api_method)meth, path, &m, &allowed);

		if (rc == 0) {
			if (m.route->method != meth)
				abort();
			for (size_t i = 0; i < m.nparams; i++)
				if (!m.params[i].value[0] || strchr(m.params[i].value, '/'))
					abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	size_t plen = nl ? (size_t)(nl - (const char *)data) : 0;
	char path[1024], err[256];
	struct store_tenant t;
	json_t *j;

	if (nl && plen < sizeof path) {
		memcpy(path, data, plen);
		path[plen] = 0;
		if (strlen(path) == plen)
			route(path);
	}
	if (nl) {
		data += plen + 1;
		size -= plen + 1;
	}
	if (api_json_parse((const char *)data, size, &j, err, sizeof err) < 0)
		return 0;
	if (!json_is_object(j))
		abort();
	if (api_json_check(j, fields, sizeof fields / sizeof fields[0], err, sizeof err) == 0) {
		json_t *n = json_object_get(j, "name");

		if (!json_is_string(n) || json_string_length(n) > 64)
			abort();
	}
	memset(&t, 0, sizeof t);
	if (api_tenant_settings(j, true, &t, err, sizeof err) == 0 && !t.name[0] &&
	    json_string_length(json_object_get(j, "name")) > 0)
		abort();
	memset(&t, 0, sizeof t);
	api_tenant_settings(j, false, &t, err, sizeof err);
	json_decref(j);
	return 0;
}
