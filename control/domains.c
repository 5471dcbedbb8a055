/*
 * domains.c — sending domains: registration, DKIM key, records to publish,
 * and the DNS check (see domains.h).
 */
#include "domains.h"

#include "dkim.h"
#include "dns_sync.h"
#include "err.h"
#include "file.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unbound.h>
#include <unistd.h>

#define T_CNAME 5
#define T_MX 15

static const char *const rec_names[DOMAIN_RECS] = { "spf", "dkim", "dmarc", "return_path" };
static const char *const status_names[] = { "unchecked", "ok", "missing", "mismatch" };
static const char *const stream_names[STORE_STREAMS] = { "transactional", "marketing" };

const char *domain_rec_name(enum domain_rec r)
{
	return (unsigned)r < DOMAIN_RECS ? rec_names[r] : "?";
}

const char *domain_status_name(enum domain_status s)
{
	return (unsigned)s <= DOMAIN_MISMATCH ? status_names[s] : "?";
}

/* Copy src into dst[cap], truncating (format-truncation-proof). */
static void scopy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static uint64_t now_wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Lower-case copy of a domain name, checked: [a-z0-9.-], labels 1..63. */
static int domain_norm(const char *s, char out[STORE_DOMAIN_MAX + 1])
{
	size_t n = s ? strlen(s) : 0, label = 0;

	if (n == 0 || n > STORE_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.' || !strchr(s, '.'))
		return -EINVAL;
	for (size_t i = 0; i <= n; i++) {
		char c = (char)tolower((unsigned char)s[i]);

		if (c == '.' || c == 0) {
			if (label == 0 || label > 63)
				return -EINVAL;
			label = 0;
		} else if (isalnum((unsigned char)c) || c == '-') {
			label++;
		} else {
			return -EINVAL;
		}
		out[i] = c;
	}
	return 0;
}

static bool selector_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > STORE_SELECTOR_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/* 'd'/'k' tenant NUL domain; returns the key length. */
static size_t key_of(char kind, const char *tenant, const char *domain, char *k)
{
	size_t t = strlen(tenant), d = strlen(domain);

	k[0] = kind;
	memcpy(k + 1, tenant, t + 1);
	memcpy(k + 2 + t, domain, d);
	return 2 + t + d;
}

static int audit_of(struct store_audit *e, const char *actor, const char *action,
		    const struct domain *d, const char *reason)
{
	memset(e, 0, sizeof *e);
	snprintf(e->actor, sizeof e->actor, "%s", actor ? actor : "system");
	snprintf(e->action, sizeof e->action, "%s", action);
	scopy(e->target, sizeof e->target, "domain:");
	scopy(e->target + 7, sizeof e->target - 7, d->tenant);
	scopy(e->target + strlen(e->target), sizeof e->target - strlen(e->target), "/");
	scopy(e->target + strlen(e->target), sizeof e->target - strlen(e->target), d->domain);
	snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
	return 0;
}

/* --- record codec: JSON text ---------------------------------------------- */

static int domain_encode(const struct domain *d, struct sl_buf *b)
{
	json_t *o = json_pack("{s:i,s:s,s:s,s:i,s:s,s:s,s:I,s:I,s:I}", "v", 1, "tenant", d->tenant,
			      "domain", d->domain, "stream", d->stream, "selector", d->selector,
			      "dkim_txt", d->dkim_txt, "created", (json_int_t)d->created_ms,
			      "checked", (json_int_t)d->checked_ms, "verified",
			      (json_int_t)d->verified_ms);
	json_t *st = json_array(), *fd = json_array();
	char *text;
	int rc;

	if (!o || !st || !fd)
		goto nomem;
	for (int i = 0; i < DOMAIN_RECS; i++) {
		json_array_append_new(st, json_integer(d->status[i]));
		json_array_append_new(fd, json_string(d->found[i]));
	}
	json_object_set_new(o, "status", st);
	json_object_set_new(o, "found", fd);
	if (!(text = json_dumps(o, JSON_COMPACT)))
		goto nomem_o;
	json_decref(o);
	sl_buf_reset(b);
	rc = sl_buf_append(b, text, strlen(text));
	free(text);
	return rc;
nomem:
	json_decref(st);
	json_decref(fd);
nomem_o:
	json_decref(o);
	return -ENOMEM;
}

static void copy_json_str(json_t *o, const char *k, char *dst, size_t cap)
{
	const char *s = json_string_value(json_object_get(o, k));

	snprintf(dst, cap, "%s", s ? s : "");
}

static int domain_decode(const void *p, size_t n, struct domain *d)
{
	json_t *o = json_loadb(p, n, 0, NULL), *st, *fd;

	if (!o)
		return -EBADMSG;
	if (json_integer_value(json_object_get(o, "v")) != 1) {
		json_decref(o);
		return SL_EVERSION;
	}
	memset(d, 0, sizeof *d);
	copy_json_str(o, "tenant", d->tenant, sizeof d->tenant);
	copy_json_str(o, "domain", d->domain, sizeof d->domain);
	copy_json_str(o, "selector", d->selector, sizeof d->selector);
	copy_json_str(o, "dkim_txt", d->dkim_txt, sizeof d->dkim_txt);
	d->stream = (uint8_t)json_integer_value(json_object_get(o, "stream")) % STORE_STREAMS;
	d->created_ms = (uint64_t)json_integer_value(json_object_get(o, "created"));
	d->checked_ms = (uint64_t)json_integer_value(json_object_get(o, "checked"));
	d->verified_ms = (uint64_t)json_integer_value(json_object_get(o, "verified"));
	st = json_object_get(o, "status");
	fd = json_object_get(o, "found");
	for (int i = 0; i < DOMAIN_RECS; i++) {
		json_int_t s = json_integer_value(json_array_get(st, (size_t)i));
		const char *f = json_string_value(json_array_get(fd, (size_t)i));

		d->status[i] = s >= 0 && s <= DOMAIN_MISMATCH ? (enum domain_status)s : DOMAIN_UNCHECKED;
		snprintf(d->found[i], sizeof d->found[i], "%s", f ? f : "");
	}
	json_decref(o);
	return 0;
}

static int domain_store(struct store *st, const struct domain *d, struct store_audit *audit)
{
	char k[2 + STORE_NAME_MAX + STORE_DOMAIN_MAX + 2];
	struct sl_buf b = { 0 };
	int rc;

	if ((rc = domain_encode(d, &b)) >= 0)
		rc = store_sendauth_put(st, k, key_of('d', d->tenant, d->domain, k), sl_buf_head(&b),
					sl_buf_avail(&b), audit);
	sl_buf_free(&b);
	return rc;
}

/* --- registration ---------------------------------------------------------- */

/* A new RSA-2048 private key as PEM text in pem (via a private temp dir). */
static int keygen_pem(struct sl_buf *pem)
{
	char dir[] = "/tmp/sluice-dkim-XXXXXX", path[64];
	char *text = NULL;
	size_t len;
	int rc;

	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, sizeof path, "%s/key.pem", dir);
	rc = dkim_keygen(DKIM_ALGO_RSA_SHA256, path);
	if (rc >= 0)
		rc = sl_file_read(path, 1 << 16, &text, &len);
	unlink(path);
	rmdir(dir);
	if (rc < 0)
		return rc;
	sl_buf_reset(pem);
	rc = sl_buf_append(pem, text, len);
	if (rc >= 0)
		rc = sl_buf_append(pem, "", 1);
	free(text);
	return rc;
}

