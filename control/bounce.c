/*
 * bounce.c — bounce classification: rules file, SMTP replies, DSN and
 * non-standard bounce messages, on top of the
 * MIME reader in mime.c. See bounce.h.
 */
#include "bounce.h"
#include "mime.h"
#include "arf.h"
#include "config.h"
#include "err.h"
#include "file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RULES_FILE_MAX (1u << 20)
#define RULE_PAT_MAX 256
#define TEXT_MAX 16384 /* human-readable text looked at */
#define DS_MAX 32768   /* a message/delivery-status part */

static const char *const reason_names[BOUNCE_R_COUNT] = {
	"undefined",	   "userunknown",     "mailboxfull",	"hostunknown",	  "filtered",
	"blocked",	   "spamdetected",    "policyviolation", "rejected",	  "toomanyconn",
	"speeding",	   "badreputation",   "authfailure",	"requireptr",	  "notcompliantrfc",
	"securityerror",   "mesgtoobig",      "exceedlimit",	"systemerror",	  "systemfull",
	"networkerror",	   "contenterror",    "notaccept",	"norelaying",	  "suspend",
	"expired",	   "syntaxerror",     "onhold",		"hasmoved",	  "mailererror",
	"virusdetected",   "failedstarttls",  "feedback",	"vacation",	  "delivered",
};

const char *bounce_reason_name(enum bounce_reason r)
{
	if ((unsigned)r >= BOUNCE_R_COUNT)
		return "undefined";
	return reason_names[r];
}

int bounce_reason_from_name(const char *name)
{
	for (int i = 0; i < BOUNCE_R_COUNT; i++)
		if (strcasecmp(name, reason_names[i]) == 0)
			return i;
	return -1;
}

/* --- rules ---------------------------------------------------------------- */

enum rule_kind { RULE_TEXT, RULE_STATUS, RULE_CODE };

struct rule {
	enum bounce_reason reason;
	enum rule_kind kind;
	int wild;	       /* status: number of '*' components */
	int code;	       /* code rules */
	char st[3][4];	       /* status components, "*" for any */
	char pat[RULE_PAT_MAX]; /* text rules, lower-case */
};

struct bounce_rules {
	struct rule *v;
	size_t n;
};

size_t bounce_rules_count(const struct bounce_rules *r)
{
	return r ? r->n : 0;
}

void bounce_rules_free(struct bounce_rules *r)
{
	if (!r)
		return;
	free(r->v);
	free(r);
}

/* "5.1.1", "4.7.*", "*.2.2" into three components; 0 or -1. */
static int parse_status_pat(const char *s, struct rule *r)
{
	int k = 0;

	r->wild = 0;
	while (k < 3) {
		size_t n = 0;
		if (*s == '*') {
			strcpy(r->st[k], "*");
			r->wild++;
			s++;
		} else {
			while (isdigit((unsigned char)s[n]) && n < 3)
				n++;
			if (n == 0 || isdigit((unsigned char)s[n]))
				return -1;
			memcpy(r->st[k], s, n);
			r->st[k][n] = 0;
			s += n;
		}
		k++;
		if (k < 3 && *s++ != '.')
			return -1;
	}
	if (*s)
		return -1;
	if (strcmp(r->st[0], "*") && strcmp(r->st[0], "2") && strcmp(r->st[0], "4") &&
	    strcmp(r->st[0], "5"))
		return -1;
	return 0;
}

int bounce_rules_parse(const char *text, size_t len, const char *name,
		       struct bounce_rules **out, char *err, size_t errlen)
{
	struct bounce_rules *rs;
	struct rule *v = NULL;
	size_t cap = 0, n = 0, pos = 0;
	unsigned lineno = 0;
	char line[1024];
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *p, *word, *kind, *arg;
		struct rule r;
		int reason;

