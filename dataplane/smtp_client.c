/* smtp_client.c — one outbound SMTP session, sans-I/O; see smtp_client.h. */
#include "smtp_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* Which reply the session waits for (or what it waits on). */
enum state {
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS,   /* the caller's handshake */
	ST_READY, /* idle, waiting for the caller */
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_DOT,
	ST_RSET,
	ST_QUIT,
	ST_DONE, /* FAILED or CLOSED reported (or queued) */
};

enum abort_kind { ABORT_NONE, ABORT_EOF, ABORT_TIMEOUT };

#define EVQ_LEN 4 /* a reply queues at most two events; quit() may add one */

struct smtp_client {
	enum state st;
	enum abort_kind abort;
	bool tls_available, require_tls, tls_active;
	unsigned ext;
	uint64_t size_max;
	char *ehlo_name;
	size_t ehlo_len;

	struct sl_buf in;   /* received, not yet consumed */
	size_t scan;        /* smtp_reply_scan() state over in */
	struct sl_buf out;  /* to send */
	struct sl_buf cmds; /* lock-step: RCPT lines not sent yet */

	/* The message in flight. */
	bool pipelined;   /* MAIL, RCPTs and DATA went out together */
	bool mail_failed; /* draining pipelined replies after a refused MAIL */
	bool msg_done;    /* MESSAGE_DONE queued already */
	unsigned n_rcpts, rcpt_i, n_ok;
	const char *body;
	size_t body_len;

	struct smtp_reply reply; /* the last reply parsed */
	struct smtp_reply local; /* the last reply synthesized */

	struct smtp_client_event evq[EVQ_LEN];
	unsigned evq_head, evq_len;
};

/* --- events and failures -------------------------------------------------- */

static void push(struct smtp_client *c, enum smtp_client_ev kind, unsigned rcpt,
		 const struct smtp_reply *reply)
{
	struct smtp_client_event *ev;

	if (c->evq_len == EVQ_LEN) /* cannot happen; see EVQ_LEN */
		return;
	ev = &c->evq[(c->evq_head + c->evq_len++) % EVQ_LEN];
	ev->kind = kind;
	ev->rcpt = rcpt;
	ev->reply = reply;
	ev->local = reply == &c->local;
}

