/* test_metrics.c — Prometheus exposition and /metrics responder (dataplane/metrics.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "metrics.h"

static const char *str(struct sl_buf *b)
{
	assert_int_equal(sl_buf_reserve(b, 1), 0);
	b->data[b->len] = '\0';
	return sl_buf_head(b);
}

static void test_render(void **state)
{
	struct sl_buf out = { 0 };
	struct metrics *m;
	uint64_t *c1, *c2, *c3;
	int64_t *g;

	(void)state;
	assert_int_equal(metrics_create(&m), 0);
	assert_int_equal(metrics_render(m, &out), 0);
	assert_string_equal(str(&out), "");

	/* Created out of order; rendered sorted by name, then labels. */
	g = metrics_gauge(m, "sluice_queue_depth", "Messages waiting.", "");
	c1 = metrics_counter(m, "sluice_delivered_total", "Recipients delivered.",
			     "tenant=\"zeta\",stream=\"marketing\"");
	c2 = metrics_counter(m, "sluice_delivered_total", "ignored: first help wins",
			     "tenant=\"acme\",stream=\"transactional\"");
	c3 = metrics_counter(m, "sluice_bounced_total", NULL, NULL);
	assert_non_null(g);
	assert_non_null(c1);
	assert_non_null(c2);
	assert_non_null(c3);
	*c1 += 5;
	*c2 = UINT64_MAX;
	*g = -3;
	/* Same name and labels: the same value. */
	assert_ptr_equal(metrics_counter(m, "sluice_delivered_total", NULL,
					 "tenant=\"zeta\",stream=\"marketing\""),
			 c1);
	assert_ptr_equal(metrics_counter(m, "sluice_bounced_total", NULL, ""), c3);

	assert_int_equal(metrics_render(m, &out), 0);
	assert_string_equal(str(&out),
			    "# TYPE sluice_bounced_total counter\n"
			    "sluice_bounced_total 0\n"
			    "# HELP sluice_delivered_total Recipients delivered.\n"
			    "# TYPE sluice_delivered_total counter\n"
			    "sluice_delivered_total{tenant=\"acme\",stream=\"transactional\"} "
			    "18446744073709551615\n"
			    "sluice_delivered_total{tenant=\"zeta\",stream=\"marketing\"} 5\n"
			    "# HELP sluice_queue_depth Messages waiting.\n"
			    "# TYPE sluice_queue_depth gauge\n"
			    "sluice_queue_depth -3\n");
	sl_buf_free(&out);
	metrics_destroy(m);
	metrics_destroy(NULL);
}

static void test_escaping(void **state)
{
	struct sl_buf out = { 0 }, labels = { 0 };
	struct metrics *m;

	(void)state;
	sl_buf_append(&labels, "tenant=\"", 8);
	assert_int_equal(metrics_label_escape(&labels, "a\"b\\c\nd"), 0);
	sl_buf_append(&labels, "\"", 2); /* with the NUL */
	assert_string_equal(sl_buf_head(&labels), "tenant=\"a\\\"b\\\\c\\nd\"");

	assert_int_equal(metrics_create(&m), 0);
	assert_non_null(metrics_gauge(m, "g", "a \"quoted\" \\ help\nline two",
				      sl_buf_head(&labels)));
	assert_int_equal(metrics_render(m, &out), 0);
	assert_string_equal(str(&out), "# HELP g a \"quoted\" \\\\ help\\nline two\n"
				       "# TYPE g gauge\n"
				       "g{tenant=\"a\\\"b\\\\c\\nd\"} 0\n");
	sl_buf_free(&out);
	sl_buf_free(&labels);
	metrics_destroy(m);
}

static void test_invalid(void **state)
{
	static const char *const bad_names[] = { "", "1abc", "a-b", "a b", "é" };
	static const char *const bad_labels[] = {
		"a=1",       "a=\"x",        "a=\"x\",",     "1a=\"x\"",    "a=\"x\\q\"",
		"a=\"x\"b=\"y\"", "=\"x\"",  "a\"x\"",       "a=\"x\ny\"",  ",a=\"x\"",
		"a=\"x\\\"",  "a-b=\"x\"",   "a=\"x\" ",
	};
	struct metrics *m;
	size_t i;

	(void)state;
	assert_int_equal(metrics_create(&m), 0);
	for (i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		errno = 0;
		assert_null(metrics_counter(m, bad_names[i], NULL, ""));
		assert_int_equal(errno, EINVAL);
	}
	for (i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
		errno = 0;
		assert_null(metrics_counter(m, "ok", NULL, bad_labels[i]));
		assert_int_equal(errno, EINVAL);
	}
	/* Valid oddities. */
	assert_non_null(metrics_counter(m, "ns:sub_x9", NULL, "_a1=\"\",b=\"\\\\\\n\\\"\""));
	assert_non_null(metrics_counter(m, "_x", NULL, "a=\"\xc3\xa9,=\\\"\""));

	/* A name keeps its type. */
	assert_non_null(metrics_counter(m, "typed", NULL, "a=\"1\""));
	errno = 0;
	assert_null(metrics_gauge(m, "typed", NULL, "a=\"1\""));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(metrics_gauge(m, "typed", NULL, "a=\"2\""));
	assert_int_equal(errno, EINVAL);
	metrics_destroy(m);
}