		lineno++;
		if (ll >= sizeof line) {
			rc = config_error_at(err, errlen, name, lineno, "line too long");
			goto fail;
		}
		memcpy(line, text + pos, ll);
		line[ll] = 0;
		pos += ll + (nl ? 1 : 0);
		if (memchr(line, 0, ll)) {
			rc = config_error_at(err, errlen, name, lineno, "NUL byte");
			goto fail;
		}
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		while (ll > 0 && isspace((unsigned char)line[ll - 1]))
			line[--ll] = 0;
		if (*p == 0 || *p == '#')
			continue;
		memset(&r, 0, sizeof r);
		word = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = 0;
		p += strspn(p, " \t");
		kind = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = 0;
		arg = p + strspn(p, " \t");
		reason = bounce_reason_from_name(word);
		if (reason < 0) {
			rc = config_error_at(err, errlen, name, lineno, "unknown reason \"%s\"", word);
			goto fail;
		}
		r.reason = (enum bounce_reason)reason;
		if (!*kind || !*arg) {
			rc = config_error_at(err, errlen, name, lineno,
				     "expected: REASON text \"...\" | status N.N.N | code NNN");
			goto fail;
		}
		if (strcasecmp(kind, "text") == 0) {
			size_t al = strlen(arg);
			r.kind = RULE_TEXT;
			if (al < 3 || arg[0] != '"' || arg[al - 1] != '"') {
				rc = config_error_at(err, errlen, name, lineno,
					     "text pattern must be a non-empty \"quoted string\"");
				goto fail;
			}
			if (al - 2 >= RULE_PAT_MAX) {
				rc = config_error_at(err, errlen, name, lineno, "text pattern longer than %d",
					     RULE_PAT_MAX - 1);
				goto fail;
			}
			for (size_t i = 1; i < al - 1; i++) {
				if (arg[i] == '"') {
					rc = config_error_at(err, errlen, name, lineno,
						     "stray '\"' in text pattern");
					goto fail;
				}
				r.pat[i - 1] = (char)tolower((unsigned char)arg[i]);
			}
		} else if (strcasecmp(kind, "status") == 0) {
			r.kind = RULE_STATUS;
			if (parse_status_pat(arg, &r) < 0) {
				rc = config_error_at(err, errlen, name, lineno,
					     "bad status \"%s\" (want e.g. 5.1.1, 4.7.*, *.2.2)", arg);
				goto fail;
			}
		} else if (strcasecmp(kind, "code") == 0) {
			r.kind = RULE_CODE;
			if (strlen(arg) != 3 || arg[0] < '2' || arg[0] > '5' ||
			    !isdigit((unsigned char)arg[1]) || !isdigit((unsigned char)arg[2])) {
				rc = config_error_at(err, errlen, name, lineno, "bad reply code \"%s\"", arg);
				goto fail;
			}
			r.code = atoi(arg);
		} else {
			rc = config_error_at(err, errlen, name, lineno,
				     "unknown rule kind \"%s\" (text, status, code)", kind);
			goto fail;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct rule *nv = realloc(v, nc * sizeof *v);
			if (!nv) {
				rc = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = r;
	}
	/* Order: text rules, then exact statuses, then wildcard statuses by
	 * specificity, then codes; file order within each group. */
	{
		struct rule *tmp = malloc((n ? n : 1) * sizeof *tmp);
		size_t k = 0;
		if (!tmp) {
			rc = -ENOMEM;
			goto fail;
		}
		for (int kind = RULE_TEXT; kind <= RULE_CODE; kind++)
			for (int w = 0; w <= 3; w++)
				for (size_t i = 0; i < n; i++)
					if ((int)v[i].kind == kind &&
					    (kind != RULE_STATUS ? w == 0 : v[i].wild == w))
						tmp[k++] = v[i];
		free(v);
		v = tmp;
	}
	rs = calloc(1, sizeof *rs);
	if (!rs) {
		rc = -ENOMEM;
		goto fail;
	}
	rs->v = v;
	rs->n = n;
	*out = rs;
	return 0;
fail:
	free(v);
	return rc;
}

int bounce_rules_load(const char *path, struct bounce_rules **out, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	rc = sl_file_read(path, RULES_FILE_MAX, &text, &len);
	if (rc == SL_ETOOBIG)
		return config_error_at(err, errlen, path, 0, "file larger than %u bytes", RULES_FILE_MAX);
	if (rc < 0) {
		config_error_at(err, errlen, path, 0, "%s", sl_strerror(rc));
		return rc;
	}
	rc = bounce_rules_parse(text, len, path, out, err, errlen);
	free(text);
	return rc;
}

/* --- small string helpers ------------------------------------------------- */

/* Copy s into d (size n), cut to n - 1 bytes, always terminated. */
static void scpy(char *d, size_t n, const char *s)
{
	size_t l = strnlen(s, n - 1);

	memcpy(d, s, l);
	d[l] = 0;
}



static void lower_copy(char *dst, size_t dstlen, const char *src)
{
	size_t i = 0;

	if (!dstlen)
		return;
	for (; src[i] && i + 1 < dstlen; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = 0;
}

/* Case-insensitive search of a lower-case needle in [s, s+n). */
static const char *find_ci(const char *s, size_t n, const char *needle)
{
	size_t nl = strlen(needle);

	if (nl == 0 || nl > n)
		return nl == 0 ? s : NULL;
	for (size_t i = 0; i + nl <= n; i++) {
		if (tolower((unsigned char)s[i]) != needle[0])
			continue;
		size_t k = 1;
		while (k < nl && tolower((unsigned char)s[i + k]) == needle[k])
			k++;
		if (k == nl)
			return s + i;
	}
	return NULL;
}

/* An RFC 3463 status at s: class 2/4/5, then 1..3 digits twice, not part
 * of a longer dotted number. Writes it to out[16]; returns its length or 0. */
static size_t status_at(const char *s, size_t n, char out[16])
{
	size_t i = 1, a, b;

	out[0] = 0;
	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (a = 0; i < n && isdigit((unsigned char)s[i]) && a < 4; i++, a++)
		;
	if (a == 0 || a > 3 || i >= n || s[i] != '.')
		return 0;
	i++;
	for (b = 0; i < n && isdigit((unsigned char)s[i]) && b < 4; i++, b++)
		;
	if (b == 0 || b > 3)
		return 0;
	if (i < n && (isdigit((unsigned char)s[i]) ||
		      (s[i] == '.' && i + 1 < n && isdigit((unsigned char)s[i + 1]))))
		return 0;
	memcpy(out, s, i);
	out[i] = 0;
	return i;
}

/* The first status in text not glued to a preceding digit, dot or letter. */
static int find_status(const char *s, size_t n, char out[16])
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '.'))
			continue;
		if (status_at(s + i, n - i, out))
			return 1;
	}
	out[0] = 0;
	return 0;
}

