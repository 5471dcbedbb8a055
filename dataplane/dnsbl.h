/*
 * dnsbl.h — the periodic DNSBL self-check of the source IPs.
 *
 * Every dnsbl.interval (and once at start) each pool IP is looked up in
 * each configured zone: 198.51.100.11 in zen.test is the A query
 * "11.100.51.198.zen.test" (IPv6: the 32 reversed nibbles). An answer
 * 127.0.0.x means listed; NXDOMAIN (or no A record) means not listed;
 * 127.255.255.x (the list refuses our resolver) and lookup failures keep
 * what the last check found (`why` says so). An IP that appears in several
 * pools is checked once.
 *
 * The checker only looks and reports: `changed` runs when an (IP, zone)
 * pair becomes listed or stops being listed; the daemon pauses and resumes
 * the IP (egress_pause_ip), logs, writes the event and the metric. No I/O
 * of its own besides the resolver's lookups, no logging; the clock is
 * passed in (dnsbl_tick).
 *
 * The checker borrows the resolver and the config; all calls come from
 * the resolver's (the event loop's) thread.
 */
#ifndef SL_DNSBL_H
#define SL_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "resolver.h"

struct dnsbl;

struct dnsbl_ip {
	char ip[48];                     /* canonical text */
	struct sockaddr_storage addr;
	bool listed_any;                 /* listed in at least one zone */
};

/* ip (index into dnsbl_get) became listed (listed true: answer is the A
 * record, "127.0.0.2") or not (listed false) in zone. */
typedef void (*dnsbl_changed_cb)(void *ctx, const struct dnsbl_ip *ip, const char *zone,
				 bool listed, const char *answer);

/* A checker of every distinct pool IP of cfg in cfg->dnsbl.zones. The
 * first round starts at the first dnsbl_tick. -ENOMEM. */
int dnsbl_create(struct resolver *r, const struct sl_config *cfg, dnsbl_changed_cb changed,
		 void *ctx, struct dnsbl **out);
/* Cancel lookups under way and free. NULL is a no-op. */
void dnsbl_destroy(struct dnsbl *d);
/* Start a round when one is due (now_ms: a monotonic clock) and none is
 * under way. Cheap otherwise; call it often. */
void dnsbl_tick(struct dnsbl *d, uint64_t now_ms);

/* The distinct IPs, in config order. */
size_t dnsbl_count(const struct dnsbl *d);
const struct dnsbl_ip *dnsbl_get(const struct dnsbl *d, size_t i);
/* The IP's state, for listings: zones it is listed in ("" none) and the
 * last check's notes (lookup failures); NULL ip: not checked. */
const struct dnsbl_ip *dnsbl_find(const struct dnsbl *d, const char *ip, const char **listed,
				  const char **why);
/* Completed rounds. */
uint64_t dnsbl_rounds(const struct dnsbl *d);

/* The query name of addr in zone ("11.100.51.198.zen.test"). 0, -EINVAL
 * (another family, does not fit). */
int dnsbl_query_name(const struct sockaddr *addr, const char *zone, char *out, size_t outlen);

#endif
