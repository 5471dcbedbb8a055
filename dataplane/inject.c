/* inject.c — HTTP injection: parse, build, accept; see inject.h. */
#include "inject.h"

#include "err.h"
#include "json.h"
#include "message.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDR 254

/* --- addresses ---------------------------------------------------------- */

static bool domain_valid(const char *d, size_t len)
{
	size_t label = 0, dots = 0;

	if (len >= 2 && d[0] == '[' && d[len - 1] == ']') {
		for (size_t i = 1; i + 1 < len; i++)
			if (!isxdigit((unsigned char)d[i]) && !strchr(".:", d[i]) &&
			    !(i + 5 < len && !strncasecmp(d + i, "IPv6:", 5)))
				return false;
		return len > 2;
	}
	if (!len || d[0] == '.' || d[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (!label || d[i - 1] == '-')
				return false;
			label = 0;
			dots++;
		} else if (isalnum(c) || (c == '-' && label)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return dots > 0 && d[len - 1] != '-';
}

bool inject_address_valid(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t len = strlen(addr);

	if (!at || at == addr || len > MAX_ADDR || at - addr > 64)
		return false;
	for (const char *p = addr; p < at; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= ' ' || c >= 0x7f || strchr("<>()[]\\,;:\"@", c))
			return false;
	}
	if (addr[0] == '.' || at[-1] == '.' || strstr(addr, ".."))
		return false;
	return domain_valid(at + 1, strlen(at + 1));
}

/* "Name <addr>" or "addr": the address (trimmed) into out and the display
 * name (unquoted) into name. False when the shape is wrong. */
static bool split_mailbox(const char *s, char *out, size_t outlen, char *name, size_t namelen)
{
	const char *lt = strrchr(s, '<'), *b = s, *e;

	name[0] = 0;
	if (lt) {
		const char *gt = strchr(lt, '>');
		const char *ne = lt;

		if (!gt || gt[1] != 0)
			return false;
		while (*b == ' ')
			b++;
		while (ne > b && ne[-1] == ' ')
			ne--;
		if (ne - b >= 2 && *b == '"' && ne[-1] == '"') {
			b++;
			ne--;
		}
		if ((size_t)(ne - b) >= namelen)
			return false;
		memcpy(name, b, (size_t)(ne - b));
		name[ne - b] = 0;
		b = lt + 1;
		e = gt;
	} else {
		while (*b == ' ')
			b++;
		e = b + strlen(b);
		while (e > b && e[-1] == ' ')
			e--;
	}
	if ((size_t)(e - b) >= outlen)
		return false;
	memcpy(out, b, (size_t)(e - b));
	out[e - b] = 0;
	return true;
}

/* --- building messages -------------------------------------------------- */

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

int inject_header_encode(struct sl_buf *out, const char *value, size_t name_len)
{
	size_t len = strlen(value), i = 0;
	int rc = 0;

	(void)name_len;
	if (is_ascii(value))
		return sl_buf_append(out, value, len);
	/* Encoded words of at most 45 input bytes (60 base64 characters, 75
	 * with the =?UTF-8?B?...?= frame), never splitting a UTF-8 sequence. */
	while (i < len && !rc) {
		unsigned char enc[64];
		size_t n = len - i > 45 ? 45 : len - i;

		while (n < len - i && n > 1 && ((unsigned char)value[i + n] & 0xc0) == 0x80)
			n--;
		EVP_EncodeBlock(enc, (const unsigned char *)value + i, (int)n);
		rc = sl_buf_appendf(out, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", enc);
		i += n;
	}
	return rc;
}

int inject_qp_encode(struct sl_buf *out, const char *text, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	int rc = 0;

	for (size_t i = 0; i < len && !rc; i++) {
		unsigned char c = (unsigned char)text[i];
		char enc[3];
		size_t n;

		if (c == '\n' || (c == '\r' && i + 1 < len && text[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			rc = sl_buf_append(out, "\r\n", 2);
			col = 0;
			continue;
		}
		bool eol = i + 1 == len || text[i + 1] == '\n' ||
			   (text[i + 1] == '\r' && i + 2 < len && text[i + 2] == '\n');
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol) ||
		    (c == '.' && col > 0)) {
			enc[0] = (char)c;
			n = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			n = 3;
		}
		if (col + n > 75) {
			rc = sl_buf_append(out, "=\r\n", 3);
			col = 0;
		}
		/* A line starting with '.' is encoded, so nothing downstream
		 * ever sees a lone dot line. */
		if (!rc && col == 0 && c == '.') {
			enc[0] = '=';
			enc[1] = '2';
			enc[2] = 'E';
			n = 3;
		}
		if (!rc)
			rc = sl_buf_append(out, enc, n);
		col += n;
	}
	if (!rc && col)
		rc = sl_buf_append(out, "\r\n", 2);
	return rc;
}

/* Raw text with bare LFs (or CRLFs) normalised to CRLF. */
static int append_crlf(struct sl_buf *out, const char *s, size_t len)
{
	int rc = 0;

	for (size_t i = 0; i < len && !rc; i++) {
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			continue;
		rc = s[i] == '\n' ? sl_buf_append(out, "\r\n", 2) : sl_buf_append(out, s + i, 1);
	}
	return rc;
}

static int append_mailbox(struct sl_buf *out, const char *name, const char *addr)
{
	int rc = 0;

	if (!name[0])
		return sl_buf_appendf(out, "%s", addr);
	if (!is_ascii(name)) {
		rc = inject_header_encode(out, name, 0);
	} else {
		rc = sl_buf_append(out, "\"", 1);
		for (const char *p = name; *p && !rc; p++)
			rc = (*p == '"' || *p == '\\') ? sl_buf_appendf(out, "\\%c", *p) :
							   sl_buf_append(out, p, 1);
		if (!rc)
			rc = sl_buf_append(out, "\"", 1);
	}
	return rc ? rc : sl_buf_appendf(out, " <%s>", addr);
}

/* Header names the builder writes itself; "headers" may not set them. */
static const char *const reserved_headers[] = {
	"From", "To", "Subject", "Date", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Received", "DKIM-Signature", "X-Sluice-Stream",
};

static bool header_name_valid(const char *n)
{
	if (!*n || strlen(n) > 76)
		return false;
	for (; *n; n++)
		if (*n <= ' ' || *n >= 0x7f || *n == ':')
			return false;
	return true;
}

static int append_part(struct sl_buf *out, const char *type, const char *text)
{
	int rc = sl_buf_appendf(out,
				"Content-Type: text/%s; charset=utf-8\r\n"
				"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
				type);

	return rc ? rc : inject_qp_encode(out, text, strlen(text));
}

/* --- parsing ------------------------------------------------------------ */

struct parse {
	char *err;
	size_t errlen;
	const struct inject_limits *lim;
	uint64_t now_ms;
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* The string member key of o, or NULL when absent; -EINVAL when present
 * but not a string (or holding a NUL). */
static int get_str(struct parse *p, const json_t *o, size_t mi, const char *key, const char **out)
{
	const json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return fail(p, "messages[%zu].%s: expected a string, got %s", mi, key, type_name(v));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(p, "messages[%zu].%s: NUL bytes are not allowed", mi, key);
	*out = json_string_value(v);
	return 0;
}

static int build_structured(struct parse *p, const json_t *o, size_t mi,
			    struct inject_message *m, const char *from_name, const char *from_addr)
{
	const char *subject, *text, *html;
	const json_t *headers = json_object_get(o, "headers");
	struct sl_buf *b = &m->body;
	char date[40], boundary[64];
	int rc;

	if ((rc = get_str(p, o, mi, "subject", &subject)) || (rc = get_str(p, o, mi, "text", &text)) ||
	    (rc = get_str(p, o, mi, "html", &html)))
		return rc;
	if (!text && !html)
		return fail(p, "messages[%zu]: needs \"raw\", or \"text\" and/or \"html\"", mi);
	if (subject && strpbrk(subject, "\r\n"))
		return fail(p, "messages[%zu].subject: line breaks are not allowed", mi);
	if (headers && !json_is_object(headers))
		return fail(p, "messages[%zu].headers: expected an object, got %s", mi,
			    type_name(headers));
	message_date(p->now_ms, date);
	rc = sl_buf_appendf(b, "Date: %s\r\nFrom: ", date);
	if (!rc)
		rc = append_mailbox(b, from_name, from_addr);
	if (!rc)
		rc = sl_buf_append(b, "\r\nTo: ", 6);
	/* Only valid recipients reach the header: a rejected one may hold
	 * anything, line breaks included. */
	for (size_t i = 0, n = 0; i < m->n_rcpts && !rc; i++)
		if (m->rcpts[i].status == INJECT_PENDING)
			rc = sl_buf_appendf(b, "%s%s", n++ ? ",\r\n " : "", m->rcpts[i].addr);
	if (!rc && subject) {
		rc = sl_buf_append(b, "\r\nSubject: ", 11);
		if (!rc)
			rc = inject_header_encode(b, subject, 9);
	}
	if (!rc)
		rc = sl_buf_append(b, "\r\nMIME-Version: 1.0\r\n", 21);
	if (headers) {
		const char *k;
		json_t *v;

		json_object_foreach((json_t *)headers, k, v) {
			if (rc)
				break;
			if (!header_name_valid(k))
				return fail(p, "messages[%zu].headers: \"%.64s\" is not a valid header name",
					    mi, k);
			for (size_t i = 0; i < sizeof reserved_headers / sizeof *reserved_headers; i++)
				if (!strcasecmp(k, reserved_headers[i]))
					return fail(p, "messages[%zu].headers.%s: set by sluice, use the "
						       "message fields", mi, k);
			if (!json_is_string(v))
				return fail(p, "messages[%zu].headers.%s: expected a string, got %s", mi, k,
					    type_name(v));
			if (strlen(json_string_value(v)) != json_string_length(v) ||
			    strpbrk(json_string_value(v), "\r\n"))
				return fail(p, "messages[%zu].headers.%s: line breaks and NUL bytes are "
					       "not allowed", mi, k);
			rc = sl_buf_appendf(b, "%s: ", k);
			if (!rc)
				rc = inject_header_encode(b, json_string_value(v), strlen(k) + 2);
			if (!rc)
				rc = sl_buf_append(b, "\r\n", 2);
		}
	}
	if (rc)
		return rc;
	if (text && html) {
		snprintf(boundary, sizeof boundary, "=_sluice_%016" PRIx64 "_%zu", p->now_ms, mi);
		rc = sl_buf_appendf(b,
				    "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
				    "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n",
				    boundary, boundary);
		if (!rc)
			rc = append_part(b, "plain", text);
		if (!rc)
			rc = sl_buf_appendf(b, "\r\n--%s\r\n", boundary);
		if (!rc)
			rc = append_part(b, "html", html);
		if (!rc)
			rc = sl_buf_appendf(b, "\r\n--%s--\r\n", boundary);
	} else {
		rc = append_part(b, text ? "plain" : "html", text ? text : html);
	}
	return rc;
}

static const char *const message_keys[] = { "from", "to", "raw", "subject", "text",
					    "html", "headers", "stream" };

static int parse_message(struct parse *p, const json_t *o, size_t mi, struct inject_message *m)
{
	const char *from, *raw, *stream, *key;
	const json_t *to, *v;
	char from_addr[MAX_ADDR + 2], from_name[256];
	int rc;

	m->stream = -1;
	if (!json_is_object(o))
		return fail(p, "messages[%zu]: expected an object, got %s", mi, type_name(o));
	json_object_foreach((json_t *)o, key, v) {
		size_t i;

		for (i = 0; i < sizeof message_keys / sizeof *message_keys; i++)
			if (!strcmp(key, message_keys[i]))
				break;
		if (i == sizeof message_keys / sizeof *message_keys)
			return fail(p, "messages[%zu].%.64s: unknown field", mi, key);
	}
	if ((rc = get_str(p, o, mi, "from", &from)) || (rc = get_str(p, o, mi, "raw", &raw)) ||
	    (rc = get_str(p, o, mi, "stream", &stream)))
		return rc;
	if (!from)
		return fail(p, "messages[%zu].from: required", mi);
	to = json_object_get(o, "to");
	if (!to)
		return fail(p, "messages[%zu].to: required", mi);
	if (!json_is_array(to))
		return fail(p, "messages[%zu].to: expected an array, got %s", mi, type_name(to));
	if (!json_array_size(to))
		return fail(p, "messages[%zu].to: at least one recipient", mi);
	if (stream) {
		if (!strcmp(stream, "transactional"))
			m->stream = SL_STREAM_TRANSACTIONAL;
		else if (!strcmp(stream, "marketing"))
			m->stream = SL_STREAM_MARKETING;
		else
			return fail(p, "messages[%zu].stream: \"transactional\" or \"marketing\"", mi);
	}
	if (raw) {
		static const char *const not_with_raw[] = { "subject", "text", "html", "headers" };

		for (size_t i = 0; i < 4; i++)
			if (json_object_get(o, not_with_raw[i]))
				return fail(p, "messages[%zu].%s: not allowed with \"raw\"", mi,
					    not_with_raw[i]);
	}
	m->n_rcpts = json_array_size(to);
	m->rcpts = calloc(m->n_rcpts, sizeof *m->rcpts);
	if (!m->rcpts)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const json_t *r = json_array_get(to, i);
		struct inject_rcpt *ir = &m->rcpts[i];

		if (!json_is_string(r))
			return fail(p, "messages[%zu].to[%zu]: expected a string, got %s", mi, i,
				    type_name(r));
		ir->addr = strndup(json_string_value(r), MAX_ADDR + 1);
		if (!ir->addr)
			return -ENOMEM;
		if (strlen(json_string_value(r)) != json_string_length(r) ||
		    !inject_address_valid(ir->addr)) {
			ir->status = INJECT_REJECTED;
			ir->reason = "invalid recipient address";
		} else if (i >= p->lim->max_rcpts) {
			ir->status = INJECT_REJECTED;
			ir->reason = "too many recipients";
		}
		for (size_t j = 0; j < i && ir->status == INJECT_PENDING; j++)
			if (!strcasecmp(m->rcpts[j].addr, ir->addr)) {
				ir->status = INJECT_REJECTED;
				ir->reason = "duplicate recipient";
			}
	}
	if (strpbrk(from, "\r\n") ||
	    !split_mailbox(from, from_addr, sizeof from_addr, from_name, sizeof from_name) ||
	    !inject_address_valid(from_addr)) {
		m->status = INJECT_REJECTED;
		m->reason = "invalid sender address";
		from_addr[0] = 0;
		from_name[0] = 0;
	}
	if (!(m->mail_from = strdup(from_addr)))
		return -ENOMEM;
	if (raw) {
		if (!raw[0])
			return fail(p, "messages[%zu].raw: empty message", mi);
		rc = append_crlf(&m->body, raw, strlen(raw));
		if (!rc && (m->body.len < 2 || memcmp(m->body.data + m->body.len - 2, "\r\n", 2)))
			rc = sl_buf_append(&m->body, "\r\n", 2);
	} else {
		rc = build_structured(p, o, mi, m, from_name, from_addr);
	}
	if (rc)
		return rc;
	if (p->lim->max_message_size && m->body.len > p->lim->max_message_size)
		return fail(p, "messages[%zu]: %zu bytes, more than the limit of %zu", mi, m->body.len,
			    p->lim->max_message_size);
	if (m->status == INJECT_PENDING) {
		bool any = false;

		for (size_t i = 0; i < m->n_rcpts; i++)
			any |= m->rcpts[i].status == INJECT_PENDING;
		if (!any) {
			m->status = INJECT_REJECTED;
			m->reason = "no valid recipients";
		}
	}
	return 0;
}

int inject_parse(const char *text, size_t len, const struct inject_limits *lim,
		 uint64_t now_ms, struct inject_batch *out, char *err, size_t errlen)
{
	struct inject_limits l = *lim;
	struct parse p = { .err = err, .errlen = errlen, .lim = &l, .now_ms = now_ms };
	json_error_t jerr;
	json_t *root, *msgs;
	const char *key;
	json_t *v;
	int rc;

	if (!l.max_messages)
		l.max_messages = INJECT_DEFAULT_MAX_MESSAGES;
	if (!l.max_rcpts)
		l.max_rcpts = 1000;
	*out = (struct inject_batch){ 0 };
	if (errlen)
		err[0] = 0;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return fail(&p, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
			    jerr.text);
	if (!json_is_object(root)) {
		rc = fail(&p, "the body must be a JSON object, got %s", type_name(root));
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "messages")) {
			rc = fail(&p, "%.64s: unknown field", key);
			goto out;
		}
	}
	msgs = json_object_get(root, "messages");
	if (!msgs) {
		rc = fail(&p, "messages: required");
		goto out;
	}
	if (!json_is_array(msgs)) {
		rc = fail(&p, "messages: expected an array, got %s", type_name(msgs));
		goto out;
	}
	if (!json_array_size(msgs)) {
		rc = fail(&p, "messages: at least one message");
		goto out;
	}
	if (json_array_size(msgs) > l.max_messages) {
		rc = fail(&p, "messages: %zu messages, at most %zu per request",
			  json_array_size(msgs), l.max_messages);
		goto out;
	}
	out->msgs = calloc(json_array_size(msgs), sizeof *out->msgs);
	if (!out->msgs) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(msgs); i++) {
		out->n_msgs++;
		out->msgs[i].batch = out;
		rc = parse_message(&p, json_array_get(msgs, i), i, &out->msgs[i]);
		if (rc)
			goto out;
	}
	rc = 0;