static int is_code_at(const char *s, size_t n)
{
	return n >= 3 && (s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) && (n == 3 || s[3] == ' ' || s[3] == '-');
}

/* --- classification core --------------------------------------------------- */

static void find_recipient(const char *text, char *out, size_t outlen);

static int status_match(const struct rule *r, const char *status)
{
	char comp[3][8];
	const char *p = status;

	for (int k = 0; k < 3; k++) {
		size_t n = strcspn(p, ".");
		if (n >= sizeof comp[k])
			return 0;
		memcpy(comp[k], p, n);
		comp[k][n] = 0;
		p += n;
		if (k < 2) {
			if (*p != '.')
				return 0;
			p++;
		}
	}
	for (int k = 0; k < 3; k++)
		if (strcmp(r->st[k], "*") && strcmp(r->st[k], comp[k]))
			return 0;
	return 1;
}

/* Apply the rules: text rules over each of texts[] (lower-cased), then
 * status, then code. */
static enum bounce_reason apply_rules(const struct bounce_rules *rules, const char *const *texts,
				      int ntexts, const char *status, int code)
{
	size_t i;

	if (!rules)
		return BOUNCE_R_UNDEFINED;
	for (int t = 0; t < ntexts; t++) {
		if (!texts[t] || !*texts[t])
			continue;
		for (i = 0; i < rules->n && rules->v[i].kind == RULE_TEXT; i++)
			if (strstr(texts[t], rules->v[i].pat))
				return rules->v[i].reason;
	}
	for (i = 0; i < rules->n; i++) {
		const struct rule *r = &rules->v[i];
		if (r->kind == RULE_STATUS && status && *status && status_match(r, status))
			return r->reason;
		if (r->kind == RULE_CODE && code && r->code == code)
			return r->reason;
	}
	return BOUNCE_R_UNDEFINED;
}

