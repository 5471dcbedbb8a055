/* test_store.c — the control store: tenants, lifecycle with audit,
 * credentials and tokens, configuration sets, audit pagination, format
 * versions, persistence and corrupt records. */
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "err.h"
#include "store.h"

/* --- fixtures ------------------------------------------------------------ */

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

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/sluice-test-store-XXXXXX");
	if (!mkdtemp(f->dir) || store_open(f->dir, 0, false, &f->st) != 0)
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

static void reopen(struct fx *f)
{
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->dir, 0, false, &f->st), 0);
}

static void mk_tenant(struct store *st, const char *name)
{
	struct store_tenant t = { 0 };

	snprintf(t.name, sizeof t.name, "%s", name);
	assert_int_equal(store_tenant_create(st, &t, "operator:test", "signup"), 0);
}

/* Put raw bytes under key in the named database of the store at dir (the
 * store must be closed). */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val,
		    size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, STORE_DEFAULT_MAP_SIZE), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static size_t audit_count(struct store *st, const char *target)
{
	struct store_audit *a = calloc(256, sizeof *a);
	size_t n;
	bool more;

	assert_non_null(a);
	assert_int_equal(store_audit_list(st, 0, target, a, 256, &n, &more), 0);
	assert_false(more);
	free(a);
	return n;
}

/* --- tenants ------------------------------------------------------------- */

static void test_create_get(void **state)
{
	struct fx *f = *state;
	struct store_tenant t = { 0 }, g;

	strcpy(t.name, "acme");
	t.state = TENANT_ACTIVE; /* ignored: new tenants are in review */
	t.default_stream = 1;
	t.quota_hour = 1000;
	t.quota_day = 20000;
	strcpy(t.streams[0].pool, "tx-pool");
	strcpy(t.streams[0].subdomain, "TX.Acme.example");
	strcpy(t.streams[1].pool, "mkt-pool");
	strcpy(t.streams[1].subdomain, "news.acme.example");
	assert_int_equal(store_tenant_create(f->st, &t, "operator:alice", "signup"), 0);

	assert_int_equal(store_tenant_get(f->st, "acme", &g), 0);
	assert_string_equal(g.name, "acme");
	assert_int_equal(g.state, TENANT_PENDING_REVIEW);
	assert_int_equal(g.default_stream, 1);
	assert_int_equal(g.quota_hour, 1000);
	assert_int_equal(g.quota_day, 20000);
	assert_string_equal(g.streams[0].pool, "tx-pool");
	assert_string_equal(g.streams[0].subdomain, "tx.acme.example"); /* lowercased */
	assert_string_equal(g.streams[1].pool, "mkt-pool");
	assert_string_equal(g.streams[1].subdomain, "news.acme.example");
	assert_true(g.created_ms > 0);
	assert_int_equal(g.created_ms, g.updated_ms);
	assert_int_equal(g.hold_until_ms, 0);

	assert_int_equal(store_tenant_get(f->st, "nope", &g), SL_ENOTFOUND);
	assert_int_equal(store_tenant_get(f->st, "bad name", &g), -EINVAL);
	assert_int_equal(audit_count(f->st, "tenant:acme"), 1);
}

static void test_create_invalid(void **state)
{
	struct fx *f = *state;
	struct store_tenant t = { 0 };

	assert_int_equal(store_tenant_create(f->st, &t, "op", "x"), -EINVAL); /* empty name */
	strcpy(t.name, "a/b");
	assert_int_equal(store_tenant_create(f->st, &t, "op", "x"), -EINVAL);
	memset(t.name, 'a', STORE_NAME_MAX);
	t.name[STORE_NAME_MAX] = 0;
	assert_int_equal(store_tenant_create(f->st, &t, "op", "x"), 0); /* 64 is fine */
	strcpy(t.name, "ok");
	t.default_stream = 2;
	assert_int_equal(store_tenant_create(f->st, &t, "op", "x"), -EINVAL);
	t.default_stream = 0;
	strcpy(t.streams[0].pool, "bad pool");
	assert_int_equal(store_tenant_create(f->st, &t, "op", "x"), -EINVAL);
	t.streams[0].pool[0] = 0;
	strcpy(t.streams[1].subdomain, "under_score.example");
	assert_int_equal(store_tenant_create(f->st, &t, "op", "x"), -EINVAL);
	t.streams[1].subdomain[0] = 0;
	assert_int_equal(store_tenant_create(f->st, &t, NULL, "x"), -EINVAL); /* who is required */
	assert_int_equal(store_tenant_create(f->st, &t, "", "x"), -EINVAL);
	assert_int_equal(store_tenant_get(f->st, "ok", &t), SL_ENOTFOUND);
}

