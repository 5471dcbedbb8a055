/*
 * test_smtp_server.c — the ESMTP server session: golden transcripts plus
 * direct API tests.
 *
 * Every tests/unit/transcripts/server_*.txt is replayed several times: each
 * client round fed whole, fed one byte at a time, and split in two at every
 * offset; the server's replies and events must match the file every time.
 *
 * Transcript format (one item per line; '#' starts a comment line):
 *   @key value   session setup, before the first C/R line:
 *                hostname, max_line, max_size, max_rcpts, max_errors,
 *                tls (STARTTLS offered), auth (AUTH offered), relay,
 *                greet (queue the banner, default 1), implicit_tls
 *   C: text      the client sends text CRLF
 *   R: text      the client sends text raw; escapes \r \n \t \\ \xHH
 *   S: text      the server sends this line (non-printables as \xHH)
 *   E: text      the session returns this event (see event_text())
 *   B: text      a line of the message body carried by the last E: MESSAGE
 *   A: action    answers the next event of this round
 *   X: action    done once the round's input is consumed
 *   --           ends a round (a C/R line after S/E/B/A/X also starts one)
 * Actions: "auth ok TENANT", "auth fail", "message CODE ENH TEXT...", "tls",
 * "timeout", "relay 0|1".
 *
 * SLUICE_TRANSCRIPT_DUMP=FILE prints what the session does with FILE (fed
 * whole) in the same format, to write new transcripts.
 */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "smtp_server.h"

/* ---- transcript model ---- */

struct round {
	struct sl_buf input;
	char **acts; /* A: lines */
	size_t n_acts;
	char **xacts; /* X: lines */
	size_t n_xacts;
};

struct transcript {
	char *path;
	struct smtp_server_limits lim;
	char hostname[256];
	bool relay, greet, implicit_tls;
	struct round *rounds;
	size_t n_rounds;
	struct sl_buf expected; /* "S: ...\n", "E: ...\n", "B: ...\n" */
};

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static void push(char ***v, size_t *n, const char *s)
{
	*v = realloc(*v, (*n + 1) * sizeof(**v));
	assert_non_null(*v);
	(*v)[(*n)++] = xstrdup(s);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void unescape_into(struct sl_buf *b, const char *s)
{
	for (; *s; s++) {
		char c = *s;

		if (c == '\\' && s[1]) {
			s++;
			switch (*s) {
			case 'r': c = '\r'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case '0': c = 0; break;
			case 'x':
				assert_true(hexval(s[1]) >= 0 && hexval(s[2]) >= 0);
				c = (char)(hexval(s[1]) << 4 | hexval(s[2]));
				s += 2;
				break;
			default: c = *s; break;
			}
		}
		assert_int_equal(sl_buf_append(b, &c, 1), 0);
	}
}

/* Printable form of n bytes, as used on S: and B: lines. */
static void escape_into(struct sl_buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\\')
			assert_int_equal(sl_buf_append(b, "\\\\", 2), 0);
		else if (c < 32 || c >= 127)
			assert_int_equal(sl_buf_appendf(b, "\\x%02x", c), 0);
		else
			assert_int_equal(sl_buf_append(b, &p[i], 1), 0);
	}
}

static void transcript_free(struct transcript *t)
{
	for (size_t i = 0; i < t->n_rounds; i++) {
		struct round *r = &t->rounds[i];

		sl_buf_free(&r->input);
		for (size_t k = 0; k < r->n_acts; k++)
			free(r->acts[k]);
		for (size_t k = 0; k < r->n_xacts; k++)
			free(r->xacts[k]);
		free(r->acts);
		free(r->xacts);
	}
	free(t->rounds);
	sl_buf_free(&t->expected);
	free(t->path);
}

