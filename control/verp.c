/*
 * verp.c — VERP token encoding and verification (see verp.h).
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"
#include "verp.h"

#define VERP_VERSION 1
#define VERP_PREFIX_MAX 16
#define VERP_PAYLOAD_MAX (1 + 2 + 10 + 10 + 5)
#define VERP_RAW_MAX (VERP_PAYLOAD_MAX + VERP_MAC_LEN)

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char mac_label[] = "sluice-verp1";

static int b32_val(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

static size_t b32_encode(const uint8_t *in, size_t n, char *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32[(acc >> bits) & 31];
		}
	}
	if (bits)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = 0;
	return o;
}

/* Decode n base32 characters; -1 on a bad character, non-zero pad bits or
 * an impossible length. */
static int b32_decode(const char *in, size_t n, uint8_t *out, size_t outmax)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b32_val(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (o == outmax)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* leftover bits must be padding: fewer than 5 and all zero */
	if (bits >= 5 || (acc & ((1u << bits) - 1)))
		return -1;
	return (int)o;
}

static size_t put_leb(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		p[n++] = b | (v ? 0x80 : 0);
	} while (v);
	return n;
}

/* Read a LEB128 of at most maxbytes; -1 if truncated, overlong or too big. */
static int get_leb(const uint8_t *p, size_t n, size_t *pos, unsigned maxbytes, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned i = 0; i < maxbytes; i++) {
		uint8_t b;
		if (*pos >= n)
			return -1;
		b = p[(*pos)++];
		if (i == 9 && b > 1)
			return -1;
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return -1; /* not minimal: one token per value */
			*v = r;
			return 0;
		}
	}
	return -1;
}

static int mac(const struct verp_key *k, const uint8_t *p, size_t n, uint8_t *out)
{
	uint8_t buf[sizeof mac_label - 1 + VERP_PAYLOAD_MAX];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	memcpy(buf, mac_label, sizeof mac_label - 1);
	memcpy(buf + sizeof mac_label - 1, p, n);
	if (!HMAC(EVP_sha256(), k->secret, (int)k->len, buf, sizeof mac_label - 1 + n, md, &mdlen) ||
	    mdlen < VERP_MAC_LEN)
		return -EIO;
	memcpy(out, md, VERP_MAC_LEN);
	OPENSSL_cleanse(md, sizeof md);
	return 0;
}

static int prefix_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > VERP_PREFIX_MAX)
		return 0;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '-' || *p == '_'))
			return 0;
	return 1;
}

int verp_encode(const struct verp_key *key, const char *prefix, const char *domain,
		const struct verp_fields *f, char *out, size_t outlen)
{
	uint8_t raw[VERP_RAW_MAX];
	char tok[(VERP_RAW_MAX * 8 + 4) / 5 + 1];
	size_t n = 0, plen, tlen, dlen;
	int rc;

	if (!prefix)
		prefix = VERP_PREFIX_DEFAULT;
	if (!key || !key->secret || !key->len || !domain || !*domain || !f || f->stream > 15 ||
	    !prefix_ok(prefix) || !out)
		return -EINVAL;
	raw[n++] = (uint8_t)(VERP_VERSION << 4 | f->stream);
	raw[n++] = (uint8_t)(f->issue_day >> 8);
	raw[n++] = (uint8_t)f->issue_day;
	n += put_leb(raw + n, f->tenant_id);
	n += put_leb(raw + n, f->queue_id);
	n += put_leb(raw + n, f->rcpt_index);
	rc = mac(key, raw, n, raw + n);
	if (rc < 0)
		return rc;
	n += VERP_MAC_LEN;
	tlen = b32_encode(raw, n, tok);
	plen = strlen(prefix);
	dlen = strlen(domain);
	if (plen + 1 + tlen > VERP_LOCAL_MAX || plen + 1 + tlen + 1 + dlen + 1 > outlen)
		return SL_ETOOBIG;
	memcpy(out, prefix, plen);
	out[plen] = '+';
	memcpy(out + plen + 1, tok, tlen);
	out[plen + 1 + tlen] = '@';
	memcpy(out + plen + 2 + tlen, domain, dlen + 1);
	return (int)(plen + 2 + tlen + dlen);
}

/* The token of addr: its start and length, or -1 if addr is not PREFIX+.. */
static int find_token(const char *prefix, const char *addr, const char **tok, size_t *len)
{
	const char *end, *at;
	size_t plen = strlen(prefix);

	if (*addr == '<')
		addr++;
	at = strrchr(addr, '@');
	end = at ? at : addr + strlen(addr);
	if (!at && end > addr && end[-1] == '>')
		end--;
	if ((size_t)(end - addr) > VERP_LOCAL_MAX || (size_t)(end - addr) < plen + 2)
		return -1;
	if (strncasecmp(addr, prefix, plen) != 0 || addr[plen] != '+')
		return -1;
	*tok = addr + plen + 1;
	*len = (size_t)(end - *tok);
	return 0;
}

int verp_is_candidate(const char *prefix, const char *addr)
{
	const char *tok;
	size_t len;

	if (!prefix)
		prefix = VERP_PREFIX_DEFAULT;
	if (!addr)
		return 0;
	return find_token(prefix, addr, &tok, &len) == 0;
}

int verp_decode(const struct verp_key *keys, size_t nkeys, const char *prefix, const char *addr,
		uint16_t today, unsigned max_age_days, struct verp_fields *f)
{
	uint8_t raw[VERP_RAW_MAX + 1], want[VERP_MAC_LEN];
	struct verp_fields v;
	const char *tok;
	size_t tlen, pos = 0, plen;
	uint64_t rcpt;
	int n, ok = 0;

	if (!prefix)
		prefix = VERP_PREFIX_DEFAULT;
	if (!keys || !nkeys || !addr || !f)
		return -EINVAL;
	if (find_token(prefix, addr, &tok, &tlen) < 0)
		return SL_EPROTO;
	n = b32_decode(tok, tlen, raw, sizeof raw);
	if (n < 3 + 3 + VERP_MAC_LEN || n > VERP_RAW_MAX)
		return SL_EPROTO;
	plen = (size_t)n - VERP_MAC_LEN;
	if (raw[0] >> 4 != VERP_VERSION)
		return SL_EPROTO;
	memset(&v, 0, sizeof v);
	v.stream = raw[0] & 15;
	v.issue_day = (uint16_t)(raw[1] << 8 | raw[2]);
	pos = 3;
	if (get_leb(raw, plen, &pos, 10, &v.tenant_id) < 0 ||
	    get_leb(raw, plen, &pos, 10, &v.queue_id) < 0 ||
	    get_leb(raw, plen, &pos, 5, &rcpt) < 0 || rcpt > UINT32_MAX || pos != plen)
		return SL_EPROTO;
	v.rcpt_index = (uint32_t)rcpt;
	for (size_t i = 0; i < nkeys && !ok; i++) {
		if (!keys[i].secret || !keys[i].len)
			continue;
		if (mac(&keys[i], raw, plen, want) < 0)
			return -EIO;
		ok = CRYPTO_memcmp(want, raw + plen, VERP_MAC_LEN) == 0;
	}
	if (!ok)
		return SL_EAUTH;
	*f = v;
	/* a day of clock skew into the future is fine */
	if (max_age_days && (uint16_t)(v.issue_day - today) > 1 &&
	    (uint16_t)(today - v.issue_day) > max_age_days)
		return -ESTALE;
	return 0;
}
