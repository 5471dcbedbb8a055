/*
 * fuzz_shaping.c — arbitrary bytes into shaping_load_string() (and, on the
 * same bytes, warmup_load_string() and providers_parse(), which share the
 * YAML tree / are line parsers); must not crash or leak. Loaded rules are
 * resolved for a few keys; failures must be SL_ECONFIG or -ENOMEM with a
 * "fuzz.yaml:" message and no result.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "providers.h"
#include "shaping.h"
#include "warmup.h"

static void check_fail(int rc, const void *out, const char *err, const char *name)
{
	if (out != NULL || (rc != SL_ECONFIG && rc != -ENOMEM))
		__builtin_trap();
	if (rc == SL_ECONFIG && strncmp(err, name, strlen(name)) != 0)
		__builtin_trap(); /* every error names FILE:LINE[:COL] */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shaping_rules *r = NULL;
	struct warmup_config *w = NULL;
	struct provider_table *t;
	char err[256];
	int rc;

	rc = shaping_load_string("fuzz.yaml", (const char *)data, size, &r, err, sizeof err);
	if (rc == 0) {
		static const struct shaping_key keys[] = {
			{ 0 },
			{ "203.0.113.10", "mkt", "google", "mx.example", "example.com" },
			{ "2001:db8::1", "p", "microsoft", "a,b", "Example.COM." },
			{ "garbage", "", "", "", "" },
		};
		struct shaping_values v;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			shaping_resolve(r, &keys[i], &v);
			for (int k = 0; k < SHAPING_N_KNOBS; k++)
				if (!v.from[k])
					__builtin_trap();
			if (v.n_retry == 0 || v.n_retry > SHAPING_MAX_RETRY)
				__builtin_trap();
			struct rate_limiter rl;
			rate_init(&rl, &v.message_rate, 0, 1000);
			(void)rate_allow(&rl, 1000, 1);
			(void)rate_next_ms(&rl, 1000);
		}
		(void)shaping_has_domain_rule(r, "example.com");
		shaping_free(r);
	} else {
		check_fail(rc, r, err, "fuzz.yaml:");
	}

	rc = warmup_load_string("fuzz.yaml", (const char *)data, size, &w, err, sizeof err);
	if (rc == 0) {
		const struct warmup_schedule *s = warmup_schedule_by_name(w, "s");
		struct warmup_state st;

		if (s) {
			const struct warmup_curve *c = warmup_curve_for(s, "google");
			if (!c)
				__builtin_trap();
			warmup_state_init(&st, c, 0);
			for (uint64_t t = 0; t < 40ull * 86400000; t += 86400000 / 3)
				(void)warmup_allow(&st, t, 5);
		}
		(void)warmup_ip_for(w, "10.0.0.1");
		warmup_free(w);
	} else {
		check_fail(rc, w, err, "fuzz.yaml:");
	}

	t = providers_create();
	if (t) {
		rc = providers_parse(t, "fuzz.conf", (const char *)data, size, err, sizeof err);
		if (rc == SL_ECONFIG && strncmp(err, "fuzz.conf:", 10) != 0)
			__builtin_trap();
		(void)provider_for_mx(t, "mx1.google.com");
		providers_free(t);
	}
	return 0;
}
