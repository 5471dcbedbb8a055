/*
 * spool.h — the durable message spool: LMDB with group commit.
 *
 * Every accepted message is stored here before the client hears 250, and
 * stays until the queue DELETEs it once all its recipients are final. One
 * directory holds one LMDB environment with three named databases:
 *   "meta"  format version and the highest id ever stored;
 *   "msg"   id -> envelope and per-recipient state (versioned binary record);
 *   "body"  id -> message bytes.
 * Keys are big-endian u64, so cursor order is id order.
 *
 * Writes are asynchronous. spool_submit() queues a struct spool_op for the
 * spool's writer thread, which applies every queued op (up to commit_batch
 * per transaction) in one LMDB write transaction and commits it: with
 * sync=true the commit fsyncs, and that commit is the durability point.
 * While a commit runs, new ops queue up for the next transaction (group
 * commit), so submitting never waits for the disk. Committed ops move to a
 * completed list, the event fd becomes readable (once per transaction),
 * and the owner collects them with spool_reap(), in submission order.
 * A PUT whose op->result is 0 after reaping is durable: only then may the
 * message be acknowledged.
 *
 * Ownership: the caller owns each op and everything it points to (msg,
 * strings, recipients, head, body) and keeps them alive and unchanged from
 * spool_submit() until spool_reap() returns the op. The spool copies
 * nothing at submit time.
 *
 * Reads (spool_read_body, spool_scan, spool_count) use short read-only
 * transactions and may run on any thread, concurrently with the writer.
 * spool_submit() and spool_reap() are thread-safe; spool_next_id() is too,
 * though the daemon calls it from its event loop only.
 *
 * The map: map_size is the initial LMDB map size. When a transaction finds
 * it full the writer doubles the map, up to SPOOL_MAP_GROWTH times
 * map_size; past that ops fail with SL_ESPOOL (the caller answers 452).
 *
 * Errors: negative errno (-ENOMEM, -EINVAL for a malformed op, -EEXIST for a
 * PUT of an id already stored, -EBUSY when another process holds the spool,
 * -EPIPE for a submit during close) or SL_E* from err.h: SL_ESPOOL (LMDB
 * failed, map full, corrupt record), SL_EVERSION (the spool was written by
 * an incompatible format version), SL_ENOTFOUND (no such message),
 * SL_ETOOBIG (one op is larger than an LMDB transaction can hold).
 */
#ifndef SL_SPOOL_H
#define SL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* On-disk format version written to "meta"; others are refused. */
#define SPOOL_FORMAT_VERSION 1u
/* The map grows up to this many times the map_size given to spool_open. */
#define SPOOL_MAP_GROWTH 8u
/* Ops per transaction when spool_open gets commit_batch 0. */
#define SPOOL_DEFAULT_BATCH 1024u

struct spool;

enum spool_rcpt_state {
	SPOOL_RCPT_PENDING = 0,
	SPOOL_RCPT_DELIVERED = 1,
	SPOOL_RCPT_BOUNCED = 2,
	SPOOL_RCPT_EXPIRED = 3,
};

struct spool_rcpt {
	char *addr;
	uint8_t state;            /* enum spool_rcpt_state */
	uint32_t attempts;
	uint64_t next_attempt_ms; /* wall clock, ms since the epoch */
};

#define SPOOL_F_8BITMIME 1u
#define SPOOL_F_SMTPUTF8 2u

struct spool_msg {
	uint64_t id;          /* from spool_next_id */
	char *tenant;         /* tenant name */
	uint8_t stream;       /* enum sl_stream (config.h) */
	char *pool;           /* source IP pool name */
	char *mail_from;      /* envelope sender, "" for the null sender */
	char *message_id;     /* Message-ID header value, for logs; "" if none */
	uint64_t received_ms; /* wall clock at acceptance */
	uint64_t body_len;    /* on PUT the spool stores op->head_len + body_len here */
	uint32_t flags;       /* SPOOL_F_* */
	struct spool_rcpt *rcpts;
	uint32_t n_rcpts;
};

/* Open (creating the directory and databases if missing) the spool at path
 * and start its writer thread. sync=false skips fsync: tests only.
 * commit_batch caps ops per transaction (0: SPOOL_DEFAULT_BATCH). */
int spool_open(const char *path, size_t map_size, bool sync, unsigned commit_batch,
	       struct spool **out);
/* Commit every op still queued, stop the writer, close the environment.
 * Completed ops not yet reaped are simply forgotten (the caller owns them). */
void spool_close(struct spool *sp);

/* A new message id: unique and increasing, also across restarts (seeded
 * from the highest id ever stored and from the clock). */
uint64_t spool_next_id(struct spool *sp);

/* --- asynchronous writes ------------------------------------------------- */

enum spool_op_kind {
	SPOOL_OP_PUT,    /* store msg (envelope + recipients) and body */
	SPOOL_OP_UPDATE, /* rewrite the recipients' state, attempts and next
			  * attempt of msg->id (same n_rcpts as stored) */
	SPOOL_OP_DELETE, /* remove msg->id and its body; a missing id is fine */
};

struct spool_op {
	enum spool_op_kind kind;
	const struct spool_msg *msg;
	/* PUT only: the stored message is head (may be NULL / 0) followed by
	 * body, so a caller that prepends header fields needs no copy of the
	 * body to do so. */
	const void *head;
	size_t head_len;
	const void *body;
	size_t body_len;
	void *ctx;         /* the caller's */
	int result;        /* set by the writer: 0, or negative error */
	struct spool_op *next; /* internal */
};

/* Queue op for the writer. Returns 0, -EINVAL for a malformed op (it is not
 * queued), -EPIPE while closing. Never waits for the disk. */
int spool_submit(struct spool *sp, struct spool_op *op);
/* An eventfd that becomes readable after a transaction with ops completes.
 * The caller reads (clears) it; spool_reap does not touch it. Blocking fd. */
int spool_event_fd(struct spool *sp);
/* Move up to max completed ops into ops[], oldest first; returns how many.
 * Drain it until it returns less than max after each event fd wake-up. */
size_t spool_reap(struct spool *sp, struct spool_op **ops, size_t max);

/* --- reads --------------------------------------------------------------- */

/* Append the body of message id to out. SL_ENOTFOUND if there is none. */
int spool_read_body(struct spool *sp, uint64_t id, struct sl_buf *out);
/* Call cb for every stored message, in id order. msg and its strings are
 * valid (and read-only) only during the call. cb may submit ops but must
 * not wait for them. A non-zero return from cb stops the scan and is
 * returned; a corrupt record stops it with SL_ESPOOL. */
int spool_scan(struct spool *sp, int (*cb)(void *ctx, const struct spool_msg *msg), void *ctx);
/* Number of stored messages. */
int spool_count(struct spool *sp, uint64_t *messages);

/* Writer counters since open: committed transactions and completed ops.
 * ops / commits is the average group-commit batch. Either may be NULL. */
void spool_stats(struct spool *sp, uint64_t *commits, uint64_t *ops);

#endif
