/*
 * test_link_check.c — outbound link checking's sans-I/O half: URL host
 * extraction (quoted-printable soft breaks, HTML, base64 parts, case,
 * ports, userinfo tricks, bounds), local blocklists, URI blocklist query
 * names and DNS blocklist answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "err.h"
#include "link_check.h"

static struct link_scan *scan_msg(const char *msg, size_t max_scan, size_t max_hosts)
{
	static struct link_scan s;
	static char scratch[1 << 16];

	link_scan_init(&s, max_hosts);
	link_scan_message(&s, msg, strlen(msg), max_scan, scratch);
	return &s;
}

static void has(const struct link_scan *s, const char *host)
{
	for (size_t i = 0; i < s->n_hosts; i++)
		if (!strcmp(s->hosts[i], host))
			return;
	fail_msg("host %s not found (%zu hosts)", host, s->n_hosts);
}

static void test_plain(void **state)
{
	struct link_scan *s;

	(void)state;
	s = scan_msg("From: a@acme.test\r\nSubject: hi\r\n\r\n"
		     "see http://Shop.Example.TEST:8080/x?y and HTTPS://www.evil.test./path\r\n"
		     "and www.bare.test, again http://shop.example.test/\r\n"
		     "not this: mailto:x@nohost.test or ftp://ftp.test/ or http://localhost/\r\n",
		     1 << 20, 20);
	assert_int_equal(s->n_hosts, 3);
	assert_string_equal(s->hosts[0], "shop.example.test");
	assert_string_equal(s->hosts[1], "www.evil.test");
	assert_string_equal(s->hosts[2], "www.bare.test");
	assert_false(s->truncated);
}

static void test_userinfo(void **state)
{
	struct link_scan *s;

	(void)state;
	s = scan_msg("\r\nclick http://good.test@bad.test/ or https://u:p@x.good.test:443/ "
		     "or http:\\\\back.test\\ or http://%65vil.test/\r\n",
		     1 << 20, 20);
	assert_int_equal(s->n_hosts, 4);
	assert_string_equal(s->hosts[0], "bad.test");
	assert_string_equal(s->hosts[1], "x.good.test");
	assert_string_equal(s->hosts[2], "back.test");
	assert_string_equal(s->hosts[3], "evil.test");
}

static void test_qp_soft_breaks(void **state)
{
	struct link_scan *s;

	(void)state;
	s = scan_msg("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		     "go to http://sp=\r\nlit.ev=\r\nil.test/a=3Db and http=3A//qp.test/\r\n",
		     1 << 20, 20);
	assert_int_equal(s->n_hosts, 2);
	assert_string_equal(s->hosts[0], "split.evil.test");
	assert_string_equal(s->hosts[1], "qp.test");
}

static void test_html_and_base64(void **state)
{
	struct link_scan *s;

	(void)state;
	/* "<a href=\"http://b64.evil.test/x\">x</a>" */
	s = scan_msg("MIME-Version: 1.0\r\n"
		     "Content-Type: multipart/alternative; boundary=\"BB\"\r\n\r\n"
		     "--BB\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
		     "<p><a HREF=\"https://Html.Test/x\">x</a><a href='http://q.test'>q</a></p>\r\n"
		     "--BB\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		     "PGEgaHJlZj0iaHR0cDovL2I2NC5ldmlsLnRlc3QveCI+eDwvYT4=\r\n"
		     "--BB\r\nContent-Type: image/png\r\n\r\nhttp://not-text.test/\r\n"
		     "--BB--\r\n",
		     1 << 20, 20);
	assert_int_equal(s->n_hosts, 3);
	has(s, "html.test");
	has(s, "q.test");
	has(s, "b64.evil.test");
}

