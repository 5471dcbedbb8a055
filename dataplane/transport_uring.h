/*
 * transport_uring.h — kernel TCP through io_uring: the `uring` transport.
 *
 * One transport per event loop. Besides the active opens of the ops table it
 * runs listeners (multishot accept) for the ingress and HTTP ports, which
 * always stay on the kernel stack. Each connection keeps one receive and at
 * most one send in flight; output queued while a send runs goes out in the
 * next one, so a burst of pipelined replies costs one send.
 */
#ifndef SL_TRANSPORT_URING_H
#define SL_TRANSPORT_URING_H

#include "loop.h"
#include "transport.h"

struct transport_uring;
struct uring_listener;

int transport_uring_create(struct loop *l, struct transport_uring **out);
void transport_uring_destroy(struct transport_uring *tu);
struct transport *transport_uring_base(struct transport_uring *tu);

/* Called for each accepted connection. The callee must call conn_start()
 * (or conn_close()) before returning. */
typedef void (*uring_accept_cb)(void *ctx, struct conn *c, const struct sockaddr *peer,
				socklen_t peer_len);

/* Listen on addr (SO_REUSEADDR); errors are -errno from socket/bind/listen. */
int transport_uring_listen(struct transport_uring *tu, const struct sockaddr *addr,
			   socklen_t addr_len, uring_accept_cb cb, void *ctx,
			   struct uring_listener **out);
void transport_uring_listener_close(struct uring_listener *ls);

/* Attach handlers to an accepted conn and start receiving. */
void conn_start(struct conn *c, const struct conn_handler *h, void *ctx);

/* Local address of a conn (e.g. which listener IP it arrived on). */
int conn_local_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len);

#endif
