/*
 * test_smtp_client.c — golden transcripts for the outbound SMTP client.
 *
 * A transcript is a list of steps: server bytes in, expected client bytes
 * out, expected events, and caller actions. Every transcript runs twice:
 * once with each server chunk handed over whole, once with it handed over a
 * byte at a time (next() called after every byte), which must give the same
 * events in the same order and the same bytes out.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "smtp_client.h"

enum op {
	OP_END,
	OP_S,        /* server sends s */
	OP_C,        /* client has sent exactly s since the last OP_C */
	OP_E,        /* next event is ev (checks code, rcpt, reply text, local when set) */
	OP_N,        /* no event pending */
	OP_SEND,     /* smtp_client_send(msgs[a]) returns b */
	OP_QUIT,
	OP_TLS_OK,
	OP_TLS_FAIL,
	OP_EOF,
	OP_TIMEOUT,
	OP_EXT,      /* smtp_client_has_ext(a) == b */
};

struct step {
	enum op op;
	const char *s;
	int ev;
	int a, b;
	int local; /* OP_E: 0 don't care, 1 local, 2 from the peer */
};

#define SRV(x) { .op = OP_S, .s = (x) }
#define CLI(x) { .op = OP_C, .s = (x) }
#define EV(k) { .op = OP_E, .ev = SMTP_CLIENT_EV_##k }
#define EVR(k, r) { .op = OP_E, .ev = SMTP_CLIENT_EV_##k, .s = (r), .local = 2 }
#define EVL(k, r) { .op = OP_E, .ev = SMTP_CLIENT_EV_##k, .s = (r), .local = 1 }
#define RCPT(i, r) { .op = OP_E, .ev = SMTP_CLIENT_EV_RCPT, .b = (i), .s = (r), .local = 2 }
#define NONE { .op = OP_N }
#define SEND(i) { .op = OP_SEND, .a = (i) }
#define SEND_RC(i, rc) { .op = OP_SEND, .a = (i), .b = (rc) }
#define QUIT { .op = OP_QUIT }
#define TLS_OK { .op = OP_TLS_OK }
#define TLS_FAIL { .op = OP_TLS_FAIL }
#define PEER_EOF { .op = OP_EOF }
#define TIMEOUT { .op = OP_TIMEOUT }
#define EXT(e, yes) { .op = OP_EXT, .a = SMTP_CLIENT_EXT_##e, .b = (yes) }
#define END { .op = OP_END }

/* --- messages ------------------------------------------------------------- */

static const char *const rcpt1[] = { "bob@example.org" };
static const char *const rcpt3[] = { "a@example.org", "b@example.org", "c@example.org" };
static const char *const rcpt2[] = { "x@example.org", "y@example.org" };

#define BODY0 "Subject: hi\r\n\r\nHello\r\n"
#define BODY_DOTS ".\r\n..two\r\nmid.dle\r\n.end"

static const struct smtp_client_msg msgs[] = {
	{ "alice@example.com", rcpt1, 1, BODY0, sizeof(BODY0) - 1, 0, 0 },
	{ "alice@example.com", rcpt3, 3, BODY0, sizeof(BODY0) - 1, 0, 0 },
	{ "", rcpt2, 2, BODY_DOTS, sizeof(BODY_DOTS) - 1, 0, 0 },
	{ "alice@example.com", rcpt1, 1, BODY0, sizeof(BODY0) - 1, 0, 20000 },
	{ "ålice@example.com", rcpt1, 1, BODY0, sizeof(BODY0) - 1, SMTP_CLIENT_MSG_SMTPUTF8, 0 },
	{ "alice@example.com", rcpt1, 1, BODY0, sizeof(BODY0) - 1, SMTP_CLIENT_MSG_8BITMIME, 0 },
};

/* --- common transcript pieces ---------------------------------------------- */

#define GREET SRV("220 mx.example.net ESMTP\r\n"), NONE, CLI("EHLO client.example.com\r\n")
#define EHLO_PLAIN "250-mx.example.net\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PIPE                                                                      \
	"250-mx.example.net Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n" \
	"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
#define EHLO_TLS "250-mx.example.net\r\n250-STARTTLS\r\n250 PIPELINING\r\n"
#define BODY0_OUT BODY0 ".\r\n"

/* --- runner --------------------------------------------------------------- */