static void transcript_load(struct transcript *t, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool in_output = true; /* next C/R line opens a round */
	int lineno = 0;

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	memset(t, 0, sizeof(*t));
	t->path = xstrdup(path);
	snprintf(t->hostname, sizeof(t->hostname), "mx.test");
	t->lim = (struct smtp_server_limits){
		.max_line = 1000, .max_size = 1 << 20, .max_rcpts = 100, .max_errors = 10,
		.tls_available = true, .auth_available = true,
	};
	t->greet = true;

	while ((n = getline(&line, &cap, f)) >= 0) {
		struct round *r = t->n_rounds ? &t->rounds[t->n_rounds - 1] : NULL;
		const char *arg = n >= 3 ? line + 3 : "";

		lineno++;
		if (n && line[n - 1] == '\n')
			line[--n] = 0;
		if (n == 0 || line[0] == '#')
			continue;
		if (line[0] == '@') {
			char key[32];
			char val[256];

			assert_false(t->n_rounds);
			if (sscanf(line, "@%31s %255s", key, val) != 2)
				fail_msg("%s:%d: bad option", path, lineno);
			if (!strcmp(key, "hostname"))
				snprintf(t->hostname, sizeof(t->hostname), "%s", val);
			else if (!strcmp(key, "max_line"))
				t->lim.max_line = strtoul(val, NULL, 10);
			else if (!strcmp(key, "max_size"))
				t->lim.max_size = strtoul(val, NULL, 10);
			else if (!strcmp(key, "max_rcpts"))
				t->lim.max_rcpts = (unsigned)strtoul(val, NULL, 10);
			else if (!strcmp(key, "max_errors"))
				t->lim.max_errors = (unsigned)strtoul(val, NULL, 10);
			else if (!strcmp(key, "tls"))
				t->lim.tls_available = atoi(val);
			else if (!strcmp(key, "auth"))
				t->lim.auth_available = atoi(val);
			else if (!strcmp(key, "relay"))
				t->relay = atoi(val);
			else if (!strcmp(key, "greet"))
				t->greet = atoi(val);
			else if (!strcmp(key, "implicit_tls"))
				t->implicit_tls = atoi(val);
			else
				fail_msg("%s:%d: unknown option %s", path, lineno, key);
			continue;
		}
		if (!strcmp(line, "--")) {
			in_output = true;
			continue;
		}
		if (n < 2 || line[1] != ':' || (n > 2 && line[2] != ' '))
			fail_msg("%s:%d: bad line: %s", path, lineno, line);
		switch (line[0]) {
		case 'C':
		case 'R':
			if (in_output || !r) {
				t->rounds = realloc(t->rounds, (t->n_rounds + 1) * sizeof(*t->rounds));
				assert_non_null(t->rounds);
				r = &t->rounds[t->n_rounds++];
				memset(r, 0, sizeof(*r));
				in_output = false;
			}
			if (line[0] == 'C') {
				assert_int_equal(sl_buf_append(&r->input, arg, strlen(arg)), 0);
				assert_int_equal(sl_buf_append(&r->input, "\r\n", 2), 0);
			} else {
				unescape_into(&r->input, arg);
			}
			break;
		case 'S':
		case 'E':
		case 'B':
			in_output = true;
			assert_int_equal(sl_buf_appendf(&t->expected, "%c: %s\n", line[0], arg), 0);
			break;
		case 'A':
		case 'X':
			in_output = true;
			if (!r) { /* actions before any input: an empty round */
				t->rounds = calloc(1, sizeof(*t->rounds));
				assert_non_null(t->rounds);
				r = &t->rounds[t->n_rounds++];
			}
			if (line[0] == 'A')
				push(&r->acts, &r->n_acts, arg);
			else
				push(&r->xacts, &r->n_xacts, arg);
			break;
		default:
			fail_msg("%s:%d: bad line: %s", path, lineno, line);
		}
	}
	free(line);
	fclose(f);
	t->lim.hostname = t->hostname;
}

/* ---- replay ---- */

struct run {
	struct smtp_server *s;
	struct sl_buf actual;
	struct round *round;
	size_t next_act;
	bool closed;
};

static void drain(struct run *run)
{
	struct sl_buf *out = smtp_server_output(run->s);
	const char *p, *crlf;

	while (sl_buf_avail(out) &&
	       (crlf = memmem(sl_buf_head(out), sl_buf_avail(out), "\r\n", 2)) != NULL) {
		p = sl_buf_head(out);
		assert_int_equal(sl_buf_append(&run->actual, "S: ", 3), 0);
		escape_into(&run->actual, p, (size_t)(crlf - p));
		assert_int_equal(sl_buf_append(&run->actual, "\n", 1), 0);
		sl_buf_consume(out, (size_t)(crlf + 2 - p));
	}
}

