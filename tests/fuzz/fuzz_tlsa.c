/*
 * fuzz_tlsa.c — dane_tlsa_parse() and dane_host_create() on arbitrary TLSA
 * rdata: never crash, parsed fields stay inside the input, and a host
 * built from records keeps only usable ones.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *recs[RESOLVER_MAX_TLSA];
	size_t lens[RESOLVER_MAX_TLSA], n = 0, off = 0;
	struct mx_host h = { .name = "mx.fuzz.example", .addr_sec = RESOLVER_SEC_SECURE,
			     .tlsa_sec = RESOLVER_SEC_SECURE, .tlsa = recs, .tlsa_len = lens };
	struct dane_tlsa t;
	struct dane_host *d;
	uint8_t *copy;

	/* The whole input as one record. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (dane_tlsa_parse(copy, size, &t) == 0) {
		if (t.data != copy + 3 || t.len != size - 3)
			abort();
		(void)dane_tlsa_usable(&t);
	}
	/* Then as records, each prefixed by a one-byte length. */
	while (off < size && n < RESOLVER_MAX_TLSA) {
		size_t l = data[off++];

		if (l > size - off)
			l = size - off;
		recs[n] = copy + off;
		lens[n++] = l;
		off += l;
	}
	h.n_tlsa = n;
	if (dane_host_create(RESOLVER_SEC_SECURE, &h, &d) == DANE_REQUIRED) {
		if (dane_host_count(d) == 0 || dane_host_count(d) > n)
			abort();
		for (size_t i = 0; i < dane_host_count(d); i++)
			if (!dane_tlsa_usable(dane_host_record(d, i)))
				abort();
	}
	dane_host_unref(d);
	free(copy);
	return 0;
}
