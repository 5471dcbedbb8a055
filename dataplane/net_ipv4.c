/*
 * net_ipv4.c — IPv4 input validation and output headers, and ICMP: echo
 * replies for owned addresses, destination-unreachable handed to TCP.
 * No reassembly: fragments are dropped and counted.
 */
#include "net_csum.h"
#include "net_internal.h"

#include <string.h>

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

bool net_ipv4_owned(const struct net_stack *ns, uint32_t ip)
{
	for (size_t i = 0; i < ns->cfg.n_ips; i++)
		if (ns->cfg.ips[i] == ip)
			return true;
	return false;
}

void net_ipv4_header(struct net_stack *ns, uint8_t *frame, size_t len, uint32_t src,
		     uint32_t dst, uint8_t proto, bool offload)
{
	uint8_t *ip = frame + NET_ETH_HLEN;

	memcpy(frame + 6, ns->cfg.mac, 6);
	net_put16(frame + 12, NET_ETHERTYPE_IPV4);
	ip[0] = 0x45;
	ip[1] = 0;
	net_put16(ip + 2, (uint16_t)(len - NET_ETH_HLEN));
	net_put16(ip + 4, ns->ip_id++);
	net_put16(ip + 6, IP_DF);
	ip[8] = 64;
	ip[9] = proto;
	net_put16(ip + 10, 0);
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	if (!offload) {
		uint16_t c = net_csum(ip, NET_IP_HLEN);
		memcpy(ip + 10, &c, 2);
	}
}

static void icmp_input(struct net_stack *ns, uint32_t src, uint32_t dst, const uint8_t *p,
		       size_t len, uint64_t now)
{
	if (len < 8 || net_csum(p, len) != 0) {
		ns->st.drop_csum += len >= 8;
		ns->st.drop_proto += len < 8;
		return;
	}
	uint8_t type = p[0], code = p[1];
	if (type == 8 && code == 0) {
		size_t flen = NET_ETH_HLEN + NET_IP_HLEN + len;
		if (flen > ns->txbuf_size) {
			ns->st.drop_proto++;
			return;
		}
		uint8_t *f = ns->txbuf;
		uint8_t *icmp = f + NET_ETH_HLEN + NET_IP_HLEN;
		memcpy(icmp, p, len);
		/* RFC 1624 incremental update: only the type byte changes */
		uint16_t c, oldw, neww;
		memcpy(&oldw, icmp, 2);
		icmp[0] = 0;
		memcpy(&neww, icmp, 2);
		memcpy(&c, icmp + 2, 2);
		c = net_csum_update16(c, oldw, neww);
		memcpy(icmp + 2, &c, 2);
		net_ipv4_header(ns, f, flen, dst, src, NET_PROTO_ICMP, false);
		ns->st.icmp_echo_replies++;
		(void)net_arp_output(ns, f, flen, dst, src, 0, now);
		return;
	}
	if (type == 3) {
		/* quoted: IPv4 header of our segment + its first 8 bytes */
		const uint8_t *in = p + 8;
		size_t ilen = len - 8;
		if (ilen < NET_IP_HLEN || (in[0] >> 4) != 4) {
			ns->st.drop_proto++;
			return;
		}
		size_t ihl = (size_t)(in[0] & 0xf) * 4;
		if (ihl < NET_IP_HLEN || ilen < ihl + 8 || in[9] != NET_PROTO_TCP) {
			ns->st.drop_proto++;
			return;
		}
		uint32_t isrc, idst;
		memcpy(&isrc, in + 12, 4);
		memcpy(&idst, in + 16, 4);
		if (!net_ipv4_owned(ns, isrc)) {
			ns->st.drop_proto++;
			return;
		}
		const uint8_t *t = in + ihl;
		net_tcp_icmp_error(ns, isrc, idst, net_get16(t), net_get16(t + 2), net_get32(t + 4),
				   code, net_get16(p + 6), now);
		return;
	}
	/* other ICMP types are of no interest to a client */
}

void net_ipv4_input(struct net_stack *ns, const uint8_t *ip, size_t len, uint64_t now)
{
	if (len < NET_IP_HLEN || (ip[0] >> 4) != 4) {
		ns->st.drop_ip_hdr++;
		return;
	}
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;
	size_t tot = net_get16(ip + 2);
	if (ihl < NET_IP_HLEN || ihl > len || tot < ihl || tot > len) {
		ns->st.drop_ip_hdr++;
		return;
	}
	if (!ns->cfg.rx_csum_ok && net_csum(ip, ihl) != 0) {
		ns->st.drop_csum++;
		return;
	}
	uint16_t off = net_get16(ip + 6);
	if ((off & IP_MF) || (off & IP_OFFMASK)) {
		ns->st.drop_frag++;
		return;
	}
	uint32_t src, dst;
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	if (!net_ipv4_owned(ns, dst)) {
		ns->st.drop_not_ours++;
		return;
	}
	uint8_t s0 = ((const uint8_t *)&src)[0];
	if (src == 0 || src == 0xffffffffu || s0 >= 224 || s0 == 127) {
		ns->st.drop_ip_hdr++;
		return;
	}
	switch (ip[9]) {
	case NET_PROTO_TCP:
		net_tcp_input(ns, src, dst, ip + ihl, tot - ihl, now);
		break;
	case NET_PROTO_ICMP:
		icmp_input(ns, src, dst, ip + ihl, tot - ihl, now);
		break;
	default:
		ns->st.drop_proto++;
		break;
	}
}
