/*
 * dkim.c — DKIM signing: header-field split, RFC 6376 §3.4 canonicalisation,
 * SHA-256 and the private-key operation with keys parsed once.
 */
#include "dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "err.h"

#define DKIM_NAME_MAX 253
#define DKIM_FLUSH_AT (64 * 1024) /* hash the scratch buffer past this */
#define DKIM_SIG_MAX 1024         /* bytes; RSA-8192 */

const char *const dkim_default_headers[] = {
	"from", "to", "cc", "subject", "date", "message-id", "reply-to",
	"mime-version", "content-type", "content-transfer-encoding",
	"list-unsubscribe", "list-unsubscribe-post", "in-reply-to",
	"references", "sender", NULL,
};

struct dkim_key {
	char domain[DKIM_NAME_MAX + 1];
	char selector[DKIM_NAME_MAX + 1];
	enum dkim_algo algo;
	EVP_PKEY *pkey;
	EVP_PKEY_CTX *rsa; /* RSA: sign-initialised once, PKCS#1 v1.5, SHA-256 */
	EVP_MD_CTX *ed;    /* Ed25519: DigestSign-initialised once */
};

struct dkim_field {
	size_t off;     /* first byte of the name */
	size_t len;     /* up to, not including, the final line break */
	size_t colon;   /* offset of ':' from off */
	size_t namelen; /* name without trailing WSP */
};

struct dkim_signer {
	struct dkim_key *keys;
	size_t nkeys;
	enum dkim_c14n hcanon, bcanon;
	EVP_MD *sha256;
	EVP_MD_CTX *md;   /* body/header hashing */
	struct dkim_field *fields; /* DKIM_MAX_FIELDS */
	struct sl_buf scratch;     /* canonical bytes to hash */
	struct sl_buf hlist;       /* the h= value */
	struct sl_buf hdr;         /* one DKIM-Signature field being built */
	unsigned char sig[DKIM_SIG_MAX];
};

static inline bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

const char *dkim_algo_name(enum dkim_algo algo)
{
	switch (algo) {
	case DKIM_ALGO_RSA_SHA256:
		return "rsa-sha256";
	case DKIM_ALGO_ED25519_SHA256:
		return "ed25519-sha256";
	default:
		return NULL;
	}
}

int dkim_algo_parse(const char *name, enum dkim_algo *algo)
{
	if (!strcasecmp(name, "rsa-sha256") || !strcasecmp(name, "rsa"))
		*algo = DKIM_ALGO_RSA_SHA256;
	else if (!strcasecmp(name, "ed25519-sha256") || !strcasecmp(name, "ed25519"))
		*algo = DKIM_ALGO_ED25519_SHA256;
	else
		return -EINVAL;
	return 0;
}

struct dkim_signer *dkim_signer_create(void)
{
	struct dkim_signer *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	s->md = EVP_MD_CTX_new();
	s->fields = calloc(DKIM_MAX_FIELDS, sizeof(*s->fields));
	if (!s->sha256 || !s->md || !s->fields)
		goto fail;
	return s;
fail:
	ERR_clear_error();
	dkim_signer_destroy(s);
	return NULL;
}

static void key_free(struct dkim_key *k)
{
	EVP_PKEY_CTX_free(k->rsa);
	EVP_MD_CTX_free(k->ed);
	EVP_PKEY_free(k->pkey);
}

/* Set up the key's signing context, reused for every signature. */
static int key_init(struct dkim_key *k)
{
	if (k->algo == DKIM_ALGO_ED25519_SHA256) {
		EVP_MD_CTX_free(k->ed);
		k->ed = EVP_MD_CTX_new();
		if (!k->ed || !EVP_DigestSignInit_ex(k->ed, NULL, NULL, NULL, NULL, k->pkey, NULL))
			goto fail;
		return 0;
	}
	k->rsa = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (!k->rsa || EVP_PKEY_sign_init(k->rsa) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(k->rsa, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(k->rsa, EVP_sha256()) <= 0)
		goto fail;
	return 0;
fail:
	ERR_clear_error();
	return SL_ETLS;
}

void dkim_signer_destroy(struct dkim_signer *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nkeys; i++)
		key_free(&s->keys[i]);
	free(s->keys);
	EVP_MD_free(s->sha256);
	EVP_MD_CTX_free(s->md);
	free(s->fields);
	sl_buf_free(&s->scratch);
	sl_buf_free(&s->hlist);
	sl_buf_free(&s->hdr);
	free(s);
}

void dkim_signer_set_canon(struct dkim_signer *s, enum dkim_c14n hdr,
			   enum dkim_c14n body)
{
	s->hcanon = hdr;
	s->bcanon = body;
}

