/* test_tenant.c — the tenant lifecycle table and the data path's decisions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tenant.h"

/* The full expected table: -1 = refused. Written out independently of
 * tenant.c so a slip in either shows. */
static const int expect[TENANT_STATE_COUNT][TENANT_EVENT_COUNT] = {
	/* approve hold resume disable sandbox | warn phold pdisable recover grace */
	[TENANT_PENDING_REVIEW] = { TENANT_ACTIVE, -1, -1, TENANT_DISABLED, TENANT_SANDBOX, -1, -1, -1,
				    -1, -1 },
	[TENANT_SANDBOX] = { TENANT_ACTIVE, TENANT_ON_HOLD, -1, TENANT_DISABLED, -1, -1, TENANT_ON_HOLD,
			     TENANT_DISABLED, -1, -1 },
	[TENANT_ACTIVE] = { -1, TENANT_ON_HOLD, -1, TENANT_DISABLED, TENANT_SANDBOX, TENANT_WARNED,
			    TENANT_ON_HOLD, TENANT_DISABLED, -1, -1 },
	[TENANT_WARNED] = { -1, TENANT_ON_HOLD, TENANT_ACTIVE, TENANT_DISABLED, TENANT_SANDBOX, -1,
			    TENANT_ON_HOLD, TENANT_DISABLED, TENANT_ACTIVE, -1 },
	[TENANT_ON_HOLD] = { -1, -1, TENANT_ACTIVE, TENANT_DISABLED, TENANT_SANDBOX, -1, -1,
			     TENANT_DISABLED, -1, TENANT_DISABLED },
	[TENANT_DISABLED] = { -1, -1, TENANT_ACTIVE, -1, TENANT_SANDBOX, -1, -1, -1, -1, -1 },
};

static void test_table(void **state)
{
	(void)state;
	for (int s = 0; s < TENANT_STATE_COUNT; s++)
		for (int e = 0; e < TENANT_EVENT_COUNT; e++) {
			enum tenant_state to = (enum tenant_state)99;
			const char *why = "unset";
			int rc = tenant_transition((enum tenant_state)s, (enum tenant_event)e, &to, &why);

			if (expect[s][e] < 0) {
				assert_int_equal(rc, -EPERM);
				assert_non_null(why);
				assert_true(strlen(why) > 5);
				assert_int_equal(to, 99); /* untouched */
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(to, expect[s][e]);
				assert_null(why);
			}
		}
}

static void test_policy_never_deescalates(void **state)
{
	(void)state;
	/* Only operators leave review, hold and disabled. */
	for (int e = 0; e < TENANT_EVENT_COUNT; e++) {
		enum tenant_state to;

		if (tenant_event_is_operator((enum tenant_event)e))
			continue;
		assert_int_not_equal(tenant_transition(TENANT_PENDING_REVIEW, (enum tenant_event)e, &to, NULL), 0);
		assert_int_not_equal(tenant_transition(TENANT_DISABLED, (enum tenant_event)e, &to, NULL), 0);
		if (tenant_transition(TENANT_ON_HOLD, (enum tenant_event)e, &to, NULL) == 0)
			assert_int_equal(to, TENANT_DISABLED);
	}
}