struct seen {
	int kind;
	unsigned rcpt;
	bool local;
	char reply[1200];
};

static const struct smtp_client_params params_plain = { "client.example.com", false, false };
static const struct smtp_client_params params_tls = { "client.example.com", true, false };
static const struct smtp_client_params params_req = { "client.example.com", true, true };

static void record(struct seen *s, const struct smtp_client_event *ev)
{
	s->kind = ev->kind;
	s->rcpt = ev->rcpt;
	s->local = ev->local;
	s->reply[0] = '\0';
	if (ev->reply)
		smtp_reply_format(ev->reply, s->reply, sizeof s->reply);
}

static void drain(struct smtp_client *c, struct sl_buf *got)
{
	struct sl_buf *o = smtp_client_output(c);

	if (sl_buf_avail(o) == 0) /* o->data may still be NULL */
		return;
	assert_int_equal(sl_buf_append(got, sl_buf_head(o), sl_buf_avail(o)), 0);
	sl_buf_consume(o, sl_buf_avail(o));
}

static void run(const struct step *t, const struct smtp_client_params *p, bool split)
{
	struct smtp_client *c;
	struct smtp_client_event ev;
	struct sl_buf got = { 0 }, want = { 0 };
	struct seen fifo[32], cur;
	unsigned fhead = 0, flen = 0, i;
	int rc;

	assert_int_equal(smtp_client_create(p, &c), 0);
	for (; t->op != OP_END; t++) {
		switch (t->op) {
		case OP_S:
			if (!split) {
				assert_int_equal(smtp_client_input(c, t->s, strlen(t->s)), 0);
				break;
			}
			for (i = 0; t->s[i]; i++) {
				assert_int_equal(smtp_client_input(c, t->s + i, 1), 0);
				while (smtp_client_next(c, &ev) != SMTP_CLIENT_EV_NONE) {
					assert_true(flen < 32);
					record(&fifo[(fhead + flen++) % 32], &ev);
				}
			}
			break;
		case OP_C:
			drain(c, &got);
			assert_int_equal(sl_buf_append(&want, t->s, strlen(t->s)), 0);
			if (split) {
				assert_true(got.len >= want.len);
				assert_memory_equal(got.data, want.data, want.len);
			} else {
				assert_int_equal(sl_buf_append(&got, "", 1), 0);
				assert_int_equal(sl_buf_append(&want, "", 1), 0);
				assert_string_equal(got.data, want.data);
				got.len--;
				want.len--;
			}
			break;
		case OP_E:
			if (flen > 0) {
				cur = fifo[fhead];
				fhead = (fhead + 1) % 32;
				flen--;
			} else {
				rc = smtp_client_next(c, &ev);
				assert_int_equal(rc, ev.kind);
				record(&cur, &ev);
			}
			assert_int_equal(cur.kind, t->ev);
			if (t->ev == SMTP_CLIENT_EV_RCPT)
				assert_int_equal(cur.rcpt, t->b);
			if (t->s)
				assert_string_equal(cur.reply, t->s);
			if (t->local)
				assert_int_equal(cur.local, t->local == 1);
			break;
		case OP_N:
			assert_int_equal(flen, 0);
			assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_NONE);
			assert_null(ev.reply);
			break;
		case OP_SEND:
			assert_int_equal(smtp_client_send(c, &msgs[t->a]), t->b);
			break;
		case OP_QUIT:
			smtp_client_quit(c);
			break;
		case OP_TLS_OK:
			smtp_client_tls_started(c);
			break;
		case OP_TLS_FAIL:
			smtp_client_tls_failed(c);
			break;
		case OP_EOF:
			smtp_client_eof(c);
			break;
		case OP_TIMEOUT:
			smtp_client_timeout(c);
			break;
		case OP_EXT:
			assert_int_equal(smtp_client_has_ext(c, (unsigned)t->a), t->b);
			break;
		case OP_END:
			break;
		}
	}
	/* Nothing left over: no events, no unchecked output. */
	assert_int_equal(flen, 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_NONE);
	drain(c, &got);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	sl_buf_free(&got);
	sl_buf_free(&want);
	smtp_client_destroy(c);
}

static void run_both(const struct step *t, const struct smtp_client_params *p)
{
	run(t, p, false);
	run(t, p, true);
}

/* --- transcripts ---------------------------------------------------------- */

