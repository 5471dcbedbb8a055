/*
 * auth.h — hashed credentials for tenant SMTP AUTH and the admin API.
 *
 * Passwords are stored as
 *	$pbkdf2-sha256$i=ITER$SALT_B64$HASH_B64
 * PBKDF2-HMAC-SHA256, standard base64 (padding optional when reading), a
 * 16-byte random salt and a 32-byte hash when writing. Reading accepts salts
 * of 1..64 bytes, hashes of 16..64 bytes and 1..AUTH_MAX_ITERATIONS
 * iterations; anything else is "unparseable".
 *
 * Positive-result cache: a tenant opening many connections would otherwise
 * pay the full PBKDF2 cost on every AUTH. After a successful verification the
 * key HMAC-SHA256(process secret, stored || 0 || password) is remembered in a
 * 256-entry, 4-way set-associative table shared by all threads (a mutex
 * guards it; AUTH is per connection, not per message). A later verification
 * of the same password against the same stored string is a table lookup.
 * The per-process random secret keeps cached entries from being a fast
 * offline oracle for the password. Changing a stored string naturally
 * invalidates its entries; failures are never cached, so wrong guesses always
 * pay full price.
 *
 * Errors: SL_EAUTH wrong password, SL_ECONFIG stored string unparseable,
 * -EINVAL bad arguments, -ENOSPC output too small, -EIO no randomness.
 */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_DEFAULT_ITERATIONS 100000u
#define AUTH_MIN_ITERATIONS 1000u       /* when hashing */
#define AUTH_MAX_ITERATIONS 10000000u   /* when reading a stored string */
#define AUTH_HASH_MAX 128               /* buffer size that always fits */

/* Hash password with a fresh salt into out as a NUL-terminated stored
 * string. iterations 0 means AUTH_DEFAULT_ITERATIONS; otherwise it must be
 * within AUTH_MIN_ITERATIONS..AUTH_MAX_ITERATIONS (-EINVAL). */
int auth_hash_password(const char *password, unsigned iterations, char *out, size_t outlen);

/* 0 if password matches stored, SL_EAUTH if not, SL_ECONFIG if stored is
 * unparseable. Constant-time compare; may be answered from the cache. */
int auth_verify_password(const char *password, const char *stored);

struct auth_cache_stats {
	uint64_t hits;   /* verifications answered by the cache */
	uint64_t misses; /* verifications that ran PBKDF2 */
};

void auth_cache_stats(struct auth_cache_stats *out);
/* Forget every cached success (e.g. after revoking a tenant). */
void auth_cache_clear(void);

#endif
