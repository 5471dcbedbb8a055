/*
 * suppression.h — addresses mail must not go to: per tenant and global.
 *
 * An entry is (tenant, address) -> (reason, added_at). The tenant "" (or
 * NULL) is the global list, which applies to every tenant. Addresses are
 * compared in lower case (the whole address: local parts are
 * case-sensitive by the letter of RFC 5321, but no mailbox provider treats
 * them so, and a suppression that misses on case is worse than one that
 * over-matches); surrounding angle brackets and blanks are dropped.
 *
 * This is the in-memory set: the data path's fast check and the import /
 * export format. The control store keeps the durable copy under the keys
 * suppression_key() spells (tenant NUL address), so a store-backed
 * implementation has the same operations with the same meaning: add (an
 * existing entry keeps its first reason and time), remove, check (global
 * first, then the tenant's), export, import.
 *
 * CSV (one entry a line, RFC 4180 quoting, '#' comment lines and blank
 * lines skipped, an optional header line starting with "tenant"):
 *     tenant,address,reason,added_at_ms
 *     acme,bob@example.com,hard_bounce,1700000000000
 *     ,spamtrap@example.net,manual,1700000000000      (global)
 * An import line may also be a bare address (reason and time from the
 * caller).
 *
 * Not thread-safe; the set owns its strings. Errors: -EINVAL a bad
 * address, tenant or reason; -ENOSPC the set is full (max_entries);
 * -ENOMEM; SL_ECONFIG a bad import line ("NAME:LINE: message" in err).
 */
#ifndef SL_SUPPRESSION_H
#define SL_SUPPRESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SUPPRESSION_TENANT_MAX 64
#define SUPPRESSION_ADDR_MAX 320

enum suppression_reason {
	SUPPRESSION_HARD_BOUNCE = 0,
	SUPPRESSION_COMPLAINT,
	SUPPRESSION_UNSUBSCRIBE,
	SUPPRESSION_MANUAL,
};

struct suppression_entry {
	char tenant[SUPPRESSION_TENANT_MAX + 1]; /* "" = global */
	char address[SUPPRESSION_ADDR_MAX + 1];  /* lower case */
	enum suppression_reason reason;
	uint64_t added_ms;
};

struct suppression;

/* "hard_bounce", "complaint", "unsubscribe", "manual"; "?" out of range. */
const char *suppression_reason_name(enum suppression_reason r);
/* The reason named name, or -EINVAL. */
int suppression_reason_parse(const char *name, enum suppression_reason *out);

/* Normalise addr into out (lower case, no brackets or blanks); its length
 * or -EINVAL when it is not a plausible address (no '@', empty local part
 * or domain, control characters, longer than SUPPRESSION_ADDR_MAX). */
int suppression_normalize(const char *addr, char *out, size_t outlen);
/* The control store key: tenant NUL normalised address. Its length (the
 * NUL inside counts) or -EINVAL / SL_ETOOBIG. */
int suppression_key(const char *tenant, const char *addr, char *out, size_t outlen);

/* An empty set holding at most max_entries (0 = 10 million). */
struct suppression *suppression_create(size_t max_entries);
void suppression_free(struct suppression *s);
size_t suppression_count(const struct suppression *s);

/* Add addr to tenant's list (NULL/"" = global). 0 added, 1 already there
 * (unchanged), or an error. */
int suppression_add(struct suppression *s, const char *tenant, const char *addr,
		    enum suppression_reason reason, uint64_t added_ms);
/* 0 removed, SL_ENOTFOUND, -EINVAL. */
int suppression_remove(struct suppression *s, const char *tenant, const char *addr);
/* Is addr suppressed for tenant (by the global list or tenant's own)? 1
 * with *out (may be NULL) the matching entry, global first; 0 if not;
 * -EINVAL for an unusable address. */
int suppression_check(const struct suppression *s, const char *tenant, const char *addr,
		      struct suppression_entry *out);

/* Append entries as CSV (with a header line) to b: all of them (tenant
 * NULL), the global list (""), or one tenant's list. Insertion order. */
int suppression_export(const struct suppression *s, const char *tenant, struct sl_buf *b);

/* Add the entries of CSV text. scope NULL: each line names its tenant (an
 * operator import); otherwise every entry goes to tenant scope and a line
 * naming another tenant is an error (a tenant's own import). Bare-address
 * lines get reason and now_ms. *added (may be NULL) counts new entries.
 * On error the entries before the bad line stay added. */
int suppression_import(struct suppression *s, const char *text, size_t len, const char *name,
		       const char *scope, enum suppression_reason reason, uint64_t now_ms,
		       size_t *added, char *err, size_t errlen);

#endif
