/*
 * net_csum.h — Internet checksums (RFC 1071) for the userspace stack.
 *
 * Sums are kept as 32-bit one's-complement accumulators ("partial" sums)
 * and folded to 16 bits at the end. All values are in network byte order
 * as they sit in the packet, so results can be stored without swapping.
 */
#ifndef SL_NET_CSUM_H
#define SL_NET_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* Add len bytes at p to the partial sum acc. */
uint32_t net_csum_partial(const void *p, size_t len, uint32_t acc);
/* Fold a partial sum to 16 bits (not complemented). */
uint16_t net_csum_fold(uint32_t acc);
/* The complemented checksum of len bytes at p (IPv4 header, ICMP). */
uint16_t net_csum(const void *p, size_t len);
/* Partial sum of the IPv4 pseudo-header (addresses network order, len host order). */
uint32_t net_csum_phdr(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);
/* RFC 1624 incremental update of checksum field csum when a 16-bit word
 * changes from old to new (all network order). */
uint16_t net_csum_update16(uint16_t csum, uint16_t old, uint16_t new_);

#endif
