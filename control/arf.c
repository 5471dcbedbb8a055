/*
 * arf.c — feedback report parsing (RFC 5965 ARF, Microsoft JMRP, AOL).
 * See arf.h. MIME access comes from bounce.c's small reader.
 */
#include "arf.h"
#include "bounce.h"
#include "mime.h"
#include "err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct arf_ctx {
	struct arf_report *r;
	int have_fr;	  /* a message/feedback-report part */
	int have_orig;	  /* an attached original message or its headers */
	int abuse_text;	  /* a text part saying "email abuse report" */
	char text_ip[64]; /* "received from IP a.b.c.d" in the text part */
	char text_date[128];
	char jmrp_rcpt[256];
	int hmxmr; /* X-HmXmrOriginalRecipient seen (Microsoft) */
	char from_domain[256]; /* of the attached message's From: */
};

/* Copy s into d (size n), cut to n - 1 bytes, always terminated. */
static void scpy(char *d, size_t n, const char *s)
{
	size_t l = strnlen(s, n - 1);

	memcpy(d, s, l);
	d[l] = 0;
}

static void strip_addr(char *v)
{
	/* "rfc822; <a@b>" or "<a@b>" or "Name <a@b>" -> "a@b" */
	char *lt = strchr(v, '<'), *gt;
	char *semi = strchr(v, ';');

	if (lt && (gt = strchr(lt, '>')) != NULL) {
		*gt = 0;
		memmove(v, lt + 1, strlen(lt + 1) + 1);
		return;
	}
	if (semi && (size_t)(semi - v) < 16) {
		char *s = semi + 1;
		while (*s == ' ')
			s++;
		memmove(v, s, strlen(s) + 1);
	}
	v[strcspn(v, " ")] = 0;
}

/* An IPv4 or IPv6 literal at s (digits, hex, '.' and ':'), copied to out. */
static int ip_at(const char *s, char *out, size_t outlen)
{
	size_t n = 0;
	int dots = 0, colons = 0;

	while (s[n] && n < 63 && (isxdigit((unsigned char)s[n]) || s[n] == '.' || s[n] == ':')) {
		dots += s[n] == '.';
		colons += s[n] == ':';
		n++;
	}
	while (n && (s[n - 1] == '.' || (s[n - 1] == ':' && colons < 2)))
		n--;
	if (n < 3 || (dots != 3 && colons < 2) || n >= outlen)
		return 0;
	memcpy(out, s, n);
	out[n] = 0;
	return 1;
}

static const char *find_ci(const char *s, const char *needle)
{
	size_t nl = strlen(needle);
	for (; *s; s++)
		if (strncasecmp(s, needle, nl) == 0)
			return s;
	return NULL;
}

static void orig_headers(struct arf_ctx *c, const char *hdr, size_t hlen)
{
	struct arf_report *r = c->r;
	char v[512];

	if (!r->message_id[0])
		mime_header(hdr, hlen, "Message-ID", r->message_id, sizeof r->message_id);
	if (mime_header(hdr, hlen, "X-HmXmrOriginalRecipient", v, sizeof v)) {
		strip_addr(v);
		scpy(c->jmrp_rcpt, sizeof c->jmrp_rcpt, v);
		c->hmxmr = 1;
	}
	if (!c->from_domain[0] && mime_header(hdr, hlen, "From", v, sizeof v)) {
		strip_addr(v);
		const char *at = strrchr(v, '@');
		if (at && at[1])
			scpy(c->from_domain, sizeof c->from_domain, at + 1);
	}
	if (!r->original_mail_from[0]) {
		if (mime_header(hdr, hlen, "Return-Path", v, sizeof v) ||
		    mime_header(hdr, hlen, "From", v, sizeof v)) {
			strip_addr(v);
			scpy(r->original_mail_from, sizeof r->original_mail_from, v);
		}
	}
	if (!r->original_rcpt_to[0] && !c->jmrp_rcpt[0]) {
		if (mime_header(hdr, hlen, "X-Original-To", v, sizeof v) ||
		    mime_header(hdr, hlen, "Delivered-To", v, sizeof v)) {
			strip_addr(v);
			scpy(c->jmrp_rcpt, sizeof c->jmrp_rcpt, v);
		}
	}
}

