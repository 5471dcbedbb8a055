/* auth.c — PBKDF2-SHA256 credentials with a positive-result cache; see auth.h. */
#include "auth.h"

#include "base64.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "err.h"

#define AUTH_PREFIX "$pbkdf2-sha256$i="
#define AUTH_SALT_LEN 16 /* written */
#define AUTH_KEY_LEN 32  /* written */
#define AUTH_SALT_MAX 64 /* read */
#define AUTH_KEY_MIN 16  /* read */
#define AUTH_KEY_MAX 64  /* read */

#define AUTH_CACHE_SETS 64
#define AUTH_CACHE_WAYS 4
#define AUTH_CACHE_KEY 32

struct auth_stored {
	unsigned iterations;
	size_t salt_len, key_len;
	unsigned char salt[AUTH_SALT_MAX];
	unsigned char key[AUTH_KEY_MAX];
};

struct auth_cache_slot {
	unsigned char key[AUTH_CACHE_KEY];
	bool used;
};

static struct {
	pthread_mutex_t lock;
	bool have_secret;
	unsigned char secret[32];
	struct auth_cache_slot slot[AUTH_CACHE_SETS][AUTH_CACHE_WAYS];
	unsigned char next_way[AUTH_CACHE_SETS]; /* round-robin victim */
	struct auth_cache_stats stats;
} auth_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- the stored string ---- */

static int auth_parse(const char *s, struct auth_stored *st)
{
	const char *salt, *key, *end;
	unsigned long it = 0;
	long n;

	if (strncmp(s, AUTH_PREFIX, sizeof AUTH_PREFIX - 1) != 0)
		return SL_ECONFIG;
	s += sizeof AUTH_PREFIX - 1;
	if (*s < '1' || *s > '9')
		return SL_ECONFIG;
	for (; *s >= '0' && *s <= '9'; s++) {
		it = it * 10 + (unsigned long)(*s - '0');
		if (it > AUTH_MAX_ITERATIONS)
			return SL_ECONFIG;
	}
	if (*s != '$')
		return SL_ECONFIG;
	salt = s + 1;
	key = strchr(salt, '$');
	if (!key)
		return SL_ECONFIG;
	key++;
	end = key + strlen(key);
	if (memchr(key, '$', (size_t)(end - key)))
		return SL_ECONFIG;
	n = base64_decode(salt, (size_t)(key - 1 - salt), false, st->salt, sizeof st->salt);
	if (n < 1)
		return SL_ECONFIG;
	st->salt_len = (size_t)n;
	n = base64_decode(key, (size_t)(end - key), false, st->key, sizeof st->key);
	if (n < AUTH_KEY_MIN)
		return SL_ECONFIG;
	st->key_len = (size_t)n;
	st->iterations = (unsigned)it;
	return 0;
}

static int auth_derive(const char *password, size_t plen, const unsigned char *salt,
		       size_t salt_len, unsigned iterations, unsigned char *out, size_t out_len)
{
	if (plen > INT_MAX)
		return -EINVAL;
	if (PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len, (int)iterations,
			      EVP_sha256(), (int)out_len, out) != 1)
		return -ENOMEM;
	return 0;
}

int auth_hash_password(const char *password, unsigned iterations, char *out, size_t outlen)
{
	unsigned char salt[AUTH_SALT_LEN], key[AUTH_KEY_LEN];
	char salt_b64[4 * ((AUTH_SALT_LEN + 2) / 3) + 1];
	char key_b64[4 * ((AUTH_KEY_LEN + 2) / 3) + 1];
	int rc, n;

	if (!password || !out)
		return -EINVAL;
	if (iterations == 0)
		iterations = AUTH_DEFAULT_ITERATIONS;
	if (iterations < AUTH_MIN_ITERATIONS || iterations > AUTH_MAX_ITERATIONS)
		return -EINVAL;
	if (RAND_bytes(salt, sizeof salt) != 1)
		return -EIO;
	rc = auth_derive(password, strlen(password), salt, sizeof salt, iterations, key,
			 sizeof key);
	if (rc)
		goto out;
	EVP_EncodeBlock((unsigned char *)salt_b64, salt, sizeof salt);
	EVP_EncodeBlock((unsigned char *)key_b64, key, sizeof key);
	n = snprintf(out, outlen, AUTH_PREFIX "%u$%s$%s", iterations, salt_b64, key_b64);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		rc = -ENOSPC;
	}
