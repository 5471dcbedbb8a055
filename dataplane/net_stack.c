/*
 * net_stack.c — the userspace stack object: configuration, Ethernet
 * dispatch, timers and counters. The layers live in net_arp.c, net_ipv4.c
 * and net_tcp.c.
 */
#include "net_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The netmask for prefix_len in network order. */
static uint32_t htonl_prefix(uint8_t prefix_len)
{
	uint32_t m = prefix_len ? 0xffffffffu << (32 - prefix_len) : 0;
	uint8_t b[4] = {(uint8_t)(m >> 24), (uint8_t)(m >> 16), (uint8_t)(m >> 8), (uint8_t)m};
	uint32_t r;
	memcpy(&r, b, 4);
	return r;
}

int net_stack_create(const struct net_stack_config *cfg, net_tx_fn tx, void *tx_ctx,
		     struct net_stack **out)
{
	struct net_stack *ns;
	int err = -EINVAL;

	if (!cfg || !tx || !out || cfg->n_ips == 0 || cfg->n_ips > NET_MAX_IPS ||
	    cfg->prefix_len > 32 || (cfg->mac[0] & 1))
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_ips; i++)
		if (cfg->ips[i] == 0)
			return -EINVAL;
	if (cfg->mtu && (cfg->mtu < 576 || cfg->mtu > 9000))
		return -EINVAL;
	if (cfg->port_lo > cfg->port_hi || (cfg->port_lo == 0 && cfg->port_hi != 0))
		return -EINVAL;
	if (cfg->rss_key && cfg->rss_queues > 1 &&
	    (cfg->rss_key_len < 16 || cfg->rss_key_len > 64 || cfg->rss_queue >= cfg->rss_queues))
		return -EINVAL;
	if (cfg->reta_size && !cfg->reta)
		return -EINVAL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->cfg = *cfg;
	if (!ns->cfg.mtu)
		ns->cfg.mtu = 1500;
	if (!ns->cfg.max_conns)
		ns->cfg.max_conns = 1024;
	if (!ns->cfg.port_lo) {
		ns->cfg.port_lo = 32768;
		ns->cfg.port_hi = 60999;
	}
	if (!ns->cfg.time_wait_ms)
		ns->cfg.time_wait_ms = 2000;
	if (cfg->rss_key && cfg->rss_queues > 1) {
		memcpy(ns->rss_key, cfg->rss_key, cfg->rss_key_len);
	} else {
		ns->cfg.rss_key_len = 0;
		ns->cfg.rss_queues = 1;
		ns->cfg.rss_queue = 0;
	}
	ns->cfg.rss_key = NULL;
	if (cfg->reta_size) {
		ns->reta = malloc(cfg->reta_size * sizeof(*ns->reta));
		if (!ns->reta) {
			err = -ENOMEM;
			goto fail;
		}
		memcpy(ns->reta, cfg->reta, cfg->reta_size * sizeof(*ns->reta));
		for (size_t i = 0; i < cfg->reta_size; i++)
			if (ns->reta[i] >= ns->cfg.rss_queues && ns->cfg.rss_queues > 1)
				goto fail;
	}
	ns->cfg.reta = NULL;
	ns->netmask = htonl_prefix(cfg->prefix_len);
	ns->tx = tx;
	ns->tx_ctx = tx_ctx;
	ns->txbuf_size = NET_ETH_HLEN + ns->cfg.mtu;
	ns->txbuf = malloc(ns->txbuf_size);
	if (!ns->txbuf) {
		err = -ENOMEM;
		goto fail;
	}
	if (cfg->isn_secret) {
		ns->sip_k0 = cfg->isn_secret;
		ns->sip_k1 = cfg->isn_secret * 0x9e3779b97f4a7c15ull + 1;
	} else {
		uint64_t k[2];
		if (getrandom(k, sizeof(k), 0) != sizeof(k)) {
			err = -errno;
			goto fail;
		}
		ns->sip_k0 = k[0];
		ns->sip_k1 = k[1];
	}
	ns->port_cursor = (uint32_t)(ns->sip_k1 % ((uint32_t)ns->cfg.port_hi - ns->cfg.port_lo + 1));
	ns->arp_next = UINT64_MAX;
	err = net_tcp_table_init(ns);
	if (err)
		goto fail;
	*out = ns;
	return 0;
fail:
	net_stack_destroy(ns);
	return err;
}

void net_stack_destroy(struct net_stack *ns)
{
	if (!ns)
		return;
	net_tcp_table_destroy(ns);
	net_arp_destroy(ns);
	free(ns->txbuf);
	free(ns->reta);
	free(ns);
}

void net_stack_input(struct net_stack *ns, const uint8_t *frame, size_t len, uint64_t now_ms)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	ns->st.rx_packets++;
	ns->st.rx_bytes += len;
	if (len < NET_ETH_HLEN) {
		ns->st.drop_eth++;
		return;
	}
	bool to_us = memcmp(frame, ns->cfg.mac, 6) == 0;
	bool to_all = memcmp(frame, bcast, 6) == 0;
	uint16_t type = net_get16(frame + 12);
	ns->depth++;
	if (type == NET_ETHERTYPE_ARP && (to_us || to_all))
		net_arp_input(ns, frame, len, now_ms);
	else if (type == NET_ETHERTYPE_IPV4 && to_us)
		net_ipv4_input(ns, frame + NET_ETH_HLEN, len - NET_ETH_HLEN, now_ms);
	else
		ns->st.drop_eth++;
	if (--ns->depth == 0)
		net_tcp_reap(ns);
}

void net_stack_timers(struct net_stack *ns, uint64_t now_ms)
{
	ns->depth++;
	net_arp_timers(ns, now_ms);
	net_tcp_timers(ns, now_ms);
	if (--ns->depth == 0)
		net_tcp_reap(ns);
}

uint64_t net_stack_next_timer(const struct net_stack *ns)
{
	uint64_t t = net_tcp_next_timer(ns);
	return ns->arp_next < t ? ns->arp_next : t;
}

void net_stack_announce(struct net_stack *ns, uint64_t now_ms)
{
	net_arp_announce(ns, now_ms);
}

void net_stack_stats(const struct net_stack *ns, struct net_stack_stats *out)
{
	*out = ns->st;
}
