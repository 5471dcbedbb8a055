/*
 * session_io.h — an SMTP session's byte pipe: a conn, optionally wrapped in
 * TLS after STARTTLS.
 *
 * Ingress and egress sessions both read plaintext from and write plaintext
 * to a session_io; it decides whether bytes cross a TLS layer first. The
 * struct is embedded in the session; session_io_release() frees what it
 * owns (the TLS state and buffers, not the conn).
 */
#ifndef SL_SESSION_IO_H
#define SL_SESSION_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "tls.h"
#include "transport.h"

struct session_io {
	struct conn *conn;
	struct tls_conn *tls;  /* NULL until STARTTLS */
	bool handshaking;
	struct sl_buf plain;   /* decrypted input not yet consumed by the caller */
	struct sl_buf cipher;  /* scratch for outgoing ciphertext */
};

/* Begin a TLS handshake on the conn (a client sends its hello at once).
 * Returns 0, -ENOMEM or SL_ETLS. */
int session_io_start_tls(struct session_io *s, struct tls_ctx *ctx, bool is_server,
			 const char *sni);

/* The same with a client conn the caller created and configured (e.g.
 * for DANE); s takes c over, also when this fails. */
int session_io_start_tls_conn(struct session_io *s, struct tls_conn *c);

enum { SESSION_IO_OK = 0, SESSION_IO_TLS_READY = 1 };

/* Take bytes received on the conn. Plain sessions hand them straight back
 * in *plain and *plain_len (no copy); TLS sessions decrypt into s->plain and
 * point there. Either way the bytes are valid until the next call, so the
 * caller hands them on (the SMTP parsers copy what they keep).
 * Returns SESSION_IO_TLS_READY when this input completed the handshake,
 * SESSION_IO_OK, or a negative error (SL_ETLS, SL_EPROTO, -ENOMEM). */
int session_io_input(struct session_io *s, const char *data, size_t len,
		     const char **plain, size_t *plain_len);

/* Send plaintext (encrypted when TLS is on). */
int session_io_send(struct session_io *s, const void *data, size_t len);

/* Send and consume everything in b. */
int session_io_flush(struct session_io *s, struct sl_buf *b);

/* Free the TLS state and buffers (not the conn). */
void session_io_release(struct session_io *s);

#endif
