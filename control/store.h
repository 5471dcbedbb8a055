/*
 * store.h — the control store: tenants, credentials, configuration sets and
 * the audit log, in LMDB.
 *
 * One directory holds one LMDB environment (the second one; the spool is the
 * first) with five named databases:
 *   "meta"        format version, next configuration-set id;
 *   "tenants"     tenant name -> tenant record;
 *   "credentials" 'u' username -> SMTP AUTH credential (tenant, PBKDF2 string),
 *                 't' SHA-256(token) -> API token (role, tenant);
 *   "cfgsets"     tenant NUL domain NUL stream -> configuration set;
 *   "audit"       big-endian u64 sequence number -> audit entry.
 * Records are versioned binary (docs/control-store.md has the layouts); every
 * decoder checks every length and refuses trailing bytes.
 *
 * Writes are synchronous: each call that changes something is exactly one
 * LMDB write transaction, committed (and fsynced, see store_open) before the
 * call returns, and
 * every change writes its audit entry in that same transaction (both or
 * neither). Control-plane volume is low, so there is no batching. LMDB
 * serialises writers; reads use short read-only transactions (MDB_NOTLS), so
 * every function may be called from any thread.
 *
 * Ownership: callers own every struct they pass in and get out; the store
 * keeps no pointer to them and results are copied into caller memory (fixed
 * size buffers, no allocation to free).
 *
 * Lists are paginated: pass the cursor of the last item of the previous page
 * (the tenant name, the audit sequence number; NULL/""/0 for the first page)
 * and a limit; *more says whether another page follows.
 *
 * Errors: -EINVAL bad argument (name syntax, too long, bad enum), -EEXIST
 * already exists, -EPERM lifecycle transition refused (see tenant.h),
 * -ENOSPC the map is full, -EBUSY another process has the store open,
 * -EBADMSG a stored record is corrupt, -ENOMEM; SL_ENOTFOUND no such
 * tenant/credential/set, SL_EAUTH wrong password or unknown user/token,
 * SL_EVERSION the store (or a record) has an incompatible format version,
 * SL_ESPOOL LMDB failed otherwise.
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "suppression.h"
#include "tenant.h"

/* On-disk format version kept in "meta"; others are refused. */
#define STORE_FORMAT_VERSION 1u
/* Map size when store_open gets 0. */
#define STORE_DEFAULT_MAP_SIZE ((size_t)64 << 20)

#define STORE_NAME_MAX 64      /* tenant and pool names: [A-Za-z0-9._-] */
#define STORE_USER_MAX 255     /* SMTP AUTH usernames: printable ASCII, no space */
#define STORE_DOMAIN_MAX 253   /* sending (sub)domains: [a-z0-9.-], stored lowercased */
#define STORE_SELECTOR_MAX 63  /* DKIM selector */
#define STORE_ACTOR_MAX 127
#define STORE_ACTION_MAX 63
#define STORE_TARGET_MAX 255
#define STORE_REASON_MAX 511
#define STORE_DETAILS_MAX 2047
#define STORE_HASH_MAX 127     /* an auth.h stored string */
#define STORE_STREAMS 2        /* enum sl_stream: transactional, marketing */

/* API tokens: "slk_" and 64 lowercase hex digits (32 random bytes). */
#define STORE_TOKEN_PREFIX "slk_"
#define STORE_TOKEN_LEN (4 + 64)
#define STORE_TOKEN_SIZE (STORE_TOKEN_LEN + 1)
/* A token's public id: the first 8 bytes of its SHA-256 in hex. */
#define STORE_TOKEN_ID_SIZE 17

struct store;

enum store_role {
	STORE_ROLE_OPERATOR = 1, /* everything */
	STORE_ROLE_TENANT = 2,   /* only its own tenant's data */
};

struct store_stream {
	char pool[STORE_NAME_MAX + 1];        /* pool for this stream; "" = the default pool */
	char subdomain[STORE_DOMAIN_MAX + 1]; /* sending subdomain, e.g. "mkt.example.com"; "" = none */
};

struct store_tenant {
	char name[STORE_NAME_MAX + 1];
	enum tenant_state state;
	uint64_t created_ms, updated_ms; /* wall clock, ms since the epoch */
	uint64_t hold_until_ms;          /* on_hold: grace deadline; 0 otherwise */
	uint8_t default_stream;          /* enum sl_stream */
	uint64_t quota_hour, quota_day;  /* messages; 0 = unlimited */
	struct store_stream streams[STORE_STREAMS]; /* indexed by enum sl_stream */
};