/* A domain or selector: dot-separated labels of [A-Za-z0-9_-]. */
static bool valid_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > DKIM_NAME_MAX || n[0] == '.' || n[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' ||
			  (c == '.' && n[i + 1] != '.');
		if (!ok)
			return false;
	}
	return true;
}

static int load_key(const char *pem_or_path, EVP_PKEY **out)
{
	EVP_PKEY *pkey = NULL;

	if (!strncmp(pem_or_path, "-----BEGIN", 10)) {
		BIO *bio = BIO_new_mem_buf(pem_or_path, -1);
		if (!bio)
			return -ENOMEM;
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else {
		FILE *f = fopen(pem_or_path, "re");
		if (!f)
			return -errno;
		pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!pkey) {
		ERR_clear_error();
		return SL_ECONFIG;
	}
	*out = pkey;
	return 0;
}

/* The DKIM algorithm of a key, or AUTO if DKIM cannot use it. */
static enum dkim_algo key_algo(EVP_PKEY *pkey)
{
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < DKIM_RSA_MIN_BITS ||
		    EVP_PKEY_get_size(pkey) > DKIM_SIG_MAX)
			return DKIM_ALGO_AUTO;
		return DKIM_ALGO_RSA_SHA256;
	case EVP_PKEY_ED25519:
		return DKIM_ALGO_ED25519_SHA256;
	default:
		return DKIM_ALGO_AUTO;
	}
}

int dkim_signer_add_key(struct dkim_signer *s, const char *domain,
			const char *selector, enum dkim_algo algo,
			const char *pem_or_path)
{
	EVP_PKEY *pkey = NULL;
	enum dkim_algo have;
	struct dkim_key *k;
	int rc;

	if (!s || !domain || !selector || !pem_or_path)
		return -EINVAL;
	if (!valid_name(domain) || !valid_name(selector))
		return SL_ECONFIG;
	rc = load_key(pem_or_path, &pkey);
	if (rc < 0)
		return rc;
	have = key_algo(pkey);
	if (have == DKIM_ALGO_AUTO || (algo != DKIM_ALGO_AUTO && algo != have)) {
		rc = SL_ECONFIG;
		goto fail;
	}
	for (size_t i = 0; i < s->nkeys; i++) {
		if (s->keys[i].algo == have && !strcasecmp(s->keys[i].domain, domain)) {
			rc = -EEXIST;
			goto fail;
		}
	}
	k = realloc(s->keys, (s->nkeys + 1) * sizeof(*k));
	if (!k) {
		rc = -ENOMEM;
		goto fail;
	}
	s->keys = k;
	k = &s->keys[s->nkeys];
	memset(k, 0, sizeof(*k));
	strcpy(k->domain, domain);
	strcpy(k->selector, selector);
	k->algo = have;
	k->pkey = pkey;
	if ((rc = key_init(k)) < 0) {
		key_free(k);
		return rc;
	}
	s->nkeys++;
	return 0;
fail:
	EVP_PKEY_free(pkey);
	return rc;
}

int dkim_signer_nkeys(const struct dkim_signer *s, const char *domain)
{
	int n = 0;

	for (size_t i = 0; i < s->nkeys; i++)
		n += !strcasecmp(s->keys[i].domain, domain);
	return n;
}

/*
 * Split the header section into fields; *body_off is where the body starts
 * (after the empty line), or len when there is none.
 */
static int split_fields(struct dkim_signer *s, const char *msg, size_t len,
			size_t *nfields, size_t *body_off)
{
	size_t p = 0, n = 0;

	*body_off = len;
	while (p < len) {
		const char *nl = memchr(msg + p, '\n', len - p);
		size_t eol = nl ? (size_t)(nl - msg) : len;
		size_t next = nl ? eol + 1 : len;
		size_t end = eol;

		if (end > p && msg[end - 1] == '\r')
			end--;
		if (end == p) { /* the empty line */
			*body_off = next;
			break;
		}
		if (is_wsp(msg[p])) {
			if (n == 0)
				return SL_EPROTO;
			s->fields[n - 1].len = end - s->fields[n - 1].off;
		} else {
			const char *colon = memchr(msg + p, ':', end - p);
			struct dkim_field *f;
			size_t nl_len;

			if (!colon)
				return SL_EPROTO;
			if (n == DKIM_MAX_FIELDS)
				return SL_ETOOBIG;
			nl_len = (size_t)(colon - (msg + p));
			while (nl_len > 0 && is_wsp(msg[p + nl_len - 1]))
				nl_len--;
			if (nl_len == 0)
				return SL_EPROTO;
			f = &s->fields[n++];
			f->off = p;
			f->len = end - p;
			f->colon = (size_t)(colon - (msg + p));
			f->namelen = nl_len;
		}
		p = next;
	}
	*nfields = n;
	return 0;
}

