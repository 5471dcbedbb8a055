/* transport_uring.c — kernel TCP via io_uring; see transport_uring.h. */
#include "transport_uring.h"

#include "buf.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RX_SIZE 16384

struct transport_uring {
	struct transport base;
	struct loop *loop;
};

struct uconn {
	struct conn base;
	struct transport_uring *tu;
	int fd;
	const struct conn_handler *h;
	void *ctx;
	struct loop_op op_connect, op_timeout, op_recv, op_send;
	struct __kernel_timespec connect_ts;
	unsigned inflight; /* ops whose completion is still due */
	bool connecting, recv_armed, send_armed, closed, failed;
	struct sl_buf out;  /* queued, not yet submitted */
	struct sl_buf wire; /* being sent */
	struct sockaddr_storage dst;
	socklen_t dst_len;
	char rx[RX_SIZE];
};

struct uring_listener {
	struct transport_uring *tu;
	int fd;
	struct loop_op op_accept;
	uring_accept_cb cb;
	void *ctx;
	bool closed;
	unsigned inflight;
};

static const struct transport_ops uring_ops;

static void uconn_maybe_free(struct uconn *c)
{
	if (!c->closed || c->inflight)
		return;
	if (c->fd >= 0)
		close(c->fd);
	sl_buf_free(&c->out);
	sl_buf_free(&c->wire);
	free(c);
}

static void uconn_fail(struct uconn *c, int err)
{
	if (c->closed || c->failed)
		return;
	c->failed = true;
	if (c->h->on_error) {
		c->inflight++;
		c->h->on_error(c->ctx, err);
		c->inflight--;
	}
	uconn_maybe_free(c);
}

static void arm_recv(struct uconn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || c->closed || c->failed)
		return;
	sqe = loop_sqe(c->tu->loop, &c->op_recv);
	io_uring_prep_recv(sqe, c->fd, c->rx, sizeof c->rx, 0);
	c->recv_armed = true;
	c->inflight++;
}

static void arm_send(struct uconn *c)
{
	struct io_uring_sqe *sqe;

	if (c->send_armed || c->closed || c->failed || c->connecting)
		return;
	if (sl_buf_avail(&c->wire) == 0) {
		struct sl_buf tmp;

		if (sl_buf_avail(&c->out) == 0)
			return;
		tmp = c->wire;
		c->wire = c->out;
		c->out = tmp;
		sl_buf_reset(&c->out);
	}
	sqe = loop_sqe(c->tu->loop, &c->op_send);
	io_uring_prep_send(sqe, c->fd, sl_buf_head(&c->wire), sl_buf_avail(&c->wire),
			   MSG_NOSIGNAL);
	c->send_armed = true;
	c->inflight++;
}

