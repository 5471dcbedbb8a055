/* net_shard.c — connection and frame ownership among workers; see net_shard.h. */
#include "net_shard.h"

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void net_shard_ports(unsigned n, unsigned w, uint16_t *lo, uint16_t *hi)
{
	uint32_t range = NET_SHARD_PORT_HI - NET_SHARD_PORT_LO + 1;
	uint32_t step = range / n;

	*lo = (uint16_t)(NET_SHARD_PORT_LO + w * step);
	/* The last slice takes the remainder. */
	*hi = w + 1 == n ? NET_SHARD_PORT_HI : (uint16_t)(*lo + step - 1);
}

int net_shard_port_owner(unsigned n, uint16_t port)
{
	uint32_t step = (NET_SHARD_PORT_HI - NET_SHARD_PORT_LO + 1) / n;
	uint32_t w;

	if (port < NET_SHARD_PORT_LO || port > NET_SHARD_PORT_HI)
		return NET_SHARD_ANY;
	w = (port - NET_SHARD_PORT_LO) / step;
	return (int)(w < n ? w : n - 1);
}

/* The IPv4 header at ip (len bytes available): its header length, or 0 if
 * it is not one or is a non-first fragment (no TCP header to look at). */
static size_t ipv4_hlen(const uint8_t *ip, size_t len, uint8_t proto)
{
	size_t ihl;

	if (len < 20 || ip[0] >> 4 != 4 || ip[9] != proto)
		return 0;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	if (ihl < 20 || len < ihl || (get16(ip + 6) & 0x1fff))
		return 0;
	return ihl;
}

int net_shard_owner(unsigned n, const uint8_t *frame, size_t len)
{
	const uint8_t *ip = frame + ETH_HLEN;
	size_t ihl, rest;

	if (n <= 1 || len < ETH_HLEN + 8)
		return NET_SHARD_ANY;
	rest = len - ETH_HLEN;
	switch (get16(frame + 12)) {
	case ETHERTYPE_ARP:
		return get16(ip + 6) == 2 ? NET_SHARD_ALL : NET_SHARD_ANY;
	case ETHERTYPE_IPV4:
		break;
	default:
		return NET_SHARD_ANY;
	}
	if ((ihl = ipv4_hlen(ip, rest, 6)) && rest >= ihl + 4)
		return net_shard_port_owner(n, get16(ip + ihl + 2)); /* TCP: our port is dst */
	if (!(ihl = ipv4_hlen(ip, rest, 1)) || rest < ihl + 8)
		return NET_SHARD_ANY;
	/* ICMP unreachable (3), time exceeded (11): 8 bytes, then the IPv4
	 * header we sent and at least 8 bytes of its TCP header. */
	if (ip[ihl] != 3 && ip[ihl] != 11)
		return NET_SHARD_ANY;
	const uint8_t *in = ip + ihl + 8;
	size_t in_len = rest - ihl - 8, in_ihl = ipv4_hlen(in, in_len, 6);

	if (!in_ihl || in_len < in_ihl + 2)
		return NET_SHARD_ANY;
	return net_shard_port_owner(n, get16(in + in_ihl)); /* our port is its src */
}

unsigned net_shard_pick(unsigned n, const uint32_t *load, unsigned *cursor)
{
	unsigned best = *cursor % n;

	for (unsigned i = 1; i < n; i++) {
		unsigned w = (*cursor + i) % n;

		if (load[w] < load[best])
			best = w;
	}
	*cursor = (best + 1) % n;
	return best;
}