static bool reason_is_hard(enum bounce_reason r, const char *status, int code)
{
	switch (r) {
	case BOUNCE_R_FEEDBACK:
	case BOUNCE_R_VACATION:
	case BOUNCE_R_DELIVERED:
		return false;
	default:
		break;
	}
	if (status && (status[0] == '4' || status[0] == '2'))
		return false;
	if (status && status[0] == '5')
		return true;
	if (code >= 500)
		return true;
	if (code >= 400)
		return false;
	switch (r) {
	case BOUNCE_R_USERUNKNOWN:
	case BOUNCE_R_HOSTUNKNOWN:
	case BOUNCE_R_HASMOVED:
	case BOUNCE_R_NOTACCEPT:
	case BOUNCE_R_SUSPEND:
	case BOUNCE_R_NORELAYING:
	case BOUNCE_R_MESGTOOBIG:
		return true;
	default:
		return false;
	}
}

/* Normalise a reply or diagnostic: strip per-line "NNN-" / "NNN " and a
 * repeated status, join lines with spaces. Fills code, status, text. */
static void normalise_reply(const char *s, size_t n, int *code, char status[16], char *text,
			    size_t textlen)
{
	size_t pos = 0, o = 0;
	int first = 1;

	*code = 0;
	status[0] = 0;
	if (textlen)
		text[0] = 0;
	while (pos < n && textlen) {
		const char *nl = memchr(s + pos, '\n', n - pos);
		size_t ll = nl ? (size_t)(nl - (s + pos)) : n - pos;
		const char *l = s + pos;
		char st[16];

		pos += ll + (nl ? 1 : 0);
		while (ll && (*l == ' ' || *l == '\t')) {
			l++;
			ll--;
		}
		if (ll >= 3 && l[0] >= '2' && l[0] <= '5' && isdigit((unsigned char)l[1]) &&
		    isdigit((unsigned char)l[2]) && (ll == 3 || l[3] == ' ' || l[3] == '-')) {
			if (first)
				*code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
			l += ll > 3 ? 4 : 3;
			ll -= ll > 3 ? 4 : 3;
			size_t sl = status_at(l, ll, st);
			if (sl && (sl == ll || l[sl] == ' ')) {
				if (!status[0])
					memcpy(status, st, 16);
				if (!first) {
					l += sl;
					ll -= sl;
				}
			}
		}
		first = 0;
		if (o && o + 1 < textlen)
			text[o++] = ' ';
		if (o < textlen)
			mime_clean_copy(text + o, textlen - o, l, ll);
		o += strlen(text + o);
	}
	if (textlen) {
		/* trim a trailing space left by empty lines */
		while (o > 0 && text[o - 1] == ' ')
			text[--o] = 0;
	}
}

/* "550-5.1.1 a 550-5.1.1 b 550 5.1.1 c" (a folded multi-line reply) ->
 * "550 5.1.1 a b c". */
static void dedupe_reply(char *d)
{
	char st[16], pre[32];
	size_t sl, pl, n = strlen(d);

	if (!is_code_at(d, n) || n < 5 || !(sl = status_at(d + 4, n - 4, st)))
		return;
	d[3] = ' ';
	for (int sep = 0; sep < 2; sep++) {
		pl = (size_t)snprintf(pre, sizeof pre, " %.3s%c%s ", d, sep ? ' ' : '-', st);
		char *p;
		while ((p = strstr(d + 4 + sl, pre)) != NULL)
			memmove(p + 1, p + pl, strlen(p + pl) + 1);
	}
	/* a blank left by an empty continuation: collapse double spaces */
	mime_clean_copy(d, strlen(d) + 1, d, strlen(d));
}

static void finish(const struct bounce_rules *rules, struct bounce_result *out, const char *extra)
{
	dedupe_reply(out->diagnostic);
	char lo[sizeof out->diagnostic], lx[TEXT_MAX];
	const char *texts[2] = { lo, lx };

	if (!out->status[0])
		find_status(out->diagnostic, strlen(out->diagnostic), out->status);
	if (!out->code) {
		const char *d = out->diagnostic;
		size_t dl = strlen(d);
		for (size_t i = 0; i < dl; i++) {
			if ((i == 0 || !isalnum((unsigned char)d[i - 1])) &&
			    is_code_at(d + i, dl - i)) {
				out->code = (d[i] - '0') * 100 + (d[i + 1] - '0') * 10 + (d[i + 2] - '0');
				break;
			}
		}
	}
	lower_copy(lo, sizeof lo, out->diagnostic);
	lower_copy(lx, sizeof lx, extra ? extra : "");
	out->reason = apply_rules(rules, texts, 2, out->status, out->code);
	out->hard = reason_is_hard(out->reason, out->status, out->code);
}

