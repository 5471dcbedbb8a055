/* tenant_view.c — the data path's snapshot of the tenants; see tenant_view.h. */
#include "tenant_view.h"

#include "domains.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tenant_view {
	size_t n, cap;
	struct tenant_view_entry *e; /* sorted by name (the store lists in order) */
	/* verified sending domains (control/domains.h), sorted by (tenant, domain) */
	struct view_domain {
		char tenant[STORE_NAME_MAX + 1];
		char domain[STORE_DOMAIN_MAX + 1];
	} *dom;
	size_t n_dom;
	/* paused configuration sets (a policy hold or an operator's pause),
	 * sorted by (tenant, domain, stream) as the store lists them */
	struct view_cfgset {
		char tenant[STORE_NAME_MAX + 1];
		char domain[STORE_DOMAIN_MAX + 1];
		uint8_t stream;
	} *held;
	size_t n_held, cap_held;
};

/* Copy tenant's paused configuration sets into v. */
static int load_held_sets(struct store *st, const char *tenant, struct tenant_view *v)
{
	struct store_cfgset page[32], after;
	bool more = true, first = true;
	size_t n;
	int rc;

	while (more) {
		if ((rc = store_cfgset_list(st, tenant, first ? NULL : &after, page, 32, &n, &more)) < 0)
			return rc;
		first = false;
		for (size_t i = 0; i < n; i++) {
			struct view_cfgset *h;

			if (!(page[i].flags & STORE_CFGSET_PAUSED))
				continue;
			if (v->n_held == v->cap_held) {
				size_t cap = v->cap_held ? v->cap_held * 2 : 16;

				if (!(h = realloc(v->held, cap * sizeof *h)))
					return -ENOMEM;
				v->held = h;
				v->cap_held = cap;
			}
			h = &v->held[v->n_held++];
			memcpy(h->tenant, page[i].tenant, sizeof h->tenant);
			memcpy(h->domain, page[i].domain, sizeof h->domain);
			h->stream = page[i].stream;
		}
		if (n)
			after = page[n - 1];
	}
	return 0;
}

/* Copy the verified sending domains of st into v. */
static int load_domains(struct store *st, struct tenant_view *v)
{
	struct domain *all;
	size_t n, cap;
	int rc;

	if ((rc = domains_list(st, NULL, NULL, 0, &cap)) < 0 || cap == 0)
		return rc;
	if (!(all = calloc(cap, sizeof *all)) || !(v->dom = calloc(cap, sizeof *v->dom))) {
		free(all);
		return -ENOMEM;
	}
	if ((rc = domains_list(st, NULL, all, cap, &n)) >= 0) {
		for (size_t i = 0; i < n && i < cap; i++) {
			if (!all[i].verified_ms)
				continue;
			memcpy(v->dom[v->n_dom].tenant, all[i].tenant, sizeof v->dom->tenant);
			memcpy(v->dom[v->n_dom].domain, all[i].domain, sizeof v->dom->domain);
			v->n_dom++;
		}
	}
	free(all);
	return rc < 0 ? rc : 0;
}

int tenant_view_load(struct store *st, struct tenant_view **out)
{
	struct tenant_view *v = calloc(1, sizeof *v);
	struct store_tenant page[64];
	char after[STORE_NAME_MAX + 1] = "";
	bool more = true;
	int rc = 0;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	while (more) {
		size_t n;

		if ((rc = store_tenant_list(st, after, page, 64, &n, &more)) < 0)
			goto fail;
		if (v->n + n > v->cap) {
			size_t cap = v->cap ? v->cap * 2 : 64;
			struct tenant_view_entry *e;

			while (cap < v->n + n)
				cap *= 2;
			e = realloc(v->e, cap * sizeof *e);
			if (!e) {
				rc = -ENOMEM;
				goto fail;
			}
			v->e = e;
			v->cap = cap;
		}
		for (size_t i = 0; i < n; i++) {
			struct tenant_view_entry *e = &v->e[v->n++];

			memset(e, 0, sizeof *e);
			memcpy(e->name, page[i].name, sizeof e->name);
			e->state = page[i].state;
			e->default_stream = page[i].default_stream;
			e->quota_hour = page[i].quota_hour;
			e->quota_day = page[i].quota_day;
			for (int s = 0; s < STORE_STREAMS; s++)
				memcpy(e->pool[s], page[i].streams[s].pool, sizeof e->pool[s]);
			if ((rc = load_held_sets(st, e->name, v)) < 0)
				goto fail;
		}
		if (n)
			memcpy(after, page[n - 1].name, sizeof after);
	}
	if ((rc = load_domains(st, v)) < 0)
		goto fail;
	*out = v;
	return 0;
fail:
	tenant_view_free(v);
	return rc;
}

