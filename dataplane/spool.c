/*
 * spool.c — durable message spool on LMDB with group commit; see spool.h.
 *
 * Threads: the caller's threads submit ops to the `in` list and reap them
 * from the `done` list, both under `mu`. One writer thread drains `in` in
 * batches of up to commit_batch ops, applies a batch in one write
 * transaction, commits it (the durability point, see txn_commit), then
 * appends the batch to `done` and writes the event fd once. The mutex is
 * never held across LMDB calls, so submitters never wait for a commit.
 *
 * Map growth (mdb_env_set_mapsize) needs no transaction open in the
 * process, so read transactions hold `remap` shared and the writer takes it
 * exclusively, between its own transactions, to grow the map.
 *
 * The "msg" record, little-endian, version SPOOL_REC_VERSION:
 *   u8 version, u8 stream, u32 flags, u64 received_ms, u64 body_len,
 *   str tenant, str pool, str mail_from, str message_id,
 *   u32 n_rcpts, n_rcpts x { u8 state, u32 attempts, u64 next_attempt_ms,
 *   str addr }
 * where str is u32 length, the bytes, and a NUL (so decoded strings point
 * straight into the map). Decoding checks every length against the record.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

#define SPOOL_REC_VERSION 1u
#define SPOOL_MAX_READERS 256u
/* Close a transaction once it holds this much data, batch or not. */
#define SPOOL_TXN_BYTES ((size_t)64 << 20)
#define SPOOL_LOCK_FILE "spool.lock"

/* Smallest encoded recipient: fixed fields and an empty address. */
#define REC_RCPT_MIN (1 + 4 + 8 + 4 + 1)

static const char META_VERSION[] = "version";
static const char META_MAX_ID[] = "max_id";

struct spool {
	MDB_env *env;
	MDB_dbi db_meta, db_msg, db_body;
	int efd;
	int lock_fd;
	unsigned batch;
	_Atomic uint64_t next_id;
	_Atomic uint64_t n_commits, n_ops;

	/* Read transactions shared, map growth exclusive. */
	pthread_rwlock_t remap;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct spool_op *in_head, **in_tail;     /* under mu */
	struct spool_op *done_head, **done_tail; /* under mu */
	bool stopping;                           /* under mu */
	pthread_t thread;
	bool thread_started;

	/* Writer thread only, after open. */
	size_t map_size, map_max;
	uint64_t max_id_stored; /* meta "max_id" as committed */
	struct spool_op **wops; /* the batch being written */
	struct sl_buf wrec;     /* copy of a record being updated */
	struct spool_rcpt *wrcpts;
	uint32_t wrcpt_cap;
};

/* --- small helpers ------------------------------------------------------- */

static void key_encode(uint8_t k[8], uint64_t id)
{
	for (int i = 7; i >= 0; i--, id >>= 8)
		k[i] = (uint8_t)id;
}

static uint64_t key_decode(const uint8_t k[8])
{
	uint64_t id = 0;

	for (int i = 0; i < 8; i++)
		id = id << 8 | k[i];
	return id;
}

/* LMDB's codes to ours. */
static int mdb_to_err(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == ENOMEM)
		return -ENOMEM;
	if (rc == MDB_NOTFOUND)
		return SL_ENOTFOUND;
	return SL_ESPOOL;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* --- the record codec ---------------------------------------------------- */

static bool str_size(const char *s, size_t *total)
{
	size_t n = strlen(str_or_empty(s));

	if (n >= UINT32_MAX)
		return false;
	*total += 4 + n + 1;
	return true;
}

/* Encoded size of m, or 0 if it cannot be encoded. */
static size_t rec_size(const struct spool_msg *m)
{
	size_t n = 1 + 1 + 4 + 8 + 8 + 4;

	if (!str_size(m->tenant, &n) || !str_size(m->pool, &n) || !str_size(m->mail_from, &n) ||
	    !str_size(m->message_id, &n))
		return 0;
	for (uint32_t i = 0; i < m->n_rcpts; i++) {
		n += 1 + 4 + 8;
		if (!str_size(m->rcpts[i].addr, &n))
			return 0;
	}
	return n;
}

static uint8_t *put_u8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
	return p + 8;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(str_or_empty(s));

	p = put_u32(p, (uint32_t)n);
	memcpy(p, str_or_empty(s), n);
	p[n] = 0;
	return p + n + 1;
}