int bounce_classify_reply(const struct bounce_rules *rules, const char *reply,
			  struct bounce_result *out)
{
	size_t n = strnlen(reply, 65536);

	memset(out, 0, sizeof *out);
	normalise_reply(reply, n, &out->code, out->status, out->diagnostic,
			sizeof out->diagnostic);
	{
		/* Put the code and status back in front for the reader. */
		char tmp[sizeof out->diagnostic + 16];
		if (out->code) {
			snprintf(tmp, sizeof tmp, "%d %s", out->code, out->diagnostic);
			scpy(out->diagnostic, sizeof out->diagnostic, tmp);
		}
	}
	{
		/* the text rules see the reply without code and status */
		char lo[sizeof out->diagnostic];
		const char *texts[1] = { lo };
		lower_copy(lo, sizeof lo, out->diagnostic);
		out->reason = apply_rules(rules, texts, 1, out->status, out->code);
		out->hard = reason_is_hard(out->reason, out->status, out->code);
	}
	if (strchr(out->diagnostic, '<'))
		find_recipient(out->diagnostic, out->recipient, sizeof out->recipient);
	if (!strchr(out->recipient, '@'))
		out->recipient[0] = 0;
	return out->code ? 0 : SL_EPROTO;
}


/* --- messages ----------------------------------------------------------------- */

struct dsn_rcpt {
	char recipient[256];
	char action[32];
	char status[16];
	char diagnostic[512];
};

struct msg_ctx {
	int have_ds;	  /* a message/delivery-status part parsed */
	unsigned n_rcpts;
	int chosen_rank;  /* 3 failed, 2 delayed, 1 other */
	int all_delivered; /* every action delivered/relayed/expanded */
	struct dsn_rcpt best;
	char text[TEXT_MAX]; /* first human-readable part, decoded */
	int have_text;
	char ds[DS_MAX];
};

static void strip_type(char *v)
{
	/* "rfc822; a@b" -> "a@b"; "smtp; 550 ..." -> "550 ..." */
	char *semi = strchr(v, ';');
	if (semi) {
		size_t tl = (size_t)(semi - v);
		int ok = tl > 0 && tl < 32;
		for (size_t i = 0; ok && i < tl; i++)
			if (!isalnum((unsigned char)v[i]) && v[i] != '-')
				ok = 0;
		if (ok) {
			char *s = semi + 1;
			while (*s == ' ')
				s++;
			memmove(v, s, strlen(s) + 1);
		}
	}
}

static void strip_angle(char *v)
{
	size_t n = strlen(v);
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		memmove(v, v + 1, n - 2);
		v[n - 2] = 0;
	}
}