struct find_owner {
	const char *domain;
	bool found;
};

static int find_owner_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct find_owner *f = arg;
	const char *k = key, *nul = memchr(k + 1, 0, klen - 1);
	size_t dl = strlen(f->domain);

	(void)val;
	(void)vlen;
	if (nul && (size_t)(k + klen - (nul + 1)) == dl && !memcmp(nul + 1, f->domain, dl)) {
		f->found = true;
		return 1;
	}
	return 0;
}

int domains_add(struct store *st, const char *tenant, const char *domain, uint8_t stream,
		const char *selector, const char *actor, struct domain *out)
{
	struct store_tenant t;
	struct domain d = { 0 };
	struct find_owner f = { .domain = d.domain };
	struct sl_buf pem = { 0 }, txt = { 0 };
	struct store_audit e;
	char k[2 + STORE_NAME_MAX + STORE_DOMAIN_MAX + 2];
	int rc;

	if (!st || !tenant || strlen(tenant) > STORE_NAME_MAX || stream >= STORE_STREAMS)
		return -EINVAL;
	if (!selector || !*selector)
		selector = DOMAIN_DEFAULT_SELECTOR;
	if (!selector_ok(selector) || domain_norm(domain, d.domain) < 0)
		return -EINVAL;
	if ((rc = store_tenant_get(st, tenant, &t)) < 0)
		return rc;
	if ((rc = store_sendauth_scan(st, "d", 1, find_owner_fn, &f)) < 0)
		return rc;
	if (f.found)
		return -EEXIST;
	snprintf(d.tenant, sizeof d.tenant, "%s", tenant);
	snprintf(d.selector, sizeof d.selector, "%s", selector);
	d.stream = stream;
	d.created_ms = now_wall_ms();
	if ((rc = keygen_pem(&pem)) < 0 || (rc = dkim_dns_record(sl_buf_head(&pem), &txt)) < 0)
		goto out;
	if (sl_buf_avail(&txt) > DOMAIN_VALUE_MAX) {
		rc = -EINVAL;
		goto out;
	}
	memcpy(d.dkim_txt, sl_buf_head(&txt), sl_buf_avail(&txt));
	/* The key first: a domain record never exists without its key. */
	if ((rc = store_sendauth_put(st, k, key_of('k', d.tenant, d.domain, k), sl_buf_head(&pem),
				     sl_buf_avail(&pem), NULL)) < 0)
		goto out;
	audit_of(&e, actor, "domain.add", &d, stream_names[stream]);
	if ((rc = domain_store(st, &d, &e)) < 0)
		goto out;
	if (out)
		*out = d;
out:
	sl_buf_free(&pem);
	sl_buf_free(&txt);
	return rc;
}

