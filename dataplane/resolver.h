/*
 * resolver.h — asynchronous MX and host resolution for delivery, on
 * libunbound, driven by one file descriptor in the caller's event loop.
 *
 * The resolver is a forwarding stub: every query goes to the configured DNS
 * servers (config dns.servers) or, if none, to the nameservers in
 * /etc/resolv.conf. It never recurses itself, never consults root hints or
  * /etc/hosts, and validates DNSSEC only when given a trust anchor
 * (resolver_set_trust_anchor_file; then every answer carries its status
 * and bogus answers are failures). It caches answers (libunbound's
 * message and RRset caches, honouring TTLs). Names under "test." and
 * "home.arpa." and the reverse zones of the RFC 5737 documentation
 * networks are forwarded like any other (libunbound would otherwise
 * answer them locally); "localhost.", "invalid." and "onion." are answered
 * locally as RFC 6761/7686 ask.
 *
 * Use: poll resolver_fd() for readability and call resolver_process() when
 * it is readable; that runs the completion callbacks, in the caller's
 * thread. A callback may start, cancel or even destroy (see below) freely.
 * Nothing here is thread-safe: one resolver per thread that uses it. Each
 * resolver owns one libunbound background thread (all signals blocked), its
 * sockets and its cache.
 *
 * resolver_lookup_mx(domain) delivers the hosts to try, in order:
 *  - MX records sorted by preference, equal preferences shuffled (a PRNG
 *    seeded from getrandom(); resolver_seed() for tests), duplicates
 *    dropped, at most RESOLVER_MAX_HOSTS hosts;
 *  - each host's A and AAAA looked up concurrently; at most
 *    RESOLVER_MAX_ADDRS addresses per host, IPv4 before IPv6;
 *  - hosts without addresses are dropped;
 *  - no MX record at all (NODATA): the domain itself is the one host, pref
 *    0, and res->implicit is set (RFC 5321 5.1);
 *  - an MX target that is an IPv4 literal ("MX 10 203.0.113.1.") is not
 *    allowed by RFC 5321 but is accepted as that address, without a lookup,
 *    since some sites publish it and it is unambiguous;
 *  - an MX target with characters outside letters, digits, '-' and '_' is
 *    skipped as unusable;
 *  - a null MX ("MX 0 .", RFC 7505) as the only record means the domain
 *    accepts no mail; mixed with real MX records it is ignored.
 * Names are lower-cased and lose a trailing dot, in results too.
 *
 * DNSSEC and DANE (RFC 7672): with a trust anchor, an MX answer that fails
 * validation (bogus) is SL_EDNS, and A/AAAA answers that do are ignored
 * like a temporary failure. res->mx_sec is the MX RRset's status (for an
 * implicit MX, that of the NODATA answer); each host's addr_sec is
 * SECURE only if every A/AAAA answer it got was. With resolver_set_tlsa()
 * on, every named host of a secure MX answer also gets its TLSA RRset at
 * _25._tcp.HOST looked up, concurrently with its addresses: tlsa_sec and
 * the raw rdata (at most RESOLVER_MAX_TLSA records; dane.h parses them).
 * A TLSA SERVFAIL or timeout is RESOLVER_SEC_FAILED; it fails nothing
 * else of the lookup.
 *
 * Callback errors (err; res is NULL unless err is 0):
 *  SL_ENOTFOUND  permanent: NXDOMAIN; null MX; no MX and no A/AAAA; every
 *                MX host without an address or unusable.
 *  SL_EDNS       temporary: SERVFAIL, REFUSED, timeout, network error, or
 *                no host has an address and at least one host's lookup
 *                failed temporarily (a temporary failure for one host is
 *                ignored when another host has addresses).
 *  -ENOMEM       out of memory (temporary).
 *
 * Timeouts are libunbound's: each try waits for the upstream's measured
 * RTT-based timeout (376 ms for an unknown server, doubling on each loss,
 * capped by resolver_set_max_rtt_ms(), default 120000 ms). A query to a
 * dead server therefore fails with SL_EDNS after about 17 s by default
 * (measured with libunbound 1.17: max RTT 500 ms -> 0.8 s, 1000 -> 2.3 s,
 * 2000 -> 5.3 s, 4000 -> 11.3 s, >= 8000 -> 17.3 s). A server that timed
 * out is then considered down and queries fail at once for up to 60 s
 * (infra-host-ttl, lowered from 900 s), after which it is probed again;
 * SERVFAIL answers are cached for a few seconds.
 */
#ifndef SL_RESOLVER_H
#define SL_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVER_MAX_HOSTS 10 /* MX hosts kept per domain */
#define RESOLVER_MAX_ADDRS 8  /* addresses kept per host */
#define RESOLVER_MAX_TLSA 16  /* TLSA records kept per host */

struct resolver;

/* The DNSSEC status of an answer. */
enum resolver_sec {
	RESOLVER_SEC_INSECURE = 0, /* unsigned, no trust anchor, or not looked up */
	RESOLVER_SEC_SECURE,       /* validated */
	RESOLVER_SEC_BOGUS,        /* failed validation */
	RESOLVER_SEC_FAILED,       /* (TLSA only) SERVFAIL, timeout, or not startable */
};

struct mx_host {
	char *name;                      /* lower case, no trailing dot */
	uint16_t pref;                   /* MX preference; 0 if implicit or a plain host */
	struct sockaddr_storage *addrs;  /* port 0: the caller sets it */
	size_t n_addrs;                  /* 1..RESOLVER_MAX_ADDRS, IPv4 first */
	enum resolver_sec addr_sec;      /* SECURE only if every A/AAAA answer was */
	enum resolver_sec tlsa_sec;      /* _25._tcp.name; INSECURE if not asked */
	const uint8_t *const *tlsa;      /* TLSA rdata, n_tlsa of them */
	const size_t *tlsa_len;
	size_t n_tlsa;
};