static void parse_delivery_status(struct msg_ctx *c, const char *ds, size_t n)
{
	size_t pos = 0;
	int block = 0;

	c->have_ds = 1;
	while (pos < n) {
		struct mime_part b;
		struct dsn_rcpt r;
		int rank;

		/* skip blank lines between blocks */
		while (pos < n && (ds[pos] == '\n' || ds[pos] == '\r'))
			pos++;
		if (pos >= n)
			break;
		mime_split(ds + pos, n - pos, &b);
		pos = (size_t)(b.body - ds);
		if (block++ == 0 || b.hdr_len == 0)
			continue; /* per-message fields */
		memset(&r, 0, sizeof r);
		if (!mime_header(b.hdr, b.hdr_len, "Final-Recipient", r.recipient,
				 sizeof r.recipient))
			mime_header(b.hdr, b.hdr_len, "Original-Recipient", r.recipient,
				    sizeof r.recipient);
		mime_header(b.hdr, b.hdr_len, "Action", r.action, sizeof r.action);
		mime_header(b.hdr, b.hdr_len, "Status", r.status, sizeof r.status);
		mime_header(b.hdr, b.hdr_len, "Diagnostic-Code", r.diagnostic, sizeof r.diagnostic);
		if (!r.recipient[0] && !r.action[0] && !r.status[0])
			continue;
		strip_type(r.recipient);
		strip_angle(r.recipient);
		strip_type(r.diagnostic);
		{
			char st[16];
			r.status[strcspn(r.status, " (")] = 0;
			if (!status_at(r.status, strlen(r.status), st))
				r.status[0] = 0;
		}
		for (char *p = r.action; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		c->n_rcpts++;
		if (strcmp(r.action, "failed") == 0)
			rank = 3;
		else if (strcmp(r.action, "delayed") == 0)
			rank = 2;
		else
			rank = 1;
		if (strcmp(r.action, "delivered") && strcmp(r.action, "relayed") &&
		    strcmp(r.action, "expanded"))
			c->all_delivered = 0;
		if (rank > c->chosen_rank) {
			c->chosen_rank = rank;
			c->best = r;
		}
	}
}

static int walk_cb(void *ctx, const struct mime_part *p, const char *ctype, int depth)
{
	struct msg_ctx *c = ctx;

	(void)depth;
	if (strcmp(ctype, "message/delivery-status") == 0 ||
	    strcmp(ctype, "message/global-delivery-status") == 0) {
		size_t n = mime_decode(p, c->ds, sizeof c->ds);
		parse_delivery_status(c, c->ds, n);
	} else if (!c->have_text && strncmp(ctype, "text/", 5) == 0 &&
		   strcmp(ctype, "text/rfc822-headers") != 0) {
		mime_decode(p, c->text, sizeof c->text);
		c->have_text = 1;
		if (strcmp(ctype, "text/html") == 0)
			c->have_text = 0; /* keep looking for a plain part; html as last resort */
	}
	return 0;
}

/* Where the returned original message starts in a plain-text bounce. */
static const char *const original_markers[] = {
	"------ this is a copy of the message",
	"--- below this line is a copy of the message",
	"----- original message -----",
	"------ original message ------",
	"----- transcript of session follows -----\n", /* not cut: sendmail keeps reasons there */
	"original message headers:",
	"----- message header follows -----",
	"--- the header of the original message is following. ---",
};

static void cut_original(char *text)
{
	size_t n = strlen(text);
	for (size_t i = 0; i < sizeof original_markers / sizeof *original_markers; i++) {
		if (i == 4)
			continue;
		const char *m = find_ci(text, n, original_markers[i]);
		if (m) {
			n = (size_t)(m - text);
			text[n] = 0;
		}
	}
}

/* Extract a diagnostic line from plain bounce text: prefer "Remote host
 * said:" (qmail, Yahoo), else the first line holding a 4xx/5xx reply. */
static void find_diagnostic(const char *text, char *out, size_t outlen)
{
	size_t n = strlen(text);
	const char *m = find_ci(text, n, "remote host said:");
	const char *start = NULL, *end;

	out[0] = 0;
	if (m) {
		start = m + 17;
	} else {
		for (size_t i = 0; i < n; i++) {
			if (i > 0 && !strchr(" \t\n('\"<:[#", text[i - 1]))
				continue;
			if (is_code_at(text + i, n - i)) {
				/* a code followed by text, not e.g. a date or a count */
				char st[16];
				size_t rest = n - i;
				if (rest > 4 && (status_at(text + i + 4, rest - 4, st) ||
						 isalpha((unsigned char)text[i + 4]) ||
						 text[i + 4] == '<' || text[i + 4] == '#')) {
					start = text + i;
					break;
				}
			}
		}
	}
	if (!start)
		return;
	/* the line plus continuation lines (indented, or more reply lines) */
	end = start;
	for (int lines = 0; lines < 6 && *end; lines++) {
		const char *nl = strchr(end, '\n');
		if (!nl) {
			end += strlen(end);
			break;
		}
		end = nl + 1;
		if (!(*end == ' ' || *end == '\t' || is_code_at(end, strlen(end))))
			break;
		{
			const char *q = end;
			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '\n' || *q == '\r' || *q == 0)
				break;
		}
	}
	{
		int code;
		char st[16];
		normalise_reply(start, (size_t)(end - start), &code, st, out, outlen);
		if (code) {
			char tmp[1024];
			snprintf(tmp, sizeof tmp, "%d %.1000s", code, out);
			mime_clean_copy(out, outlen, tmp, strlen(tmp));
		}
	}
	/* drop a trailing unbalanced ')' of sendmail's "(reason: ...)" and quotes */
	size_t ol = strlen(out);
	int depth = 0;
	for (size_t i = 0; i < ol; i++)
		depth += out[i] == '(' ? 1 : out[i] == ')' ? -1 : 0;
	while (ol && ((out[ol - 1] == ')' && depth < 0) || out[ol - 1] == '\'' ||
		      out[ol - 1] == '"')) {
		depth += out[ol - 1] == ')';
		out[--ol] = 0;
	}
}

