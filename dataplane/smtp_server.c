/* smtp_server.c — ESMTP server session state machine; see smtp_server.h. */
#include "smtp_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "err.h"

/* A body buffer that grew beyond this is released after each message. */
#define BODY_KEEP (256 * 1024)
/* PLAIN: authzid NUL authcid NUL passwd, each at most 255 octets. */
#define AUTH_FIELD_MAX 255
#define AUTH_DECODED_MAX (3 * AUTH_FIELD_MAX + 2)
#define AUTH_ENCODED_MAX (4 * ((AUTH_DECODED_MAX + 2) / 3))

enum state {
	ST_CMD,          /* reading command lines */
	ST_AUTH_LINE,    /* reading an AUTH continuation line */
	ST_DATA,         /* reading message content */
	ST_WAIT_AUTH,    /* EV_AUTH out, awaiting smtp_server_auth_result() */
	ST_WAIT_MESSAGE, /* EV_MESSAGE out, awaiting smtp_server_message_result() */
	ST_WAIT_TLS,     /* EV_STARTTLS out, awaiting smtp_server_tls_started() */
	ST_CLOSING,      /* nothing more is read */
};

enum auth_step { AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

/* Why the message being read will be rejected; first one set wins. */
enum {
	DATA_TAINT = 1 << 0, /* bare CR or LF */
	DATA_LONG = 1 << 1,  /* a line longer than max_line */
	DATA_BIG = 1 << 2,   /* more than max_size */
	DATA_NOMEM = 1 << 3, /* could not grow the body buffer */
};

struct smtp_server {
	struct smtp_server_limits lim;
	char *hostname;
	char *banner;       /* "220 ... ESMTP\r\n" */
	char *ehlo_plain;   /* EHLO reply before TLS */
	char *ehlo_tls;     /* EHLO reply once TLS is active */
	size_t banner_len, ehlo_plain_len, ehlo_tls_len;
	size_t cmd_hard_max; /* longest line kept while looking for LF */

	enum state state;
	enum smtp_server_event_kind pending; /* returned by the next next() */
	int err;                             /* sticky fatal error */
	struct sl_buf in, out;
	size_t scanned;     /* head bytes of `in` known to hold no LF */
	bool discard_line;  /* dropping an over-long command line */

	/* session */
	bool greeted, helo_seen, esmtp, tls, relay_allowed, authenticated;
	bool any_input;
	unsigned errors;
	char helo[256];
	char *tenant;
	char mail_refusal[256]; /* "550 5.7.1 ...\r\n" or "" */
	smtp_server_rcpt_check_fn *rcpt_check; /* NULL: every valid RCPT is taken */
	void *rcpt_check_ctx;
	smtp_server_rcpt_check_fn *mail_check; /* NULL: every valid MAIL is taken */
	void *mail_check_ctx;

	/* transaction */
	bool in_mail;
	bool msg_outstanding; /* EV_MESSAGE given, no message_result yet */
	char mail_from[SMTP_SERVER_MAX_ADDR + 1];
	uint64_t size_param;
	enum smtp_server_body body_type;
	bool smtputf8;
	struct sl_buf rcpt_store; /* NUL-terminated addresses back to back */
	size_t *rcpt_off;
	const char **rcpt_ptr;
	unsigned n_rcpts, rcpt_cap;

	/* DATA */
	struct sl_buf body;
	unsigned data_flags;
	bool data_prev_crlf; /* the previous line ended in CRLF */
	bool data_in_long;   /* dropping the rest of an over-long line */
	bool data_last_cr;   /* ... and its last byte so far was CR */

	/* AUTH */
	enum auth_step auth_step;
	const char *auth_mech;
	char auth_user[AUTH_FIELD_MAX + 1];
	char auth_pass[AUTH_FIELD_MAX + 1];
};

/* ---- replies ---- */

static void put(struct smtp_server *s, const char *p, size_t n)
{
	int rc;

	if (s->err)
		return;
	rc = sl_buf_append(&s->out, p, n);
	if (rc)
		s->err = rc;
}

#define REPLY(s, lit) put((s), lit "\r\n", sizeof(lit "\r\n") - 1)
#define REPLY_ERR(s, lit) reply_error((s), lit "\r\n", sizeof(lit "\r\n") - 1)

static void enter_closing(struct smtp_server *s)
{
	if (s->state == ST_CLOSING)
		return;
	s->state = ST_CLOSING;
	s->pending = SMTP_SERVER_EV_CLOSE;
}

/* A 4xx/5xx caused by the client: count it, and give up at max_errors. */
static void reply_error(struct smtp_server *s, const char *p, size_t n)
{
	put(s, p, n);
	s->errors++;
	if (s->lim.max_errors && s->errors >= s->lim.max_errors) {
		if (!s->err && sl_buf_appendf(&s->out, "421 4.7.0 %s Error: too many errors\r\n",
					      s->hostname))
			s->err = -ENOMEM;
		enter_closing(s);
	}
}

/* ---- small helpers ---- */

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* Does [p, end) start with the ASCII word w, case-insensitively? */
static bool has_prefix(const char *p, const char *end, const char *w)
{
	for (; *w; w++, p++)
		if (p >= end || lower(*p) != *w)
			return false;
	return true;
}

static bool eq_word(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && has_prefix(p, p + n, w);
}

static const char *skip_sp(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

/* ---- addresses ---- */

enum addr_rc { ADDR_OK, ADDR_BAD, ADDR_NEED_UTF8 };

static bool utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i], need, min, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1, min = 0x80, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, min = 0x800, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* RFC 5322 atext, plus '.', which we allow anywhere (real mailboxes have
 * "a..b" local parts and Postfix accepts them). */
static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

static bool local_ok(const unsigned char *p, size_t n)
{
	if (n == 0)
		return false;
	if (p[0] != '"') {
		for (size_t i = 0; i < n; i++)
			if (p[i] < 0x80 && !is_atext(p[i]))
				return false;
		return true;
	}
	/* quoted-string: qtext or quoted-pair, closing quote last */
	for (size_t i = 1; i < n; i++) {
		unsigned char c = p[i];

		if (c == '"')
			return i == n - 1;
		if (c == '\\') {
			if (++i >= n || p[i] < 32 || p[i] == 127)
				return false;
			continue;
		}
		if (c < 32 || c == 127)
			return false;
	}
	return false;
}

static bool domain_ok(const unsigned char *p, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 255)
		return false;
	if (p[0] == '[') {
		if (n < 3 || p[n - 1] != ']')
			return false;
		for (size_t i = 1; i < n - 1; i++)
			if (p[i] < 33 || p[i] > 126 || p[i] == '[' || p[i] == ']' || p[i] == '\\')
				return false;
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c >= 0x80))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* Validate the mailbox between the angle brackets, strip a source route
 * ("@a,@b:") and copy the rest to out (SMTP_SERVER_MAX_ADDR + 1 bytes). */