static void event_text(struct sl_buf *b, const struct smtp_server_event *ev)
{
	const struct smtp_server_message *m = &ev->msg;
	static const char *const body_names[] = { "-", "7BIT", "8BITMIME" };

	switch (ev->kind) {
	case SMTP_SERVER_EV_STARTTLS:
		sl_buf_appendf(b, "E: STARTTLS\n");
		break;
	case SMTP_SERVER_EV_AUTH:
		sl_buf_appendf(b, "E: AUTH %s user=%s pass=%s\n", ev->auth.mechanism,
			       ev->auth.username, ev->auth.password);
		break;
	case SMTP_SERVER_EV_CLOSE:
		sl_buf_appendf(b, "E: CLOSE\n");
		break;
	case SMTP_SERVER_EV_MESSAGE:
		sl_buf_appendf(b, "E: MESSAGE helo=%s esmtp=%d tls=%d tenant=%s from=<", m->helo,
			       m->esmtp, m->tls, m->tenant ? m->tenant : "-");
		escape_into(b, m->mail_from, strlen(m->mail_from));
		sl_buf_appendf(b, "> size=%llu body=%s utf8=%d rcpts=", (unsigned long long)m->size,
			       body_names[m->body_type], m->smtputf8);
		for (size_t i = 0; i < m->n_rcpts; i++) {
			sl_buf_appendf(b, "%s<", i ? "," : "");
			escape_into(b, m->rcpts[i], strlen(m->rcpts[i]));
			sl_buf_appendf(b, ">");
		}
		sl_buf_appendf(b, "\n");
		for (const char *p = m->body, *end = p + m->body_len; p < end;) {
			const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
			const char *stop = crlf ? crlf : end;

			sl_buf_appendf(b, crlf ? "B: " : "B!: ");
			escape_into(b, p, (size_t)(stop - p));
			sl_buf_appendf(b, "\n");
			p = crlf ? crlf + 2 : end;
		}
		break;
	default:
		sl_buf_appendf(b, "E: ?%d\n", ev->kind);
	}
}

static void act(struct run *run, const char *a)
{
	char tenant[128], enh[32];
	int code, off = 0;

	if (sscanf(a, "auth ok %127s", tenant) == 1) {
		assert_int_equal(smtp_server_auth_result(run->s, true, tenant), 0);
	} else if (!strcmp(a, "auth fail")) {
		assert_int_equal(smtp_server_auth_result(run->s, false, NULL), 0);
	} else if (sscanf(a, "message %d %31s %n", &code, enh, &off) == 2 && off) {
		assert_int_equal(smtp_server_message_result(run->s, code, enh, a + off), 0);
	} else if (!strcmp(a, "tls")) {
		assert_int_equal(smtp_server_tls_started(run->s), 0);
	} else if (!strcmp(a, "timeout")) {
		smtp_server_timeout(run->s);
	} else if (!strcmp(a, "relay 1") || !strcmp(a, "relay 0")) {
		smtp_server_set_relay_allowed(run->s, a[6] == '1');
	} else {
		fail_msg("unknown action: %s", a);
	}
}

static void pump(struct run *run)
{
	struct smtp_server_event ev;
	int k;

	for (;;) {
		k = smtp_server_next(run->s, &ev);
		drain(run);
		if (k == SMTP_SERVER_EV_NONE)
			break;
		if (k < 0) {
			sl_buf_appendf(&run->actual, "E: ERROR %s\n", sl_strerror(k));
			break;
		}
		event_text(&run->actual, &ev);
		if (k == SMTP_SERVER_EV_CLOSE) {
			assert_true(smtp_server_want_close(run->s));
			run->closed = true;
		}
		if (run->round && run->next_act < run->round->n_acts)
			act(run, run->round->acts[run->next_act++]);
	}
	drain(run);
}

/* Replay t. split: 0 = each round whole, 1 = byte by byte, k > 1 = each
 * round cut at offset k. The result is in run->actual. */
static void replay(struct transcript *t, size_t split, struct sl_buf *actual)
{
	struct run run = { 0 };

	assert_int_equal(smtp_server_create(&t->lim, &run.s), 0);
	smtp_server_set_relay_allowed(run.s, t->relay);
	if (t->implicit_tls)
		assert_int_equal(smtp_server_tls_started(run.s), 0);
	if (t->greet)
		smtp_server_greet(run.s);
	pump(&run);
	for (size_t i = 0; i < t->n_rounds; i++) {
		struct round *r = &t->rounds[i];
		const char *p = sl_buf_head(&r->input);
		size_t n = sl_buf_avail(&r->input), off = 0;

		run.round = r;
		run.next_act = 0;
		while (off < n) {
			size_t chunk = n - off;

			if (split == 1)
				chunk = 1;
			else if (split > 1 && off < split && split < n)
				chunk = split - off;
			if (!run.closed)
				assert_int_equal(smtp_server_input(run.s, p + off, chunk), 0);
			off += chunk;
			pump(&run);
		}
		for (size_t k = 0; k < r->n_xacts; k++) {
			act(&run, r->xacts[k]);
			pump(&run);
		}
		if (run.next_act != r->n_acts)
			sl_buf_appendf(&run.actual, "# %zu unused A: actions in round %zu\n",
				       r->n_acts - run.next_act, i + 1);
	}
	if (sl_buf_avail(smtp_server_output(run.s)))
		sl_buf_appendf(&run.actual, "S!: output without CRLF\n");
	smtp_server_destroy(run.s);
	*actual = run.actual;
}