/* Pointers survive the table growing; every series renders once. */
static void test_many_series(void **state)
{
	enum { FAMILIES = 7, PER = 3000 };
	static uint64_t *ptr[FAMILIES][PER];
	struct sl_buf out = { 0 }, lbl = { 0 };
	char name[32];
	struct metrics *m;
	size_t lines = 0, i, f;
	const char *p;

	(void)state;
	assert_int_equal(metrics_create(&m), 0);
	for (i = 0; i < PER; i++) {
		for (f = 0; f < FAMILIES; f++) {
			snprintf(name, sizeof name, "fam_%zu_total", f);
			sl_buf_reset(&lbl);
			assert_int_equal(sl_buf_appendf(&lbl, "ip=\"198.51.100.%zu\",n=\"%zu\"",
							i % 256, i),
					 0);
			sl_buf_append(&lbl, "", 1);
			ptr[f][i] = metrics_counter(m, name, "h", sl_buf_head(&lbl));
			assert_non_null(ptr[f][i]);
			assert_int_equal((uintptr_t)ptr[f][i] % 64, 0);
			*ptr[f][i] = f * PER + i;
		}
	}
	for (i = 0; i < PER; i++) {
		for (f = 0; f < FAMILIES; f++) {
			snprintf(name, sizeof name, "fam_%zu_total", f);
			sl_buf_reset(&lbl);
			sl_buf_appendf(&lbl, "ip=\"198.51.100.%zu\",n=\"%zu\"", i % 256, i);
			sl_buf_append(&lbl, "", 1);
			assert_ptr_equal(metrics_counter(m, name, NULL, sl_buf_head(&lbl)),
					 ptr[f][i]);
			assert_int_equal(*ptr[f][i], f * PER + i);
		}
	}
	assert_int_equal(metrics_render(m, &out), 0);
	for (p = str(&out); *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, FAMILIES * (PER + 2));
	assert_non_null(strstr(str(&out), "fam_6_total{ip=\"198.51.100.183\",n=\"2999\"} 20999\n"));
	sl_buf_free(&out);
	sl_buf_free(&lbl);
	metrics_destroy(m);
}

/* --- HTTP ----------------------------------------------------------------- */

static struct metrics *http_metrics(void)
{
	struct metrics *m;

	assert_int_equal(metrics_create(&m), 0);
	*metrics_counter(m, "sluice_up_total", "Up.", "") = 1;
	return m;
}

static int respond(struct metrics *m, const char *req, struct sl_buf *out)
{
	sl_buf_reset(out);
	return metrics_http_respond(m, req, strlen(req), out);
}

static void test_http_ok(void **state)
{
	static const char *const reqs[] = {
		("GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: Prometheus/2.45\r\n"
		 "Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n"),
		"GET /metrics HTTP/1.0\r\n\r\n",
		"GET /metrics?name[]=up HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/1.1\nHost: x\n\n",           /* bare LF */
		"\r\nGET /metrics HTTP/1.1\r\nX-Empty:\r\n\r\n", /* leading CRLF */
	};
	struct sl_buf out = { 0 }, body = { 0 };
	struct metrics *m = http_metrics();
	char want[512];
	size_t i;

	(void)state;
	assert_int_equal(metrics_render(m, &body), 0);
	snprintf(want, sizeof want,
		 "HTTP/1.0 200 OK\r\n"
		 "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		 "Content-Length: %zu\r\n"
		 "Connection: close\r\n"
		 "\r\n"
		 "%s",
		 sl_buf_avail(&body), str(&body));
	for (i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		assert_int_equal(respond(m, reqs[i], &out), 1);
		assert_string_equal(str(&out), want);
	}

	/* Appends after what out already holds, consumed bytes and all. */
	sl_buf_reset(&out);
	sl_buf_append(&out, "abcdef", 6);
	sl_buf_consume(&out, 3);
	assert_int_equal(metrics_http_respond(m, reqs[1], strlen(reqs[1]), &out), 1);
	assert_int_equal(strncmp(str(&out), "def", 3), 0);
	assert_string_equal(str(&out) + 3, want);

	sl_buf_free(&out);
	sl_buf_free(&body);
	metrics_destroy(m);
}