/* Write m into dst, which has rec_size(m) bytes. body_len is stored as given. */
static void rec_encode(uint8_t *dst, const struct spool_msg *m, uint64_t body_len)
{
	uint8_t *p = dst;

	p = put_u8(p, SPOOL_REC_VERSION);
	p = put_u8(p, m->stream);
	p = put_u32(p, m->flags);
	p = put_u64(p, m->received_ms);
	p = put_u64(p, body_len);
	p = put_str(p, m->tenant);
	p = put_str(p, m->pool);
	p = put_str(p, m->mail_from);
	p = put_str(p, m->message_id);
	p = put_u32(p, m->n_rcpts);
	for (uint32_t i = 0; i < m->n_rcpts; i++) {
		const struct spool_rcpt *r = &m->rcpts[i];

		p = put_u8(p, r->state);
		p = put_u32(p, r->attempts);
		p = put_u64(p, r->next_attempt_ms);
		p = put_str(p, r->addr);
	}
}

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static bool rd_has(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n)
		r->bad = true;
	return !r->bad;
}

static uint8_t get_u8(struct rd *r)
{
	if (!rd_has(r, 1))
		return 0;
	return *r->p++;
}

static uint32_t get_u32(struct rd *r)
{
	uint32_t v = 0;

	if (!rd_has(r, 4))
		return 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | r->p[i];
	r->p += 4;
	return v;
}

static uint64_t get_u64(struct rd *r)
{
	uint64_t v = 0;

	if (!rd_has(r, 8))
		return 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | r->p[i];
	r->p += 8;
	return v;
}

/* A string pointing into the record (NUL-terminated there). */
static char *get_str(struct rd *r)
{
	uint32_t n = get_u32(r);
	char *s;

	if (!rd_has(r, (size_t)n + 1) || r->p[n] != 0) {
		r->bad = true;
		return NULL;
	}
	s = (char *)r->p;
	r->p += (size_t)n + 1;
	return s;
}

/* Decode a record of n bytes at p into m (id left alone). Recipients go to
 * *rcpts, grown as needed (*cap entries). Strings point into p. Returns 0,
 * SL_ESPOOL for a malformed record, SL_EVERSION for an unknown record
 * version, -ENOMEM. */
static int rec_decode(const void *p, size_t n, struct spool_msg *m, struct spool_rcpt **rcpts,
		      uint32_t *cap)
{
	struct rd r = { .p = p, .end = (const uint8_t *)p + n };
	uint32_t n_rcpts;

	if (n < 1)
		return SL_ESPOOL;
	if (get_u8(&r) != SPOOL_REC_VERSION)
		return SL_EVERSION;
	m->stream = get_u8(&r);
	m->flags = get_u32(&r);
	m->received_ms = get_u64(&r);
	m->body_len = get_u64(&r);
	m->tenant = get_str(&r);
	m->pool = get_str(&r);
	m->mail_from = get_str(&r);
	m->message_id = get_str(&r);
	n_rcpts = get_u32(&r);
	if (r.bad || n_rcpts > (size_t)(r.end - r.p) / REC_RCPT_MIN)
		return SL_ESPOOL;
	if (n_rcpts > *cap) {
		struct spool_rcpt *v = realloc(*rcpts, n_rcpts * sizeof *v);

		if (!v)
			return -ENOMEM;
		*rcpts = v;
		*cap = n_rcpts;
	}
	for (uint32_t i = 0; i < n_rcpts; i++) {
		struct spool_rcpt *rc = &(*rcpts)[i];

		rc->state = get_u8(&r);
		rc->attempts = get_u32(&r);
		rc->next_attempt_ms = get_u64(&r);
		rc->addr = get_str(&r);
		if (rc->state > SPOOL_RCPT_EXPIRED)
			r.bad = true;
	}
	if (r.bad || r.p != r.end)
		return SL_ESPOOL;
	m->rcpts = *rcpts;
	m->n_rcpts = n_rcpts;
	return 0;
}

/* --- the writer ---------------------------------------------------------- */

