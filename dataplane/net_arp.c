/*
 * net_arp.c — ARP for the userspace stack: answer requests for owned IPs,
 * resolve next hops (gateway or on-link) with a small cache, retry, give
 * up into a short negative entry, and queue a bounded number of frames per
 * unresolved next hop until the reply arrives.
 */
#include "net_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARP_LEN 28

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

void net_stack_tx(struct net_stack *ns, const uint8_t *frame, size_t len, unsigned flags)
{
	ns->st.tx_packets++;
	ns->st.tx_bytes += len;
	ns->tx(ns->tx_ctx, frame, len, flags);
}

static void arp_send(struct net_stack *ns, uint16_t op, const uint8_t *dst_mac, uint32_t sip,
		     const uint8_t *tha, uint32_t tip)
{
	uint8_t f[NET_ETH_HLEN + ARP_LEN + 18]; /* padded to the 60-byte minimum */
	uint8_t *a = f + NET_ETH_HLEN;

	memset(f, 0, sizeof(f));
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, ns->cfg.mac, 6);
	net_put16(f + 12, NET_ETHERTYPE_ARP);
	net_put16(a, 1);
	net_put16(a + 2, NET_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	net_put16(a + 6, op);
	memcpy(a + 8, ns->cfg.mac, 6);
	memcpy(a + 14, &sip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, &tip, 4);
	if (op == 1)
		ns->st.arp_requests_tx++;
	else
		ns->st.arp_replies_tx++;
	net_stack_tx(ns, f, sizeof(f), 0);
}

static void arp_request(struct net_stack *ns, struct net_arp_entry *e)
{
	static const uint8_t zero[6];
	arp_send(ns, 1, bcast, e->src_ip, zero, e->ip);
}

static void arp_recompute_next(struct net_stack *ns)
{
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < NET_ARP_SLOTS; i++)
		if (ns->arp[i].state != NET_ARP_FREE && ns->arp[i].expire_at < next)
			next = ns->arp[i].expire_at;
	ns->arp_next = next;
}

static void arp_drop_queue(struct net_stack *ns, struct net_arp_entry *e, bool count)
{
	struct net_frame *f = e->q_head;
	while (f) {
		struct net_frame *n = f->next;
		if (count)
			ns->st.tx_arp_failed++;
		free(f);
		f = n;
	}
	e->q_head = e->q_tail = NULL;
	e->qlen = 0;
}

static struct net_arp_entry *arp_find(struct net_stack *ns, uint32_t ip)
{
	struct net_arp_entry *e = &ns->arp[ns->arp_last];
	if (e->state != NET_ARP_FREE && e->ip == ip)
		return e;
	for (uint32_t i = 0; i < NET_ARP_SLOTS; i++) {
		if (ns->arp[i].state != NET_ARP_FREE && ns->arp[i].ip == ip) {
			ns->arp_last = i;
			return &ns->arp[i];
		}
	}
	return NULL;
}

/* A free slot, else the least recently used one (its queue dropped). */
static struct net_arp_entry *arp_alloc(struct net_stack *ns, uint32_t ip, uint64_t now)
{
	struct net_arp_entry *victim = NULL;
	for (uint32_t i = 0; i < NET_ARP_SLOTS; i++) {
		struct net_arp_entry *e = &ns->arp[i];
		if (e->state == NET_ARP_FREE) {
			victim = e;
			break;
		}
		if (!victim || e->used_at < victim->used_at)
			victim = e;
	}
	if (victim->state != NET_ARP_FREE) {
		arp_drop_queue(ns, victim, true);
		ns->st.arp_cache_entries--;
	}
	memset(victim, 0, sizeof(*victim));
	victim->ip = ip;
	victim->used_at = now;
	ns->st.arp_cache_entries++;
	return victim;
}

static void arp_free(struct net_stack *ns, struct net_arp_entry *e)
{
	arp_drop_queue(ns, e, true);
	e->state = NET_ARP_FREE;
	ns->st.arp_cache_entries--;
}

static void arp_resolved(struct net_stack *ns, struct net_arp_entry *e, const uint8_t *mac,
			 uint64_t now)
{
	memcpy(e->mac, mac, 6);
	e->state = NET_ARP_REACHABLE;
	e->tries = 0;
	e->expire_at = now + NET_ARP_REACHABLE_MS;
	struct net_frame *f = e->q_head;
	e->q_head = e->q_tail = NULL;
	e->qlen = 0;
	while (f) {
		struct net_frame *n = f->next;
		memcpy(f->data, mac, 6);
		net_stack_tx(ns, f->data, f->len, f->flags);
		free(f);
		f = n;
	}
	arp_recompute_next(ns);
}

void net_arp_input(struct net_stack *ns, const uint8_t *frame, size_t len, uint64_t now)
{
	const uint8_t *a = frame + NET_ETH_HLEN;
	uint32_t spa, tpa;

	if (len < NET_ETH_HLEN + ARP_LEN || net_get16(a) != 1 ||
	    net_get16(a + 2) != NET_ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4) {
		ns->st.drop_proto++;
		return;
	}
	uint16_t op = net_get16(a + 6);
	if (op != 1 && op != 2) {
		ns->st.drop_proto++;
		return;
	}
	memcpy(&spa, a + 14, 4);
	memcpy(&tpa, a + 24, 4);
	const uint8_t *sha = a + 8;
	if (sha[0] & 1) { /* multicast/broadcast sender MAC: bogus */
		ns->st.drop_proto++;
		return;
	}
	bool for_us = net_ipv4_owned(ns, tpa);
	/* RFC 826 merge: update an existing entry for the sender; create
	 * one only when the packet is addressed to us. */
	if (spa != 0 && !net_ipv4_owned(ns, spa)) {
		struct net_arp_entry *e = arp_find(ns, spa);
		if (!e && for_us) {
			e = arp_alloc(ns, spa, now);
			e->src_ip = tpa;
		}
		if (e)
			arp_resolved(ns, e, sha, now);
	}
	if (for_us && op == 1)
		arp_send(ns, 2, sha, tpa, sha, spa);
}