static void test_plain_delivery(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		EXT(SIZE, 1), EXT(8BITMIME, 1), EXT(PIPELINING, 0), EXT(ENHANCEDSTATUSCODES, 1),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("250 2.1.0 Ok\r\n"), NONE,
		CLI("RCPT TO:<bob@example.org>\r\n"),
		SRV("250 2.1.5 Ok\r\n"), NONE,
		CLI("DATA\r\n"),
		SRV("354 End data with <CR><LF>.<CR><LF>\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("250 2.0.0 Ok: queued as 4XyZ\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 Ok: queued as 4XyZ"),
		EV(READY),
		NONE,
		QUIT,
		CLI("QUIT\r\n"),
		SRV("221 2.0.0 Bye\r\n"),
		EV(CLOSED),
		NONE,
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_pipelined_delivery(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		EXT(PIPELINING, 1), EXT(CHUNKING, 1), EXT(SMTPUTF8, 1), EXT(STARTTLS, 0),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"
		    "RCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
		    "354 go ahead\r\n"),
		NONE,
		CLI(BODY0_OUT),
		SRV("250 2.0.0 queued\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 queued"),
		EV(READY),
		QUIT,
		CLI("QUIT\r\n"),
		PEER_EOF,
		EV(CLOSED),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_lockstep_partial_rejection(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("250 ok\r\n"), NONE,
		CLI("RCPT TO:<a@example.org>\r\n"),
		SRV("550 5.1.1 <a@example.org>: User unknown\r\n"),
		RCPT(0, "550 5.1.1 <a@example.org>: User unknown"),
		NONE,
		CLI("RCPT TO:<b@example.org>\r\n"),
		SRV("250 ok\r\n"), NONE,
		CLI("RCPT TO:<c@example.org>\r\n"),
		SRV("450 4.2.1 mailbox busy\r\n"),
		RCPT(2, "450 4.2.1 mailbox busy"),
		NONE,
		CLI("DATA\r\n"),
		SRV("354 go\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("250 2.0.0 ok\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 ok"),
		EV(READY),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_pipelined_partial_rejection(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"
		    "RCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n"
		    "450 4.7.1 greylisted\r\n354 go ahead\r\n"),
		RCPT(1, "550 5.1.1 no such user"),
		RCPT(2, "450 4.7.1 greylisted"),
		NONE,
		CLI(BODY0_OUT),
		SRV("250 2.0.0 queued\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 queued"),
		EV(READY),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_starttls(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_TLS),
		NONE,
		CLI("STARTTLS\r\n"),
		SRV("220 2.0.0 Ready to start TLS\r\n"),
		EV(STARTTLS),
		NONE,
		TLS_OK,
		CLI("EHLO client.example.com\r\n"),
		EXT(STARTTLS, 0),
		SRV("250-mx.example.net\r\n250 PIPELINING\r\n"),
		EV(READY),
		EXT(PIPELINING, 1),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		END,
	};

	(void)state;
	run_both(t, &params_tls);
	run_both(t, &params_req);
}

static void test_starttls_not_used_without_tls(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_TLS),
		EV(READY),
		EXT(STARTTLS, 1),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_require_tls_not_offered(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EVL(FAILED, "451 4.7.4 TLS required but STARTTLS not offered by server"),
		NONE,
		SRV("250 ignored\r\n"),
		NONE,
		END,
	};

	(void)state;
	run_both(t, &params_req);
}

static void test_starttls_refused(void **state)
{
	static const struct step opportunistic[] = {
		GREET,
		SRV(EHLO_TLS),
		NONE,
		CLI("STARTTLS\r\n"),
		SRV("454 4.7.0 TLS not available\r\n"),
		EV(READY),
		END,
	};
	static const struct step required[] = {
		GREET,
		SRV(EHLO_TLS),
		NONE,
		CLI("STARTTLS\r\n"),
		SRV("454 4.7.0 TLS not available\r\n"),
		EVL(FAILED, "451 4.7.4 TLS required but STARTTLS refused: 454 4.7.0 TLS not available"),
		END,
	};

	(void)state;
	run_both(opportunistic, &params_tls);
	run_both(required, &params_req);
}

static void test_tls_handshake_failed(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_TLS),
		NONE,
		CLI("STARTTLS\r\n"),
		SRV("220 go\r\n"),
		EV(STARTTLS),
		TLS_FAIL,
		EVL(FAILED, "451 4.7.5 TLS handshake failed"),
		END,
	};

	(void)state;
	run_both(t, &params_tls);
}

