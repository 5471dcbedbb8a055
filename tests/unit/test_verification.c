/* test_verification.c — verify-by-email: requests, tokens, rate limits,
 * and verification_receive() with real SPF (libspf2) and DKIM (messages
 * signed by dataplane/dkim.c, the `sluicectl dkim sign` path, verified by
 * libopendkim), DNS answered by libunbound from local data; a forged From
 * fails; the webhook reaches a local HTTP receiver with a valid HMAC. */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dkim.h"
#include "dkim_check.h"
#include "err.h"
#include "store.h"
#include "verification.h"

struct fx {
	char dir[64];
	struct store *st;
	char *rr[8];
	const char *data[12];
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static char *txt_rr(const char *name, const char *value)
{
	char *out = malloc(strlen(name) + strlen(value) * 2 + 64);
	size_t o, n = strlen(value);

	o = (size_t)sprintf(out, "%s. TXT", name);
	for (size_t i = 0; i < n; i += 255)
		o += (size_t)sprintf(out + o, " \"%.*s\"", (int)(n - i < 255 ? n - i : 255), value + i);
	return out;
}

static uint64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Keys for acme.test and evil.test, in f->dir; their records in f->data. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct store_tenant t = { .name = "acme" };
	struct sl_buf rec = { 0 };
	char path[128];
	const char *doms[] = { "acme.test", "evil.test" };
	size_t n = 0;

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/sluice-test-verif-XXXXXX");
	if (!mkdtemp(f->dir) || store_open(f->dir, 0, false, &f->st) != 0 ||
	    store_tenant_create(f->st, &t, "test", NULL) != 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		char name[128];

		snprintf(path, sizeof path, "%s/%s.pem", f->dir, doms[i]);
		if (dkim_keygen(DKIM_ALGO_RSA_SHA256, path) < 0 || dkim_dns_record(path, &rec) < 0 ||
		    sl_buf_append(&rec, "", 1) < 0)
			return -1;
		snprintf(name, sizeof name, "s1._domainkey.%s", doms[i]);
		f->rr[n++] = txt_rr(name, sl_buf_head(&rec));
		sl_buf_reset(&rec);
	}
	sl_buf_free(&rec);
	f->rr[n++] = txt_rr("acme.test", "v=spf1 ip4:198.51.100.7 -all");
	f->rr[n++] = txt_rr("evil.test", "v=spf1 ip4:198.51.100.66 -all");
	f->data[0] = "local-zone test. static";
	for (size_t i = 0; i < n; i++)
		f->data[i + 1] = f->rr[i];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	for (int i = 0; f->rr[i]; i++)
		free(f->rr[i]);
	free(f);
	return 0;
}

static struct verification *make(struct fx *f, const char *url, unsigned per_source)
{
	struct verification_config c = {
		.store = f->st,
		.domain = "verify.sluice.test",
		.dns_local_data = f->data,
		.per_source_hour = per_source,
		.webhook_url = url,
		.webhook_secret = "s3cret",
		.webhook_attempts = 2,
	};
	struct verification *v;

	assert_int_equal(verification_create(&c, &v), 0);
	return v;
}

static struct sockaddr_in ip4(const char *a)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(25) };

	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

/* A message From from; signed by sign_domain's key (NULL: unsigned). */
static char *message(struct fx *f, const char *from, const char *sign_domain)
{
	char *m;
	struct sl_buf sig = { 0 };

	assert_true(asprintf(&m,
			     "From: User <%s>\r\nTo: verify@verify.sluice.test\r\n"
			     "Subject: verify me\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
			     "Message-ID: <1@x>\r\n\r\nhello\r\n",
			     from) > 0);
	if (sign_domain) {
		struct dkim_signer *s = dkim_signer_create();
		char path[128], *out;

		snprintf(path, sizeof path, "%s/%s.pem", f->dir, sign_domain);
		assert_int_equal(dkim_signer_add_key(s, sign_domain, "s1", DKIM_ALGO_AUTO, path), 0);
		assert_int_equal(dkim_signer_sign(s, sign_domain, m, strlen(m), &sig), 0);
		assert_true(asprintf(&out, "%.*s%s", (int)sl_buf_avail(&sig), sl_buf_head(&sig), m) > 0);
		free(m);
		m = out;
		dkim_signer_destroy(s);
		sl_buf_free(&sig);
	}
	return m;
}

