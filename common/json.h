/*
 * json.h — writing JSON text into a struct sl_buf.
 *
 * Only output: sluice emits JSON (event log, admin API replies, webhooks)
 * far more often than it reads it, and the writers sit on hot paths. Every
 * function appends to a caller-owned struct sl_buf and allocates nothing
 * but the buffer's own growth. Errors are -ENOMEM from the buffer.
 *
 * Strings are escaped per RFC 8259: `"` and `\` get a backslash, the
 * control characters U+0000..U+001F become \b \f \n \r \t or \u00xx, and
 * every maximal invalid UTF-8 subpart (as defined by Unicode, "substitution
 * of maximal subparts") becomes \ufffd, so the output is always valid
 * UTF-8 whatever bytes come in. Everything else is copied unchanged.
 *
 * The object builder keeps the first error and turns later calls into
 * no-ops, so a caller writes a whole object and checks once at
 * json_obj_end(), which leaves the buffer as json_obj_begin() found it if
 * anything failed. Keys are escaped like values.
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Append s (NUL-terminated) as a quoted, escaped JSON string. */
int json_append_string(struct sl_buf *b, const char *s);
/* Append the len bytes at s as a quoted, escaped JSON string; NULs are escaped. */
int json_append_stringn(struct sl_buf *b, const char *s, size_t len);
/* Append an unsigned / signed decimal integer. */
int json_append_u64(struct sl_buf *b, uint64_t v);
int json_append_i64(struct sl_buf *b, int64_t v);

struct json_obj {
	struct sl_buf *buf;
	int err;        /* first error seen, 0 if none */
	unsigned count; /* members written so far */
	size_t mark;    /* where the object starts, to undo it on error */
};

/* Append '{' and start counting members. */
void json_obj_begin(struct json_obj *o, struct sl_buf *b);
/* A string member; a NULL val omits the member entirely. */
void json_obj_str(struct json_obj *o, const char *key, const char *val);
/* A string member from len bytes (no NUL needed). */
void json_obj_strn(struct json_obj *o, const char *key, const char *val, size_t len);
void json_obj_u64(struct json_obj *o, const char *key, uint64_t v);
void json_obj_i64(struct json_obj *o, const char *key, int64_t v);
void json_obj_bool(struct json_obj *o, const char *key, int v);
/* A member whose value is already-valid JSON text (nested object, array). */
void json_obj_raw(struct json_obj *o, const char *key, const char *json, size_t len);
/*
 * Append '}' and return 0, or return the first error of the whole object
 * after removing the partial object from the buffer.
 */
int json_obj_end(struct json_obj *o);

#endif
