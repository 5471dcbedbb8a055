/* test_spool.c — the LMDB spool: round trips, group commit, crash durability. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "spool.h"

#define MAP_SIZE ((size_t)256 << 20)

/* --- fixtures ------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int dir_setup(void **state)
{
	char *dir = strdup("/tmp/sluice-test-spool-XXXXXX");

	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int dir_teardown(void **state)
{
	char *dir = *state;

	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
	return 0;
}

/* A message with n recipients; strings owned by the struct. */
struct tmsg {
	struct spool_msg m;
	struct spool_rcpt r[8];
	char addr[8][32];
};

static void tmsg_init(struct tmsg *t, uint64_t id, uint32_t n)
{
	memset(t, 0, sizeof *t);
	t->m = (struct spool_msg){
		.id = id,
		.tenant = "acme",
		.stream = 1,
		.pool = "pool-a",
		.mail_from = "bounce@acme.example",
		.message_id = "<abc@acme.example>",
		.received_ms = 1700000000123ull,
		.flags = SPOOL_F_8BITMIME,
		.rcpts = t->r,
		.n_rcpts = n,
	};
	for (uint32_t i = 0; i < n; i++) {
		snprintf(t->addr[i], sizeof t->addr[i], "user%u@dest%u.example", i, i % 2);
		t->r[i] = (struct spool_rcpt){ .addr = t->addr[i], .state = SPOOL_RCPT_PENDING,
					       .attempts = i, .next_attempt_ms = 1000 + i };
	}
}

/* Reap until n ops have come back, waiting on the event fd between tries. */
static void wait_ops(struct spool *sp, struct spool_op **out, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = spool_event_fd(sp), .events = POLLIN };
		uint64_t v;

		got += spool_reap(sp, out + got, n - got);
		if (got == n)
			break;
		assert_true(poll(&p, 1, 10000) == 1);
		assert_int_equal(read(p.fd, &v, sizeof v), sizeof v);
	}
}

static int submit_wait(struct spool *sp, struct spool_op *op)
{
	struct spool_op *done;

	assert_int_equal(spool_submit(sp, op), 0);
	wait_ops(sp, &done, 1);
	assert_ptr_equal(done, op);
	return op->result;
}

static int put_sync(struct spool *sp, const struct spool_msg *m, const void *body, size_t len)
{
	struct spool_op op = { .kind = SPOOL_OP_PUT, .msg = m, .body = body, .body_len = len };

	return submit_wait(sp, &op);
}

/* What a scan saw, deep-copied. */
struct seen {
	size_t n;
	uint64_t id[64];
	struct tmsg t[64];
	char tenant[64][16], pool[64][16], from[64][64], mid[64][64];
};

static int collect(void *ctx, const struct spool_msg *m)
{
	struct seen *s = ctx;
	struct tmsg *t;

	if (s->n == 64)
		return -ENOSPC;
	t = &s->t[s->n];
	tmsg_init(t, m->id, 0);
	t->m = *m;
	snprintf(s->tenant[s->n], 16, "%s", m->tenant);
	snprintf(s->pool[s->n], 16, "%s", m->pool);
	snprintf(s->from[s->n], 64, "%s", m->mail_from);
	snprintf(s->mid[s->n], 64, "%s", m->message_id);
	t->m.tenant = s->tenant[s->n];
	t->m.pool = s->pool[s->n];
	t->m.mail_from = s->from[s->n];
	t->m.message_id = s->mid[s->n];
	if (m->n_rcpts > 8)
		return -E2BIG;
	for (uint32_t i = 0; i < m->n_rcpts; i++) {
		t->r[i] = m->rcpts[i];
		snprintf(t->addr[i], sizeof t->addr[i], "%s", m->rcpts[i].addr);
		t->r[i].addr = t->addr[i];
	}
	t->m.rcpts = t->r;
	s->id[s->n++] = m->id;
	return 0;
}