/* Append the canonical form of field f (no CRLF after it) to out. */
static int canon_field(enum dkim_c14n c, const char *text,
		       const struct dkim_field *f, struct sl_buf *out)
{
	const char *p = text + f->off;
	char *w;
	bool ws = false, started = false;

	if (sl_buf_reserve(out, 2 * f->len + 2) < 0)
		return -ENOMEM;
	w = out->data + out->len;
	if (c == DKIM_C14N_SIMPLE) {
		for (size_t i = 0; i < f->len; i++) {
			if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
				*w++ = '\r';
			*w++ = p[i];
		}
		out->len = (size_t)(w - out->data);
		return 0;
	}
	for (size_t i = 0; i < f->namelen; i++) {
		char ch = p[i];
		*w++ = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	*w++ = ':';
	for (size_t i = f->colon + 1; i < f->len; i++) {
		char ch = p[i];
		if (ch == '\n' || (ch == '\r' && i + 1 < f->len && p[i + 1] == '\n'))
			continue; /* unfold */
		if (is_wsp(ch)) {
			ws = true;
			continue;
		}
		if (ws && started)
			*w++ = ' ';
		*w++ = ch;
		ws = false;
		started = true;
	}
	out->len = (size_t)(w - out->data);
	return 0;
}

static int flush(struct dkim_signer *s)
{
	if (s->scratch.len == 0)
		return 0;
	if (!EVP_DigestUpdate(s->md, s->scratch.data, s->scratch.len))
		return SL_ETLS;
	sl_buf_reset(&s->scratch);
	return 0;
}

/* SHA-256 of the canonical body into bh. */
static int body_hash(struct dkim_signer *s, const char *b, size_t len,
		     unsigned char bh[32])
{
	size_t p = 0, empty = 0;
	bool any = false;
	int rc;

	sl_buf_reset(&s->scratch);
	if (!EVP_DigestInit_ex(s->md, s->sha256, NULL))
		return SL_ETLS;
	while (p < len) {
		const char *nl = memchr(b + p, '\n', len - p);
		size_t eol = nl ? (size_t)(nl - b) : len;
		size_t end = eol, q = p;
		char *w;

		if (nl && end > p && b[end - 1] == '\r')
			end--;
		if (s->bcanon == DKIM_C14N_RELAXED)
			while (q < end && is_wsp(b[q]))
				q++;
		if (q == end) { /* empty after canonicalisation */
			empty++;
			p = eol + 1;
			continue;
		}
		if (sl_buf_reserve(&s->scratch, 2 * empty + (end - p) + 2) < 0)
			return -ENOMEM;
		w = s->scratch.data + s->scratch.len;
		for (; empty > 0; empty--) {
			*w++ = '\r';
			*w++ = '\n';
		}
		if (s->bcanon == DKIM_C14N_SIMPLE) {
			memcpy(w, b + p, end - p);
			w += end - p;
		} else {
			/* copy runs of non-WSP; a WSP run between them is one SP */
			if (q > p)
				*w++ = ' ';
			while (q < end) {
				size_t r = q;
				while (r < end && !is_wsp(b[r]))
					r++;
				memcpy(w, b + q, r - q);
				w += r - q;
				while (r < end && is_wsp(b[r]))
					r++;
				if (r < end && r > q)
					*w++ = ' ';
				q = r;
			}
		}
		*w++ = '\r';
		*w++ = '\n';
		s->scratch.len = (size_t)(w - s->scratch.data);
		any = true;
		if (s->scratch.len >= DKIM_FLUSH_AT && (rc = flush(s)) < 0)
			return rc;
		p = eol + 1;
	}
	if (!any && s->bcanon == DKIM_C14N_SIMPLE &&
	    sl_buf_append(&s->scratch, "\r\n", 2) < 0)
		return -ENOMEM;
	if ((rc = flush(s)) < 0)
		return rc;
	if (!EVP_DigestFinal_ex(s->md, bh, NULL))
		return SL_ETLS;
	return 0;
}

static bool name_is(const char *text, const struct dkim_field *f, const char *name)
{
	return strlen(name) == f->namelen && !strncasecmp(text + f->off, name, f->namelen);
}

/* Append h= entry name, folding before it when the line would get long. */
static int hlist_add(struct sl_buf *hl, size_t *col, const char *name)
{
	size_t n = strlen(name);

	if (hl->len > 0) {
		if (sl_buf_append(hl, ":", 1) < 0)
			return -ENOMEM;
		(*col)++;
		if (*col + n > 76) {
			if (sl_buf_append(hl, "\r\n\t", 3) < 0)
				return -ENOMEM;
			*col = 8;
		}
	}
	*col += n;
	return sl_buf_append(hl, name, n);
}

/* Canonical signed fields into scratch, their names into hlist. */
static int header_fields(struct dkim_signer *s, const char *msg, size_t nfields)
{
	size_t col = 24; /* "\tt=1234567890; h=" */
	size_t nfrom = 0;
	int rc;

	sl_buf_reset(&s->scratch);
	sl_buf_reset(&s->hlist);
	for (const char *const *h = dkim_default_headers; *h; h++) {
		for (size_t i = nfields; i-- > 0;) {
			if (!name_is(msg, &s->fields[i], *h))
				continue;
			if ((rc = canon_field(s->hcanon, msg, &s->fields[i], &s->scratch)) < 0 ||
			    (rc = sl_buf_append(&s->scratch, "\r\n", 2)) < 0 ||
			    (rc = hlist_add(&s->hlist, &col, *h)) < 0)
				return rc;
			nfrom += !strcmp(*h, "from");
		}
	}
	if (nfrom == 0)
		return SL_EPROTO;
	/* oversign: a From added in transit would make the signature fail */
	return hlist_add(&s->hlist, &col, "from");
}

static int b64(struct sl_buf *out, const unsigned char *p, size_t n)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	int w;

	if (sl_buf_reserve(out, need) < 0)
		return -ENOMEM;
	w = EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
	out->len += (size_t)w;
	return 0;
}