/* Every strict prefix of a good request asks for more and writes nothing. */
static void test_http_partial(void **state)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: localhost:9090\r\n\r\n";
	struct sl_buf out = { 0 };
	struct metrics *m = http_metrics();
	size_t n;

	(void)state;
	for (n = 0; n < sizeof req - 1; n++) {
		assert_int_equal(metrics_http_respond(m, req, n, &out), 0);
		assert_int_equal(sl_buf_avail(&out), 0);
	}
	assert_int_equal(metrics_http_respond(m, req, n, &out), 1);
	sl_buf_free(&out);
	metrics_destroy(m);
}

static void test_http_errors(void **state)
{
	struct sl_buf out = { 0 };
	struct metrics *m = http_metrics();

	(void)state;
	assert_int_equal(respond(m, "GET /foo HTTP/1.1\r\n\r\n", &out), 1);
	assert_string_equal(str(&out), "HTTP/1.0 404 Not Found\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 10\r\n"
				       "Connection: close\r\n"
				       "\r\n"
				       "not found\n");
	assert_int_equal(respond(m, "GET /metricsx HTTP/1.1\r\n\r\n", &out), 1);
	assert_memory_equal(str(&out), "HTTP/1.0 404 ", 13);
	assert_int_equal(respond(m, "GET / HTTP/1.1\r\n\r\n", &out), 1);
	assert_memory_equal(str(&out), "HTTP/1.0 404 ", 13);

	assert_int_equal(respond(m, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &out),
			 1);
	assert_string_equal(str(&out), "HTTP/1.0 405 Method Not Allowed\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 19\r\n"
				       "Allow: GET\r\n"
				       "Connection: close\r\n"
				       "\r\n"
				       "method not allowed\n");
	assert_int_equal(respond(m, "get /metrics HTTP/1.1\r\n\r\n", &out), 1);
	assert_memory_equal(str(&out), "HTTP/1.0 405 ", 13);
	assert_int_equal(respond(m, "HEAD /metrics HTTP/1.1\r\n\r\n", &out), 1);
	assert_memory_equal(str(&out), "HTTP/1.0 405 ", 13);

	static const char *const junk[] = {
		"\x16\x03\x01\x02\x00",                     /* TLS hello: at once */
		"GET\r\n\r\n",
		"GET /metrics\r\n\r\n",                     /* HTTP/0.9 */
		"GET /metrics HTTP/2.0\r\n\r\n",
		"GET /metrics HTTP/1.1 \r\n\r\n",
		"GET  /metrics HTTP/1.1\r\n\r\n",
		"GET /met\x01rics HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
		"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nA b: c\r\n\r\n",
		"\rGET /metrics HTTP/1.1\r\n\r\n",
		"G\xc3\xa9T",
	};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		assert_int_equal(respond(m, junk[i], &out), 1);
		assert_memory_equal(str(&out), "HTTP/1.0 400 Bad Request\r\n", 26);
	}
	/* A NUL inside the request line. */
	sl_buf_reset(&out);
	assert_int_equal(metrics_http_respond(m, "GET /\0 HTTP/1.1\r\n\r\n", 19, &out), 1);
	assert_memory_equal(str(&out), "HTTP/1.0 400 ", 13);

	sl_buf_free(&out);
	metrics_destroy(m);
}

static void test_http_too_long(void **state)
{
	struct sl_buf out = { 0 };
	struct metrics *m = http_metrics();
	size_t n = METRICS_HTTP_MAX_REQUEST + 100, hdr;
	char *req = malloc(n);

	(void)state;
	assert_non_null(req);
	memset(req, 'a', n);
	hdr = strlen("GET /metrics HTTP/1.1\r\nX: ");
	memcpy(req, "GET /metrics HTTP/1.1\r\nX: ", hdr);
	assert_int_equal(metrics_http_respond(m, req, METRICS_HTTP_MAX_REQUEST - 1, &out), 0);
	assert_int_equal(metrics_http_respond(m, req, METRICS_HTTP_MAX_REQUEST, &out), SL_ETOOBIG);
	assert_int_equal(metrics_http_respond(m, req, n, &out), SL_ETOOBIG);
	assert_int_equal(sl_buf_avail(&out), 0);

	/* A head that ends exactly at the limit is fine, whatever follows. */
	memcpy(req + METRICS_HTTP_MAX_REQUEST - 4, "\r\n\r\n", 4);
	assert_int_equal(metrics_http_respond(m, req, n, &out), 1);
	assert_memory_equal(str(&out), "HTTP/1.0 200 OK\r\n", 17);
	/* One byte later is too long. */
	memset(req + METRICS_HTTP_MAX_REQUEST - 4, 'a', 4);
	memcpy(req + METRICS_HTTP_MAX_REQUEST - 3, "\r\n\r\n", 4);
	sl_buf_reset(&out);
	assert_int_equal(metrics_http_respond(m, req, n, &out), SL_ETOOBIG);
	free(req);
	sl_buf_free(&out);
	metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_many_series),
		cmocka_unit_test(test_http_ok),
		cmocka_unit_test(test_http_partial),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_http_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