static void compare(const struct transcript *t, const struct sl_buf *actual, const char *mode)
{
	const char *e = t->expected.data ? t->expected.data : "";
	const char *a = actual->data ? actual->data : "";
	size_t el = t->expected.len, al = actual->len, i = 0, line = 1, ls = 0;

	if (el == al && memcmp(e, a, el) == 0)
		return;
	while (i < el && i < al && e[i] == a[i]) {
		if (e[i] == '\n') {
			line++;
			ls = i + 1;
		}
		i++;
	}
	print_error("%s (%s): output differs at output line %zu\n"
		    "  expected: %.*s\n  actual:   %.*s\n--- full actual output ---\n%.*s",
		    t->path, mode, line, (int)strcspn(e + ls, "\n"), e + ls,
		    (int)strcspn(a + ls, "\n"), a + ls, (int)al, a);
	fail();
}

static void test_transcript(void **state)
{
	const char *path = *state;
	struct transcript t;
	struct sl_buf actual;
	size_t longest = 0;
	char mode[64];

	transcript_load(&t, path);
	for (size_t i = 0; i < t.n_rounds; i++)
		if (sl_buf_avail(&t.rounds[i].input) > longest)
			longest = sl_buf_avail(&t.rounds[i].input);

	/* Every cut offset up to 2 KiB, then a sparser sample: byte by byte
	 * already crosses every boundary, this keeps the run O(n). */
	for (size_t split = 0; split < longest || split < 2; split += split < 2048 ? 1 : 61) {
		replay(&t, split, &actual);
		snprintf(mode, sizeof(mode), split == 0 ? "rounds whole" :
					     split == 1 ? "byte by byte" : "rounds cut at %zu",
			 split);
		compare(&t, &actual, mode);
		sl_buf_free(&actual);
	}
	transcript_free(&t);
}

/* ---- direct tests ---- */

static const struct smtp_server_limits base_lim = {
	.hostname = "mx.test", .max_line = 1000, .max_size = 1 << 20, .max_rcpts = 100,
	.max_errors = 10, .tls_available = true, .auth_available = true,
};

static struct smtp_server *mk(const struct smtp_server_limits *lim, bool relay)
{
	struct smtp_server *s;

	assert_int_equal(smtp_server_create(lim ? lim : &base_lim, &s), 0);
	smtp_server_set_relay_allowed(s, relay);
	return s;
}

static void feed(struct smtp_server *s, const char *str)
{
	assert_int_equal(smtp_server_input(s, str, strlen(str)), 0);
}

/* Run to the next event or NONE; output collected into out (if given). */
static int step(struct smtp_server *s, struct smtp_server_event *ev, struct sl_buf *out)
{
	int k = smtp_server_next(s, ev);
	struct sl_buf *o = smtp_server_output(s);

	if (out && sl_buf_avail(o))
		assert_int_equal(sl_buf_append(out, sl_buf_head(o), sl_buf_avail(o)), 0);
	sl_buf_consume(o, sl_buf_avail(o));
	return k;
}

static size_t count(const struct sl_buf *b, const char *needle)
{
	size_t n = 0;
	const char *p = b->data, *end = b->data + b->len;

	while (p && p < end && (p = memmem(p, (size_t)(end - p), needle, strlen(needle)))) {
		n++;
		p++;
	}
	return n;
}

static void test_create_rejects_bad_limits(void **state)
{
	struct smtp_server_limits l = base_lim;
	struct smtp_server *s = (void *)1;

	(void)state;
	l.hostname = NULL;
	assert_int_equal(smtp_server_create(&l, &s), -EINVAL);
	assert_null(s);
	l = base_lim;
	l.hostname = "bad host";
	assert_int_equal(smtp_server_create(&l, &s), -EINVAL);
	l = base_lim;
	l.max_line = 4;
	assert_int_equal(smtp_server_create(&l, &s), -EINVAL);
	l = base_lim;
	l.max_size = 0;
	assert_int_equal(smtp_server_create(&l, &s), -EINVAL);
	l = base_lim;
	l.max_rcpts = 0;
	assert_int_equal(smtp_server_create(&l, &s), -EINVAL);
	smtp_server_destroy(NULL);
}