bool net_arp_routable(const struct net_stack *ns, uint32_t dst_ip)
{
	for (size_t i = 0; i < ns->cfg.n_ips; i++)
		if (((ns->cfg.ips[i] ^ dst_ip) & ns->netmask) == 0)
			return true;
	return ns->cfg.gateway != 0;
}

static uint32_t next_hop(const struct net_stack *ns, uint32_t dst_ip)
{
	for (size_t i = 0; i < ns->cfg.n_ips; i++)
		if (((ns->cfg.ips[i] ^ dst_ip) & ns->netmask) == 0)
			return dst_ip;
	return ns->cfg.gateway;
}

int net_arp_output(struct net_stack *ns, uint8_t *frame, size_t len, uint32_t src_ip,
		   uint32_t dst_ip, unsigned flags, uint64_t now)
{
	uint32_t hop = next_hop(ns, dst_ip);
	struct net_arp_entry *e;

	memcpy(frame + 6, ns->cfg.mac, 6);
	net_put16(frame + 12, NET_ETHERTYPE_IPV4);
	if (hop == 0) {
		ns->st.tx_no_route++;
		return -ENETUNREACH;
	}
	e = arp_find(ns, hop);
	if (e && e->state == NET_ARP_REACHABLE) {
		e->used_at = now;
		if (e->expire_at - now < NET_ARP_REFRESH_MS && e->refresh_at + NET_ARP_RETRY_MS <= now) {
			e->refresh_at = now;
			arp_request(ns, e);
		}
		memcpy(frame, e->mac, 6);
		net_stack_tx(ns, frame, len, flags);
		return 0;
	}
	if (e && e->state == NET_ARP_FAILED) {
		ns->st.tx_arp_failed++;
		return -EHOSTUNREACH;
	}
	if (!e) {
		e = arp_alloc(ns, hop, now);
		e->src_ip = src_ip;
		e->state = NET_ARP_INCOMPLETE;
		e->tries = 1;
		e->expire_at = now + NET_ARP_RETRY_MS;
		arp_request(ns, e);
		arp_recompute_next(ns);
	}
	e->used_at = now;
	if (e->qlen >= NET_ARP_QUEUE_MAX) {
		ns->st.tx_arp_queue_full++;
		return -ENOBUFS;
	}
	struct net_frame *f = malloc(sizeof(*f) + len);
	if (!f) {
		ns->st.tx_arp_queue_full++;
		return -ENOBUFS;
	}
	f->next = NULL;
	f->len = len;
	f->flags = flags;
	memcpy(f->data, frame, len);
	if (e->q_tail)
		e->q_tail->next = f;
	else
		e->q_head = f;
	e->q_tail = f;
	e->qlen++;
	return 0;
}

void net_arp_timers(struct net_stack *ns, uint64_t now)
{
	if (ns->arp_next > now)
		return;
	for (size_t i = 0; i < NET_ARP_SLOTS; i++) {
		struct net_arp_entry *e = &ns->arp[i];
		if (e->state == NET_ARP_FREE || e->expire_at > now)
			continue;
		switch (e->state) {
		case NET_ARP_INCOMPLETE:
			if (e->tries >= NET_ARP_TRIES) {
				arp_drop_queue(ns, e, true);
				e->state = NET_ARP_FAILED;
				e->expire_at = now + NET_ARP_FAILED_MS;
			} else {
				e->tries++;
				e->expire_at = now + NET_ARP_RETRY_MS;
				arp_request(ns, e);
			}
			break;
		default: /* REACHABLE expired, FAILED over: forget */
			arp_free(ns, e);
			break;
		}
	}
	arp_recompute_next(ns);
}

void net_arp_announce(struct net_stack *ns, uint64_t now)
{
	static const uint8_t zero[6];
	for (size_t i = 0; i < ns->cfg.n_ips; i++)
		arp_send(ns, 1, bcast, ns->cfg.ips[i], zero, ns->cfg.ips[i]);
	/* resolve the gateway ahead of the first burst of connects, whose
	 * SYNs would otherwise overflow its pending queue */
	uint32_t gw = ns->cfg.gateway;
	if (gw && !arp_find(ns, gw)) {
		struct net_arp_entry *e = arp_alloc(ns, gw, now);
		e->src_ip = ns->cfg.ips[0];
		e->state = NET_ARP_INCOMPLETE;
		e->tries = 1;
		e->expire_at = now + NET_ARP_RETRY_MS;
		arp_request(ns, e);
		arp_recompute_next(ns);
	}
}

void net_arp_destroy(struct net_stack *ns)
{
	for (size_t i = 0; i < NET_ARP_SLOTS; i++)
		arp_drop_queue(ns, &ns->arp[i], false);
}
