/*
 * store.c — the control store on LMDB; see store.h, and
 * docs/control-store.md for the record layouts.
 *
 * All integers in keys and values are big-endian. Strings in values are a
 * u16 length and the bytes, no NUL; decoders copy them into the caller's
 * fixed buffers after checking the length against both the record and the
 * buffer, and refuse embedded NULs, so a decoded string is the stored one.
 *
 * Every write is one transaction: begin, read what it needs, check, put the
 * change and its audit entry, commit. mdb_txn_commit() (fsynced unless the
 * store was opened with sync=false) is the durability point; nothing is
 * reported as done before it returns 0.
 */
#include "store.h"
#include "suppression.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "json.h"

#define STORE_MAX_READERS 126u
#define STORE_LOCK_FILE "store.lock"

#define TENANT_REC_VERSION 1u
#define AUDIT_REC_VERSION 1u
#define CFGSET_REC_VERSION 1u
#define CRED_REC_VERSION 1u

#define CRED_USER 'u'
#define CRED_TOKEN 't'

static const char META_VERSION[] = "version";
static const char META_CFGSET_NEXT[] = "cfgset_next";

/* Costs the same as a real verification for unknown users: 100000
 * iterations (AUTH_DEFAULT_ITERATIONS) of a password nobody knows. */
static const char DUMMY_HASH[] =
	"$pbkdf2-sha256$i=100000$c2x1aWNlLWR1bW15LXNhbHQ$"
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct store {
	MDB_env *env;
	MDB_dbi db_meta, db_tenants, db_creds, db_cfgsets, db_audit;
	MDB_dbi db_sendauth; /* sending domains and address verifications (helper I) */
	MDB_dbi db_rep;      /* suppressions and tenant numbers (reputation) */
	int lock_fd;
};

/* --- small helpers ------------------------------------------------------- */

static int mdb_to_err(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case ENOMEM:
		return -ENOMEM;
	case MDB_NOTFOUND:
		return SL_ENOTFOUND;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		return SL_EVERSION;
	default:
		return SL_ESPOOL;
	}
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void be64_put(uint8_t k[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		k[i] = (uint8_t)v;
}

static uint64_t be64_get(const uint8_t k[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | k[i];
	return v;
}

/* Copy s into dst[cap] if it fits (with its NUL); -EINVAL otherwise. */
static int copy_str(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s ? s : "");

	if (n >= cap)
		return -EINVAL;
	memcpy(dst, s ? s : "", n + 1);
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n >= 1 && n <= STORE_NAME_MAX;
}

static bool valid_pool(const char *s)
{
	return s[0] == 0 || valid_name(s);
}

static bool valid_user(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return false;
	return n >= 1 && n <= STORE_USER_MAX;
}

/* Lowercase a domain into out[STORE_DOMAIN_MAX + 1]; empty allowed only
 * when allow_empty. */
static bool norm_domain(const char *s, char *out, bool allow_empty)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= STORE_DOMAIN_MAX)
			return false;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return false;
		out[n] = c;
	}
	out[n] = 0;
	return n > 0 || allow_empty;
}

/* --- the record codec ---------------------------------------------------- */

struct wr {
	struct sl_buf *b;
	int err;
};

static void put_bytes(struct wr *w, const void *p, size_t n)
{
	if (!w->err)
		w->err = sl_buf_append(w->b, p, n);
}

static void put_u8(struct wr *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void put_u32(struct wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put_bytes(w, b, 4);
}

static void put_u64(struct wr *w, uint64_t v)
{
	uint8_t b[8];

	be64_put(b, v);
	put_bytes(w, b, 8);
}

/* A string of at most max bytes. */
static void put_str(struct wr *w, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n > max) {
		if (!w->err)
			w->err = -EINVAL;
		return;
	}
	put_u8(w, (uint8_t)(n >> 8));
	put_u8(w, (uint8_t)n);
	put_bytes(w, s, n);
}

static void wr_start(struct wr *w, struct sl_buf *b)
{
	sl_buf_reset(b);
	w->b = b;
	w->err = 0;
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
	for (int i = 0; i < 4; i++)
		v = v << 8 | r->p[i];
	r->p += 4;
	return v;
}

static uint64_t get_u64(struct rd *r)
{
	uint64_t v;

	if (!rd_has(r, 8))
		return 0;
	v = be64_get(r->p);
	r->p += 8;
	return v;
}

static void get_bytes(struct rd *r, void *dst, size_t n)
{
	if (!rd_has(r, n))
		return;
	memcpy(dst, r->p, n);
	r->p += n;
}

/* A string into dst[cap]; too long or holding a NUL marks the record bad. */
static void get_str(struct rd *r, char *dst, size_t cap)
{
	size_t n = get_u8(r);

	n = n << 8 | get_u8(r);
	dst[0] = 0;
	if (!rd_has(r, n) || n >= cap || memchr(r->p, 0, n)) {
		r->bad = true;
		return;
	}
	memcpy(dst, r->p, n);
	dst[n] = 0;
	r->p += n;
}

/* Common start of every decoder: 0, SL_EVERSION or -EBADMSG. */
static int rd_start(struct rd *r, const void *p, size_t n, uint8_t version)
{
	r->p = p;
	r->end = (const uint8_t *)p + n;
	r->bad = false;
	if (!p || n < 1)
		return -EBADMSG;
	if (get_u8(r) != version)
		return SL_EVERSION;
	return 0;
}

static int rd_finish(struct rd *r)
{
	return r->bad || r->p != r->end ? -EBADMSG : 0;
}

int store_tenant_encode(const struct store_tenant *t, struct sl_buf *buf)
{
	struct wr w;

	if ((unsigned)t->state >= TENANT_STATE_COUNT || t->default_stream >= STORE_STREAMS)
		return -EINVAL;
	wr_start(&w, buf);
	put_u8(&w, TENANT_REC_VERSION);
	put_u8(&w, (uint8_t)t->state);
	put_u8(&w, t->default_stream);
	put_u64(&w, t->created_ms);
	put_u64(&w, t->updated_ms);
	put_u64(&w, t->hold_until_ms);
	put_u64(&w, t->quota_hour);
	put_u64(&w, t->quota_day);
	put_u8(&w, STORE_STREAMS);
	for (int i = 0; i < STORE_STREAMS; i++) {
		put_str(&w, t->streams[i].pool, STORE_NAME_MAX);
		put_str(&w, t->streams[i].subdomain, STORE_DOMAIN_MAX);
	}
	return w.err;
}

/* The name is the key: out->name is left alone. */
int store_tenant_decode(const void *p, size_t n, struct store_tenant *out)
{
	struct rd r;
	unsigned n_streams;
	uint8_t state;
	int rc;

	if ((rc = rd_start(&r, p, n, TENANT_REC_VERSION)))
		return rc;
	state = get_u8(&r);
	out->state = (enum tenant_state)state;
	out->default_stream = get_u8(&r);
	out->created_ms = get_u64(&r);
	out->updated_ms = get_u64(&r);
	out->hold_until_ms = get_u64(&r);
	out->quota_hour = get_u64(&r);
	out->quota_day = get_u64(&r);
	n_streams = get_u8(&r);
	if (state >= TENANT_STATE_COUNT || out->default_stream >= STORE_STREAMS ||
	    n_streams != STORE_STREAMS) /* version 1 always has both */
		return -EBADMSG;
	memset(out->streams, 0, sizeof out->streams);
	for (unsigned i = 0; i < n_streams; i++) {
		get_str(&r, out->streams[i].pool, sizeof out->streams[i].pool);
		get_str(&r, out->streams[i].subdomain, sizeof out->streams[i].subdomain);
	}
	return rd_finish(&r);
}

int store_audit_encode(const struct store_audit *e, struct sl_buf *buf)
{
	struct wr w;

	wr_start(&w, buf);
	put_u8(&w, AUDIT_REC_VERSION);
	put_u64(&w, e->time_ms);
	put_str(&w, e->actor, STORE_ACTOR_MAX);
	put_str(&w, e->action, STORE_ACTION_MAX);
	put_str(&w, e->target, STORE_TARGET_MAX);
	put_str(&w, e->reason, STORE_REASON_MAX);
	put_str(&w, e->details, STORE_DETAILS_MAX);
	return w.err;
}