struct store_audit {
	uint64_t seq;     /* key; strictly increasing */
	uint64_t time_ms;
	char actor[STORE_ACTOR_MAX + 1];     /* "operator:alice", "policy", "config" */
	char action[STORE_ACTION_MAX + 1];   /* "tenant.create", "tenant.state", ... */
	char target[STORE_TARGET_MAX + 1];   /* "tenant:acme", "credential:user", ... */
	char reason[STORE_REASON_MAX + 1];   /* why, free text */
	char details[STORE_DETAILS_MAX + 1]; /* JSON object text, or "" */
};

#define STORE_CFGSET_PAUSED 1u

struct store_cfgset {
	char tenant[STORE_NAME_MAX + 1];
	char domain[STORE_DOMAIN_MAX + 1]; /* sending domain, lowercased */
	uint8_t stream;                    /* enum sl_stream */
	uint64_t id;                       /* assigned by the store, never reused */
	uint64_t created_ms, updated_ms;
	uint32_t flags;                              /* STORE_CFGSET_* */
	char pool[STORE_NAME_MAX + 1];               /* pool override; "" = the stream's */
	char dkim_selector[STORE_SELECTOR_MAX + 1];  /* "" = the default */
};

/* --- open and close ------------------------------------------------------ */

/* Open (creating if needed) the store in directory path. map_size 0 means
 * STORE_DEFAULT_MAP_SIZE (the map does not grow: -ENOSPC when full). sync
 * must be true in production: every commit fsyncs; false (tests only) lets
 * the OS write back. SL_EVERSION if it holds another format version,
 * -EBUSY if it is already open (this or another process). */
int store_open(const char *path, size_t map_size, bool sync, struct store **out);
void store_close(struct store *st);

/* --- tenants ------------------------------------------------------------- */

/* Create tenant t->name in pending_review with t's default stream, quotas
 * and streams (state, times and hold_until are ignored). Audited as
 * "tenant.create". -EEXIST if the name is taken. */
int store_tenant_create(struct store *st, const struct store_tenant *t, const char *actor,
			const char *reason);
/* Copy tenant name into *out. SL_ENOTFOUND if absent. */
int store_tenant_get(struct store *st, const char *name, struct store_tenant *out);
/* Up to limit tenants with names after `after` (NULL or "" = from the
 * first), in name order, into out[]; *n how many, *more whether others
 * follow. The next page's cursor is out[*n - 1].name. */
int store_tenant_list(struct store *st, const char *after, struct store_tenant *out, size_t limit,
		      size_t *n, bool *more);
/* Replace t->name's settings (default stream, quotas, streams); state and
 * times are the store's. Audited as "tenant.update". */
int store_tenant_update(struct store *st, const struct store_tenant *t, const char *actor,
			const char *reason);
/* Apply lifecycle event ev to tenant name and audit it ("tenant.state":
 * actor, reason, from, to, event) in one transaction. hold_until_ms is the
 * grace deadline kept when the new state is on_hold (0 = none) and cleared
 * otherwise. -EPERM (and nothing written) when tenant_transition refuses;
 * *why, if given, then says why. *out, if given, gets the updated tenant. */
int store_tenant_set_state(struct store *st, const char *name, enum tenant_event ev,
			   uint64_t hold_until_ms, const char *actor, const char *reason,
			   struct store_tenant *out, const char **why);

/* --- credentials --------------------------------------------------------- */

/* Add SMTP AUTH user for tenant with a password hashed by auth.h (default
 * iterations). -EEXIST if the username exists; SL_ENOTFOUND no tenant. */
int store_credential_add(struct store *st, const char *username, const char *tenant,
			 const char *password, const char *actor);
/* The same with an already-hashed auth.h stored string (e.g. migrated from
 * the YAML config's password_hash). -EINVAL if it does not parse. */
int store_credential_add_hash(struct store *st, const char *username, const char *tenant,
			      const char *password_hash, const char *actor);
/* Remove SMTP AUTH user. SL_ENOTFOUND if absent. */
int store_credential_remove(struct store *st, const char *username, const char *actor);
/* 0 and the tenant's name in tenant_out if password is right for username;
 * SL_EAUTH for a wrong password or an unknown user (which costs the same
 * PBKDF2 time). The PBKDF2 runs outside any transaction. */