static void feedback_fields(struct arf_ctx *c, const char *s, size_t n)
{
	struct arf_report *r = c->r;
	struct mime_part p;
	char v[512];

	/* the fields are one header-like block */
	while (n && (*s == '\r' || *s == '\n')) {
		s++;
		n--;
	}
	mime_split(s, n, &p);
	c->have_fr = 1;
	mime_header(p.hdr, p.hdr_len, "Feedback-Type", r->feedback_type, sizeof r->feedback_type);
	for (char *q = r->feedback_type; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	if (mime_header(p.hdr, p.hdr_len, "Original-Mail-From", v, sizeof v)) {
		strip_addr(v);
		scpy(r->original_mail_from, sizeof r->original_mail_from, v);
	}
	if (mime_header(p.hdr, p.hdr_len, "Original-Rcpt-To", v, sizeof v) ||
	    mime_header(p.hdr, p.hdr_len, "Removal-Recipient", v, sizeof v)) {
		strip_addr(v);
		scpy(r->original_rcpt_to, sizeof r->original_rcpt_to, v);
	}
	if (mime_header(p.hdr, p.hdr_len, "Source-IP", v, sizeof v))
		ip_at(v + strspn(v, "[ "), r->source_ip, sizeof r->source_ip);
	if (!mime_header(p.hdr, p.hdr_len, "Arrival-Date", r->arrival_date, sizeof r->arrival_date))
		mime_header(p.hdr, p.hdr_len, "Received-Date", r->arrival_date,
			    sizeof r->arrival_date);
	mime_header(p.hdr, p.hdr_len, "Reported-Domain", r->reported_domain,
		    sizeof r->reported_domain);
	mime_header(p.hdr, p.hdr_len, "User-Agent", r->user_agent, sizeof r->user_agent);
}

static int arf_cb(void *ctx, const struct mime_part *p, const char *ctype, int depth)
{
	struct arf_ctx *c = ctx;
	char buf[8192];
	size_t n;

	if (depth == 0)
		return 0; /* a single-part message is not a report */
	if (strcmp(ctype, "message/feedback-report") == 0) {
		n = mime_decode(p, buf, sizeof buf);
		feedback_fields(c, buf, n);
	} else if (strcmp(ctype, "message/rfc822") == 0 ||
		   strcmp(ctype, "text/rfc822-headers") == 0) {
		struct mime_part orig;
		/* Undecoded: an attached message is 7bit/8bit in practice;
		 * its header section ends at the first empty line. */
		const char *b = p->body;
		size_t bl = p->body_len;
		if (strcmp(ctype, "text/rfc822-headers") == 0) {
			mime_split(b, bl, &orig);
			orig.hdr_len = bl; /* the whole part is headers */
		} else {
			mime_split(b, bl, &orig);
		}
		c->have_orig = 1;
		orig_headers(c, orig.hdr, orig.hdr_len);
	} else if (strncmp(ctype, "text/", 5) == 0) {
		const char *m;
		n = mime_decode(p, buf, sizeof buf);
		(void)n;
		if (find_ci(buf, "email abuse report") || find_ci(buf, "complaint about message"))
			c->abuse_text = 1;
		if ((m = find_ci(buf, "from ip ")) != NULL && !c->text_ip[0])
			ip_at(m + 8, c->text_ip, sizeof c->text_ip);
		if ((m = find_ci(buf, " on ")) != NULL && c->abuse_text && !c->text_date[0]) {
			char line[128];
			size_t ll = strcspn(m + 4, "\r\n");
			if (ll >= sizeof line)
				ll = sizeof line - 1;
			memcpy(line, m + 4, ll);
			line[ll] = 0;
			for (size_t i = 0; i < ll; i++)
				if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
					line[i] = ' ';
			ll = strlen(line);
			while (ll && (line[ll - 1] == '.' || line[ll - 1] == ' '))
				line[--ll] = 0;
			scpy(c->text_date, sizeof c->text_date, line);
		}
	}
	return 0;
}

const char *arf_format_name(enum arf_format f)
{
	switch (f) {
	case ARF_RFC5965:
		return "rfc5965";
	case ARF_JMRP:
		return "jmrp";
	case ARF_AOL:
		return "aol";
	default:
		return "none";
	}
}

int arf_parse(const char *msg, size_t len, struct arf_report *out)
{
	struct arf_ctx c = { .r = out };
	struct mime_part top;
	char ct[512], rt[64], from[256], ctype[64];

	memset(out, 0, sizeof *out);
	if (len > BOUNCE_MSG_MAX)
		len = BOUNCE_MSG_MAX;
	mime_split(msg, len, &top);
	mime_ctype(&top, ctype, sizeof ctype);
	if (strncmp(ctype, "multipart/", 10) != 0)
		return SL_EPROTO;
	mime_header(top.hdr, top.hdr_len, "Content-Type", ct, sizeof ct);
	mime_param(ct, "report-type", rt, sizeof rt);
	mime_header(top.hdr, top.hdr_len, "From", from, sizeof from);
	/* A DSN is never a complaint, whatever else it carries. */
	if (strcasecmp(rt, "delivery-status") == 0)
		return SL_EPROTO;
	mime_walk(msg, len, arf_cb, &c);

	if (c.have_fr) {
		out->format = ARF_RFC5965;
		if (!out->feedback_type[0])
			snprintf(out->feedback_type, sizeof out->feedback_type, "abuse");
	} else if (c.have_orig && (c.hmxmr || find_ci(from, "staff@hotmail.com"))) {
		out->format = ARF_JMRP;
	} else if (c.have_orig && (c.abuse_text || find_ci(from, "scomp@aol"))) {
		out->format = ARF_AOL;
	} else {
		memset(out, 0, sizeof *out);
		return SL_EPROTO;
	}
	if (!out->feedback_type[0])
		snprintf(out->feedback_type, sizeof out->feedback_type, "abuse");
	if (!out->original_rcpt_to[0] && c.jmrp_rcpt[0])
		scpy(out->original_rcpt_to, sizeof out->original_rcpt_to, c.jmrp_rcpt);
	if (!out->source_ip[0] && c.text_ip[0])
		scpy(out->source_ip, sizeof out->source_ip, c.text_ip);
	if (!out->arrival_date[0] && c.text_date[0])
		scpy(out->arrival_date, sizeof out->arrival_date, c.text_date);
	if (!out->user_agent[0] && out->format == ARF_JMRP)
		snprintf(out->user_agent, sizeof out->user_agent, "Microsoft JMRP");
	if (!out->reported_domain[0] && c.from_domain[0])
		scpy(out->reported_domain, sizeof out->reported_domain, c.from_domain);
	if (!out->reported_domain[0] && out->original_mail_from[0]) {
		const char *at = strrchr(out->original_mail_from, '@');
		if (at && at[1])
			scpy(out->reported_domain, sizeof out->reported_domain, at + 1);
	}
	return 0;
}