/*
 * Sign the canonical header bytes in scratch with key k into s->sig: the
 * SHA-256 of them, signed with RSASSA-PKCS1-v1_5 or, per RFC 8463, with
 * PureEdDSA over the 32-byte hash. The key's context is reused; should an
 * OpenSSL version refuse a second Ed25519 one-shot on it, it is set up
 * again and the signature retried once.
 */
static int key_sign(struct dkim_signer *s, struct dkim_key *k, size_t *siglen)
{
	unsigned char hash[32];

	if (!EVP_DigestInit_ex(s->md, s->sha256, NULL) ||
	    !EVP_DigestUpdate(s->md, s->scratch.data, s->scratch.len) ||
	    !EVP_DigestFinal_ex(s->md, hash, NULL))
		goto fail;
	*siglen = sizeof(s->sig);
	if (k->algo == DKIM_ALGO_RSA_SHA256) {
		if (EVP_PKEY_sign(k->rsa, s->sig, siglen, hash, sizeof(hash)) <= 0)
			goto fail;
		return 0;
	}
	if (EVP_DigestSign(k->ed, s->sig, siglen, hash, sizeof(hash)))
		return 0;
	ERR_clear_error();
	*siglen = sizeof(s->sig);
	if (key_init(k) < 0 || !EVP_DigestSign(k->ed, s->sig, siglen, hash, sizeof(hash)))
		goto fail;
	return 0;
fail:
	ERR_clear_error();
	return SL_ETLS;
}

static const char *canon_name(enum dkim_c14n c)
{
	return c == DKIM_C14N_SIMPLE ? "simple" : "relaxed";
}

/* Build, sign and append one DKIM-Signature field for key k. */
static int sign_one(struct dkim_signer *s, struct dkim_key *k,
		    const unsigned char bh[32], int64_t now, size_t fields_len,
		    struct sl_buf *out)
{
	struct dkim_field self;
	size_t siglen, pre;
	int rc;

	sl_buf_reset(&s->hdr);
	if ((rc = sl_buf_appendf(&s->hdr,
				 "DKIM-Signature: v=1; a=%s; c=%s/%s; d=%s; s=%s;\r\n"
				 "\tt=%lld; h=",
				 dkim_algo_name(k->algo), canon_name(s->hcanon),
				 canon_name(s->bcanon), k->domain, k->selector,
				 (long long)now)) < 0 ||
	    (rc = sl_buf_append(&s->hdr, s->hlist.data, s->hlist.len)) < 0 ||
	    (rc = sl_buf_append(&s->hdr, ";\r\n\tbh=", 7)) < 0 ||
	    (rc = b64(&s->hdr, bh, 32)) < 0 ||
	    (rc = sl_buf_append(&s->hdr, ";\r\n\tb=", 6)) < 0)
		return rc;