void tenant_view_free(struct tenant_view *v)
{
	if (!v)
		return;
	free(v->dom);
	free(v->held);
	free(v->e);
	free(v);
}

size_t tenant_view_count(const struct tenant_view *v)
{
	return v ? v->n : 0;
}

const struct tenant_view_entry *tenant_view_find(const struct tenant_view *v, const char *name)
{
	size_t lo = 0, hi;

	if (!v || !name)
		return NULL;
	hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, v->e[mid].name);

		if (c == 0)
			return &v->e[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool tenant_view_cfgset_held(const struct tenant_view *v, const char *tenant, const char *domain,
			     uint8_t stream)
{
	size_t lo = 0, hi;

	if (!v || !tenant || !domain || !v->n_held)
		return false;
	hi = v->n_held;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct view_cfgset *h = &v->held[mid];
		int c = strcmp(tenant, h->tenant);

		if (!c)
			c = strcasecmp(domain, h->domain);
		if (!c)
			c = (int)stream - (int)h->stream;
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

bool tenant_view_msg_may_deliver(const struct tenant_view *v, const char *tenant,
				 const char *mail_from, uint8_t stream)
{
	const char *at = mail_from ? strrchr(mail_from, '@') : NULL;

	if (!tenant_view_may_deliver(v, tenant))
		return false;
	return !at || !tenant_view_cfgset_held(v, tenant, at + 1, stream);
}

bool tenant_view_may_deliver(const struct tenant_view *v, const char *name)
{
	const struct tenant_view_entry *e = tenant_view_find(v, name);

	return !e || tenant_may_deliver(e->state);
}

const struct tenant_refusal *tenant_view_inject_refusal(const struct tenant_view *v,
							 const char *name)
{
	const struct tenant_view_entry *e = tenant_view_find(v, name);

	return e ? tenant_inject_refusal(e->state) : NULL;
}

void tenant_view_cfg_fill(const struct tenant_view_entry *e, const struct sl_config *cfg,
			  struct tenant_view_cfg *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->name, e->name, sizeof out->name);
	out->cfg.name = out->name;
	out->cfg.username = out->name;
	out->cfg.stream = e->default_stream == SL_STREAM_MARKETING ? SL_STREAM_MARKETING
								   : SL_STREAM_TRANSACTIONAL;
	for (int s = 0; s < STORE_STREAMS; s++) {
		if (!e->pool[s][0] || !config_pool_by_name(cfg, e->pool[s]))
			continue;
		memcpy(out->pool[s], e->pool[s], sizeof out->pool[s]);
		out->cfg.stream_pool[s] = out->pool[s];
	}
	out->cfg.pool = out->cfg.stream_pool[SL_STREAM_TRANSACTIONAL];
}

bool tenant_view_domain_verified(const struct tenant_view *v, const char *tenant,
				 const char *domain)
{
	size_t lo = 0, hi = v ? v->n_dom : 0;

	if (!tenant || !domain)
		return false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(tenant, v->dom[mid].tenant);

		if (c == 0)
			c = strcasecmp(domain, v->dom[mid].domain);
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

int tenant_view_sender_check(const struct tenant_view *v, const struct sl_config *cfg,
			     const char *tenant, const char *mail_from, char *reply, size_t len)
{
	const char *at = mail_from ? strrchr(mail_from, '@') : NULL;

	if (!cfg->sender_auth.enabled || cfg->sender_auth.enforce == SL_ENFORCE_NONE || !tenant)
		return 0;
	if (cfg->sender_auth.enforce == SL_ENFORCE_API_TENANTS && config_tenant_by_name(cfg, tenant))
		return 0; /* declared in the YAML config: exempt */
	if (!at || !at[1])
		return 0; /* the null sender (DSNs) names no domain */
	if (tenant_view_domain_verified(v, tenant, at + 1))
		return 0;
	snprintf(reply, len,
		 "5.7.1 sending domain %.253s is not verified for tenant %.64s (sluicectl domain "
		 "verify)",
		 at + 1, tenant);
	return 550;
}
