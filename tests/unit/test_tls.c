/* test_tls.c — a client and a server tls_conn talking purely in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "tls.h"

static char dir[64];
static char cert_path[128], key_path[128], other_cert[128], other_key[128];

struct pair {
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *srv, *cli;
	struct sl_buf wire; /* scratch for ciphertext in flight */
};

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/sluice-test-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	snprintf(other_cert, sizeof other_cert, "%s/other.pem", dir);
	snprintf(other_key, sizeof other_key, "%s/other.key", dir);
	if (tls_generate_self_signed(cert_path, key_path, "mx.test.example") != 0)
		return -1;
	if (tls_generate_self_signed(other_cert, other_key, "mx.test.example") != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(cert_path);
	unlink(key_path);
	unlink(other_cert);
	unlink(other_key);
	rmdir(dir);
	return 0;
}

/* Move one side's pending ciphertext into the other side's input. */
static int move(struct pair *p, struct tls_conn *from, struct tls_conn *to)
{
	int n;

	sl_buf_reset(&p->wire);
	n = tls_conn_pending_output(from, &p->wire);
	assert_true(n >= 0);
	if (n > 0)
		assert_int_equal(tls_conn_feed(to, sl_buf_head(&p->wire), (size_t)n), 0);
	return n;
}

/* Run both handshakes to completion; returns the first error or 1. */
static int pump_handshake(struct pair *p)
{
	int cs = 0, ss = 0;

	for (int i = 0; i < 20; i++) {
		if (cs != 1) {
			cs = tls_conn_handshake(p->cli);
			if (cs < 0)
				return cs;
		}
		move(p, p->cli, p->srv);
		if (ss != 1) {
			ss = tls_conn_handshake(p->srv);
			if (ss < 0) {
				move(p, p->srv, p->cli); /* the alert */
				return ss;
			}
		}
		move(p, p->srv, p->cli);
		if (cs == 1 && ss == 1)
			return 1;
	}
	fail_msg("handshake did not converge");
	return 0;
}

static void pair_open(struct pair *p, bool verify, const char *ca)
{
	memset(p, 0, sizeof *p);
	assert_int_equal(tls_ctx_server_create(cert_path, key_path, &p->sctx), 0);
	assert_int_equal(tls_ctx_client_create(verify, ca, &p->cctx), 0);
}

static void pair_conns(struct pair *p, const char *host)
{
	assert_int_equal(tls_conn_create(p->sctx, true, NULL, &p->srv), 0);
	assert_int_equal(tls_conn_create(p->cctx, false, host, &p->cli), 0);
}

static void pair_close(struct pair *p)
{
	tls_conn_destroy(p->cli);
	tls_conn_destroy(p->srv);
	tls_ctx_destroy(p->cctx);
	tls_ctx_destroy(p->sctx);
	sl_buf_free(&p->wire);
}

static void test_handshake_tls13(void **state)
{
	struct pair p;

	(void)state;
	pair_open(&p, true, cert_path);
	pair_conns(&p, "mx.test.example.");
	assert_int_equal(pump_handshake(&p), 1);
	assert_string_equal(tls_conn_version(p.cli), "TLSv1.3");
	assert_string_equal(tls_conn_version(p.srv), "TLSv1.3");
	assert_string_equal(tls_conn_cipher(p.cli), tls_conn_cipher(p.srv));
	assert_true(strncmp(tls_conn_cipher(p.cli), "TLS_", 4) == 0);
	assert_true(tls_conn_peer_verified(p.cli));
	assert_false(tls_conn_peer_verified(p.srv));
	assert_int_equal(tls_conn_verify_status(p.cli), TLS_VERIFY_OK);
	assert_int_equal(tls_conn_verify_status(p.srv), TLS_VERIFY_NO_CERT);
	pair_close(&p);
}

static void test_handshake_tls12(void **state)
{
	struct pair p;

	(void)state;
	pair_open(&p, true, cert_path);
	assert_int_equal(tls_ctx_set_versions(p.cctx, TLS_V13, TLS_V12), -EINVAL);
	assert_int_equal(tls_ctx_set_versions(p.cctx, TLS_V12, TLS_V12), 0);
	pair_conns(&p, "mx.test.example");
	assert_int_equal(pump_handshake(&p), 1);
	assert_string_equal(tls_conn_version(p.cli), "TLSv1.2");
	assert_string_equal(tls_conn_version(p.srv), "TLSv1.2");
	assert_string_equal(tls_conn_cipher(p.cli), "ECDHE-ECDSA-AES128-GCM-SHA256");
	assert_true(tls_conn_peer_verified(p.cli));
	pair_close(&p);
}

