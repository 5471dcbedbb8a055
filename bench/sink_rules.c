/* sink_rules.c — sluice-sink's rules: parser and decisions; see sink_rules.h. */
#include "sink_rules.h"
#include "file.h"

#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096
#define FILE_MAX_LEN (16u << 20)
#define COUNT_MAX 1000000000u
#define DURATION_MAX_MS (24u * 3600u * 1000u)
#define PPM 1000000u

enum rule_kind {
	RULE_REJECT_USER,
	RULE_REJECT_RCPT,
	RULE_FAIL_RATE,
	RULE_DEFER_AFTER_CONN,
	RULE_RATE_PER_IP,
	RULE_DELAY,
	RULE_DATA_REPLY,
	RULE_DISCONNECT_AFTER,
	RULE_GREETING,
};

enum sel_kind { SEL_ANY, SEL_DOMAIN, SEL_SUFFIX, SEL_ADDR };

struct selector {
	enum sel_kind kind;
	char *name; /* SEL_DOMAIN: lower-case domain; SEL_SUFFIX: ".suffix" */
	size_t name_len;
	int family; /* SEL_ADDR */
	unsigned char addr[16];
	uint16_t port; /* host order; 0 = any port */
};

struct rule {
	enum rule_kind kind;
	struct selector sel;
	uint32_t n;         /* counts; rate: messages */
	uint32_t ms;        /* delay; rate: window */
	uint32_t ppm;       /* fail-rate, parts per million */
	int code;           /* reply code, 0 if none */
	char *reply;        /* full reply line, no CRLF */
	char *users;        /* reject-user: NUL-separated lower-case names */
	size_t users_len;
};

struct rate_entry {
	uint64_t start_ms;
	uint32_t count;
	uint32_t rule; /* index + 1; 0 = empty slot */
	int family;
	unsigned char addr[16];
};

struct sink_rules {
	struct rule *rules;
	size_t n, cap;
	bool any_addr, any_rate;
	struct rate_entry *rate;
	size_t rate_cap, rate_used; /* rate_cap is a power of two or 0 */
};

/* ---- parsing ---------------------------------------------------------- */

struct parser {
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int
parse_error(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->err || !p->errlen)
		return SL_ECONFIG;
	n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Next whitespace-separated token of *s; NULL at end of line. */
static char *next_token(char **s)
{
	char *p = *s, *tok;

	while (is_blank(*p))
		p++;
	if (!*p) {
		*s = p;
		return NULL;
	}
	tok = p;
	while (*p && !is_blank(*p))
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return tok;
}

static char *rest_of_line(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int parse_count(struct parser *p, const char *tok, const char *what,
		       uint32_t *out)
{
	uint64_t v = 0;
	const char *s = tok;

	if (!tok)
		return parse_error(p, "%s: missing count", what);
	if (!*s)
		return parse_error(p, "%s: empty count", what);
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return parse_error(p, "%s: '%s' is not a count", what,
					   tok);
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > COUNT_MAX)
			return parse_error(p, "%s: count '%s' too large", what,
					   tok);
	}
	if (v == 0)
		return parse_error(p, "%s: count must be at least 1", what);
	*out = (uint32_t)v;
	return 0;
}

/*
 * A non-negative decimal with up to 6 fraction digits, as millionths.
 * *end is set to the first unparsed character.
 */
static int parse_decimal(const char *s, const char **end, uint64_t *micro)
{
	uint64_t whole = 0, frac = 0, scale = PPM;
	bool digits = false;

	for (; *s >= '0' && *s <= '9'; s++) {
		whole = whole * 10 + (uint64_t)(*s - '0');
		if (whole > 100000000u)
			return -ERANGE;
		digits = true;
	}
	if (*s == '.') {
		s++;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(*s - '0') * scale;
			}
			digits = true;
		}
	}
	if (!digits)
		return -EINVAL;
	*micro = whole * PPM + frac;
	*end = s;
	return 0;
}

