/*
 * warmup_db.h — where warm-up state and operator commands live on disk.
 *
 * A small LMDB environment in one file (MDB_NOSUBDIR; sluiced keeps it at
 * SPOOL/warmup.mdb) shared by two processes:
 *   "state"    "IP\0PROVIDER" -> struct warmup_record. Written only by
 *              sluiced (batched, about once a second and at shutdown);
 *              read by `sluicectl warmup status`.
 *   "commands" big-endian u64 seq -> struct warmup_command. Appended only
 *              by `sluicectl warmup pause|resume|restart|jump`; sluiced
 *              applies the ones after the last it applied and never
 *              deletes them, so the table is also the audit trail.
 *   "meta"     "cmd_seq" (the last command's seq; the generation counter
 *              sluiced polls), "applied" (the last seq sluiced applied).
 * The control store (store.h) is not used because it admits one process
 * at a time, and sluicectl must act while sluiced runs.
 *
 * Records are fixed-size host-endian structs led by a format version; a
 * value of another size or version is -EBADMSG. PROVIDER "*" is the
 * schedule's default curve (destinations without a known provider).
 *
 * Errors: -EINVAL bad argument, -ENOMEM, -ENOSPC map full, -EBADMSG corrupt
 * record, SL_ENOTFOUND no such key, SL_ESPOOL other LMDB failures.
 * Every call is one short transaction; callers may be in any thread.
 */
#ifndef SL_WARMUP_DB_H
#define SL_WARMUP_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARMUP_DB_FILE "warmup.mdb"
#define WARMUP_DB_IP_MAX 46
#define WARMUP_DB_NAME_MAX 64
#define WARMUP_DB_ACTOR_MAX 64
#define WARMUP_DB_REASON_MAX 256

enum warmup_phase { WARMUP_PHASE_WARMING = 0, WARMUP_PHASE_WARM = 1, WARMUP_PHASE_PAUSED = 2 };

/* One (IP, provider) warm-up as sluiced last saw it. The first block is
 * the state that survives a restart; the second is derived for display at
 * now_ms of the daemon's warm-up clock. */
struct warmup_record {
	uint32_t version;
	char ip[WARMUP_DB_IP_MAX];
	char provider[WARMUP_DB_NAME_MAX];
	char schedule[WARMUP_DB_NAME_MAX];
	uint64_t start_ms;
	uint32_t day;
	uint32_t paused;
	int64_t cur_day, cur_hour;
	uint64_t sent_today, sent_hour;
	/* derived */
	uint64_t now_ms;          /* the daemon's warm-up clock when written */
	uint64_t cap_today, cap_hour; /* UINT64_MAX = unlimited */
	uint32_t next_increase_day;   /* 0 = none */
	uint32_t phase;               /* enum warmup_phase */
};

enum warmup_action {
	WARMUP_CMD_PAUSE = 1,
	WARMUP_CMD_RESUME = 2,
	WARMUP_CMD_RESTART = 3,
	WARMUP_CMD_JUMP = 4,
};

struct warmup_command {
	uint32_t version;
	uint64_t seq;     /* assigned by warmup_db_command_add */
	uint64_t time_ms; /* wall clock */
	uint32_t action;  /* enum warmup_action */
	uint32_t day;     /* JUMP: the new sending day */
	char ip[WARMUP_DB_IP_MAX];
	char provider[WARMUP_DB_NAME_MAX];
	char actor[WARMUP_DB_ACTOR_MAX];
	char reason[WARMUP_DB_REASON_MAX];
};

struct warmup_db;

/* Open (creating) the environment file path. sync false is for tests. */
int warmup_db_open(const char *path, bool sync, struct warmup_db **out);
void warmup_db_close(struct warmup_db *db);

/* Write n state records in one transaction (replacing same keys). */
int warmup_db_put_states(struct warmup_db *db, const struct warmup_record *r, size_t n);
/* Every state record, sorted by key, into a malloc'd array (*out, *n). */
int warmup_db_states(struct warmup_db *db, struct warmup_record **out, size_t *n);

/* Append c (its seq and version are set here and copied back). */
int warmup_db_command_add(struct warmup_db *db, struct warmup_command *c);
/* The last command's seq (0 when none): a cheap generation counter. */
int warmup_db_command_seq(struct warmup_db *db, uint64_t *seq);
/* Up to max commands with seq > after, in order, into out; *n how many. */
int warmup_db_commands_after(struct warmup_db *db, uint64_t after, struct warmup_command *out,
			     size_t max, size_t *n);
/* The last seq sluiced applied (0 when none) and its update. */
int warmup_db_applied(struct warmup_db *db, uint64_t *seq);
int warmup_db_set_applied(struct warmup_db *db, uint64_t seq);

const char *warmup_action_name(enum warmup_action a);
/* "pause" -> WARMUP_CMD_PAUSE ...; 0 when unknown. */
enum warmup_action warmup_action_parse(const char *s);
const char *warmup_phase_name(enum warmup_phase p);

#endif
