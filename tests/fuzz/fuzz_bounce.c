/*
 * fuzz_bounce.c — the bounce classifier (DSN/MIME parser, non-standard
 * bounce heuristics, reply normaliser) on arbitrary bytes.
 *
 * Uses the shipped rule set (configs/bounce-rules.conf, or the file named
 * by SLUICE_BOUNCE_RULES) when it can be read, else a small built-in one,
 * and checks the result's invariants: a valid reason, NUL-terminated
 * fields, a status that looks like one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"

static struct bounce_rules *rules;

static const char fallback[] = "userunknown text \"user unknown\"\n"
			       "blocked text \"spamhaus\"\n"
			       "mailboxfull status *.2.2\n"
			       "userunknown status 5.1.*\n"
			       "rejected code 554\n";

static void load_rules(void)
{
	const char *p = getenv("SLUICE_BOUNCE_RULES");
	char err[256];

	if (rules)
		return;
	if (bounce_rules_load(p ? p : "configs/bounce-rules.conf", &rules, err, sizeof err) < 0 &&
	    bounce_rules_parse(fallback, sizeof fallback - 1, "fallback", &rules, err,
			       sizeof err) < 0)
		abort();
}

static void check(const struct bounce_result *r)
{
	if ((unsigned)r->reason >= BOUNCE_R_COUNT)
		abort();
	if (!memchr(r->recipient, 0, sizeof r->recipient) ||
	    !memchr(r->status, 0, sizeof r->status) ||
	    !memchr(r->diagnostic, 0, sizeof r->diagnostic))
		abort();
	if (r->status[0] && (r->status[0] < '2' || r->status[0] > '5' || r->status[1] != '.'))
		abort();
	for (const char *p = r->diagnostic; *p; p++)
		if ((unsigned char)*p < 0x20)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounce_result r;
	char *s;

	load_rules();
	bounce_classify_message(rules, (const char *)data, size, &r);
	check(&r);

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	bounce_classify_reply(rules, s, &r);
	check(&r);
	/* the rules parser too: must fail cleanly or load */
	{
		struct bounce_rules *rr = NULL;
		char err[128];
		if (bounce_rules_parse(s, size, "fuzz", &rr, err, sizeof err) == 0)
			bounce_rules_free(rr);
	}
	free(s);
	return 0;
}
