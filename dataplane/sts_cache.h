/*
 * sts_cache.h — MTA-STS (RFC 8461) policies for outbound delivery:
 * discovery, fetching and caching, driven from the event loop.
 *
 * sts_cache_get(domain) answers from memory. A domain seen for the first
 * time, or whose last check is older than STS_RECHECK_MS, is (re)checked
 * in the background:
 *  1. TXT `_mta-sts.DOMAIN` through the delivery resolver; no STS record
 *     (or a malformed one, or a DNS failure) leaves the cached policy as it
 *     is: used while its max_age lasts, else the domain has none;
 *  2. the record's id equals the cached policy's: nothing to fetch;
 *  3. else mta-sts.DOMAIN is resolved (the same resolver) and
 *     https://mta-sts.DOMAIN/.well-known/mta-sts.txt is fetched with
 *     libcurl on a worker thread (offload.h): to the address just
 *     resolved only, port 443, the certificate verified against the CA bundle given
 *     to sts_cache_create (NULL: the system's) for the name mta-sts.DOMAIN,
 *     no redirects, status 200 and text/plain only, at most
 *     MTA_STS_POLICY_MAX bytes, 10 s to connect and 30 s in all;
 *  4. a policy that parses (mta_sts.h) replaces the cached one until
 *     max_age seconds from now; a failure keeps the old one (RFC 8461 §5).
 * While the first check of a domain is under way there is no answer yet
 * (sts_cache_get returns 0): the caller waits for the notify callback,
 * which runs on the loop thread after every check that finished, with the
 * RFC 8460 failure it met (TLS_RPT_SUCCESS: none).
 *
 * The cache is in memory only (a restart fetches again) and keeps every
 * domain it was asked about; an entry is ~8 KiB with a policy, ~300 bytes
 * without.
 *
 * Ownership: the cache borrows the loop and resolver (they must outlive
 * it) and owns one worker thread. Not thread-safe: the loop thread only.
 */
#ifndef SL_STS_CACHE_H
#define SL_STS_CACHE_H

#include <stdint.h>

#include "loop.h"
#include "mta_sts.h"
#include "resolver.h"
#include "tls_policy.h"

#define STS_RECHECK_MS 300000 /* look at the TXT record again after this long */

struct sts_cache;

/* Called on the loop thread when a check of domain finished; failure is
 * what went wrong (TLS_RPT_SUCCESS: nothing, or simply no policy). */
typedef void (*sts_cache_notify_cb)(void *ctx, const char *domain, enum tls_rpt_result failure);

/* ca_file NULL = the system bundle. -ENOMEM, or the error starting the
 * worker thread. */
int sts_cache_create(struct loop *l, struct resolver *r, const char *ca_file,
		     sts_cache_notify_cb notify, void *ctx, struct sts_cache **out);
/* Cancels lookups, waits for a fetch under way. NULL is a no-op. */
void sts_cache_destroy(struct sts_cache *c);

/* The domain's policy at now_ms (loop clock): 1 and *out (NULL: the
 * domain has no usable policy), or 0 while its first check runs (notify
 * follows). Starts a check when one is due. *out points into the cache
 * and stays valid until sts_cache_destroy; a newer policy for the domain
 * is copied over it just before notify runs. -ENOMEM. */
int sts_cache_get(struct sts_cache *c, const char *domain, uint64_t now_ms,
		  const struct mta_sts_policy **out);

#endif