/* The sequence number is the key: out->seq is left alone. */
int store_audit_decode(const void *p, size_t n, struct store_audit *out)
{
	struct rd r;
	int rc;

	if ((rc = rd_start(&r, p, n, AUDIT_REC_VERSION)))
		return rc;
	out->time_ms = get_u64(&r);
	get_str(&r, out->actor, sizeof out->actor);
	get_str(&r, out->action, sizeof out->action);
	get_str(&r, out->target, sizeof out->target);
	get_str(&r, out->reason, sizeof out->reason);
	get_str(&r, out->details, sizeof out->details);
	return rd_finish(&r);
}

int store_cfgset_encode(const struct store_cfgset *c, struct sl_buf *buf)
{
	struct wr w;

	wr_start(&w, buf);
	put_u8(&w, CFGSET_REC_VERSION);
	put_u64(&w, c->id);
	put_u64(&w, c->created_ms);
	put_u64(&w, c->updated_ms);
	put_u32(&w, c->flags);
	put_str(&w, c->pool, STORE_NAME_MAX);
	put_str(&w, c->dkim_selector, STORE_SELECTOR_MAX);
	return w.err;
}

int store_cfgset_decode(const void *p, size_t n, struct store_cfgset *out)
{
	struct rd r;
	int rc;

	if ((rc = rd_start(&r, p, n, CFGSET_REC_VERSION)))
		return rc;
	out->id = get_u64(&r);
	out->created_ms = get_u64(&r);
	out->updated_ms = get_u64(&r);
	out->flags = get_u32(&r);
	get_str(&r, out->pool, sizeof out->pool);
	get_str(&r, out->dkim_selector, sizeof out->dkim_selector);
	return rd_finish(&r);
}

int store_credential_encode(const struct store_credential *c, struct sl_buf *buf)
{
	struct wr w;

	wr_start(&w, buf);
	put_u8(&w, CRED_REC_VERSION);
	put_u8(&w, (uint8_t)c->kind);
	if (c->kind == CRED_USER) {
		put_str(&w, c->tenant, STORE_NAME_MAX);
		put_str(&w, c->hash, STORE_HASH_MAX);
	} else if (c->kind == CRED_TOKEN &&
		   (c->role == STORE_ROLE_OPERATOR || c->role == STORE_ROLE_TENANT)) {
		put_u8(&w, (uint8_t)c->role);
		put_str(&w, c->tenant, STORE_NAME_MAX);
		put_bytes(&w, c->token_hash, sizeof c->token_hash);
	} else {
		return -EINVAL;
	}
	put_u64(&w, c->created_ms);
	return w.err;
}

int store_credential_decode(const void *p, size_t n, struct store_credential *out)
{
	struct rd r;
	int rc;

	if ((rc = rd_start(&r, p, n, CRED_REC_VERSION)))
		return rc;
	memset(out->token_hash, 0, sizeof out->token_hash);
	out->hash[0] = 0;
	out->role = 0;
	out->kind = (char)get_u8(&r);
	if (out->kind == CRED_USER) {
		get_str(&r, out->tenant, sizeof out->tenant);
		get_str(&r, out->hash, sizeof out->hash);
	} else if (out->kind == CRED_TOKEN) {
		uint8_t role = get_u8(&r);

		if (role != STORE_ROLE_OPERATOR && role != STORE_ROLE_TENANT)
			return -EBADMSG;
		out->role = (enum store_role)role;
		get_str(&r, out->tenant, sizeof out->tenant);
		get_bytes(&r, out->token_hash, sizeof out->token_hash);
	} else {
		return -EBADMSG;
	}
	out->created_ms = get_u64(&r);
	return rd_finish(&r);
}

/* --- transactions and the audit writer ----------------------------------- */

static int txn_begin(struct store *st, bool write, MDB_txn **txn)
{
	return mdb_to_err(mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, txn));
}

/* THE COMMIT POINT of every write: durable (with sync) when this returns 0. */
static int txn_commit(MDB_txn *txn)
{
	return mdb_to_err(mdb_txn_commit(txn));
}

/* Append an audit entry inside txn. e->seq is assigned; e->time_ms too if 0. */
static int audit_put(struct store *st, MDB_txn *txn, struct store_audit *e)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t kb[8];
	struct sl_buf rec = { 0 };
	uint64_t seq = 1;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->db_audit, &cur)))
		return mdb_to_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == 0) {
		if (k.mv_size != 8)
			return -EBADMSG;
		seq = be64_get(k.mv_data) + 1;
		if (seq == 0)
			return -ENOSPC;
	} else if (rc != MDB_NOTFOUND) {
		return mdb_to_err(rc);
	}
	e->seq = seq;
	if (!e->time_ms)
		e->time_ms = wall_ms();
	if ((rc = store_audit_encode(e, &rec)) < 0)
		goto out;
	be64_put(kb, seq);
	k.mv_size = 8;
	k.mv_data = kb;
	v.mv_size = sl_buf_avail(&rec);
	v.mv_data = sl_buf_head(&rec);
	rc = mdb_to_err(mdb_put(txn, st->db_audit, &k, &v, MDB_APPEND));
out:
	sl_buf_free(&rec);
	return rc;
}

/* Fill an audit entry from its parts; -EINVAL if any is too long. */
static int audit_fill(struct store_audit *e, const char *actor, const char *action,
		      const char *target_kind, const char *target, const char *reason)
{
	memset(e, 0, sizeof *e);
	if (!actor || !*actor)
		return -EINVAL;
	if (copy_str(e->actor, sizeof e->actor, actor) < 0 ||
	    copy_str(e->action, sizeof e->action, action) < 0 ||
	    copy_str(e->reason, sizeof e->reason, reason) < 0)
		return -EINVAL;
	if ((size_t)snprintf(e->target, sizeof e->target, "%s:%s", target_kind, target) >=
	    sizeof e->target)
		return -EINVAL;
	return 0;
}

/* Put details (a JSON object built in b) into e. */
static int audit_details(struct store_audit *e, struct json_obj *o)
{
	int rc = json_obj_end(o);

	if (rc < 0)
		return rc;
	if (sl_buf_avail(o->buf) > STORE_DETAILS_MAX)
		return -EINVAL;
	memcpy(e->details, sl_buf_head(o->buf), sl_buf_avail(o->buf));
	e->details[sl_buf_avail(o->buf)] = 0;
	return 0;
}

/* Details {k1: v1, k2: v2, k3: v3}; NULL keys or values are left out. */
static int audit_kv(struct store_audit *e, const char *k1, const char *v1, const char *k2,
		    const char *v2, const char *k3, const char *v3)
{
	struct sl_buf db = { 0 };
	struct json_obj o;
	int rc;

	json_obj_begin(&o, &db);
	if (k1)
		json_obj_str(&o, k1, v1);
	if (k2)
		json_obj_str(&o, k2, v2);
	if (k3)
		json_obj_str(&o, k3, v3);
	rc = audit_details(e, &o);
	sl_buf_free(&db);
	return rc;
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

	if (snprintf(name, sizeof name, "%s/%s", path, STORE_LOCK_FILE) >= (int)sizeof name)
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

/* Open the databases and check or write the format version. */
static int init_dbs(struct store *st)
{
	MDB_txn *txn;
	MDB_val k, v;
	MDB_stat s;
	int rc;

	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->db_meta)) ||
	    (rc = mdb_dbi_open(txn, "tenants", MDB_CREATE, &st->db_tenants)) ||
	    (rc = mdb_dbi_open(txn, "credentials", MDB_CREATE, &st->db_creds)) ||
	    (rc = mdb_dbi_open(txn, "cfgsets", MDB_CREATE, &st->db_cfgsets)) ||
	    (rc = mdb_dbi_open(txn, "audit", MDB_CREATE, &st->db_audit)) ||
	    (rc = mdb_dbi_open(txn, "sendauth", MDB_CREATE, &st->db_sendauth)) ||
	    (rc = mdb_dbi_open(txn, "reputation", MDB_CREATE, &st->db_rep)))
		goto fail_mdb;

	k.mv_size = sizeof META_VERSION - 1;
	k.mv_data = (void *)META_VERSION;
	rc = mdb_get(txn, st->db_meta, &k, &v);
	if (rc == 0) {
		struct rd r = { .p = v.mv_data, .end = (const uint8_t *)v.mv_data + v.mv_size };

		if (v.mv_size != 4 || get_u32(&r) != STORE_FORMAT_VERSION) {
			rc = SL_EVERSION;
			goto fail;
		}
	} else if (rc == MDB_NOTFOUND) {
		struct sl_buf vb = { 0 };
		struct wr w;
		MDB_dbi dbs[] = { st->db_tenants, st->db_creds, st->db_cfgsets, st->db_audit };

		/* Data without a version is not ours to interpret. */
		for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
			if ((rc = mdb_stat(txn, dbs[i], &s)))
				goto fail_mdb;
			if (s.ms_entries > 0) {
				rc = SL_EVERSION;
				goto fail;
			}
		}
		wr_start(&w, &vb);
		put_u32(&w, STORE_FORMAT_VERSION);
		if (w.err) {
			sl_buf_free(&vb);
			rc = w.err;
			goto fail;
		}
		v.mv_size = 4;
		v.mv_data = sl_buf_head(&vb);
		rc = mdb_put(txn, st->db_meta, &k, &v, 0);
		sl_buf_free(&vb);
		if (rc)
			goto fail_mdb;
	} else {
		goto fail_mdb;
	}
	return txn_commit(txn);

