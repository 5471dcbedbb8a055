/* dnsbl.c — the periodic DNSBL self-check of the source IPs; see dnsbl.h. */
#include "dnsbl.h"

#include "err.h"
#include "link_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zone_state {
	bool listed;
	char answer[32];
};

struct ip_state {
	struct dnsbl_ip pub;
	struct zone_state *z;  /* per zone */
	char listed[256];      /* "zone1,zone2" */
	char why[160];
};

struct query {
	struct dnsbl *d;
	size_t ip, zone;
	uint64_t handle; /* 0: answered */
};

struct dnsbl {
	struct resolver *r;
	const struct sl_dnsbl_cfg *dc;
	dnsbl_changed_cb changed;
	void *ctx;
	struct ip_state *ips;
	size_t n;
	struct query *q; /* n * zones */
	size_t outstanding;
	bool started;
	uint64_t next_ms;
	uint64_t rounds;
};

int dnsbl_query_name(const struct sockaddr *addr, const char *zone, char *out, size_t outlen)
{
	size_t o = 0;
	int n;

	if (addr->sa_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;

		n = snprintf(out, outlen, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
		return n < 0 || (size_t)n >= outlen ? -EINVAL : 0;
	}
	if (addr->sa_family != AF_INET6)
		return -EINVAL;
	const uint8_t *b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
	for (int i = 15; i >= 0; i--) {
		n = snprintf(out + o, o < outlen ? outlen - o : 0, "%x.%x.", b[i] & 0xf, b[i] >> 4);
		if (n < 0 || o + (size_t)n >= outlen)
			return -EINVAL;
		o += (size_t)n;
	}
	n = snprintf(out + o, outlen - o, "%s", zone);
	return n < 0 || o + (size_t)n >= outlen ? -EINVAL : 0;
}

static void ip_listed_text(struct dnsbl *d, struct ip_state *x)
{
	size_t o = 0;

	x->listed[0] = 0;
	x->pub.listed_any = false;
	for (size_t z = 0; z < d->dc->n_zones; z++)
		if (x->z[z].listed) {
			x->pub.listed_any = true;
			o += (size_t)snprintf(x->listed + o, o < sizeof x->listed ? sizeof x->listed - o : 0,
					      "%s%s", o ? "," : "", d->dc->zones[z]);
		}
}

static void on_answer(void *ctx, int err, const struct mx_result *res)
{
	struct query *q = ctx;
	struct dnsbl *d = q->d;
	struct ip_state *x = &d->ips[q->ip];
	struct zone_state *zs = &x->z[q->zone];
	const char *zone = d->dc->zones[q->zone];
	uint32_t a4[RESOLVER_MAX_ADDRS];
	size_t n = 0;
	char code[32] = "";
	enum link_dns_verdict v;
	bool listed;

	q->handle = 0;
	d->outstanding--;
	if (err == SL_EDNS || err == -ENOMEM) {
		snprintf(x->why, sizeof x->why, "%s: lookup failed, state kept", zone);
		goto out;
	}
	if (!err)
		n = resolver_host_ipv4s(&res->hosts[0], a4, RESOLVER_MAX_ADDRS);
	v = link_dns_verdict(a4, n, code, sizeof code);
	if (v == LINK_DNS_ERROR) {
		snprintf(x->why, sizeof x->why, "%s: answer is not a listing (refused?), state kept",
			 zone);
		goto out;
	}
	listed = v == LINK_DNS_LISTED;
	if (listed == zs->listed)
		goto out;
	zs->listed = listed;
	snprintf(zs->answer, sizeof zs->answer, "%s", listed ? code : "");
	ip_listed_text(d, x);
	if (d->changed)
		d->changed(d->ctx, &x->pub, zone, listed, code);
out:
	if (!d->outstanding)
		d->rounds++;
}

static void round_start(struct dnsbl *d)
{
	size_t nz = d->dc->n_zones;

	for (size_t i = 0; i < d->n; i++) {
		d->ips[i].why[0] = 0;
		for (size_t z = 0; z < nz; z++) {
			struct query *q = &d->q[i * nz + z];
			char name[600];

			q->d = d;
			q->ip = i;
			q->zone = z;
			if (dnsbl_query_name((const struct sockaddr *)&d->ips[i].pub.addr, d->dc->zones[z],
					     name, sizeof name) < 0 ||
			    resolver_lookup_host(d->r, name, on_answer, q, &q->handle) < 0) {
				q->handle = 0;
				snprintf(d->ips[i].why, sizeof d->ips[i].why,
					 "%s: lookup could not start", d->dc->zones[z]);
				continue;
			}
			d->outstanding++;
		}
	}
	if (!d->outstanding)
		d->rounds++;
}

void dnsbl_tick(struct dnsbl *d, uint64_t now_ms)
{
	if (!d || d->outstanding || (d->started && now_ms < d->next_ms))
		return;
	d->started = true;
	d->next_ms = now_ms + d->dc->interval_ms;
	round_start(d);
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

int dnsbl_create(struct resolver *r, const struct sl_config *cfg, dnsbl_changed_cb changed,
		 void *ctx, struct dnsbl **out)
{
	struct dnsbl *d = calloc(1, sizeof *d);
	size_t total = 0, nz = cfg->dnsbl.n_zones;

	if (!d)
		return -ENOMEM;
	d->r = r;
	d->dc = &cfg->dnsbl;
	d->changed = changed;
	d->ctx = ctx;
	for (size_t p = 0; p < cfg->n_pools; p++)
		total += cfg->pools[p].n_ips;
	d->ips = calloc(total ? total : 1, sizeof *d->ips);
	if (!d->ips)
		goto fail;
	for (size_t p = 0; p < cfg->n_pools; p++)
		for (size_t i = 0; i < cfg->pools[p].n_ips; i++) {
			const struct sockaddr_storage *a = &cfg->pools[p].ips[i].addr;
			struct ip_state *x;
			bool dup = false;

			for (size_t k = 0; k < d->n && !dup; k++)
				dup = same_addr(&d->ips[k].pub.addr, a);
			if (dup)
				continue;
			x = &d->ips[d->n++];
			x->pub.addr = *a;
			if (!(x->z = calloc(nz ? nz : 1, sizeof *x->z)))
				goto fail;
			if (a->ss_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, x->pub.ip,
					  sizeof x->pub.ip);
			else
				inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, x->pub.ip,
					  sizeof x->pub.ip);
			snprintf(x->why, sizeof x->why, "not checked yet");
		}
	if (!(d->q = calloc(d->n * (nz ? nz : 1) + 1, sizeof *d->q)))
		goto fail;
	*out = d;
	return 0;
fail:
	dnsbl_destroy(d);
	return -ENOMEM;
}

void dnsbl_destroy(struct dnsbl *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->q && i < d->n * d->dc->n_zones; i++)
		if (d->q[i].handle)
			resolver_cancel(d->r, d->q[i].handle);
	for (size_t i = 0; d->ips && i < d->n; i++)
		free(d->ips[i].z);
	free(d->ips);
	free(d->q);
	free(d);
}

size_t dnsbl_count(const struct dnsbl *d)
{
	return d ? d->n : 0;
}

const struct dnsbl_ip *dnsbl_get(const struct dnsbl *d, size_t i)
{
	return d && i < d->n ? &d->ips[i].pub : NULL;
}

const struct dnsbl_ip *dnsbl_find(const struct dnsbl *d, const char *ip, const char **listed,
				  const char **why)
{
	for (size_t i = 0; d && i < d->n; i++)
		if (!strcmp(d->ips[i].pub.ip, ip)) {
			if (listed)
				*listed = d->ips[i].listed;
			if (why)
				*why = d->ips[i].why;
			return &d->ips[i].pub;
		}
	return NULL;
}

uint64_t dnsbl_rounds(const struct dnsbl *d)
{
	return d ? d->rounds : 0;
}
