/*
 * fuzz_mta_sts.c — the MTA-STS policy parser, TXT record parser and MX
 * matcher on arbitrary bytes: never crash, and whatever parses is
 * well-formed (mode known, max_age clamped, mx patterns lower-case host
 * names that match themselves).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mta_sts_policy p;
	char id[MTA_STS_ID_MAX + 1];
	const char *txts[1];
	char *s;

	if (mta_sts_parse((const char *)data, size, &p) == 0) {
		if (p.mode > MTA_STS_ENFORCE || p.max_age > MTA_STS_MAX_AGE_MAX ||
		    p.n_mx > MTA_STS_MAX_MX || (p.mode != MTA_STS_NONE && !p.n_mx))
			abort();
		for (size_t i = 0; i < p.n_mx; i++) {
			const char *m = p.mx[i];

			if (strlen(m) > 253 || (m[0] != '*' && !mta_sts_mx_match(&p, m)))
				abort();
			if (m[0] == '*') {
				char h[260] = "x";

				strcat(h, m + 1);
				if (!mta_sts_mx_match(&p, h))
					abort();
			}
		}
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	txts[0] = s;
	if (mta_sts_txt_id(txts, 1, id) == 0 && (!id[0] || strlen(id) > MTA_STS_ID_MAX))
		abort();
	(void)mta_sts_mx_match(&p, s);
	free(s);
	return 0;
}
