/* unsubscribe.c — RFC 8058 one-click unsubscribe links; see unsubscribe.h. */
#include "unsubscribe.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define MAC_LEN 16

void unsubscribe_key(const char *secret, uint8_t key[32])
{
	SHA256((const unsigned char *)(secret ? secret : ""), secret ? strlen(secret) : 0, key);
}

static void mac_of(const uint8_t key[32], const char *tenant, const char *rcpt,
		   uint8_t mac[MAC_LEN])
{
	uint8_t full[32], msg[UNSUBSCRIBE_TENANT_MAX + 1 + UNSUBSCRIBE_ADDR_MAX + 1];
	size_t t = strlen(tenant), r = strlen(rcpt);
	unsigned int len = 0;

	memcpy(msg, tenant, t + 1);
	for (size_t i = 0; i < r; i++)
		msg[t + 1 + i] = (uint8_t)tolower((unsigned char)rcpt[i]);
	HMAC(EVP_sha256(), key, 32, msg, t + 1 + r, full, &len);
	memcpy(mac, full, MAC_LEN);
}

static int hex_append(struct sl_buf *out, const void *p, size_t n)
{
	const uint8_t *b = p;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++)
		rc = sl_buf_appendf(out, "%02x", b[i]);
	return rc;
}

int unsubscribe_token(const uint8_t key[32], const char *tenant, const char *rcpt,
		      struct sl_buf *out)
{
	uint8_t mac[MAC_LEN];
	char low[UNSUBSCRIBE_ADDR_MAX + 1];
	size_t r;
	int rc;

	if (!tenant || !rcpt || !*tenant || !*rcpt || strlen(tenant) > UNSUBSCRIBE_TENANT_MAX ||
	    (r = strlen(rcpt)) > UNSUBSCRIBE_ADDR_MAX)
		return -EINVAL;
	for (size_t i = 0; i <= r; i++)
		low[i] = (char)tolower((unsigned char)rcpt[i]);
	mac_of(key, tenant, low, mac);
	if ((rc = hex_append(out, tenant, strlen(tenant))) || (rc = sl_buf_append(out, ".", 1)) ||
	    (rc = hex_append(out, low, r)) || (rc = sl_buf_append(out, ".", 1)) ||
	    (rc = hex_append(out, mac, MAC_LEN)))
		return rc;
	return 0;
}

int unsubscribe_headers(const uint8_t key[32], const char *base_url, const char *tenant,
			const char *rcpt, struct sl_buf *out)
{
	size_t bl = strlen(base_url);
	int rc;

	while (bl && base_url[bl - 1] == '/')
		bl--;
	if ((rc = sl_buf_appendf(out, "List-Unsubscribe: <%.*s/v1/unsubscribe/", (int)bl,
				 base_url)) ||
	    (rc = unsubscribe_token(key, tenant, rcpt, out)) ||
	    (rc = sl_buf_appendf(out, ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")))
		return rc;
	return 0;
}

/* Decode hex p[0..n) into out (NUL-terminated, cap bytes). */
static int unhex(const char *p, size_t n, char *out, size_t cap)
{
	if (n % 2 || n / 2 + 1 > cap)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = isxdigit((unsigned char)p[2 * i]), lo = isxdigit((unsigned char)p[2 * i + 1]);
		char h[3] = { p[2 * i], p[2 * i + 1], 0 };

		if (!hi || !lo)
			return -EINVAL;
		out[i] = (char)strtol(h, NULL, 16);
		if (!out[i])
			return -EINVAL;
	}
	out[n / 2] = 0;
	return 0;
}

int unsubscribe_parse(const uint8_t key[32], const char *token,
		      char tenant[UNSUBSCRIBE_TENANT_MAX + 1], char rcpt[UNSUBSCRIBE_ADDR_MAX + 1])
{
	const char *d1 = token ? strchr(token, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char mac_hex[2 * MAC_LEN + 1];
	uint8_t mac[MAC_LEN], want[MAC_LEN];

	if (!d1 || !d2 || strlen(d2 + 1) != 2 * MAC_LEN ||
	    unhex(token, (size_t)(d1 - token), tenant, UNSUBSCRIBE_TENANT_MAX + 1) < 0 ||
	    unhex(d1 + 1, (size_t)(d2 - d1 - 1), rcpt, UNSUBSCRIBE_ADDR_MAX + 1) < 0)
		return -EINVAL;
	memcpy(mac_hex, d2 + 1, sizeof mac_hex);
	for (size_t i = 0; i < MAC_LEN; i++) {
		char h[3] = { mac_hex[2 * i], mac_hex[2 * i + 1], 0 };

		if (!isxdigit((unsigned char)h[0]) || !isxdigit((unsigned char)h[1]))
			return -EINVAL;
		mac[i] = (uint8_t)strtol(h, NULL, 16);
	}
	mac_of(key, tenant, rcpt, want);
	if (CRYPTO_memcmp(mac, want, MAC_LEN))
		return -EPERM;
	for (char *p = rcpt; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}
