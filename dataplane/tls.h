/*
 * tls.h — sans-I/O TLS over OpenSSL 3 memory BIOs.
 *
 * The caller owns the socket (io_uring, the DPDK TCP stack, or a test that
 * pumps bytes in memory). It hands received ciphertext to tls_conn_feed(),
 * drives tls_conn_handshake() / tls_conn_read() / tls_conn_write(), and after
 * every call moves tls_conn_pending_output() onto the wire. Nothing here
 * touches a file descriptor or a clock.
 *
 * Protocol: TLS 1.2 and 1.3 only; AEAD ECDHE/DHE suites on the server; the
 * client adds a few ECDHE CBC suites at the lowest preference because
 * opportunistic STARTTLS to an old receiver beats delivering in cleartext.
 * No compression, no renegotiation.
 *
 * Ownership: a tls_ctx (an SSL_CTX) is built once, may be shared by many
 * threads once built, and may be destroyed while its connections live (each
 * tls_conn holds its own reference). A tls_conn belongs to one thread.
 *
 * Errors: SL_ETLS for handshake, certificate and record failures; the detail
 * (OpenSSL's reason or the verification error, e.g. "hostname mismatch") is
 * kept per thread and read with tls_last_error(). A failed conn stays failed.
 * After a failure, send whatever tls_conn_pending_output() returns (usually
 * an alert) and close. -ENOMEM, -EINVAL and -EAGAIN are what they say.
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tls_ctx;
struct tls_conn;

enum tls_version {
	TLS_V12 = 0,
	TLS_V13 = 1,
};

/* A server context presenting the PEM certificate chain (leaf first) and key. */
int tls_ctx_server_create(const char *cert_pem_path, const char *key_pem_path,
			  struct tls_ctx **out);
/* A client context. verify_peer: fail the handshake unless the chain verifies
 * against ca_file (NULL = the system store) and the name matches the conn's
 * sni_host. Without verify_peer the result is still computed (see
 * tls_conn_peer_verified) but never fails the handshake. */
int tls_ctx_client_create(bool verify_peer, const char *ca_file, struct tls_ctx **out);
/* Narrow the protocol range (default TLS_V12..TLS_V13); -EINVAL if min > max.
 * Affects connections created afterwards. */
int tls_ctx_set_versions(struct tls_ctx *ctx, enum tls_version min, enum tls_version max);
void tls_ctx_destroy(struct tls_ctx *ctx);

/* A connection in the handshake state. is_server must match the ctx (-EINVAL
 * otherwise). Client: sni_host (trailing dot ignored) is sent as SNI unless it
 * is an IP literal, and is the name checked when verifying; a verifying client
 * requires it (-EINVAL). Servers pass NULL. */
int tls_conn_create(struct tls_ctx *ctx, bool is_server, const char *sni_host,
		    struct tls_conn **out);
void tls_conn_destroy(struct tls_conn *c);

/* Hand over len bytes received from the network. 0 or -ENOMEM. */
int tls_conn_feed(struct tls_conn *c, const void *cipher, size_t len);
/* Advance the handshake: 1 done, 0 in progress (send pending output, wait
 * for input), SL_ETLS failed. A client's first call produces the ClientHello. */
int tls_conn_handshake(struct tls_conn *c);
/* Decrypt everything fed so far and append it to plain_out: bytes appended
 * (0 = none yet), or SL_ETLS / SL_EPROTO. Plaintext decrypted before a failure
 * is returned first; the failure comes on the next call. Reading may queue
 * output (TLS 1.3 key updates), so drain pending output afterwards. At most
 * INT_MAX bytes per call. */
int tls_conn_read(struct tls_conn *c, struct sl_buf *plain_out);
/* Encrypt len bytes into the pending output: 0, -EAGAIN before the handshake
 * is done, SL_ETLS on a failed or shut down conn, -ENOMEM. */
int tls_conn_write(struct tls_conn *c, const void *plain, size_t len);
/* Move all ciphertext waiting to be sent into cipher_out: bytes moved
 * (0 = nothing to send) or -ENOMEM. */
int tls_conn_pending_output(struct tls_conn *c, struct sl_buf *cipher_out);
/* Queue our close_notify (then send pending output). Writes fail afterwards. */
int tls_conn_shutdown(struct tls_conn *c);
/* True once the peer's close_notify has been read. */
bool tls_conn_peer_closed(const struct tls_conn *c);
/* Client: true if the peer's chain and name verified (meaningful after the
 * handshake, also without verify_peer). Servers: false. */
bool tls_conn_peer_verified(const struct tls_conn *c);

/* DANE (RFC 6698/7672; the policy is dane.h's). A client ctx must have
 * DANE enabled once (0 or SL_ETLS) before its conns use the calls below. */
int tls_ctx_enable_dane(struct tls_ctx *ctx);
/* Make c (a client conn of a DANE-enabled ctx, before its handshake)
 * authenticate its peer by TLSA records only: base_domain is the TLSA base
 * domain and the name DANE-TA chains are checked against; DANE-EE matches
 * skip name checks (RFC 7672 §3.1.1). The handshake fails unless a record
 * added with tls_conn_dane_add matches. 0, -EINVAL, SL_ETLS. */
int tls_conn_dane_enable(struct tls_conn *c, const char *base_domain);
/* Add one TLSA record (after tls_conn_dane_enable): 1 added, 0 unusable
 * to OpenSSL (ignored), SL_ETLS. */
int tls_conn_dane_add(struct tls_conn *c, uint8_t usage, uint8_t selector, uint8_t mtype,
		      const uint8_t *data, size_t len);
/* After the handshake: true if a TLSA record authenticated the peer. */
bool tls_conn_dane_verified(const struct tls_conn *c);
/* Why a client's peer did or did not verify (after the handshake, or after
 * a handshake that failed on the certificate; also without verify_peer). */
enum tls_verify_status {
	TLS_VERIFY_OK = 0,
	TLS_VERIFY_NO_CERT,       /* no handshake, or the peer sent none */
	TLS_VERIFY_HOST_MISMATCH, /* the chain is fine, the name is not */
	TLS_VERIFY_EXPIRED,       /* a certificate is expired or not yet valid */
	TLS_VERIFY_UNTRUSTED,     /* self-signed, unknown issuer, bad chain */
	TLS_VERIFY_OTHER,         /* any other verification error */
};
enum tls_verify_status tls_conn_verify_status(const struct tls_conn *c);

/* "TLSv1.3", "TLS_AES_256_GCM_SHA384" etc. for Received headers and logs;
 * static strings, valid for the conn's life. Before the handshake completes
 * they are OpenSSL's placeholders. */
const char *tls_conn_version(const struct tls_conn *c);
const char *tls_conn_cipher(const struct tls_conn *c);

/* Copy this thread's last TLS failure detail into buf (NUL-terminated,
 * truncated to len). Returns its full length, 0 if none was recorded. */
int tls_last_error(char *buf, size_t len);

/* Write a self-signed EC P-256 certificate for cn (also its subjectAltName,
 * DNS or IP), valid for 10 years, and its key (mode 0600) as PEM files. For
 * tests and the demo. 0, SL_ETLS, or -errno from creating the files. */
int tls_generate_self_signed(const char *cert_path, const char *key_path, const char *cn);

#endif