__attribute__((format(printf, 4, 5))) static const struct smtp_reply *
set_local(struct smtp_client *c, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	c->local.code = code;
	snprintf(c->local.enhanced, sizeof c->local.enhanced, "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(c->local.text, sizeof c->local.text, fmt, ap);
	va_end(ap);
	c->local.n_lines = 1;
	return &c->local;
}

/* End the session with reply r (the peer's or a local one). */
static void fail(struct smtp_client *c, const struct smtp_reply *r)
{
	push(c, SMTP_CLIENT_EV_FAILED, 0, r);
	c->st = ST_DONE;
	c->body = NULL;
}

static enum smtp_client_phase phase_of(enum state st)
{
	switch (st) {
	case ST_GREETING: return SMTP_CLIENT_PHASE_GREETING;
	case ST_EHLO:
	case ST_HELO: return SMTP_CLIENT_PHASE_EHLO;
	case ST_STARTTLS: return SMTP_CLIENT_PHASE_STARTTLS;
	case ST_TLS: return SMTP_CLIENT_PHASE_TLS;
	case ST_READY: return SMTP_CLIENT_PHASE_IDLE;
	case ST_MAIL: return SMTP_CLIENT_PHASE_MAIL;
	case ST_RCPT: return SMTP_CLIENT_PHASE_RCPT;
	case ST_DATA: return SMTP_CLIENT_PHASE_DATA;
	case ST_DOT: return SMTP_CLIENT_PHASE_DOT;
	case ST_RSET: return SMTP_CLIENT_PHASE_RSET;
	case ST_QUIT: return SMTP_CLIENT_PHASE_QUIT;
	case ST_DONE: break;
	}
	return SMTP_CLIENT_PHASE_DONE;
}

static const char *state_name(enum state st)
{
	return smtp_client_phase_name(phase_of(st));
}

/* A reply that makes no sense where it came: the session cannot go on. */
static void fail_unexpected(struct smtp_client *c)
{
	char r[256];

	smtp_reply_format(&c->reply, r, sizeof r);
	fail(c, set_local(c, 451, "4.5.0", "Unexpected reply during %s: %s", state_name(c->st), r));
}

static void fail_nomem(struct smtp_client *c)
{
	fail(c, set_local(c, 451, "4.3.0", "Local resource failure (out of memory)"));
}

static void enter_ready(struct smtp_client *c)
{
	c->st = ST_READY;
	c->body = NULL;
	push(c, SMTP_CLIENT_EV_READY, 0, NULL);
}

/* --- output --------------------------------------------------------------- */

static inline char *put(char *d, const char *s, size_t n)
{
	memcpy(d, s, n);
	return d + n;
}

#define PUT_LIT(d, s) put((d), (s), sizeof(s) - 1)

/* Append a literal command; on failure the session fails (returns false). */
static bool out_cmd(struct smtp_client *c, const char *s, size_t n)
{
	if (sl_buf_append(&c->out, s, n) == 0)
		return true;
	fail_nomem(c);
	return false;
}

#define OUT_LIT(c, s) out_cmd((c), (s), sizeof(s) - 1)

static void send_hello(struct smtp_client *c, bool ehlo)
{
	char *d;

	if (sl_buf_reserve(&c->out, c->ehlo_len + 7) < 0) {
		fail_nomem(c);
		return;
	}
	d = c->out.data + c->out.len;
	d = put(d, ehlo ? "EHLO " : "HELO ", 5);
	d = put(d, c->ehlo_name, c->ehlo_len);
	d = PUT_LIT(d, "\r\n");
	c->out.len = (size_t)(d - c->out.data);
	c->st = ehlo ? ST_EHLO : ST_HELO;
}

static char *put_u64(char *d, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*d++ = tmp[--n];
	return d;
}

/* The first CR or LF in [p, end), or end. Eight bytes at a time: the
 * classic "has a zero byte" test on the word XOR each of the two bytes. */
static const char *find_cr_or_lf(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	while (end - p >= 8) {
		uint64_t v, a, b;

		memcpy(&v, p, 8);
		a = v ^ (ones * '\r');
		b = v ^ (ones * '\n');
		if ((((a - ones) & ~a) | ((b - ones) & ~b)) & highs)
			break;
		p += 8;
	}
	while (p < end && *p != '\r' && *p != '\n')
		p++;
	return p;
}

/*
 * Append the body dot-stuffed, every line ending in CRLF (a bare CR or LF
 * becomes CRLF, so no "\n.\n"-style terminator can be smuggled through),
 * then the terminating ".\r\n". Verbatim runs are copied in one piece, so
 * a clean body costs one scan and one copy per dot-line.
 */
static int write_body(struct smtp_client *c)
{
	const char *p = c->body, *end = c->body + c->body_len, *run = p, *q;
	struct sl_buf *o = &c->out;
	int rc;

	rc = sl_buf_reserve(o, c->body_len + c->body_len / 64 + 8);
	if (rc < 0)
		return rc;
	/* Invariant: p is at a line start; [run, p) is still to be copied. */
	while (p < end) {
		if (*p == '.') {
			if ((rc = sl_buf_append(o, run, (size_t)(p - run) + 1)) < 0)
				return rc;
			run = p; /* the dot goes out twice */
		}
		/* The common case first, with libc's vectorised memchr: the
		 * line's LF is preceded by its only CR. */
		q = memchr(p, '\n', (size_t)(end - p));
		if (q && q > p && q[-1] == '\r' && !memchr(p, '\r', (size_t)(q - 1 - p))) {
			p = q + 1; /* a proper line: part of the run */
			continue;
		}
		q = find_cr_or_lf(p, end);
		if (q + 1 < end && q[0] == '\r' && q[1] == '\n') {
			p = q + 2; /* a proper line: part of the run */
			continue;
		}
		/* A bare CR, a bare LF or an unterminated last line. */
		if ((rc = sl_buf_append(o, run, (size_t)(q - run))) < 0 ||
		    (rc = sl_buf_append(o, "\r\n", 2)) < 0)
			return rc;
		p = run = q < end ? q + 1 : end;
	}
	if ((rc = sl_buf_append(o, run, (size_t)(p - run))) < 0)
		return rc;
	return sl_buf_append(o, ".\r\n", 3);
}

/* Lock-step: move the next RCPT line from cmds to out. */
static void send_next_rcpt(struct smtp_client *c)
{
	const char *h = sl_buf_head(&c->cmds);
	const char *nl = memchr(h, '\n', sl_buf_avail(&c->cmds));
	size_t n = nl ? (size_t)(nl - h) + 1 : sl_buf_avail(&c->cmds);

	if (out_cmd(c, h, n))
		sl_buf_consume(&c->cmds, n);
}

/* --- replies -------------------------------------------------------------- */

static bool kw_is(const char *t, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n == k && strncasecmp(t, kw, k) == 0;
}

/* Record the extensions of an EHLO reply (raw bytes, n long). */
static void parse_ehlo(struct smtp_client *c, const char *raw, size_t n)
{
	size_t pos = 0, tl, k;
	const char *t;
	bool first = true;

	c->ext = 0;
	c->size_max = 0;
	while (smtp_reply_next_line(raw, n, &pos, &t, &tl)) {
		if (first) { /* the server's name and greeting */
			first = false;
			continue;
		}
		for (k = 0; k < tl && t[k] != ' ' && t[k] != '='; k++)
			;
		if (kw_is(t, k, "PIPELINING")) {
			c->ext |= SMTP_CLIENT_EXT_PIPELINING;
		} else if (kw_is(t, k, "SIZE")) {
			uint64_t v = 0;

			c->ext |= SMTP_CLIENT_EXT_SIZE;
			while (k < tl && t[k] == ' ')
				k++;
			for (; k < tl && t[k] >= '0' && t[k] <= '9'; k++)
				v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(t[k] - '0');
			c->size_max = v;
		} else if (kw_is(t, k, "8BITMIME")) {
			c->ext |= SMTP_CLIENT_EXT_8BITMIME;
		} else if (kw_is(t, k, "SMTPUTF8")) {
			c->ext |= SMTP_CLIENT_EXT_SMTPUTF8;
		} else if (kw_is(t, k, "STARTTLS")) {
			c->ext |= SMTP_CLIENT_EXT_STARTTLS;
		} else if (kw_is(t, k, "ENHANCEDSTATUSCODES")) {
			c->ext |= SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES;
		} else if (kw_is(t, k, "CHUNKING")) {
			c->ext |= SMTP_CLIENT_EXT_CHUNKING;
		} else if (kw_is(t, k, "DSN")) {
			c->ext |= SMTP_CLIENT_EXT_DSN;
		}
	}
}

/* EHLO or HELO accepted: STARTTLS if we can, else ready (or fail). */
static void after_hello(struct smtp_client *c)
{
	if (!c->tls_active && c->tls_available && (c->ext & SMTP_CLIENT_EXT_STARTTLS)) {
		if (OUT_LIT(c, "STARTTLS\r\n"))
			c->st = ST_STARTTLS;
	} else if (!c->tls_active && c->require_tls) {
		fail(c, set_local(c, 451, "4.7.4", "TLS required but STARTTLS not offered by server"));
	} else {
		enter_ready(c);
	}
}

static void on_starttls(struct smtp_client *c, size_t reply_len)
{
	int cls = c->reply.code / 100;
	char r[256];

	if (c->reply.code == 220) {
		/* Plaintext after the 220 would be read as if it came over
		 * TLS: an injection (CVE-2011-0411 style). */
		if (sl_buf_avail(&c->in) > reply_len) {
			fail(c, set_local(c, 451, "4.5.0", "Data after 220 to STARTTLS"));
			return;
		}
		c->st = ST_TLS;
		push(c, SMTP_CLIENT_EV_STARTTLS, 0, NULL);
	} else if (cls == 4 || cls == 5) {
		if (c->require_tls) {
			smtp_reply_format(&c->reply, r, sizeof r);
			fail(c, set_local(c, 451, "4.7.4", "TLS required but STARTTLS refused: %s", r));
		} else {
			enter_ready(c);
		}
	} else {
		fail_unexpected(c);
	}
}

static void on_mail(struct smtp_client *c)
{
	int cls = c->reply.code / 100;

	if (cls == 2) {
		c->st = ST_RCPT;
		if (!c->pipelined)
			send_next_rcpt(c);
	} else if (cls == 4 || cls == 5) {
		push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0, &c->reply);
		c->msg_done = true;
		if (c->pipelined) {
			c->mail_failed = true; /* drain the RCPT and DATA replies */
			c->st = ST_RCPT;
		} else {
			enter_ready(c);
		}
	} else {
		fail_unexpected(c);
	}
}