out:
	json_decref(root);
	if (rc)
		inject_batch_free(out);
	return rc;
}

void inject_batch_free(struct inject_batch *b)
{
	for (size_t i = 0; i < b->n_msgs; i++) {
		struct inject_message *m = &b->msgs[i];

		for (size_t j = 0; m->rcpts && j < m->n_rcpts; j++)
			free(m->rcpts[j].addr);
		free(m->rcpts);
		free(m->rcpt_ptrs);
		free(m->mail_from);
		sl_buf_free(&m->body);
	}
	free(b->msgs);
	*b = (struct inject_batch){ 0 };
}

/* --- accepting ---------------------------------------------------------- */

static void message_done(struct accept_msg *am, int result)
{
	struct inject_message *m = (struct inject_message *)((char *)am -
							    offsetof(struct inject_message, am));
	struct inject_batch *b = m->batch;

	if (result == 0) {
		m->status = INJECT_ACCEPTED;
		m->id = am->id;
	} else {
		m->status = INJECT_REJECTED;
		m->reason = result == ACCEPT_ELINK ? m->am.refusal :
			    result == SL_ETOOBIG || result == -ENOSPC ? "spool full, try again later" :
			    result == ACCEPT_ESIGN ? "DKIM signing failed, try again later" :
						     "local error, try again later";
	}
	if (--b->pending == 0)
		b->done(b, b->ctx);
}

