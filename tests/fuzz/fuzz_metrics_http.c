/*
 * fuzz_metrics_http.c — the /metrics request parser (metrics_http_respond).
 *
 * Checks beyond memory safety: the result is one of {SL_ETOOBIG, 0, 1}
 * (allocations do not fail here); 0 and SL_ETOOBIG leave out untouched; 1 writes one
 * well-formed HTTP/1.0 response whose Content-Length matches its body; and
 * feeding the input in two pieces never answers earlier than feeding it
 * whole would (a prefix may only answer what the whole input answers).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"

static struct metrics *m;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (metrics_create(&m))
		abort();
	*metrics_counter(m, "sluice_delivered_total", "Delivered.", "tenant=\"acme\"") = 7;
	*metrics_gauge(m, "sluice_queue_depth", "Waiting.\nNow.", "") = -1;
	return 0;
}

static void check_response(const struct sl_buf *out)
{
	const char *p = sl_buf_head(out), *end = p + sl_buf_avail(out), *body, *cl;
	unsigned long len;

	if (sl_buf_avail(out) < 12 || memcmp(p, "HTTP/1.0 ", 9) != 0)
		abort();
	body = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
	cl = memmem(p, (size_t)(end - p), "\r\nContent-Length: ", 18);
	if (!body || !cl || cl > body)
		abort();
	len = strtoul(cl + 18, NULL, 10);
	if ((size_t)(end - (body + 4)) != len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_buf whole = { 0 }, part = { 0 };
	const char *req = (const char *)data;
	size_t cut = size ? data[0] % (size + 1) : 0;
	int rc, rc_part;

	rc = metrics_http_respond(m, req, size, &whole);
	if (rc != 0 && rc != 1 && rc != SL_ETOOBIG)
		abort();
	if (rc == 1)
		check_response(&whole);
	else if (sl_buf_avail(&whole) != 0)
		abort();

	/* A prefix is either still incomplete or already has the same answer. */
	rc_part = metrics_http_respond(m, req, cut, &part);
	if (rc_part == 1 && (rc != 1 || sl_buf_avail(&part) != sl_buf_avail(&whole) ||
			     memcmp(sl_buf_head(&part), sl_buf_head(&whole), sl_buf_avail(&part))))
		abort();
	if (rc_part == SL_ETOOBIG && rc != SL_ETOOBIG)
		abort();

	sl_buf_free(&whole);
	sl_buf_free(&part);
	return 0;
}