/* Apply one op to txn. Returns 0 or the op's own negative error, in which
 * case nothing was written. An LMDB failure that leaves txn unusable
 * (MDB_MAP_FULL, MDB_TXN_FULL, I/O errors) goes to *mdb_err instead: the
 * caller must abort txn. *bytes grows by what was written. */
static int apply_op(struct spool *sp, MDB_txn *txn, struct spool_op *op, int *mdb_err,
		    size_t *bytes)
{
	const struct spool_msg *m = op->msg;
	uint8_t kb[8];
	MDB_val k = { .mv_size = 8, .mv_data = kb }, v;
	int rc;

	key_encode(kb, m->id);
	switch (op->kind) {
	case SPOOL_OP_PUT:
		v.mv_size = rec_size(m);
		v.mv_data = NULL;
		rc = mdb_put(txn, sp->db_msg, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
		if (rc == MDB_KEYEXIST)
			return -EEXIST;
		if (rc)
			goto mdb_fail;
		rec_encode(v.mv_data, m, op->head_len + op->body_len);
		*bytes += v.mv_size;
		v.mv_size = op->head_len + op->body_len;
		v.mv_data = NULL;
		if ((rc = mdb_put(txn, sp->db_body, &k, &v, MDB_RESERVE)))
			goto mdb_fail;
		if (op->head_len)
			memcpy(v.mv_data, op->head, op->head_len);
		if (op->body_len)
			memcpy((char *)v.mv_data + op->head_len, op->body, op->body_len);
		*bytes += v.mv_size;
		return 0;

	case SPOOL_OP_UPDATE: {
		struct spool_msg old;

		rc = mdb_get(txn, sp->db_msg, &k, &v);
		if (rc == MDB_NOTFOUND)
			return SL_ENOTFOUND;
		if (rc)
			goto mdb_fail;
		/* Copy: the put below may rewrite the page v points into. */
		sl_buf_reset(&sp->wrec);
		if ((rc = sl_buf_append(&sp->wrec, v.mv_data, v.mv_size)) < 0)
			return rc;
		rc = rec_decode(sp->wrec.data, sp->wrec.len, &old, &sp->wrcpts, &sp->wrcpt_cap);
		if (rc < 0)
			return rc == -ENOMEM ? rc : SL_ESPOOL;
		if (old.n_rcpts != m->n_rcpts)
			return -EINVAL;
		for (uint32_t i = 0; i < m->n_rcpts; i++) {
			sp->wrcpts[i].state = m->rcpts[i].state;
			sp->wrcpts[i].attempts = m->rcpts[i].attempts;
			sp->wrcpts[i].next_attempt_ms = m->rcpts[i].next_attempt_ms;
		}
		v.mv_size = rec_size(&old);
		v.mv_data = NULL;
		if ((rc = mdb_put(txn, sp->db_msg, &k, &v, MDB_RESERVE)))
			goto mdb_fail;
		rec_encode(v.mv_data, &old, old.body_len);
		*bytes += v.mv_size;
		return 0;
	}

	case SPOOL_OP_DELETE:
		rc = mdb_del(txn, sp->db_msg, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			goto mdb_fail;
		rc = mdb_del(txn, sp->db_body, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			goto mdb_fail;
		return 0;
	}
	return -EINVAL;

mdb_fail:
	*mdb_err = rc;
	return 0;
}

/* Apply ops[i..limit) to txn, each op's own outcome into op->result. Stops
 * early when txn has become unusable (*mdb_err set; the op at the returned
 * index caused it) or holds SPOOL_TXN_BYTES. Returns the index of the first
 * op not applied. */
static size_t apply_range(struct spool *sp, MDB_txn *txn, size_t i, size_t limit, int *mdb_err)
{
	size_t bytes = 0;

	*mdb_err = 0;
	for (; i < limit; i++) {
		if (bytes >= SPOOL_TXN_BYTES)
			break;
		sp->wops[i]->result = apply_op(sp, txn, sp->wops[i], mdb_err, &bytes);
		if (*mdb_err)
			break;
	}
	return i;
}

/* Record the highest id put in ops[i..j), then commit txn. Returns 0 or an
 * LMDB error; txn is gone either way. */
static int txn_commit(struct spool *sp, MDB_txn *txn, size_t i, size_t j)
{
	uint64_t max_id = sp->max_id_stored;
	int rc;

	for (size_t x = i; x < j; x++)
		if (sp->wops[x]->kind == SPOOL_OP_PUT && sp->wops[x]->result == 0 &&
		    sp->wops[x]->msg->id > max_id)
			max_id = sp->wops[x]->msg->id;
	if (max_id != sp->max_id_stored) {
		uint8_t vb[8];
		MDB_val k = { .mv_size = sizeof META_MAX_ID - 1, .mv_data = (void *)META_MAX_ID };
		MDB_val v = { .mv_size = 8, .mv_data = vb };

		key_encode(vb, max_id);
		if ((rc = mdb_put(txn, sp->db_meta, &k, &v, 0))) {
			mdb_txn_abort(txn);
			return rc;
		}
	}
	/*
	 * THE COMMIT POINT. When mdb_txn_commit returns 0 every op of this
	 * transaction is on disk: with sync=true LMDB has fsynced the data
	 * pages and then the meta page that makes them visible. Nothing is
	 * reported complete before this line; a crash before it loses the
	 * whole transaction and no client has heard 250 for any of it.
	 */
	rc = mdb_txn_commit(txn);
	if (rc == 0)
		sp->max_id_stored = max_id;
	return rc;
}

/* Double the map, up to map_max. Needs no transaction open in the process:
 * read transactions hold `remap` shared. */
static int map_grow(struct spool *sp)
{
	size_t want;
	int rc;

	if (sp->map_size >= sp->map_max)
		return SL_ESPOOL;
	want = sp->map_size > sp->map_max / 2 ? sp->map_max : sp->map_size * 2;
	pthread_rwlock_wrlock(&sp->remap);
	rc = mdb_env_set_mapsize(sp->env, want);
	pthread_rwlock_unlock(&sp->remap);
	if (rc)
		return SL_ESPOOL;
	sp->map_size = want;
	return 0;
}

static bool any_ok(const struct spool *sp, size_t i, size_t j)
{
	for (; i < j; i++)
		if (sp->wops[i]->result == 0)
			return true;
	return false;
}

/* Write the batch wops[0..n) in as few transactions as possible: normally
 * one. An op that makes the transaction fail (map or transaction full) is
 * split off: the ops before it are committed by themselves, then it is
 * retried alone after growing the map, or fails. A commit that finds the
 * map full (and at its limit) is retried with half the ops, down to one. */
static void write_batch(struct spool *sp, size_t n)
{
	size_t i = 0, limit = n, j;
	MDB_txn *txn;
	int err, rc;

	while (i < n) {
		rc = mdb_txn_begin(sp->env, NULL, 0, &txn);
		if (rc) {
			for (; i < n; i++)
				sp->wops[i]->result = mdb_to_err(rc);
			return;
		}
		j = apply_range(sp, txn, i, limit, &err);
		if (err) {
			mdb_txn_abort(txn);
			if (j > i) { /* redo the good ops before wops[j] alone */
				limit = j;
				continue;
			}
			limit = n;
			if (err == MDB_MAP_FULL && map_grow(sp) == 0)
				continue;
			if (err == MDB_TXN_FULL) /* too big even alone */
				sp->wops[i]->result = SL_ETOOBIG;
			else
				sp->wops[i]->result = err == ENOMEM ? -ENOMEM : SL_ESPOOL;
			i++;
			continue;
		}
		if (!any_ok(sp, i, j)) { /* every op failed on its own: nothing to write */
			mdb_txn_abort(txn);
			i = j;
			limit = n;
			continue;
		}
		rc = txn_commit(sp, txn, i, j);
		if (rc == MDB_MAP_FULL && map_grow(sp) == 0)
			continue; /* retry the same ops with more room */
		if (rc == MDB_MAP_FULL && j - i > 1) {
			limit = i + (j - i) / 2; /* the map is at its limit: try fewer */
			continue;
		}
		if (rc) {
			for (size_t x = i; x < j; x++)
				if (sp->wops[x]->result == 0)
					sp->wops[x]->result = SL_ESPOOL;
		} else {
			atomic_fetch_add_explicit(&sp->n_commits, 1, memory_order_relaxed);
		}
		i = j;
		limit = n;
	}
}

static void *writer_main(void *arg)
{
	struct spool *sp = arg;
	uint64_t one = 1;
	ssize_t w;

	for (;;) {
		size_t n = 0;

		pthread_mutex_lock(&sp->mu);
		while (!sp->in_head && !sp->stopping)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (!sp->in_head) { /* stopping, and everything is written */
			pthread_mutex_unlock(&sp->mu);
			break;
		}
		while (sp->in_head && n < sp->batch) {
			sp->wops[n++] = sp->in_head;
			sp->in_head = sp->in_head->next;
		}
		if (!sp->in_head)
			sp->in_tail = &sp->in_head;
		pthread_mutex_unlock(&sp->mu);

		/* Submitters keep appending to `in` meanwhile: the next batch. */
		write_batch(sp, n);

		pthread_mutex_lock(&sp->mu);
		for (size_t i = 0; i < n; i++) {
			sp->wops[i]->next = NULL;
			*sp->done_tail = sp->wops[i];
			sp->done_tail = &sp->wops[i]->next;
		}
		pthread_mutex_unlock(&sp->mu);
		atomic_fetch_add_explicit(&sp->n_ops, n, memory_order_relaxed);
		/* One wake-up per batch; it cannot fail short of counter overflow. */
		w = write(sp->efd, &one, sizeof one);
		(void)w;
	}
	return NULL;
}

/* --- open and close ------------------------------------------------------ */

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf)
		return -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Exclusive use of the directory: LMDB itself would let two processes in. */
static int lock_dir(const char *path, int *fd_out)
{
	char name[PATH_MAX];
	int fd;

	if (snprintf(name, sizeof name, "%s/%s", path, SPOOL_LOCK_FILE) >= (int)sizeof name)
		return -ENAMETOOLONG;
	fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;

		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

/* Open the databases, check or write the format version, and find the
 * highest id in use. */
static int init_dbs(struct spool *sp)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_stat st;
	uint64_t max_id = 0, clock_id;
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)))
		return mdb_to_err(rc);
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &sp->db_meta)) ||
	    (rc = mdb_dbi_open(txn, "msg", MDB_CREATE, &sp->db_msg)) ||
	    (rc = mdb_dbi_open(txn, "body", MDB_CREATE, &sp->db_body)))
		goto fail_mdb;

	k.mv_size = sizeof META_VERSION - 1;
	k.mv_data = (void *)META_VERSION;
	rc = mdb_get(txn, sp->db_meta, &k, &v);
	if (rc == 0) {
		struct rd r = { .p = v.mv_data, .end = (const uint8_t *)v.mv_data + v.mv_size };

		if (v.mv_size != 4 || get_u32(&r) != SPOOL_FORMAT_VERSION) {
			rc = SL_EVERSION;
			goto fail;
		}
	} else if (rc == MDB_NOTFOUND) {
		uint8_t vb[4];

		/* Data without a version is not ours to interpret. */
		if ((rc = mdb_stat(txn, sp->db_msg, &st)))
			goto fail_mdb;
		if (st.ms_entries > 0) {
			rc = SL_EVERSION;
			goto fail;
		}
		put_u32(vb, SPOOL_FORMAT_VERSION);
		v.mv_size = 4;
		v.mv_data = vb;
		if ((rc = mdb_put(txn, sp->db_meta, &k, &v, 0)))
			goto fail_mdb;
	} else {
		goto fail_mdb;
	}

	k.mv_size = sizeof META_MAX_ID - 1;
	k.mv_data = (void *)META_MAX_ID;
	rc = mdb_get(txn, sp->db_meta, &k, &v);
	if (rc == 0) {
		if (v.mv_size != 8) {
			rc = SL_ESPOOL;
			goto fail;
		}
		max_id = key_decode(v.mv_data);
	} else if (rc != MDB_NOTFOUND) {
		goto fail_mdb;
	}
	sp->max_id_stored = max_id;

	if ((rc = mdb_cursor_open(txn, sp->db_msg, &cur)))
		goto fail_mdb;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == 0 && k.mv_size == 8 && key_decode(k.mv_data) > max_id)
		max_id = key_decode(k.mv_data);
	else if (rc && rc != MDB_NOTFOUND)
		goto fail_mdb;

	if ((rc = mdb_txn_commit(txn)))
		return mdb_to_err(rc);
	/* Ids continue above anything ever stored, and above the clock so that
	 * an emptied spool does not reuse ids after a restart. */
	clock_id = wall_ms() << 16;
	atomic_store(&sp->next_id, (max_id >= clock_id ? max_id : clock_id) + 1);
	return 0;