int inject_submit(struct accept *acc, struct inject_batch *b, const char *tenant_name)
{
	const struct sl_tenant_cfg *t = b->tenant;
	int rc = 0;

	if (!t) {
		/* A tenant of the control store without a configuration entry:
		 * default stream, the first pool. */
		b->synth_tenant = (struct sl_tenant_cfg){ .name = (char *)tenant_name,
							  .stream = SL_STREAM_TRANSACTIONAL };
		t = &b->synth_tenant;
	}
	snprintf(b->received_from, sizeof b->received_from, "api (%s)", b->peer[0] ? b->peer : "unknown");
	b->pending = 1; /* held until every message is started */
	for (size_t i = 0; i < b->n_msgs; i++) {
		struct inject_message *m = &b->msgs[i];
		size_t n = 0;

		if (m->status != INJECT_PENDING)
			continue;
		m->rcpt_ptrs = calloc(m->n_rcpts, sizeof *m->rcpt_ptrs);
		if (!m->rcpt_ptrs) {
			m->status = INJECT_REJECTED;
			m->reason = "local error, try again later";
			continue;
		}
		for (size_t j = 0; j < m->n_rcpts; j++)
			if (m->rcpts[j].status == INJECT_PENDING)
				m->rcpt_ptrs[n++] = m->rcpts[j].addr;
		m->batch = b;
		m->am = (struct accept_msg){
			.tenant = t,
			.stream = m->stream,
			.mail_from = m->mail_from,
			.rcpts = m->rcpt_ptrs,
			.n_rcpts = n,
			.body = m->body.data,
			.body_len = m->body.len,
			.flags = 0,
			.received_from = b->received_from,
			.received_with = "HTTP",
			.done = message_done,
		};
		b->pending++;
		rc = accept_submit(acc, &m->am);
		if (rc < 0) {
			b->pending--;
			m->status = INJECT_REJECTED;
			m->reason = rc == -EPIPE        ? "shutting down, try again later" :
				    rc == ACCEPT_EQUOTA ? "tenant quota used up, try again later" :
				    rc == ACCEPT_ELINK  ? m->am.refusal :
							  "local error, try again later";
		}
	}
	if (--b->pending == 0)
		b->done(b, b->ctx);
	return 0;
}

