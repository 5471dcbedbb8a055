/*
 * net_shard.h — which worker owns a connection and a received frame when
 * the dpdk transport runs several workers (dpdk.workers, docs/dpdk.md).
 *
 * Each worker has its own rx/tx queue pair and its own net_stack, so a
 * connection lives in exactly one stack. Ownership is by local port: the
 * ephemeral range NET_SHARD_PORT_LO..NET_SHARD_PORT_HI is cut into one
 * contiguous slice per worker, and worker w's stack picks source ports in
 * its slice only (on top of the RSS constraint, which makes the NIC steer
 * replies to w's queue). A frame that still arrives on another worker's
 * queue (no RSS, a PMD that ignores it, ICMP errors hashed on the outer
 * header) is looked up here by its local port and handed over.
 *
 * Pure functions over bytes, no DPDK, no state: safe from any thread.
 */
#ifndef SL_NET_SHARD_H
#define SL_NET_SHARD_H

#include <stddef.h>
#include <stdint.h>

/* The stack's default ephemeral range, shared out among the workers. */
#define NET_SHARD_PORT_LO 32768
#define NET_SHARD_PORT_HI 60999

/* net_shard_owner results besides a worker index. */
#define NET_SHARD_ANY (-1) /* not a connection's frame: whoever received it handles it */
#define NET_SHARD_ALL (-2) /* every worker wants it (ARP replies: each has its own cache) */

/* Source-port slice [*lo, *hi] of worker w of n (n >= 1, w < n). */
void net_shard_ports(unsigned n, unsigned w, uint16_t *lo, uint16_t *hi);
/* Worker owning local port p, or NET_SHARD_ANY outside the range. */
int net_shard_port_owner(unsigned n, uint16_t port);
/* Which of n workers must process this received Ethernet frame: TCP by its
 * destination port, ICMP errors by the source port of the TCP header they
 * quote, ARP replies NET_SHARD_ALL, everything else (and anything
 * malformed, which the stack will count and drop) NET_SHARD_ANY. */
int net_shard_owner(unsigned n, const uint8_t *frame, size_t len);
/* The worker for a new connection: the least loaded (load[i] = its open
 * connections), ties broken round-robin from *cursor, which advances. */
unsigned net_shard_pick(unsigned n, const uint32_t *load, unsigned *cursor);

#endif