static void test_starttls_injection(void **state)
{
	/* Plaintext after the 220 must not be taken as post-TLS replies. */
	static const struct step t[] = {
		GREET,
		SRV(EHLO_TLS),
		NONE,
		CLI("STARTTLS\r\n"),
		SRV("220 go\r\n250-evil\r\n250 PIPELINING\r\n"),
		EVL(FAILED, NULL),
		END,
	};
	struct smtp_client *c;
	struct smtp_client_event ev;
	const char *s;

	(void)state;
	run(t, &params_tls, false);
	/* Byte by byte the 220 is seen alone first; what follows is still
	 * plaintext from before the handshake. */
	assert_int_equal(smtp_client_create(&params_tls, &c), 0);
	s = "220 x\r\n" EHLO_TLS "220 go\r\n250 x\r\n";
	assert_int_equal(smtp_client_input(c, s, strlen(s) - 7), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_STARTTLS);
	assert_int_equal(smtp_client_input(c, s + strlen(s) - 7, 7), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_FAILED);
	assert_true(ev.local);
	smtp_client_destroy(c);
}

static void test_ehlo_rejected_helo(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV("502 5.5.2 Command not recognized\r\n"),
		NONE,
		CLI("HELO client.example.com\r\n"),
		SRV("250 mx.example.net\r\n"),
		EV(READY),
		EXT(SIZE, 0),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com>\r\n"),
		SRV("250 ok\r\n"), NONE,
		CLI("RCPT TO:<bob@example.org>\r\n"),
		END,
	};
	static const struct step helo_fails[] = {
		GREET,
		SRV("500 what\r\n"),
		NONE,
		CLI("HELO client.example.com\r\n"),
		SRV("501 go away\r\n"),
		EVR(FAILED, "501 go away"),
		END,
	};
	static const struct step helo_no_tls[] = {
		GREET,
		SRV("500 what\r\n"),
		NONE,
		CLI("HELO client.example.com\r\n"),
		SRV("250 hi\r\n"),
		EVL(FAILED, "451 4.7.4 TLS required but STARTTLS not offered by server"),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
	run_both(helo_fails, &params_plain);
	run_both(helo_no_tls, &params_req);
}