static void on_rcpt(struct smtp_client *c)
{
	int cls = c->reply.code / 100;

	if (!c->mail_failed) {
		if (cls == 2) {
			c->n_ok++;
		} else if (cls == 4 || cls == 5) {
			push(c, SMTP_CLIENT_EV_RCPT, c->rcpt_i, &c->reply);
		} else {
			fail_unexpected(c);
			return;
		}
	}
	if (++c->rcpt_i < c->n_rcpts) {
		if (!c->pipelined)
			send_next_rcpt(c);
		return;
	}
	if (c->pipelined) {
		c->st = ST_DATA;
	} else if (c->n_ok > 0) {
		if (OUT_LIT(c, "DATA\r\n"))
			c->st = ST_DATA;
	} else {
		push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0,
		     set_local(c, 554, "5.5.1", "No valid recipients"));
		c->msg_done = true;
		if (OUT_LIT(c, "RSET\r\n"))
			c->st = ST_RSET;
	}
}

static void on_data(struct smtp_client *c)
{
	int cls = c->reply.code / 100;

	if (c->reply.code == 354) {
		if (c->mail_failed || c->n_ok == 0) {
			/* Pipelined DATA accepted with nobody to deliver to:
			 * end the transaction with an empty message. */
			if (!c->msg_done) {
				push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0,
				     set_local(c, 554, "5.5.1", "No valid recipients"));
				c->msg_done = true;
			}
			if (OUT_LIT(c, ".\r\n"))
				c->st = ST_DOT;
			return;
		}
		if (write_body(c) < 0) {
			fail_nomem(c);
			return;
		}
		c->st = ST_DOT;
	} else if (cls == 4 || cls == 5) {
		if (c->mail_failed) { /* no transaction is open */
			enter_ready(c);
			return;
		}
		if (!c->msg_done) {
			push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0, &c->reply);
			c->msg_done = true;
		}
		if (OUT_LIT(c, "RSET\r\n"))
			c->st = ST_RSET;
	} else {
		fail_unexpected(c);
	}
}

