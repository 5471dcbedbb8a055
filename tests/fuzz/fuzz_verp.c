/*
 * fuzz_verp.c — verp_decode() on arbitrary addresses: never crashes, and
 * whatever decodes re-encodes to the same token (case-insensitively).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "verp.h"

static const uint8_t secret[] = "fuzz secret";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verp_key key = { secret, sizeof secret - 1 };
	struct verp_fields f;
	char *s, again[VERP_ADDR_MAX];

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	(void)verp_is_candidate(NULL, s);
	if (verp_decode(&key, 1, NULL, s, 0, 0, &f) == 0) {
		const char *at = strrchr(s, '@');
		if (verp_encode(&key, NULL, "x", &f, again, sizeof again) < 0)
			abort();
		size_t n = (size_t)(strchr(again, '@') - again);
		const char *p = s[0] == '<' ? s + 1 : s;
		if (at && strncasecmp(again, p, n) != 0)
			abort();
	}
	/* a token under another prefix */
	(void)verp_decode(&key, 1, "rp", s, 100, 7, &f);
	free(s);
	return 0;
}
