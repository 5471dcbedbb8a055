/* warmup_db.c — warm-up state and operator commands in LMDB; see warmup_db.h. */
#include "warmup_db.h"

#include "err.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 1u

struct warmup_db {
	MDB_env *env;
	MDB_dbi state, commands, meta;
};

static int mdb_err(int rc)
{
	switch (rc) {
	case 0: return 0;
	case ENOMEM: return -ENOMEM;
	case EINVAL: return -EINVAL;
	case MDB_NOTFOUND: return SL_ENOTFOUND;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL: return -ENOSPC;
	default: return SL_ESPOOL;
	}
}

static void be64(uint64_t v, unsigned char out[8])
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (unsigned char)v;
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v)
{
	MDB_val k = { strlen(key), (void *)key }, d;
	int rc = mdb_get(txn, dbi, &k, &d);

	*v = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(rc);
	if (d.mv_size != sizeof *v)
		return -EBADMSG;
	memcpy(v, d.mv_data, sizeof *v);
	return 0;
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
	MDB_val k = { strlen(key), (void *)key }, d = { sizeof v, &v };

	return mdb_err(mdb_put(txn, dbi, &k, &d, 0));
}

int warmup_db_open(const char *path, bool sync, struct warmup_db **out)
{
	struct warmup_db *db;
	MDB_txn *txn;
	int rc, dead;

	if (!path || !out)
		return -EINVAL;
	if (!(db = calloc(1, sizeof *db)))
		return -ENOMEM;
	if ((rc = mdb_env_create(&db->env))) {
		free(db);
		return mdb_err(rc);
	}
	if ((rc = mdb_env_set_maxdbs(db->env, 3)) ||
	    (rc = mdb_env_set_mapsize(db->env, (size_t)16 << 20)) ||
	    (rc = mdb_env_open(db->env, path, MDB_NOSUBDIR | MDB_NOTLS | (sync ? 0 : MDB_NOSYNC),
			       0600)))
		goto fail;
	mdb_reader_check(db->env, &dead);
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)))
		goto fail;
	if ((rc = mdb_dbi_open(txn, "state", MDB_CREATE, &db->state)) ||
	    (rc = mdb_dbi_open(txn, "commands", MDB_CREATE, &db->commands)) ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta))) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)))
		goto fail;
	*out = db;
	return 0;
fail:
	mdb_env_close(db->env);
	free(db);
	return rc > 0 ? mdb_err(rc) : rc;
}

void warmup_db_close(struct warmup_db *db)
{
	if (!db)
		return;
	mdb_env_close(db->env);
	free(db);
}

static size_t state_key(const struct warmup_record *r, char *k, size_t len)
{
	size_t a = strnlen(r->ip, sizeof r->ip), b = strnlen(r->provider, sizeof r->provider);

	if (a + 1 + b > len)
		return 0;
	memcpy(k, r->ip, a);
	k[a] = 0;
	memcpy(k + a + 1, r->provider, b);
	return a + 1 + b;
}

int warmup_db_put_states(struct warmup_db *db, const struct warmup_record *r, size_t n)
{
	MDB_txn *txn;
	int rc;

	if (!n)
		return 0;
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)))
		return mdb_err(rc);
	for (size_t i = 0; i < n; i++) {
		char key[WARMUP_DB_IP_MAX + WARMUP_DB_NAME_MAX + 1];
		struct warmup_record rec = r[i];
		MDB_val k = { state_key(&rec, key, sizeof key), key }, d = { sizeof rec, &rec };

		rec.version = RECORD_VERSION;
		if (!k.mv_size || (rc = mdb_put(txn, db->state, &k, &d, 0))) {
			mdb_txn_abort(txn);
			return k.mv_size ? mdb_err(rc) : -EINVAL;
		}
	}
	/* THE COMMIT POINT of a flush. */
	return mdb_err(mdb_txn_commit(txn));
}

