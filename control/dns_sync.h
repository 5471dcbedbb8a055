/*
 * dns_sync.h — blocking DNS lookups for the control plane (domain checks,
 * SPF and DKIM key lookups of verify-by-email), on a private libunbound
 * context.
 *
 * The data path's resolver (dataplane/resolver.h) runs asynchronously on
 * the loop thread; API threads and the verifier must not use it. A
 * dns_sync is one ub_ctx configured like the daemon's dns.servers
 * (forwarders; none = /etc/resolv.conf) and, for tests, with unbound
 * "local-data:" records so lookups can be answered without a server.
 * Calls block the calling thread; a dns_sync is not thread-safe (create
 * one per thread or per request: creation is cheap, no cache is shared).
 *
 * Errors: -ENOMEM; -EINVAL a bad server or record; -EIO the resolver
 * failed (SERVFAIL, timeout); SL_ENOTFOUND NXDOMAIN or no data of the type.
 */
#ifndef SL_DNS_SYNC_H
#define SL_DNS_SYNC_H

#include <stddef.h>

#include "buf.h"

struct dns_sync;
struct ub_result;

/* servers: NULL-terminated "IP" or "IP@PORT" strings (NULL or empty =
 * /etc/resolv.conf); local_data: NULL-terminated unbound RR strings
 * ("a.test. TXT \"v=spf1 -all\"") served locally, for tests ("local-zone
 * test. static" declares a zone so other names in it are NXDOMAIN without
 * asking a server); may be NULL. */
int dns_sync_create(const char *const *servers, const char *const *local_data,
		    struct dns_sync **out);
void dns_sync_destroy(struct dns_sync *d);

/* Resolve (name, rrtype) with class IN; *res is the caller's to
 * ub_resolve_free() (also when it holds NXDOMAIN / no data). */
int dns_sync_query(struct dns_sync *d, const char *name, int rrtype, struct ub_result **res);

/* Every TXT record of name, each with its strings concatenated, appended
 * to out separated by '\n' (out reset first). SL_ENOTFOUND if none. */
int dns_sync_txt(struct dns_sync *d, const char *name, struct sl_buf *out);

/* Decode one RR data item of type rrtype (MX, CNAME, PTR: a name; TXT: the
 * concatenated strings) into out as text (names without the final dot,
 * MX without its preference). -EINVAL if malformed. */
int dns_sync_rdata_text(int rrtype, const char *data, size_t len, char *out, size_t cap);

#endif
