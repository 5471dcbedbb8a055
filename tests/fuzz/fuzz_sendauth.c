/* fuzz_sendauth.c — the sender-authentication parsers of untrusted input:
 * the From field of a message received for verify-by-email, DNS record
 * data (TXT, MX, CNAME) as the domain check and SPF see it, and a
 * presented one-click unsubscribe token. No crash, no overread, results
 * NUL-terminated within their buffers, and a token that parses carries a
 * valid MAC (it must round-trip). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_sync.h"
#include "unsubscribe.h"
#include "verification.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char from[VERIFICATION_ADDR_MAX + 1], text[512];
	char tenant[UNSUBSCRIBE_TENANT_MAX + 1], rcpt[UNSUBSCRIBE_ADDR_MAX + 1];
	static const int types[] = { 5, 12, 15, 16 };
	uint8_t key[32];
	char *tok;

	if (verification_header_from((const char *)data, size, from) == 0 &&
	    strlen(from) > VERIFICATION_ADDR_MAX)
		abort();
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (dns_sync_rdata_text(types[i], (const char *)data, size, text, sizeof text) == 0 &&
		    strlen(text) >= sizeof text)
			abort();
	if (!(tok = malloc(size + 1)))
		return 0;
	memcpy(tok, data, size);
	tok[size] = 0;
	unsubscribe_key("fuzz", key);
	if (unsubscribe_parse(key, tok, tenant, rcpt) == 0) {
		struct sl_buf again = { 0 };

		/* only a token we made parses: it must be the one for its result */
		if (unsubscribe_token(key, tenant, rcpt, &again) != 0)
			abort();
		sl_buf_free(&again);
	}
	free(tok);
	return 0;
}