static enum addr_rc addr_parse(const char *path, size_t n, bool utf8, char *out)
{
	const unsigned char *p = (const unsigned char *)path;
	const unsigned char *at;
	bool eight = false;

	if (n > SMTP_SERVER_MAX_ADDR)
		return ADDR_BAD;
	if (n && p[0] == '@') {
		const unsigned char *colon = memchr(p, ':', n), *d = p;

		if (!colon)
			return ADDR_BAD;
		while (d < colon) { /* "@dom" *( ",@dom" ) */
			const unsigned char *e = memchr(d, ',', (size_t)(colon - d));

			if (!e)
				e = colon;
			if (*d != '@' || !domain_ok(d + 1, (size_t)(e - d - 1)))
				return ADDR_BAD;
			d = e < colon ? e + 1 : colon;
		}
		n -= (size_t)(colon + 1 - p);
		p = colon + 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 32 || p[i] == 127)
			return ADDR_BAD;
		if (p[i] >= 0x80)
			eight = true;
	}
	at = memrchr(p, '@', n);
	if (!at || !local_ok(p, (size_t)(at - p)) || !domain_ok(at + 1, (size_t)(p + n - at - 1)))
		return ADDR_BAD;
	if (eight && !utf8)
		return ADDR_NEED_UTF8;
	if (eight && !utf8_valid(p, n))
		return ADDR_BAD;
	memcpy(out, p, n);
	out[n] = 0;
	return ADDR_OK;
}

/* Find "<...>" at p (quotes may hide a '>'). Sets the inside and returns
 * the first byte after '>', or NULL on a syntax error. */
static const char *path_extract(const char *p, const char *end, const char **in, size_t *in_len)
{
	bool quoted = false;

	if (p >= end || *p != '<')
		return NULL;
	for (const char *q = p + 1; q < end; q++) {
		if (quoted && *q == '\\') {
			q++;
			continue;
		}
		if (*q == '"') {
			quoted = !quoted;
		} else if (*q == '>' && !quoted) {
			*in = p + 1;
			*in_len = (size_t)(q - p - 1);
			if (q + 1 < end && q[1] != ' ')
				return NULL;
			return q + 1;
		}
	}
	return NULL;
}

/* ---- transaction ---- */

static void transaction_reset(struct smtp_server *s)
{
	s->in_mail = false;
	s->mail_from[0] = 0;
	s->size_param = 0;
	s->body_type = SMTP_SERVER_BODY_UNSPEC;
	s->smtputf8 = false;
	s->n_rcpts = 0;
	sl_buf_reset(&s->rcpt_store);
	if (s->body.cap > BODY_KEEP)
		sl_buf_free(&s->body);
	else
		sl_buf_reset(&s->body);
}