/* First address-looking token: "<a@b>" or a line that is just "a@b". */
static void find_recipient(const char *text, char *out, size_t outlen)
{
	size_t n = strlen(text);

	out[0] = 0;
	for (size_t i = 0; i < n; i++) {
		if (text[i] != '<')
			continue;
		size_t k = i + 1, at = 0;
		while (k < n && k - i < 255 && text[k] != '>' && !isspace((unsigned char)text[k])) {
			if (text[k] == '@')
				at = k;
			k++;
		}
		if (k < n && text[k] == '>' && at > i + 1 && at + 1 < k) {
			mime_clean_copy(out, outlen, text + i + 1, k - i - 1);
			return;
		}
	}
	/* Exim, Exchange: a bare address on a line of its own */
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(text + i, '\n', n - i);
		size_t ll = nl ? (size_t)(nl - (text + i)) : n - i;
		const char *l = text + i;
		size_t a = 0, b = ll;
		while (a < ll && (l[a] == ' ' || l[a] == '\t'))
			a++;
		while (b > a && isspace((unsigned char)l[b - 1]))
			b--;
		if (b > a && b - a < 255 && memchr(l + a, '@', b - a) &&
		    !memchr(l + a, ' ', b - a)) {
			mime_clean_copy(out, outlen, l + a, b - a);
			size_t ol = strlen(out);
			if (ol && out[ol - 1] == ':')
				out[ol - 1] = 0;
			return;
		}
		i += ll + (nl ? 1 : 0);
	}
}

static const char *const bounce_subjects[] = {
	"undeliver",	     "returned mail",	 "delivery status notification",
	"mail delivery failed", "failure notice", "delivery failure",
	"non-delivery",	     "nondeliverable",	 "mail system error",
	"delivery has failed", "could not be delivered", "undelivered mail",
};

static const char *const bounce_body_markers[] = {
	"this message was created automatically by mail delivery software",
	"this is the qmail-send program",
	"the following addresses had permanent fatal errors",
	"delivery has failed to these recipients",
	"your message couldn't be delivered",
	"remote server returned",
	"sorry, we were unable to deliver your message",
	"i'm sorry to have to inform you that your message could not",
	"this is the mail system at host",
	"delivery to the following recipient",
	"message could not be delivered",
	"permanent error",
	"smtp error from remote mail server",
};

static int any_ci(const char *s, const char *const *list, size_t nlist)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < nlist; i++)
		if (find_ci(s, n, list[i]))
			return 1;
	return 0;
}

static int is_vacation(const struct mime_part *top, const char *subject)
{
	char v[256];

	if (mime_header(top->hdr, top->hdr_len, "Auto-Submitted", v, sizeof v) &&
	    strncasecmp(v, "auto-replied", 12) == 0)
		return 1;
	if (mime_header(top->hdr, top->hdr_len, "X-Autoreply", v, sizeof v) ||
	    mime_header(top->hdr, top->hdr_len, "X-Autorespond", v, sizeof v) ||
	    mime_header(top->hdr, top->hdr_len, "X-Autoresponder", v, sizeof v))
		return 1;
	if (mime_header(top->hdr, top->hdr_len, "Precedence", v, sizeof v) &&
	    strcasecmp(v, "auto_reply") == 0)
		return 1;
	if (mime_header(top->hdr, top->hdr_len, "X-MS-Exchange-Inbox-Rules-Loop", v, sizeof v))
		return 1;
	static const char *const subj[] = { "out of office", "automatic reply", "auto:",
					    "autoreply", "auto-reply", "auto reply",
					    "vacation", "abwesenheit", "absence" };
	return any_ci(subject, subj, sizeof subj / sizeof *subj);
}

int bounce_classify_message(const struct bounce_rules *rules, const char *msg, size_t len,
			    struct bounce_result *out)
{
	struct mime_part top;
	struct msg_ctx *c;
	struct arf_report *arf;
	char ctype[128], subject[512], from[512], v[512];
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (len > BOUNCE_MSG_MAX)
		len = BOUNCE_MSG_MAX;
	c = calloc(1, sizeof *c + sizeof *arf);
	if (!c)
		return -ENOMEM;
	arf = (struct arf_report *)(c + 1);