struct mx_result {
	struct mx_host *hosts; /* in the order to try */
	size_t n_hosts;        /* >= 1 */
	bool implicit;         /* no MX: the domain's own A/AAAA (RFC 5321 5.1) */
	enum resolver_sec mx_sec; /* the MX answer's status; INSECURE for lookup_host */
};

/* h's IPv4 addresses, host byte order, into out (at most max): how many.
 * (DNS blocklists answer in A records: link_check.h, dnsbl.h.) */
size_t resolver_host_ipv4s(const struct mx_host *h, uint32_t *out, size_t max);

/* err 0 and res, or err < 0 and res NULL. res and everything it points to
 * is owned by the resolver and valid only during the callback. */
typedef void (*resolver_mx_cb)(void *ctx, int err, const struct mx_result *res);

/* A resolver forwarding to servers[0..n) (lens[i] each; port 0 means 53),
 * or to /etc/resolv.conf's nameservers if n is 0. -EINVAL bad address,
 * -ENOMEM, SL_EDNS libunbound setup failed or resolv.conf unreadable. */
int resolver_create(const struct sockaddr_storage *servers, const socklen_t *lens,
		    size_t n, struct resolver **out);

/* Cancel every outstanding lookup without calling its callback and free r.
 * May be called from a callback: r is then freed when resolver_process
 * returns (and no further callbacks run). Stop polling resolver_fd() first:
 * the descriptor is closed. NULL is a no-op. */
void resolver_destroy(struct resolver *r);

/* The descriptor to poll for readability; constant for r's lifetime. */
int resolver_fd(const struct resolver *r);

/* Read finished queries and run completion callbacks; call when resolver_fd()
 * is readable (calling it spuriously is harmless). 0, or -EPIPE if
 * libunbound's worker died (destroy and recreate the resolver). */
int resolver_process(struct resolver *r);

/* Look up where mail for domain goes; cb runs later from resolver_process,
 * exactly once unless cancelled. *handle_out (may be NULL) names the lookup
 * for resolver_cancel. Never calls cb itself. -EINVAL domain is not a
 * hostname (empty, too long, bad characters, an IP literal), -ENOMEM,
 * SL_EDNS libunbound refused the query. */
int resolver_lookup_mx(struct resolver *r, const char *domain, resolver_mx_cb cb,
		       void *ctx, uint64_t *handle_out);

/* Look up host's A and AAAA; the result is one mx_host (pref 0, implicit
 * false). For static routes and the like. Same errors as resolver_lookup_mx;
 * an IP literal is -EINVAL (it needs no lookup). */
int resolver_lookup_host(struct resolver *r, const char *host, resolver_mx_cb cb,
			 void *ctx, uint64_t *handle_out);

/* The host names a PTR lookup found (lower case, no trailing dot; at most
 * RESOLVER_MAX_HOSTS), valid only during the callback. err as above:
 * SL_ENOTFOUND for NXDOMAIN or no PTR record, SL_EDNS temporary. */
typedef void (*resolver_ptr_cb)(void *ctx, int err, const char *const *names, size_t n);
/* Look up the PTR records of addr (AF_INET or AF_INET6; the port is
 * ignored): reverse DNS, for forward-confirmed rDNS checks. -EINVAL other
 * families, -ENOMEM, SL_EDNS. Cancel like any lookup. */
int resolver_lookup_ptr(struct resolver *r, const struct sockaddr *addr, resolver_ptr_cb cb,
			void *ctx, uint64_t *handle_out);
/* The TXT records of a name, each record's character-strings joined
 * (RFC 8461 §3.1 style), valid only during the callback; at most 16, each
 * at most 2048 bytes (longer ones and ones with a NUL are skipped). err as
 * above: SL_ENOTFOUND for NXDOMAIN or no usable TXT record. */
typedef void (*resolver_txt_cb)(void *ctx, int err, const char *const *txts, size_t n);
/* Look up name's TXT records (e.g. "_mta-sts.example.com"). -EINVAL not a
 * host name (a leading '_' label is fine), -ENOMEM, SL_EDNS. */
int resolver_lookup_txt(struct resolver *r, const char *name, resolver_txt_cb cb, void *ctx,
			uint64_t *handle_out);
/* Cancel a lookup: its callback will not run. Unknown or finished handles
 * (including the one whose callback is running) are ignored. O(outstanding
 * lookups). */
void resolver_cancel(struct resolver *r, uint64_t handle);

/* Reseed the PRNG that orders equal-preference MX hosts (tests). */
void resolver_seed(struct resolver *r, uint64_t seed);

/* Cap the wait for one upstream reply at ms (libunbound's
 * infra-cache-max-rtt; see the timeouts above). Only before the first
 * lookup: -EBUSY after. -EINVAL if ms is 0. */
int resolver_set_max_rtt_ms(struct resolver *r, unsigned ms);

/* Validate DNSSEC with the trust anchors (DS or DNSKEY records, zone file
 * format, e.g. /usr/share/dns/root.key) in path. Only before the first
 * lookup: -EBUSY after; -errno if path is unreadable. The file's contents
 * are read at the first lookup; bad ones make lookups fail (SL_EDNS). */
int resolver_set_trust_anchor_file(struct resolver *r, const char *path);
/* Look up TLSA records of MX hosts (see DNSSEC and DANE above). Useful only
 * with a trust anchor. Affects lookups started afterwards. */
void resolver_set_tlsa(struct resolver *r, bool on);

#endif