static void on_dot(struct smtp_client *c)
{
	int cls = c->reply.code / 100;

	if (cls != 2 && cls != 4 && cls != 5) {
		fail_unexpected(c);
		return;
	}
	if (!c->msg_done) {
		push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0, &c->reply);
		c->msg_done = true;
	}
	enter_ready(c);
}

/* Act on the reply just parsed into c->reply; raw/len are its bytes. */
static void on_reply(struct smtp_client *c, const char *raw, size_t len)
{
	int cls = c->reply.code / 100;

	if (c->st == ST_QUIT) {
		c->st = ST_DONE;
		push(c, SMTP_CLIENT_EV_CLOSED, 0, NULL);
		return;
	}
	if (c->reply.code == 421) {
		fail(c, &c->reply);
		return;
	}
	switch (c->st) {
	case ST_GREETING:
		if (c->reply.code == 220)
			send_hello(c, true);
		else if (cls == 4 || cls == 5)
			fail(c, &c->reply);
		else
			fail_unexpected(c);
		break;
	case ST_EHLO:
		if (cls == 2) {
			parse_ehlo(c, raw, len);
			after_hello(c);
		} else if (cls == 5) {
			send_hello(c, false);
		} else if (cls == 4) {
			fail(c, &c->reply);
		} else {
			fail_unexpected(c);
		}
		break;
	case ST_HELO:
		if (cls == 2) {
			c->ext = 0;
			c->size_max = 0;
			after_hello(c);
		} else if (cls == 4 || cls == 5) {
			fail(c, &c->reply);
		} else {
			fail_unexpected(c);
		}
		break;
	case ST_STARTTLS:
		on_starttls(c, len);
		break;
	case ST_MAIL:
		on_mail(c);
		break;
	case ST_RCPT:
		on_rcpt(c);
		break;
	case ST_DATA:
		on_data(c);
		break;
	case ST_DOT:
		on_dot(c);
		break;
	case ST_RSET:
		if (cls == 2)
			enter_ready(c);
		else if (cls == 4 || cls == 5)
			fail(c, &c->reply);
		else
			fail_unexpected(c);
		break;
	case ST_READY: /* unsolicited */
	case ST_TLS:   /* handled by step() */
	case ST_QUIT:
	case ST_DONE:
		fail_unexpected(c);
		break;
	}
}