static void test_request(void **state)
{
	struct fx *f = *state;
	struct verification *v = make(f, NULL, 2);
	struct verification_request r, g;

	assert_int_equal(verification_request(v, "acme", "User@Acme.test", "10.0.0.1", now_ms(), &r),
			 0);
	assert_string_equal(r.address, "user@acme.test");
	assert_int_equal(strlen(r.token), VERIFICATION_TOKEN_LEN);
	assert_true(!strncmp(r.write_to, "verify+", 7));
	assert_non_null(strstr(r.write_to, "@verify.sluice.test"));
	assert_true(verification_is_recipient(v, r.write_to));
	assert_false(verification_is_recipient(v, "verify+abc@verify.sluice.test"));
	assert_false(verification_is_recipient(v, "postmaster@verify.sluice.test"));
	assert_int_equal(verification_get(v, "acme", "user@acme.test", &g), 0);
	assert_string_equal(g.token, r.token);
	assert_int_equal(verification_request(v, "acme", "not-an-address", NULL, now_ms(), &r),
			 -EINVAL);
	assert_int_equal(verification_request(v, "nobody", "a@b.test", NULL, now_ms(), &r),
			 SL_ENOTFOUND);
	/* per source: 2 an hour */
	assert_int_equal(verification_request(v, "acme", "b@acme.test", "10.0.0.1", now_ms(), &r), 0);
	assert_int_equal(verification_request(v, "acme", "c@acme.test", "10.0.0.1", now_ms(), &r),
			 -EAGAIN);
	assert_int_equal(verification_request(v, "acme", "c@acme.test", "10.0.0.2", now_ms(), &r), 0);
	verification_destroy(v);
}

static void test_receive_spf_dkim_forged(void **state)
{
	struct fx *f = *state;
	struct verification *v = make(f, NULL, 0);
	struct verification_request r;
	struct sockaddr_in good = ip4("198.51.100.7"), bad = ip4("198.51.100.8");
	char why[512], *m;

	/* aligned SPF pass */
	assert_int_equal(verification_request(v, "acme", "user@acme.test", NULL, now_ms(), &r), 0);
	m = message(f, "user@acme.test", NULL);
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&good,
					      "mx.acme.test", "bounce@acme.test", why, sizeof why),
			 0);
	free(m);
	assert_int_equal(verification_get(v, "acme", "user@acme.test", &r), 0);
	assert_true(r.verified_ms > 0);
	assert_string_equal(r.method, "spf");

	/* SPF fails (wrong IP), no signature: refused */
	assert_int_equal(verification_request(v, "acme", "two@acme.test", NULL, now_ms(), &r), 0);
	m = message(f, "two@acme.test", NULL);
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&bad,
					      "mx.acme.test", "two@acme.test", why, sizeof why),
			 -EPERM);
	assert_non_null(strstr(why, "fail"));
	free(m);

	/* SPF passes for evil.test but From is acme.test: not aligned, refused */
	{
		struct sockaddr_in evil = ip4("198.51.100.66");

		m = message(f, "two@acme.test", "evil.test"); /* valid, but d=evil.test */
		assert_int_equal(verification_receive(v, r.write_to, m, strlen(m),
						      (struct sockaddr *)&evil, "evil.test",
						      "x@evil.test", why, sizeof why),
				 -EPERM);
		free(m);
	}

	/* From is not the address asked for */
	m = message(f, "other@acme.test", "acme.test");
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&bad,
					      "h", "", why, sizeof why),
			 -EPERM);
	assert_non_null(strstr(why, "From is not"));
	free(m);

	/* tampered after signing */
	m = message(f, "two@acme.test", "acme.test");
	m[strlen(m) - 3] = 'X';
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&bad,
					      "h", "", why, sizeof why),
			 -EPERM);
	free(m);

	/* aligned DKIM, SPF failing: verified by dkim */
	m = message(f, "two@acme.test", "acme.test");
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&bad,
					      "h", "two@acme.test", why, sizeof why),
			 0);
	free(m);
	assert_int_equal(verification_get(v, "acme", "two@acme.test", &r), 0);
	assert_string_equal(r.method, "dkim");

	/* unknown token, expired request */
	assert_int_equal(verification_receive(v, "verify+aaaaaaaaaaaaaaaaaaaaaaaa@verify.sluice.test",
					      "From: a@b.test\r\n\r\n", 18, (struct sockaddr *)&good,
					      "h", "", why, sizeof why),
			 SL_ENOTFOUND);
	assert_int_equal(verification_request(v, "acme", "old@acme.test", NULL,
					      now_ms() - 48ull * 3600 * 1000, &r), 0);
	m = message(f, "old@acme.test", "acme.test");
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&good,
					      "h", "old@acme.test", why, sizeof why),
			 SL_ENOTFOUND);
	free(m);
	verification_destroy(v);
}

