/*
 * egress.h — outbound delivery: turns ready deliveries into SMTP sessions.
 *
 * For each domain queue with ready work, egress resolves where the mail
 * goes (a static route, else MX with fallback to the domain's address),
 * opens connections from the pool's source IPs through the transport (one
 * IP per connection, round-robin in the pool), runs the sans-I/O SMTP
 * client over it (STARTTLS under the domain's TLS policy: tls_policy.h,
 * MTA-STS from sts_cache.h; the outcome in the event log and in the
 * TLS-RPT counters, tls_report.h),
 * reuses each connection for up to delivery.max_messages_per_connection
 * messages, and hands every recipient's reply back to the queue.
 *
 * Sites: domain queues of one pool whose MX sets are equal (site_key(),
 * plus the route port and TLS policy) share one site: one connection
 * count, one connection_rate and message_rate bucket, one set of idle
 * sessions. A session of a site takes its next delivery from any domain
 * of the site with ready work, round-robin over the domains (within a
 * domain transactional first); each transaction still carries recipients
 * of one domain. A domain named by a shaping domain rule, or under an
 * MTA-STS policy, gets a site of its own. Limits therefore apply per (pool, site); a pool of one IP is
 * per (IP, site).
 *
 * Shaping: the site's limits come from the shaping rules
 * (control/shaping.h; `shaping.rules` in the config), matched on the
 * pool, the provider (MX suffix, `shaping.providers`), the site (the
 * sorted MX set) and, for a domain's own site, the domain, with
 * delivery.* as the builtin layer: max_connections, connection_rate,
 * message_rate, max_messages_per_connection, connect and idle timeouts.
 * The retry schedule and max age are the domain's, handed to the queue
 * with each outcome. A domain's site is found again with every MX lookup
 * (RESOLVE_TTL_MS). In total at most delivery.max_connections sessions.
 *
 * DANE (delivery.dane, RFC 7672, docs/dane.md): MX hosts whose secure
 * TLSA records are usable get mandatory STARTTLS authenticated by them
 * (dane.h); a host whose TLSA lookup is bogus is skipped, no STARTTLS or
 * no match defers ("451 4.7.x DANE: ...") and the next attempt starts at
 * the next MX host; no plaintext fallback. Domains with DANE hosts get
 * sites of their own (the site key carries it, like the TLS requirement).
 */
#ifndef SL_EGRESS_H
#define SL_EGRESS_H

#include "config.h"
#include "loop.h"
#include "queue.h"
#include "resolver.h"
#include "transport.h"

struct egress;
struct metrics;

/* Loads the shaping rules and provider table the config names; their
 * errors ("FILE:LINE:COL: ...") go to err. */
int egress_create(struct loop *l, struct transport *t, struct resolver *r,
		  const struct sl_config *cfg, struct metrics *m, struct egress **out,
		  char *err, size_t errlen);
/* Pool number `pool` (index in cfg->pools) connects through t instead of
 * the transport given to egress_create (e.g. the dpdk transport). */
void egress_set_pool_transport(struct egress *e, size_t pool, struct transport *t);

/* Load the shaping rules and provider table again (SIGHUP). Both are
 * parsed and checked completely first: on error nothing changes and err
 * says "FILE:LINE[:COL]: ...". On success every site and domain is
 * re-resolved at once: rate buckets keep their fill under the new rate, a
 * new max_connections applies to new sessions (sessions above a lowered
 * limit finish their current connection), no mail or session is lost. */
int egress_reload(struct egress *e, char *err, size_t errlen);

/* The queue is created after egress (it needs egress_kick as its hook). */
void egress_set_queue(struct egress *e, struct queue *q);
void egress_destroy(struct egress *e);

/* queue_hooks.kick: dq has ready deliveries. Cheap; may start sessions. */
void egress_kick(void *egress, struct domain_queue *dq);
/* queue_hooks.forget: free the per-domain state egress kept. */
void egress_forget(void *egress, void *state);
/* Periodic work (idle hook): retry queues starved by the connection cap. */
void egress_tick(struct egress *e);

/* Warm-up (dataplane/warmup_gate.h): with a gate, a new session's source
 * IP is the one the gate picks for (pool, provider), and every message is
 * counted against it (warmup_gate_take) before it goes; when no IP may
 * send, the domain's mail stays ready and a timer kicks the queue at the
 * next window (no retry is counted, nothing bounces). The gate is borrowed
 * and must outlive the egress (or the next egress_set_warmup: a reload
 * swaps gates); NULL turns warm-up off. */
struct warmup_gate;
void egress_set_warmup(struct egress *e, struct warmup_gate *gate);
/* Kick every domain queue with ready work (e.g. after a warm-up resume). */
void egress_kick_all(struct egress *e);
/* Reputation (dataplane/reputation.h; NULL = off): VERP return paths as
 * MAIL FROM, every reply fed to its outcomes and response rules, and no
 * new sessions (or messages) from a source IP a response rule suspended
 * towards the destination's provider — the mail waits, nothing bounces.
 * Borrowed; must outlive the egress. */
struct reputation;
void egress_set_reputation(struct egress *e, struct reputation *r);

/* The DNSBL self-check (dnsbl.h): a paused source IP opens no new
 * session, and its open sessions take no further message, towards every
 * provider and in every pool it belongs to; the mail waits for the pool's
 * other IPs (nothing bounces, no retry is counted). Resuming kicks every
 * queue. Only the DNSBL check uses this flag, so resuming never lifts a
 * pause of another kind (warm-up, response rules). Returns how many pool
 * IPs matched. */
size_t egress_pause_ip(struct egress *e, const struct sockaddr *ip, bool paused);
/* Append the TLS-RPT counters as JSON (tls_report_json; docs/tls.md). */
int egress_tls_json(const struct egress *e, struct sl_buf *out);

/* Close every session (QUIT where possible); in-flight deliveries are
 * given back to the queue. */
void egress_shutdown(struct egress *e);
unsigned egress_sessions(const struct egress *e);
/* Sites seen so far (they live until egress_destroy). */
size_t egress_sites(const struct egress *e);

#endif
