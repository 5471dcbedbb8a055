/*
 * net_rss.c — Toeplitz hash as specified by Microsoft's RSS documentation
 * (the same function DPDK's rte_softrss() computes).
 */
#include "net_rss.h"

#include <string.h>

uint32_t net_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
	uint32_t hash = 0;
	/* v: the 32 key bits aligned with the current input bit, plus the
	 * next 8 bits of key shifted in byte by byte. */
	uint32_t v = 0;
	size_t k;

	for (k = 0; k < 4 && k < key_len; k++)
		v = (v << 8) | key[k];
	v <<= 8 * (4 - k);
	for (size_t i = 0; i < len; i++) {
		uint8_t next = i + 4 < key_len ? key[i + 4] : 0;
		for (int b = 7; b >= 0; b--) {
			if (in[i] & (1u << b))
				hash ^= v;
			v = (v << 1) | ((next >> b) & 1u);
		}
	}
	return hash;
}

uint32_t net_rss_hash_tcp4(const uint8_t *key, size_t key_len, uint32_t src_ip,
			   uint32_t dst_ip, uint16_t src_port, uint16_t dst_port)
{
	uint8_t in[12];

	memcpy(in, &src_ip, 4);
	memcpy(in + 4, &dst_ip, 4);
	in[8] = (uint8_t)(src_port >> 8);
	in[9] = (uint8_t)src_port;
	in[10] = (uint8_t)(dst_port >> 8);
	in[11] = (uint8_t)dst_port;
	return net_rss_toeplitz(key, key_len, in, sizeof(in));
}

uint16_t net_rss_queue(uint32_t hash, uint16_t queues, const uint16_t *reta, uint16_t reta_size)
{
	if (reta && reta_size)
		return reta[hash % reta_size];
	return queues ? (uint16_t)(hash % queues) : 0;
}