static void assert_msg_equal(const struct spool_msg *a, const struct spool_msg *b)
{
	assert_int_equal(a->id, b->id);
	assert_string_equal(a->tenant, b->tenant);
	assert_int_equal(a->stream, b->stream);
	assert_string_equal(a->pool, b->pool);
	assert_string_equal(a->mail_from, b->mail_from);
	assert_string_equal(a->message_id ? a->message_id : "", b->message_id);
	assert_int_equal(a->received_ms, b->received_ms);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->n_rcpts, b->n_rcpts);
	for (uint32_t i = 0; i < a->n_rcpts; i++) {
		assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
		assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
		assert_int_equal(a->rcpts[i].attempts, b->rcpts[i].attempts);
		assert_int_equal(a->rcpts[i].next_attempt_ms, b->rcpts[i].next_attempt_ms);
	}
}

static void fill_body(char *b, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)((id * 31 + i) & 0xff);
}

/* --- tests --------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
	const char *dir = *state;
	struct spool *sp;
	struct tmsg t[3];
	struct spool_op ops[3], *done[3];
	const char *bodies[3] = { "Subject: one\r\n\r\nbody one\r\n", "", "x" };
	struct sl_buf b = { 0 };
	struct seen *s = calloc(1, sizeof *s);
	uint64_t count;

	assert_non_null(s);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	for (int i = 0; i < 3; i++) {
		tmsg_init(&t[i], spool_next_id(sp), (uint32_t)i + 1);
		ops[i] = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t[i].m,
					    .body = bodies[i], .body_len = strlen(bodies[i]),
					    .ctx = &t[i] };
	}
	t[1].m.mail_from = "";       /* null sender */
	t[1].m.message_id = NULL;    /* stored as "" */
	t[2].m.flags = SPOOL_F_8BITMIME | SPOOL_F_SMTPUTF8;
	t[2].m.stream = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(spool_submit(sp, &ops[i]), 0);
	wait_ops(sp, done, 3);
	for (int i = 0; i < 3; i++) {
		assert_ptr_equal(done[i], &ops[i]); /* submission order */
		assert_int_equal(done[i]->result, 0);
		assert_ptr_equal(done[i]->ctx, &t[i]);
	}
	for (int i = 0; i < 3; i++) {
		sl_buf_reset(&b);
		assert_int_equal(spool_read_body(sp, t[i].m.id, &b), 0);
		assert_int_equal(b.len, strlen(bodies[i]));
		assert_memory_equal(b.data ? b.data : "", bodies[i], b.len);
	}
	assert_int_equal(spool_read_body(sp, t[2].m.id + 100, &b), SL_ENOTFOUND);
	assert_int_equal(spool_count(sp, &count), 0);
	assert_int_equal(count, 3);
	spool_close(sp);

	/* Everything survives a reopen. */
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	assert_int_equal(spool_scan(sp, collect, s), 0);
	assert_int_equal(s->n, 3);
	for (int i = 0; i < 3; i++) {
		assert_msg_equal(&t[i].m, &s->t[i].m);
		assert_int_equal(s->t[i].m.body_len, strlen(bodies[i]));
	}
	spool_close(sp);
	sl_buf_free(&b);
	free(s);
}

/* A PUT stores head followed by body; either may be empty. */
static void test_head_body(void **state)
{
	const char *dir = *state;
	const char *heads[3] = { "Received: by test\r\n", "H: only\r\n\r\n", "" };
	const char *bodies[3] = { "Subject: s\r\n\r\nbody\r\n", "", "Subject: b\r\n\r\n" };
	struct spool *sp;
	struct tmsg t[3];
	struct sl_buf b = { 0 };
	struct seen *s = calloc(1, sizeof *s);

	assert_non_null(s);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	for (int i = 0; i < 3; i++) {
		struct spool_op op = { .kind = SPOOL_OP_PUT, .msg = &t[i].m, .head = heads[i],
				       .head_len = strlen(heads[i]), .body = bodies[i],
				       .body_len = strlen(bodies[i]) };

		tmsg_init(&t[i], spool_next_id(sp), 1);
		assert_int_equal(submit_wait(sp, &op), 0);
	}
	for (int i = 0; i < 3; i++) {
		size_t hl = strlen(heads[i]), bl = strlen(bodies[i]);

		sl_buf_reset(&b);
		assert_int_equal(spool_read_body(sp, t[i].m.id, &b), 0);
		assert_int_equal(b.len, hl + bl);
		assert_memory_equal(b.data ? b.data : "", heads[i], hl);
		assert_memory_equal(b.data ? b.data + hl : "", bodies[i], bl);
	}
	assert_int_equal(spool_scan(sp, collect, s), 0);
	assert_int_equal(s->n, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s->t[i].m.body_len, strlen(heads[i]) + strlen(bodies[i]));
	spool_close(sp);
	sl_buf_free(&b);
	free(s);
}

