/* test_api.c — the admin API's pure parts: path matching and routing
 * (404/405), JSON parsing and validation, tenant bodies; the tenant view
 * and grace expiry against a real store; token listing. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "api_grace.h"
#include "err.h"
#include "store.h"
#include "tenant_view.h"

/* --- routing --------------------------------------------------------------- */

static void test_route_match(void **state)
{
	struct api_match m;

	(void)state;
	assert_true(api_route_match("/v1/tenants", "/v1/tenants", &m));
	assert_int_equal(m.nparams, 0);
	assert_false(api_route_match("/v1/tenants", "/v1/tenants/", &m));
	assert_false(api_route_match("/v1/tenants", "/v1/tenant", &m));
	assert_false(api_route_match("/v1/tenants", "/v1/tenantsx", &m));
	assert_false(api_route_match("/v1/tenants", "/v1", &m));
	assert_false(api_route_match("/v1/tenants", "", &m));
	assert_false(api_route_match("/v1/tenants", "v1/tenants", &m));

	assert_true(api_route_match("/v1/tenants/:tenant/users/:user",
				    "/v1/tenants/acme/users/bob@acme.test", &m));
	assert_int_equal(m.nparams, 2);
	assert_int_equal(m.params[0].name_len, 6);
	assert_memory_equal(m.params[0].name, "tenant", 6);
	assert_string_equal(m.params[0].value, "acme");
	assert_string_equal(m.params[1].value, "bob@acme.test");
	/* an empty segment never fills a parameter */
	assert_false(api_route_match("/v1/tenants/:tenant", "/v1/tenants/", &m));
	assert_false(api_route_match("/v1/tenants/:tenant", "/v1/tenants//", &m));
	assert_false(api_route_match("/v1/tenants/:tenant", "/v1/tenants/a/b", &m));

	char longp[400] = "/v1/tenants/";
	memset(longp + 12, 'a', 300);
	longp[312] = 0;
	assert_false(api_route_match("/v1/tenants/:tenant", longp, &m));
}

static int h_dummy(struct api_request *req, struct api_response *resp)
{
	(void)req;
	(void)resp;
	return 0;
}

static const struct api_route t1[] = {
	{ API_GET, "/v1/tenants", h_dummy, STORE_ROLE_TENANT, NULL },
	{ API_POST, "/v1/tenants", h_dummy, STORE_ROLE_OPERATOR, NULL },
	{ API_GET, "/v1/tenants/:tenant", h_dummy, STORE_ROLE_TENANT, "tenant" },
};
static const struct api_route t2[] = {
	{ API_DELETE, "/v1/tenants/:tenant", h_dummy, STORE_ROLE_OPERATOR, "tenant" },
	{ API_GET, "/v1/audit", h_dummy, STORE_ROLE_TENANT, NULL },
};

static void test_route_find(void **state)
{
	const struct api_route *const tables[] = { t1, t2 };
	const size_t counts[] = { 3, 2 };
	struct api_match m;
	unsigned allowed;

	(void)state;
	assert_int_equal(api_route_find(tables, counts, 2, API_POST, "/v1/tenants", &m, &allowed), 0);
	assert_ptr_equal(m.route, &t1[1]);
	assert_int_equal(api_route_find(tables, counts, 2, API_DELETE, "/v1/tenants/x", &m,
					&allowed), 0);
	assert_ptr_equal(m.route, &t2[0]);
	assert_string_equal(m.params[0].value, "x");
	assert_int_equal(api_route_find(tables, counts, 2, API_PUT, "/v1/tenants/x", &m, &allowed),
			 -EPERM);
	assert_int_equal(allowed, API_GET | API_DELETE);
	assert_int_equal(api_route_find(tables, counts, 2, API_GET, "/v1/nope", &m, &allowed),
			 SL_ENOTFOUND);
	assert_int_equal(api_method_parse("PATCH"), API_PATCH);
	assert_int_equal(api_method_parse("patch"), 0);
	assert_int_equal(api_method_parse("TRACE"), 0);
	assert_string_equal(api_method_name(API_DELETE), "DELETE");
}

/* --- JSON ------------------------------------------------------------------ */

static const struct api_field fields[] = {
	{ "name", API_JSON_STRING, true, 8 },
	{ "n", API_JSON_UINT, false, 0 },
	{ "on", API_JSON_BOOL, false, 0 },
	{ "o", API_JSON_OBJECT, false, 0 },
	{ "a", API_JSON_ARRAY, false, 0 },
};

