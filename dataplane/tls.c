/* tls.c — sans-I/O TLS over OpenSSL 3 memory BIOs; see tls.h. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "err.h"

/* Mozilla "intermediate": forward-secret AEAD suites only. */
#define TLS_CIPHERS_SERVER                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
/* The client keeps forward-secret CBC suites last: an old receiver that
 * only speaks those would otherwise get the mail in cleartext. */
#define TLS_CIPHERS_CLIENT                                                     \
	TLS_CIPHERS_SERVER ":"                                                 \
	"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"                         \
	"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"

#define TLS_READ_CHUNK 16384 /* one maximal record */
#define TLS_HOST_MAX 255

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	bool is_server;
	bool verify;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio; /* ciphertext in; owned by ssl */
	BIO *wbio; /* ciphertext out; owned by ssl */
	int failed; /* sticky error, 0 while healthy */
	bool is_server;
	bool verify;
	bool done;   /* handshake complete */
	bool closed; /* peer's close_notify read */
	bool shut;   /* our close_notify queued */
};

static _Thread_local char tls_err[256];
static _Thread_local size_t tls_err_len;

/* Record "what: <first OpenSSL error>" for tls_last_error, drain the queue. */
static void tls_set_error(const char *what, const char *why)
{
	const char *data = NULL;
	unsigned long e;
	int flags = 0, n;
	char reason[160];

	reason[0] = '\0';
	e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
	if (why) {
		snprintf(reason, sizeof reason, "%s", why);
	} else if (e) {
		const char *r = ERR_reason_error_string(e);

		if (r && data && (flags & ERR_TXT_STRING) && *data)
			snprintf(reason, sizeof reason, "%s (%s)", r, data);
		else if (r)
			snprintf(reason, sizeof reason, "%s", r);
		else
			ERR_error_string_n(e, reason, sizeof reason);
	} else {
		snprintf(reason, sizeof reason, "unknown error");
	}
	ERR_clear_error();
	n = snprintf(tls_err, sizeof tls_err, "%s: %s", what, reason);
	tls_err_len = n < 0 ? 0 : (size_t)n;
}

int tls_last_error(char *buf, size_t len)
{
	if (len > 0)
		snprintf(buf, len, "%s", tls_err_len ? tls_err : "");
	return (int)tls_err_len;
}