int warmup_db_states(struct warmup_db *db, struct warmup_record **out, size_t *n)
{
	struct warmup_record *arr = NULL, *p;
	size_t cnt = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, d;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)))
		return mdb_err(rc);
	if ((rc = mdb_cursor_open(txn, db->state, &cur))) {
		mdb_txn_abort(txn);
		return mdb_err(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		if (d.mv_size != sizeof *arr ||
		    ((const struct warmup_record *)d.mv_data)->version != RECORD_VERSION) {
			rc = -EBADMSG;
			break;
		}
		if (!(p = realloc(arr, (cnt + 1) * sizeof *arr))) {
			rc = -ENOMEM;
			break;
		}
		arr = p;
		memcpy(&arr[cnt], d.mv_data, sizeof *arr);
		arr[cnt].ip[WARMUP_DB_IP_MAX - 1] = 0;
		arr[cnt].provider[WARMUP_DB_NAME_MAX - 1] = 0;
		arr[cnt].schedule[WARMUP_DB_NAME_MAX - 1] = 0;
		cnt++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND) {
		free(arr);
		return rc < 0 ? rc : mdb_err(rc);
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int warmup_db_command_add(struct warmup_db *db, struct warmup_command *c)
{
	unsigned char key[8];
	uint64_t seq;
	MDB_txn *txn;
	MDB_val k = { sizeof key, key }, d = { sizeof *c, c };
	int rc;

	if (!c || c->action < WARMUP_CMD_PAUSE || c->action > WARMUP_CMD_JUMP || !c->ip[0] ||
	    !c->provider[0])
		return -EINVAL;
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)))
		return mdb_err(rc);
	if ((rc = meta_get(txn, db->meta, "cmd_seq", &seq)) < 0)
		goto fail;
	c->seq = seq + 1;
	c->version = RECORD_VERSION;
	be64(c->seq, key);
	if ((rc = mdb_err(mdb_put(txn, db->commands, &k, &d, MDB_NOOVERWRITE))) < 0 ||
	    (rc = meta_put(txn, db->meta, "cmd_seq", c->seq)) < 0)
		goto fail;
	/* THE COMMIT POINT of an operator command (and its audit entry). */
	return mdb_err(mdb_txn_commit(txn));
fail:
	mdb_txn_abort(txn);
	return rc;
}

static int meta_read(struct warmup_db *db, const char *key, uint64_t *v)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)))
		return mdb_err(rc);
	rc = meta_get(txn, db->meta, key, v);
	mdb_txn_abort(txn);
	return rc;
}

int warmup_db_command_seq(struct warmup_db *db, uint64_t *seq)
{
	return meta_read(db, "cmd_seq", seq);
}

int warmup_db_applied(struct warmup_db *db, uint64_t *seq)
{
	return meta_read(db, "applied", seq);
}

int warmup_db_set_applied(struct warmup_db *db, uint64_t seq)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)))
		return mdb_err(rc);
	if ((rc = meta_put(txn, db->meta, "applied", seq)) < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_err(mdb_txn_commit(txn));
}

int warmup_db_commands_after(struct warmup_db *db, uint64_t after, struct warmup_command *out,
			     size_t max, size_t *n)
{
	unsigned char key[8];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { sizeof key, key }, d;
	int rc;

	*n = 0;
	be64(after + 1, key);
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)))
		return mdb_err(rc);
	if ((rc = mdb_cursor_open(txn, db->commands, &cur))) {
		mdb_txn_abort(txn);
		return mdb_err(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc && *n < max;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		struct warmup_command *c = &out[*n];

		if (d.mv_size != sizeof *c ||
		    ((const struct warmup_command *)d.mv_data)->version != RECORD_VERSION) {
			rc = -EBADMSG;
			break;
		}
		memcpy(c, d.mv_data, sizeof *c);
		c->ip[WARMUP_DB_IP_MAX - 1] = 0;
		c->provider[WARMUP_DB_NAME_MAX - 1] = 0;
		c->actor[WARMUP_DB_ACTOR_MAX - 1] = 0;
		c->reason[WARMUP_DB_REASON_MAX - 1] = 0;
		(*n)++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc && rc != MDB_NOTFOUND)
		return rc < 0 ? rc : mdb_err(rc);
	return 0;
}

static const char *const action_names[] = { NULL, "pause", "resume", "restart", "jump" };

const char *warmup_action_name(enum warmup_action a)
{
	return a >= WARMUP_CMD_PAUSE && a <= WARMUP_CMD_JUMP ? action_names[a] : "?";
}

enum warmup_action warmup_action_parse(const char *s)
{
	for (int a = WARMUP_CMD_PAUSE; a <= WARMUP_CMD_JUMP; a++)
		if (!strcmp(s, action_names[a]))
			return (enum warmup_action)a;
	return 0;
}

const char *warmup_phase_name(enum warmup_phase p)
{
	switch (p) {
	case WARMUP_PHASE_WARMING: return "warming";
	case WARMUP_PHASE_WARM: return "warm";
	case WARMUP_PHASE_PAUSED: return "paused";
	}
	return "?";
}