static void test_ehlo_4xx_fails(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV("451 4.3.0 try later\r\n"),
		EVR(FAILED, "451 4.3.0 try later"),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_all_rcpts_rejected_lockstep(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(2),
		CLI("MAIL FROM:<> SIZE=23\r\n"),
		SRV("250 ok\r\n"), NONE,
		CLI("RCPT TO:<x@example.org>\r\n"),
		SRV("550 5.1.1 nope\r\n"),
		RCPT(0, "550 5.1.1 nope"),
		NONE,
		CLI("RCPT TO:<y@example.org>\r\n"),
		SRV("451 4.3.0 later\r\n"),
		RCPT(1, "451 4.3.0 later"),
		EVL(MESSAGE_DONE, "554 5.5.1 No valid recipients"),
		NONE,
		CLI("RSET\r\n"),
		SRV("250 2.0.0 reset\r\n"),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_all_rcpts_rejected_pipelined(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(2),
		CLI("MAIL FROM:<> SIZE=23\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<y@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 ok\r\n550 5.1.1 nope\r\n550 5.1.1 nope either\r\n"
		    "554 5.5.1 Error: no valid recipients\r\n"),
		RCPT(0, "550 5.1.1 nope"),
		RCPT(1, "550 5.1.1 nope either"),
		EVR(MESSAGE_DONE, "554 5.5.1 Error: no valid recipients"),
		NONE,
		CLI("RSET\r\n"),
		SRV("250 ok\r\n"),
		EV(READY),
		END,
	};
	/* A server that accepts the pipelined DATA anyway gets an empty
	 * transaction ended at once. */
	static const struct step data354[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(2),
		CLI("MAIL FROM:<> SIZE=23\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<y@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 ok\r\n550 5.1.1 nope\r\n503 5.5.1 nope\r\n354 go\r\n"),
		RCPT(0, "550 5.1.1 nope"),
		RCPT(1, "503 5.5.1 nope"),
		EVL(MESSAGE_DONE, "554 5.5.1 No valid recipients"),
		NONE,
		CLI(".\r\n"),
		SRV("554 5.5.1 no recipients\r\n"),
		EV(READY),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
	run_both(data354, &params_plain);
}

static void test_mail_rejected(void **state)
{
	static const struct step lockstep[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("553 5.7.1 Sender rejected\r\n"),
		EVR(MESSAGE_DONE, "553 5.7.1 Sender rejected"),
		EV(READY),
		NONE,
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		END,
	};
	static const struct step pipelined[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"
		    "RCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
		    "DATA\r\n"),
		SRV("452 4.3.1 Insufficient system storage\r\n"),
		EVR(MESSAGE_DONE, "452 4.3.1 Insufficient system storage"),
		NONE,
		SRV("503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
		    "503 5.5.1 need RCPT\r\n"),
		EV(READY),
		NONE,
		END,
	};

	(void)state;
	run_both(lockstep, &params_plain);
	run_both(pipelined, &params_plain);
}

static void test_data_rejected(void **state)
{
	static const struct step data4xx[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n451 4.3.0 not now\r\n"),
		EVR(MESSAGE_DONE, "451 4.3.0 not now"),
		NONE,
		CLI("RSET\r\n"),
		SRV("250 ok\r\n"),
		EV(READY),
		END,
	};
	static const struct step final5xx[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("250 ok\r\n"), NONE,
		CLI("RCPT TO:<bob@example.org>\r\n"),
		SRV("250 ok\r\n"), NONE,
		CLI("DATA\r\n"),
		SRV("354 go\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("554-5.7.1 Message rejected as spam.\r\n554 5.7.1 See https://example.net/x\r\n"),
		EVR(MESSAGE_DONE, "554 5.7.1 Message rejected as spam. See https://example.net/x"),
		EV(READY),
		NONE,
		END,
	};
	static const struct step final4xx[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n354 go\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("452 4.2.2 Mailbox full\r\n"),
		EVR(MESSAGE_DONE, "452 4.2.2 Mailbox full"),
		EV(READY),
		END,
	};

	(void)state;
	run_both(data4xx, &params_plain);
	run_both(final5xx, &params_plain);
	run_both(final4xx, &params_plain);
}

static void test_421(void **state)
{
	static const struct step mid[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"
		    "RCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 ok\r\n550 5.1.1 unknown\r\n421 4.7.0 Too many errors, closing\r\n"
		    "250 never seen\r\n"),
		RCPT(0, "550 5.1.1 unknown"),
		EVR(FAILED, "421 4.7.0 Too many errors, closing"),
		NONE,
		END,
	};
	static const struct step greeting[] = {
		SRV("421-4.7.0 mx.example.net busy\r\n421 4.7.0 try later\r\n"),
		EVR(FAILED, "421 4.7.0 mx.example.net busy try later"),
		END,
	};
	static const struct step idle[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SRV("421 4.4.2 idle timeout\r\n"),
		EVR(FAILED, "421 4.4.2 idle timeout"),
		END,
	};
	static const struct step after_dot[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n354 go\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("421 4.3.2 shutting down\r\n"),
		EVR(FAILED, "421 4.3.2 shutting down"),
		END,
	};

	(void)state;
	run_both(mid, &params_plain);
	run_both(greeting, &params_plain);
	run_both(idle, &params_plain);
	run_both(after_dot, &params_plain);
}

static void test_bad_greeting(void **state)
{
	static const struct step g554[] = {
		SRV("554 5.7.1 no thanks\r\n"),
		EVR(FAILED, "554 5.7.1 no thanks"),
		END,
	};
	static const struct step g250[] = {
		SRV("250 hmm\r\n"),
		EVL(FAILED, "451 4.5.0 Unexpected reply during greeting: 250 hmm"),
		END,
	};
	static const struct step garbage[] = {
		SRV("HTTP/1.1 400 Bad Request\r\n"),
		EVL(FAILED, "451 4.5.0 Malformed reply from server during greeting"),
		END,
	};

	(void)state;
	run_both(g554, &params_plain);
	run_both(g250, &params_plain);
	run_both(garbage, &params_plain);
}

static void test_multiline_and_bare_lf(void **state)
{
	static const struct step t[] = {
		SRV("220-mx.example.net ESMTP\n220-no UCE\n220 hi\n"),
		NONE,
		CLI("EHLO client.example.com\r\n"),
		SRV("250-mx.example.net\n250-size 1000\n250 pipelining\n"),
		EV(READY),
		EXT(SIZE, 1), EXT(PIPELINING, 1),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		SRV("250-2.1.0 first\n250 2.1.0 Ok\n250 ok\r\n354-go\r\n354 ahead\r\n"),
		NONE,
		CLI(BODY0_OUT),
		SRV("250-2.0.0 Ok\r\n250-2.0.0 queued as\r\n250 2.0.0 ABC\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 Ok queued as ABC"),
		EV(READY),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_multiple_messages(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n354 go\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("250 2.0.0 one\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 one"),
		EV(READY),
		SEND(2),
		CLI("MAIL FROM:<> SIZE=23\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<y@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n550 5.1.1 gone\r\n354 go\r\n"),
		RCPT(1, "550 5.1.1 gone"),
		NONE,
		CLI("..\r\n...two\r\nmid.dle\r\n..end\r\n.\r\n"),
		SRV("250 2.0.0 two\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 two"),
		EV(READY),
		SEND(1),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"
		    "RCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
		    "DATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), NONE,
		CLI(BODY0_OUT),
		SRV("250 2.0.0 three\r\n"),
		EVR(MESSAGE_DONE, "250 2.0.0 three"),
		EV(READY),
		QUIT,
		CLI("QUIT\r\n"),
		SRV("221 bye\r\n"),
		EV(CLOSED),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
}

static void test_size_too_big(void **state)
{
	static const struct step t[] = {
		GREET,
		SRV("250-mx\r\n250 SIZE 10000\r\n"),
		EV(READY),
		SEND(3),
		EVL(MESSAGE_DONE, "552 5.3.4 Message size exceeds fixed maximum message size"),
		EV(READY),
		NONE,
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		END,
	};
	static const struct step unlimited[] = {
		GREET,
		SRV("250-mx\r\n250 SIZE\r\n"),
		EV(READY),
		SEND(3),
		CLI("MAIL FROM:<alice@example.com> SIZE=20000\r\n"),
		END,
	};

	(void)state;
	run_both(t, &params_plain);
	run_both(unlimited, &params_plain);
}

static void test_smtputf8(void **state)
{
	static const struct step missing[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(4),
		EVL(MESSAGE_DONE, "553 5.6.7 SMTPUTF8 required but not supported by server"),
		EV(READY),
		NONE,
		END,
	};
	static const struct step present[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(4),
		CLI("MAIL FROM:<ålice@example.com> SIZE=22 BODY=8BITMIME SMTPUTF8\r\n"
		    "RCPT TO:<bob@example.org>\r\nDATA\r\n"),
		END,
	};
	static const struct step eightbit[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(5),
		CLI("MAIL FROM:<alice@example.com> SIZE=22 BODY=8BITMIME\r\n"),
		END,
	};
	static const struct step eightbit_unsupported[] = {
		GREET,
		SRV("250-mx\r\n250 PIPELINING\r\n"),
		EV(READY),
		SEND(5),
		CLI("MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		END,
	};

	(void)state;
	run_both(missing, &params_plain);
	run_both(present, &params_plain);
	run_both(eightbit, &params_plain);
	run_both(eightbit_unsupported, &params_plain);
}

static void test_eof_timeout_malformed(void **state)
{
	static const struct step eof[] = {
		GREET,
		SRV(EHLO_PIPE),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"),
		SRV("250 ok\r\n250 ok\r\n354 go\r\n250 part"),
		PEER_EOF,
		EVL(FAILED, "451 4.4.2 Connection closed by server during end of data"),
		CLI(BODY0_OUT),
		END,
	};
	static const struct step timeout[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("250 ok\r\n"),
		NONE,
		CLI("RCPT TO:<bob@example.org>\r\n"),
		TIMEOUT,
		EVL(FAILED, "451 4.4.2 Timeout during RCPT TO"),
		END,
	};
	static const struct step malformed[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("250-ok\r\n251 mixed\r\n"),
		EVL(FAILED, "451 4.5.0 Malformed reply from server during MAIL FROM"),
		END,
	};
	static const struct step unexpected[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		SEND(0),
		CLI("MAIL FROM:<alice@example.com> SIZE=22\r\n"),
		SRV("354 what\r\n"),
		EVL(FAILED, "451 4.5.0 Unexpected reply during MAIL FROM: 354 what"),
		END,
	};
	static const struct step quit_eof[] = {
		GREET,
		SRV(EHLO_PLAIN),
		EV(READY),
		QUIT,
		CLI("QUIT\r\n"),
		NONE,
		TIMEOUT,
		EV(CLOSED),
		END,
	};

	(void)state;
	run_both(eof, &params_plain);
	run_both(timeout, &params_plain);
	run_both(malformed, &params_plain);
	run_both(unexpected, &params_plain);
	run_both(quit_eof, &params_plain);
}

/* --- direct tests --------------------------------------------------------- */

/* Bring a client to READY with the given EHLO reply. */
static struct smtp_client *ready_client(const char *ehlo)
{
	struct smtp_client *c;
	struct smtp_client_event ev;
	struct sl_buf *o;

	assert_int_equal(smtp_client_create(&params_plain, &c), 0);
	assert_int_equal(smtp_client_input(c, "220 x\r\n", 7), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_NONE);
	assert_int_equal(smtp_client_input(c, ehlo, strlen(ehlo)), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_READY);
	o = smtp_client_output(c);
	sl_buf_consume(o, sl_buf_avail(o));
	return c;
}

/* Send a body through a pipelined session; return what went out for it. */
static void body_out(const char *body, size_t len, char *out, size_t outlen)
{
	static const char *const to[] = { "r@example.org" };
	struct smtp_client_msg m = { "s@example.com", to, 1, body, len, 0, 0 };
	struct smtp_client *c = ready_client("250-x\r\n250 PIPELINING\r\n");
	struct smtp_client_event ev;
	struct sl_buf *o = smtp_client_output(c);
	const char *r = "250 ok\r\n250 ok\r\n354 go\r\n";

	assert_int_equal(smtp_client_send(c, &m), 0);
	sl_buf_consume(o, sl_buf_avail(o));
	assert_int_equal(smtp_client_input(c, r, strlen(r)), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_NONE);
	assert_true(sl_buf_avail(o) < outlen);
	memcpy(out, sl_buf_head(o), sl_buf_avail(o));
	out[sl_buf_avail(o)] = '\0';
	smtp_client_destroy(c);
}

static void test_dot_stuffing(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ ".\r\n", "..\r\n.\r\n" },
		{ "\r\n.\r\n", "\r\n..\r\n.\r\n" },
		{ "a\r\n..b\r\n.c", "a\r\n...b\r\n..c\r\n.\r\n" },
		{ "a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n" },
		/* bare LF and CR become CRLF: nothing like "\n.\n" gets out */
		{ "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r.\rb\r", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r\r\n.\n\r\n", "a\r\n\r\n..\r\n\r\n.\r\n" },
		{ "\n", "\r\n.\r\n" },
		{ "\r", "\r\n.\r\n" },
		{ "x\r\n\r\n", "x\r\n\r\n.\r\n" },
	};
	char out[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		body_out(cases[i].in, strlen(cases[i].in), out, sizeof out);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, out);
	}
}

static void test_dot_stuffing_large(void **state)
{
	static char body[200000], out[220000];
	size_t n = 0, i;

	(void)state;
	for (i = 0; n + 80 < sizeof body; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%sline %zu of the body\r\n",
				      i % 7 == 0 ? "." : "", i);
	body_out(body, n, out, sizeof out);
	/* Undo the stuffing and compare. */
	{
		size_t j = 0, k = 0, olen = strlen(out);

		assert_true(olen > 5);
		assert_string_equal(out + olen - 5, "\r\n.\r\n");
		olen -= 3;
		while (j < olen) {
			if (out[j] == '.' && (j == 0 || out[j - 1] == '\n'))
				j++;
			while (j < olen && out[j] != '\n')
				assert_int_equal(out[j++], body[k++]);
			assert_int_equal(out[j++], body[k++]);
		}
		assert_int_equal(k, n);
	}
}

static void test_send_contract(void **state)
{
	static const char *const bad_to[] = { "a@b>\r\nDATA" };
	static const char *const to[] = { "r@example.org" };
	struct smtp_client_msg m = { "s@example.com", to, 1, "x", 1, 0, 0 };
	struct smtp_client_params p = { "client.example.com", false, true };
	struct smtp_client *c;
	struct smtp_client_event ev;

	(void)state;
	assert_int_equal(smtp_client_create(&p, &c), -EINVAL);
	p.require_tls = false;
	p.ehlo_name = "bad name";
	assert_int_equal(smtp_client_create(&p, &c), -EINVAL);
	p.ehlo_name = "";
	assert_int_equal(smtp_client_create(&p, &c), -EINVAL);

	assert_int_equal(smtp_client_create(&params_plain, &c), 0);
	assert_int_equal(smtp_client_phase(c), SMTP_CLIENT_PHASE_GREETING);
	assert_int_equal(smtp_client_send(c, &m), -EINVAL); /* not READY */
	smtp_client_destroy(c);

	c = ready_client("250 x\r\n");
	assert_int_equal(smtp_client_phase(c), SMTP_CLIENT_PHASE_IDLE);
	m.rcpts = bad_to;
	assert_int_equal(smtp_client_send(c, &m), -EINVAL);
	m.rcpts = to;
	m.n_rcpts = 0;
	assert_int_equal(smtp_client_send(c, &m), -EINVAL);
	m.n_rcpts = 1;
	m.mail_from = "a\nb";
	assert_int_equal(smtp_client_send(c, &m), -EINVAL);
	m.mail_from = "s@example.com";
	assert_int_equal(smtp_client_send(c, &m), 0);
	assert_int_equal(smtp_client_phase(c), SMTP_CLIENT_PHASE_MAIL);
	assert_int_equal(smtp_client_send(c, &m), -EINVAL); /* busy */
	assert_string_equal(smtp_client_phase_name(smtp_client_phase(c)), "MAIL FROM");
	/* quit while busy: CLOSED at once */
	smtp_client_quit(c);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_CLOSED);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_NONE);
	assert_int_equal(smtp_client_phase(c), SMTP_CLIENT_PHASE_DONE);
	smtp_client_destroy(c);
	smtp_client_destroy(NULL);
}