static int tls_proto(enum tls_version v)
{
	return v == TLS_V12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

static int tls_ctx_common(struct tls_ctx *t, const char *ciphers)
{
	SSL_CTX *sc = t->ssl_ctx;

	if (!SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(sc, ciphers)) {
		tls_set_error("configure context", NULL);
		return SL_ETLS;
	}
	SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Most SMTP connections sit idle waiting for a reply; giving the
	 * record buffers back then matters more than a malloc per burst. */
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

int tls_ctx_server_create(const char *cert_pem_path, const char *key_pem_path,
			  struct tls_ctx **out)
{
	struct tls_ctx *t;
	int rc;

	if (!cert_pem_path || !key_pem_path)
		return -EINVAL;
	t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->is_server = true;
	ERR_clear_error();
	t->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (!t->ssl_ctx) {
		tls_set_error("create server context", NULL);
		rc = SL_ETLS;
		goto fail;
	}
	rc = tls_ctx_common(t, TLS_CIPHERS_SERVER);
	if (rc)
		goto fail;
	SSL_CTX_set_dh_auto(t->ssl_ctx, 1);
	rc = SL_ETLS;
	if (SSL_CTX_use_certificate_chain_file(t->ssl_ctx, cert_pem_path) != 1) {
		tls_set_error("load certificate", NULL);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ssl_ctx, key_pem_path, SSL_FILETYPE_PEM) != 1) {
		tls_set_error("load private key", NULL);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ssl_ctx) != 1) {
		tls_set_error("check private key", NULL);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tls_ctx_destroy(t);
	return rc;
}

int tls_ctx_client_create(bool verify_peer, const char *ca_file, struct tls_ctx **out)
{
	struct tls_ctx *t;
	int rc, ok;

	t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->verify = verify_peer;
	ERR_clear_error();
	t->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ssl_ctx) {
		tls_set_error("create client context", NULL);
		rc = SL_ETLS;
		goto fail;
	}
	rc = tls_ctx_common(t, TLS_CIPHERS_CLIENT);
	if (rc)
		goto fail;
	SSL_CTX_set_verify(t->ssl_ctx, verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	/* Trust anchors are loaded either way so tls_conn_peer_verified()
	 * means something for opportunistic connections too. */
	if (ca_file)
		ok = SSL_CTX_load_verify_file(t->ssl_ctx, ca_file);
	else
		ok = SSL_CTX_set_default_verify_paths(t->ssl_ctx);
	if (ok != 1 && (verify_peer || ca_file)) {
		tls_set_error("load trust anchors", NULL);
		rc = SL_ETLS;
		goto fail;
	}
	ERR_clear_error();
	*out = t;
	return 0;
fail:
	tls_ctx_destroy(t);
	return rc;
}

int tls_ctx_set_versions(struct tls_ctx *ctx, enum tls_version min, enum tls_version max)
{
	if (min > max || min < TLS_V12 || max > TLS_V13)
		return -EINVAL;
	if (!SSL_CTX_set_min_proto_version(ctx->ssl_ctx, tls_proto(min)) ||
	    !SSL_CTX_set_max_proto_version(ctx->ssl_ctx, tls_proto(max))) {
		tls_set_error("set protocol versions", NULL);
		return SL_ETLS;
	}
	return 0;
}

void tls_ctx_destroy(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/* Client side: SNI and the name to verify. host has no trailing dot. */
static int tls_conn_set_host(struct tls_conn *c, const char *host)
{
	unsigned char addr[16];
	bool is_ip;

	is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	if (is_ip) {
		/* RFC 6066: no SNI for address literals. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
			goto fail;
		return 0;
	}
	if (SSL_set_tlsext_host_name(c->ssl, host) != 1)
		goto fail;
	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(c->ssl, host) != 1)
		goto fail;
	return 0;
fail:
	tls_set_error("set peer name", NULL);
	return SL_ETLS;
}

int tls_conn_create(struct tls_ctx *ctx, bool is_server, const char *sni_host,
		    struct tls_conn **out)
{
	char host[TLS_HOST_MAX + 1];
	struct tls_conn *c;
	size_t hl = 0;
	int rc;

	if (!ctx || is_server != ctx->is_server)
		return -EINVAL;
	if (sni_host && !is_server) {
		hl = strlen(sni_host);
		if (hl > 0 && sni_host[hl - 1] == '.')
			hl--;
		if (hl == 0 || hl > TLS_HOST_MAX || memchr(sni_host, '\0', hl) != NULL)
			return -EINVAL;
		memcpy(host, sni_host, hl);
		host[hl] = '\0';
	}
	if (!is_server && ctx->verify && hl == 0)
		return -EINVAL;

	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->is_server = is_server;
	c->verify = ctx->verify;
	ERR_clear_error();
	rc = -ENOMEM;
	c->ssl = SSL_new(ctx->ssl_ctx);
	if (!c->ssl)
		goto fail;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		goto fail;
	}
	/* An empty input BIO means "wait for more", never end of stream. */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	if (is_server) {
		SSL_set_accept_state(c->ssl);
	} else {
		SSL_set_connect_state(c->ssl);
		if (hl > 0) {
			rc = tls_conn_set_host(c, host);
			if (rc)
				goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	ERR_clear_error();
	tls_conn_destroy(c);
	return rc;
}

void tls_conn_destroy(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl); /* frees both BIOs */
	free(c);
}

int tls_conn_feed(struct tls_conn *c, const void *cipher, size_t len)
{
	const char *p = cipher;

	while (len > 0) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		int n = BIO_write(c->rbio, p, chunk);

		if (n <= 0)
			return -ENOMEM;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Turn a failed SSL call into a sticky error, with a detail that names a
 * certificate problem when there was one. */
static int tls_conn_fail(struct tls_conn *c, int ssl_err, const char *what)
{
	long vr;

	vr = c->is_server ? X509_V_OK : SSL_get_verify_result(c->ssl);
	if (c->verify && vr != X509_V_OK) {
		char why[128];

		snprintf(why, sizeof why, "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
		tls_set_error(what, why);
	} else if (ssl_err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		tls_set_error(what, "unexpected end of stream");
	} else {
		tls_set_error(what, NULL);
	}
	c->failed = ssl_err == SSL_ERROR_SYSCALL ? SL_EPROTO : SL_ETLS;
	return c->failed;
}

int tls_conn_handshake(struct tls_conn *c)
{
	int rc, err;

	if (c->failed)
		return c->failed;
	if (c->done)
		return 1;
	ERR_clear_error();
	rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		c->done = true;
		return 1;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	tls_conn_fail(c, err, "handshake");
	c->failed = SL_ETLS;
	return c->failed;
}

int tls_conn_read(struct tls_conn *c, struct sl_buf *plain_out)
{
	size_t total = 0, n;
	int rc, err;

	if (c->failed)
		return c->failed;
	if (c->closed)
		return 0;
	while (total <= (size_t)INT_MAX - TLS_READ_CHUNK) {
		rc = sl_buf_reserve(plain_out, TLS_READ_CHUNK);
		if (rc)
			return total ? (int)total : rc;
		ERR_clear_error();
		n = 0;
		rc = SSL_read_ex(c->ssl, plain_out->data + plain_out->len, TLS_READ_CHUNK, &n);
		if (rc == 1) {
			plain_out->len += n;
			total += n;
			continue;
		}
		err = SSL_get_error(c->ssl, rc);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			break;
		if (err == SSL_ERROR_ZERO_RETURN) {
			c->closed = true;
			break;
		}
		tls_conn_fail(c, err, "read");
		return total ? (int)total : c->failed;
	}
	if (!c->done && SSL_is_init_finished(c->ssl))
		c->done = true;
	return (int)total;
}

int tls_conn_write(struct tls_conn *c, const void *plain, size_t len)
{
	size_t n = 0;
	int rc;

	if (c->failed)
		return c->failed;
	if (c->shut)
		return SL_ETLS;
	if (!c->done)
		return -EAGAIN;
	if (len == 0)
		return 0;
	ERR_clear_error();
	rc = SSL_write_ex(c->ssl, plain, len, &n);
	if (rc == 1 && n == len)
		return 0;
	return tls_conn_fail(c, SSL_get_error(c->ssl, rc), "write");
}

int tls_conn_pending_output(struct tls_conn *c, struct sl_buf *cipher_out)
{
	size_t total = 0, pend;
	int rc, n;

	while ((pend = BIO_ctrl_pending(c->wbio)) > 0) {
		if (pend > (size_t)INT_MAX - total)
			pend = (size_t)INT_MAX - total;
		if (pend == 0)
			break;
		rc = sl_buf_reserve(cipher_out, pend);
		if (rc)
			return total ? (int)total : rc;
		n = BIO_read(c->wbio, cipher_out->data + cipher_out->len, (int)pend);
		if (n <= 0)
			break;
		cipher_out->len += (size_t)n;
		total += (size_t)n;
	}
	return (int)total;
}

int tls_conn_shutdown(struct tls_conn *c)
{
	int rc;

	if (c->shut)
		return 0;
	c->shut = true;
	if (c->failed || !c->done)
		return 0; /* nothing meaningful to say; just close */
	ERR_clear_error();
	rc = SSL_shutdown(c->ssl);
	if (rc < 0) {
		tls_set_error("shutdown", NULL);
		return SL_ETLS;
	}
	return 0;
}

bool tls_conn_peer_closed(const struct tls_conn *c)
{
	return c->closed;
}

bool tls_conn_peer_verified(const struct tls_conn *c)
{
	X509 *peer;

	if (c->is_server || !c->done || c->failed)
		return false;
	peer = SSL_get0_peer_certificate(c->ssl);
	return peer && SSL_get_verify_result(c->ssl) == X509_V_OK;
}

int tls_ctx_enable_dane(struct tls_ctx *ctx)
{
	if (ctx->is_server)
		return -EINVAL;
	ERR_clear_error();
	if (SSL_CTX_dane_enable(ctx->ssl_ctx) <= 0) {
		tls_set_error("enable DANE", NULL);
		return SL_ETLS;
	}
	return 0;
}

int tls_conn_dane_enable(struct tls_conn *c, const char *base_domain)
{
	if (c->is_server || !base_domain || !*base_domain)
		return -EINVAL;
	ERR_clear_error();
	if (SSL_dane_enable(c->ssl, base_domain) <= 0) {
		tls_set_error("enable DANE", NULL);
		return SL_ETLS;
	}
	SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	/* A TLSA mismatch fails the handshake; the detail names it. */
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	c->verify = true;
	return 0;
}

int tls_conn_dane_add(struct tls_conn *c, uint8_t usage, uint8_t selector, uint8_t mtype,
		      const uint8_t *data, size_t len)
{
	int rc;

	ERR_clear_error();
	rc = SSL_dane_tlsa_add(c->ssl, usage, selector, mtype, data, len);
	if (rc < 0) {
		tls_set_error("add TLSA record", NULL);
		return SL_ETLS;
	}
	ERR_clear_error();
	return rc > 0 ? 1 : 0;
}

bool tls_conn_dane_verified(const struct tls_conn *c)
{
	if (c->is_server || !c->done || c->failed)
		return false;
	return SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0 &&
	       SSL_get_verify_result(c->ssl) == X509_V_OK;
}

enum tls_verify_status tls_conn_verify_status(const struct tls_conn *c)
{
	if (c->is_server)
		return TLS_VERIFY_NO_CERT;
	/* A chain that failed verification during the handshake is not kept
	 * as the peer's certificate, but its verify result is. */
	switch (SSL_get_verify_result(c->ssl)) {
	case X509_V_OK:
		return c->done && SSL_get0_peer_certificate(c->ssl) ? TLS_VERIFY_OK :
		       TLS_VERIFY_NO_CERT;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return TLS_VERIFY_HOST_MISMATCH;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TLS_VERIFY_EXPIRED;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_INVALID_CA:
		return TLS_VERIFY_UNTRUSTED;
	default:
		return TLS_VERIFY_OTHER;
	}
}

const char *tls_conn_version(const struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
	return SSL_get_cipher_name(c->ssl);
}

/* ---- self-signed certificates for tests and the demo ---- */

static int tls_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok;

	if (!ext)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static int tls_write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	FILE *f;
	int fd, ok;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	f = fdopen(fd, "w");
	if (!f) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (key)
		ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_X509(f, cert);
	if (fclose(f) != 0)
		return -EIO;
	if (!ok) {
		tls_set_error("write PEM", NULL);
		return SL_ETLS;
	}
	return 0;
}

int tls_generate_self_signed(const char *cert_path, const char *key_path, const char *cn)
{
	unsigned char addr[16];
	char san[TLS_HOST_MAX + 8];
	EVP_PKEY *pkey = NULL;
	X509_NAME *name;
	X509V3_CTX v3;
	X509 *x = NULL;
	BIGNUM *serial = NULL;
	int rc = SL_ETLS;
	bool is_ip;

	if (!cert_path || !key_path || !cn || !*cn || strlen(cn) > TLS_HOST_MAX ||
	    strpbrk(cn, ",\r\n") != NULL)
		return -EINVAL;
	is_ip = inet_pton(AF_INET, cn, addr) == 1 || inet_pton(AF_INET6, cn, addr) == 1;
	snprintf(san, sizeof san, "%s:%s", is_ip ? "IP" : "DNS", cn);

	ERR_clear_error();
	pkey = EVP_EC_gen("P-256");
	x = X509_new();
	serial = BN_new();
	if (!pkey || !x || !serial)
		goto ssl_fail;
	if (!X509_set_version(x, X509_VERSION_3) || !BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)))
		goto ssl_fail;
	/* An hour of slack for peers whose clock runs behind. */
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 3653L * 24 * 3600))
		goto ssl_fail;
	if (!X509_set_pubkey(x, pkey))
		goto ssl_fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name))
		goto ssl_fail;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if (!tls_add_ext(x, &v3, NID_subject_alt_name, san) ||
	    !tls_add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
	    !tls_add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
	    !tls_add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !tls_add_ext(x, &v3, NID_subject_key_identifier, "hash"))
		goto ssl_fail;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto ssl_fail;
	rc = tls_write_pem(key_path, 0600, pkey, NULL);
	if (rc)
		goto fail;
	rc = tls_write_pem(cert_path, 0644, NULL, x);
	goto fail;
ssl_fail:
	tls_set_error("generate certificate", NULL);
	rc = SL_ETLS;
fail:
	BN_free(serial);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}