fail_mdb:
	rc = mdb_to_err(rc);
fail:
	mdb_txn_abort(txn);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->env)
		mdb_env_close(st->env);
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* drops the flock */
	free(st);
}

int store_open(const char *path, size_t map_size, bool sync, struct store **out)
{
	struct store *st;
	int rc, dead;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path)
		return -EINVAL;
	if (!(st = calloc(1, sizeof *st)))
		return -ENOMEM;
	st->lock_fd = -1;
	if ((rc = mkdir_p(path)) < 0 || (rc = lock_dir(path, &st->lock_fd)) < 0)
		goto fail;
	if ((rc = mdb_env_create(&st->env))) {
		st->env = NULL;
		goto fail_mdb;
	}
	if ((rc = mdb_env_set_maxdbs(st->env, 8)) ||
	    (rc = mdb_env_set_maxreaders(st->env, STORE_MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(st->env, map_size ? map_size : STORE_DEFAULT_MAP_SIZE)))
		goto fail_mdb;
	/* MDB_NOTLS: read transactions are not tied to a thread's slot. With
	 * sync every commit fsyncs (no MDB_NOSYNC / MDB_NOMETASYNC). */
	if ((rc = mdb_env_open(st->env, path, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0600)))
		goto fail_mdb;
	/* Free reader slots left by a process that died (e.g. SIGKILL). */
	mdb_reader_check(st->env, &dead);
	if ((rc = init_dbs(st)) < 0)
		goto fail;
	*out = st;
	return 0;

fail_mdb:
	rc = mdb_to_err(rc);
fail:
	store_close(st);
	return rc;
}

/* --- tenants ------------------------------------------------------------- */

static int tenant_read(struct store *st, MDB_txn *txn, const char *name, struct store_tenant *out)
{
	MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name }, v;
	int rc;

	if ((rc = mdb_get(txn, st->db_tenants, &k, &v)))
		return mdb_to_err(rc);
	if ((rc = store_tenant_decode(v.mv_data, v.mv_size, out)) < 0)
		return rc;
	memcpy(out->name, name, strlen(name) + 1);
	return 0;
}

static int tenant_write(struct store *st, MDB_txn *txn, const struct store_tenant *t,
			unsigned flags)
{
	struct sl_buf rec = { 0 };
	MDB_val k = { .mv_size = strlen(t->name), .mv_data = (void *)t->name }, v;
	int rc;

	if ((rc = store_tenant_encode(t, &rec)) < 0)
		goto out;
	v.mv_size = sl_buf_avail(&rec);
	v.mv_data = sl_buf_head(&rec);
	rc = mdb_put(txn, st->db_tenants, &k, &v, flags);
	rc = rc == MDB_KEYEXIST ? -EEXIST : mdb_to_err(rc);
out:
	sl_buf_free(&rec);
	return rc;
}

/* Settings a caller may set: checked and copied from src to dst. */
static int tenant_settings(struct store_tenant *dst, const struct store_tenant *src)
{
	if (src->default_stream >= STORE_STREAMS)
		return -EINVAL;
	dst->default_stream = src->default_stream;
	dst->quota_hour = src->quota_hour;
	dst->quota_day = src->quota_day;
	for (int i = 0; i < STORE_STREAMS; i++) {
		const struct store_stream *s = &src->streams[i];

		if (strnlen(s->pool, sizeof s->pool) >= sizeof s->pool || !valid_pool(s->pool) ||
		    strnlen(s->subdomain, sizeof s->subdomain) >= sizeof s->subdomain ||
		    !norm_domain(s->subdomain, dst->streams[i].subdomain, true))
			return -EINVAL;
		memcpy(dst->streams[i].pool, s->pool, strlen(s->pool) + 1);
	}
	return 0;
}

static void settings_json(struct json_obj *o, const struct store_tenant *t)
{
	json_obj_u64(o, "default_stream", t->default_stream);
	json_obj_u64(o, "quota_hour", t->quota_hour);
	json_obj_u64(o, "quota_day", t->quota_day);
	json_obj_str(o, "pool_transactional", t->streams[0].pool);
	json_obj_str(o, "pool_marketing", t->streams[1].pool);
	json_obj_str(o, "subdomain_transactional", t->streams[0].subdomain);
	json_obj_str(o, "subdomain_marketing", t->streams[1].subdomain);
}

/* Write t (flags for mdb_put) and its audit entry in one transaction. */
static int tenant_commit(struct store *st, const struct store_tenant *t, unsigned flags,
			 const char *actor, const char *action, const char *reason, bool must_exist)
{
	struct store_audit e;
	struct store_tenant old;
	struct sl_buf db = { 0 };
	struct json_obj o;
	MDB_txn *txn;
	int rc;

	if ((rc = audit_fill(&e, actor, action, "tenant", t->name, reason)) < 0)
		return rc;
	json_obj_begin(&o, &db);
	settings_json(&o, t);
	rc = audit_details(&e, &o);
	sl_buf_free(&db);
	if (rc < 0)
		return rc;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if (must_exist) {
		struct store_tenant upd;

		if ((rc = tenant_read(st, txn, t->name, &old)) < 0)
			goto fail;
		upd = old;
		tenant_settings(&upd, t); /* checked by the caller */
		upd.updated_ms = wall_ms();
		rc = tenant_write(st, txn, &upd, flags);
	} else {
		rc = tenant_write(st, txn, t, flags);
	}
	if (rc < 0 || (rc = audit_put(st, txn, &e)) < 0)
		goto fail;
	return txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

int store_tenant_create(struct store *st, const struct store_tenant *t, const char *actor,
			const char *reason)
{
	struct store_tenant n = { 0 };
	int rc;

	if (!st || !t || !valid_name(t->name))
		return -EINVAL;
	if ((rc = tenant_settings(&n, t)) < 0)
		return rc;
	memcpy(n.name, t->name, strlen(t->name) + 1);
	n.state = TENANT_PENDING_REVIEW;
	n.created_ms = n.updated_ms = wall_ms();
	return tenant_commit(st, &n, MDB_NOOVERWRITE, actor, "tenant.create", reason, false);
}

int store_tenant_update(struct store *st, const struct store_tenant *t, const char *actor,
			const char *reason)
{
	struct store_tenant chk = { 0 };
	int rc;

	if (!st || !t || !valid_name(t->name))
		return -EINVAL;
	if ((rc = tenant_settings(&chk, t)) < 0)
		return rc;
	memcpy(chk.name, t->name, strlen(t->name) + 1);
	return tenant_commit(st, &chk, 0, actor, "tenant.update", reason, true);
}

int store_tenant_get(struct store *st, const char *name, struct store_tenant *out)
{
	MDB_txn *txn;
	int rc;

	if (!st || !out || !valid_name(name))
		return -EINVAL;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	rc = tenant_read(st, txn, name, out);
	mdb_txn_abort(txn);
	return rc;
}

int store_tenant_list(struct store *st, const char *after, struct store_tenant *out, size_t limit,
		      size_t *n, bool *more)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	size_t got = 0;
	int rc;

	if (!st || !n || !more || (limit && !out))
		return -EINVAL;
	*n = 0;
	*more = false;
	if (after && *after) {
		if (strlen(after) > STORE_NAME_MAX)
			return -EINVAL;
		k.mv_size = strlen(after);
		k.mv_data = (void *)after;
		op = MDB_SET_RANGE;
	}
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_tenants, &cur))) {
		mdb_txn_abort(txn);
		return mdb_to_err(rc);
	}
	for (;; op = MDB_NEXT) {
		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc) {
			rc = rc == MDB_NOTFOUND ? 0 : mdb_to_err(rc);
			break;
		}
		if (op == MDB_SET_RANGE && k.mv_size == strlen(after) &&
		    memcmp(k.mv_data, after, k.mv_size) == 0)
			continue; /* the cursor itself was on the last page */
		if (got == limit) {
			*more = true;
			break;
		}
		if (k.mv_size == 0 || k.mv_size > STORE_NAME_MAX) {
			rc = -EBADMSG;
			break;
		}
		if ((rc = store_tenant_decode(v.mv_data, v.mv_size, &out[got])) < 0)
			break;
		memcpy(out[got].name, k.mv_data, k.mv_size);
		out[got].name[k.mv_size] = 0;
		got++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	*n = got;
	return rc < 0 ? rc : 0;
}