static void test_quit_drops_pending_ready(void **state)
{
	struct smtp_client *c = ready_client("250-x\r\n250 SIZE 10\r\n");
	struct smtp_client_event ev;

	(void)state;
	assert_int_equal(smtp_client_send(c, &msgs[0]), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_MESSAGE_DONE);
	assert_true(ev.local);
	assert_int_equal(ev.reply->code, 552);
	smtp_client_quit(c);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_NONE);
	assert_int_equal(smtp_client_input(c, "221 bye\r\n", 9), 0);
	assert_int_equal(smtp_client_next(c, &ev), SMTP_CLIENT_EV_CLOSED);
	smtp_client_destroy(c);
}

static void test_size_max_and_tls_flag(void **state)
{
	struct smtp_client *c = ready_client("250-x\r\n250 SIZE 99999999999999999999999\r\n");

	(void)state;
	assert_true(smtp_client_has_ext(c, SMTP_CLIENT_EXT_SIZE));
	assert_int_equal(smtp_client_size_max(c), UINT64_MAX);
	assert_false(smtp_client_tls_active(c));
	smtp_client_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_delivery),
		cmocka_unit_test(test_pipelined_delivery),
		cmocka_unit_test(test_lockstep_partial_rejection),
		cmocka_unit_test(test_pipelined_partial_rejection),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_not_used_without_tls),
		cmocka_unit_test(test_require_tls_not_offered),
		cmocka_unit_test(test_starttls_refused),
		cmocka_unit_test(test_tls_handshake_failed),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_ehlo_rejected_helo),
		cmocka_unit_test(test_ehlo_4xx_fails),
		cmocka_unit_test(test_all_rcpts_rejected_lockstep),
		cmocka_unit_test(test_all_rcpts_rejected_pipelined),
		cmocka_unit_test(test_mail_rejected),
		cmocka_unit_test(test_data_rejected),
		cmocka_unit_test(test_421),
		cmocka_unit_test(test_bad_greeting),
		cmocka_unit_test(test_multiline_and_bare_lf),
		cmocka_unit_test(test_multiple_messages),
		cmocka_unit_test(test_size_too_big),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_eof_timeout_malformed),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_dot_stuffing_large),
		cmocka_unit_test(test_send_contract),
		cmocka_unit_test(test_quit_drops_pending_ready),
		cmocka_unit_test(test_size_max_and_tls_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