static void test_update(void **state)
{
	const char *dir = *state;
	struct spool *sp;
	struct tmsg t, u, bad;
	struct spool_op put, upd, *done[2];
	struct seen *s = calloc(1, sizeof *s);

	assert_non_null(s);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	tmsg_init(&t, spool_next_id(sp), 3);
	u = t;
	u.m.rcpts = u.r;
	u.m.tenant = "ignored-by-update";
	u.r[0].state = SPOOL_RCPT_DELIVERED;
	u.r[1].state = SPOOL_RCPT_PENDING;
	u.r[1].attempts = 7;
	u.r[1].next_attempt_ms = 1800000000000ull;
	u.r[2].state = SPOOL_RCPT_BOUNCED;

	/* PUT and UPDATE in the same batch apply in order. */
	put = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t.m, .body = "b", .body_len = 1 };
	upd = (struct spool_op){ .kind = SPOOL_OP_UPDATE, .msg = &u.m };
	assert_int_equal(spool_submit(sp, &put), 0);
	assert_int_equal(spool_submit(sp, &upd), 0);
	wait_ops(sp, done, 2);
	assert_int_equal(put.result, 0);
	assert_int_equal(upd.result, 0);

	assert_int_equal(spool_scan(sp, collect, s), 0);
	assert_int_equal(s->n, 1);
	u.m.tenant = t.m.tenant; /* only recipient state changed */
	assert_msg_equal(&u.m, &s->t[0].m);

	/* Unknown id, wrong recipient count, bad state. */
	tmsg_init(&bad, t.m.id + 1000, 3);
	upd = (struct spool_op){ .kind = SPOOL_OP_UPDATE, .msg = &bad.m };
	assert_int_equal(submit_wait(sp, &upd), SL_ENOTFOUND);
	tmsg_init(&bad, t.m.id, 2);
	assert_int_equal(submit_wait(sp, &upd), -EINVAL);
	tmsg_init(&bad, t.m.id, 3);
	bad.r[1].state = 9;
	assert_int_equal(spool_submit(sp, &upd), -EINVAL);

	/* A failed op does not disturb the stored record. */
	s->n = 0;
	assert_int_equal(spool_scan(sp, collect, s), 0);
	assert_msg_equal(&u.m, &s->t[0].m);
	spool_close(sp);
	free(s);
}

static void test_delete(void **state)
{
	const char *dir = *state;
	struct spool *sp;
	struct tmsg a, b;
	struct spool_op del;
	struct sl_buf buf = { 0 };
	struct seen *s = calloc(1, sizeof *s);
	uint64_t count;

	assert_non_null(s);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	tmsg_init(&a, spool_next_id(sp), 1);
	tmsg_init(&b, spool_next_id(sp), 2);
	assert_int_equal(put_sync(sp, &a.m, "aaa", 3), 0);
	assert_int_equal(put_sync(sp, &b.m, "bbb", 3), 0);
	del = (struct spool_op){ .kind = SPOOL_OP_DELETE, .msg = &a.m };
	assert_int_equal(submit_wait(sp, &del), 0);
	assert_int_equal(spool_count(sp, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(spool_read_body(sp, a.m.id, &buf), SL_ENOTFOUND);
	assert_int_equal(spool_read_body(sp, b.m.id, &buf), 0);
	assert_int_equal(spool_scan(sp, collect, s), 0);
	assert_int_equal(s->n, 1);
	assert_int_equal(s->id[0], b.m.id);
	/* Deleting again is harmless. */
	assert_int_equal(submit_wait(sp, &del), 0);
	spool_close(sp);
	sl_buf_free(&buf);
	free(s);
}

static void test_put_errors(void **state)
{
	const char *dir = *state;
	struct spool *sp, *sp2;
	struct tmsg t;
	struct spool_op op;

	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	/* One process per spool. */
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp2), -EBUSY);

	tmsg_init(&t, spool_next_id(sp), 1);
	assert_int_equal(put_sync(sp, &t.m, "x", 1), 0);
	assert_int_equal(put_sync(sp, &t.m, "y", 1), -EEXIST);

	op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = NULL };
	assert_int_equal(spool_submit(sp, &op), -EINVAL);
	op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t.m, .body = NULL, .body_len = 5 };
	assert_int_equal(spool_submit(sp, &op), -EINVAL);
	op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t.m, .head = NULL, .head_len = 5 };
	assert_int_equal(spool_submit(sp, &op), -EINVAL);
	t.m.rcpts = NULL;
	op = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t.m };
	assert_int_equal(spool_submit(sp, &op), -EINVAL);
	op.kind = (enum spool_op_kind)42;
	t.m.rcpts = t.r;
	assert_int_equal(spool_submit(sp, &op), -EINVAL);
	spool_close(sp);
}