int store_tenant_set_state(struct store *st, const char *name, enum tenant_event ev,
			   uint64_t hold_until_ms, const char *actor, const char *reason,
			   struct store_tenant *out, const char **why)
{
	struct store_tenant t;
	struct store_audit e;
	struct sl_buf db = { 0 };
	struct json_obj o;
	enum tenant_state to;
	MDB_txn *txn;
	const char *r = NULL;
	int rc;

	if (why)
		*why = NULL;
	if (!st || !valid_name(name) || (unsigned)ev >= TENANT_EVENT_COUNT)
		return -EINVAL;
	if ((rc = audit_fill(&e, actor, "tenant.state", "tenant", name, reason)) < 0)
		return rc;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = tenant_read(st, txn, name, &t)) < 0)
		goto fail;
	if ((rc = tenant_transition(t.state, ev, &to, &r)) < 0) {
		if (why)
			*why = r;
		goto fail;
	}
	json_obj_begin(&o, &db);
	json_obj_str(&o, "event", tenant_event_name(ev));
	json_obj_str(&o, "from", tenant_state_name(t.state));
	json_obj_str(&o, "to", tenant_state_name(to));
	if (to == TENANT_ON_HOLD && hold_until_ms)
		json_obj_u64(&o, "hold_until", hold_until_ms);
	rc = audit_details(&e, &o);
	sl_buf_free(&db);
	if (rc < 0)
		goto fail;
	t.state = to;
	t.hold_until_ms = to == TENANT_ON_HOLD ? hold_until_ms : 0;
	t.updated_ms = wall_ms();
	e.time_ms = t.updated_ms;
	if ((rc = tenant_write(st, txn, &t, 0)) < 0 || (rc = audit_put(st, txn, &e)) < 0)
		goto fail;
	if ((rc = txn_commit(txn)) < 0)
		return rc;
	if (out)
		*out = t;
	return 0;
fail:
	mdb_txn_abort(txn);
	return rc;
}

/* --- credentials --------------------------------------------------------- */

static int cred_key(uint8_t *kb, size_t cap, char kind, const void *id, size_t n, MDB_val *k)
{
	if (n + 1 > cap)
		return -EINVAL;
	kb[0] = (uint8_t)kind;
	memcpy(kb + 1, id, n);
	k->mv_size = n + 1;
	k->mv_data = kb;
	return 0;
}

/* Put credential c under key k and audit e, in one transaction; the tenant
 * must exist when c->tenant is non-empty. */
static int cred_commit(struct store *st, MDB_val *k, const struct store_credential *c,
		       struct store_audit *e)
{
	struct store_tenant t;
	struct sl_buf rec = { 0 };
	MDB_txn *txn;
	MDB_val v;
	int rc;

	if ((rc = store_credential_encode(c, &rec)) < 0)
		goto out;
	if ((rc = txn_begin(st, true, &txn)))
		goto out;
	if (c->tenant[0] && (rc = tenant_read(st, txn, c->tenant, &t)) < 0)
		goto fail;
	v.mv_size = sl_buf_avail(&rec);
	v.mv_data = sl_buf_head(&rec);
	rc = mdb_put(txn, st->db_creds, k, &v, MDB_NOOVERWRITE);
	if (rc) {
		rc = rc == MDB_KEYEXIST ? -EEXIST : mdb_to_err(rc);
		goto fail;
	}
	if ((rc = audit_put(st, txn, e)) < 0)
		goto fail;
	rc = txn_commit(txn);
	goto out;
fail:
	mdb_txn_abort(txn);
out:
	sl_buf_free(&rec);
	return rc;
}

int store_credential_add_hash(struct store *st, const char *username, const char *tenant,
			      const char *password_hash, const char *actor)
{
	struct store_credential c = { .kind = CRED_USER };
	struct store_audit e;
	uint8_t kb[1 + STORE_USER_MAX];
	MDB_val k;
	int rc;

	if (!st || !valid_user(username) || !valid_name(tenant) || !password_hash)
		return -EINVAL;
	/* Unparseable stored strings are refused now, not at the first AUTH. */
	if (copy_str(c.hash, sizeof c.hash, password_hash) < 0 ||
	    auth_verify_password("", password_hash) == SL_ECONFIG)
		return -EINVAL;
	memcpy(c.tenant, tenant, strlen(tenant) + 1);
	c.created_ms = wall_ms();
	if ((rc = audit_fill(&e, actor, "credential.add", "tenant", tenant, "")) < 0 ||
	    (rc = audit_kv(&e, "kind", "smtp", "username", username, NULL, NULL)) < 0)
		return rc;
	if ((rc = cred_key(kb, sizeof kb, CRED_USER, username, strlen(username), &k)) < 0)
		return rc;
	return cred_commit(st, &k, &c, &e);
}

int store_credential_add(struct store *st, const char *username, const char *tenant,
			 const char *password, const char *actor)
{
	char hash[AUTH_HASH_MAX];
	int rc;

	if (!password)
		return -EINVAL;
	if ((rc = auth_hash_password(password, 0, hash, sizeof hash)) < 0)
		return rc;
	return store_credential_add_hash(st, username, tenant, hash, actor);
}

int store_credential_remove(struct store *st, const char *username, const char *actor)
{
	struct store_credential c;
	struct store_audit e;
	uint8_t kb[1 + STORE_USER_MAX];
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!st || !valid_user(username) || !actor || !*actor)
		return -EINVAL;
	if ((rc = cred_key(kb, sizeof kb, CRED_USER, username, strlen(username), &k)) < 0)
		return rc;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = mdb_to_err(mdb_get(txn, st->db_creds, &k, &v))) < 0 ||
	    (rc = store_credential_decode(v.mv_data, v.mv_size, &c)) < 0 ||
	    (rc = audit_fill(&e, actor, "credential.remove", "tenant", c.tenant, "")) < 0 ||
	    (rc = audit_kv(&e, "kind", "smtp", "username", username, NULL, NULL)) < 0 ||
	    (rc = mdb_to_err(mdb_del(txn, st->db_creds, &k, NULL))) < 0 ||
	    (rc = audit_put(st, txn, &e)) < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = txn_commit(txn)) < 0)
		return rc;
	/* A cached success must not outlive the credential. */
	auth_cache_clear();
	return 0;
}

/* Read credential key k into *c in a short read transaction. */
static int cred_read(struct store *st, MDB_val *k, struct store_credential *c)
{
	MDB_txn *txn;
	MDB_val v;
	int rc;

	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	rc = mdb_get(txn, st->db_creds, k, &v);
	if (rc == 0)
		rc = store_credential_decode(v.mv_data, v.mv_size, c);
	else
		rc = mdb_to_err(rc);
	mdb_txn_abort(txn);
	return rc;
}