struct list_ctx {
	const char *domain; /* get by domain only */
	struct domain *out;
	size_t limit, n;
	int err;
};

static int list_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct list_ctx *c = arg;
	struct domain d;

	(void)key;
	(void)klen;
	if ((c->err = domain_decode(val, vlen, &d)) < 0)
		return c->err;
	if (c->domain && strcmp(c->domain, d.domain))
		return 0;
	if (c->n < c->limit)
		c->out[c->n] = d;
	c->n++;
	return c->domain ? 1 : 0;
}

int domains_get(struct store *st, const char *tenant, const char *domain, struct domain *out)
{
	char norm[STORE_DOMAIN_MAX + 1], k[2 + STORE_NAME_MAX + STORE_DOMAIN_MAX + 2];
	struct list_ctx c = { .domain = norm, .out = out, .limit = 1 };
	struct sl_buf b = { 0 };
	int rc;

	if (!st || domain_norm(domain, norm) < 0 || (tenant && strlen(tenant) > STORE_NAME_MAX))
		return tenant || domain ? SL_ENOTFOUND : -EINVAL;
	if (!tenant) {
		if ((rc = store_sendauth_scan(st, "d", 1, list_fn, &c)) < 0)
			return rc;
		return c.n ? 0 : SL_ENOTFOUND;
	}
	rc = store_sendauth_get(st, k, key_of('d', tenant, norm, k), &b);
	if (rc >= 0)
		rc = domain_decode(sl_buf_head(&b), sl_buf_avail(&b), out);
	sl_buf_free(&b);
	return rc;
}