static void test_wrong_state_answers(void **state)
{
	struct smtp_server *s = mk(NULL, true);
	struct smtp_server_event ev;

	(void)state;
	assert_int_equal(smtp_server_auth_result(s, true, "t"), -EINVAL);
	assert_int_equal(smtp_server_message_result(s, 250, "2.0.0", "Ok"), -EINVAL);
	feed(s, "EHLO c\r\n");
	assert_int_equal(step(s, &ev, NULL), SMTP_SERVER_EV_NONE);
	/* implicit TLS only before anything happened */
	assert_int_equal(smtp_server_tls_started(s), -EINVAL);
	smtp_server_destroy(s);
}

static void test_timeout_kinds_and_blocking(void **state)
{
	struct smtp_server *s = mk(NULL, true);
	struct smtp_server_event ev;
	struct sl_buf out = { 0 };

	(void)state;
	smtp_server_greet(s);
	assert_int_equal(smtp_server_timeout_kind(s), SMTP_SERVER_TIMEOUT_COMMAND);
	feed(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_int_equal(smtp_server_timeout_kind(s), SMTP_SERVER_TIMEOUT_DATA);
	assert_true(smtp_server_want_input(s));
	feed(s, "hi\r\n.\r\nNOOP\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_MESSAGE);
	assert_int_equal(smtp_server_timeout_kind(s), SMTP_SERVER_TIMEOUT_NONE);
	assert_false(smtp_server_want_input(s));
	/* blocked: the pipelined NOOP waits for the answer */
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_int_equal(count(&out, "250 2.0.0 Ok\r\n"), 0);
	/* a peer that keeps sending while we wait is cut off */
	{
		static char junk[64 * 1024];
		int rc = 0;

		memset(junk, 'x', sizeof(junk));
		for (int i = 0; i < 40 && rc == 0; i++)
			rc = smtp_server_input(s, junk, sizeof(junk));
		assert_int_equal(rc, SL_ETOOBIG);
	}
	assert_int_equal(smtp_server_message_result(s, 250, "2.0.0", "Ok: queued as 1"), 0);
	assert_int_equal(smtp_server_message_result(s, 250, "2.0.0", "again"), -EINVAL);
	smtp_server_timeout(s);
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_CLOSE);
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_true(smtp_server_want_close(s));
	assert_int_equal(smtp_server_timeout_kind(s), SMTP_SERVER_TIMEOUT_NONE);
	assert_int_equal(count(&out, "250 2.0.0 Ok: queued as 1\r\n"), 1);
	assert_int_equal(count(&out, "421 4.4.2 mx.test Error: timeout exceeded\r\n"), 1);
	sl_buf_free(&out);
	smtp_server_destroy(s);
}

static void test_timeout_while_spooling(void **state)
{
	struct smtp_server *s = mk(NULL, true);
	struct smtp_server_event ev;

	(void)state;
	feed(s, "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\r\n.\r\n");
	assert_int_equal(step(s, &ev, NULL), SMTP_SERVER_EV_MESSAGE);
	smtp_server_timeout(s);
	/* the event's strings stay valid until the answer */
	assert_string_equal(ev.msg.rcpts[0], "c@d.example");
	assert_int_equal(ev.msg.body_len, 3);
	assert_int_equal(step(s, &ev, NULL), SMTP_SERVER_EV_CLOSE);
	assert_int_equal(smtp_server_message_result(s, 250, "2.0.0", "late"), 0);
	smtp_server_destroy(s);
}

static void test_output_backpressure(void **state)
{
	struct smtp_server *s = mk(NULL, true);
	struct smtp_server_event ev;
	struct sl_buf in = { 0 };
	struct sl_buf *out = smtp_server_output(s);
	size_t replies = 0;
	const size_t n = 10000;

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sl_buf_append(&in, "NOOP\r\n", 6), 0);
	assert_int_equal(smtp_server_input(s, in.data, in.len), 0);
	assert_int_equal(smtp_server_next(s, &ev), SMTP_SERVER_EV_NONE);
	assert_true(sl_buf_avail(out) >= SMTP_SERVER_OUTPUT_HIGH);
	assert_true(sl_buf_avail(out) < SMTP_SERVER_OUTPUT_HIGH + 64);
	assert_false(smtp_server_want_input(s));
	while (replies < n) {
		size_t got = sl_buf_avail(out);

		assert_true(got > 0);
		replies += got / strlen("250 2.0.0 Ok\r\n");
		sl_buf_consume(out, got);
		assert_int_equal(smtp_server_next(s, &ev), SMTP_SERVER_EV_NONE);
	}
	assert_int_equal(replies, n);
	assert_true(smtp_server_want_input(s));
	sl_buf_free(&in);
	smtp_server_destroy(s);
}

