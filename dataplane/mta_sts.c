/* mta_sts.c — MTA-STS TXT records, policies and MX matching; see mta_sts.h. */
#include "mta_sts.h"

#include <string.h>
#include <stddef.h>

#include "err.h"

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* One TXT record: "v=STSv1;" then "; "-separated key=value fields, one of
 * them id. 1 an STS record with its id, 0 not an STS record, SL_EPROTO. */
static int txt_one(const char *s, char id[MTA_STS_ID_MAX + 1])
{
	size_t len = strlen(s), i = 0;
	bool have_id = false;

	if (len < 7 || strncmp(s, "v=STSv1", 7) != 0)
		return 0;
	i = 7;
	while (i < len && is_wsp(s[i]))
		i++;
	if (i < len && s[i] != ';')
		return 0; /* "v=STSv10" and the like: not ours */
	while (i < len) {
		size_t k, kl, v, vl;

		if (s[i] != ';')
			return SL_EPROTO;
		i++;
		while (i < len && is_wsp(s[i]))
			i++;
		if (i == len)
			break; /* a trailing ';' */
		k = i;
		while (i < len && (is_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			i++;
		kl = i - k;
		if (!kl || i >= len || s[i] != '=')
			return SL_EPROTO;
		v = ++i;
		while (i < len && s[i] > 0x20 && s[i] < 0x7f && s[i] != ';' && s[i] != '=')
			i++;
		vl = i - v;
		while (i < len && is_wsp(s[i]))
			i++;
		if (kl == 2 && !memcmp(s + k, "id", 2)) {
			if (have_id || vl == 0 || vl > MTA_STS_ID_MAX)
				return SL_EPROTO;
			for (size_t j = 0; j < vl; j++)
				if (!is_alnum(s[v + j]))
					return SL_EPROTO;
			memcpy(id, s + v, vl);
			id[vl] = 0;
			have_id = true;
		} else if (vl == 0) {
			return SL_EPROTO;
		}
	}
	return have_id ? 1 : SL_EPROTO;
}

int mta_sts_txt_id(const char *const *txts, size_t n, char id[MTA_STS_ID_MAX + 1])
{
	char tmp[MTA_STS_ID_MAX + 1];
	int found = 0, bad = 0;

	for (size_t i = 0; i < n; i++) {
		int rc = txt_one(txts[i], tmp);

		if (rc == 0)
			continue;
		if (rc < 0)
			bad++;
		else if (!found++)
			memcpy(id, tmp, sizeof tmp);
	}
	if (found + bad != 1)
		return SL_ENOTFOUND;
	return bad ? SL_EPROTO : 0;
}

/* A host name (labels of letters, digits and inner hyphens, 1..63 each,
 * at least two labels), or that with "*." in front. Lower-cases
 * into out and drops a trailing dot. */
static int mx_pattern(const char *v, size_t len, char out[256])
{
	size_t o = 0, label = 0, labels = 1;

	if (len >= 2 && v[0] == '*' && v[1] == '.') {
		out[o++] = '*';
		out[o++] = '.';
		v += 2;
		len -= 2;
	}
	if (len && v[len - 1] == '.')
		len--;
	if (!len || len + o > 253)
		return SL_EPROTO;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];

		if (c == '.') {
			if (!label || v[i - 1] == '-')
				return SL_EPROTO;
			label = 0;
			labels++;
		} else if (is_alnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return SL_EPROTO;
		} else {
			return SL_EPROTO;
		}
		out[o++] = lower(c);
	}
	if (!label || v[len - 1] == '-' || labels < 2)
		return SL_EPROTO;
	out[o] = 0;
	return 0;
}

