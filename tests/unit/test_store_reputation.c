/* test_store_reputation.c — the control store's reputation database:
 * suppressions (add keeps the first, global before tenant, case, removal,
 * listing with pages per tenant and across lists, audit only for manual
 * changes, persistence) and stable tenant numbers. */
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

#include "err.h"
#include "store.h"

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
	struct store_tenant t = { .name = "acme" };

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/sluice-test-strep-XXXXXX");
	if (!mkdtemp(f->dir) || store_open(f->dir, 0, false, &f->st) != 0)
		return -1;
	if (store_tenant_create(f->st, &t, "test", "") != 0)
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

static size_t audit_count(struct store *st, const char *action)
{
	struct store_audit a[64];
	size_t n, c = 0;
	bool more;

	assert_int_equal(store_audit_list(st, 0, NULL, a, 64, &n, &more), 0);
	for (size_t i = 0; i < n; i++)
		c += strcmp(a[i].action, action) == 0;
	return c;
}

static void test_add_check_remove(void **state)
{
	struct fx *f = *state;
	struct suppression_entry e;

	assert_int_equal(store_suppression_check(f->st, "acme", "bob@example.com", &e), 0);
	assert_int_equal(store_suppression_add(f->st, "acme", "<Bob@Example.COM>",
					       SUPPRESSION_HARD_BOUNCE, 1000, NULL), 0);
	/* Again: kept with its first reason and time. */
	assert_int_equal(store_suppression_add(f->st, "acme", "bob@example.com",
					       SUPPRESSION_COMPLAINT, 2000, "operator:x"), 1);
	assert_int_equal(store_suppression_check(f->st, "acme", "BOB@example.com", &e), 1);
	assert_string_equal(e.tenant, "acme");
	assert_string_equal(e.address, "bob@example.com");
	assert_int_equal(e.reason, SUPPRESSION_HARD_BOUNCE);
	assert_int_equal(e.added_ms, 1000);
	/* Other tenants are not affected; the global list applies to all. */
	assert_int_equal(store_suppression_check(f->st, "other", "bob@example.com", NULL), 0);
	assert_int_equal(store_suppression_add(f->st, "", "trap@example.net", SUPPRESSION_MANUAL, 5,
					       "operator:x"), 0);
	assert_int_equal(store_suppression_check(f->st, "other", "trap@example.net", &e), 1);
	assert_string_equal(e.tenant, "");
	assert_int_equal(store_suppression_check(f->st, NULL, "trap@example.net", NULL), 1);
	/* Only manual (actor-given) changes are audited. */
	assert_int_equal(audit_count(f->st, "suppression.add"), 1);
	assert_int_equal(store_suppression_remove(f->st, "acme", "bob@example.com", "operator:x"), 0);
	assert_int_equal(store_suppression_remove(f->st, "acme", "bob@example.com", NULL),
			 SL_ENOTFOUND);
	assert_int_equal(store_suppression_check(f->st, "acme", "bob@example.com", NULL), 0);
	assert_int_equal(audit_count(f->st, "suppression.remove"), 1);
	/* Bad input. */
	assert_int_equal(store_suppression_add(f->st, "acme", "no-at-sign", SUPPRESSION_MANUAL, 0,
					       NULL), -EINVAL);
	assert_int_equal(store_suppression_add(f->st, "bad name", "a@b.c", SUPPRESSION_MANUAL, 0,
					       NULL), -EINVAL);
	assert_int_equal(store_suppression_add(f->st, "acme", "a@b.c", (enum suppression_reason)9,
					       0, NULL), -EINVAL);
}

static void test_list_pages(void **state)
{
	struct fx *f = *state;
	struct suppression_entry e[4];
	char addr[64];
	size_t n, total = 0;
	bool more = true;

	for (int i = 0; i < 10; i++) {
		snprintf(addr, sizeof addr, "u%02d@example.com", i);
		assert_int_equal(store_suppression_add(f->st, "acme", addr, SUPPRESSION_MANUAL, 1,
						       NULL), 0);
		assert_int_equal(store_suppression_add(f->st, "beta", addr, SUPPRESSION_MANUAL, 1,
						       NULL), 0);
	}
	assert_int_equal(store_suppression_add(f->st, "", "g@example.com", SUPPRESSION_MANUAL, 1,
					       NULL), 0);
	/* One tenant's list, in pages of 4. */
	char at[65] = "", aa[321] = "";
	while (more) {
		assert_int_equal(store_suppression_list(f->st, "acme", at, aa, e, 4, &n, &more), 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(e[i].tenant, "acme");
			snprintf(addr, sizeof addr, "u%02zu@example.com", total + i);
			assert_string_equal(e[i].address, addr);
		}
		total += n;
		if (n) {
			strcpy(at, e[n - 1].tenant);
			strcpy(aa, e[n - 1].address);
		}
	}
	assert_int_equal(total, 10);
	/* The global list alone, and everything (global first). */
	assert_int_equal(store_suppression_list(f->st, "", NULL, NULL, e, 4, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_string_equal(e[0].address, "g@example.com");
	assert_int_equal(store_suppression_list(f->st, NULL, NULL, NULL, e, 2, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_true(more);
	assert_string_equal(e[0].tenant, "");
	assert_string_equal(e[1].tenant, "acme");
}

static void test_tenant_numbers(void **state)
{
	struct fx *f = *state;
	struct store_cfgset c = { .tenant = "acme", .domain = "acme.test" };
	char name[STORE_NAME_MAX + 1];
	uint64_t a, b, a2;

	assert_int_equal(store_tenant_number(f->st, "acme", false, &a), SL_ENOTFOUND);
	assert_int_equal(store_tenant_number(f->st, "acme", true, &a), 0);
	assert_int_equal(store_tenant_number(f->st, "acme", true, &a2), 0);
	assert_int_equal(a, a2);
	/* Shares the configuration-set counter: never the same number. */
	assert_int_equal(store_cfgset_put(f->st, &c, "test"), 0);
	assert_int_not_equal(c.id, a);
	assert_int_equal(store_tenant_number(f->st, "beta", true, &b), 0);
	assert_true(b != a && b != c.id);
	assert_int_equal(store_tenant_by_number(f->st, a, name), 0);
	assert_string_equal(name, "acme");
	assert_int_equal(store_tenant_by_number(f->st, b, name), 0);
	assert_string_equal(name, "beta");
	assert_int_equal(store_tenant_by_number(f->st, 999999, name), SL_ENOTFOUND);
	/* Persistent. */
	store_close(f->st);
	assert_int_equal(store_open(f->dir, 0, false, &f->st), 0);
	assert_int_equal(store_tenant_number(f->st, "acme", false, &a2), 0);
	assert_int_equal(a, a2);
	assert_int_equal(store_suppression_check(f->st, "acme", "x@y.z", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_check_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_numbers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