/* 250ms, 2s, 1.5s, 1m, 1h; a bare number is seconds. */
static int parse_duration(struct parser *p, const char *tok, const char *what,
			  uint32_t *ms)
{
	const char *unit;
	uint64_t micro, v;

	if (!tok)
		return parse_error(p, "%s: missing duration", what);
	if (parse_decimal(tok, &unit, &micro))
		return parse_error(p, "%s: '%s' is not a duration", what, tok);
	if (!strcmp(unit, "ms"))
		v = micro / PPM;
	else if (!*unit || !strcmp(unit, "s"))
		v = micro / 1000;
	else if (!strcmp(unit, "m"))
		v = micro * 60 / 1000;
	else if (!strcmp(unit, "h"))
		v = micro * 3600 / 1000;
	else
		return parse_error(p, "%s: '%s': unit must be ms, s, m or h",
				   what, tok);
	if (v > DURATION_MAX_MS)
		return parse_error(p, "%s: duration '%s' longer than 24h", what,
				   tok);
	*ms = (uint32_t)v;
	return 0;
}

/* 10%, 2.5%, or a fraction 0..1. */
static int parse_fraction(struct parser *p, const char *tok, uint32_t *ppm)
{
	const char *end;
	uint64_t micro;

	if (!tok)
		return parse_error(p, "fail-rate: missing rate");
	if (parse_decimal(tok, &end, &micro))
		return parse_error(p, "fail-rate: '%s' is not a rate", tok);
	if (!strcmp(end, "%"))
		micro /= 100;
	else if (*end)
		return parse_error(p, "fail-rate: '%s' is not a rate (10%% or 0.1)",
				   tok);
	if (micro > PPM)
		return parse_error(p, "fail-rate: '%s' is more than 100%%", tok);
	*ppm = (uint32_t)micro;
	return 0;
}

/*
 * REPLY: CODE [TEXT...]. allowed is a string of permitted first digits;
 * greeting additionally accepts exactly 220.
 */
