/* json.c — JSON writing helpers; see json.h. */
#include "json.h"

#include <string.h>

/* Input bytes escaped per buffer reservation; bounds the over-reservation. */
#define JSON_CHUNK 4096
/* The longest output of one input unit: "\u00xx" or "\ufffd". */
#define JSON_MAX_ESC 6

/*
 * 1 for bytes copied as they are (printable ASCII other than '"' and '\'),
 * 0 for bytes that need attention (controls, '"', '\', and all non-ASCII,
 * which has to be validated as UTF-8).
 */
static const unsigned char plain[256] = {
	[0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

/*
 * Length (2..4) of the valid UTF-8 sequence at p, whose first byte is
 * >= 0x80, or minus the length (1..3) of its maximal invalid subpart.
 * Table 3-7 of the Unicode standard: no overlongs, no surrogates, nothing
 * above U+10FFFF.
 */
static int utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	int need, k;

	if (c < 0xc2)
		return -1;
	if (c < 0xe0) {
		need = 1;
	} else if (c < 0xf0) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return -1;
	}
	for (k = 1; k <= need; k++) {
		if ((size_t)k >= avail || p[k] < lo || p[k] > hi)
			return -k;
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

/*
 * Escape in[0..n) (n <= the remaining input, scanning may look past n to
 * finish a UTF-8 sequence that starts before n) into out, which has room
 * for JSON_MAX_ESC * n bytes: every input unit that starts before n writes
 * at most JSON_MAX_ESC bytes. Returns the input consumed; *outlen gets the
 * bytes written.
 */
static size_t escape_chunk(const unsigned char *in, size_t n, size_t avail, char *out,
			   size_t *outlen)
{
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	size_t i = 0;
	int k;

	while (i < n) {
		unsigned char c = in[i];

		if (plain[c]) {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			k = utf8_seq(in + i, avail - i);
			if (k > 0) {
				memcpy(o, in + i, (size_t)k);
				o += k;
				i += (size_t)k;
			} else {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				i += (size_t)-k;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			memcpy(o, "u00", 3);
			o[3] = hex[c >> 4];
			o[4] = hex[c & 0xf];
			o += 5;
		}
		i++;
	}
	*outlen = (size_t)(o - out);
	return i;
}

/*
 * Where the unconsumed data ends, as a length that survives the compaction
 * sl_buf_reserve() may do; buf_rewind() drops everything appended since.
 */
static size_t buf_mark(const struct sl_buf *b)
{
	return b->len - b->off;
}

static void buf_rewind(struct sl_buf *b, size_t mark)
{
	b->len = b->off + mark;
}

/* Make room for n more bytes, calling into buf.c only when short. */
static inline int room(struct sl_buf *b, size_t n)
{
	return b->cap - b->len >= n ? 0 : sl_buf_reserve(b, n);
}

/*
 * Append pre (unless NUL), s as a quoted escaped string, then post (unless
 * NUL): a member's `,"key":` takes one call and, usually, one reservation.
 */
static int put_quoted(struct sl_buf *b, char pre, const char *s, size_t len, char post)
{
	const unsigned char *in = (const unsigned char *)s;
	size_t start = buf_mark(b), i = 0, n, wrote;
	int rc;

	n = len < JSON_CHUNK ? len : JSON_CHUNK;
	rc = room(b, JSON_MAX_ESC * n + 4);
	if (rc)
		return rc;
	if (pre)
		b->data[b->len++] = pre;
	b->data[b->len++] = '"';
	for (;;) {
		i += escape_chunk(in + i, n, len - i, b->data + b->len, &wrote);
		b->len += wrote;
		if (i >= len)
			break;
		n = len - i < JSON_CHUNK ? len - i : JSON_CHUNK;
		rc = room(b, JSON_MAX_ESC * n + 2);
		if (rc) {
			buf_rewind(b, start);
			return rc;
		}
	}
	b->data[b->len++] = '"';
	if (post)
		b->data[b->len++] = post;
	return 0;
}

int json_append_stringn(struct sl_buf *b, const char *s, size_t len)
{
	return put_quoted(b, '\0', s, len, '\0');
}

int json_append_string(struct sl_buf *b, const char *s)
{
	return put_quoted(b, '\0', s, strlen(s), '\0');
}

int json_append_u64(struct sl_buf *b, uint64_t v)
{
	char tmp[20], *p = tmp + sizeof tmp;
	size_t n;
	int rc;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	n = (size_t)(tmp + sizeof tmp - p);
	rc = room(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int json_append_i64(struct sl_buf *b, int64_t v)
{
	size_t start = buf_mark(b);
	int rc;

	if (v >= 0)
		return json_append_u64(b, (uint64_t)v);
	rc = sl_buf_append(b, "-", 1);
	if (!rc)
		rc = json_append_u64(b, -(uint64_t)v);
	if (rc)
		buf_rewind(b, start);
	return rc;
}

void json_obj_begin(struct json_obj *o, struct sl_buf *b)
{
	o->buf = b;
	o->mark = buf_mark(b);
	o->count = 0;
	o->err = sl_buf_append(b, "{", 1);
}

/* Append `,"key":` (no comma for the first member); 0 when the value may follow. */
static int obj_key(struct json_obj *o, const char *key)
{
	if (o->err)
		return o->err;
	o->err = put_quoted(o->buf, o->count++ > 0 ? ',' : '\0', key, strlen(key), ':');
	return o->err;
}

void json_obj_str(struct json_obj *o, const char *key, const char *val)
{
	if (val && !obj_key(o, key))
		o->err = json_append_string(o->buf, val);
}

void json_obj_strn(struct json_obj *o, const char *key, const char *val, size_t len)
{
	if (!obj_key(o, key))
		o->err = json_append_stringn(o->buf, val, len);
}

void json_obj_u64(struct json_obj *o, const char *key, uint64_t v)
{
	if (!obj_key(o, key))
		o->err = json_append_u64(o->buf, v);
}

void json_obj_i64(struct json_obj *o, const char *key, int64_t v)
{
	if (!obj_key(o, key))
		o->err = json_append_i64(o->buf, v);
}

void json_obj_bool(struct json_obj *o, const char *key, int v)
{
	if (!obj_key(o, key))
		o->err = v ? sl_buf_append(o->buf, "true", 4) : sl_buf_append(o->buf, "false", 5);
}

void json_obj_raw(struct json_obj *o, const char *key, const char *json, size_t len)
{
	if (!obj_key(o, key))
		o->err = sl_buf_append(o->buf, json, len);
}

int json_obj_end(struct json_obj *o)
{
	if (!o->err)
		o->err = sl_buf_append(o->buf, "}", 1);
	if (o->err)
		buf_rewind(o->buf, o->mark);
	return o->err;
}
