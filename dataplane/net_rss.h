/*
 * net_rss.h — software Toeplitz hash, to pick source ports whose reply
 * packets the NIC steers (RSS) to our own rx queue.
 *
 * The NIC hashes incoming IPv4/TCP packets over (src ip, dst ip, src port,
 * dst port) as they appear in the packet; for our connections that is
 * (remote ip, our ip, remote port, our port). Addresses are network order,
 * ports host order in the API and hashed big-endian.
 */
#ifndef SL_NET_RSS_H
#define SL_NET_RSS_H

#include <stddef.h>
#include <stdint.h>

/* Toeplitz hash of len input bytes with key (key_len >= len + 4). */
uint32_t net_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len);
/* The hash the NIC computes for an IPv4/TCP packet from src to dst. */
uint32_t net_rss_hash_tcp4(const uint8_t *key, size_t key_len, uint32_t src_ip,
			   uint32_t dst_ip, uint16_t src_port, uint16_t dst_port);
/* The rx queue for hash: reta[hash % reta_size] if reta_size, else hash % queues. */
uint16_t net_rss_queue(uint32_t hash, uint16_t queues, const uint16_t *reta, uint16_t reta_size);

#endif