static void test_ids(void **state)
{
	const char *dir = *state;
	struct spool *sp;
	struct tmsg t;
	struct spool_op del;
	uint64_t prev = 0, id;
	const uint64_t high = UINT64_MAX / 2;

	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	for (int i = 0; i < 1000; i++) {
		id = spool_next_id(sp);
		assert_true(id > prev);
		prev = id;
	}
	tmsg_init(&t, prev, 1);
	assert_int_equal(put_sync(sp, &t.m, "x", 1), 0);
	spool_close(sp);

	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	id = spool_next_id(sp);
	assert_true(id > prev);
	/* An id far above the clock, then deleted: the next open must still
	 * continue above it (meta max_id), not reuse the clock seed. */
	tmsg_init(&t, high, 1);
	assert_int_equal(put_sync(sp, &t.m, "x", 1), 0);
	del = (struct spool_op){ .kind = SPOOL_OP_DELETE, .msg = &t.m };
	assert_int_equal(submit_wait(sp, &del), 0);
	spool_close(sp);

	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	id = spool_next_id(sp);
	assert_true(id > high);
	assert_true(spool_next_id(sp) > id);
	spool_close(sp);
}

/* Write a value into one of the spool's databases behind its back. */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen,
		    const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
	assert_int_equal(mdb_env_set_mapsize(env, MAP_SIZE), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOSYNC, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void raw_get(const char *dir, const char *db, const void *key, size_t klen, void *out,
		    size_t *len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key }, v;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_true(v.mv_size <= *len);
	memcpy(out, v.mv_data, v.mv_size);
	*len = v.mv_size;
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void test_version_mismatch(void **state)
{
	const char *dir = *state;
	struct spool *sp;
	const uint8_t v999[4] = { 0xe7, 0x03, 0, 0 };

	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	spool_close(sp);
	raw_put(dir, "meta", "version", 7, v999, sizeof v999);
	sp = (struct spool *)1;
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), SL_EVERSION);
	assert_null(sp);
	/* A short version value is just as foreign. */
	raw_put(dir, "meta", "version", 7, "\1", 1);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), SL_EVERSION);
}

static int count_cb(void *ctx, const struct spool_msg *m)
{
	(void)m;
	(*(int *)ctx)++;
	return 0;
}