static int check(const char *text, char *err)
{
	json_t *j;
	int rc = api_json_parse(text, strlen(text), &j, err, 256);

	if (rc < 0)
		return rc;
	rc = api_json_check(j, fields, 5, err, 256);
	json_decref(j);
	return rc;
}

static void test_json_validation(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(check("{\"name\":\"x\",\"n\":3,\"on\":true,\"o\":{},\"a\":[]}", err), 0);
	assert_int_equal(check("{\"name\":\"x\"", err), -EINVAL);
	assert_non_null(strstr(err, "invalid JSON"));
	assert_int_equal(check("[]", err), -EINVAL);
	assert_non_null(strstr(err, "object"));
	assert_int_equal(check("\"x\"", err), -EINVAL);
	assert_int_equal(check("{\"name\":\"x\",\"name\":\"y\"}", err), -EINVAL);
	assert_int_equal(check("{\"name\":\"x\",\"extra\":1}", err), -EINVAL);
	assert_string_equal(err, "unknown field \"extra\"");
	assert_int_equal(check("{\"n\":1}", err), -EINVAL);
	assert_string_equal(err, "missing field \"name\"");
	assert_int_equal(check("{\"name\":5}", err), -EINVAL);
	assert_non_null(strstr(err, "\"name\" must be a string"));
	assert_int_equal(check("{\"name\":\"123456789\"}", err), -EINVAL);
	assert_non_null(strstr(err, "at most 8 bytes"));
	assert_int_equal(check("{\"name\":\"a\\u0000b\"}", err), -EINVAL); /* NUL refused */
	assert_int_equal(check("{\"name\":\"x\",\"n\":-1}", err), -EINVAL);
	assert_non_null(strstr(err, "non-negative integer"));
	assert_int_equal(check("{\"name\":\"x\",\"n\":1.5}", err), -EINVAL);
	assert_int_equal(check("{\"name\":\"x\",\"n\":\"1\"}", err), -EINVAL);
	assert_int_equal(check("{\"name\":\"x\",\"on\":1}", err), -EINVAL);
	assert_non_null(strstr(err, "true or false"));
	assert_int_equal(check("{\"name\":\"x\",\"o\":[]}", err), -EINVAL);
	assert_int_equal(check("{\"name\":\"x\",\"a\":{}}", err), -EINVAL);
	assert_int_equal(check("{\"name\":\"x\",\"n\":99999999999999999999999}", err), -EINVAL);
}

static int settings(const char *text, bool create, struct store_tenant *t, char *err)
{
	json_t *j;
	int rc = api_json_parse(text, strlen(text), &j, err, 256);

	if (rc < 0)
		return rc;
	memset(t, 0, sizeof *t);
	rc = api_tenant_settings(j, create, t, err, 256);
	json_decref(j);
	return rc;
}

static void test_tenant_settings(void **state)
{
	struct store_tenant t;
	char err[256];

	(void)state;
	assert_int_equal(settings("{\"name\":\"acme\",\"default_stream\":\"marketing\","
				  "\"quota_day\":500,\"streams\":{\"marketing\":{\"pool\":\"bulk\","
				  "\"subdomain\":\"mkt.acme.test\"}}}",
				  true, &t, err), 0);
	assert_string_equal(t.name, "acme");
	assert_int_equal(t.default_stream, 1);
	assert_int_equal(t.quota_day, 500);
	assert_string_equal(t.streams[1].pool, "bulk");
	assert_string_equal(t.streams[1].subdomain, "mkt.acme.test");
	assert_int_equal(settings("{}", true, &t, err), -EINVAL);
	assert_int_equal(settings("{\"name\":\"x\"}", false, &t, err), -EINVAL); /* no rename */
	assert_int_equal(settings("{\"default_stream\":\"bulk\"}", false, &t, err), -EINVAL);
	assert_non_null(strstr(err, "default_stream"));
	assert_int_equal(settings("{\"streams\":{\"bulk\":{}}}", false, &t, err), -EINVAL);
	assert_non_null(strstr(err, "bulk"));
	assert_int_equal(settings("{\"streams\":{\"marketing\":{\"ip\":1}}}", false, &t, err),
			 -EINVAL);
	assert_string_equal(err, "streams.marketing: unknown field \"ip\"");
	assert_int_equal(settings("{\"streams\":{\"marketing\":5}}", false, &t, err), -EINVAL);
}

/* --- against a store -------------------------------------------------------- */