static void test_duplicate(void **state)
{
	struct fx *f = *state;
	struct store_tenant t = { 0 };

	mk_tenant(f->st, "dup");
	strcpy(t.name, "dup");
	assert_int_equal(store_tenant_create(f->st, &t, "op", "again"), -EEXIST);
	/* The failed create wrote no audit entry. */
	assert_int_equal(audit_count(f->st, "tenant:dup"), 1);
}

static void test_list_pagination(void **state)
{
	struct fx *f = *state;
	struct store_tenant page[4];
	char cursor[STORE_NAME_MAX + 1] = "", seen[32][STORE_NAME_MAX + 1];
	size_t n, total = 0;
	bool more = true;

	/* Created out of order; listed in name order. */
	for (int i = 9; i >= 0; i--) {
		char name[16];

		snprintf(name, sizeof name, "t%02d", i);
		mk_tenant(f->st, name);
	}
	for (int pages = 0; more; pages++) {
		assert_true(pages < 4);
		assert_int_equal(store_tenant_list(f->st, cursor, page, 4, &n, &more), 0);
		assert_true(n == 4 || !more);
		for (size_t i = 0; i < n; i++)
			strcpy(seen[total++], page[i].name);
		if (n)
			strcpy(cursor, page[n - 1].name);
	}
	assert_int_equal(total, 10);
	for (int i = 0; i < 10; i++) {
		char name[16];

		snprintf(name, sizeof name, "t%02d", i);
		assert_string_equal(seen[i], name);
	}
	/* Exactly a page: no phantom "more". */
	assert_int_equal(store_tenant_list(f->st, "t05", page, 4, &n, &more), 0);
	assert_int_equal(n, 4);
	assert_false(more);
	/* A cursor that is not a tenant name starts after where it would be. */
	assert_int_equal(store_tenant_list(f->st, "t035", page, 1, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_string_equal(page[0].name, "t04");
	assert_true(more);
	/* limit 0 only says whether there is anything. */
	assert_int_equal(store_tenant_list(f->st, NULL, NULL, 0, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_true(more);
	assert_int_equal(store_tenant_list(f->st, "t09", page, 4, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_false(more);
}

static void test_update(void **state)
{
	struct fx *f = *state;
	struct store_tenant t = { 0 }, g;

	mk_tenant(f->st, "upd");
	strcpy(t.name, "upd");
	t.state = TENANT_ACTIVE; /* not settable via update */
	t.quota_day = 5;
	strcpy(t.streams[1].pool, "p2");
	assert_int_equal(store_tenant_update(f->st, &t, "operator:bob", "raise quota"), 0);
	assert_int_equal(store_tenant_get(f->st, "upd", &g), 0);
	assert_int_equal(g.state, TENANT_PENDING_REVIEW);
	assert_int_equal(g.quota_day, 5);
	assert_string_equal(g.streams[1].pool, "p2");
	assert_true(g.updated_ms >= g.created_ms);
	strcpy(t.name, "ghost");
	assert_int_equal(store_tenant_update(f->st, &t, "op", "x"), SL_ENOTFOUND);
	assert_int_equal(audit_count(f->st, "tenant:upd"), 2);
	assert_int_equal(audit_count(f->st, "tenant:ghost"), 0);
}

/* --- lifecycle ----------------------------------------------------------- */

static void test_state_audited(void **state)
{
	struct fx *f = *state;
	struct store_tenant t;
	struct store_audit a[8];
	const char *why;
	size_t n;
	bool more;

	mk_tenant(f->st, "life");
	assert_int_equal(store_tenant_set_state(f->st, "life", TENANT_EV_OPERATOR_APPROVE, 0,
						"operator:alice", "verified identity", &t, &why),
			 0);
	assert_int_equal(t.state, TENANT_ACTIVE);
	assert_int_equal(store_tenant_set_state(f->st, "life", TENANT_EV_POLICY_HOLD, 1234567,
						"policy", "bounce rate 12% > 10%", &t, NULL),
			 0);
	assert_int_equal(t.state, TENANT_ON_HOLD);
	assert_int_equal(t.hold_until_ms, 1234567);
	assert_int_equal(store_tenant_get(f->st, "life", &t), 0);
	assert_int_equal(t.state, TENANT_ON_HOLD);
	assert_int_equal(t.hold_until_ms, 1234567);
	assert_int_equal(store_tenant_set_state(f->st, "life", TENANT_EV_OPERATOR_RESUME, 99,
						"operator:bob", "list cleaned", &t, NULL),
			 0);
	assert_int_equal(t.state, TENANT_ACTIVE);
	assert_int_equal(t.hold_until_ms, 0); /* cleared off hold */

	assert_int_equal(store_audit_list(f->st, 0, "tenant:life", a, 8, &n, &more), 0);
	assert_int_equal(n, 4);
	assert_string_equal(a[0].action, "tenant.create");
	assert_string_equal(a[1].action, "tenant.state");
	assert_string_equal(a[1].actor, "operator:alice");
	assert_string_equal(a[1].reason, "verified identity");
	assert_non_null(strstr(a[1].details, "\"from\":\"pending_review\""));
	assert_non_null(strstr(a[1].details, "\"to\":\"active\""));
	assert_non_null(strstr(a[1].details, "\"event\":\"operator_approve\""));
	assert_string_equal(a[2].actor, "policy");
	assert_non_null(strstr(a[2].details, "\"hold_until\":1234567"));
	assert_string_equal(a[3].reason, "list cleaned");
	for (size_t i = 1; i < n; i++) {
		assert_true(a[i].seq > a[i - 1].seq);
		assert_true(a[i].time_ms >= a[i - 1].time_ms);
	}
	assert_int_equal(store_tenant_get(f->st, "life", &t), 0);
	assert_int_equal(a[3].time_ms, t.updated_ms); /* same transaction, same instant */
}

static void test_invalid_transition(void **state)
{
	struct fx *f = *state;
	struct store_tenant t;
	const char *why = NULL;
	char long_reason[STORE_REASON_MAX + 2];

	mk_tenant(f->st, "inv");
	/* Review: the policy engine cannot act, and resume makes no sense. */
	assert_int_equal(store_tenant_set_state(f->st, "inv", TENANT_EV_POLICY_WARN, 0, "policy",
						"x", NULL, &why),
			 -EPERM);
	assert_non_null(why);
	assert_int_equal(store_tenant_set_state(f->st, "inv", TENANT_EV_OPERATOR_RESUME, 0, "op", "x",
						NULL, &why),
			 -EPERM);
	assert_int_equal(store_tenant_set_state(f->st, "ghost", TENANT_EV_OPERATOR_APPROVE, 0, "op",
						"x", NULL, NULL),
			 SL_ENOTFOUND);
	assert_int_equal(store_tenant_set_state(f->st, "inv", (enum tenant_event)99, 0, "op", "x",
						NULL, NULL),
			 -EINVAL);
	/* An unrecordable reason means no transition either. */
	memset(long_reason, 'r', sizeof long_reason - 1);
	long_reason[sizeof long_reason - 1] = 0;
	assert_int_equal(store_tenant_set_state(f->st, "inv", TENANT_EV_OPERATOR_APPROVE, 0, "op",
						long_reason, NULL, NULL),
			 -EINVAL);
	assert_int_equal(store_tenant_get(f->st, "inv", &t), 0);
	assert_int_equal(t.state, TENANT_PENDING_REVIEW);
	assert_int_equal(audit_count(f->st, "tenant:inv"), 1); /* only the create */

	/* Disabled: grace expiry and policy cannot bring it back. */
	assert_int_equal(store_tenant_set_state(f->st, "inv", TENANT_EV_OPERATOR_DISABLE, 0, "op",
						"fraud", NULL, NULL),
			 0);
	assert_int_equal(store_tenant_set_state(f->st, "inv", TENANT_EV_POLICY_RECOVER, 0, "policy",
						"x", NULL, &why),
			 -EPERM);
	assert_int_equal(store_tenant_get(f->st, "inv", &t), 0);
	assert_int_equal(t.state, TENANT_DISABLED);
	assert_int_equal(audit_count(f->st, "tenant:inv"), 2);
}

/* --- credentials --------------------------------------------------------- */

static void test_credentials(void **state)
{
	struct fx *f = *state;
	char hash[AUTH_HASH_MAX], tenant[STORE_NAME_MAX + 1];

	mk_tenant(f->st, "ta");
	mk_tenant(f->st, "tb");
	assert_int_equal(auth_hash_password("s3cret", AUTH_MIN_ITERATIONS, hash, sizeof hash), 0);
	assert_int_equal(store_credential_add_hash(f->st, "alice@ta", "ta", hash, "operator:x"), 0);
	assert_int_equal(auth_hash_password("other", AUTH_MIN_ITERATIONS, hash, sizeof hash), 0);
	assert_int_equal(store_credential_add_hash(f->st, "bob", "tb", hash, "operator:x"), 0);
	assert_int_equal(store_credential_add_hash(f->st, "bob", "ta", hash, "operator:x"), -EEXIST);
	assert_int_equal(store_credential_add_hash(f->st, "carol", "ghost", hash, "operator:x"),
			 SL_ENOTFOUND);
	assert_int_equal(store_credential_add_hash(f->st, "carol", "ta", "not-a-hash", "operator:x"),
			 -EINVAL);
	assert_int_equal(store_credential_add_hash(f->st, "has space", "ta", hash, "operator:x"),
			 -EINVAL);

	assert_int_equal(store_credential_verify(f->st, "alice@ta", "s3cret", tenant), 0);
	assert_string_equal(tenant, "ta");
	assert_int_equal(store_credential_verify(f->st, "bob", "other", tenant), 0);
	assert_string_equal(tenant, "tb");
	assert_int_equal(store_credential_verify(f->st, "alice@ta", "wrong", tenant), SL_EAUTH);
	assert_string_equal(tenant, "");
	assert_int_equal(store_credential_verify(f->st, "bob", "s3cret", tenant), SL_EAUTH);
	assert_int_equal(store_credential_verify(f->st, "nobody", "s3cret", tenant), SL_EAUTH);

	assert_int_equal(store_credential_remove(f->st, "bob", "operator:x"), 0);
	assert_int_equal(store_credential_verify(f->st, "bob", "other", tenant), SL_EAUTH);
	assert_int_equal(store_credential_remove(f->st, "bob", "operator:x"), SL_ENOTFOUND);
	/* Adds and the removal are audited against the tenant. */
	assert_int_equal(audit_count(f->st, "tenant:tb"), 3);
}

static void test_tokens(void **state)
{
	struct fx *f = *state;
	char ta[STORE_TOKEN_SIZE], tb[STORE_TOKEN_SIZE], op[STORE_TOKEN_SIZE], bad[STORE_TOKEN_SIZE];
	char tenant[STORE_NAME_MAX + 1], ida[STORE_TOKEN_ID_SIZE];
	enum store_role role;
	struct store_audit a[8];
	size_t n;
	bool more;

	mk_tenant(f->st, "ta");
	mk_tenant(f->st, "tb");
	assert_int_equal(store_token_create(f->st, "ta", STORE_ROLE_TENANT, "operator:x", ta, ida), 0);
	assert_int_equal(store_token_create(f->st, "tb", STORE_ROLE_TENANT, "operator:x", tb, NULL), 0);
	assert_int_equal(store_token_create(f->st, NULL, STORE_ROLE_OPERATOR, "bootstrap", op, NULL), 0);
	assert_int_equal(strlen(ta), STORE_TOKEN_LEN);
	assert_memory_equal(ta, STORE_TOKEN_PREFIX, 4);
	assert_string_not_equal(ta, tb);
	assert_int_equal(store_token_create(f->st, "ghost", STORE_ROLE_TENANT, "op", bad, NULL),
			 SL_ENOTFOUND);
	assert_string_equal(bad, ""); /* nothing shown for a token not stored */
	assert_int_equal(store_token_create(f->st, NULL, STORE_ROLE_TENANT, "op", bad, NULL), -EINVAL);
	assert_int_equal(store_token_create(f->st, "ta", (enum store_role)7, "op", bad, NULL), -EINVAL);

	/* Isolation: each tenant token resolves to its own tenant only. */
	assert_int_equal(store_token_lookup(f->st, ta, tenant, &role), 0);
	assert_string_equal(tenant, "ta");
	assert_int_equal(role, STORE_ROLE_TENANT);
	assert_int_equal(store_token_lookup(f->st, tb, tenant, &role), 0);
	assert_string_equal(tenant, "tb");
	assert_int_equal(role, STORE_ROLE_TENANT);
	assert_int_equal(store_token_lookup(f->st, op, tenant, &role), 0);
	assert_string_equal(tenant, "");
	assert_int_equal(role, STORE_ROLE_OPERATOR);

	/* Wrong tokens. */
	strcpy(bad, ta);
	bad[STORE_TOKEN_LEN - 1] = bad[STORE_TOKEN_LEN - 1] == '0' ? '1' : '0';
	assert_int_equal(store_token_lookup(f->st, bad, tenant, &role), SL_EAUTH);
	assert_string_equal(tenant, "");
	assert_int_equal(store_token_lookup(f->st, "", tenant, &role), SL_EAUTH);
	assert_int_equal(store_token_lookup(f->st, "slk_short", tenant, &role), SL_EAUTH);
	bad[STORE_TOKEN_LEN - 1] = 0;
	assert_int_equal(store_token_lookup(f->st, bad, tenant, &role), SL_EAUTH);

	/* The plaintext is nowhere in the audit log; the id is. */
	assert_int_equal(store_audit_list(f->st, 0, "tenant:ta", a, 8, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_string_equal(a[1].action, "token.create");
	assert_null(strstr(a[1].details, ta + 4));
	assert_non_null(strstr(a[1].details, ida));

	/* Revocation. */
	assert_int_equal(store_token_revoke(f->st, ida, "operator:x"), 0);
	assert_int_equal(store_token_lookup(f->st, ta, tenant, &role), SL_EAUTH);
	assert_int_equal(store_token_revoke(f->st, ida, "operator:x"), SL_ENOTFOUND);
	assert_int_equal(store_token_revoke(f->st, "xyz", "operator:x"), -EINVAL);
	assert_int_equal(store_token_lookup(f->st, tb, tenant, &role), 0);
}

/* --- configuration sets -------------------------------------------------- */

static void test_cfgsets(void **state)
{
	struct fx *f = *state;
	struct store_cfgset c = { 0 }, g;
	uint64_t id1;

	mk_tenant(f->st, "cs");
	strcpy(c.tenant, "cs");
	strcpy(c.domain, "Mail.Example.COM");
	c.stream = 1;
	strcpy(c.pool, "warm");
	strcpy(c.dkim_selector, "s1");
	assert_int_equal(store_cfgset_put(f->st, &c, "operator:x"), 0);
	id1 = c.id;
	assert_true(id1 > 0);
	assert_string_equal(c.domain, "mail.example.com");
	c.stream = 0;
	assert_int_equal(store_cfgset_put(f->st, &c, "operator:x"), 0);
	assert_int_not_equal(c.id, id1);

	assert_int_equal(store_cfgset_get(f->st, "cs", "mail.example.com", 1, &g), 0);
	assert_int_equal(g.id, id1);
	assert_string_equal(g.pool, "warm");
	assert_string_equal(g.dkim_selector, "s1");
	assert_int_equal(g.stream, 1);

	/* Update keeps the id. */
	c.stream = 1;
	c.flags = STORE_CFGSET_PAUSED;
	c.pool[0] = 0;
	assert_int_equal(store_cfgset_put(f->st, &c, "operator:x"), 0);
	assert_int_equal(c.id, id1);
	assert_int_equal(store_cfgset_get(f->st, "cs", "MAIL.example.com", 1, &g), 0);
	assert_int_equal(g.id, id1);
	assert_int_equal(g.flags, STORE_CFGSET_PAUSED);
	assert_string_equal(g.pool, "");

	assert_int_equal(store_cfgset_get(f->st, "cs", "other.example", 1, &g), SL_ENOTFOUND);
	strcpy(c.tenant, "ghost");
	assert_int_equal(store_cfgset_put(f->st, &c, "operator:x"), SL_ENOTFOUND);
	strcpy(c.tenant, "cs");
	c.stream = 2;
	assert_int_equal(store_cfgset_put(f->st, &c, "operator:x"), -EINVAL);

	/* Listing: only this tenant's sets, in (domain, stream) order, paged. */
	{
		struct store_tenant other = { 0 };
		struct store_cfgset page[2], oc = { 0 };
		size_t n, total = 0;
		bool more = true;
		const struct store_cfgset *after = NULL;
		struct store_cfgset last;

		strcpy(other.name, "cs2"); /* sorts right after "cs" */
		assert_int_equal(store_tenant_create(f->st, &other, "op", "x"), 0);
		strcpy(oc.tenant, "cs2");
		strcpy(oc.domain, "a.example");
		assert_int_equal(store_cfgset_put(f->st, &oc, "op"), 0);
		strcpy(c.domain, "b.example");
		c.stream = 0;
		assert_int_equal(store_cfgset_put(f->st, &c, "op"), 0);
		while (more) {
			assert_int_equal(store_cfgset_list(f->st, "cs", after, page, 2, &n, &more), 0);
			for (size_t i = 0; i < n; i++) {
				assert_string_equal(page[i].tenant, "cs");
				if (total + i == 0)
					assert_string_equal(page[i].domain, "b.example");
				else
					assert_string_equal(page[i].domain, "mail.example.com");
			}
			total += n;
			if (n) {
				last = page[n - 1];
				after = &last;
			}
		}
		assert_int_equal(total, 3);
		assert_int_equal(last.stream, 1);
		assert_int_equal(store_cfgset_list(f->st, "cs2", NULL, page, 2, &n, &more), 0);
		assert_int_equal(n, 1);
		assert_false(more);
		assert_int_equal(store_cfgset_list(f->st, "nobody", NULL, page, 2, &n, &more), 0);
		assert_int_equal(n, 0);
	}

	/* Ids are never reused, across reopen too. */
	reopen(f);
	strcpy(c.domain, "third.example");
	c.stream = 0;
	assert_int_equal(store_cfgset_put(f->st, &c, "operator:x"), 0);
	assert_true(c.id > id1 + 3);
}

/* --- audit --------------------------------------------------------------- */

static void test_audit_pagination(void **state)
{
	struct fx *f = *state;
	struct store_audit e, page[10];
	uint64_t after = 0, last = 0;
	size_t n, total = 0;
	bool more = true;
	struct sl_buf b = { 0 };

	for (int i = 0; i < 25; i++) {
		memset(&e, 0, sizeof e);
		strcpy(e.actor, "operator:x");
		strcpy(e.action, "queue.purge");
		snprintf(e.target, sizeof e.target, "domain:%s", i % 5 == 0 ? "five.example" : "x.example");
		snprintf(e.reason, sizeof e.reason, "purge %d", i);
		strcpy(e.details, "{\"removed\":3}");
		assert_int_equal(store_audit_append(f->st, &e), 0);
		assert_true(e.seq > last);
		last = e.seq;
	}
	while (more) {
		assert_int_equal(store_audit_list(f->st, after, NULL, page, 10, &n, &more), 0);
		for (size_t i = 0; i < n; i++) {
			char want[32];

			snprintf(want, sizeof want, "purge %zu", total + i);
			assert_string_equal(page[i].reason, want);
		}
		total += n;
		if (n)
			after = page[n - 1].seq;
	}
	assert_int_equal(total, 25);

	/* Filtered by target, in pages of 2: 5 entries -> 2, 2, 1. */
	after = 0;
	total = 0;
	more = true;
	while (more) {
		assert_int_equal(store_audit_list(f->st, after, "domain:five.example", page, 2, &n, &more),
				 0);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(page[i].target, "domain:five.example");
		total += n;
		if (n)
			after = page[n - 1].seq;
	}
	assert_int_equal(total, 5);
	assert_int_equal(store_audit_list(f->st, UINT64_MAX, NULL, page, 10, &n, &more), 0);
	assert_int_equal(n, 0);

	/* Invalid entries are refused. */
	memset(&e, 0, sizeof e);
	strcpy(e.action, "x");
	assert_int_equal(store_audit_append(f->st, &e), -EINVAL); /* no actor */

	assert_int_equal(store_audit_json(&page[0], &b), 0);
	assert_non_null(strstr(sl_buf_head(&b), "\"action\":\"queue.purge\""));
	assert_non_null(strstr(sl_buf_head(&b), "\"details\":\"{\\\"removed\\\":3}\""));
	sl_buf_free(&b);
}

/* --- persistence, versions, corruption ----------------------------------- */

static void test_reopen(void **state)
{
	struct fx *f = *state;
	struct store_tenant t;
	struct store *second;
	char tok[STORE_TOKEN_SIZE], tenant[STORE_NAME_MAX + 1];
	enum store_role role;

	mk_tenant(f->st, "keep");
	assert_int_equal(store_tenant_set_state(f->st, "keep", TENANT_EV_OPERATOR_SANDBOX, 0, "op",
						"trial", NULL, NULL),
			 0);
	assert_int_equal(store_token_create(f->st, "keep", STORE_ROLE_TENANT, "op", tok, NULL), 0);
	/* One process at a time. */
	assert_int_equal(store_open(f->dir, 0, false, &second), -EBUSY);
	assert_null(second);
	/* Production mode: every commit fsynced. */
	store_close(f->st);
	assert_int_equal(store_open(f->dir, 0, true, &f->st), 0);
	assert_int_equal(store_tenant_set_state(f->st, "keep", TENANT_EV_OPERATOR_APPROVE, 0, "op",
						"trial over", NULL, NULL),
			 0);
	reopen(f);
	assert_int_equal(store_tenant_get(f->st, "keep", &t), 0);
	assert_int_equal(t.state, TENANT_ACTIVE);
	assert_int_equal(store_token_lookup(f->st, tok, tenant, &role), 0);
	assert_string_equal(tenant, "keep");
	assert_int_equal(audit_count(f->st, "tenant:keep"), 4);
}

static void test_version_mismatch(void **state)
{
	struct fx *f = *state;
	struct store *st;
	const uint8_t v2[4] = { 0, 0, 0, 2 };
	const uint8_t vbad[2] = { 0, 1 };

	store_close(f->st);
	f->st = NULL;
	raw_put(f->dir, "meta", "version", 7, v2, sizeof v2);
	assert_int_equal(store_open(f->dir, 0, false, &st), SL_EVERSION);
	assert_null(st);
	raw_put(f->dir, "meta", "version", 7, vbad, sizeof vbad);
	assert_int_equal(store_open(f->dir, 0, false, &st), SL_EVERSION);
	(void)state;
}

static void test_unversioned_data(void **state)
{
	struct fx *f = *state;
	char dir[64];
	struct store *st;

	(void)f;
	strcpy(dir, "/tmp/sluice-test-store-raw-XXXXXX");
	assert_non_null(mkdtemp(dir));
	/* Tenants but no meta: not ours to interpret. */
	raw_put(dir, "tenants", "x", 1, "y", 1);
	assert_int_equal(store_open(dir, 0, false, &st), SL_EVERSION);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_corrupt_records(void **state)
{
	struct fx *f = *state;
	struct store_tenant t, page[4];
	struct store_audit a[4];
	char tenant[STORE_NAME_MAX + 1];
	const uint8_t junk[] = { 1, 0, 0, 0xff };
	const uint8_t future[] = { 9, 0, 0 };
	uint8_t akey[8] = { 0, 0, 0, 0, 0, 0, 0, 99 };
	size_t n;
	bool more;

	mk_tenant(f->st, "good");
	store_close(f->st);
	f->st = NULL;
	raw_put(f->dir, "tenants", "bad", 3, junk, sizeof junk);
	raw_put(f->dir, "tenants", "newer", 5, future, sizeof future);
	raw_put(f->dir, "credentials", "ubob", 4, junk, sizeof junk);
	raw_put(f->dir, "audit", akey, 8, junk, sizeof junk);
	assert_int_equal(store_open(f->dir, 0, false, &f->st), 0);

	assert_int_equal(store_tenant_get(f->st, "good", &t), 0);
	assert_int_equal(store_tenant_get(f->st, "bad", &t), -EBADMSG);
	assert_int_equal(store_tenant_get(f->st, "newer", &t), SL_EVERSION);
	assert_int_equal(store_tenant_list(f->st, NULL, page, 4, &n, &more), -EBADMSG);
	assert_int_equal(store_credential_verify(f->st, "bob", "pw", tenant), -EBADMSG);
	assert_int_equal(store_audit_list(f->st, 0, NULL, a, 4, &n, &more), -EBADMSG);
	/* A lifecycle change on a corrupt record writes nothing. */
	assert_int_equal(store_tenant_set_state(f->st, "bad", TENANT_EV_OPERATOR_APPROVE, 0, "op", "x",
						NULL, NULL),
			 -EBADMSG);
}

static void test_codec_roundtrip(void **state)
{
	struct store_tenant t = { 0 }, d = { 0 };
	struct store_audit e = { 0 }, ed;
	struct store_credential c = { .kind = 't', .role = STORE_ROLE_TENANT }, cd;
	struct sl_buf b = { 0 };

	(void)state;
	t.state = TENANT_WARNED;
	t.default_stream = 1;
	t.created_ms = 1;
	t.updated_ms = 2;
	t.hold_until_ms = 3;
	t.quota_hour = UINT64_MAX;
	strcpy(t.streams[1].subdomain, "m.example");
	assert_int_equal(store_tenant_encode(&t, &b), 0);
	assert_int_equal(store_tenant_decode(sl_buf_head(&b), sl_buf_avail(&b), &d), 0);
	assert_memory_equal(&t, &d, sizeof t);
	/* Every truncation is refused. */
	for (size_t i = 0; i < sl_buf_avail(&b); i++)
		assert_int_not_equal(store_tenant_decode(sl_buf_head(&b), i, &d), 0);

	strcpy(e.actor, "a");
	strcpy(e.details, "{}");
	assert_int_equal(store_audit_encode(&e, &b), 0);
	assert_int_equal(store_audit_decode(sl_buf_head(&b), sl_buf_avail(&b), &ed), 0);
	assert_string_equal(ed.actor, "a");
	assert_string_equal(ed.details, "{}");

	strcpy(c.tenant, "x");
	memset(c.token_hash, 0xab, sizeof c.token_hash);
	assert_int_equal(store_credential_encode(&c, &b), 0);
	assert_int_equal(store_credential_decode(sl_buf_head(&b), sl_buf_avail(&b), &cd), 0);
	assert_int_equal(cd.role, STORE_ROLE_TENANT);
	assert_memory_equal(cd.token_hash, c.token_hash, 32);
	sl_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pagination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_audited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_transition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cfgsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_pagination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unversioned_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
		cmocka_unit_test(test_codec_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