/* Truncated and bit-flipped records: SL_ESPOOL or a clean decode, no crash. */
static void test_corrupt_records(void **state)
{
	const char *dir = *state;
	struct spool *sp;
	struct tmsg t, u;
	struct spool_op upd;
	uint8_t key[8], rec[512], bad[512];
	size_t len = sizeof rec;
	int n;

	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	tmsg_init(&t, 0x0102030405060708ull, 3);
	assert_int_equal(put_sync(sp, &t.m, "body", 4), 0);
	spool_close(sp);
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(i + 1); /* big-endian id */
	raw_get(dir, "msg", key, 8, rec, &len);
	assert_true(len > 100);

	for (size_t cut = 0; cut < len; cut += (cut < 24 ? 1 : 9)) {
		raw_put(dir, "msg", key, 8, rec, cut);
		assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
		n = 0;
		assert_int_equal(spool_scan(sp, count_cb, &n), SL_ESPOOL);
		assert_int_equal(n, 0);
		/* The writer refuses to update it too. */
		tmsg_init(&u, t.m.id, 3);
		upd = (struct spool_op){ .kind = SPOOL_OP_UPDATE, .msg = &u.m };
		assert_int_equal(submit_wait(sp, &upd), SL_ESPOOL);
		spool_close(sp);
	}
	/* Trailing garbage. */
	memcpy(bad, rec, len);
	bad[len] = 0;
	raw_put(dir, "msg", key, 8, bad, len + 1);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	assert_int_equal(spool_scan(sp, count_cb, &n), SL_ESPOOL);
	spool_close(sp);
	/* Flip a bit in every seventh byte: either decodes or is refused. */
	for (size_t i = 0; i < len; i += 7) {
		int rc;

		memcpy(bad, rec, len);
		bad[i] ^= (uint8_t)(1u << (i % 8));
		raw_put(dir, "msg", key, 8, bad, len);
		assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
		n = 0;
		rc = spool_scan(sp, count_cb, &n);
		assert_true((rc == 0 && n == 1) || (rc == SL_ESPOOL && n == 0));
		spool_close(sp);
	}
	/* The intact record still reads. */
	raw_put(dir, "msg", key, 8, rec, len);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	n = 0;
	assert_int_equal(spool_scan(sp, count_cb, &n), 0);
	assert_int_equal(n, 1);
	spool_close(sp);
}

/* Many ops submitted at once go into few transactions. */
static void test_group_commit(void **state)
{
	const char *dir = *state;
	enum { N = 10000, BODY = 4096 };
	struct spool *sp;
	struct tmsg *t = calloc(N, sizeof *t);
	struct spool_op *ops = calloc(N, sizeof *ops), **done = calloc(N, sizeof *done);
	char *body = malloc(BODY);
	uint64_t commits, nops, count;

	assert_non_null(t);
	assert_non_null(ops);
	assert_non_null(done);
	assert_non_null(body);
	memset(body, 'x', BODY);
	assert_int_equal(spool_open(dir, (size_t)1 << 30, true, 1024, &sp), 0);
	for (int i = 0; i < N; i++) {
		tmsg_init(&t[i], spool_next_id(sp), 1);
		ops[i] = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t[i].m, .body = body,
					    .body_len = BODY };
		assert_int_equal(spool_submit(sp, &ops[i]), 0);
	}
	wait_ops(sp, done, N);
	for (int i = 0; i < N; i++) {
		assert_ptr_equal(done[i], &ops[i]);
		assert_int_equal(ops[i].result, 0);
	}
	spool_stats(sp, &commits, &nops);
	assert_int_equal(nops, N);
	assert_true(commits >= (N + 1023) / 1024);
	assert_true(commits <= N / 8);
	print_message("group commit: %d ops in %llu commits\n", N, (unsigned long long)commits);
	assert_int_equal(spool_count(sp, &count), 0);
	assert_int_equal(count, N);
	spool_close(sp);
	free(t);
	free(ops);
	free(done);
	free(body);
}

/* close() commits what is still queued. */
static void test_close_drains(void **state)
{
	const char *dir = *state;
	enum { N = 200 };
	struct spool *sp;
	struct tmsg *t = calloc(N, sizeof *t);
	struct spool_op *ops = calloc(N, sizeof *ops);
	uint64_t count;

	assert_non_null(t);
	assert_non_null(ops);
	assert_int_equal(spool_open(dir, MAP_SIZE, true, 16, &sp), 0);
	for (int i = 0; i < N; i++) {
		tmsg_init(&t[i], spool_next_id(sp), 2);
		ops[i] = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t[i].m, .body = "b",
					    .body_len = 1 };
		assert_int_equal(spool_submit(sp, &ops[i]), 0);
	}
	spool_close(sp);
	for (int i = 0; i < N; i++)
		assert_int_equal(ops[i].result, 0);
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	assert_int_equal(spool_count(sp, &count), 0);
	assert_int_equal(count, N);
	spool_close(sp);
	free(t);
	free(ops);
}