int store_credential_verify(struct store *st, const char *username, const char *password,
			    char tenant_out[STORE_NAME_MAX + 1])
{
	struct store_credential c;
	uint8_t kb[1 + STORE_USER_MAX];
	MDB_val k;
	int rc;

	if (!st || !password || !tenant_out)
		return -EINVAL;
	tenant_out[0] = 0;
	if (!valid_user(username) ||
	    cred_key(kb, sizeof kb, CRED_USER, username, strlen(username), &k) < 0) {
		rc = SL_ENOTFOUND;
	} else {
		rc = cred_read(st, &k, &c);
		if (rc == 0 && c.kind != CRED_USER)
			rc = -EBADMSG;
	}
	if (rc == SL_ENOTFOUND) {
		/* Same cost as a known user with a wrong password. */
		auth_verify_password(password, DUMMY_HASH);
		return SL_EAUTH;
	}
	if (rc < 0)
		return rc;
	rc = auth_verify_password(password, c.hash);
	if (rc == SL_ECONFIG)
		return -EBADMSG;
	if (rc < 0)
		return rc;
	memcpy(tenant_out, c.tenant, strlen(c.tenant) + 1);
	return 0;
}

static int sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 0;

	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) || len != 32)
		return -EIO;
	return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

int store_token_create(struct store *st, const char *tenant, enum store_role role,
		       const char *actor, char out_token[STORE_TOKEN_SIZE],
		       char id_out[STORE_TOKEN_ID_SIZE])
{
	struct store_credential c = { .kind = CRED_TOKEN, .role = role };
	struct store_audit e;
	uint8_t raw[32], kb[1 + 32];
	char tok[STORE_TOKEN_SIZE], id[STORE_TOKEN_ID_SIZE];
	MDB_val k;
	int rc;

	if (!st || !out_token)
		return -EINVAL;
	out_token[0] = 0;
	if (role == STORE_ROLE_TENANT) {
		if (!valid_name(tenant))
			return -EINVAL;
	} else if (role != STORE_ROLE_OPERATOR || (tenant && *tenant && !valid_name(tenant))) {
		return -EINVAL;
	}
	if (tenant)
		memcpy(c.tenant, tenant, strlen(tenant) + 1);
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -EIO;
	memcpy(tok, STORE_TOKEN_PREFIX, sizeof STORE_TOKEN_PREFIX - 1);
	hex(tok + sizeof STORE_TOKEN_PREFIX - 1, raw, sizeof raw);
	OPENSSL_cleanse(raw, sizeof raw);
	if ((rc = sha256(tok, STORE_TOKEN_LEN, c.token_hash)) < 0)
		goto out;
	hex(id, c.token_hash, 8);
	c.created_ms = wall_ms();
	if ((rc = audit_fill(&e, actor, "token.create", c.tenant[0] ? "tenant" : "operator",
			     c.tenant, "")) < 0 ||
	    (rc = audit_kv(&e, "token_id", id, "role",
			   role == STORE_ROLE_OPERATOR ? "operator" : "tenant", NULL, NULL)) < 0)
		goto out;
	cred_key(kb, sizeof kb, CRED_TOKEN, c.token_hash, 32, &k);
	if ((rc = cred_commit(st, &k, &c, &e)) < 0)
		goto out;
	/* Shown once: only now, after the commit. */
	memcpy(out_token, tok, STORE_TOKEN_SIZE);
	if (id_out)
		memcpy(id_out, id, STORE_TOKEN_ID_SIZE);
out:
	OPENSSL_cleanse(tok, sizeof tok);
	return rc;
}

int store_token_lookup(struct store *st, const char *token, char tenant_out[STORE_NAME_MAX + 1],
		       enum store_role *role)
{
	struct store_credential c;
	uint8_t h[32], kb[1 + 32];
	MDB_val k;
	size_t n;
	int rc;

	if (!st || !token || !role)
		return -EINVAL;
	if (tenant_out)
		tenant_out[0] = 0;
	n = strnlen(token, STORE_TOKEN_LEN + 1);
	if (n != STORE_TOKEN_LEN)
		return SL_EAUTH;
	if ((rc = sha256(token, n, h)) < 0)
		return rc;
	/* The B-tree search compares SHA-256 digests of 256-bit secrets, which
	 * tells a timing observer nothing; the final check is constant time. */
	cred_key(kb, sizeof kb, CRED_TOKEN, h, sizeof h, &k);
	rc = cred_read(st, &k, &c);
	if (rc == SL_ENOTFOUND)
		return SL_EAUTH;
	if (rc < 0)
		return rc;
	if (c.kind != CRED_TOKEN || CRYPTO_memcmp(c.token_hash, h, sizeof h) != 0)
		return SL_EAUTH;
	if (c.role == STORE_ROLE_TENANT && !c.tenant[0])
		return -EBADMSG;
	*role = c.role;
	if (tenant_out)
		memcpy(tenant_out, c.tenant, strlen(c.tenant) + 1);
	return 0;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		char ch = s[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;

		if (d < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | d : d << 4);
	}
	return s[2 * n] ? -EINVAL : 0;
}

int store_token_revoke(struct store *st, const char *id, const char *actor)
{
	struct store_credential c;
	struct store_audit e;
	uint8_t kb[1 + 8];
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!st || !id || strlen(id) != STORE_TOKEN_ID_SIZE - 1 || unhex(id, kb + 1, 8) < 0 ||
	    !actor || !*actor)
		return -EINVAL;
	kb[0] = CRED_TOKEN;
	k.mv_size = sizeof kb;
	k.mv_data = kb;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_creds, &cur))) {
		rc = mdb_to_err(rc);
		goto fail;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && (k.mv_size != 1 + 32 || memcmp(k.mv_data, kb, sizeof kb) != 0))
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		rc = store_credential_decode(v.mv_data, v.mv_size, &c);
		if (rc == 0)
			rc = audit_fill(&e, actor, "token.revoke", c.tenant[0] ? "tenant" : "operator",
					c.tenant, "");
		if (rc == 0)
			rc = audit_kv(&e, "token_id", id, NULL, NULL, NULL, NULL);
		if (rc == 0)
			rc = mdb_cursor_del(cur, 0) ? SL_ESPOOL : 0;
	} else {
		rc = mdb_to_err(rc);
	}
	mdb_cursor_close(cur);
	if (rc < 0 || (rc = audit_put(st, txn, &e)) < 0)
		goto fail;
	return txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

int store_credential_tenant(struct store *st, const char *username,
			    char tenant_out[STORE_NAME_MAX + 1])
{
	struct store_credential c;
	uint8_t kb[1 + STORE_USER_MAX];
	MDB_val k;
	int rc;

	if (!st || !tenant_out)
		return -EINVAL;
	tenant_out[0] = 0;
	if (!valid_user(username))
		return SL_ENOTFOUND;
	if ((rc = cred_key(kb, sizeof kb, CRED_USER, username, strlen(username), &k)) < 0)
		return rc;
	if ((rc = cred_read(st, &k, &c)) < 0)
		return rc;
	if (c.kind != CRED_USER)
		return -EBADMSG;
	memcpy(tenant_out, c.tenant, strlen(c.tenant) + 1);
	return 0;
}

int store_token_list(struct store *st, const char *tenant, const char *after,
		     struct store_token_info *out, size_t limit, size_t *n, bool *more)
{
	uint8_t kb[1 + 32] = { CRED_TOKEN };
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, op = MDB_SET_RANGE;

	if (!st || !out || !n || !more || limit == 0)
		return -EINVAL;
	*n = 0;
	*more = false;
	if (after && *after) {
		if (strlen(after) != STORE_TOKEN_ID_SIZE - 1 || unhex(after, kb + 1, 8) < 0)
			return -EINVAL;
		memset(kb + 9, 0xff, sizeof kb - 9); /* past every hash with that prefix */
	}
	k.mv_size = sizeof kb;
	k.mv_data = kb;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_creds, &cur))) {
		mdb_txn_abort(txn);
		return mdb_to_err(rc);
	}
	for (;;) {
		struct store_credential c;

		rc = mdb_cursor_get(cur, &k, &v, op);
		op = MDB_NEXT;
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc) {
			rc = mdb_to_err(rc);
			break;
		}
		if (k.mv_size != 1 + 32 || ((uint8_t *)k.mv_data)[0] != CRED_TOKEN) {
			rc = 0;
			break;
		}
		if (after && *after && memcmp((uint8_t *)k.mv_data + 1, kb + 1, 32) <= 0)
			continue;
		if ((rc = store_credential_decode(v.mv_data, v.mv_size, &c)) < 0)
			break;
		if (tenant && strcmp(tenant, c.tenant) != 0)
			continue;
		if (*n == limit) {
			*more = true;
			break;
		}
		hex(out[*n].id, (uint8_t *)k.mv_data + 1, 8);
		out[*n].role = c.role;
		memcpy(out[*n].tenant, c.tenant, sizeof c.tenant);
		out[*n].created_ms = c.created_ms;
		(*n)++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

