/*
 * transport.h — the byte-stream transport ops table under SMTP sessions.
 *
 * Sessions (ingress and egress) see a struct conn: a TCP connection they can
 * send bytes on and that calls them back with received bytes. Which stack
 * carries it is a backend behind struct transport_ops: `uring` (kernel TCP
 * through io_uring, transport_uring.c) today, `dpdk` (sluice's own userspace
 * TCP/IP) later. Callers use the inline wrappers below and never see the
 * backend; there is no #ifdef in the callers.
 *
 * Ownership and lifetime: a conn belongs to whoever created or accepted it.
 * conn_close() may be called at any time, also from inside a callback; after
 * it returns, no callback for that conn runs again and the pointer is dead.
 * Data handed to on_recv is valid only during the call. conn_send() copies
 * the bytes into the conn's output queue and returns 0 or -ENOMEM;
 * conn_send_buf() sends a whole sl_buf and may take its storage instead
 * of copying (a large message body goes out without one more copy).
 */
#ifndef SL_TRANSPORT_H
#define SL_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"

struct conn;
struct transport;

struct conn_handler {
	/* Active open finished: err 0, or -ETIMEDOUT, -ECONNREFUSED, ... */
	void (*on_connect)(void *ctx, int err);
	/* Bytes arrived; len 0 means the peer closed its side. */
	void (*on_recv)(void *ctx, const char *data, size_t len);
	/* A send or receive failed (-ECONNRESET, ...): the conn is unusable. */
	void (*on_error)(void *ctx, int err);
	/* Every queued byte has been handed to the network (may be NULL). */
	void (*on_drained)(void *ctx);
};

struct transport_ops {
	const char *name;
	/* Open a connection from src (port 0: any) to dst. Callbacks start with
	 * on_connect. timeout_ms bounds the handshake. */
	int (*connect)(struct transport *t, const struct sockaddr *src, socklen_t src_len,
		       const struct sockaddr *dst, socklen_t dst_len, uint64_t timeout_ms,
		       const struct conn_handler *h, void *ctx, struct conn **out);
	int (*send)(struct conn *c, const void *data, size_t len);
	/* Like send of b's bytes, leaving b empty; may swap storage with b.
	 * NULL: conn_send_buf() copies with send. */
	int (*send_buf)(struct conn *c, struct sl_buf *b);
	void (*close)(struct conn *c);
	/* Bytes queued but not yet handed to the network. */
	size_t (*pending)(const struct conn *c);
};

struct transport {
	const struct transport_ops *ops;
};

/* Every backend's conn starts with this. */
struct conn {
	struct transport *t;
};

static inline int transport_connect(struct transport *t, const struct sockaddr *src,
				    socklen_t src_len, const struct sockaddr *dst,
				    socklen_t dst_len, uint64_t timeout_ms,
				    const struct conn_handler *h, void *ctx, struct conn **out)
{
	return t->ops->connect(t, src, src_len, dst, dst_len, timeout_ms, h, ctx, out);
}

static inline int conn_send(struct conn *c, const void *data, size_t len)
{
	return c->t->ops->send(c, data, len);
}

/* Send every byte of b and leave b empty (its storage may be exchanged
 * for the conn's). 0 or -ENOMEM / -EPIPE as conn_send. */
static inline int conn_send_buf(struct conn *c, struct sl_buf *b)
{
	int rc;

	if (c->t->ops->send_buf)
		return c->t->ops->send_buf(c, b);
	rc = sl_buf_avail(b) ? c->t->ops->send(c, sl_buf_head(b), sl_buf_avail(b)) : 0;
	sl_buf_reset(b);
	return rc;
}

static inline void conn_close(struct conn *c)
{
	c->t->ops->close(c);
}

static inline size_t conn_pending(const struct conn *c)
{
	return c->t->ops->pending(c);
}

#endif