static void test_bounds(void **state)
{
	char msg[4096];
	size_t o = 0;
	struct link_scan *s;

	(void)state;
	o += (size_t)snprintf(msg + o, sizeof msg - o, "\r\n");
	for (int i = 0; i < 30; i++)
		o += (size_t)snprintf(msg + o, sizeof msg - o, "http://h%d.test/ ", i);
	s = scan_msg(msg, 1 << 20, 5);
	assert_int_equal(s->n_hosts, 5);
	assert_true(s->truncated);
	/* only the first 40 decoded bytes are looked at */
	s = scan_msg(msg, 40, 50);
	assert_true(s->scanned <= 40);
	assert_true(s->n_hosts <= 3);
	/* a host cut off by the budget is only partly seen: never past it */
	for (size_t i = 0; i < s->n_hosts; i++)
		assert_non_null(strstr(msg, s->hosts[i]));
	/* too long to be a host */
	memset(msg, 'a', sizeof msg);
	memcpy(msg, "\r\nhttp://", 9);
	msg[sizeof msg - 1] = 0;
	s = scan_msg(msg, 1 << 20, 5);
	assert_int_equal(s->n_hosts, 0);
}

static void test_blocklist(void **state)
{
	static const char text[] = "# blocked\n"
				   "Evil.TEST\n"
				   "  *.wild.test  # comment\n"
				   ".dot.test\n"
				   "\n"
				   "evil.test\n";
	struct link_blocklist *bl;
	char err[256];

	(void)state;
	assert_int_equal(link_blocklist_parse("bl", text, strlen(text), &bl, err, sizeof err), 0);
	assert_int_equal(link_blocklist_count(bl), 3);
	assert_string_equal(link_blocklist_match(bl, "evil.test"), "evil.test");
	assert_string_equal(link_blocklist_match(bl, "a.b.evil.test"), "evil.test");
	assert_string_equal(link_blocklist_match(bl, "x.wild.test"), "wild.test");
	assert_string_equal(link_blocklist_match(bl, "dot.test"), "dot.test");
	assert_null(link_blocklist_match(bl, "notevil.test"));
	assert_null(link_blocklist_match(bl, "test"));
	assert_null(link_blocklist_match(NULL, "evil.test"));
	link_blocklist_free(bl);
	assert_int_equal(link_blocklist_parse("bl", "ok.test\nbad host.test\n", 22, &bl, err,
					      sizeof err),
			 SL_ECONFIG);
	assert_non_null(strstr(err, "bl:2:"));
	assert_int_equal(link_blocklist_load("/nonexistent/bl", &bl, err, sizeof err), -ENOENT);
}

static void test_uribl_name(void **state)
{
	char q[256];

	(void)state;
	assert_int_equal(link_uribl_name("www.evil.test", "uribl.test", q, sizeof q), 0);
	assert_string_equal(q, "evil.test.uribl.test");
	assert_int_equal(link_uribl_name("evil.test", "uribl.test", q, sizeof q), 0);
	assert_string_equal(q, "evil.test.uribl.test");
	assert_int_equal(link_uribl_name("203.0.113.5", "uribl.test", q, sizeof q), -EINVAL);
	assert_int_equal(link_uribl_name("localhost", "uribl.test", q, sizeof q), -EINVAL);
	assert_int_equal(link_uribl_name("a.evil.test", "uribl.test", q, 10), -EINVAL);
}

static void test_dns_verdict(void **state)
{
	uint32_t listed[] = { 0x7f000002 }, blocked[] = { 0x7fffff01 }, other[] = { 0x0a000001 },
		 mixed[] = { 0x7fffff01, 0x7f00000a };
	char code[32] = "";

	(void)state;
	assert_int_equal(link_dns_verdict(NULL, 0, code, sizeof code), LINK_DNS_CLEAN);
	assert_int_equal(link_dns_verdict(listed, 1, code, sizeof code), LINK_DNS_LISTED);
	assert_string_equal(code, "127.0.0.2");
	assert_int_equal(link_dns_verdict(blocked, 1, code, sizeof code), LINK_DNS_ERROR);
	assert_int_equal(link_dns_verdict(other, 1, code, sizeof code), LINK_DNS_ERROR);
	assert_int_equal(link_dns_verdict(mixed, 2, code, sizeof code), LINK_DNS_LISTED);
	assert_string_equal(code, "127.0.0.10");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),           cmocka_unit_test(test_userinfo),
		cmocka_unit_test(test_qp_soft_breaks),  cmocka_unit_test(test_html_and_base64),
		cmocka_unit_test(test_bounds),          cmocka_unit_test(test_blocklist),
		cmocka_unit_test(test_uribl_name),      cmocka_unit_test(test_dns_verdict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