/* Make one step of progress: 1 if something happened, 0 if waiting. */
static int step(struct smtp_client *c)
{
	size_t avail = sl_buf_avail(&c->in), n = 0;
	int rc;

	if (avail > 0) {
		if (c->st == ST_TLS) {
			fail(c, set_local(c, 451, "4.5.0", "Plaintext received during TLS handshake"));
			return 1;
		}
		rc = smtp_reply_scan(sl_buf_head(&c->in), avail, &c->scan);
		if (rc == 1)
			rc = smtp_reply_parse(sl_buf_head(&c->in), c->scan, &c->reply, &n);
		if (rc < 0) {
			if (c->st == ST_QUIT) {
				c->st = ST_DONE;
				push(c, SMTP_CLIENT_EV_CLOSED, 0, NULL);
			} else {
				fail(c, set_local(c, 451, "4.5.0", "Malformed reply from server during %s",
						  state_name(c->st)));
			}
			return 1;
		}
		if (rc == 1) {
			on_reply(c, sl_buf_head(&c->in), n);
			sl_buf_consume(&c->in, n);
			c->scan = 0;
			return 1;
		}
	}
	if (c->abort != ABORT_NONE) {
		if (c->st == ST_QUIT) {
			c->st = ST_DONE;
			push(c, SMTP_CLIENT_EV_CLOSED, 0, NULL);
		} else if (c->abort == ABORT_EOF) {
			fail(c, set_local(c, 451, "4.4.2", "Connection closed by server during %s",
					  state_name(c->st)));
		} else {
			fail(c, set_local(c, 451, "4.4.2", "Timeout during %s", state_name(c->st)));
		}
		return 1;
	}
	return 0;
}

/* --- public --------------------------------------------------------------- */

int smtp_client_create(const struct smtp_client_params *p, struct smtp_client **out)
{
	struct smtp_client *c;
	size_t n;

	if (!p->ehlo_name || !*p->ehlo_name || (p->require_tls && !p->tls_available))
		return -EINVAL;
	n = strlen(p->ehlo_name);
	if (n > 255 || strpbrk(p->ehlo_name, " \t\r\n"))
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->ehlo_name = strdup(p->ehlo_name);
	if (!c->ehlo_name)
		goto fail;
	c->ehlo_len = n;
	c->tls_available = p->tls_available;
	c->require_tls = p->require_tls;
	c->st = ST_GREETING;
	*out = c;
	return 0;
fail:
	free(c);
	return -ENOMEM;
}

