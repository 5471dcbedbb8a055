/* fuzz_store_decode.c — the control store's record decoders on arbitrary
 * bytes.
 *
 * Input: one selector byte (which record kind) and the record. Every
 * decoder must return 0 or an error without reading outside the input; a
 * record that decodes must encode again to the same bytes (the format has
 * exactly one spelling of each record), and decoded strings must be
 * NUL-terminated within their buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"

static void same_bytes(const struct sl_buf *b, const uint8_t *p, size_t n)
{
	if (sl_buf_avail(b) != n || memcmp(sl_buf_head(b), p, n) != 0)
		abort();
}

static void terminated(const char *s, size_t cap)
{
	if (!memchr(s, 0, cap))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_buf b = { 0 };
	const uint8_t *p;
	size_t n;

	if (size < 1)
		return 0;
	p = data + 1;
	n = size - 1;
	switch (data[0] % 4) {
	case 0: {
		struct store_tenant t;

		memset(&t, 0, sizeof t);
		if (store_tenant_decode(p, n, &t) == 0) {
			for (int i = 0; i < STORE_STREAMS; i++) {
				terminated(t.streams[i].pool, sizeof t.streams[i].pool);
				terminated(t.streams[i].subdomain, sizeof t.streams[i].subdomain);
			}
			if (store_tenant_encode(&t, &b) != 0)
				abort();
			same_bytes(&b, p, n);
		}
		break;
	}
	case 1: {
		struct store_audit a;

		if (store_audit_decode(p, n, &a) == 0) {
			terminated(a.actor, sizeof a.actor);
			terminated(a.details, sizeof a.details);
			if (store_audit_encode(&a, &b) != 0)
				abort();
			same_bytes(&b, p, n);
			a.seq = 1;
			if (store_audit_json(&a, &b) != 0)
				abort();
		}
		break;
	}
	case 2: {
		struct store_cfgset c;

		if (store_cfgset_decode(p, n, &c) == 0) {
			terminated(c.pool, sizeof c.pool);
			terminated(c.dkim_selector, sizeof c.dkim_selector);
			if (store_cfgset_encode(&c, &b) != 0)
				abort();
			same_bytes(&b, p, n);
		}
		break;
	}
	default: {
		struct store_credential c;

		if (store_credential_decode(p, n, &c) == 0) {
			terminated(c.tenant, sizeof c.tenant);
			terminated(c.hash, sizeof c.hash);
			if (store_credential_encode(&c, &b) != 0)
				abort();
			same_bytes(&b, p, n);
		}
		break;
	}
	}
	sl_buf_free(&b);
	return 0;
}