int domains_list(struct store *st, const char *tenant, struct domain *out, size_t limit,
		 size_t *n)
{
	char prefix[2 + STORE_NAME_MAX + 1];
	size_t plen = 1;
	struct list_ctx c = { .out = out, .limit = limit };
	int rc;

	prefix[0] = 'd';
	if (tenant) {
		if (strlen(tenant) > STORE_NAME_MAX)
			return -EINVAL;
		memcpy(prefix + 1, tenant, strlen(tenant) + 1);
		plen = strlen(tenant) + 2;
	}
	rc = store_sendauth_scan(st, prefix, plen, list_fn, &c);
	*n = c.n;
	return rc;
}

int domains_remove(struct store *st, const char *tenant, const char *domain, const char *actor)
{
	struct domain d;
	struct store_audit e;
	char k[2 + STORE_NAME_MAX + STORE_DOMAIN_MAX + 2];
	int rc;

	if ((rc = domains_get(st, tenant, domain, &d)) < 0)
		return rc;
	audit_of(&e, actor, "domain.remove", &d, NULL);
	if ((rc = store_sendauth_del(st, k, key_of('d', d.tenant, d.domain, k), &e)) < 0)
		return rc;
	rc = store_sendauth_del(st, k, key_of('k', d.tenant, d.domain, k), NULL);
	return rc == SL_ENOTFOUND ? 0 : rc;
}

int domains_key_pem(struct store *st, const char *tenant, const char *domain, struct sl_buf *out)
{
	char norm[STORE_DOMAIN_MAX + 1], k[2 + STORE_NAME_MAX + STORE_DOMAIN_MAX + 2];

	if (!tenant || strlen(tenant) > STORE_NAME_MAX || domain_norm(domain, norm) < 0)
		return -EINVAL;
	return store_sendauth_get(st, k, key_of('k', tenant, norm, k), out);
}

/* --- records and the check ------------------------------------------------ */

void domains_records(const struct domain *d, const struct domains_env *env,
		     struct domain_record out[DOMAIN_RECS])
{
	struct domain_record *r;
	size_t o;

	memset(out, 0, sizeof(struct domain_record) * DOMAIN_RECS);
	r = &out[DOMAIN_REC_SPF];
	r->kind = "spf";
	r->type = "TXT";
	snprintf(r->name, sizeof r->name, "%s", d->domain);
	o = (size_t)snprintf(r->value, sizeof r->value, "v=spf1");
	if (env->spf_include && *env->spf_include) {
		o += (size_t)snprintf(r->value + o, sizeof r->value - o, " include:%s",
				      env->spf_include);
	} else {
		for (size_t i = 0; env->spf_ips && env->spf_ips[i] && o < sizeof r->value; i++)
			o += (size_t)snprintf(r->value + o, sizeof r->value - o, " %s:%s",
					      strchr(env->spf_ips[i], ':') ? "ip6" : "ip4",
					      env->spf_ips[i]);
	}
	if (o < sizeof r->value)
		snprintf(r->value + o, sizeof r->value - o, " ~all");

	r = &out[DOMAIN_REC_DKIM];
	r->kind = "dkim";
	r->type = "TXT";
	scopy(r->name, sizeof r->name, d->selector);
	scopy(r->name + strlen(r->name), sizeof r->name - strlen(r->name), "._domainkey.");
	scopy(r->name + strlen(r->name), sizeof r->name - strlen(r->name), d->domain);
	snprintf(r->value, sizeof r->value, "%s", d->dkim_txt);

	r = &out[DOMAIN_REC_DMARC];
	r->kind = "dmarc";
	r->type = "TXT";
	snprintf(r->name, sizeof r->name, "_dmarc.%s", d->domain);
	if (env->dmarc_rua && *env->dmarc_rua)
		snprintf(r->value, sizeof r->value, "v=DMARC1; p=none; rua=mailto:%s",
			 env->dmarc_rua);
	else
		snprintf(r->value, sizeof r->value, "v=DMARC1; p=none");