static int parse_reply(struct parser *p, char *s, const char *what,
		       const char *allowed, bool allow_220, struct rule *r)
{
	char *code = next_token(&s), *text;
	size_t n;

	if (!code)
		return parse_error(p, "%s: missing reply code", what);
	if (strlen(code) != 3 || code[0] < '2' || code[0] > '5' ||
	    code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9')
		return parse_error(p, "%s: '%s' is not a reply code", what,
				   code);
	r->code = atoi(code);
	if (!strchr(allowed, code[0]) && !(allow_220 && r->code == 220))
		return parse_error(p, "%s: reply code %d not allowed here",
				   what, r->code);
	text = rest_of_line(s);
	n = strlen(text);
	if (n + 4 >= SINK_REPLY_MAX)
		return parse_error(p, "%s: reply text too long", what);
	r->reply = malloc(n + 5);
	if (!r->reply)
		return -ENOMEM;
	if (n)
		snprintf(r->reply, n + 5, "%d %s", r->code, text);
	else
		snprintf(r->reply, n + 5, "%d", r->code);
	return 0;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool domain_chars_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static int parse_selector(struct parser *p, char *tok, struct selector *sel)
{
	char *close, *port;
	unsigned long v;

	if (!strcmp(tok, "*")) {
		sel->kind = SEL_ANY;
		return 0;
	}
	if (tok[0] == '[') {
		close = strchr(tok, ']');
		if (!close)
			return parse_error(p, "selector '%s': missing ']'", tok);
		*close = '\0';
		port = close + 1;
		if (inet_pton(AF_INET, tok + 1, sel->addr) == 1)
			sel->family = AF_INET;
		else if (inet_pton(AF_INET6, tok + 1, sel->addr) == 1)
			sel->family = AF_INET6;
		else
			return parse_error(p, "selector: '%s' is not an IP address",
					   tok + 1);
		if (*port) {
			char *end;

			if (*port != ':' || port[1] < '0' || port[1] > '9')
				return parse_error(p, "selector: bad port '%s'",
						   port);
			v = strtoul(port + 1, &end, 10);
			if (*end || v == 0 || v > 65535)
				return parse_error(p, "selector: bad port '%s'",
						   port + 1);
			sel->port = (uint16_t)v;
		}
		sel->kind = SEL_ADDR;
		return 0;
	}
	if (tok[0] == '*' && tok[1] == '.') {
		if (!domain_chars_ok(tok + 2))
			return parse_error(p, "selector: bad domain '%s'", tok);
		sel->kind = SEL_SUFFIX;
		tok++;
	} else {
		if (!domain_chars_ok(tok))
			return parse_error(p, "selector: bad domain '%s' "
					   "(use *, a domain, *.domain or [ip]:port)",
					   tok);
		sel->kind = SEL_DOMAIN;
	}
	sel->name = strdup(tok);
	if (!sel->name)
		return -ENOMEM;
	lower(sel->name);
	sel->name_len = strlen(sel->name);
	return 0;
}

static int parse_users(struct parser *p, char *s, struct rule *r)
{
	char *tok, *dst;
	size_t n = strlen(s);

	r->users = malloc(n + 1);
	if (!r->users)
		return -ENOMEM;
	dst = r->users;
	while ((tok = next_token(&s))) {
		size_t len = strlen(tok);

		memcpy(dst, tok, len + 1);
		lower(dst);
		dst += len + 1;
	}
	r->users_len = (size_t)(dst - r->users);
	if (!r->users_len)
		return parse_error(p, "reject-user: missing user names");
	return 0;
}

static int parse_rate(struct parser *p, char *s, struct rule *r)
{
	char *tok = next_token(&s), *slash;
	int rc;

	if (!tok)
		return parse_error(p, "rate-per-ip: missing N/DURATION");
	slash = strchr(tok, '/');
	if (!slash)
		return parse_error(p, "rate-per-ip: '%s' is not N/DURATION",
				   tok);
	*slash = '\0';
	rc = parse_count(p, tok, "rate-per-ip", &r->n);
	if (rc)
		return rc;
	rc = parse_duration(p, slash + 1, "rate-per-ip", &r->ms);
	if (rc)
		return rc;
	if (!r->ms)
		return parse_error(p, "rate-per-ip: window must be positive");
	return parse_reply(p, s, "rate-per-ip", "45", false, r);
}

static int expect_end(struct parser *p, char *s, const char *what)
{
	char *tok = next_token(&s);

	if (tok)
		return parse_error(p, "%s: unexpected '%s'", what, tok);
	return 0;
}

static int parse_action(struct parser *p, const char *act, char *s,
			struct rule *r)
{
	int rc;

	if (!strcmp(act, "reject-user")) {
		r->kind = RULE_REJECT_USER;
		return parse_users(p, s, r);
	}
	if (!strcmp(act, "reject-rcpt")) {
		r->kind = RULE_REJECT_RCPT;
		return parse_reply(p, s, act, "45", false, r);
	}
	if (!strcmp(act, "fail-rate")) {
		r->kind = RULE_FAIL_RATE;
		rc = parse_fraction(p, next_token(&s), &r->ppm);
		return rc ? rc : parse_reply(p, s, act, "45", false, r);
	}
	if (!strcmp(act, "defer-after-conn")) {
		r->kind = RULE_DEFER_AFTER_CONN;
		rc = parse_count(p, next_token(&s), act, &r->n);
		return rc ? rc : expect_end(p, s, act);
	}
	if (!strcmp(act, "rate-per-ip")) {
		r->kind = RULE_RATE_PER_IP;
		return parse_rate(p, s, r);
	}
	if (!strcmp(act, "delay")) {
		r->kind = RULE_DELAY;
		rc = parse_duration(p, next_token(&s), act, &r->ms);
		return rc ? rc : expect_end(p, s, act);
	}
	if (!strcmp(act, "data-reply")) {
		r->kind = RULE_DATA_REPLY;
		return parse_reply(p, s, act, "245", false, r);
	}
	if (!strcmp(act, "disconnect-after")) {
		r->kind = RULE_DISCONNECT_AFTER;
		rc = parse_count(p, next_token(&s), act, &r->n);
		return rc ? rc : expect_end(p, s, act);
	}
	if (!strcmp(act, "greeting")) {
		r->kind = RULE_GREETING;
		return parse_reply(p, s, act, "45", true, r);
	}
	return parse_error(p, "unknown action '%s' (expected reject-user, "
			   "reject-rcpt, fail-rate, defer-after-conn, "
			   "rate-per-ip, delay, data-reply, disconnect-after "
			   "or greeting)", act);
}

static void rule_free(struct rule *r)
{
	free(r->sel.name);
	free(r->reply);
	free(r->users);
}

static int rules_push(struct sink_rules *rs, struct rule *r)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		struct rule *v = realloc(rs->rules, cap * sizeof *v);

		if (!v)
			return -ENOMEM;
		rs->rules = v;
		rs->cap = cap;
	}
	rs->rules[rs->n++] = *r;
	if (r->sel.kind == SEL_ADDR)
		rs->any_addr = true;
	if (r->kind == RULE_RATE_PER_IP)
		rs->any_rate = true;
	return 0;
}

