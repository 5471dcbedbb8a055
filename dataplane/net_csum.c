/*
 * net_csum.c — RFC 1071 Internet checksum, 64-bit accumulation.
 */
#include "net_csum.h"

#include <string.h>

uint32_t net_csum_partial(const void *p, size_t len, uint32_t acc)
{
	const uint8_t *b = p;
	uint64_t sum = acc;

	while (len >= 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		sum += (uint32_t)w;
		sum += w >> 32;
		b += 8;
		len -= 8;
	}
	while (len >= 2) {
		uint16_t w;
		memcpy(&w, b, 2);
		sum += w;
		b += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0;
		memcpy(&w, b, 1); /* the odd byte is the high-order byte in network order */
		sum += w;
	}
	while (sum >> 32)
		sum = (sum & 0xffffffffu) + (sum >> 32);
	return (uint32_t)sum;
}

uint16_t net_csum_fold(uint32_t acc)
{
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

uint16_t net_csum(const void *p, size_t len)
{
	return (uint16_t)~net_csum_fold(net_csum_partial(p, len, 0));
}

uint32_t net_csum_phdr(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	uint8_t ph[12];

	memcpy(ph, &src, 4);
	memcpy(ph + 4, &dst, 4);
	ph[8] = 0;
	ph[9] = proto;
	ph[10] = (uint8_t)(len >> 8);
	ph[11] = (uint8_t)len;
	return net_csum_partial(ph, sizeof(ph), 0);
}

uint16_t net_csum_update16(uint16_t csum, uint16_t old, uint16_t new_)
{
	/* HC' = ~(~HC + ~m + m') */
	uint32_t sum = (uint16_t)~csum;
	sum += (uint16_t)~old;
	sum += new_;
	return (uint16_t)~net_csum_fold(sum);
}