	r = &out[DOMAIN_REC_RETURN_PATH];
	r->kind = "return_path";
	snprintf(r->name, sizeof r->name, "bounces.%s", d->domain);
	if (env->return_path && *env->return_path) {
		r->type = "CNAME";
		snprintf(r->value, sizeof r->value, "%s", env->return_path);
	} else {
		r->type = "MX";
		snprintf(r->value, sizeof r->value, "10 %s", env->hostname ? env->hostname : "");
	}
}

/* Is every space-separated term of want (but "v=spf1" and "~all") in have? */
static bool spf_covers(const char *have, const char *want)
{
	char w[DOMAIN_VALUE_MAX + 1], *save, *tok;

	scopy(w, sizeof w, want);
	for (tok = strtok_r(w, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		const char *p = have;
		size_t n = strlen(tok);
		bool hit = false;

		if (!strcmp(tok, "v=spf1") || !strcmp(tok, "~all"))
			continue;
		while ((p = strcasestr(p, tok))) {
			if ((p == have || p[-1] == ' ' || p[-1] == '+') && (p[n] == ' ' || !p[n])) {
				hit = true;
				break;
			}
			p += n;
		}
		if (!hit)
			return false;
	}
	return true;
}

/* The value of tag t ("p") in a tag=value list, blanks removed, into out. */
static void tag_value(const char *rec, const char *t, char *out, size_t cap)
{
	size_t tl = strlen(t), o = 0;
	const char *p = rec;

	out[0] = 0;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (!strncmp(p, t, tl)) {
			const char *q = p + tl;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '=') {
				for (q++; *q && *q != ';' && o + 1 < cap; q++)
					if (!isspace((unsigned char)*q))
						out[o++] = *q;
				out[o] = 0;
				return;
			}
		}
		p = strchr(p, ';');
	}
}

/* Check TXT records (text: '\n'-separated) at name against one record. */
static enum domain_status check_txt(enum domain_rec kind, const char *text,
				    const struct domain_record *want, char *found, size_t cap)
{
	char line[DOMAIN_VALUE_MAX * 4], *save, *l;
	char want_p[DOMAIN_VALUE_MAX + 1], have_p[DOMAIN_VALUE_MAX * 4];
	bool saw = false;

	scopy(line, sizeof line, text);
	for (l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		bool ours = false;

		switch (kind) {
		case DOMAIN_REC_SPF:
			if (strncasecmp(l, "v=spf1", 6) || (l[6] != ' ' && l[6]))
				continue;
			ours = spf_covers(l, want->value);
			break;
		case DOMAIN_REC_DKIM:
			tag_value(want->value, "p", want_p, sizeof want_p);
			tag_value(l, "p", have_p, sizeof have_p);
			ours = *want_p && !strcmp(want_p, have_p);
			break;
		case DOMAIN_REC_DMARC:
			if (strncasecmp(l, "v=DMARC1", 8))
				continue;
			ours = true;
			break;
		default:
			continue;
		}
		if (!saw || ours)
			scopy(found, cap, l);
		saw = true;
		if (ours)
			return DOMAIN_OK;
	}
	return saw ? DOMAIN_MISMATCH : DOMAIN_MISSING;
}

static int check_one(struct domain *d, const struct domain_record *want, enum domain_rec kind,
		     struct dns_sync *dns)
{
	struct sl_buf b = { 0 };
	char *found = d->found[kind];
	size_t cap = sizeof d->found[kind];
	int rc;