/* One line, already copied NUL-terminated into buf. */
static int parse_line(struct parser *p, char *buf, struct sink_rules *rs)
{
	struct rule r = { 0 };
	char *s = buf, *sel, *act;
	int rc;

	sel = next_token(&s);
	if (!sel || sel[0] == '#')
		return 0;
	act = next_token(&s);
	if (!act)
		return parse_error(p, "missing action after '%s'", sel);
	rc = parse_selector(p, sel, &r.sel);
	if (!rc)
		rc = parse_action(p, act, s, &r);
	if (!rc)
		rc = rules_push(rs, &r);
	if (rc)
		rule_free(&r);
	return rc;
}

int sink_rules_parse(const char *text, size_t len, const char *name,
		     struct sink_rules **out, char *err, size_t errlen)
{
	struct parser p = { .name = name ? name : "rules", .err = err,
			    .errlen = errlen };
	struct sink_rules *rs;
	char *buf = NULL;
	size_t pos = 0;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	rs = calloc(1, sizeof *rs);
	buf = malloc(LINE_MAX_LEN + 1);
	if (!rs || !buf) {
		rc = -ENOMEM;
		goto fail;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;

		p.line++;
		if (n && text[end - 1] == '\r')
			n--;
		if (n > LINE_MAX_LEN) {
			rc = parse_error(&p, "line longer than %d bytes",
					 LINE_MAX_LEN);
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)text[pos + i];

			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				rc = parse_error(&p, "control character 0x%02x",
						 c);
				goto fail;
			}
		}
		memcpy(buf, text + pos, n);
		buf[n] = '\0';
		rc = parse_line(&p, buf, rs);
		if (rc)
			goto fail;
		pos = end + 1;
	}
	free(buf);
	*out = rs;
	return 0;
fail:
	free(buf);
	sink_rules_destroy(rs);
	return rc;
}

int sink_rules_load(const char *path, struct sink_rules **out, char *err,
		    size_t errlen)
{
	char *text = NULL;
	size_t len;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	rc = sl_file_read(path, FILE_MAX_LEN, &text, &len);
	if (rc == 0)
		rc = sink_rules_parse(text, len, path, out, err, errlen);
	if (rc && err && errlen && !err[0])
		snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
	free(text);
	return rc;
}

void sink_rules_destroy(struct sink_rules *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n; i++)
		rule_free(&rs->rules[i]);
	free(rs->rules);
	free(rs->rate);
	free(rs);
}

size_t sink_rules_count(const struct sink_rules *rs)
{
	return rs->n;
}

int sink_rules_use_local_addr(const struct sink_rules *rs)
{
	return rs->any_addr;
}

int sink_rules_use_rate(const struct sink_rules *rs)
{
	return rs->any_rate;
}

/* ---- decisions -------------------------------------------------------- */

/* family/addr of sa, with IPv4-mapped IPv6 turned into IPv4. */
static bool addr_of(const struct sockaddr *sa, int *family,
		    const unsigned char **addr, uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		*family = AF_INET;
		*addr = (const unsigned char *)&in->sin_addr;
		*port = ntohs(in->sin_port);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		*port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			*family = AF_INET;
			*addr = in6->sin6_addr.s6_addr + 12;
		} else {
			*family = AF_INET6;
			*addr = in6->sin6_addr.s6_addr;
		}
		return true;
	}
	return false;
}