/* Send len bytes from one side to the other in writes of chunk bytes. */
static void transfer(struct pair *p, struct tls_conn *from, struct tls_conn *to,
		     const unsigned char *data, size_t len, size_t chunk)
{
	struct sl_buf got = { 0 };

	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		assert_int_equal(tls_conn_write(from, data + off, n), 0);
	}
	assert_true(move(p, from, to) > (int)len);
	while (sl_buf_avail(&got) < len) {
		int n = tls_conn_read(to, &got);

		assert_true(n > 0);
	}
	assert_int_equal(tls_conn_read(to, &got), 0);
	assert_int_equal(sl_buf_avail(&got), len);
	assert_memory_equal(sl_buf_head(&got), data, len);
	sl_buf_free(&got);
}

static void test_bulk_both_ways(void **state)
{
	const size_t len = 1 << 20;
	unsigned char *data = malloc(len);
	struct pair p;

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	pair_open(&p, false, NULL);
	pair_conns(&p, "mx.test.example");
	assert_int_equal(tls_conn_write(p.cli, "x", 1), -EAGAIN);
	assert_int_equal(pump_handshake(&p), 1);
	/* Not verified: the self-signed cert is not in the system store. */
	assert_false(tls_conn_peer_verified(p.cli));
	assert_int_equal(tls_conn_verify_status(p.cli), TLS_VERIFY_UNTRUSTED);
	transfer(&p, p.cli, p.srv, data, len, len);
	transfer(&p, p.srv, p.cli, data, len, len);
	transfer(&p, p.cli, p.srv, data, len, 70000);
	transfer(&p, p.srv, p.cli, data, len, 4096);

	/* close_notify */
	assert_false(tls_conn_peer_closed(p.srv));
	assert_int_equal(tls_conn_shutdown(p.cli), 0);
	assert_int_equal(tls_conn_write(p.cli, "x", 1), SL_ETLS);
	move(&p, p.cli, p.srv);
	{
		struct sl_buf got = { 0 };

		assert_int_equal(tls_conn_read(p.srv, &got), 0);
		sl_buf_free(&got);
	}
	assert_true(tls_conn_peer_closed(p.srv));
	pair_close(&p);
	free(data);
}

static void test_corrupt_record(void **state)
{
	struct sl_buf got = { 0 };
	char err[256];
	struct pair p;
	int n;

	(void)state;
	pair_open(&p, false, NULL);
	pair_conns(&p, "mx.test.example");
	assert_int_equal(pump_handshake(&p), 1);
	assert_int_equal(tls_conn_write(p.cli, "MAIL FROM:<a@b>\r\n", 17), 0);
	sl_buf_reset(&p.wire);
	n = tls_conn_pending_output(p.cli, &p.wire);
	assert_true(n > 20);
	p.wire.data[n - 5] ^= 0x40; /* inside the AEAD tag */
	assert_int_equal(tls_conn_feed(p.srv, p.wire.data, (size_t)n), 0);
	assert_int_equal(tls_conn_read(p.srv, &got), SL_ETLS);
	assert_int_equal(sl_buf_avail(&got), 0);
	assert_true(tls_last_error(err, sizeof err) > 0);
	assert_non_null(strstr(err, "read"));
	/* sticky */
	assert_int_equal(tls_conn_read(p.srv, &got), SL_ETLS);
	assert_int_equal(tls_conn_write(p.srv, "x", 1), SL_ETLS);
	/* the server has an alert to send */
	sl_buf_reset(&p.wire);
	assert_true(tls_conn_pending_output(p.srv, &p.wire) > 0);
	sl_buf_free(&got);
	pair_close(&p);
}