fail_mdb:
	rc = mdb_to_err(rc);
fail:
	mdb_txn_abort(txn);
	return rc;
}

static void spool_free(struct spool *sp)
{
	if (sp->env)
		mdb_env_close(sp->env);
	if (sp->efd >= 0)
		close(sp->efd);
	if (sp->lock_fd >= 0)
		close(sp->lock_fd); /* drops the flock */
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->mu);
	pthread_rwlock_destroy(&sp->remap);
	free(sp->wops);
	free(sp->wrcpts);
	sl_buf_free(&sp->wrec);
	free(sp);
}

int spool_open(const char *path, size_t map_size, bool sync, unsigned commit_batch,
	       struct spool **out)
{
	struct spool *sp;
	MDB_envinfo info;
	sigset_t all, old;
	int rc, dead;

	*out = NULL;
	if (!path)
		return -EINVAL;
	sp = calloc(1, sizeof *sp);
	if (!sp)
		return -ENOMEM;
	sp->efd = -1;
	sp->lock_fd = -1;
	sp->batch = commit_batch ? commit_batch : SPOOL_DEFAULT_BATCH;
	sp->in_tail = &sp->in_head;
	sp->done_tail = &sp->done_head;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	/* Readers may nest (a scan callback reading a body), so readers win. */
	pthread_rwlock_init(&sp->remap, NULL);