	found[0] = 0;
	if (kind != DOMAIN_REC_RETURN_PATH) {
		rc = dns_sync_txt(dns, want->name, &b);
		if (rc == SL_ENOTFOUND) {
			d->status[kind] = DOMAIN_MISSING;
			rc = 0;
		} else if (rc >= 0 && (rc = sl_buf_append(&b, "", 1)) >= 0) {
			d->status[kind] = check_txt(kind, sl_buf_head(&b), want, found, cap);
		}
		sl_buf_free(&b);
		return rc;
	}
	/* return path: CNAME to the target, or MX to it */
	{
		bool cname = !strcmp(want->type, "CNAME");
		const char *target = cname ? want->value : want->value + 3; /* "10 host" */
		int types[2] = { T_CNAME, T_MX };
		bool saw = false;

		d->status[kind] = DOMAIN_MISSING;
		for (int t = 0; t < 2; t++) {
			struct ub_result *res;
			char name[STORE_DOMAIN_MAX + 2];

			rc = dns_sync_query(dns, want->name, types[t], &res);
			if (rc == 0) {
				for (int i = 0; res->data[i]; i++) {
					if (dns_sync_rdata_text(types[t], res->data[i],
								(size_t)res->len[i], name,
								sizeof name) < 0)
						continue;
					scopy(found, cap, t ? "MX " : "CNAME ");
					scopy(found + strlen(found), cap - strlen(found), name);
					saw = true;
					if (!strcasecmp(name, target)) {
						d->status[kind] = DOMAIN_OK;
						break;
					}
				}
			}
			ub_resolve_free(res);
			if (rc < 0 && rc != SL_ENOTFOUND)
				return rc;
			if (d->status[kind] == DOMAIN_OK)
				return 0;
		}
		if (saw)
			d->status[kind] = DOMAIN_MISMATCH;
		return 0;
	}
}

int domains_check_dns(struct domain *d, const struct domains_env *env, struct dns_sync *dns,
		      uint64_t now_ms)
{
	struct domain_record recs[DOMAIN_RECS];
	bool all = true;
	int rc;

	domains_records(d, env, recs);
	for (int i = 0; i < DOMAIN_RECS; i++) {
		if ((rc = check_one(d, &recs[i], (enum domain_rec)i, dns)) < 0)
			return rc;
		all = all && d->status[i] == DOMAIN_OK;
	}
	d->checked_ms = now_ms;
	if (!all)
		d->verified_ms = 0;
	else if (!d->verified_ms)
		d->verified_ms = now_ms;
	return 0;
}

int domains_verify(struct store *st, const struct domains_env *env, struct dns_sync *dns,
		   const char *tenant, const char *domain, const char *actor, uint64_t now_ms,
		   struct domain *out)
{
	struct domain d;
	struct store_audit e;
	bool was;
	int rc;

	if ((rc = domains_get(st, tenant, domain, &d)) < 0)
		return rc;
	was = d.verified_ms != 0;
	if ((rc = domains_check_dns(&d, env, dns, now_ms)) < 0)
		return rc;
	if (was != (d.verified_ms != 0))
		audit_of(&e, actor, was ? "domain.unverified" : "domain.verified", &d, NULL);
	if ((rc = domain_store(st, &d, was != (d.verified_ms != 0) ? &e : NULL)) < 0)
		return rc;
	if (out)
		*out = d;
	return 0;
}

json_t *domains_json(const struct domain *d, const struct domains_env *env)
{
	json_t *o, *recs;
	struct domain_record r[DOMAIN_RECS];

	o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I}", "tenant", d->tenant, "domain",
		      d->domain, "stream", stream_names[d->stream % STORE_STREAMS], "selector",
		      d->selector, "verified", d->verified_ms != 0, "created",
		      (json_int_t)d->created_ms, "checked", (json_int_t)d->checked_ms,
		      "verified_at", (json_int_t)d->verified_ms);
	if (!o)
		return NULL;
	recs = json_array();
	if (env)
		domains_records(d, env, r);
	for (int i = 0; recs && i < DOMAIN_RECS; i++) {
		json_t *x = json_pack("{s:s,s:s,s:s}", "kind", rec_names[i], "status",
				      domain_status_name(d->status[i]), "found", d->found[i]);

		if (x && env) {
			json_object_set_new(x, "name", json_string(r[i].name));
			json_object_set_new(x, "type", json_string(r[i].type));
			json_object_set_new(x, "value", json_string(r[i].value));
		}
		json_array_append_new(recs, x);
	}
	json_object_set_new(o, "records", recs);
	return o;
}