	mime_split(msg, len, &top);
	mime_ctype(&top, ctype, sizeof ctype);
	mime_header(top.hdr, top.hdr_len, "Subject", subject, sizeof subject);
	mime_header(top.hdr, top.hdr_len, "From", from, sizeof from);

	/* 1. Complaints. */
	if (arf_parse(msg, len, arf) == 0) {
		out->reason = BOUNCE_R_FEEDBACK;
		scpy(out->recipient, sizeof out->recipient, arf->original_rcpt_to);
		snprintf(out->diagnostic, sizeof out->diagnostic, "feedback-type: %s",
			 arf->feedback_type);
		goto done;
	}

	/* 2. Standard DSNs, and anything carrying a delivery-status part. */
	c->all_delivered = 1;
	mime_walk(msg, len, walk_cb, c);
	if (!c->have_text && top.body_len && strncmp(ctype, "multipart/", 10) != 0)
		mime_decode(&top, c->text, sizeof c->text);
	cut_original(c->text);
	if (c->have_ds && c->n_rcpts) {
		out->n_recipients = c->n_rcpts;
		scpy(out->recipient, sizeof out->recipient, c->best.recipient);
		if (c->all_delivered) {
			out->reason = BOUNCE_R_DELIVERED;
			scpy(out->status, sizeof out->status, c->best.status);
			scpy(out->diagnostic, sizeof out->diagnostic, c->best.diagnostic);
			goto done;
		}
		scpy(out->diagnostic, sizeof out->diagnostic, c->best.diagnostic);
		if (!out->diagnostic[0])
			find_diagnostic(c->text, out->diagnostic, sizeof out->diagnostic);
		scpy(out->status, sizeof out->status, c->best.status);
		/* A generic x.0.0 says less than a status in the diagnostic. */
		if (strcmp(out->status + 1, ".0.0") == 0 || !out->status[0]) {
			char st[16];
			if (find_status(out->diagnostic, strlen(out->diagnostic), st))
				memcpy(out->status, st, sizeof st);
		}
		finish(rules, out, c->text);
		if (c->chosen_rank == 2 && out->status[0] != '5')
			out->hard = false;
		goto done;
	}

	/* 3. Non-standard bounces. */
	if (mime_header(top.hdr, top.hdr_len, "X-Failed-Recipients", v, sizeof v) ||
	    find_ci(from, strlen(from), "mailer-daemon") || find_ci(from, strlen(from), "postmaster") ||
	    any_ci(subject, bounce_subjects, sizeof bounce_subjects / sizeof *bounce_subjects) ||
	    any_ci(c->text, bounce_body_markers,
		   sizeof bounce_body_markers / sizeof *bounce_body_markers)) {
		if (v[0]) {
			v[strcspn(v, ", ")] = 0;
			scpy(out->recipient, sizeof out->recipient, v);
		} else {
			find_recipient(c->text, out->recipient, sizeof out->recipient);
		}
		strip_angle(out->recipient);
		find_diagnostic(c->text, out->diagnostic, sizeof out->diagnostic);
		if (!find_status(out->diagnostic, strlen(out->diagnostic), out->status)) {
			/* qmail appends "(#5.2.2)" to its own messages */
			const char *q = strstr(c->text, "(#");
			if (q)
				status_at(q + 2, strlen(q + 2), out->status);
		}
		finish(rules, out, c->text);
		if (out->reason == BOUNCE_R_UNDEFINED && !out->diagnostic[0] && !out->code)
			out->reason = BOUNCE_R_ONHOLD;
		/* a bounce with nothing temporary about it is permanent */
		if (!out->status[0] && !out->code)
			out->hard = out->reason != BOUNCE_R_ONHOLD &&
				    reason_is_hard(out->reason, NULL, 550);
		goto done;
	}

	/* 4. Auto-replies. */
	if (is_vacation(&top, subject)) {
		out->reason = BOUNCE_R_VACATION;
		goto done;
	}
	rc = SL_EPROTO;
done:
	if (out->reason == BOUNCE_R_FEEDBACK || out->reason == BOUNCE_R_VACATION ||
	    out->reason == BOUNCE_R_DELIVERED)
		out->hard = false;
	free(c);
	return rc;
}