int mta_sts_parse(const char *text, size_t len, struct mta_sts_policy *out)
{
	bool have_version = false, have_mode = false, have_age = false;
	size_t i = 0;

	memset(out, 0, offsetof(struct mta_sts_policy, mx));
	if (len > MTA_STS_POLICY_MAX)
		return SL_EPROTO;
	while (i < len) {
		size_t ls = i, le, k, kl, v, vl;

		while (i < len && text[i] != '\n')
			i++;
		le = i;
		if (i < len)
			i++; /* the LF */
		if (le > ls && text[le - 1] == '\r')
			le--;
		if (le == ls)
			continue; /* an empty line (e.g. at the end) */
		k = ls;
		while (k < le && (is_alnum(text[k]) || text[k] == '_' || text[k] == '.' ||
				  text[k] == '-'))
			k++;
		kl = k - ls;
		if (!kl || k >= le || text[k] != ':')
			return SL_EPROTO;
		v = k + 1;
		while (v < le && is_wsp(text[v]))
			v++;
		vl = le - v;
		while (vl && is_wsp(text[v + vl - 1]))
			vl--;
		for (size_t j = 0; j < vl; j++)
			if ((unsigned char)text[v + j] < 0x20 || text[v + j] == 0x7f)
				return SL_EPROTO;
		if (kl == 7 && !memcmp(text + ls, "version", 7)) {
			if (have_version || vl != 5 || memcmp(text + v, "STSv1", 5))
				return SL_EPROTO;
			have_version = true;
		} else if (kl == 4 && !memcmp(text + ls, "mode", 4)) {
			if (have_mode)
				return SL_EPROTO;
			if (vl == 7 && !memcmp(text + v, "enforce", 7))
				out->mode = MTA_STS_ENFORCE;
			else if (vl == 7 && !memcmp(text + v, "testing", 7))
				out->mode = MTA_STS_TESTING;
			else if (vl == 4 && !memcmp(text + v, "none", 4))
				out->mode = MTA_STS_NONE;
			else
				return SL_EPROTO;
			have_mode = true;
		} else if (kl == 7 && !memcmp(text + ls, "max_age", 7)) {
			uint64_t a = 0;

			if (have_age || vl == 0 || vl > 10)
				return SL_EPROTO;
			for (size_t j = 0; j < vl; j++) {
				if (text[v + j] < '0' || text[v + j] > '9')
					return SL_EPROTO;
				a = a * 10 + (uint64_t)(text[v + j] - '0');
			}
			out->max_age = a > MTA_STS_MAX_AGE_MAX ? MTA_STS_MAX_AGE_MAX : (uint32_t)a;
			have_age = true;
		} else if (kl == 2 && !memcmp(text + ls, "mx", 2)) {
			if (out->n_mx >= MTA_STS_MAX_MX ||
			    mx_pattern(text + v, vl, out->mx[out->n_mx]) < 0)
				return SL_EPROTO;
			out->n_mx++;
		}
		/* other keys: extensions, ignored */
	}
	if (!have_version || !have_mode || !have_age)
		return SL_EPROTO;
	if (out->mode != MTA_STS_NONE && out->n_mx == 0)
		return SL_EPROTO;
	return 0;
}

bool mta_sts_mx_match(const struct mta_sts_policy *p, const char *host)
{
	char h[256];
	size_t len = strlen(host);

	if (len && host[len - 1] == '.')
		len--;
	if (!len || len >= sizeof h)
		return false;
	for (size_t i = 0; i < len; i++)
		h[i] = lower(host[i]);
	h[len] = 0;
	for (size_t i = 0; i < p->n_mx; i++) {
		const char *pat = p->mx[i];

		if (pat[0] == '*') {
			const char *dot = strchr(h, '.');

			/* one label, then exactly the rest of the pattern */
			if (dot && dot > h && !strcmp(dot + 1, pat + 2))
				return true;
		} else if (!strcmp(h, pat)) {
			return true;
		}
	}
	return false;
}

const char *mta_sts_mode_name(enum mta_sts_mode m)
{
	switch (m) {
	case MTA_STS_ENFORCE:
		return "enforce";
	case MTA_STS_TESTING:
		return "testing";
	default:
		return "none";
	}
}
