/*
 * metrics.h — counters and gauges in the Prometheus text exposition
 * format 0.0.4, and a sans-I/O responder for the HTTP /metrics endpoint.
 *
 * A series is a metric name plus a pre-rendered label string such as
 * `tenant="acme",stream="marketing"` ("" or NULL for none). Looking one up
 * creates it on first use and returns a pointer to its value that stays
 * valid until metrics_destroy(): hot paths look a series up once and then
 * increment through the pointer. Every value sits on its own cache line, so
 * per-worker series (a worker="N" label) never share one.
 *
 * Ownership and threads: struct metrics owns every series and copies the
 * names, help texts and labels it is given. Creating series and rendering
 * must happen on one thread (or under the caller's lock). Values are read
 * with relaxed atomic loads while rendering, so a value written by one
 * thread, or updated with __atomic_fetch_add(p, n, __ATOMIC_RELAXED) by
 * several, may be rendered from another.
 *
 * Rendering is deterministic: families sorted by name, series within a
 * family sorted by their label string, "# HELP" (when a help text was
 * given) and "# TYPE" once before each family's series. The same labels in
 * another order make another series, so callers render them in a fixed
 * order.
 *
 * Errors: lookups return NULL and set errno: EINVAL for an invalid metric
 * name or label string, or a name already used with the other type; ENOMEM.
 * The int functions return 0 or -ENOMEM (and SL_ETOOBIG, see below).
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The longest request head (request line and headers) the responder reads. */
#define METRICS_HTTP_MAX_REQUEST 8192

struct metrics;

int metrics_create(struct metrics **out);
/* Free every series; all value pointers become invalid. NULL is a no-op. */
void metrics_destroy(struct metrics *m);

/*
 * Find or create a series. name must match [a-zA-Z_:][a-zA-Z0-9_:]*;
 * labels is "" / NULL or name="value" pairs joined by ',' with values
 * escaped as by metrics_label_escape() and no trailing comma. help is kept
 * from the family's first series (NULL for none). New values start at 0.
 */
uint64_t *metrics_counter(struct metrics *m, const char *name, const char *help,
			  const char *labels);
int64_t *metrics_gauge(struct metrics *m, const char *name, const char *help,
		       const char *labels);

/* Append value to out escaped for a label value: \ " and newline get a backslash. */
int metrics_label_escape(struct sl_buf *out, const char *value);

/* Append the whole exposition (see above) to out. */
int metrics_render(const struct metrics *m, struct sl_buf *out);

/*
 * Answer one HTTP request for the metrics endpoint. request/len are the
 * bytes received so far on the connection. Returns 1 when a whole request
 * head was read and a complete HTTP/1.0 response was appended to out (the
 * caller sends it and closes): 200 with the exposition for GET /metrics
 * (a query string is ignored), 404 for another path, 405 for another
 * method, 400 for anything malformed (sent as soon as the malformation is
 * seen, without waiting for the rest). Returns 0 when more bytes are
 * needed (out untouched), SL_ETOOBIG when no head ended within
 * METRICS_HTTP_MAX_REQUEST bytes (the caller closes), -ENOMEM.
 */
int metrics_http_respond(const struct metrics *m, const char *request, size_t len,
			 struct sl_buf *out);

#endif
