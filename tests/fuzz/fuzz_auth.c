/* fuzz_auth.c — auth_verify_password() on arbitrary stored strings.
 *
 * Input: PASSWORD NUL STORED. Stored strings asking for more than 2000
 * PBKDF2 iterations are skipped: they are legal but would only make the
 * fuzzer slow, and the parser has already run on thousands like them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "err.h"

#define PREFIX "$pbkdf2-sha256$i="

static int too_slow(const char *stored)
{
	unsigned long it = 0;
	const char *p;

	if (strncmp(stored, PREFIX, sizeof PREFIX - 1) != 0)
		return 0;
	for (p = stored + sizeof PREFIX - 1; *p >= '0' && *p <= '9'; p++) {
		it = it * 10 + (unsigned long)(*p - '0');
		if (it > 2000)
			return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	char *pw, *stored;
	size_t plen;
	int rc;

	if (!nul)
		return 0;
	plen = (size_t)(nul - data);
	pw = malloc(size + 1);
	if (!pw)
		return 0;
	memcpy(pw, data, size);
	pw[size] = '\0';
	stored = pw + plen + 1;
	if (!too_slow(stored)) {
		rc = auth_verify_password(pw, stored);
		if (rc != 0 && rc != SL_EAUTH && rc != SL_ECONFIG)
			abort();
		/* A success must be repeatable (and then come from the cache). */
		if (rc == 0 && auth_verify_password(pw, stored) != 0)
			abort();
	}
	free(pw);
	return 0;
}
