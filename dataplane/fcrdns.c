/* fcrdns.c — forward-confirmed reverse DNS of the source IPs; see fcrdns.h. */
#include "fcrdns.h"

#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct fcrdns_ip {
	struct fcrdns *f;
	struct fcrdns_result res;
	const struct sl_source_ip_cfg *cfg;
	uint64_t lookup; /* in flight, 0 none */
};

struct fcrdns {
	struct resolver *r;
	fcrdns_done_cb done;
	void *ctx;
	struct fcrdns_ip *ips;
	size_t n;
};

const char *fcrdns_status_name(enum fcrdns_status s)
{
	switch (s) {
	case FCRDNS_OK: return "ok";
	case FCRDNS_MISMATCH: return "mismatch";
	default: return "unknown";
	}
}

static void finish(struct fcrdns_ip *x, enum fcrdns_status st, const char *fmt, const char *a)
{
	x->lookup = 0;
	x->res.status = st;
	snprintf(x->res.why, sizeof x->res.why, fmt, a);
	if (x->f->done)
		x->f->done(x->f->ctx, &x->res);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			       &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

static void on_forward(void *ctx, int err, const struct mx_result *res)
{
	struct fcrdns_ip *x = ctx;

	if (err == SL_EDNS || err == -ENOMEM)
		return finish(x, FCRDNS_UNKNOWN, "lookup of %s failed", x->res.ehlo);
	if (err)
		return finish(x, FCRDNS_MISMATCH, "%s has no A/AAAA record", x->res.ehlo);
	for (size_t i = 0; i < res->hosts[0].n_addrs; i++)
		if (same_addr(&res->hosts[0].addrs[i], &x->cfg->addr))
			return finish(x, FCRDNS_OK, "%s", "");
	finish(x, FCRDNS_MISMATCH, "%s does not resolve to this IP", x->res.ehlo);
}

static void on_ptr(void *ctx, int err, const char *const *names, size_t n)
{
	struct fcrdns_ip *x = ctx;
	int rc;

	if (err == SL_EDNS || err == -ENOMEM)
		return finish(x, FCRDNS_UNKNOWN, "%s", "PTR lookup failed");
	if (err)
		return finish(x, FCRDNS_MISMATCH, "%s", "no PTR record");
	snprintf(x->res.rdns, sizeof x->res.rdns, "%s", names[0]);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(x->res.ehlo);

		if (l && x->res.ehlo[l - 1] == '.')
			l--;
		if (strlen(names[i]) == l && !strncasecmp(names[i], x->res.ehlo, l)) {
			snprintf(x->res.rdns, sizeof x->res.rdns, "%s", names[i]);
			rc = resolver_lookup_host(x->f->r, x->res.ehlo, on_forward, x, &x->lookup);
			if (rc < 0)
				finish(x, FCRDNS_UNKNOWN, "lookup of %s failed", x->res.ehlo);
			return;
		}
	}
	finish(x, FCRDNS_MISMATCH, "PTR names %s, not the EHLO name", names[0]);
}

int fcrdns_start(struct resolver *r, const struct sl_config *cfg, fcrdns_done_cb done, void *ctx,
		 struct fcrdns **out)
{
	struct fcrdns *f = calloc(1, sizeof *f);
	size_t n = 0, k = 0;

	if (!f)
		return -ENOMEM;
	for (size_t p = 0; p < cfg->n_pools; p++)
		n += cfg->pools[p].n_ips;
	f->ips = calloc(n ? n : 1, sizeof *f->ips);
	if (!f->ips) {
		free(f);
		return -ENOMEM;
	}
	f->r = r;
	f->done = done;
	f->ctx = ctx;
	f->n = n;
	for (size_t p = 0; p < cfg->n_pools; p++)
		for (size_t i = 0; i < cfg->pools[p].n_ips; i++, k++) {
			struct fcrdns_ip *x = &f->ips[k];
			const struct sl_source_ip_cfg *ip = &cfg->pools[p].ips[i];

			x->f = f;
			x->cfg = ip;
			x->res.pool = cfg->pools[p].name;
			x->res.ehlo = ip->ehlo;
			if (ip->addr.ss_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&ip->addr)->sin6_addr,
					  x->res.ip, sizeof x->res.ip);
			else
				inet_ntop(AF_INET, &((const struct sockaddr_in *)&ip->addr)->sin_addr,
					  x->res.ip, sizeof x->res.ip);
			snprintf(x->res.why, sizeof x->res.why, "not checked yet");
		}
	*out = f;
	/* Start after *out is set: a callback may look at the results. */
	for (k = 0; k < n; k++) {
		struct fcrdns_ip *x = &f->ips[k];

		if (resolver_lookup_ptr(r, (const struct sockaddr *)&x->cfg->addr, on_ptr, x,
					&x->lookup) < 0)
			finish(x, FCRDNS_UNKNOWN, "%s", "PTR lookup could not start");
	}
	return 0;
}

void fcrdns_destroy(struct fcrdns *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		if (f->ips[i].lookup)
			resolver_cancel(f->r, f->ips[i].lookup);
	free(f->ips);
	free(f);
}

size_t fcrdns_count(const struct fcrdns *f)
{
	return f ? f->n : 0;
}

const struct fcrdns_result *fcrdns_get(const struct fcrdns *f, size_t i)
{
	return f && i < f->n ? &f->ips[i].res : NULL;
}