/* xorshift, deterministic */
static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Random content with many dot lines, sent in random chunks: the body in
 * the event is exactly the unstuffed content. */
static void test_random_bodies(void **state)
{
	(void)state;
	for (int iter = 0; iter < 40; iter++) {
		struct smtp_server *s = mk(NULL, true);
		struct smtp_server_event ev;
		struct sl_buf want = { 0 }, wire = { 0 }, out = { 0 };
		size_t lines = rnd() % 400, off = 0;
		int k = SMTP_SERVER_EV_NONE;

		assert_int_equal(sl_buf_appendf(&wire, "EHLO c\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\n"
						       "RCPT TO:<c@d.example>\r\nDATA\r\n"), 0);
		for (size_t i = 0; i < lines; i++) {
			char line[1000];
			size_t len = rnd() % 200;

			if (rnd() % 8 == 0)
				len = 998; /* the longest allowed */
			for (size_t j = 0; j < len; j++) {
				static const char alpha[] = "ab. \t.\x80\xff";

				line[j] = alpha[rnd() % (sizeof(alpha) - 1)];
			}
			if (len && rnd() % 3 == 0)
				line[0] = '.';
			sl_buf_append(&want, line, len);
			sl_buf_append(&want, "\r\n", 2);
			if (len && line[0] == '.')
				sl_buf_append(&wire, ".", 1);
			sl_buf_append(&wire, line, len);
			sl_buf_append(&wire, "\r\n", 2);
		}
		sl_buf_append(&wire, ".\r\nQUIT\r\n", 9);
		while (off < wire.len) {
			size_t chunk = 1 + rnd() % 3000;

			if (chunk > wire.len - off)
				chunk = wire.len - off;
			assert_int_equal(smtp_server_input(s, wire.data + off, chunk), 0);
			off += chunk;
			while ((k = step(s, &ev, &out)) > 0) {
				if (k == SMTP_SERVER_EV_CLOSE)
					break;
				assert_int_equal(k, SMTP_SERVER_EV_MESSAGE);
				assert_int_equal(ev.msg.body_len, want.len);
				assert_memory_equal(ev.msg.body, want.data ? want.data : "", want.len);
				assert_int_equal(ev.msg.body_type, SMTP_SERVER_BODY_8BITMIME);
				assert_int_equal(smtp_server_message_result(s, 250, "2.0.0", "Ok"), 0);
			}
		}
		assert_true(smtp_server_want_close(s));
		assert_int_equal(count(&out, "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"), 1);
		sl_buf_free(&want);
		sl_buf_free(&wire);
		sl_buf_free(&out);
		smtp_server_destroy(s);
	}
}

/* Every way to fake an end of DATA with bare CR/LF: the fake never ends
 * the message, the smuggled commands never run, the real end gets 550. */
static void test_smuggling_matrix(void **state)
{
#define F(lit) { lit, sizeof(lit) - 1 }
	static const struct {
		const char *p;
		size_t n;
	} fakes[] = {
		F("\n.\n"), F("\r.\r"), F("\n.\r\n"), F("\r\n.\n"), F("\r.\r\n"),
		F("\r\n.\r"), F("\n.\r"), F("\r\n.\r\r\n"), F("\r\n\r.\r\n"),
		F("\r\n.\n\r\n"), F("\r\n\n.\r\n"),
		F("\n..\n.\n"), F("\r\n.\n.\r\n"),
	};
#undef F

	(void)state;
	for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++) {
		for (size_t cut = 0; cut < 3; cut++) {
			struct smtp_server *s = mk(NULL, true);
			struct smtp_server_event ev;
			struct sl_buf wire = { 0 }, out = { 0 };
			int k;

			sl_buf_appendf(&wire, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
					      "DATA\r\nSubject: x\r\n\r\nhello");
			sl_buf_append(&wire, fakes[i].p, fakes[i].n);
			sl_buf_appendf(&wire, "MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\n"
					      "DATA\r\nsmuggled\r\n.\r\nQUIT\r\n");
			if (cut == 0) {
				assert_int_equal(smtp_server_input(s, wire.data, wire.len), 0);
				k = step(s, &ev, &out);
			} else {
				for (size_t j = 0; j < wire.len; j += cut) {
					size_t c = wire.len - j < cut ? wire.len - j : cut;

					assert_int_equal(smtp_server_input(s, wire.data + j, c), 0);
					do
						k = step(s, &ev, &out);
					while (k == SMTP_SERVER_EV_CLOSE);
					assert_int_equal(k, SMTP_SERVER_EV_NONE);
				}
			}
			if (k != SMTP_SERVER_EV_CLOSE && k != SMTP_SERVER_EV_NONE)
				fail_msg("fake terminator %zu (cut %zu): event %d", i, cut, k);
			if (count(&out, "550 5.5.2 Message rejected: bare LF or CR in message\r\n") != 1 ||
			    count(&out, "250 2.1.0 Ok\r\n") != 1 || count(&out, "221 2.0.0 Bye\r\n") != 1)
				fail_msg("fake terminator %zu (cut %zu) not rejected: %.*s", i, cut,
					 (int)out.len, out.data);
			sl_buf_free(&wire);
			sl_buf_free(&out);
			smtp_server_destroy(s);
		}
	}
}

