/*
 * spool_waiter.h — how finished spool ops find their owner.
 *
 * Several modules submit ops to the one spool (ingress PUTs, the queue's
 * UPDATE/DELETE and DSN PUTs). Each sets op->ctx to a struct spool_waiter
 * embedded in its own state; the daemon's reap loop calls waiter->done for
 * every completed op, whoever submitted it.
 */
#ifndef SL_SPOOL_WAITER_H
#define SL_SPOOL_WAITER_H

struct spool_op;

struct spool_waiter {
	void (*done)(struct spool_waiter *w, struct spool_op *op);
};

#endif