static void on_recv_done(struct loop_op *op, int res, uint32_t flags)
{
	struct uconn *c = (struct uconn *)((char *)op - offsetof(struct uconn, op_recv));

	(void)flags;
	c->inflight--;
	c->recv_armed = false;
	if (c->closed) {
		uconn_maybe_free(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		arm_recv(c);
		return;
	}
	if (res < 0) {
		uconn_fail(c, res);
		return;
	}
	/* Hold a reference across the callback: it may close the conn. The
	 * next receive is armed only afterwards, since it reuses c->rx. */
	c->inflight++;
	c->h->on_recv(c->ctx, c->rx, (size_t)res);
	c->inflight--;
	if (res > 0)
		arm_recv(c);
	uconn_maybe_free(c);
}

static void on_send_done(struct loop_op *op, int res, uint32_t flags)
{
	struct uconn *c = (struct uconn *)((char *)op - offsetof(struct uconn, op_send));

	(void)flags;
	c->inflight--;
	c->send_armed = false;
	if (c->closed) {
		uconn_maybe_free(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN)
		res = 0;
	if (res < 0) {
		uconn_fail(c, res);
		return;
	}
	sl_buf_consume(&c->wire, (size_t)res);
	arm_send(c);
	if (!c->send_armed && c->h->on_drained) {
		c->inflight++;
		c->h->on_drained(c->ctx);
		c->inflight--;
		uconn_maybe_free(c);
	}
}

static void on_connect_done(struct loop_op *op, int res, uint32_t flags)
{
	struct uconn *c = (struct uconn *)((char *)op - offsetof(struct uconn, op_connect));

	(void)flags;
	c->inflight--;
	if (c->closed) {
		uconn_maybe_free(c);
		return;
	}
	c->connecting = false;
	if (res == -ECANCELED)
		res = -ETIMEDOUT;
	if (res < 0)
		c->failed = true;
	else {
		arm_recv(c);
		arm_send(c);
	}
	c->inflight++;
	c->h->on_connect(c->ctx, res < 0 ? res : 0);
	c->inflight--;
	uconn_maybe_free(c);
}

static void on_timeout_done(struct loop_op *op, int res, uint32_t flags)
{
	struct uconn *c = (struct uconn *)((char *)op - offsetof(struct uconn, op_timeout));

	(void)res;
	(void)flags;
	c->inflight--;
	uconn_maybe_free(c);
}

static struct uconn *uconn_new(struct transport_uring *tu, int fd)
{
	struct uconn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->base.t = &tu->base;
	c->tu = tu;
	c->fd = fd;
	c->op_connect.cb = on_connect_done;
	c->op_timeout.cb = on_timeout_done;
	c->op_recv.cb = on_recv_done;
	c->op_send.cb = on_send_done;
	return c;
}

static int uring_connect(struct transport *t, const struct sockaddr *src, socklen_t src_len,
			 const struct sockaddr *dst, socklen_t dst_len, uint64_t timeout_ms,
			 const struct conn_handler *h, void *ctx, struct conn **out)
{
	struct transport_uring *tu = (struct transport_uring *)t;
	struct io_uring_sqe *sqe;
	struct uconn *c;
	int fd, one = 1, rc;

	fd = socket(dst->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (src && src_len) {
		/* Defer the port choice to connect() so one source IP can hold
		 * far more than 28k connections (one port space per dst). */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(fd, src, src_len) < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
	}
	c = uconn_new(tu, fd);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->h = h;
	c->ctx = ctx;
	memcpy(&c->dst, dst, dst_len);
	c->dst_len = dst_len;
	c->connecting = true;
	sqe = loop_sqe(tu->loop, &c->op_connect);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->dst, c->dst_len);
	sqe->flags |= IOSQE_IO_LINK;
	c->inflight++;
	c->connect_ts.tv_sec = (long long)(timeout_ms / 1000);
	c->connect_ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
	sqe = loop_sqe(tu->loop, &c->op_timeout);
	io_uring_prep_link_timeout(sqe, &c->connect_ts, 0);
	c->inflight++;
	*out = &c->base;
	return 0;
}

static int uring_send(struct conn *base, const void *data, size_t len)
{
	struct uconn *c = (struct uconn *)base;
	int rc;

	if (c->closed || c->failed)
		return -EPIPE;
	rc = sl_buf_append(&c->out, data, len);
	if (rc)
		return rc;
	arm_send(c);
	return 0;
}

static int uring_send_buf(struct conn *base, struct sl_buf *b)
{
	struct uconn *c = (struct uconn *)base;
	struct sl_buf tmp;
	int rc = 0;

	if (c->closed || c->failed)
		rc = -EPIPE;
	else if (sl_buf_avail(&c->out) == 0) { /* take b's bytes as they are */
		tmp = c->out;
		c->out = *b;
		*b = tmp;
		arm_send(c);
	} else if (sl_buf_avail(b)) {
		rc = uring_send(base, sl_buf_head(b), sl_buf_avail(b));
	}
	sl_buf_reset(b);
	return rc;
}

static size_t uring_pending(const struct conn *base)
{
	const struct uconn *c = (const struct uconn *)base;

	return sl_buf_avail(&c->out) + sl_buf_avail(&c->wire);
}

static void uring_close(struct conn *base)
{
	struct uconn *c = (struct uconn *)base;

	if (c->closed)
		return;
	c->closed = true;
	/* Wake the outstanding receive (and any send) so their completions
	 * come back and the memory can go; the fd is closed after that. */
	if (c->inflight) {
		struct io_uring_sqe *sqe = loop_sqe(c->tu->loop, NULL);

		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	}
	uconn_maybe_free(c);
}

static const struct transport_ops uring_ops = {
	.name = "uring",
	.connect = uring_connect,
	.send = uring_send,
	.send_buf = uring_send_buf,
	.close = uring_close,
	.pending = uring_pending,
};

int transport_uring_create(struct loop *l, struct transport_uring **out)
{
	struct transport_uring *tu = calloc(1, sizeof *tu);

	if (!tu)
		return -ENOMEM;
	tu->base.ops = &uring_ops;
	tu->loop = l;
	*out = tu;
	return 0;
}

void transport_uring_destroy(struct transport_uring *tu)
{
	free(tu);
}

struct transport *transport_uring_base(struct transport_uring *tu)
{
	return &tu->base;
}

void conn_start(struct conn *base, const struct conn_handler *h, void *ctx)
{
	struct uconn *c = (struct uconn *)base;

	c->h = h;
	c->ctx = ctx;
	arm_recv(c);
	arm_send(c);
}

int conn_local_addr(const struct conn *base, struct sockaddr_storage *ss, socklen_t *len)
{
	const struct uconn *c = (const struct uconn *)base;

	*len = sizeof *ss;
	return getsockname(c->fd, (struct sockaddr *)ss, len) < 0 ? -errno : 0;
}

/* --- listeners ---------------------------------------------------------- */

static void arm_accept(struct uring_listener *ls)
{
	struct io_uring_sqe *sqe = loop_sqe(ls->tu->loop, &ls->op_accept);

	io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
	ls->inflight++;
}

static void on_accept(struct loop_op *op, int res, uint32_t flags)
{
	struct uring_listener *ls =
		(struct uring_listener *)((char *)op - offsetof(struct uring_listener, op_accept));
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	struct uconn *c;
	int one = 1;

	if (!(flags & IORING_CQE_F_MORE))
		ls->inflight--;
	if (ls->closed) {
		if (res >= 0)
			close(res);
		if (!ls->inflight) {
			close(ls->fd);
			free(ls);
		}
		return;
	}
	if (res >= 0) {
		setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (getpeername(res, (struct sockaddr *)&peer, &plen) < 0 ||
		    !(c = uconn_new(ls->tu, res))) {
			close(res);
		} else {
			ls->cb(ls->ctx, &c->base, (struct sockaddr *)&peer, plen);
		}
	}
	if (!(flags & IORING_CQE_F_MORE))
		arm_accept(ls);
}

int transport_uring_listen(struct transport_uring *tu, const struct sockaddr *addr,
			   socklen_t addr_len, uring_accept_cb cb, void *ctx,
			   struct uring_listener **out)
{
	struct uring_listener *ls;
	int fd, one = 1, rc;

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, addr, addr_len) < 0 || listen(fd, 4096) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	ls = calloc(1, sizeof *ls);
	if (!ls) {
		close(fd);
		return -ENOMEM;
	}
	ls->tu = tu;
	ls->fd = fd;
	ls->cb = cb;
	ls->ctx = ctx;
	ls->op_accept.cb = on_accept;
	arm_accept(ls);
	*out = ls;
	return 0;
}

void transport_uring_listener_close(struct uring_listener *ls)
{
	struct io_uring_sqe *sqe;

	if (!ls)
		return;
	ls->closed = true;
	sqe = loop_sqe(ls->tu->loop, NULL);
	io_uring_prep_cancel_fd(sqe, ls->fd, 0);
}