/* A small map grows, then fills: ops fail with SL_ESPOOL, the rest stays. */
static void test_map_full(void **state)
{
	const char *dir = *state;
	enum { N = 2000, BODY = 4096 };
	struct spool *sp;
	struct tmsg t;
	struct spool_op del;
	char body[BODY];
	struct sl_buf b = { 0 };
	uint64_t first = 0, last = 0;
	int ok = 0, rc = 0;

	memset(body, 'm', sizeof body);
	assert_int_equal(spool_open(dir, 256 << 10, false, 0, &sp), 0);
	for (int i = 0; i < N; i++) {
		tmsg_init(&t, spool_next_id(sp), 1);
		rc = put_sync(sp, &t.m, body, sizeof body);
		if (rc)
			break;
		if (!first)
			first = t.m.id;
		last = t.m.id;
		ok++;
	}
	assert_int_equal(rc, SL_ESPOOL);
	print_message("map full: %d stored\n", ok);
	/* 256 KiB holds ~30 such messages (two pages each); 2 MiB ~240. */
	assert_true(ok > 200);
	assert_int_equal(spool_read_body(sp, last, &b), 0);
	assert_int_equal(b.len, BODY);
	/* Deletes still go through and make room again. */
	tmsg_init(&t, first, 1);
	del = (struct spool_op){ .kind = SPOOL_OP_DELETE, .msg = &t.m };
	for (uint64_t id = first; id < first + 20; id++) {
		t.m.id = id;
		assert_int_equal(submit_wait(sp, &del), 0);
	}
	tmsg_init(&t, spool_next_id(sp), 1);
	assert_int_equal(put_sync(sp, &t.m, body, sizeof body), 0);
	spool_close(sp);
	sl_buf_free(&b);
}

/* The same in one batch: the writer splits it where the map fills. */
static void test_map_full_batch(void **state)
{
	const char *dir = *state;
	enum { N = 1000, BODY = 4096 };
	struct spool *sp;
	struct tmsg *t = calloc(N, sizeof *t);
	struct spool_op *ops = calloc(N, sizeof *ops), **done = calloc(N, sizeof *done);
	char body[BODY];
	struct sl_buf b = { 0 };
	uint64_t count;
	int ok = 0;

	assert_non_null(t);
	assert_non_null(ops);
	assert_non_null(done);
	memset(body, 'n', sizeof body);
	assert_int_equal(spool_open(dir, 256 << 10, false, 0, &sp), 0);
	for (int i = 0; i < N; i++) {
		tmsg_init(&t[i], spool_next_id(sp), 1);
		ops[i] = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t[i].m, .body = body,
					    .body_len = BODY };
		assert_int_equal(spool_submit(sp, &ops[i]), 0);
	}
	wait_ops(sp, done, N);
	for (int i = 0; i < N; i++) {
		assert_ptr_equal(done[i], &ops[i]);
		if (ops[i].result == 0) {
			ok++;
			sl_buf_reset(&b);
			assert_int_equal(spool_read_body(sp, t[i].m.id, &b), 0);
			assert_int_equal(b.len, BODY);
		} else {
			assert_int_equal(ops[i].result, SL_ESPOOL);
			assert_int_equal(spool_read_body(sp, t[i].m.id, &b), SL_ENOTFOUND);
		}
	}
	print_message("map full batch: %d of %d stored\n", ok, N);
	assert_true(ok > 200 && ok < N); /* as many as one by one */
	assert_int_equal(spool_count(sp, &count), 0);
	assert_int_equal(count, (uint64_t)ok);
	spool_close(sp);
	sl_buf_free(&b);
	free(t);
	free(ops);
	free(done);
}

/* --- crash durability ---------------------------------------------------- */

enum { CRASH_WINDOW = 64, CRASH_KILL_AFTER = 400 };

static size_t crash_body_len(uint64_t id)
{
	return 500 + (size_t)(id % 4000);
}