/* --- configuration sets -------------------------------------------------- */

#define CFGSET_KEY_MAX (STORE_NAME_MAX + 1 + STORE_DOMAIN_MAX + 1 + 1)

static size_t cfgset_key(uint8_t kb[CFGSET_KEY_MAX], const char *tenant, const char *domain,
			 uint8_t stream)
{
	size_t tn = strlen(tenant), dn = strlen(domain);

	memcpy(kb, tenant, tn + 1);
	memcpy(kb + tn + 1, domain, dn + 1);
	kb[tn + dn + 2] = stream;
	return tn + dn + 3;
}

static int meta_next_id(struct store *st, MDB_txn *txn, uint64_t *id)
{
	MDB_val k = { .mv_size = sizeof META_CFGSET_NEXT - 1, .mv_data = (void *)META_CFGSET_NEXT };
	MDB_val v;
	uint8_t vb[8];
	int rc;

	rc = mdb_get(txn, st->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*id = 1;
	} else if (rc) {
		return mdb_to_err(rc);
	} else if (v.mv_size != 8) {
		return -EBADMSG;
	} else {
		*id = be64_get(v.mv_data);
	}
	be64_put(vb, *id + 1);
	v.mv_size = 8;
	v.mv_data = vb;
	return mdb_to_err(mdb_put(txn, st->db_meta, &k, &v, 0));
}

/* The configuration set stored under key k, or a new one (a fresh id,
 * created now) when there is none. 0 or a negative error. */
static int cfgset_read_or_new(struct store *st, MDB_txn *txn, MDB_val *k, struct store_cfgset *c)
{
	MDB_val v;
	int rc = mdb_get(txn, st->db_cfgsets, k, &v);

	if (rc == 0)
		return store_cfgset_decode(v.mv_data, v.mv_size, c);
	if (rc != MDB_NOTFOUND)
		return mdb_to_err(rc);
	rc = meta_next_id(st, txn, &c->id);
	c->created_ms = wall_ms();
	return rc;
}

/* Store c under key k (as tenant_write does for tenants). */
static int cfgset_write(struct store *st, MDB_txn *txn, MDB_val *k, const struct store_cfgset *c)
{
	struct sl_buf rec = { 0 };
	MDB_val v;
	int rc;

	if ((rc = store_cfgset_encode(c, &rec)) == 0) {
		v.mv_size = sl_buf_avail(&rec);
		v.mv_data = sl_buf_head(&rec);
		rc = mdb_to_err(mdb_put(txn, st->db_cfgsets, k, &v, 0));
	}
	sl_buf_free(&rec);
	return rc;
}

int store_cfgset_put(struct store *st, struct store_cfgset *c, const char *actor)
{
	struct store_cfgset cur = { 0 };
	struct store_tenant t;
	struct store_audit e;
	char domain[STORE_DOMAIN_MAX + 1];
	uint8_t kb[CFGSET_KEY_MAX];
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (!st || !c || !valid_name(c->tenant) || c->stream >= STORE_STREAMS ||
	    strnlen(c->domain, sizeof c->domain) >= sizeof c->domain ||
	    !norm_domain(c->domain, domain, false) ||
	    strnlen(c->pool, sizeof c->pool) >= sizeof c->pool || !valid_pool(c->pool) ||
	    strnlen(c->dkim_selector, sizeof c->dkim_selector) >= sizeof c->dkim_selector)
		return -EINVAL;
	memcpy(c->domain, domain, strlen(domain) + 1);
	if ((rc = audit_fill(&e, actor, "cfgset.put", "tenant", c->tenant, "")) < 0 ||
	    (rc = audit_kv(&e, "domain", domain, "stream", c->stream ? "marketing" : "transactional",
			   "pool", c->pool)) < 0)
		return rc;
	k.mv_size = cfgset_key(kb, c->tenant, domain, c->stream);
	k.mv_data = kb;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = tenant_read(st, txn, c->tenant, &t)) < 0)
		goto fail;
	if ((rc = cfgset_read_or_new(st, txn, &k, &cur)) < 0)
		goto fail;
	c->id = cur.id;
	c->created_ms = cur.created_ms;
	c->updated_ms = wall_ms();
	if ((rc = cfgset_write(st, txn, &k, c)) < 0 || (rc = audit_put(st, txn, &e)) < 0)
		goto fail;
	return txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

int store_cfgset_set_paused(struct store *st, const char *tenant, const char *domain,
			    uint8_t stream, bool paused, const char *actor, const char *reason)
{
	struct store_cfgset c = { 0 };
	struct store_tenant t;
	struct store_audit e;
	char dom[STORE_DOMAIN_MAX + 1];
	uint8_t kb[CFGSET_KEY_MAX];
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (!st || !tenant || !domain || !valid_name(tenant) || stream >= STORE_STREAMS ||
	    strlen(domain) > STORE_DOMAIN_MAX || !norm_domain(domain, dom, false))
		return -EINVAL;
	if ((rc = audit_fill(&e, actor, paused ? "cfgset.hold" : "cfgset.resume", "tenant", tenant,
			     reason ? reason : "")) < 0 ||
	    (rc = audit_kv(&e, "domain", dom, "stream", stream ? "marketing" : "transactional", NULL,
			   NULL)) < 0)
		return rc;
	k.mv_size = cfgset_key(kb, tenant, dom, stream);
	k.mv_data = kb;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = tenant_read(st, txn, tenant, &t)) < 0)
		goto fail;
	if ((rc = cfgset_read_or_new(st, txn, &k, &c)) < 0)
		goto fail;
	if (((c.flags & STORE_CFGSET_PAUSED) != 0) == paused) {
		mdb_txn_abort(txn);
		return 1;
	}
	memcpy(c.tenant, tenant, strlen(tenant) + 1);
	memcpy(c.domain, dom, strlen(dom) + 1);
	c.stream = stream;
	c.flags = paused ? c.flags | STORE_CFGSET_PAUSED : c.flags & ~STORE_CFGSET_PAUSED;
	c.updated_ms = wall_ms();
	if ((rc = cfgset_write(st, txn, &k, &c)) < 0 || (rc = audit_put(st, txn, &e)) < 0)
		goto fail;
	return txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

int store_cfgset_get(struct store *st, const char *tenant, const char *domain, uint8_t stream,
		     struct store_cfgset *out)
{
	char dom[STORE_DOMAIN_MAX + 1];
	uint8_t kb[CFGSET_KEY_MAX];
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!st || !out || !valid_name(tenant) || stream >= STORE_STREAMS ||
	    !norm_domain(domain, dom, false))
		return -EINVAL;
	k.mv_size = cfgset_key(kb, tenant, dom, stream);
	k.mv_data = kb;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	rc = mdb_to_err(mdb_get(txn, st->db_cfgsets, &k, &v));
	if (rc == 0 && (rc = store_cfgset_decode(v.mv_data, v.mv_size, out)) == 0) {
		memcpy(out->tenant, tenant, strlen(tenant) + 1);
		memcpy(out->domain, dom, strlen(dom) + 1);
		out->stream = stream;
	}
	mdb_txn_abort(txn);
	return rc;
}