int inject_reply_json(const struct inject_batch *b, struct sl_buf *out)
{
	size_t acc = 0, rej = 0;
	int rc = 0;

	for (size_t i = 0; i < b->n_msgs; i++)
		b->msgs[i].status == INJECT_ACCEPTED ? acc++ : rej++;
	rc = sl_buf_appendf(out, "{\"accepted\":%zu,\"rejected\":%zu,\"messages\":[", acc, rej);
	for (size_t i = 0; i < b->n_msgs && !rc; i++) {
		const struct inject_message *m = &b->msgs[i];
		char id[17];

		rc = sl_buf_appendf(out, "%s{\"index\":%zu,\"status\":\"%s\"", i ? "," : "", i,
				    m->status == INJECT_ACCEPTED ? "accepted" : "rejected");
		if (!rc && m->status == INJECT_ACCEPTED) {
			snprintf(id, sizeof id, "%016" PRIx64, m->id);
			rc = sl_buf_appendf(out, ",\"id\":\"%s\",\"message_id\":", id);
			if (!rc)
				rc = json_append_string(out, m->am.message_id);
		} else if (!rc) {
			rc = sl_buf_append(out, ",\"reason\":", 10);
			if (!rc)
				rc = json_append_string(out, m->reason ? m->reason : "rejected");
		}
		if (!rc)
			rc = sl_buf_append(out, ",\"recipients\":[", 15);
		for (size_t j = 0; j < m->n_rcpts && !rc; j++) {
			const struct inject_rcpt *r = &m->rcpts[j];
			bool ok = m->status == INJECT_ACCEPTED && r->status == INJECT_PENDING;

			rc = sl_buf_appendf(out, "%s{\"rcpt\":", j ? "," : "");
			if (!rc)
				rc = json_append_string(out, r->addr);
			if (!rc)
				rc = sl_buf_appendf(out, ",\"status\":\"%s\"", ok ? "accepted" : "rejected");
			if (!rc && !ok) {
				rc = sl_buf_append(out, ",\"reason\":", 10);
				if (!rc)
					rc = json_append_string(out, r->reason ? r->reason :
								m->reason ? m->reason : "rejected");
			}
			if (!rc)
				rc = sl_buf_append(out, "}", 1);
		}
		if (!rc)
			rc = sl_buf_append(out, "]}", 2);
	}
	if (!rc)
		rc = sl_buf_append(out, "]}", 2);
	return rc;
}