void smtp_client_destroy(struct smtp_client *c)
{
	if (!c)
		return;
	sl_buf_free(&c->in);
	sl_buf_free(&c->out);
	sl_buf_free(&c->cmds);
	free(c->ehlo_name);
	free(c);
}

int smtp_client_input(struct smtp_client *c, const void *data, size_t len)
{
	if (c->st == ST_DONE)
		return 0;
	return sl_buf_append(&c->in, data, len);
}

int smtp_client_next(struct smtp_client *c, struct smtp_client_event *ev)
{
	for (;;) {
		if (c->evq_len > 0) {
			*ev = c->evq[c->evq_head];
			c->evq_head = (c->evq_head + 1) % EVQ_LEN;
			c->evq_len--;
			return ev->kind;
		}
		if (c->st == ST_DONE || !step(c))
			break;
	}
	ev->kind = SMTP_CLIENT_EV_NONE;
	ev->rcpt = 0;
	ev->reply = NULL;
	ev->local = false;
	return SMTP_CLIENT_EV_NONE;
}

struct sl_buf *smtp_client_output(struct smtp_client *c)
{
	return &c->out;
}

void smtp_client_tls_started(struct smtp_client *c)
{
	if (c->st != ST_TLS)
		return;
	c->tls_active = true;
	c->ext = 0;
	c->size_max = 0;
	sl_buf_reset(&c->in);
	c->scan = 0;
	send_hello(c, true);
}

void smtp_client_tls_failed(struct smtp_client *c)
{
	if (c->st == ST_TLS)
		fail(c, set_local(c, 451, "4.7.5", "TLS handshake failed"));
}

static bool addr_ok(const char *a)
{
	return a && !a[strcspn(a, "\r\n<>")];
}

int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m)
{
	uint64_t size = m->size ? m->size : m->body_len;
	bool utf8 = m->flags & SMTP_CLIENT_MSG_SMTPUTF8;
	bool eightbit = (utf8 || (m->flags & SMTP_CLIENT_MSG_8BITMIME)) &&
			(c->ext & SMTP_CLIENT_EXT_8BITMIME);
	bool pipelined = c->ext & SMTP_CLIENT_EXT_PIPELINING;
	size_t from_len, mail_len, rcpts_len = 0;
	struct sl_buf *rb;
	char *d;
	unsigned i;

	if (c->st != ST_READY || c->evq_len > 0 || m->n_rcpts == 0 || !m->rcpts ||
	    (!m->body && m->body_len) || !addr_ok(m->mail_from))
		return -EINVAL;
	for (i = 0; i < m->n_rcpts; i++) {
		if (!addr_ok(m->rcpts[i]))
			return -EINVAL;
		rcpts_len += strlen(m->rcpts[i]) + sizeof("RCPT TO:<>\r\n") - 1;
	}

	if ((c->ext & SMTP_CLIENT_EXT_SIZE) && c->size_max && size > c->size_max) {
		push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0,
		     set_local(c, 552, "5.3.4", "Message size exceeds fixed maximum message size"));
		push(c, SMTP_CLIENT_EV_READY, 0, NULL);
		return 0;
	}
	if (utf8 && !(c->ext & SMTP_CLIENT_EXT_SMTPUTF8)) {
		push(c, SMTP_CLIENT_EV_MESSAGE_DONE, 0,
		     set_local(c, 553, "5.6.7", "SMTPUTF8 required but not supported by server"));
		push(c, SMTP_CLIENT_EV_READY, 0, NULL);
		return 0;
	}

	/* Reserve everything first so that a failure leaves nothing behind. */
	from_len = strlen(m->mail_from);
	mail_len = sizeof("MAIL FROM:<> SIZE=18446744073709551615 BODY=8BITMIME SMTPUTF8\r\n") +
		   from_len;
	if (sl_buf_reserve(&c->out, mail_len + (pipelined ? rcpts_len + 6 : 0)) < 0)
		return -ENOMEM;
	if (!pipelined) {
		sl_buf_reset(&c->cmds);
		if (sl_buf_reserve(&c->cmds, rcpts_len) < 0)
			return -ENOMEM;
	}

	d = c->out.data + c->out.len;
	d = PUT_LIT(d, "MAIL FROM:<");
	d = put(d, m->mail_from, from_len);
	d = PUT_LIT(d, ">");
	if (c->ext & SMTP_CLIENT_EXT_SIZE) {
		d = PUT_LIT(d, " SIZE=");
		d = put_u64(d, size);
	}
	if (eightbit)
		d = PUT_LIT(d, " BODY=8BITMIME");
	if (utf8)
		d = PUT_LIT(d, " SMTPUTF8");
	d = PUT_LIT(d, "\r\n");
	c->out.len = (size_t)(d - c->out.data);

	rb = pipelined ? &c->out : &c->cmds;
	d = rb->data + rb->len;
	for (i = 0; i < m->n_rcpts; i++) {
		d = PUT_LIT(d, "RCPT TO:<");
		d = put(d, m->rcpts[i], strlen(m->rcpts[i]));
		d = PUT_LIT(d, ">\r\n");
	}
	if (pipelined)
		d = PUT_LIT(d, "DATA\r\n");
	rb->len = (size_t)(d - rb->data);

	c->pipelined = pipelined;
	c->mail_failed = false;
	c->msg_done = false;
	c->n_rcpts = m->n_rcpts;
	c->rcpt_i = 0;
	c->n_ok = 0;
	c->body = m->body;
	c->body_len = m->body_len;
	c->st = ST_MAIL;
	return 0;
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->st == ST_READY) {
		/* A READY still queued is moot now. */
		if (c->evq_len > 0 &&
		    c->evq[(c->evq_head + c->evq_len - 1) % EVQ_LEN].kind == SMTP_CLIENT_EV_READY)
			c->evq_len--;
		if (sl_buf_append(&c->out, "QUIT\r\n", 6) == 0) {
			c->st = ST_QUIT;
			return;
		}
	} else if (c->st == ST_QUIT || c->st == ST_DONE) {
		return;
	}
	c->st = ST_DONE;
	c->body = NULL;
	push(c, SMTP_CLIENT_EV_CLOSED, 0, NULL);
}