	if (!(sp->wops = calloc(sp->batch, sizeof *sp->wops))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = mkdir_p(path)) < 0 || (rc = lock_dir(path, &sp->lock_fd)) < 0)
		goto fail;

	if ((rc = mdb_env_create(&sp->env))) {
		sp->env = NULL;
		goto fail_mdb;
	}
	if ((rc = mdb_env_set_maxdbs(sp->env, 3)) ||
	    (rc = mdb_env_set_maxreaders(sp->env, SPOOL_MAX_READERS)) ||
	    (map_size && (rc = mdb_env_set_mapsize(sp->env, map_size))))
		goto fail_mdb;
	/* MDB_NOTLS: read transactions are not tied to a thread's slot. With
	 * sync every commit fsyncs (no MDB_NOSYNC / MDB_NOMETASYNC). */
	rc = mdb_env_open(sp->env, path, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0600);
	if (rc)
		goto fail_mdb;
	/* Free reader slots left by a process that died (e.g. SIGKILL). */
	mdb_reader_check(sp->env, &dead);
	if ((rc = init_dbs(sp)) < 0)
		goto fail;
	if ((rc = mdb_env_info(sp->env, &info)))
		goto fail_mdb;
	sp->map_size = info.me_mapsize;
	sp->map_max = map_size > SIZE_MAX / SPOOL_MAP_GROWTH ? SIZE_MAX : map_size * SPOOL_MAP_GROWTH;
	if (sp->map_max < sp->map_size)
		sp->map_max = sp->map_size;

	if ((sp->efd = eventfd(0, EFD_CLOEXEC)) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Signals are for the daemon's main thread, not the writer. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&sp->thread, NULL, writer_main, sp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		rc = -rc;
		goto fail;
	}
	pthread_setname_np(sp->thread, "sluice-spool");
	sp->thread_started = true;
	*out = sp;
	return 0;