/* --- webhook receiver ----------------------------------------------------- */

struct receiver {
	int fd;
	char req[8192];
	size_t len;
};

static void *receiver_main(void *arg)
{
	struct receiver *rc = arg;
	int c = accept(rc->fd, NULL, NULL);
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

	if (c < 0)
		return NULL;
	/* read headers and the body (Content-Length) */
	for (int i = 0; i < 100 && rc->len < sizeof rc->req - 1; i++) {
		ssize_t n = read(c, rc->req + rc->len, sizeof rc->req - 1 - rc->len);
		char *hdr_end, *cl;

		if (n <= 0)
			break;
		rc->len += (size_t)n;
		rc->req[rc->len] = 0;
		if ((hdr_end = strstr(rc->req, "\r\n\r\n")) &&
		    (cl = strcasestr(rc->req, "Content-Length:")) &&
		    rc->len >= (size_t)(hdr_end + 4 - rc->req) + strtoul(cl + 15, NULL, 10))
			break;
	}
	if (write(c, ok, strlen(ok)) < 0)
		rc->len = 0;
	close(c);
	return NULL;
}

static void test_webhook(void **state)
{
	struct fx *f = *state;
	struct receiver rc = { 0 };
	struct sockaddr_in a = ip4("127.0.0.1");
	socklen_t al = sizeof a;
	pthread_t th;
	char url[64], why[256], *m, *body, *sig, hex[65];
	struct verification *v;
	struct verification_request r;
	struct sockaddr_in good = ip4("198.51.100.7");
	unsigned delivered = 0, failed = 0;
	unsigned char mac[32];
	unsigned int maclen;

	a.sin_port = 0;
	rc.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(rc.fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(rc.fd, 4), 0);
	getsockname(rc.fd, (struct sockaddr *)&a, &al);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", ntohs(a.sin_port));
	pthread_create(&th, NULL, receiver_main, &rc);

	v = make(f, url, 0);
	assert_int_equal(verification_request(v, "acme", "user@acme.test", NULL, now_ms(), &r), 0);
	m = message(f, "user@acme.test", NULL);
	assert_int_equal(verification_receive(v, r.write_to, m, strlen(m), (struct sockaddr *)&good,
					      "mx.acme.test", "user@acme.test", why, sizeof why),
			 0);
	free(m);
	for (int i = 0; i < 200 && delivered + failed == 0; i++) {
		usleep(50 * 1000);
		verification_stats(v, &delivered, &failed);
	}
	assert_int_equal(delivered, 1);
	verification_destroy(v);
	pthread_join(th, NULL);
	close(rc.fd);

	body = strstr(rc.req, "\r\n\r\n");
	sig = strcasestr(rc.req, "X-Sluice-Signature: sha256=");
	assert_non_null(body);
	assert_non_null(sig);
	body += 4;
	assert_non_null(strstr(body, "\"address\":\"user@acme.test\""));
	HMAC(EVP_sha256(), "s3cret", 6, (unsigned char *)body, strlen(body), mac, &maclen);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	assert_memory_equal(sig + 27, hex, 64);
}

static void test_alignment(void **state)
{
	(void)state;
	assert_true(dkim_check_domains_aligned("acme.test", "mail.acme.test"));
	assert_true(dkim_check_domains_aligned("a.acme.test", "b.acme.test"));
	assert_false(dkim_check_domains_aligned("acme.test", "evil.test"));
	assert_true(dkim_check_domains_aligned("x.acme.co.uk", "acme.co.uk"));
	assert_false(dkim_check_domains_aligned("acme.co.uk", "evil.co.uk"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_spf_dkim_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook, setup, teardown),
		cmocka_unit_test(test_alignment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
