/* session_io.c — plaintext or TLS byte pipe over a conn; see session_io.h. */
#include "session_io.h"

#include "err.h"

#include <errno.h>

static int push_cipher(struct session_io *s)
{
	int rc = tls_conn_pending_output(s->tls, &s->cipher);

	if (rc < 0)
		return rc;
	if (sl_buf_avail(&s->cipher)) {
		rc = conn_send(s->conn, sl_buf_head(&s->cipher), sl_buf_avail(&s->cipher));
		sl_buf_reset(&s->cipher);
	}
	return rc < 0 ? rc : 0;
}

int session_io_start_tls(struct session_io *s, struct tls_ctx *ctx, bool is_server,
			 const char *sni)
{
	struct tls_conn *c;
	int rc = tls_conn_create(ctx, is_server, sni, &c);

	if (rc < 0)
		return rc;
	return session_io_start_tls_conn(s, c);
}

int session_io_start_tls_conn(struct session_io *s, struct tls_conn *c)
{
	int rc;

	s->tls = c;
	s->handshaking = true;
	sl_buf_reset(&s->plain);
	rc = tls_conn_handshake(s->tls);
	if (rc < 0)
		return rc;
	return push_cipher(s);
}

int session_io_input(struct session_io *s, const char *data, size_t len,
		     const char **plain, size_t *plain_len)
{
	int rc, ready = SESSION_IO_OK;

	if (!s->tls) {
		*plain = data;
		*plain_len = len;
		return SESSION_IO_OK;
	}
	sl_buf_reset(&s->plain); /* the previous call's plaintext was consumed */
	rc = tls_conn_feed(s->tls, data, len);
	if (rc < 0)
		return rc;
	if (s->handshaking) {
		rc = tls_conn_handshake(s->tls);
		if (rc < 0) {
			push_cipher(s); /* let the peer see our alert */
			return rc;
		}
		if (rc == 1) {
			s->handshaking = false;
			ready = SESSION_IO_TLS_READY;
		}
	}
	if (!s->handshaking) {
		rc = tls_conn_read(s->tls, &s->plain);
		if (rc < 0)
			return rc;
	}
	rc = push_cipher(s);
	if (rc < 0)
		return rc;
	*plain = sl_buf_head(&s->plain);
	*plain_len = sl_buf_avail(&s->plain);
	return ready;
}

int session_io_send(struct session_io *s, const void *data, size_t len)
{
	int rc;

	if (!len)
		return 0;
	if (!s->tls)
		return conn_send(s->conn, data, len);
	rc = tls_conn_write(s->tls, data, len);
	if (rc < 0)
		return rc;
	return push_cipher(s);
}

int session_io_flush(struct session_io *s, struct sl_buf *b)
{
	int rc;

	if (!s->tls)
		return conn_send_buf(s->conn, b);
	rc = session_io_send(s, sl_buf_head(b), sl_buf_avail(b));

	sl_buf_reset(b);
	return rc;
}

void session_io_release(struct session_io *s)
{
	if (s->tls)
		tls_conn_destroy(s->tls);
	s->tls = NULL;
	sl_buf_free(&s->plain);
	sl_buf_free(&s->cipher);
}