fail_mdb:
	rc = mdb_to_err(rc);
fail:
	spool_free(sp);
	return rc;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->stopping = true;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	if (sp->thread_started)
		pthread_join(sp->thread, NULL);
	spool_free(sp);
}

uint64_t spool_next_id(struct spool *sp)
{
	return atomic_fetch_add_explicit(&sp->next_id, 1, memory_order_relaxed);
}

/* --- submit and reap ----------------------------------------------------- */

static bool op_valid(const struct spool_op *op)
{
	const struct spool_msg *m = op->msg;

	if (!m)
		return false;
	switch (op->kind) {
	case SPOOL_OP_PUT:
		if ((op->body_len && !op->body) || (op->head_len && !op->head) ||
		    op->head_len > SIZE_MAX - op->body_len || (m->n_rcpts && !m->rcpts) ||
		    rec_size(m) == 0)
			return false;
		break;
	case SPOOL_OP_UPDATE:
		if (m->n_rcpts && !m->rcpts)
			return false;
		break;
	case SPOOL_OP_DELETE:
		return true;
	default:
		return false;
	}
	for (uint32_t i = 0; i < m->n_rcpts; i++)
		if (m->rcpts[i].state > SPOOL_RCPT_EXPIRED)
			return false;
	return true;
}

int spool_submit(struct spool *sp, struct spool_op *op)
{
	bool was_empty;

	if (!op || !op_valid(op))
		return -EINVAL;
	op->result = 0;
	op->next = NULL;
	pthread_mutex_lock(&sp->mu);
	if (sp->stopping) {
		pthread_mutex_unlock(&sp->mu);
		return -EPIPE;
	}
	was_empty = !sp->in_head;
	*sp->in_tail = op;
	sp->in_tail = &op->next;
	/* The writer only sleeps on an empty list. */
	if (was_empty)
		pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

int spool_event_fd(struct spool *sp)
{
	return sp->efd;
}

size_t spool_reap(struct spool *sp, struct spool_op **ops, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&sp->mu);
	while (sp->done_head && n < max) {
		ops[n++] = sp->done_head;
		sp->done_head = sp->done_head->next;
	}
	if (!sp->done_head)
		sp->done_tail = &sp->done_head;
	pthread_mutex_unlock(&sp->mu);
	for (size_t i = 0; i < n; i++)
		ops[i]->next = NULL;
	return n;
}