int store_credential_verify(struct store *st, const char *username, const char *password,
			    char tenant_out[STORE_NAME_MAX + 1]);

/* Mint an API token for role (tenant must name an existing tenant for
 * STORE_ROLE_TENANT; it may be NULL for an operator token). The plaintext
 * goes to out_token once and is never stored: only its SHA-256 is.
 * id_out (may be NULL) gets the token's public id for listing/revocation. */
int store_token_create(struct store *st, const char *tenant, enum store_role role,
		       const char *actor, char out_token[STORE_TOKEN_SIZE],
		       char id_out[STORE_TOKEN_ID_SIZE]);
/* Resolve a presented token: 0 with its tenant ("" for an operator token
 * without one) and role, or SL_EAUTH. The stored hash is compared in
 * constant time. tenant_out may be NULL. */
int store_token_lookup(struct store *st, const char *token, char tenant_out[STORE_NAME_MAX + 1],
		       enum store_role *role);
/* Revoke the token whose public id is id. SL_ENOTFOUND if none. */
int store_token_revoke(struct store *st, const char *id, const char *actor);

/* The tenant SMTP AUTH user username belongs to. SL_ENOTFOUND if none. */
int store_credential_tenant(struct store *st, const char *username,
			    char tenant_out[STORE_NAME_MAX + 1]);

/* What listing shows of a token (never the token or its hash). */
struct store_token_info {
	char id[STORE_TOKEN_ID_SIZE];
	enum store_role role;
	char tenant[STORE_NAME_MAX + 1];
	uint64_t created_ms;
};
/* Up to limit tokens with ids after `after` (NULL/"" = from the first), in
 * id order, only tenant's when tenant is non-NULL ("" = operator tokens
 * without a tenant); *n and *more as for store_tenant_list. */
int store_token_list(struct store *st, const char *tenant, const char *after,
		     struct store_token_info *out, size_t limit, size_t *n, bool *more);

/* --- configuration sets -------------------------------------------------- */

/* Create or update the set (c->tenant, c->domain, c->stream) with c's
 * flags, pool and selector. A new set gets the next id; an existing one
 * keeps its id. c->id and the times are filled in on return. Audited. */
int store_cfgset_put(struct store *st, struct store_cfgset *c, const char *actor);
int store_cfgset_get(struct store *st, const char *tenant, const char *domain, uint8_t stream,
		     struct store_cfgset *out);
/* Set (paused) or clear STORE_CFGSET_PAUSED on the set, creating it (the
 * stream's pool, the default selector) when it does not exist; audited as
 * "cfgset.hold" / "cfgset.resume" for the tenant with reason. 0 when it
 * changed, 1 when the flag already was so (nothing written), SL_ENOTFOUND
 * no such tenant, -EINVAL. */
int store_cfgset_set_paused(struct store *st, const char *tenant, const char *domain,
			    uint8_t stream, bool paused, const char *actor, const char *reason);
/* Up to limit of tenant's sets ordered by (domain, stream), starting after
 * the set `after` (its domain and stream; NULL = from the first); *n and
 * *more as for store_tenant_list. */
int store_cfgset_list(struct store *st, const char *tenant, const struct store_cfgset *after,
		      struct store_cfgset *out, size_t limit, size_t *n, bool *more);

/* --- audit --------------------------------------------------------------- */

/* Append an entry for an action the store does not perform itself (e.g. a
 * queue purge); e->seq and e->time_ms (if 0) are assigned. */
int store_audit_append(struct store *st, struct store_audit *e);
/* Up to limit entries with seq > after, oldest first, only those whose
 * target equals target when target is non-NULL. Scans the log. */
int store_audit_list(struct store *st, uint64_t after, const char *target, struct store_audit *out,
		     size_t limit, size_t *n, bool *more);
/* Append e as a JSON object {seq,time,actor,action,target,reason,details}
 * to b; details is a JSON string holding the stored text. */
int store_audit_json(const struct store_audit *e, struct sl_buf *b);

/* --- suppressions and tenant numbers (reputation) ------------------------ */

/* Database "reputation": 's' suppression_key() (tenant NUL address) ->
 * u8 version, u8 reason, u64 added_ms; 'n' tenant -> u64 number and 'i'
 * u64 number -> tenant (VERP return paths name tenants by number). */