static int rcpt_add(struct smtp_server *s, const char *addr)
{
	size_t off = s->rcpt_store.len;
	int rc;

	if (s->n_rcpts == s->rcpt_cap) {
		unsigned cap = s->rcpt_cap ? s->rcpt_cap * 2 : 16;
		size_t *o;
		const char **pp;

		if (cap > s->lim.max_rcpts)
			cap = s->lim.max_rcpts;
		o = realloc(s->rcpt_off, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		s->rcpt_off = o;
		pp = realloc(s->rcpt_ptr, cap * sizeof(*pp));
		if (!pp)
			return -ENOMEM;
		s->rcpt_ptr = pp;
		s->rcpt_cap = cap;
	}
	rc = sl_buf_append(&s->rcpt_store, addr, strlen(addr) + 1);
	if (rc)
		return rc;
	s->rcpt_off[s->n_rcpts++] = off;
	return 0;
}

/* ---- AUTH ---- */

static void auth_wipe(struct smtp_server *s)
{
	explicit_bzero(s->auth_user, sizeof(s->auth_user));
	explicit_bzero(s->auth_pass, sizeof(s->auth_pass));
}

static void auth_abort(struct smtp_server *s)
{
	auth_wipe(s);
	if (s->state == ST_AUTH_LINE)
		s->state = ST_CMD;
}

static void auth_done(struct smtp_server *s)
{
	s->state = ST_WAIT_AUTH;
	s->pending = SMTP_SERVER_EV_AUTH;
}

/* Copy a decoded field into dst (AUTH_FIELD_MAX + 1); false if too long
 * or containing NUL. */
static bool auth_field(char *dst, const unsigned char *p, size_t n)
{
	if (n > AUTH_FIELD_MAX || memchr(p, 0, n))
		return false;
	memcpy(dst, p, n);
	dst[n] = 0;
	return true;
}

/* One client response (initial or continuation) for the current step. */
static void auth_response(struct smtp_server *s, const char *p, size_t n, bool initial)
{
	unsigned char buf[AUTH_DECODED_MAX];
	int len = 0;

	if (!initial && n == 1 && p[0] == '*') {
		auth_abort(s);
		REPLY_ERR(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (initial && n == 1 && p[0] == '=')
		n = 0; /* RFC 4954: "=" is an empty initial response */
	else if (n > AUTH_ENCODED_MAX || (len = (int)base64_decode(p, n, true, buf, sizeof(buf))) < 0)
		goto bad64;

	switch (s->auth_step) {
	case AUTH_PLAIN: {
		/* authzid NUL authcid NUL passwd */
		const unsigned char *z1 = memchr(buf, 0, (size_t)len), *z2;
		size_t zl, ul;

		if (!z1)
			goto malformed;
		z2 = memchr(z1 + 1, 0, (size_t)(buf + len - z1 - 1));
		if (!z2)
			goto malformed;
		zl = (size_t)(z1 - buf);
		ul = (size_t)(z2 - z1 - 1);
		if (ul == 0 || !auth_field(s->auth_user, z1 + 1, ul) ||
		    !auth_field(s->auth_pass, z2 + 1, (size_t)(buf + len - z2 - 1)) ||
		    zl > AUTH_FIELD_MAX)
			goto malformed;
		/* no proxy authorization: authzid must be empty or the user */
		if (zl && (zl != ul || memcmp(buf, z1 + 1, ul))) {
			explicit_bzero(buf, sizeof(buf));
			auth_abort(s);
			REPLY_ERR(s, "535 5.7.8 Authentication credentials invalid");
			return;
		}
		explicit_bzero(buf, sizeof(buf));
		auth_done(s);
		return;
	}
	case AUTH_LOGIN_USER:
		if (len == 0 || !auth_field(s->auth_user, buf, (size_t)len))
			goto malformed;
		explicit_bzero(buf, sizeof(buf));
		s->auth_step = AUTH_LOGIN_PASS;
		s->state = ST_AUTH_LINE;
		REPLY(s, "334 UGFzc3dvcmQ6");
		return;
	case AUTH_LOGIN_PASS:
		if (!auth_field(s->auth_pass, buf, (size_t)len))
			goto malformed;
		explicit_bzero(buf, sizeof(buf));
		auth_done(s);
		return;
	}
	return;
bad64:
	explicit_bzero(buf, sizeof(buf));
	auth_abort(s);
	REPLY_ERR(s, "501 5.5.2 Cannot decode response");
	return;
malformed:
	explicit_bzero(buf, sizeof(buf));
	auth_abort(s);
	REPLY_ERR(s, "501 5.5.2 Invalid authentication response");
}

static void cmd_auth(struct smtp_server *s, const char *a, const char *end)
{
	const char *mech = a, *mend, *resp;

	if (!s->helo_seen) {
		REPLY_ERR(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (!s->lim.auth_available) {
		REPLY_ERR(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!s->tls) {
		REPLY_ERR(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (s->authenticated) {
		REPLY_ERR(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		REPLY_ERR(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	mend = memchr(mech, ' ', (size_t)(end - mech));
	if (!mend)
		mend = end;
	resp = skip_sp(mend, end);
	if (mend == mech) {
		REPLY_ERR(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	if (memchr(resp, ' ', (size_t)(end - resp))) {
		REPLY_ERR(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (eq_word(mech, (size_t)(mend - mech), "plain")) {
		s->auth_mech = "PLAIN";
		s->auth_step = AUTH_PLAIN;
		if (resp < end) {
			auth_response(s, resp, (size_t)(end - resp), true);
		} else {
			s->state = ST_AUTH_LINE;
			REPLY(s, "334 ");
		}
	} else if (eq_word(mech, (size_t)(mend - mech), "login")) {
		s->auth_mech = "LOGIN";
		s->auth_step = AUTH_LOGIN_USER;
		if (resp < end) {
			auth_response(s, resp, (size_t)(end - resp), true);
		} else {
			s->state = ST_AUTH_LINE;
			REPLY(s, "334 VXNlcm5hbWU6");
		}
	} else {
		REPLY_ERR(s, "504 5.5.4 Unrecognized authentication type");
	}
}

/* ---- commands ---- */

static void cmd_helo(struct smtp_server *s, const char *a, const char *end, bool esmtp)
{
	const char *e = memchr(a, ' ', (size_t)(end - a));
	size_t n;

	if (!e)
		e = end;
	n = (size_t)(e - a);
	if (n == 0) {
		if (esmtp)
			REPLY_ERR(s, "501 5.5.4 Syntax: EHLO hostname");
		else
			REPLY_ERR(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)a[i] < 33 || (unsigned char)a[i] > 126 || n >= sizeof(s->helo)) {
			REPLY_ERR(s, "501 5.5.4 Invalid hostname");
			return;
		}
	}
	memcpy(s->helo, a, n);
	s->helo[n] = 0;
	s->helo_seen = true;
	s->esmtp = esmtp;
	transaction_reset(s);
	if (!esmtp) {
		if (!s->err && sl_buf_appendf(&s->out, "250 %s\r\n", s->hostname))
			s->err = -ENOMEM;
	} else if (s->tls) {
		put(s, s->ehlo_tls, s->ehlo_tls_len);
	} else {
		put(s, s->ehlo_plain, s->ehlo_plain_len);
	}
}

/* MAIL FROM parameters. Returns NULL when fine, else the reply line. */
static const char *mail_params(struct smtp_server *s, const char *p, const char *end)
{
	bool seen_size = false, seen_body = false, seen_utf8 = false, seen_auth = false;

	for (;;) {
		const char *k, *ke, *v, *ve;

		p = skip_sp(p, end);
		if (p == end)
			return NULL;
		k = p;
		ve = memchr(p, ' ', (size_t)(end - p));
		if (!ve)
			ve = end;
		ke = memchr(k, '=', (size_t)(ve - k));
		v = ke ? ke + 1 : NULL;
		if (!ke)
			ke = ve;
		p = ve;

		if (eq_word(k, (size_t)(ke - k), "size")) {
			uint64_t n = 0;

			if (seen_size || !v || v == ve || ve - v > 20)
				return "501 5.5.4 Bad SIZE parameter\r\n";
			for (const char *q = v; q < ve; q++) {
				if (*q < '0' || *q > '9' || n > (UINT64_MAX - 9) / 10)
					return "501 5.5.4 Bad SIZE parameter\r\n";
				n = n * 10 + (uint64_t)(*q - '0');
			}
			seen_size = true;
			s->size_param = n;
		} else if (eq_word(k, (size_t)(ke - k), "body")) {
			if (seen_body || !v)
				return "501 5.5.4 Bad BODY parameter\r\n";
			if (eq_word(v, (size_t)(ve - v), "7bit"))
				s->body_type = SMTP_SERVER_BODY_7BIT;
			else if (eq_word(v, (size_t)(ve - v), "8bitmime"))
				s->body_type = SMTP_SERVER_BODY_8BITMIME;
			else
				return "555 5.5.4 Unsupported BODY type\r\n";
			seen_body = true;
		} else if (eq_word(k, (size_t)(ke - k), "smtputf8")) {
			if (seen_utf8 || v)
				return "501 5.5.4 Bad SMTPUTF8 parameter\r\n";
			seen_utf8 = true;
			s->smtputf8 = true;
		} else if (eq_word(k, (size_t)(ke - k), "auth") && s->tls &&
			   s->lim.auth_available) {
			/* RFC 4954 §5: accepted when AUTH is offered; we ignore it */
			if (seen_auth || !v || v == ve)
				return "501 5.5.4 Bad AUTH parameter\r\n";
			seen_auth = true;
		} else {
			return "555 5.5.4 Unsupported parameter\r\n";
		}
	}
}

static void cmd_mail(struct smtp_server *s, const char *a, const char *end)
{
	const char *in, *rest, *bad;
	size_t in_len;

	if (!s->helo_seen) {
		REPLY_ERR(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		REPLY_ERR(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (!s->authenticated && !s->relay_allowed) {
		if (!s->tls && s->lim.tls_available && s->lim.auth_available)
			REPLY_ERR(s, "530 5.7.0 Must issue a STARTTLS command first");
		else
			REPLY_ERR(s, "530 5.7.0 Authentication required");
		return;
	}
	if (s->mail_refusal[0]) {
		reply_error(s, s->mail_refusal, strlen(s->mail_refusal));
		return;
	}
	if (!has_prefix(a, end, "from:") ||
	    !(rest = path_extract(skip_sp(a + 5, end), end, &in, &in_len))) {
		REPLY_ERR(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	/* parameters first: SMTPUTF8 decides what the address may hold */
	s->size_param = 0;
	s->body_type = SMTP_SERVER_BODY_UNSPEC;
	s->smtputf8 = false;
	bad = mail_params(s, rest, end);
	if (!bad && s->size_param > s->lim.max_size)
		bad = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
	if (!bad && in_len > 0) {
		switch (addr_parse(in, in_len, s->smtputf8, s->mail_from)) {
		case ADDR_OK:
			break;
		case ADDR_BAD:
			bad = "501 5.1.7 Bad sender address syntax\r\n";
			break;
		case ADDR_NEED_UTF8:
			bad = "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n";
			break;
		}
	}
	if (bad) {
		transaction_reset(s);
		reply_error(s, bad, strlen(bad));
		return;
	}
	if (in_len == 0)
		s->mail_from[0] = 0;
	if (s->mail_check) {
		char line[256] = "";
		int code = s->mail_check(s->mail_check_ctx, s->tenant, s->mail_from, line,
					 sizeof line);

		if (code >= 400 && code <= 599) {
			for (char *p = line; *p; p++)
				if ((unsigned char)*p < 0x20)
					*p = ' ';
			transaction_reset(s);
			if (sl_buf_appendf(&s->out, "%d %s\r\n", code,
					   line[0] ? line : "5.7.1 Sender refused"))
				s->err = -ENOMEM;
			return;
		}
	}
	s->in_mail = true;
	REPLY(s, "250 2.1.0 Ok");
}

/* The caller's recipient check refused addr: its reply went out. Not an
 * error for max_errors: a client cannot know a list's suppressions. */
static bool rcpt_refused(struct smtp_server *s, const char *addr)
{
	char line[256];
	int code;

	if (!s->rcpt_check)
		return false;
	line[0] = 0;
	code = s->rcpt_check(s->rcpt_check_ctx, s->tenant, addr, line, sizeof line);
	if (code < 400 || code > 599)
		return false;
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (sl_buf_appendf(&s->out, "%d %s\r\n", code, line[0] ? line : "5.7.1 Recipient refused"))
		s->err = -ENOMEM;
	return true;
}

static void cmd_rcpt(struct smtp_server *s, const char *a, const char *end)
{
	char addr[SMTP_SERVER_MAX_ADDR + 1];
	const char *in, *rest;
	size_t in_len;

	if (!s->in_mail) {
		REPLY_ERR(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!has_prefix(a, end, "to:") ||
	    !(rest = path_extract(skip_sp(a + 3, end), end, &in, &in_len))) {
		REPLY_ERR(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (skip_sp(rest, end) != end) {
		REPLY_ERR(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	switch (in_len ? addr_parse(in, in_len, s->smtputf8, addr) : ADDR_BAD) {
	case ADDR_OK:
		break;
	case ADDR_BAD:
		REPLY_ERR(s, "501 5.1.3 Bad recipient address syntax");
		return;
	case ADDR_NEED_UTF8:
		REPLY_ERR(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	if (s->n_rcpts >= s->lim.max_rcpts) {
		REPLY(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (rcpt_refused(s, addr))
		return;
	if (rcpt_add(s, addr)) {
		REPLY(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	REPLY(s, "250 2.1.5 Ok");
}

static void cmd_data(struct smtp_server *s, const char *a, const char *end)
{
	if (a != end) {
		REPLY_ERR(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_mail) {
		REPLY_ERR(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->n_rcpts == 0) {
		REPLY_ERR(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	sl_buf_reset(&s->body);
	s->data_flags = 0;
	s->data_prev_crlf = true; /* DATA's own CRLF precedes the first line */
	s->data_in_long = false;
	s->data_last_cr = false;
	s->state = ST_DATA;
	REPLY(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_starttls(struct smtp_server *s, const char *a, const char *end)
{
	if (!s->lim.tls_available) {
		REPLY_ERR(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		REPLY_ERR(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (a != end) {
		REPLY_ERR(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->in_mail) {
		REPLY_ERR(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	REPLY(s, "220 2.0.0 Ready to start TLS");
	s->state = ST_WAIT_TLS;
	s->pending = SMTP_SERVER_EV_STARTTLS;
}

#define VERB(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* Execute one command line (CRLF stripped, no CR/LF/NUL inside). */
static void command(struct smtp_server *s, const char *line, size_t n)
{
	const char *end = line + n, *verb_end, *a;
	uint32_t key;

	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	verb_end = memchr(line, ' ', (size_t)(end - line));
	if (!verb_end)
		verb_end = end;
	a = skip_sp(verb_end, end);

	if (verb_end - line == 8 && has_prefix(line, verb_end, "starttls")) {
		cmd_starttls(s, a, end);
		return;
	}
	if (verb_end - line != 4) {
		REPLY_ERR(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	key = VERB(lower(line[0]), lower(line[1]), lower(line[2]), lower(line[3]));
	switch (key) {
	case VERB('e', 'h', 'l', 'o'):
		cmd_helo(s, a, end, true);
		break;
	case VERB('h', 'e', 'l', 'o'):
		cmd_helo(s, a, end, false);
		break;
	case VERB('m', 'a', 'i', 'l'):
		cmd_mail(s, a, end);
		break;
	case VERB('r', 'c', 'p', 't'):
		cmd_rcpt(s, a, end);
		break;
	case VERB('d', 'a', 't', 'a'):
		cmd_data(s, a, end);
		break;
	case VERB('r', 's', 'e', 't'):
		if (a != end) {
			REPLY_ERR(s, "501 5.5.4 Syntax: RSET");
			break;
		}
		transaction_reset(s);
		REPLY(s, "250 2.0.0 Ok");
		break;
	case VERB('n', 'o', 'o', 'p'):
		REPLY(s, "250 2.0.0 Ok");
		break;
	case VERB('q', 'u', 'i', 't'):
		REPLY(s, "221 2.0.0 Bye");
		enter_closing(s);
		break;
	case VERB('h', 'e', 'l', 'p'):
		REPLY(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
		break;
	case VERB('v', 'r', 'f', 'y'):
		if (a == end)
			REPLY_ERR(s, "501 5.5.4 Syntax: VRFY address");
		else
			REPLY(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
		break;
	case VERB('e', 'x', 'p', 'n'):
	case VERB('b', 'd', 'a', 't'):
	case VERB('e', 't', 'r', 'n'):
	case VERB('t', 'u', 'r', 'n'):
		REPLY_ERR(s, "502 5.5.1 Error: command not implemented");
		break;
	case VERB('a', 'u', 't', 'h'):
		cmd_auth(s, a, end);
		break;
	default:
		REPLY_ERR(s, "500 5.5.2 Error: command not recognized");
		break;
	}
}

/* ---- line framing (command and AUTH states) ---- */

enum { LINE_MORE, LINE_DONE };

/* Take one line from the input and execute it (or reject its framing). */
static int line_step(struct smtp_server *s)
{
	size_t avail = sl_buf_avail(&s->in), n, len;
	char *buf, *lf;
	bool auth;

	if (avail == 0)
		return LINE_MORE;
	buf = sl_buf_head(&s->in);
	lf = avail > s->scanned ? memchr(buf + s->scanned, '\n', avail - s->scanned) : NULL;
	if (!lf) {
		if (s->discard_line || avail >= s->cmd_hard_max) {
			s->discard_line = true;
			sl_buf_consume(&s->in, avail);
			s->scanned = 0;
		} else {
			s->scanned = avail;
		}
		return LINE_MORE;
	}
	n = (size_t)(lf - buf) + 1;
	/* The line stays readable in place: consuming only moves offsets,
	 * and nothing is appended to `in` until the next input(). */
	sl_buf_consume(&s->in, n);
	s->scanned = 0;
	auth = s->state == ST_AUTH_LINE || (n >= 5 && has_prefix(buf, buf + n, "auth") &&
					    (buf[4] == ' ' || buf[4] == '\r'));

	if (s->discard_line || n > s->cmd_hard_max || (n > s->lim.max_line && !auth)) {
		s->discard_line = false;
		auth_abort(s);
		REPLY_ERR(s, "500 5.5.2 Error: line too long");
		goto out;
	}
	if (n < 2 || lf[-1] != '\r') {
		auth_abort(s);
		REPLY_ERR(s, "500 5.5.2 Error: bare <LF> received");
		goto out;
	}
	len = n - 2;
	if (memchr(buf, '\r', len)) {
		auth_abort(s);
		REPLY_ERR(s, "500 5.5.2 Error: bare <CR> received");
		goto out;
	}
	if (memchr(buf, 0, len)) {
		auth_abort(s);
		REPLY_ERR(s, "500 5.5.2 Error: NUL in command");
		goto out;
	}
	if (s->state == ST_AUTH_LINE) {
		s->state = ST_CMD;
		auth_response(s, buf, len, false);
	} else {
		command(s, buf, len);
	}
out:
	if (auth) /* credentials do not linger in the input buffer */
		explicit_bzero(buf, n);
	return LINE_DONE;
}

/* ---- DATA ---- */

/* Append [p, q) to the body unless the message is already doomed. */
static void body_put(struct smtp_server *s, const char *p, const char *q)
{
	size_t n = (size_t)(q - p);

	if (s->data_flags || n == 0)
		return;
	if (n > s->lim.max_size - s->body.len) {
		s->data_flags |= DATA_BIG;
	} else if (sl_buf_append(&s->body, p, n)) {
		s->data_flags |= DATA_NOMEM;
	} else {
		return;
	}
	if (s->body.cap > BODY_KEEP)
		sl_buf_free(&s->body);
	else
		sl_buf_reset(&s->body);
}

static void data_end(struct smtp_server *s)
{
	unsigned f = s->data_flags;

	s->state = ST_CMD;
	if (!f) {
		s->msg_outstanding = true;
		s->state = ST_WAIT_MESSAGE;
		s->pending = SMTP_SERVER_EV_MESSAGE;
		return;
	}
	transaction_reset(s);
	if (f & DATA_TAINT)
		REPLY_ERR(s, "550 5.5.2 Message rejected: bare LF or CR in message");
	else if (f & DATA_LONG)
		REPLY_ERR(s, "552 5.3.4 Message line too long");
	else if (f & DATA_BIG)
		REPLY_ERR(s, "552 5.3.4 Message size exceeds fixed limit");
	else
		REPLY(s, "452 4.3.1 Insufficient system storage");
}

/* Consume message content from the input. Returns true when the message
 * ended, false when more input is needed. */
static bool data_step(struct smtp_server *s)
{
	const char *buf, *end, *p, *run; /* run: content not yet copied */
	bool done = false;

	if (sl_buf_avail(&s->in) == 0)
		return false;
	buf = sl_buf_head(&s->in);
	end = buf + sl_buf_avail(&s->in);
	p = run = buf;

	while (p < end) {
		const char *lf;
		size_t len;
		bool crlf, stuffed;

		if (s->data_in_long) {
			lf = memchr(p, '\n', (size_t)(end - p));
			if (!lf) {
				s->data_last_cr = end[-1] == '\r';
				p = run = end;
				break;
			}
			crlf = lf > p ? lf[-1] == '\r' : s->data_last_cr;
			if (!crlf)
				s->data_flags |= DATA_TAINT;
			s->data_prev_crlf = crlf;
			s->data_in_long = false;
			p = run = lf + 1;
			continue;
		}
		stuffed = s->data_prev_crlf && *p == '.';
		lf = memchr(p, '\n', (size_t)(end - p));
		if (!lf) {
			/* partial line: wait for the rest unless it is already too long */
			if ((size_t)(end - p) - stuffed >= s->lim.max_line) {
				body_put(s, run, p);
				s->data_flags |= DATA_LONG;
				s->data_in_long = true;
				s->data_last_cr = end[-1] == '\r';
				p = run = end;
			}
			break;
		}
		len = (size_t)(lf - p) + 1;
		crlf = len >= 2 && lf[-1] == '\r';
		if (stuffed && crlf && len == 3) { /* <CRLF>.<CRLF> */
			body_put(s, run, p);
			p = run = lf + 1;
			done = true;
			break;
		}
		if (!crlf || memchr(p, '\r', len - 1 - crlf))
			s->data_flags |= DATA_TAINT;
		if (len - stuffed > s->lim.max_line)
			s->data_flags |= DATA_LONG;
		if (stuffed) {
			body_put(s, run, p);
			run = p + 1;
		}
		s->data_prev_crlf = crlf;
		p = lf + 1;
	}
	body_put(s, run, p);
	sl_buf_consume(&s->in, (size_t)(p - buf));
	s->scanned = 0;
	if (done)
		data_end(s);
	return done;
}

/* ---- events ---- */

static void fill_event(struct smtp_server *s, enum smtp_server_event_kind k,
		       struct smtp_server_event *ev)
{
	ev->kind = k;
	if (k == SMTP_SERVER_EV_AUTH) {
		ev->auth.mechanism = s->auth_mech;
		ev->auth.username = s->auth_user;
		ev->auth.password = s->auth_pass;
	} else if (k == SMTP_SERVER_EV_MESSAGE) {
		struct smtp_server_message *m = &ev->msg;

		for (unsigned i = 0; i < s->n_rcpts; i++)
			s->rcpt_ptr[i] = s->rcpt_store.data + s->rcpt_off[i];
		m->helo = s->helo;
		m->esmtp = s->esmtp;
		m->tls = s->tls;
		m->tenant = s->authenticated ? s->tenant : NULL;
		m->mail_from = s->mail_from;
		m->size = s->size_param;
		m->body_type = s->body_type;
		m->smtputf8 = s->smtputf8;
		m->rcpts = s->rcpt_ptr;
		m->n_rcpts = s->n_rcpts;
		m->body = s->body.len ? sl_buf_head(&s->body) : "";
		m->body_len = sl_buf_avail(&s->body);
	}
}

int smtp_server_next(struct smtp_server *s, struct smtp_server_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	for (;;) {
		if (s->err)
			return s->err;
		if (s->pending) {
			enum smtp_server_event_kind k = s->pending;

			s->pending = SMTP_SERVER_EV_NONE;
			fill_event(s, k, ev);
			return (int)k;
		}
		switch (s->state) {
		case ST_CMD:
		case ST_AUTH_LINE:
			if (sl_buf_avail(&s->out) >= SMTP_SERVER_OUTPUT_HIGH)
				return SMTP_SERVER_EV_NONE;
			if (line_step(s) == LINE_MORE)
				return SMTP_SERVER_EV_NONE;
			break;
		case ST_DATA:
			if (!data_step(s))
				return SMTP_SERVER_EV_NONE;
			break;
		default:
			return SMTP_SERVER_EV_NONE;
		}
	}
}

/* ---- caller inputs ---- */

int smtp_server_input(struct smtp_server *s, const void *data, size_t len)
{
	int rc;

	if (s->err)
		return s->err;
	if (s->state == ST_CLOSING || len == 0)
		return 0;
	if (sl_buf_avail(&s->in) >= SMTP_SERVER_MAX_PENDING)
		return SL_ETOOBIG;
	s->any_input = true;
	rc = sl_buf_append(&s->in, data, len);
	if (rc)
		s->err = rc;
	return rc;
}

void smtp_server_greet(struct smtp_server *s)
{
	if (s->greeted)
		return;
	s->greeted = true;
	put(s, s->banner, s->banner_len);
}

void smtp_server_set_relay_allowed(struct smtp_server *s, bool allowed)
{
	s->relay_allowed = allowed;
}

void smtp_server_set_mail_check(struct smtp_server *s, smtp_server_rcpt_check_fn *check, void *ctx)
{
	s->mail_check = check;
	s->mail_check_ctx = ctx;
}

void smtp_server_set_rcpt_check(struct smtp_server *s, smtp_server_rcpt_check_fn *check, void *ctx)
{
	s->rcpt_check = check;
	s->rcpt_check_ctx = ctx;
}

struct sl_buf *smtp_server_output(struct smtp_server *s)
{
	return &s->out;
}

bool smtp_server_want_close(const struct smtp_server *s)
{
	return s->state == ST_CLOSING || s->err;
}

bool smtp_server_want_input(const struct smtp_server *s)
{
	if (s->err || sl_buf_avail(&s->out) >= SMTP_SERVER_OUTPUT_HIGH)
		return false;
	return s->state == ST_CMD || s->state == ST_AUTH_LINE || s->state == ST_DATA;
}

enum smtp_server_timeout smtp_server_timeout_kind(const struct smtp_server *s)
{
	if (s->err)
		return SMTP_SERVER_TIMEOUT_NONE;
	switch (s->state) {
	case ST_CMD:
	case ST_AUTH_LINE:
		return SMTP_SERVER_TIMEOUT_COMMAND;
	case ST_DATA:
		return SMTP_SERVER_TIMEOUT_DATA;
	default:
		return SMTP_SERVER_TIMEOUT_NONE;
	}
}

void smtp_server_timeout(struct smtp_server *s)
{
	if (s->state == ST_CLOSING)
		return;
	if (s->state == ST_AUTH_LINE) /* a pending EV_AUTH keeps its strings */
		auth_abort(s);
	if (!s->err && sl_buf_appendf(&s->out, "421 4.4.2 %s Error: timeout exceeded\r\n", s->hostname))
		s->err = -ENOMEM;
	enter_closing(s);
}

int smtp_server_tls_started(struct smtp_server *s)
{
	bool implicit = !s->greeted && !s->any_input && s->state == ST_CMD && !s->tls;

	if (s->state != ST_WAIT_TLS && !implicit)
		return -EINVAL;
	/* RFC 3207 §4.2: forget everything learned in plaintext; anything
	 * the client sent after STARTTLS was never meant for us. */
	sl_buf_reset(&s->in);
	s->scanned = 0;
	s->discard_line = false;
	s->helo_seen = s->esmtp = false;
	s->helo[0] = 0;
	transaction_reset(s);
	s->tls = true;
	s->state = ST_CMD;
	return 0;
}

int smtp_server_auth_result(struct smtp_server *s, bool ok, const char *tenant_name)
{
	if (s->state != ST_WAIT_AUTH || s->pending == SMTP_SERVER_EV_AUTH)
		return -EINVAL;
	auth_wipe(s);
	s->state = ST_CMD;
	if (ok) {
		char *t = strdup(tenant_name ? tenant_name : "");

		if (!t)
			return s->err = -ENOMEM;
		free(s->tenant);
		s->tenant = t;
		s->authenticated = true;
		REPLY(s, "235 2.7.0 Authentication successful");
	} else {
		REPLY_ERR(s, "535 5.7.8 Authentication credentials invalid");
	}
	return s->err;
}

int smtp_server_set_mail_refusal(struct smtp_server *s, int code, const char *enhanced,
				 const char *text)
{
	int n;

	if (code == 0) {
		s->mail_refusal[0] = 0;
		return 0;
	}
	if (code < 400 || code > 599 || !text)
		return -EINVAL;
	n = snprintf(s->mail_refusal, sizeof s->mail_refusal, "%d %s%s%s\r\n", code,
		     enhanced ? enhanced : "", enhanced ? " " : "", text);
	if (n < 0 || (size_t)n >= sizeof s->mail_refusal) {
		s->mail_refusal[0] = 0;
		return -EINVAL;
	}
	for (char *p = s->mail_refusal; p < s->mail_refusal + n - 2; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return 0;
}

int smtp_server_message_result(struct smtp_server *s, int code, const char *enhanced,
			       const char *text)
{
	char line[512];
	int n;

	if (!s->msg_outstanding || s->pending == SMTP_SERVER_EV_MESSAGE || code < 200 ||
	    code > 599)
		return -EINVAL;
	s->msg_outstanding = false;
	if (s->state == ST_CLOSING) { /* timed out meanwhile: nothing to say */
		transaction_reset(s);
		return 0;
	}
	n = snprintf(line, sizeof(line) - 2, "%d%s%s%s%s", code, enhanced ? " " : "",
		     enhanced ? enhanced : "", text ? " " : "", text ? text : "");
	if (n < 0)
		return -EINVAL;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 32 || line[i] == 127)
			line[i] = ' ';
	line[n++] = '\r';
	line[n++] = '\n';
	transaction_reset(s);
	s->state = ST_CMD;
	put(s, line, (size_t)n);
	if (code >= 200 && code < 300)
		s->errors = 0;
	if (code == 421)
		enter_closing(s);
	return s->err;
}

/* ---- life cycle ---- */

/* "250-a\r\n250-b\r\n250 c\r\n" from the items. */
static char *ehlo_reply(const char *host, const char *const *items, size_t n, size_t *len)
{
	struct sl_buf b = { 0 };
	int rc = sl_buf_appendf(&b, "250%c%s\r\n", n ? '-' : ' ', host);

	for (size_t i = 0; i < n && !rc; i++)
		rc = sl_buf_appendf(&b, "250%c%s\r\n", i + 1 < n ? '-' : ' ', items[i]);
	if (rc) {
		sl_buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

int smtp_server_create(const struct smtp_server_limits *lim, struct smtp_server **out)
{
	struct smtp_server *s;
	const char *items[8];
	char size_item[32];
	size_t n = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (!lim || !lim->hostname || !lim->hostname[0] || strlen(lim->hostname) > 255 ||
	    lim->max_line < 16 || lim->max_size == 0 || lim->max_rcpts == 0)
		return -EINVAL;
	for (const char *h = lim->hostname; *h; h++)
		if ((unsigned char)*h < 33 || (unsigned char)*h > 126)
			return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lim = *lim;
	s->hostname = strdup(lim->hostname);
	if (!s->hostname)
		goto fail;
	s->lim.hostname = s->hostname;
	s->cmd_hard_max = lim->max_line > SMTP_SERVER_AUTH_LINE_MAX ? lim->max_line
								    : SMTP_SERVER_AUTH_LINE_MAX;
	if (asprintf(&s->banner, "220 %s ESMTP\r\n", s->hostname) < 0) {
		s->banner = NULL;
		goto fail;
	}
	s->banner_len = strlen(s->banner);

	snprintf(size_item, sizeof(size_item), "SIZE %zu", lim->max_size);
	items[n++] = "PIPELINING";
	items[n++] = size_item;
	items[n++] = "8BITMIME";
	items[n++] = "SMTPUTF8";
	items[n++] = "ENHANCEDSTATUSCODES";
	if (lim->tls_available)
		items[n] = "STARTTLS";
	s->ehlo_plain = ehlo_reply(s->hostname, items, n + lim->tls_available, &s->ehlo_plain_len);
	if (lim->auth_available)
		items[n] = "AUTH PLAIN LOGIN";
	s->ehlo_tls = ehlo_reply(s->hostname, items, n + lim->auth_available, &s->ehlo_tls_len);
	if (!s->ehlo_plain || !s->ehlo_tls)
		goto fail;
	*out = s;
	return 0;
fail:
	smtp_server_destroy(s);
	return rc;
}

void smtp_server_destroy(struct smtp_server *s)
{
	if (!s)
		return;
	auth_wipe(s);
	free(s->hostname);
	free(s->banner);
	free(s->ehlo_plain);
	free(s->ehlo_tls);
	if (s->in.data)
		explicit_bzero(s->in.data, s->in.cap);
	sl_buf_free(&s->in);
	sl_buf_free(&s->out);
	sl_buf_free(&s->body);
	sl_buf_free(&s->rcpt_store);
	free(s->rcpt_off);
	free(s->rcpt_ptr);
	free(s->tenant);
	free(s);
}