/* The child: PUT forever, report each id once its PUT was reaped with 0. */
static void crash_child(const char *dir, int wfd)
{
	struct spool *sp;
	struct tmsg *t = calloc(CRASH_WINDOW, sizeof *t);
	struct spool_op *ops = calloc(CRASH_WINDOW, sizeof *ops), *done[CRASH_WINDOW];
	char **bodies = calloc(CRASH_WINDOW, sizeof *bodies);
	size_t free_slots[CRASH_WINDOW], n_free = CRASH_WINDOW;

	if (!t || !ops || !bodies || spool_open(dir, MAP_SIZE, true, 0, &sp) < 0)
		_exit(2);
	for (size_t i = 0; i < CRASH_WINDOW; i++) {
		free_slots[i] = i;
		if (!(bodies[i] = malloc(5000)))
			_exit(2);
	}
	for (int round = 0; round < 1000000; round++) {
		struct pollfd p = { .fd = spool_event_fd(sp), .events = POLLIN };
		uint64_t v;
		size_t n;

		while (n_free > 0) {
			size_t s = free_slots[--n_free];
			uint64_t id = spool_next_id(sp);

			tmsg_init(&t[s], id, 2);
			fill_body(bodies[s], crash_body_len(id), id);
			ops[s] = (struct spool_op){ .kind = SPOOL_OP_PUT, .msg = &t[s].m,
						    .body = bodies[s],
						    .body_len = crash_body_len(id), .ctx = (void *)s };
			if (spool_submit(sp, &ops[s]) < 0)
				_exit(3);
		}
		if (poll(&p, 1, 10000) != 1 || read(p.fd, &v, sizeof v) != sizeof v)
			_exit(4);
		while ((n = spool_reap(sp, done, CRASH_WINDOW)) > 0)
			for (size_t i = 0; i < n; i++) {
				if (done[i]->result != 0)
					_exit(5);
				/* Acknowledged: this is the "250 queued" moment. */
				if (write(wfd, &done[i]->msg->id, 8) != 8)
					_exit(6);
				free_slots[n_free++] = (size_t)done[i]->ctx;
			}
	}
	_exit(0);
}

/* Run one child until it has acknowledged CRASH_KILL_AFTER ids, SIGKILL it
 * after delay_us more, and append every id it acknowledged to ids. */
static void crash_round(const char *dir, unsigned delay_us, uint64_t *ids, size_t cap,
			size_t *n_ids)
{
	size_t have = 0, start = *n_ids;
	uint8_t buf[4096];
	bool killed = false;
	int pfd[2], status;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		crash_child(dir, pfd[1]);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], buf + have, sizeof buf - have);

		if (r <= 0)
			break;
		have += (size_t)r;
		for (size_t off = 0; off + 8 <= have && *n_ids < cap; off += 8)
			memcpy(&ids[(*n_ids)++], buf + off, 8);
		memmove(buf, buf + have / 8 * 8, have % 8);
		have %= 8;
		if (!killed && *n_ids - start >= CRASH_KILL_AFTER) {
			/* Mid-run: ops are queued, being written or fsynced. */
			usleep(delay_us);
			kill(pid, SIGKILL);
			killed = true;
		}
	}
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_true(*n_ids - start >= CRASH_KILL_AFTER);
	assert_true(*n_ids < cap);
}

static void test_crash_durability(void **state)
{
	const char *dir = *state;
	const unsigned delays_us[] = { 0, 700, 2300 };
	size_t cap = 1 << 17, n_ids = 0;
	uint64_t *ids = malloc(cap * sizeof *ids);
	struct sl_buf body = { 0 };
	char *want = malloc(5000);
	struct spool *sp;
	uint64_t count;

	assert_non_null(ids);
	assert_non_null(want);
	/* Each round restarts on the spool the previous child crashed on. */
	for (size_t r = 0; r < sizeof delays_us / sizeof delays_us[0]; r++)
		crash_round(dir, delays_us[r], ids, cap, &n_ids);

	/* Every acknowledged id is there, with its body. */
	assert_int_equal(spool_open(dir, MAP_SIZE, false, 0, &sp), 0);
	for (size_t i = 0; i < n_ids; i++) {
		size_t len = crash_body_len(ids[i]);

		sl_buf_reset(&body);
		assert_int_equal(spool_read_body(sp, ids[i], &body), 0);
		assert_int_equal(body.len, len);
		fill_body(want, len, ids[i]);
		assert_memory_equal(body.data, want, len);
	}
	assert_int_equal(spool_count(sp, &count), 0);
	assert_true(count >= n_ids);
	print_message("crash: %zu acknowledged ids all present (%llu stored)\n", n_ids,
		      (unsigned long long)count);
	spool_close(sp);
	sl_buf_free(&body);
	free(ids);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_head_body, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_update, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_delete, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_put_errors, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_ids, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_version_mismatch, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_close_drains, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_map_full, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_map_full_batch, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_crash_durability, dir_setup, dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