int store_cfgset_list(struct store *st, const char *tenant, const struct store_cfgset *after,
		      struct store_cfgset *out, size_t limit, size_t *n, bool *more)
{
	char dom[STORE_DOMAIN_MAX + 1];
	uint8_t kb[CFGSET_KEY_MAX];
	size_t tn, got = 0;
	MDB_cursor_op op = MDB_SET_RANGE;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!st || !n || !more || (limit && !out) || !valid_name(tenant))
		return -EINVAL;
	*n = 0;
	*more = false;
	tn = strlen(tenant);
	if (after) {
		if (strnlen(after->domain, sizeof after->domain) >= sizeof after->domain ||
		    !norm_domain(after->domain, dom, false))
			return -EINVAL;
		k.mv_size = cfgset_key(kb, tenant, dom, after->stream);
	} else {
		memcpy(kb, tenant, tn + 1); /* tenant NUL sorts before its first set */
		k.mv_size = tn + 1;
	}
	k.mv_data = kb;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_cfgsets, &cur))) {
		mdb_txn_abort(txn);
		return mdb_to_err(rc);
	}
	for (size_t klen = k.mv_size;; op = MDB_NEXT) {
		const uint8_t *kp, *nul;
		size_t dn;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc) {
			rc = rc == MDB_NOTFOUND ? 0 : mdb_to_err(rc);
			break;
		}
		kp = k.mv_data;
		if (k.mv_size <= tn + 1 || memcmp(kp, tenant, tn) != 0 || kp[tn] != 0)
			break; /* past this tenant's sets */
		if (after && op == MDB_SET_RANGE && k.mv_size == klen && memcmp(kp, kb, klen) == 0)
			continue;
		if (got == limit) {
			*more = true;
			break;
		}
		nul = memchr(kp + tn + 1, 0, k.mv_size - tn - 1);
		dn = nul ? (size_t)(nul - (kp + tn + 1)) : 0;
		if (!nul || dn == 0 || dn > STORE_DOMAIN_MAX || (size_t)(nul - kp) + 2 != k.mv_size ||
		    nul[1] >= STORE_STREAMS) {
			rc = -EBADMSG;
			break;
		}
		if ((rc = store_cfgset_decode(v.mv_data, v.mv_size, &out[got])) < 0)
			break;
		memcpy(out[got].tenant, tenant, tn + 1);
		memcpy(out[got].domain, kp + tn + 1, dn);
		out[got].domain[dn] = 0;
		out[got].stream = nul[1];
		got++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	*n = got;
	return rc < 0 ? rc : 0;
}

/* --- audit --------------------------------------------------------------- */

int store_audit_append(struct store *st, struct store_audit *e)
{
	MDB_txn *txn;
	int rc;

	if (!st || !e || !e->actor[0] || !e->action[0] ||
	    strnlen(e->actor, sizeof e->actor) >= sizeof e->actor ||
	    strnlen(e->action, sizeof e->action) >= sizeof e->action ||
	    strnlen(e->target, sizeof e->target) >= sizeof e->target ||
	    strnlen(e->reason, sizeof e->reason) >= sizeof e->reason ||
	    strnlen(e->details, sizeof e->details) >= sizeof e->details)
		return -EINVAL;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	if ((rc = audit_put(st, txn, e)) < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
}

int store_audit_list(struct store *st, uint64_t after, const char *target, struct store_audit *out,
		     size_t limit, size_t *n, bool *more)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t kb[8];
	struct store_audit scratch;
	size_t got = 0;
	int rc;

	if (!st || !n || !more || (limit && !out))
		return -EINVAL;
	*n = 0;
	*more = false;
	if (after == UINT64_MAX)
		return 0;
	be64_put(kb, after + 1);
	k.mv_size = 8;
	k.mv_data = kb;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_audit, &cur))) {
		mdb_txn_abort(txn);
		return mdb_to_err(rc);
	}
	for (MDB_cursor_op op = MDB_SET_RANGE;; op = MDB_NEXT) {
		struct store_audit *e;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc) {
			rc = rc == MDB_NOTFOUND ? 0 : mdb_to_err(rc);
			break;
		}
		if (k.mv_size != 8) {
			rc = -EBADMSG;
			break;
		}
		e = got < limit ? &out[got] : &scratch;
		if ((rc = store_audit_decode(v.mv_data, v.mv_size, e)) < 0)
			break;
		e->seq = be64_get(k.mv_data);
		if (target && strcmp(e->target, target) != 0)
			continue;
		if (got == limit) {
			*more = true;
			break;
		}
		got++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	*n = got;
	return rc < 0 ? rc : 0;
}

int store_audit_json(const struct store_audit *e, struct sl_buf *b)
{
	struct json_obj o;

	json_obj_begin(&o, b);
	json_obj_u64(&o, "seq", e->seq);
	json_obj_u64(&o, "time_ms", e->time_ms);
	json_obj_str(&o, "actor", e->actor);
	json_obj_str(&o, "action", e->action);
	json_obj_str(&o, "target", e->target);
	json_obj_str(&o, "reason", e->reason);
	json_obj_str(&o, "details", e->details);
	return json_obj_end(&o);
}

/* === sending authentication (domains.c, verification.c) ================== */
/* One named database, "sendauth", of opaque records whose keys and layouts
 * belong to control/domains.c and control/verification.c. */

static int sendauth_write(struct store *st, const void *key, size_t klen, const void *val,
			  size_t vlen, struct store_audit *audit)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };
	int rc;

	if (!st || !key || !klen || klen > 511)
		return -EINVAL;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	rc = val ? mdb_put(txn, st->db_sendauth, &k, &v, 0) : mdb_del(txn, st->db_sendauth, &k, NULL);
	if (rc) {
		rc = rc == MDB_NOTFOUND ? SL_ENOTFOUND : mdb_to_err(rc);
		goto fail;
	}
	if (audit && (rc = audit_put(st, txn, audit)) < 0)
		goto fail;
	return txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

int store_sendauth_put(struct store *st, const void *key, size_t klen, const void *val,
		       size_t vlen, struct store_audit *audit)
{
	if (!val)
		return -EINVAL;
	return sendauth_write(st, key, klen, val, vlen, audit);
}

int store_sendauth_del(struct store *st, const void *key, size_t klen, struct store_audit *audit)
{
	return sendauth_write(st, key, klen, NULL, 0, audit);
}

int store_sendauth_get(struct store *st, const void *key, size_t klen, struct sl_buf *out)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key }, v;
	int rc;

	if (!st || !key || !klen || klen > 511 || !out)
		return -EINVAL;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	rc = mdb_get(txn, st->db_sendauth, &k, &v);
	if (rc == 0) {
		sl_buf_reset(out);
		rc = sl_buf_append(out, v.mv_data, v.mv_size);
	} else {
		rc = rc == MDB_NOTFOUND ? SL_ENOTFOUND : mdb_to_err(rc);
	}
	mdb_txn_abort(txn);
	return rc;
}