static void test_corrupt_handshake(void **state)
{
	struct pair p;
	int n, rc;

	(void)state;
	pair_open(&p, false, NULL);
	pair_conns(&p, "mx.test.example");
	assert_int_equal(tls_conn_handshake(p.cli), 0);
	sl_buf_reset(&p.wire);
	n = tls_conn_pending_output(p.cli, &p.wire);
	assert_true(n > 5);
	p.wire.data[0] = 0x42; /* not a TLS record type */
	assert_int_equal(tls_conn_feed(p.srv, p.wire.data, (size_t)n), 0);
	rc = tls_conn_handshake(p.srv);
	assert_int_equal(rc, SL_ETLS);
	assert_int_equal(tls_conn_handshake(p.srv), SL_ETLS);
	pair_close(&p);

	/* Garbage before any handshake, fed to the client. */
	pair_open(&p, false, NULL);
	pair_conns(&p, "mx.test.example");
	assert_int_equal(tls_conn_handshake(p.cli), 0);
	assert_int_equal(tls_conn_feed(p.cli, "220 not tls at all\r\n", 20), 0);
	assert_int_equal(tls_conn_handshake(p.cli), SL_ETLS);
	pair_close(&p);
}

static void test_wrong_hostname(void **state)
{
	char err[256];
	struct pair p;

	(void)state;
	pair_open(&p, true, cert_path);
	pair_conns(&p, "other.example");
	assert_int_equal(pump_handshake(&p), SL_ETLS);
	assert_true(tls_last_error(err, sizeof err) > 0);
	assert_non_null(strcasestr(err, "hostname mismatch"));
	/* The failed chain is gone, its verdict is not. */
	assert_int_equal(tls_conn_verify_status(p.cli), TLS_VERIFY_HOST_MISMATCH);
	pair_close(&p);

	/* Same cert, no verification: opportunistic TLS still works. */
	pair_open(&p, false, cert_path);
	pair_conns(&p, "other.example");
	assert_int_equal(pump_handshake(&p), 1);
	assert_false(tls_conn_peer_verified(p.cli));
	assert_int_equal(tls_conn_verify_status(p.cli), TLS_VERIFY_HOST_MISMATCH);
	pair_close(&p);
}

static void test_untrusted_ca(void **state)
{
	char err[256];
	struct pair p;

	(void)state;
	/* Trusting a different self-signed cert with the same name. */
	pair_open(&p, true, other_cert);
	pair_conns(&p, "mx.test.example");
	assert_int_equal(pump_handshake(&p), SL_ETLS);
	tls_last_error(err, sizeof err);
	assert_non_null(strstr(err, "certificate verify failed"));
	assert_int_equal(tls_conn_verify_status(p.cli), TLS_VERIFY_UNTRUSTED);
	pair_close(&p);
}

static void test_misuse(void **state)
{
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *c;
	char err[256];

	(void)state;
	assert_int_equal(tls_ctx_server_create("/nonexistent/cert.pem", key_path, &sctx), SL_ETLS);
	assert_true(tls_last_error(err, sizeof err) > 0);
	assert_non_null(strstr(err, "load certificate"));
	/* key does not match the certificate */
	assert_int_equal(tls_ctx_server_create(cert_path, other_key, &sctx), SL_ETLS);
	assert_int_equal(tls_ctx_client_create(true, "/nonexistent/ca.pem", &cctx), SL_ETLS);

	assert_int_equal(tls_ctx_server_create(cert_path, key_path, &sctx), 0);
	assert_int_equal(tls_ctx_client_create(true, cert_path, &cctx), 0);
	assert_int_equal(tls_conn_create(sctx, false, "x.example", &c), -EINVAL);
	assert_int_equal(tls_conn_create(cctx, true, NULL, &c), -EINVAL);
	assert_int_equal(tls_conn_create(cctx, false, NULL, &c), -EINVAL); /* verify needs a name */
	assert_int_equal(tls_conn_create(cctx, false, ".", &c), -EINVAL);
	assert_int_equal(tls_conn_create(cctx, false, "127.0.0.1", &c), 0);
	tls_conn_destroy(c);
	/* conns outlive their ctx */
	assert_int_equal(tls_conn_create(cctx, false, "mx.test.example", &c), 0);
	tls_ctx_destroy(cctx);
	assert_int_equal(tls_conn_handshake(c), 0);
	tls_conn_destroy(c);
	tls_ctx_destroy(sctx);
	assert_int_equal(tls_generate_self_signed(cert_path, key_path, "a,DNS:b"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_tls13),
		cmocka_unit_test(test_handshake_tls12),
		cmocka_unit_test(test_bulk_both_ways),
		cmocka_unit_test(test_corrupt_record),
		cmocka_unit_test(test_corrupt_handshake),
		cmocka_unit_test(test_wrong_hostname),
		cmocka_unit_test(test_untrusted_ca),
		cmocka_unit_test(test_misuse),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
