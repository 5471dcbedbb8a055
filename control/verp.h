/*
 * verp.h — VERP return paths that map an asynchronous bounce back to the
 * tenant, stream, message and recipient it is about.
 *
 * Every message gets one envelope sender per recipient:
 *
 *     PREFIX+TOKEN@RETURN-PATH-DOMAIN          e.g.  b+ae3k...q7@bounce.example.net
 *
 * TOKEN is lowercase RFC 4648 base32 (no padding) of
 *
 *     u8   version << 4 | stream     (version 1; stream is enum sl_stream)
 *     u16  issue day (days since the epoch, big endian, wraps)
 *     LEB128 tenant id, LEB128 queue id, LEB128 recipient index
 *     10 bytes  HMAC-SHA256(secret, "sluice-verp1" || all of the above), truncated
 *
 * so a typical token is 30-40 characters (61 at most, with every id at
 * its maximum) and, with a short prefix, the local part stays within
 * RFC 5321's 64 octets (verp_encode() refuses anything longer). Base32 is case-insensitive, so a bounce to an
 * address some MTA lowercased (or uppercased) still decodes. The MAC (80
 * bits) means a forged bounce cannot name someone else's recipient: only
 * addresses this appliance issued decode, and only while the issue day is
 * within max_age_days. Secrets rotate by passing the old one as a second
 * key to verp_decode().
 *
 * The tenant id is a number the caller assigns and can map back (the
 * control store's configuration-set id is a good choice: it names tenant,
 * sending domain and stream at once). Pure functions: no I/O, no clock (the
 * caller passes the day), no allocation.
 *
 * Errors: -EINVAL bad arguments (empty secret, stream > 15, empty domain),
 * SL_ETOOBIG the local part would exceed 64 octets or out is too small,
 * SL_EPROTO not a VERP address of this prefix (wrong shape, bad base32,
 * bad version), SL_EAUTH the MAC does not verify under any key, -ESTALE the
 * MAC verifies but the token is older than max_age_days.
 */
#ifndef SL_VERP_H
#define SL_VERP_H

#include <stddef.h>
#include <stdint.h>

#define VERP_LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define VERP_ADDR_MAX 320   /* a sensible buffer for verp_encode() */
#define VERP_PREFIX_DEFAULT "b"
#define VERP_MAC_LEN 10

struct verp_fields {
	uint64_t tenant_id;   /* caller-assigned, e.g. configuration-set id */
	uint64_t queue_id;    /* the spool's message id */
	uint32_t rcpt_index;  /* the recipient's index in the message */
	uint8_t stream;       /* enum sl_stream, 0..15 */
	uint16_t issue_day;   /* days since the epoch when issued (mod 65536) */
};

struct verp_key {
	const uint8_t *secret;
	size_t len;
};

/* Write "PREFIX+TOKEN@domain" for f into out (NUL-terminated). prefix may
 * be NULL (VERP_PREFIX_DEFAULT); it is [a-z0-9._-]{1,16}. Returns the
 * address length or an error. */
int verp_encode(const struct verp_key *key, const char *prefix, const char *domain,
		const struct verp_fields *f, char *out, size_t outlen);

/* Decode addr (a whole address, the part before '@', or the part with
 * angle brackets stripped) issued with prefix (NULL = default), verifying
 * its MAC under any of the n keys. today is the current day number; tokens
 * issued more than max_age_days ago (0 = no limit) are -ESTALE. Fills *f
 * on success and on -ESTALE. Returns 0 or an error (see the top). */
int verp_decode(const struct verp_key *keys, size_t n, const char *prefix, const char *addr,
		uint16_t today, unsigned max_age_days, struct verp_fields *f);

/* The day number verp_encode() expects for a wall-clock time in ms. */
static inline uint16_t verp_day(uint64_t unix_ms)
{
	return (uint16_t)(unix_ms / 86400000u);
}

/* Does addr look like one of ours (PREFIX+ local part), before any MAC
 * check? For routing inbound mail cheaply. */
int verp_is_candidate(const char *prefix, const char *addr);

#endif
