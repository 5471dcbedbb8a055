/*
 * buf.h — a growable byte buffer.
 *
 * A struct sl_buf owns its heap storage; sl_buf_free() releases it. Data
 * lives in [data + off, data + len): consumers advance `off` with
 * sl_buf_consume() instead of moving bytes, and sl_buf_compact() moves the
 * remainder to the front when convenient. Appends return 0 or -ENOMEM.
 */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stddef.h>

struct sl_buf {
	char *data;
	size_t off; /* first unconsumed byte */
	size_t len; /* end of valid data */
	size_t cap;
};

/* Make room for at least n more bytes after len. */
int sl_buf_reserve(struct sl_buf *b, size_t n);
int sl_buf_append(struct sl_buf *b, const void *p, size_t n);
int sl_buf_appendf(struct sl_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front of the unconsumed data. */
void sl_buf_consume(struct sl_buf *b, size_t n);
/* Move unconsumed data to the front, so off == 0. */
void sl_buf_compact(struct sl_buf *b);
/* Forget all data, keep the storage. */
void sl_buf_reset(struct sl_buf *b);
void sl_buf_free(struct sl_buf *b);

static inline size_t sl_buf_avail(const struct sl_buf *b)
{
	return b->len - b->off;
}

static inline char *sl_buf_head(const struct sl_buf *b)
{
	return b->data ? b->data + b->off : NULL;
}

#endif