struct fx {
	char dir[64];
	struct store *st;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	strcpy(f->dir, "/tmp/test_api.XXXXXX");
	if (!mkdtemp(f->dir) || store_open(f->dir, 0, false, &f->st) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void mk(struct store *st, const char *name, enum tenant_event ev)
{
	struct store_tenant t = { 0 };

	snprintf(t.name, sizeof t.name, "%s", name);
	snprintf(t.streams[1].pool, sizeof t.streams[1].pool, "bulk");
	assert_int_equal(store_tenant_create(st, &t, "test", ""), 0);
	if ((int)ev >= 0)
		assert_int_equal(store_tenant_set_state(st, name, ev, 0, "test", "", NULL, NULL), 0);
}

static void test_tenant_view(void **state)
{
	struct fx *f = *state;
	const struct tenant_view_entry *e;
	struct tenant_view *v;

	mk(f->st, "zeta", -1);
	mk(f->st, "alpha", TENANT_EV_OPERATOR_APPROVE);
	mk(f->st, "mid", TENANT_EV_OPERATOR_DISABLE);
	assert_int_equal(tenant_view_load(f->st, &v), 0);
	assert_int_equal(tenant_view_count(v), 3);
	e = tenant_view_find(v, "alpha");
	assert_non_null(e);
	assert_int_equal(e->state, TENANT_ACTIVE);
	assert_string_equal(e->pool[1], "bulk");
	assert_null(tenant_view_find(v, "beta"));
	assert_null(tenant_view_find(NULL, "alpha"));
	assert_true(tenant_view_may_deliver(v, "alpha"));
	assert_false(tenant_view_may_deliver(v, "zeta"));
	assert_false(tenant_view_may_deliver(v, "mid"));
	assert_true(tenant_view_may_deliver(v, "unknown")); /* not managed: as before */
	assert_null(tenant_view_inject_refusal(v, "alpha"));
	assert_int_equal(tenant_view_inject_refusal(v, "zeta")->smtp_code, 550);
	assert_non_null(strstr(tenant_view_inject_refusal(v, "zeta")->text, "review"));
	assert_non_null(tenant_view_inject_refusal(v, "mid"));
	assert_false(tenant_view_cfgset_held(v, "alpha", "news.alpha.test", 1));
	tenant_view_free(v);

	/* A paused configuration set holds that set's mail only. */
	mk(f->st, "beta", TENANT_EV_OPERATOR_APPROVE);
	assert_int_equal(store_cfgset_set_paused(f->st, "alpha", "News.Alpha.test", 1, true, "policy",
						 "bounce_rate 12%"),
			 0);
	assert_int_equal(store_cfgset_set_paused(f->st, "alpha", "news.alpha.test", 1, true, "policy",
						 "again"),
			 1);
	assert_int_equal(store_cfgset_set_paused(f->st, "beta", "b.test", 0, true, "op:x", "r"), 0);
	assert_int_equal(store_cfgset_set_paused(f->st, "nope", "b.test", 0, true, "op:x", "r"),
			 SL_ENOTFOUND);
	assert_int_equal(tenant_view_load(f->st, &v), 0);
	assert_true(tenant_view_cfgset_held(v, "alpha", "NEWS.alpha.test", 1));
	assert_false(tenant_view_cfgset_held(v, "alpha", "news.alpha.test", 0));
	assert_false(tenant_view_cfgset_held(v, "alpha", "other.alpha.test", 1));
	assert_true(tenant_view_cfgset_held(v, "beta", "b.test", 0));
	assert_false(tenant_view_msg_may_deliver(v, "alpha", "x@news.alpha.test", 1));
	assert_true(tenant_view_msg_may_deliver(v, "alpha", "x@news.alpha.test", 0));
	assert_true(tenant_view_msg_may_deliver(v, "alpha", "", 1));
	assert_false(tenant_view_msg_may_deliver(v, "zeta", "x@z.test", 0));
	tenant_view_free(v);
	assert_int_equal(store_cfgset_set_paused(f->st, "alpha", "news.alpha.test", 1, false, "op:x",
						 "list cleaned"),
			 0);
	assert_int_equal(tenant_view_load(f->st, &v), 0);
	assert_false(tenant_view_cfgset_held(v, "alpha", "news.alpha.test", 1));
	assert_true(tenant_view_cfgset_held(v, "beta", "b.test", 0));
	tenant_view_free(v);
	{
		struct store_audit a[64];
		size_t n;
		bool more;
		int holds = 0, resumes = 0;

		assert_int_equal(store_audit_list(f->st, 0, "tenant:alpha", a, 64, &n, &more), 0);
		for (size_t i = 0; i < n; i++) {
			holds += !strcmp(a[i].action, "cfgset.hold") &&
				 !strcmp(a[i].reason, "bounce_rate 12%") &&
				 strstr(a[i].details, "news.alpha.test");
			resumes += !strcmp(a[i].action, "cfgset.resume");
		}
		assert_int_equal(holds, 1);
		assert_int_equal(resumes, 1);
	}
}

static int changed_n;
static void on_changed(void *d, const char *t)
{
	(void)d;
	(void)t;
	changed_n++;
}

static void test_grace_sweep(void **state)
{
	struct fx *f = *state;
	struct store_tenant t;
	struct store_audit a[16];
	size_t n;
	bool more;

	mk(f->st, "held", TENANT_EV_OPERATOR_APPROVE);
	mk(f->st, "forever", TENANT_EV_OPERATOR_APPROVE);
	assert_int_equal(store_tenant_set_state(f->st, "held", TENANT_EV_OPERATOR_HOLD, 5000, "op",
						"", NULL, NULL), 0);
	assert_int_equal(store_tenant_set_state(f->st, "forever", TENANT_EV_OPERATOR_HOLD, 0, "op",
						"", NULL, NULL), 0);
	changed_n = 0;
	assert_int_equal(api_grace_sweep(f->st, 4999, NULL, on_changed), 0);
	assert_int_equal(api_grace_sweep(f->st, 5000, NULL, on_changed), 1);
	assert_int_equal(changed_n, 1);
	assert_int_equal(store_tenant_get(f->st, "held", &t), 0);
	assert_int_equal(t.state, TENANT_DISABLED);
	assert_int_equal(store_tenant_get(f->st, "forever", &t), 0);
	assert_int_equal(t.state, TENANT_ON_HOLD);
	assert_int_equal(api_grace_sweep(f->st, UINT64_MAX, NULL, on_changed), 0);
	assert_int_equal(store_audit_list(f->st, 0, "tenant:held", a, 16, &n, &more), 0);
	assert_string_equal(a[n - 1].actor, "policy");
	assert_non_null(strstr(a[n - 1].reason, "grace"));
}

static void test_token_list(void **state)
{
	struct fx *f = *state;
	char tok[STORE_TOKEN_SIZE], id[4][STORE_TOKEN_ID_SIZE], owner[STORE_NAME_MAX + 1];
	struct store_token_info out[8];
	size_t n, seen = 0;
	bool more;

	mk(f->st, "acme", -1);
	assert_int_equal(store_token_create(f->st, NULL, STORE_ROLE_OPERATOR, "t", tok, id[0]), 0);
	for (int i = 1; i < 4; i++)
		assert_int_equal(store_token_create(f->st, "acme", STORE_ROLE_TENANT, "t", tok, id[i]),
				 0);
	assert_int_equal(store_token_list(f->st, NULL, NULL, out, 8, &n, &more), 0);
	assert_int_equal(n, 4);
	assert_false(more);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(out[i - 1].id, out[i].id) < 0);
	assert_int_equal(store_token_list(f->st, "", NULL, out, 8, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].id, id[0]);
	assert_int_equal(out[0].role, STORE_ROLE_OPERATOR);
	/* pages of one tenant's tokens */
	char after[STORE_TOKEN_ID_SIZE] = "";
	do {
		assert_int_equal(store_token_list(f->st, "acme", after, out, 2, &n, &more), 0);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(out[i].tenant, "acme");
		seen += n;
		if (n)
			memcpy(after, out[n - 1].id, sizeof after);
	} while (more);
	assert_int_equal(seen, 3);
	assert_int_equal(store_token_list(f->st, NULL, "zz", out, 2, &n, &more), -EINVAL);
	/* credential owner */
	assert_int_equal(store_credential_add(f->st, "bob", "acme", "pw", "t"), 0);
	assert_int_equal(store_credential_tenant(f->st, "bob", owner), 0);
	assert_string_equal(owner, "acme");
	assert_int_equal(store_credential_tenant(f->st, "carol", owner), SL_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_match),
		cmocka_unit_test(test_route_find),
		cmocka_unit_test(test_json_validation),
		cmocka_unit_test(test_tenant_settings),
		cmocka_unit_test_setup_teardown(test_tenant_view, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grace_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