static bool sel_match(const struct selector *sel, const struct sink_match *m)
{
	const unsigned char *addr;
	uint16_t port;
	int family;

	switch (sel->kind) {
	case SEL_ANY:
		return true;
	case SEL_DOMAIN:
		return m->domain && m->domain_len == sel->name_len &&
		       !strncasecmp(m->domain, sel->name, sel->name_len);
	case SEL_SUFFIX:
		return m->domain && m->domain_len > sel->name_len &&
		       !strncasecmp(m->domain + m->domain_len - sel->name_len,
				    sel->name, sel->name_len);
	case SEL_ADDR:
		if (!m->local || !addr_of(m->local, &family, &addr, &port))
			return false;
		return family == sel->family &&
		       !memcmp(addr, sel->addr, family == AF_INET ? 4 : 16) &&
		       (!sel->port || sel->port == port);
	}
	return false;
}

static int copy_reply(const struct rule *r, char *line, size_t cap)
{
	if (cap)
		snprintf(line, cap, "%s", r->reply);
	return r->code;
}

int sink_rules_greeting(const struct sink_rules *rs, const struct sink_match *m,
			char *line, size_t cap)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];

		if (r->kind == RULE_GREETING && sel_match(&r->sel, m))
			return copy_reply(r, line, cap);
	}
	return 0;
}

/* The n or ms of the first rule of kind matching m, else 0. */
static uint32_t first_value(const struct sink_rules *rs,
			    const struct sink_match *m, enum rule_kind kind)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];

		if (r->kind == kind && sel_match(&r->sel, m))
			return kind == RULE_DELAY ? r->ms : r->n;
	}
	return 0;
}

uint32_t sink_rules_delay_ms(const struct sink_rules *rs,
			     const struct sink_match *m)
{
	return first_value(rs, m, RULE_DELAY);
}

uint32_t sink_rules_disconnect_after(const struct sink_rules *rs,
				     const struct sink_match *m)
{
	return first_value(rs, m, RULE_DISCONNECT_AFTER);
}

uint32_t sink_rules_max_msgs(const struct sink_rules *rs,
			     const struct sink_match *m)
{
	return first_value(rs, m, RULE_DEFER_AFTER_CONN);
}

static bool user_listed(const struct rule *r, const char *local, size_t len)
{
	const char *u = r->users, *end = r->users + r->users_len;

	while (u < end) {
		size_t ulen = strlen(u);

		if (ulen == len && !strncasecmp(u, local, len))
			return true;
		u += ulen + 1;
	}
	return false;
}

/* xorshift64*: small, fast, and the same sequence on every run. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

int sink_rules_rcpt(const struct sink_rules *rs, const struct sink_match *m,
		    const char *addr, size_t len, uint64_t *rng, char *line,
		    size_t cap)
{
	const char *at = NULL;
	size_t local_len;

	for (size_t i = len; i > 0; i--) {
		if (addr[i - 1] == '@') {
			at = addr + i - 1;
			break;
		}
	}
	local_len = at ? (size_t)(at - addr) : len;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];

		if (!sel_match(&r->sel, m))
			continue;
		switch (r->kind) {
		case RULE_REJECT_USER:
			if (!user_listed(r, addr, local_len))
				break;
			if (cap) {
				int max = len > 300 ? 300 : (int)len;

				snprintf(line, cap,
					 "550 5.1.1 <%.*s>: Recipient address "
					 "rejected: User unknown",
					 max, addr);
			}
			return 550;
		case RULE_REJECT_RCPT:
			return copy_reply(r, line, cap);
		case RULE_FAIL_RATE:
			if (rng_next(rng) % PPM < r->ppm)
				return copy_reply(r, line, cap);
			break;
		default:
			break;
		}
	}
	return 0;
}

static uint64_t rate_hash(uint32_t rule, int family, const unsigned char *a)
{
	uint64_t h = 0xcbf29ce484222325ull ^ rule ^ ((uint64_t)family << 32);

	for (int i = 0; i < (family == AF_INET ? 4 : 16); i++) {
		h ^= a[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

static struct rate_entry *rate_slot(struct rate_entry *tab, size_t cap,
				    uint32_t rule, int family,
				    const unsigned char *a)
{
	size_t i = rate_hash(rule, family, a) & (cap - 1);
	size_t alen = family == AF_INET ? 4 : 16;

	for (;;) {
		struct rate_entry *e = &tab[i];

		if (!e->rule || (e->rule == rule && e->family == family &&
				 !memcmp(e->addr, a, alen)))
			return e;
		i = (i + 1) & (cap - 1);
	}
}

/* Grow (or just clean) the table, dropping windows that have closed. */
static int rate_rehash(struct sink_rules *rs, uint64_t now_ms)
{
	size_t cap = rs->rate_cap ? rs->rate_cap : 64, live = 0;
	struct rate_entry *tab;

	for (size_t i = 0; i < rs->rate_cap; i++) {
		const struct rate_entry *e = &rs->rate[i];

		if (e->rule && now_ms - e->start_ms < rs->rules[e->rule - 1].ms)
			live++;
	}
	while (live * 4 >= cap)
		cap *= 2;
	tab = calloc(cap, sizeof *tab);
	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < rs->rate_cap; i++) {
		const struct rate_entry *e = &rs->rate[i];

		if (e->rule && now_ms - e->start_ms < rs->rules[e->rule - 1].ms)
			*rate_slot(tab, cap, e->rule, e->family, e->addr) = *e;
	}
	free(rs->rate);
	rs->rate = tab;
	rs->rate_cap = cap;
	rs->rate_used = live;
	return 0;
}