/* Long AUTH PLAIN lines up to RFC 4954's limit are fine even when
 * max_line is small; credentials are wiped from the input buffer. */
static void test_auth_long_line(void **state)
{
	struct smtp_server_limits l = base_lim;
	struct smtp_server *s;
	struct smtp_server_event ev;
	struct sl_buf out = { 0 };
	/* "\0user\0" + 250 x 'p' */
	char raw[300], line[600];
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t rn = 0, ln = 0;

	(void)state;
	l.max_line = 64;
	s = mk(&l, false);
	raw[rn++] = 0;
	memcpy(raw + rn, "user", 4);
	rn += 4;
	raw[rn++] = 0;
	memset(raw + rn, 'p', 250);
	rn += 250;
	ln = (size_t)sprintf(line, "AUTH PLAIN ");
	for (size_t i = 0; i < rn; i += 3) {
		unsigned v = (unsigned char)raw[i] << 16;

		v |= i + 1 < rn ? (unsigned char)raw[i + 1] << 8 : 0;
		v |= i + 2 < rn ? (unsigned char)raw[i + 2] : 0;
		line[ln++] = tbl[v >> 18 & 63];
		line[ln++] = tbl[v >> 12 & 63];
		line[ln++] = i + 1 < rn ? tbl[v >> 6 & 63] : '=';
		line[ln++] = i + 2 < rn ? tbl[v & 63] : '=';
	}
	memcpy(line + ln, "\r\n", 3);
	assert_int_equal(smtp_server_tls_started(s), 0);
	feed(s, "EHLO c\r\n");
	feed(s, line);
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_AUTH);
	assert_string_equal(ev.auth.username, "user");
	assert_int_equal(strlen(ev.auth.password), 250);
	assert_int_equal(smtp_server_auth_result(s, true, "acme"), 0);
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	if (count(&out, "235 2.7.0") != 1)
		fail_msg("%.*s", (int)out.len, out.data);
	/* a non-AUTH line of the same length is too long */
	line[0] = 'N', line[1] = 'O', line[2] = 'O', line[3] = 'P';
	feed(s, line);
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_int_equal(count(&out, "500 5.5.2 Error: line too long"), 1);
	sl_buf_free(&out);
	smtp_server_destroy(s);
}

static void test_message_result_sanitised(void **state)
{
	struct smtp_server *s = mk(NULL, true);
	struct smtp_server_event ev;
	struct sl_buf out = { 0 };

	(void)state;
	feed(s, "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n.\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_MESSAGE);
	assert_int_equal(ev.msg.body_len, 0);
	assert_non_null(ev.msg.body);
	assert_int_equal(smtp_server_message_result(s, 99, NULL, "x"), -EINVAL);
	assert_int_equal(smtp_server_message_result(s, 421, "4.3.0", "bad\r\nINJECT"), 0);
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_CLOSE);
	assert_int_equal(count(&out, "421 4.3.0 bad  INJECT\r\n"), 1);
	sl_buf_free(&out);
	smtp_server_destroy(s);
}