out:
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

/* ---- the cache ---- */

/* HMAC-SHA256(secret, stored || 0 || password); false if unavailable. The
 * secret is drawn on first use and never changes afterwards. */
static bool auth_cache_key(const char *stored, const char *password, unsigned char *out)
{
	static const unsigned char zero;
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *mac = NULL;
	size_t n = 0;
	bool ok = false;

	pthread_mutex_lock(&auth_cache.lock);
	if (!auth_cache.have_secret)
		auth_cache.have_secret = RAND_bytes(auth_cache.secret, sizeof auth_cache.secret) == 1;
	ok = auth_cache.have_secret;
	pthread_mutex_unlock(&auth_cache.lock);
	if (!ok)
		return false;
	ok = false;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		goto out;
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx)
		goto out;
	if (EVP_MAC_init(ctx, auth_cache.secret, sizeof auth_cache.secret, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)stored, strlen(stored)) != 1 ||
	    EVP_MAC_update(ctx, &zero, 1) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)password, strlen(password)) != 1 ||
	    EVP_MAC_final(ctx, out, &n, AUTH_CACHE_KEY) != 1 || n != AUTH_CACHE_KEY)
		goto out;
	ok = true;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok;
}

/* Look key up; counts a hit or a miss. */
static bool auth_cache_lookup(const unsigned char *key)
{
	unsigned set = key[0] % AUTH_CACHE_SETS;
	bool hit = false;

	pthread_mutex_lock(&auth_cache.lock);
	for (unsigned w = 0; w < AUTH_CACHE_WAYS; w++) {
		const struct auth_cache_slot *s = &auth_cache.slot[set][w];

		if (s->used && CRYPTO_memcmp(s->key, key, AUTH_CACHE_KEY) == 0)
			hit = true;
	}
	if (hit)
		auth_cache.stats.hits++;
	else
		auth_cache.stats.misses++;
	pthread_mutex_unlock(&auth_cache.lock);
	return hit;
}

static void auth_cache_insert(const unsigned char *key)
{
	unsigned set = key[0] % AUTH_CACHE_SETS, w;
	struct auth_cache_slot *s;

	pthread_mutex_lock(&auth_cache.lock);
	w = auth_cache.next_way[set];
	auth_cache.next_way[set] = (unsigned char)((w + 1) % AUTH_CACHE_WAYS);
	s = &auth_cache.slot[set][w];
	memcpy(s->key, key, AUTH_CACHE_KEY);
	s->used = true;
	pthread_mutex_unlock(&auth_cache.lock);
}

int auth_verify_password(const char *password, const char *stored)
{
	unsigned char ckey[AUTH_CACHE_KEY], derived[AUTH_KEY_MAX];
	struct auth_stored st;
	bool cacheable;
	int rc;

	if (!password || !stored)
		return -EINVAL;
	rc = auth_parse(stored, &st);
	if (rc)
		return rc;
	cacheable = auth_cache_key(stored, password, ckey);
	if (cacheable && auth_cache_lookup(ckey)) {
		rc = 0;
		goto out;
	}
	if (!cacheable) {
		pthread_mutex_lock(&auth_cache.lock);
		auth_cache.stats.misses++;
		pthread_mutex_unlock(&auth_cache.lock);
	}
	rc = auth_derive(password, strlen(password), st.salt, st.salt_len, st.iterations,
			 derived, st.key_len);
	if (rc)
		goto out;
	if (CRYPTO_memcmp(derived, st.key, st.key_len) != 0) {
		rc = SL_EAUTH;
		goto out;
	}
	if (cacheable)
		auth_cache_insert(ckey);
out:
	OPENSSL_cleanse(ckey, sizeof ckey);
	OPENSSL_cleanse(derived, sizeof derived);
	OPENSSL_cleanse(&st, sizeof st);
	return rc;
}

void auth_cache_stats(struct auth_cache_stats *out)
{
	pthread_mutex_lock(&auth_cache.lock);
	*out = auth_cache.stats;
	pthread_mutex_unlock(&auth_cache.lock);
}

void auth_cache_clear(void)
{
	pthread_mutex_lock(&auth_cache.lock);
	memset(auth_cache.slot, 0, sizeof auth_cache.slot);
	memset(auth_cache.next_way, 0, sizeof auth_cache.next_way);
	pthread_mutex_unlock(&auth_cache.lock);
}