/* The entry for (rule, address), created if missing. */
static int rate_get(struct sink_rules *rs, uint32_t rule, int family,
		    const unsigned char *a, uint64_t now_ms,
		    struct rate_entry **out)
{
	struct rate_entry *e;
	int rc;

	if (!rs->rate_cap || (rs->rate_used + 1) * 2 > rs->rate_cap) {
		rc = rate_rehash(rs, now_ms);
		if (rc)
			return rc;
	}
	e = rate_slot(rs->rate, rs->rate_cap, rule, family, a);
	if (!e->rule) {
		e->rule = rule;
		e->family = family;
		memcpy(e->addr, a, family == AF_INET ? 4 : 16);
		e->start_ms = now_ms;
		e->count = 0;
		rs->rate_used++;
	}
	*out = e;
	return 0;
}

/* Whether the window of e is full at now_ms; resets a closed window. */
static bool rate_full(struct rate_entry *e, const struct rule *r,
		      uint64_t now_ms)
{
	if (now_ms - e->start_ms >= r->ms) {
		e->start_ms = now_ms;
		e->count = 0;
	}
	return e->count >= r->n;
}

/* Count an accepted message against every matching rate rule. */
static int rate_count(struct sink_rules *rs, const struct sink_match *m,
		      int family, const unsigned char *a, uint64_t now_ms)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		struct rate_entry *e;
		int rc;

		if (r->kind != RULE_RATE_PER_IP || !sel_match(&r->sel, m))
			continue;
		rc = rate_get(rs, (uint32_t)i + 1, family, a, now_ms, &e);
		if (rc)
			return rc;
		if (!e->count)
			e->start_ms = now_ms;
		e->count++;
	}
	return 0;
}

int sink_rules_data_end(struct sink_rules *rs, const struct sink_match *m,
			const struct sockaddr *src, uint64_t now_ms, char *line,
			size_t cap)
{
	const unsigned char *a = NULL;
	int family = 0, code = 0, rc;
	uint16_t port;

	if (src && !addr_of(src, &family, &a, &port))
		a = NULL;
	for (size_t i = 0; i < rs->n && !code; i++) {
		const struct rule *r = &rs->rules[i];
		struct rate_entry *e;

		if (!sel_match(&r->sel, m))
			continue;
		if (r->kind == RULE_DATA_REPLY) {
			code = copy_reply(r, line, cap);
		} else if (r->kind == RULE_RATE_PER_IP && a) {
			rc = rate_get(rs, (uint32_t)i + 1, family, a, now_ms, &e);
			if (rc)
				return rc;
			if (rate_full(e, r, now_ms))
				code = copy_reply(r, line, cap);
		}
	}
	if ((code == 0 || code / 100 == 2) && a && rs->any_rate) {
		rc = rate_count(rs, m, family, a, now_ms);
		if (rc)
			return rc;
	}
	return code;
}
