/*
 * sink_rules.h — the behaviour rules of sluice-sink (bench/sluice_sink.c).
 *
 * sluice-sink emulates receiving providers: it greets, throttles, defers,
 * rejects and tarpits according to a small line-based rules file. This
 * module parses that file and answers the sink's questions ("what is the
 * reply to this RCPT?"). It is sans-I/O: no sockets, no clock reads (the
 * caller passes the time), no printing. The format is documented in
 * docs/sink.md; in short:
 *
 *   # comment (a line whose first non-blank character is '#')
 *   SELECTOR  ACTION  ARGUMENTS...
 *
 * SELECTOR is `*` (anything), a domain (`example.test`, case-insensitive),
 * `*.example.test` (any subdomain of example.test, not example.test itself),
 * or a local listening address `[198.51.100.7]` / `[198.51.100.7]:2525` /
 * `[::1]:25` (the address the connection was received on).
 *
 * A domain selector is compared with the connection's *current domain*: the
 * domain of the most recent RCPT on that connection (kept across
 * transactions). Before the first RCPT a connection has no domain, so only
 * `*` and address selectors match the greeting, the first MAIL and so on.
 *
 * ACTION and ARGUMENTS (durations: 250ms, 2s, 1.5s, 1m, 1h; a bare number
 * is seconds; REPLY is `CODE TEXT...`, e.g. `550 5.7.1 Blocked`):
 *
 *   reject-user USER...         RCPT whose local part is one of USER gets
 *                               550 5.1.1 <addr>: Recipient address
 *                               rejected: User unknown (case-insensitive)
 *   reject-rcpt REPLY           every RCPT gets REPLY
 *   fail-rate P% REPLY          a fraction P of RCPTs (e.g. 10%, 2.5%, 0.1)
 *                               gets REPLY, decided by the caller's PRNG
 *   defer-after-conn N          after N messages on one connection, MAIL
 *                               gets 421 4.7.0 Too many messages, closing
 *   rate-per-ip N/DURATION REPLY
 *                               more than N accepted messages from one
 *                               source IP within DURATION: the end of DATA
 *                               gets REPLY (a fixed window that opens at the
 *                               first counted message)
 *   delay DURATION              tarpit: wait DURATION before every reply
 *   data-reply REPLY            the final reply to DATA
 *   disconnect-after N          drop the connection, without a reply, when
 *                               the Nth command arrives
 *   greeting REPLY              the banner; a 4xx/5xx banner then closes
 *
 * Rules are matched in file order; for each decision the first rule of a
 * relevant action whose selector matches and which applies wins (a
 * reject-user rule that does not list the user, or a fail-rate rule whose
 * dice roll says no, does not apply and the search goes on).
 *
 * Ownership: sink_rules_parse()/sink_rules_load() return a struct the caller
 * frees with sink_rules_destroy(). Queries are read-only and may run from
 * several threads at once, except sink_rules_data_end(), which updates the
 * per-IP rate counters and must be serialised by the caller.
 *
 * Errors: -ENOMEM, -errno from reading the file, or SL_ECONFIG for a syntax
 * error, in which case err holds "FILE:LINE: message".
 */
#ifndef SINK_RULES_H
#define SINK_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sink_rules;

/* What a decision is matched against. */
struct sink_match {
	const char *domain;           /* current domain; NULL if none yet */
	size_t domain_len;
	const struct sockaddr *local; /* local address; NULL if unknown */
};

/* Longest reply line a query writes (without CRLF), plus the NUL. */
#define SINK_REPLY_MAX 512

/* Parse rules from text[0..len); name is used in error messages. */
int sink_rules_parse(const char *text, size_t len, const char *name,
		     struct sink_rules **out, char *err, size_t errlen);

/* Read and parse the rules file at path. */
int sink_rules_load(const char *path, struct sink_rules **out, char *err,
		    size_t errlen);

void sink_rules_destroy(struct sink_rules *r);

/* Number of rules parsed. */
size_t sink_rules_count(const struct sink_rules *r);

/* Whether any rule has an address selector (the caller then must supply
 * sink_match.local). */
int sink_rules_use_local_addr(const struct sink_rules *r);

/* Whether any rule is rate-per-ip (the caller then must supply the source
 * address to sink_rules_data_end()). */
int sink_rules_use_rate(const struct sink_rules *r);

/* The banner: 0 for the default, else the reply code with line set. */
int sink_rules_greeting(const struct sink_rules *r, const struct sink_match *m,
			char *line, size_t cap);

/* Milliseconds to wait before a reply; 0 for none. */
uint32_t sink_rules_delay_ms(const struct sink_rules *r,
			     const struct sink_match *m);

/* Command count at which the connection is dropped; 0 for never. */
uint32_t sink_rules_disconnect_after(const struct sink_rules *r,
				     const struct sink_match *m);

/* Messages one connection may carry before MAIL is deferred; 0: no limit. */
uint32_t sink_rules_max_msgs(const struct sink_rules *r,
			     const struct sink_match *m);

/*
 * Decide a RCPT for addr[0..len) (the address without angle brackets).
 * rng is the caller's PRNG state for fail-rate (any non-zero seed; it is
 * advanced only when a fail-rate rule is consulted). Returns 0 to accept,
 * else the reply code with line set.
 */
int sink_rules_rcpt(const struct sink_rules *r, const struct sink_match *m,
		    const char *addr, size_t len, uint64_t *rng, char *line,
		    size_t cap);

/*
 * Decide the end of DATA for a message from source address src (NULL if
 * there are no rate rules) at time now_ms (any monotonic millisecond
 * clock). Returns 0 to accept — the message is then counted against every
 * matching rate-per-ip rule — else the reply code with line set, or -ENOMEM.
 * Not thread-safe.
 */
int sink_rules_data_end(struct sink_rules *r, const struct sink_match *m,
			const struct sockaddr *src, uint64_t now_ms, char *line,
			size_t cap);

#endif