/* Suppress addr for tenant (NULL/"" = the global list). 0 added, 1 it
 * already was (unchanged: the first reason and time stay). added_ms 0 =
 * now. Audited as "suppression.add" only when actor is non-NULL (automatic
 * additions from bounces are events, not audit entries). */
int store_suppression_add(struct store *st, const char *tenant, const char *addr,
			  enum suppression_reason reason, uint64_t added_ms, const char *actor);
/* 0 removed, SL_ENOTFOUND; audited when actor is non-NULL. */
int store_suppression_remove(struct store *st, const char *tenant, const char *addr,
			     const char *actor);
/* 1 (with *out, may be NULL) if addr is suppressed for tenant by the global
 * list or tenant's own, global first; 0 if not; -EINVAL bad address. */
int store_suppression_check(struct store *st, const char *tenant, const char *addr,
			    struct suppression_entry *out);
/* Up to limit entries in key order (global list first), only tenant's
 * when tenant is non-NULL ("" = the global list), after the entry
 * (after_tenant, after_addr) (NULL/"" = from the first); *n, *more as for
 * store_tenant_list. */
int store_suppression_list(struct store *st, const char *tenant, const char *after_tenant,
			   const char *after_addr, struct suppression_entry *out, size_t limit,
			   size_t *n, bool *more);
/* tenant name's number (from the configuration-set id counter, never
 * reused); create: assign one when it has none. SL_ENOTFOUND otherwise. */
int store_tenant_number(struct store *st, const char *name, bool create, uint64_t *id);
/* The tenant numbered id. SL_ENOTFOUND if none. */
int store_tenant_by_number(struct store *st, uint64_t id, char name[STORE_NAME_MAX + 1]);

/* --- record codecs (exposed for tests and fuzzing) ----------------------- */

/* Decode a stored record of n bytes. 0, -EBADMSG malformed, SL_EVERSION
 * unknown record version. Never reads outside [p, p + n). */
int store_tenant_decode(const void *p, size_t n, struct store_tenant *out);
int store_audit_decode(const void *p, size_t n, struct store_audit *out);
/* Only the value's fields: tenant, domain and stream live in the key. */
int store_cfgset_decode(const void *p, size_t n, struct store_cfgset *out);

/* A "credentials" value: an SMTP AUTH user ('u') or an API token ('t'). */
struct store_credential {
	char kind;                        /* 'u' or 't' */
	enum store_role role;             /* tokens */
	char tenant[STORE_NAME_MAX + 1];  /* "" for an operator token without one */
	char hash[STORE_HASH_MAX + 1];    /* users: the auth.h stored string */
	uint8_t token_hash[32];           /* tokens: SHA-256 of the token text */
	uint64_t created_ms;
};
int store_credential_decode(const void *p, size_t n, struct store_credential *out);
/* Encode into buf (cleared first). -EINVAL for a field out of range. */
int store_tenant_encode(const struct store_tenant *t, struct sl_buf *buf);
int store_audit_encode(const struct store_audit *e, struct sl_buf *buf);
int store_cfgset_encode(const struct store_cfgset *c, struct sl_buf *buf);
int store_credential_encode(const struct store_credential *c, struct sl_buf *buf);

/* === sending authentication (domains.c, verification.c) ================== */
/* The "sendauth" database holds records whose keys and layouts belong to
 * control/domains.c and control/verification.c; the store only keeps the
 * bytes. Keys are 1..511 bytes. A write with audit non-NULL appends that
 * entry in the same transaction (e->seq and e->time_ms assigned). */
int store_sendauth_put(struct store *st, const void *key, size_t klen, const void *val,
		       size_t vlen, struct store_audit *audit);
/* SL_ENOTFOUND if key is absent. */
int store_sendauth_del(struct store *st, const void *key, size_t klen, struct store_audit *audit);
/* Copy key's value into out (reset first). SL_ENOTFOUND if absent. */
int store_sendauth_get(struct store *st, const void *key, size_t klen, struct sl_buf *out);
/* Call fn for every record whose key starts with prefix, in key order,
 * inside one read transaction (fn must not write to the store); a non-zero
 * return from fn stops the scan (a negative one is returned). */
typedef int (*store_sendauth_fn)(void *arg, const void *key, size_t klen, const void *val,
				 size_t vlen);
int store_sendauth_scan(struct store *st, const void *prefix, size_t plen,
			store_sendauth_fn fn, void *arg);

#endif
