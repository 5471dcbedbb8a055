/*
 * fuzz_response_rules.c — the response rules parser on arbitrary text, and
 * the engine's reply matcher on arbitrary replies (against the shipped
 * rules, or the input's own rules when they parse).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "response_rules.h"

static struct response_rules *shipped;

static void check(const struct response_action *a, int rc)
{
	if (rc < 0 || rc > 1)
		abort();
	if (rc == 1 && (a->kind == RESPONSE_NONE || !a->rule || !memchr(a->key, 0, sizeof a->key)))
		abort();
	if (a->factor < 0 || a->factor > 1)
		abort();
}

static void drive(const struct response_rules *r, const char *reply)
{
	struct response_engine *e = response_engine_create(r, 8);
	struct response_action a;
	static const char *const prov[] = { "google", "yahoo", "microsoft", NULL };

	if (!e)
		return;
	for (unsigned i = 0; i < 12; i++) {
		uint64_t now = 1000000 + i * 60000ull;
		check(&a, response_engine_observe(e, prov[i % 4], i % 2 ? "198.51.100.10" : "198.51.100.11",
						  "t", reply, now, &a));
		double f = response_engine_rate_factor(e, prov[i % 4], "198.51.100.10", now);
		if (!(f > 0 && f <= 1))
			abort();
		(void)response_engine_suspended(e, prov[i % 4], "198.51.100.10", "t", now, NULL);
	}
	response_engine_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct response_rules *r = NULL;
	char err[160], *s;

	if (!shipped) {
		const char *p = getenv("SLUICE_RESPONSE_RULES");
		if (response_rules_load(p ? p : "configs/response-rules.conf", &shipped, err,
					sizeof err) < 0 &&
		    response_rules_parse("* text=\"x\" action=hold-tenant\n", 31, "fallback", &shipped,
					 err, sizeof err) < 0)
			abort();
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	if (response_rules_parse(s, size, "fuzz", &r, err, sizeof err) == 0) {
		drive(r, s);
		response_rules_free(r);
	} else if (!memchr(err, 0, sizeof err)) {
		abort();
	}
	drive(shipped, s);
	free(s);
	return 0;
}