void spool_stats(struct spool *sp, uint64_t *commits, uint64_t *ops)
{
	if (commits)
		*commits = atomic_load_explicit(&sp->n_commits, memory_order_relaxed);
	if (ops)
		*ops = atomic_load_explicit(&sp->n_ops, memory_order_relaxed);
}

/* --- reads --------------------------------------------------------------- */

static int read_begin(struct spool *sp, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&sp->remap);
	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, txn))) {
		pthread_rwlock_unlock(&sp->remap);
		return mdb_to_err(rc);
	}
	return 0;
}

static void read_end(struct spool *sp, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&sp->remap);
}

int spool_read_body(struct spool *sp, uint64_t id, struct sl_buf *out)
{
	uint8_t kb[8];
	MDB_val k = { .mv_size = 8, .mv_data = kb }, v;
	MDB_txn *txn;
	int rc;

	key_encode(kb, id);
	if ((rc = read_begin(sp, &txn)) < 0)
		return rc;
	rc = mdb_get(txn, sp->db_body, &k, &v);
	if (rc == 0)
		rc = sl_buf_append(out, v.mv_data, v.mv_size);
	else
		rc = mdb_to_err(rc);
	read_end(sp, txn);
	return rc;
}

int spool_scan(struct spool *sp, int (*cb)(void *ctx, const struct spool_msg *msg), void *ctx)
{
	struct spool_rcpt *rcpts = NULL;
	uint32_t cap = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if ((rc = read_begin(sp, &txn)) < 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, sp->db_msg, &cur))) {
		rc = mdb_to_err(rc);
		goto out;
	}
	for (MDB_cursor_op how = MDB_FIRST;; how = MDB_NEXT) {
		struct spool_msg m;

		rc = mdb_cursor_get(cur, &k, &v, how);
		if (rc) {
			rc = rc == MDB_NOTFOUND ? 0 : mdb_to_err(rc);
			break;
		}
		if (k.mv_size != 8) {
			rc = SL_ESPOOL;
			break;
		}
		if ((rc = rec_decode(v.mv_data, v.mv_size, &m, &rcpts, &cap)) < 0) {
			if (rc != -ENOMEM)
				rc = SL_ESPOOL;
			break;
		}
		m.id = key_decode(k.mv_data);
		if ((rc = cb(ctx, &m)) != 0)
			break;
	}
	mdb_cursor_close(cur);
out:
	read_end(sp, txn);
	free(rcpts);
	return rc;
}

int spool_count(struct spool *sp, uint64_t *messages)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if ((rc = read_begin(sp, &txn)) < 0)
		return rc;
	rc = mdb_to_err(mdb_stat(txn, sp->db_msg, &st));
	read_end(sp, txn);
	if (rc == 0)
		*messages = st.ms_entries;
	return rc;
}
