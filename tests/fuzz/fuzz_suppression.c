/*
 * fuzz_suppression.c — the suppression CSV import on arbitrary text (an
 * operator's and a tenant's import), then export and re-import: whatever
 * was imported survives the round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "suppression.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct suppression *s = suppression_create(1000), *s2 = suppression_create(1000);
	struct sl_buf b = { 0 };
	char err[160];
	size_t added = 0, added2 = 0;

	if (!s || !s2)
		goto out;
	(void)suppression_import(s, (const char *)data, size, "fuzz", NULL, SUPPRESSION_MANUAL, 1,
				 &added, err, sizeof err);
	(void)suppression_import(s, (const char *)data, size, "fuzz", "acme",
				 SUPPRESSION_UNSUBSCRIBE, 2, NULL, err, sizeof err);
	if (!memchr(err, 0, sizeof err))
		abort();
	if (suppression_export(s, NULL, &b) == 0) {
		if (suppression_import(s2, b.data, b.len, "again", NULL, SUPPRESSION_MANUAL, 0,
				       &added2, err, sizeof err) != 0)
			abort();
		if (added2 != suppression_count(s))
			abort();
	}
out:
	sl_buf_free(&b);
	suppression_free(s);
	suppression_free(s2);
	return 0;
}
