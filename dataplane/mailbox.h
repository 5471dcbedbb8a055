/*
 * mailbox.h — how other threads get work done on the data-plane loop.
 *
 * The event loop's thread owns the queue, the spool's completions, egress
 * and ingress; nothing there takes a lock. Threads that need that state
 * (the admin API's HTTP workers) post a closure to the loop's mailbox: a
 * mutex-protected list plus an eventfd whose read is armed in the loop.
 * Posting writes the eventfd; the loop wakes, takes the whole list and runs
 * each closure on its own thread, in posting order. One wake-up serves
 * every message posted meanwhile.
 *
 * Three ways to use it:
 *   mailbox_post()   fire and forget: msg->run runs on the loop thread later.
 *                    The poster owns msg and keeps it alive until run (or
 *                    cancel) has been called; run may free it.
 *   mailbox_call()   blocks the calling thread until fn(arg) has run on the
 *                    loop thread and returns fn's result (queue listing,
 *                    pause/resume, message lookup: short, synchronous work).
 *   mailbox_await()  blocks until the loop side reports completion with
 *                    mailbox_complete() — from fn itself or from any later
 *                    loop callback (HTTP injection: the reply waits for the
 *                    spool's group commit). The calling thread is parked on
 *                    a condition variable meanwhile, so a server using this
 *                    needs a worker per concurrent waiting request (MHD's
 *                    thread pool / thread-per-connection): the number of
 *                    injections waiting for a commit at once is capped by
 *                    the number of HTTP worker threads.
 * Never call mailbox_call()/mailbox_await() from the loop thread itself:
 * it would wait for itself (they return -EDEADLK).
 *
 * Shutdown: mailbox_close() (loop thread) runs what is already queued,
 * then refuses new posts with -EPIPE (mailbox_call()/mailbox_await()
 * return it). Work that started but whose completion never
 * comes is the caller's to finish (the acceptance path always completes,
 * -ECANCELED at worst). Destroy after the loop stopped running callbacks
 * and before loop_destroy().
 *
 * Errors: -ENOMEM, -EPIPE (closed), -EDEADLK (called from the loop thread),
 * negative errno from eventfd(2).
 */
#ifndef SL_MAILBOX_H
#define SL_MAILBOX_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct mailbox;

struct mailbox_msg {
	void (*run)(struct mailbox_msg *msg); /* on the loop thread */
	struct mailbox_msg *next;             /* internal */
};

/* Create the mailbox of loop l and arm its eventfd read in l. Call on the
 * loop's thread. */
int mailbox_create(struct loop *l, struct mailbox **out);
/* Run what is queued, then refuse further posts (-EPIPE). Loop thread. */
void mailbox_close(struct mailbox *mb);
/* Close if still open (running what is queued), free. NULL is a no-op. */
void mailbox_destroy(struct mailbox *mb);

/* Any thread: queue msg for the loop thread. 0 or -EPIPE after close. */
int mailbox_post(struct mailbox *mb, struct mailbox_msg *msg);

/* Any thread but the loop's: run fn(arg) on the loop thread, wait for it,
 * return its result (or -EPIPE / -EDEADLK when it could not run). */
int mailbox_call(struct mailbox *mb, int (*fn)(void *arg), void *arg);

/* A pending completion handed to fn by mailbox_await(). */
struct mailbox_wait;
/* Any thread but the loop's: run fn(w, arg) on the loop thread and wait
 * until the loop side calls mailbox_complete(w, result) — exactly once,
 * from fn or from a later callback on the loop thread. Returns result, or
 * -EPIPE / -EDEADLK when fn could not run. */
int mailbox_await(struct mailbox *mb, void (*fn)(struct mailbox_wait *w, void *arg), void *arg);
/* Wake the thread waiting in mailbox_await(); w is invalid afterwards. */
void mailbox_complete(struct mailbox_wait *w, int result);

/* True on the thread that created the mailbox (the loop thread). */
bool mailbox_on_loop(const struct mailbox *mb);

#endif