	/* the signature covers this field with an empty b=, no CRLF */
	self.off = 0;
	self.len = s->hdr.len;
	self.colon = strlen("DKIM-Signature");
	self.namelen = self.colon;
	s->scratch.len = fields_len;
	if ((rc = canon_field(s->hcanon, s->hdr.data, &self, &s->scratch)) < 0)
		return rc;
	if ((rc = key_sign(s, k, &siglen)) < 0)
		return rc;

	/* b= folded in lines of at most 72 characters after the tab */
	pre = s->hdr.len;
	if ((rc = b64(&s->hdr, s->sig, siglen)) < 0)
		return rc;
	if ((rc = sl_buf_append(out, s->hdr.data, pre)) < 0)
		return rc;
	for (size_t i = pre, first = 70; i < s->hdr.len;) {
		size_t n = s->hdr.len - i < first ? s->hdr.len - i : first;
		if (i != pre && (rc = sl_buf_append(out, "\r\n\t ", 4)) < 0)
			return rc;
		if ((rc = sl_buf_append(out, s->hdr.data + i, n)) < 0)
			return rc;
		i += n;
		first = 72;
	}
	return sl_buf_append(out, "\r\n", 2);
}

int dkim_signer_sign_at(struct dkim_signer *s, const char *domain,
			const char *msg, size_t len, int64_t now, struct sl_buf *out)
{
	unsigned char bh[32];
	size_t nfields, body_off, fields_len, out_len;
	int rc, nk;

	if (!s || !domain || (!msg && len) || !out)
		return -EINVAL;
	nk = dkim_signer_nkeys(s, domain);
	if (nk == 0)
		return SL_ENOTFOUND;
	if (!msg)
		return SL_EPROTO;
	if ((rc = split_fields(s, msg, len, &nfields, &body_off)) < 0)
		return rc;
	if ((rc = body_hash(s, msg + body_off, len - body_off, bh)) < 0)
		return rc;
	if ((rc = header_fields(s, msg, nfields)) < 0)
		return rc;
	fields_len = s->scratch.len;
	out_len = sl_buf_avail(out); /* appends may compact out */
	for (size_t i = 0; i < s->nkeys; i++) {
		if (strcasecmp(s->keys[i].domain, domain))
			continue;
		if ((rc = sign_one(s, &s->keys[i], bh, now, fields_len, out)) < 0) {
			out->len = out->off + out_len;
			return rc;
		}
	}
	return 0;
}

int dkim_signer_sign(struct dkim_signer *s, const char *domain,
		     const char *msg, size_t len, struct sl_buf *out)
{
	return dkim_signer_sign_at(s, domain, msg, len, (int64_t)time(NULL), out);
}

int dkim_keygen(enum dkim_algo algo, const char *path)
{
	EVP_PKEY *pkey = NULL;
	FILE *f = NULL;
	int fd, rc;

	if (algo == DKIM_ALGO_RSA_SHA256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (algo == DKIM_ALGO_ED25519_SHA256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		return -EINVAL;
	if (!pkey) {
		ERR_clear_error();
		return SL_ETLS;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		goto fail_unlink;
	}
	if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)) {
		ERR_clear_error();
		rc = -EIO;
		fclose(f);
		goto fail_unlink;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rc = -errno;
		fclose(f);
		goto fail_unlink;
	}
	if (fclose(f) != 0) {
		rc = -errno;
		goto fail_unlink;
	}
	EVP_PKEY_free(pkey);
	return 0;
fail_unlink:
	unlink(path);
fail:
	EVP_PKEY_free(pkey);
	return rc;
}

int dkim_dns_record(const char *pem_or_path, struct sl_buf *out)
{
	EVP_PKEY *pkey = NULL;
	unsigned char *der = NULL, raw[32];
	size_t rawlen = sizeof(raw);
	int rc, n;

	if ((rc = load_key(pem_or_path, &pkey)) < 0)
		return rc;
	switch (key_algo(pkey)) {
	case DKIM_ALGO_RSA_SHA256:
		n = i2d_PUBKEY(pkey, &der);
		if (n <= 0) {
			rc = SL_ETLS;
			goto fail;
		}
		if ((rc = sl_buf_appendf(out, "v=DKIM1; k=rsa; p=")) < 0 ||
		    (rc = b64(out, der, (size_t)n)) < 0)
			goto fail;
		break;
	case DKIM_ALGO_ED25519_SHA256:
		if (!EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen)) {
			rc = SL_ETLS;
			goto fail;
		}
		if ((rc = sl_buf_appendf(out, "v=DKIM1; k=ed25519; p=")) < 0 ||
		    (rc = b64(out, raw, rawlen)) < 0)
			goto fail;
		break;
	default:
		rc = SL_ECONFIG;
		goto fail;
	}
	rc = 0;
fail:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	return rc;
}