static void test_reasons(void **state)
{
	enum tenant_state to;
	const char *why;

	(void)state;
	assert_int_equal(tenant_transition(TENANT_ACTIVE, TENANT_EV_OPERATOR_APPROVE, &to, &why), -EPERM);
	assert_string_equal(why, "tenant is already approved");
	assert_int_equal(tenant_transition(TENANT_ON_HOLD, TENANT_EV_OPERATOR_HOLD, &to, &why), -EPERM);
	assert_string_equal(why, "tenant is already on hold");
	assert_int_equal(tenant_transition(TENANT_ON_HOLD, TENANT_EV_POLICY_RECOVER, &to, &why), -EPERM);
	assert_non_null(strstr(why, "operator"));
	assert_int_equal(tenant_transition((enum tenant_state)42, TENANT_EV_OPERATOR_APPROVE, &to, &why),
			 -EINVAL);
	assert_int_equal(tenant_transition(TENANT_ACTIVE, (enum tenant_event)-1, &to, NULL), -EINVAL);
}

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < TENANT_STATE_COUNT; s++) {
		enum tenant_state p;

		assert_int_equal(tenant_state_parse(tenant_state_name((enum tenant_state)s), &p), 0);
		assert_int_equal(p, s);
	}
	for (int e = 0; e < TENANT_EVENT_COUNT; e++) {
		enum tenant_event p;

		assert_int_equal(tenant_event_parse(tenant_event_name((enum tenant_event)e), &p), 0);
		assert_int_equal(p, e);
		assert_int_equal(tenant_event_is_operator((enum tenant_event)e),
				 strncmp(tenant_event_name((enum tenant_event)e), "operator_", 9) == 0);
	}
	assert_string_equal(tenant_state_name(TENANT_PENDING_REVIEW), "pending_review");
	assert_string_equal(tenant_state_name((enum tenant_state)77), "?");
	assert_string_equal(tenant_event_name((enum tenant_event)77), "?");
	{
		enum tenant_state p;
		enum tenant_event ev;

		assert_int_equal(tenant_state_parse("Active", &p), -EINVAL);
		assert_int_equal(tenant_state_parse(NULL, &p), -EINVAL);
		assert_int_equal(tenant_event_parse("approve", &ev), -EINVAL);
	}
}

static void test_decisions(void **state)
{
	(void)state;
	assert_false(tenant_may_inject(TENANT_PENDING_REVIEW));
	assert_true(tenant_may_inject(TENANT_SANDBOX));
	assert_true(tenant_may_inject(TENANT_ACTIVE));
	assert_true(tenant_may_inject(TENANT_WARNED));
	assert_true(tenant_may_inject(TENANT_ON_HOLD)); /* accepted, kept */
	assert_false(tenant_may_inject(TENANT_DISABLED));
	assert_false(tenant_may_inject((enum tenant_state)9));

	assert_false(tenant_may_deliver(TENANT_PENDING_REVIEW));
	assert_true(tenant_may_deliver(TENANT_SANDBOX));
	assert_true(tenant_may_deliver(TENANT_ACTIVE));
	assert_true(tenant_may_deliver(TENANT_WARNED));
	assert_false(tenant_may_deliver(TENANT_ON_HOLD));
	assert_false(tenant_may_deliver(TENANT_DISABLED));

	for (int s = 0; s < TENANT_STATE_COUNT; s++)
		assert_int_equal(tenant_restricts_recipients((enum tenant_state)s), s == TENANT_SANDBOX);
}

static void test_refusals(void **state)
{
	const struct tenant_refusal *r;

	(void)state;
	r = tenant_inject_refusal(TENANT_PENDING_REVIEW);
	assert_non_null(r);
	assert_int_equal(r->smtp_code, 550);
	assert_string_equal(r->enhanced, "5.7.1");
	assert_string_equal(r->text, "Account awaiting operator review");
	assert_int_equal(r->http_status, 403);
	assert_string_equal(r->error, "tenant_pending_review");

	r = tenant_inject_refusal(TENANT_DISABLED);
	assert_non_null(r);
	assert_int_equal(r->smtp_code, 550);
	assert_int_equal(r->http_status, 403);
	assert_string_equal(r->error, "tenant_disabled");

	r = tenant_refusal(TENANT_REFUSE_SANDBOX_RCPT);
	assert_non_null(r);
	assert_int_equal(r->smtp_code, 550);
	assert_int_equal(r->http_status, 403);
	assert_null(tenant_refusal((enum tenant_refusal_kind)12));

	/* Refusal and permission agree for every state. */
	for (int s = 0; s < TENANT_STATE_COUNT; s++)
		assert_int_equal(tenant_inject_refusal((enum tenant_state)s) == NULL,
				 tenant_may_inject((enum tenant_state)s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),     cmocka_unit_test(test_policy_never_deescalates),
		cmocka_unit_test(test_reasons),   cmocka_unit_test(test_names),
		cmocka_unit_test(test_decisions), cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