int store_sendauth_scan(struct store *st, const void *prefix, size_t plen,
			store_sendauth_fn fn, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { .mv_size = plen, .mv_data = (void *)prefix }, v;
	int rc, op = MDB_SET_RANGE;

	if (!st || !fn || (plen && !prefix))
		return -EINVAL;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_sendauth, &cur))) {
		mdb_txn_abort(txn);
		return mdb_to_err(rc);
	}
	if (!plen)
		op = MDB_FIRST;
	for (;;) {
		rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
		op = MDB_NEXT;
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc) {
			rc = mdb_to_err(rc);
			break;
		}
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
			break;
		if ((rc = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc < 0 ? rc : 0;
}

/* --- suppressions and tenant numbers (reputation) ------------------------ */

#define SUPP_REC_VERSION 1
#define REP_KEY_MAX (1 + SUPPRESSION_TENANT_MAX + 1 + SUPPRESSION_ADDR_MAX + 1)

/* 's' tenant NUL address; the length or an error. */
static int supp_key(uint8_t kb[REP_KEY_MAX], const char *tenant, const char *addr)
{
	int n;

	if (tenant && *tenant && !valid_name(tenant))
		return -EINVAL;
	kb[0] = 's';
	n = suppression_key(tenant, addr, (char *)kb + 1, REP_KEY_MAX - 1);
	return n < 0 ? n : n + 1;
}

static int supp_decode(const MDB_val *k, const MDB_val *v, struct suppression_entry *e)
{
	const char *p = (const char *)k->mv_data + 1, *nul;
	size_t n = k->mv_size - 1;
	struct rd r;
	int rc;

	if (k->mv_size < 2 || !(nul = memchr(p, 0, n)) || (size_t)(nul - p) > SUPPRESSION_TENANT_MAX ||
	    n - (size_t)(nul - p) - 1 > SUPPRESSION_ADDR_MAX || n - (size_t)(nul - p) - 1 == 0)
		return -EBADMSG;
	memcpy(e->tenant, p, (size_t)(nul - p));
	e->tenant[nul - p] = 0;
	memcpy(e->address, nul + 1, n - (size_t)(nul - p) - 1);
	e->address[n - (size_t)(nul - p) - 1] = 0;
	if ((rc = rd_start(&r, v->mv_data, v->mv_size, SUPP_REC_VERSION)))
		return rc;
	e->reason = get_u8(&r);
	e->added_ms = get_u64(&r);
	return rd_finish(&r);
}

int store_suppression_add(struct store *st, const char *tenant, const char *addr,
			  enum suppression_reason reason, uint64_t added_ms, const char *actor)
{
	uint8_t kb[REP_KEY_MAX], vb[10];
	struct store_audit e;
	MDB_txn *txn;
	MDB_val k, v;
	int n, rc;

	if (!st || (unsigned)reason > SUPPRESSION_MANUAL)
		return -EINVAL;
	if ((n = supp_key(kb, tenant, addr)) < 0)
		return n;
	k = (MDB_val){ .mv_size = (size_t)n, .mv_data = kb };
	vb[0] = SUPP_REC_VERSION;
	vb[1] = (uint8_t)reason;
	be64_put(vb + 2, added_ms ? added_ms : wall_ms());
	v = (MDB_val){ .mv_size = sizeof vb, .mv_data = vb };
	if (actor && ((rc = audit_fill(&e, actor, "suppression.add", "tenant",
				       tenant && *tenant ? tenant : "*", "")) < 0 ||
		      (rc = audit_kv(&e, "address", (const char *)kb + 2 + strlen((char *)kb + 1),
				     "reason", suppression_reason_name(reason), NULL, NULL)) < 0))
		return rc;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	rc = mdb_put(txn, st->db_rep, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		mdb_txn_abort(txn);
		return 1;
	}
	if ((rc = mdb_to_err(rc)) < 0 || (actor && (rc = audit_put(st, txn, &e)) < 0)) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
}

int store_suppression_remove(struct store *st, const char *tenant, const char *addr,
			     const char *actor)
{
	uint8_t kb[REP_KEY_MAX];
	struct store_audit e;
	MDB_txn *txn;
	MDB_val k;
	int n, rc;

	if (!st || (n = supp_key(kb, tenant, addr)) < 0)
		return st ? n : -EINVAL;
	k = (MDB_val){ .mv_size = (size_t)n, .mv_data = kb };
	if (actor && ((rc = audit_fill(&e, actor, "suppression.remove", "tenant",
				       tenant && *tenant ? tenant : "*", "")) < 0 ||
		      (rc = audit_kv(&e, "address", (const char *)kb + 2 + strlen((char *)kb + 1),
				     NULL, NULL, NULL, NULL)) < 0))
		return rc;
	if ((rc = txn_begin(st, true, &txn)))
		return rc;
	rc = mdb_del(txn, st->db_rep, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return SL_ENOTFOUND;
	}
	if ((rc = mdb_to_err(rc)) < 0 || (actor && (rc = audit_put(st, txn, &e)) < 0)) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
}

int store_suppression_check(struct store *st, const char *tenant, const char *addr,
			    struct suppression_entry *out)
{
	struct suppression_entry tmp;
	uint8_t kb[REP_KEY_MAX];
	MDB_txn *txn;
	MDB_val k, v;
	int n, rc;

	if (!st)
		return -EINVAL;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	for (int pass = 0; pass < 2; pass++) {
		const char *t = pass ? tenant : "";

		if (pass && (!tenant || !*tenant))
			break;
		if ((n = supp_key(kb, t, addr)) < 0) {
			rc = n;
			break;
		}
		k = (MDB_val){ .mv_size = (size_t)n, .mv_data = kb };
		rc = mdb_get(txn, st->db_rep, &k, &v);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc) {
			rc = mdb_to_err(rc);
			break;
		}
		rc = supp_decode(&k, &v, out ? out : &tmp);
		rc = rc < 0 ? rc : 1;
		break;
	}
	mdb_txn_abort(txn);
	return rc;
}

int store_suppression_list(struct store *st, const char *tenant, const char *after_tenant,
			   const char *after_addr, struct suppression_entry *out, size_t limit,
			   size_t *n, bool *more)
{
	uint8_t kb[REP_KEY_MAX];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v, start;
	MDB_cursor_op op = MDB_SET_RANGE;
	size_t got = 0;
	int rc, kn;

	if (!st || !n || !more || (limit && !out))
		return -EINVAL;
	*n = 0;
	*more = false;
	if (after_addr && *after_addr) {
		if ((kn = supp_key(kb, after_tenant ? after_tenant : "", after_addr)) < 0)
			return kn;
	} else if (tenant) {
		if ((kn = supp_key(kb, tenant, "x@x")) < 0)
			return kn;
		kn -= 3; /* 's' tenant NUL */
	} else {
		kb[0] = 's';
		kn = 1;
	}
	start = (MDB_val){ .mv_size = (size_t)kn, .mv_data = kb };
	k = start;
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->db_rep, &cur))) {
		mdb_txn_abort(txn);
		return mdb_to_err(rc);
	}
	for (;; op = MDB_NEXT) {
		struct suppression_entry e;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc) {
			rc = rc == MDB_NOTFOUND ? 0 : mdb_to_err(rc);
			break;
		}
		if (k.mv_size < 1 || ((const uint8_t *)k.mv_data)[0] != 's')
			break;
		if (op == MDB_SET_RANGE && after_addr && *after_addr && k.mv_size == start.mv_size &&
		    memcmp(k.mv_data, start.mv_data, k.mv_size) == 0)
			continue;
		if ((rc = supp_decode(&k, &v, &e)) < 0)
			break;
		if (tenant && strcmp(e.tenant, tenant) != 0)
			break;
		if (got == limit) {
			*more = true;
			break;
		}
		out[got++] = e;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	*n = got;
	return rc < 0 ? rc : 0;
}

int store_tenant_number(struct store *st, const char *name, bool create, uint64_t *id)
{
	uint8_t kb[1 + STORE_NAME_MAX], ib[9], vb[8];
	size_t len;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!st || !id || !valid_name(name))
		return -EINVAL;
	len = strlen(name);
	kb[0] = 'n';
	memcpy(kb + 1, name, len);
	k = (MDB_val){ .mv_size = 1 + len, .mv_data = kb };
	for (int pass = 0; pass < 2; pass++) {
		if ((rc = txn_begin(st, pass == 1, &txn)))
			return rc;
		rc = mdb_get(txn, st->db_rep, &k, &v);
		if (rc == 0) {
			rc = v.mv_size == 8 ? 0 : -EBADMSG;
			if (!rc)
				*id = be64_get(v.mv_data);
			mdb_txn_abort(txn);
			return rc;
		}
		if (rc != MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return mdb_to_err(rc);
		}
		if (pass == 0) {
			mdb_txn_abort(txn);
			if (!create)
				return SL_ENOTFOUND;
			continue;
		}
		/* Numbers come from the configuration-set counter: unique
		 * across both kinds, never reused. */
		if ((rc = meta_next_id(st, txn, id)) < 0)
			goto fail;
		be64_put(vb, *id);
		v = (MDB_val){ .mv_size = 8, .mv_data = vb };
		if ((rc = mdb_to_err(mdb_put(txn, st->db_rep, &k, &v, 0))) < 0)
			goto fail;
		ib[0] = 'i';
		be64_put(ib + 1, *id);
		k = (MDB_val){ .mv_size = 9, .mv_data = ib };
		v = (MDB_val){ .mv_size = len, .mv_data = (void *)name };
		if ((rc = mdb_to_err(mdb_put(txn, st->db_rep, &k, &v, 0))) < 0)
			goto fail;
		return txn_commit(txn);
	}
	return -EINVAL;
fail:
	mdb_txn_abort(txn);
	return rc;
}

int store_tenant_by_number(struct store *st, uint64_t id, char name[STORE_NAME_MAX + 1])
{
	uint8_t ib[9];
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!st || !name)
		return -EINVAL;
	ib[0] = 'i';
	be64_put(ib + 1, id);
	k = (MDB_val){ .mv_size = 9, .mv_data = ib };
	if ((rc = txn_begin(st, false, &txn)))
		return rc;
	rc = mdb_get(txn, st->db_rep, &k, &v);
	if (rc == 0 && (v.mv_size == 0 || v.mv_size > STORE_NAME_MAX))
		rc = -EBADMSG;
	else if (rc == 0) {
		memcpy(name, v.mv_data, v.mv_size);
		name[v.mv_size] = 0;
	} else
		rc = rc == MDB_NOTFOUND ? SL_ENOTFOUND : mdb_to_err(rc);
	mdb_txn_abort(txn);
	return rc;
}