/* A tenant refusal answers MAIL FROM until cleared; the session goes on. */
static void test_mail_refusal(void **state)
{
	struct smtp_server *s = mk(NULL, true);
	struct smtp_server_event ev;
	struct sl_buf out = { 0 };

	(void)state;
	assert_int_equal(smtp_server_set_mail_refusal(s, 250, NULL, "x"), -EINVAL);
	assert_int_equal(smtp_server_set_mail_refusal(s, 550, "5.7.1",
						      "Account awaiting\r\noperator review"), 0);
	feed(s, "HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_int_equal(count(&out, "550 5.7.1 Account awaiting  operator review\r\n"), 1);
	assert_int_equal(count(&out, "503 5.5.1 Error: need MAIL command\r\n"), 1);
	assert_int_equal(smtp_server_set_mail_refusal(s, 0, NULL, NULL), 0);
	feed(s, "MAIL FROM:<a@b.example>\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_int_equal(count(&out, "250 2.1.0 Ok\r\n"), 1);
	sl_buf_free(&out);
	smtp_server_destroy(s);
}

/* The caller's RCPT check: refused recipients get its reply (control
 * bytes blanked), are not errors, and only the others reach the message. */
static int check_rcpt(void *ctx, const char *tenant, const char *rcpt, char *reply, size_t len)
{
	(*(int *)ctx)++;
	assert_null(tenant);
	if (strncmp(rcpt, "no", 2) != 0)
		return 0;
	snprintf(reply, len, "5.7.1 recipient suppressed\r(hard_bounce)");
	return 550;
}

static void test_rcpt_check(void **state)
{
	struct smtp_server_limits lim = base_lim;
	struct smtp_server *s;
	struct smtp_server_event ev;
	struct sl_buf out = { 0 };
	int calls = 0;

	(void)state;
	lim.max_errors = 2; /* the refusals would close the session if they counted */
	s = mk(&lim, true);
	smtp_server_set_rcpt_check(s, check_rcpt, &calls);
	feed(s, "HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<no1@d.example>\r\n"
		"RCPT TO:<no2@d.example>\r\nRCPT TO:<yes@d.example>\r\nRCPT TO:<bad>\r\n"
		"DATA\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_NONE);
	assert_int_equal(count(&out, "550 5.7.1 recipient suppressed (hard_bounce)\r\n"), 2);
	assert_int_equal(count(&out, "250 2.1.5 Ok\r\n"), 1);
	assert_int_equal(calls, 3); /* not for the syntax error */
	feed(s, "hi\r\n.\r\n");
	assert_int_equal(step(s, &ev, &out), SMTP_SERVER_EV_MESSAGE);
	assert_int_equal(ev.msg.n_rcpts, 1);
	assert_string_equal(ev.msg.rcpts[0], "yes@d.example");
	sl_buf_free(&out);
	smtp_server_destroy(s);
}

/* ---- main ---- */

static char *transcript_dir(void)
{
	const char *env = getenv("SLUICE_TRANSCRIPTS");
	const char *slash = strrchr(__FILE__, '/');
	char *d;

	if (env)
		return xstrdup(env);
	if (asprintf(&d, "%.*s/transcripts", slash ? (int)(slash - __FILE__) : 1,
		     slash ? __FILE__ : ".") < 0)
		abort();
	return d;
}

int main(void)
{
	static const struct CMUnitTest direct[] = {
		cmocka_unit_test(test_create_rejects_bad_limits),
		cmocka_unit_test(test_wrong_state_answers),
		cmocka_unit_test(test_timeout_kinds_and_blocking),
		cmocka_unit_test(test_timeout_while_spooling),
		cmocka_unit_test(test_output_backpressure),
		cmocka_unit_test(test_random_bodies),
		cmocka_unit_test(test_smuggling_matrix),
		cmocka_unit_test(test_auth_long_line),
		cmocka_unit_test(test_message_result_sanitised),
		cmocka_unit_test(test_mail_refusal),
		cmocka_unit_test(test_rcpt_check),
	};
	const char *dump = getenv("SLUICE_TRANSCRIPT_DUMP");
	char *dir, *pattern;
	struct CMUnitTest *tests;
	glob_t g;
	int rc;

	if (dump) {
		struct transcript t;
		struct sl_buf actual;

		transcript_load(&t, dump);
		replay(&t, 0, &actual);
		fwrite(actual.data, 1, actual.len, stdout);
		sl_buf_free(&actual);
		transcript_free(&t);
		return 0;
	}
	dir = transcript_dir();
	if (asprintf(&pattern, "%s/server_*.txt", dir) < 0)
		abort();
	if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
		fprintf(stderr, "no transcripts match %s (set SLUICE_TRANSCRIPTS)\n", pattern);
		return 1;
	}
	tests = calloc(g.gl_pathc, sizeof(*tests));
	for (size_t i = 0; i < g.gl_pathc; i++) {
		tests[i].name = strrchr(g.gl_pathv[i], '/') + 1;
		tests[i].test_func = test_transcript;
		tests[i].initial_state = g.gl_pathv[i];
	}
	rc = cmocka_run_group_tests_name("smtp_server", direct, NULL, NULL);
	rc += _cmocka_run_group_tests("smtp_server transcripts", tests, g.gl_pathc, NULL, NULL);
	free(tests);
	globfree(&g);
	free(pattern);
	free(dir);
	return rc ? 1 : 0;
}