void smtp_client_eof(struct smtp_client *c)
{
	if (c->abort == ABORT_NONE)
		c->abort = ABORT_EOF;
}

void smtp_client_timeout(struct smtp_client *c)
{
	if (c->abort == ABORT_NONE)
		c->abort = ABORT_TIMEOUT;
}

bool smtp_client_has_ext(const struct smtp_client *c, unsigned ext)
{
	return (c->ext & ext) == ext && ext != 0;
}

uint64_t smtp_client_size_max(const struct smtp_client *c)
{
	return (c->ext & SMTP_CLIENT_EXT_SIZE) ? c->size_max : 0;
}

bool smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

enum smtp_client_phase smtp_client_phase(const struct smtp_client *c)
{
	return phase_of(c->st);
}

const char *smtp_client_phase_name(enum smtp_client_phase phase)
{
	switch (phase) {
	case SMTP_CLIENT_PHASE_GREETING: return "greeting";
	case SMTP_CLIENT_PHASE_EHLO: return "EHLO";
	case SMTP_CLIENT_PHASE_STARTTLS: return "STARTTLS";
	case SMTP_CLIENT_PHASE_TLS: return "TLS handshake";
	case SMTP_CLIENT_PHASE_IDLE: return "idle";
	case SMTP_CLIENT_PHASE_MAIL: return "MAIL FROM";
	case SMTP_CLIENT_PHASE_RCPT: return "RCPT TO";
	case SMTP_CLIENT_PHASE_DATA: return "DATA";
	case SMTP_CLIENT_PHASE_DOT: return "end of data";
	case SMTP_CLIENT_PHASE_RSET: return "RSET";
	case SMTP_CLIENT_PHASE_QUIT: return "QUIT";
	case SMTP_CLIENT_PHASE_DONE: return "closed";
	}
	return "?";
}
