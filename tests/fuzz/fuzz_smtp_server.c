/*
 * fuzz_smtp_server.c — drive an ESMTP server session with arbitrary bytes.
 *
 * Input layout: byte 0 picks the limits (tiny or default) and how events
 * are answered, byte 1 seeds the chunk sizes, the rest is what the client
 * sends. The session has relaying allowed and TLS and AUTH available;
 * STARTTLS is "completed" at once, AUTH and messages are answered at once.
 * Beyond crashes and leaks it checks the invariants callers rely on: every
 * reply is a well-formed CRLF line, message bodies hold no bare CR or LF,
 * limits hold, addresses hold no control characters.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "smtp_server.h"

#define CHECK(x)                       \
	do {                           \
		if (!(x))              \
			__builtin_trap(); \
	} while (0)

static void check_output(struct sl_buf *out)
{
	const char *p = out->len ? sl_buf_head(out) : NULL;
	size_t n = sl_buf_avail(out);

	while (n) {
		const char *crlf = memmem(p, n, "\r\n", 2);
		size_t len;

		CHECK(crlf); /* only whole lines are queued */
		len = (size_t)(crlf - p);
		CHECK(len >= 3 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
		      p[2] >= '0' && p[2] <= '9');
		CHECK(len == 3 || p[3] == ' ' || p[3] == '-');
		CHECK(!memchr(p, '\n', len) && !memchr(p, '\r', len));
		n -= len + 2;
		p = crlf + 2;
	}
	sl_buf_consume(out, sl_buf_avail(out));
}

static void check_addr(const char *a, bool utf8)
{
	size_t n = strlen(a);

	CHECK(n <= SMTP_SERVER_MAX_ADDR);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		CHECK(c >= 32 && c != 127);
		CHECK(c < 128 || utf8);
	}
}

static void check_message(const struct smtp_server_message *m,
			  const struct smtp_server_limits *lim)
{
	const char *b = m->body;
	size_t n = m->body_len;

	CHECK(n <= lim->max_size);
	CHECK(m->n_rcpts >= 1 && m->n_rcpts <= lim->max_rcpts);
	CHECK(m->helo && m->helo[0]);
	check_addr(m->mail_from, m->smtputf8);
	for (size_t i = 0; i < m->n_rcpts; i++) {
		CHECK(m->rcpts[i][0]);
		check_addr(m->rcpts[i], m->smtputf8);
	}
	/* CRLF-terminated lines only, no bare CR or LF, none too long */
	CHECK(n == 0 || (n >= 2 && b[n - 2] == '\r' && b[n - 1] == '\n'));
	for (size_t i = 0, start = 0; i < n; i++) {
		if (b[i] == '\r') {
			CHECK(i + 1 < n && b[i + 1] == '\n');
			CHECK(i + 2 - start <= lim->max_line);
			i++;
			start = i + 1;
		} else {
			CHECK(b[i] != '\n');
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_server_limits lim = {
		.hostname = "mx.fuzz", .max_line = 1000, .max_size = 1 << 20, .max_rcpts = 100,
		.max_errors = 0, .tls_available = true, .auth_available = true,
	};
	struct smtp_server *s;
	struct smtp_server_event ev;
	uint8_t cfg;
	uint32_t rng;
	size_t off = 2;
	bool done = false;
	unsigned events = 0;

	if (size < 2)
		return 0;
	cfg = data[0];
	rng = data[1] * 2654435761u + 1;
	if (cfg & 1) {
		lim.max_line = 16 + (cfg >> 4);
		lim.max_size = 64;
		lim.max_rcpts = 3;
	}
	if (cfg & 2)
		lim.max_errors = 1 + (cfg >> 5);
	if (smtp_server_create(&lim, &s))
		return 0;
	smtp_server_set_relay_allowed(s, !(cfg & 4));
	if (cfg & 8)
		smtp_server_tls_started(s); /* implicit TLS */
	smtp_server_greet(s);

	while (!done) {
		int k;

		if (off < size) {
			size_t chunk;

			rng = rng * 1103515245u + 12345u;
			chunk = 1 + (rng >> 16) % 64;
			if (chunk > size - off)
				chunk = size - off;
			if (smtp_server_input(s, data + off, chunk) < 0)
				break;
			off += chunk;
		} else {
			done = true;
		}
		while ((k = smtp_server_next(s, &ev)) > SMTP_SERVER_EV_NONE) {
			CHECK(k == (int)ev.kind);
			check_output(smtp_server_output(s));
			events++;
			switch (k) {
			case SMTP_SERVER_EV_STARTTLS:
				CHECK(smtp_server_tls_started(s) == 0);
				break;
			case SMTP_SERVER_EV_AUTH:
				CHECK(ev.auth.username[0] && strlen(ev.auth.username) <= 255);
				CHECK(strlen(ev.auth.password) <= 255);
				CHECK(smtp_server_auth_result(s, (strlen(ev.auth.password) & 1) == 0,
							      ev.auth.username) == 0);
				break;
			case SMTP_SERVER_EV_MESSAGE:
				check_message(&ev.msg, &lim);
				CHECK(smtp_server_message_result(s, (events & 7) == 7 ? 421 : 250,
								 "2.0.0", "Ok\r\nnope") == 0);
				break;
			case SMTP_SERVER_EV_CLOSE:
				CHECK(smtp_server_want_close(s));
				done = true;
				break;
			}
		}
		if (k < 0)
			break;
		check_output(smtp_server_output(s));
	}
	if (!smtp_server_want_close(s) && (cfg & 16)) {
		smtp_server_timeout(s);
		CHECK(smtp_server_next(s, &ev) == SMTP_SERVER_EV_CLOSE);
		check_output(smtp_server_output(s));
	}
	smtp_server_destroy(s);
	return 0;
}
