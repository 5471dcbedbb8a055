/* warmup_gate.c — source-IP selection under warm-up caps; see warmup_gate.h. */
#include "warmup_gate.h"

#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gate_state {
	struct warmup_state st;
	bool dirty;
};

struct gate_ip {
	char text[WARMUP_DB_IP_MAX];
	const struct warmup_ip *wip;  /* NULL: not under warm-up (always warm) */
	struct gate_state **st;       /* by provider id; NULL until used */
	size_t n_st;
};

struct gate_pool {
	size_t *ip;                   /* gate ip ids, in the pool's order */
	size_t n_ip;
	bool gated;                   /* some IP is under warm-up */
	enum warmup_overflow overflow;
	size_t rr_warm, rr_warming;
};

struct warmup_gate {
	const struct warmup_config *wc;
	struct gate_ip *ips;
	size_t n_ips;
	struct gate_pool *pools;
	size_t n_pools;
	char **prov;                  /* id -> name; prov[0] = "*" */
	size_t n_prov;
	uint32_t scale;
	uint64_t origin_wall, origin_mono;
};

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, len);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, len);
}

static long ip_id(struct warmup_gate *g, const char *text)
{
	for (size_t i = 0; i < g->n_ips; i++)
		if (!strcmp(g->ips[i].text, text))
			return (long)i;
	return -1;
}

int warmup_gate_create(const struct warmup_config *wc, const struct sl_config *cfg,
		       uint32_t scale, uint64_t origin_wall_ms, uint64_t origin_mono_ms,
		       struct warmup_gate **out)
{
	struct warmup_gate *g = calloc(1, sizeof *g);
	size_t total = 0;

	if (!g)
		return -ENOMEM;
	g->wc = wc;
	g->scale = scale ? scale : 1;
	g->origin_wall = origin_wall_ms;
	g->origin_mono = origin_mono_ms;
	for (size_t p = 0; p < cfg->n_pools; p++)
		total += cfg->pools[p].n_ips;
	g->ips = calloc(total ? total : 1, sizeof *g->ips);
	g->pools = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *g->pools);
	g->prov = calloc(1, sizeof *g->prov);
	if (!g->ips || !g->pools || !g->prov || !(g->prov[0] = strdup("*")))
		goto fail;
	g->n_prov = 1;
	g->n_pools = cfg->n_pools;
	for (size_t p = 0; p < cfg->n_pools; p++) {
		const struct sl_pool_cfg *pc = &cfg->pools[p];
		struct gate_pool *gp = &g->pools[p];

		gp->overflow = warmup_pool_overflow(wc, pc->name);
		if (!(gp->ip = calloc(pc->n_ips ? pc->n_ips : 1, sizeof *gp->ip)))
			goto fail;
		gp->n_ip = pc->n_ips;
		for (size_t i = 0; i < pc->n_ips; i++) {
			char text[WARMUP_DB_IP_MAX];
			long id;

			addr_text(&pc->ips[i].addr, text, sizeof text);
			if ((id = ip_id(g, text)) < 0) {
				id = (long)g->n_ips++;
				memcpy(g->ips[id].text, text, sizeof text);
				g->ips[id].wip = warmup_ip_for(wc, text);
			}
			gp->ip[i] = (size_t)id;
			if (g->ips[id].wip)
				gp->gated = true;
		}
	}
	*out = g;
	return 0;
fail:
	warmup_gate_destroy(g);
	return -ENOMEM;
}

void warmup_gate_destroy(struct warmup_gate *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_ips; i++) {
		for (size_t j = 0; j < g->ips[i].n_st; j++)
			free(g->ips[i].st[j]);
		free(g->ips[i].st);
	}
	for (size_t p = 0; p < g->n_pools; p++)
		free(g->pools[p].ip);
	for (size_t i = 0; i < g->n_prov; i++)
		free(g->prov[i]);
	free(g->prov);
	free(g->pools);
	free(g->ips);
	free(g);
}

uint64_t warmup_gate_clock(const struct warmup_gate *g, uint64_t mono_ms)
{
	uint64_t d = mono_ms > g->origin_mono ? mono_ms - g->origin_mono : 0;

	return g->origin_wall + d * g->scale;
}

uint64_t warmup_gate_real_delay(const struct warmup_gate *g, uint64_t now, uint64_t at)
{
	if (at == UINT64_MAX)
		return UINT64_MAX;
	if (at <= now)
		return 1;
	return (at - now + g->scale - 1) / g->scale;
}

int warmup_gate_provider(struct warmup_gate *g, const char *name)
{
	char **p;

	if (!name || !*name || !strcmp(name, "*"))
		return 0;
	for (size_t i = 1; i < g->n_prov; i++)
		if (!strcmp(g->prov[i], name))
			return (int)i;
	if (!(p = realloc(g->prov, (g->n_prov + 1) * sizeof *p)))
		return -ENOMEM;
	g->prov = p;
	if (!(p[g->n_prov] = strdup(name)))
		return -ENOMEM;
	return (int)g->n_prov++;
}

bool warmup_gate_pool_gated(const struct warmup_gate *g, size_t pool)
{
	return pool < g->n_pools && g->pools[pool].gated;
}

/* The state of (ip, prov), created from the IP's schedule; NULL when the
 * IP is not under warm-up (or out of memory: then it counts as warm). */
static struct gate_state *state_of(struct warmup_gate *g, size_t ip, int prov)
{
	struct gate_ip *gi = &g->ips[ip];
	struct gate_state *s;

	if (!gi->wip)
		return NULL;
	if ((size_t)prov >= gi->n_st) {
		struct gate_state **n = realloc(gi->st, g->n_prov * sizeof *n);

		if (!n)
			return NULL;
		memset(n + gi->n_st, 0, (g->n_prov - gi->n_st) * sizeof *n);
		gi->st = n;
		gi->n_st = g->n_prov;
	}
	if (!(s = gi->st[prov])) {
		if (!(s = calloc(1, sizeof *s)))
			return NULL;
		warmup_state_init(&s->st, warmup_curve_for(gi->wip->schedule,
							   prov ? g->prov[prov] : NULL),
				  gi->wip->start_ms);
		s->dirty = true;
		gi->st[prov] = s;
	}
	return s;
}

enum ip_class { IP_NONE, IP_FULL, IP_ROOM, IP_WARM };

static enum ip_class classify(struct warmup_gate *g, size_t ip, int prov, uint64_t now,
			      uint64_t *left, struct gate_state **sp)
{
	struct gate_state *s = state_of(g, ip, prov);

	*sp = s;
	*left = WARMUP_UNLIMITED;
	if (!s)
		return IP_WARM;
	if (s->st.paused)
		return IP_NONE;
	if (warmup_is_warm(&s->st, now))
		return IP_WARM;
	*left = warmup_remaining(&s->st, now);
	return *left ? IP_ROOM : IP_FULL;
}

struct pool_view {
	long best_room;   /* pool index of the warming IP with most left, or -1 */
	long first_warm;  /* pool index of the next warm IP round-robin, or -1 */
	bool warming;     /* some IP is warming (full or with room) */
	bool room_unusable; /* a warming IP with room was skipped as unusable */
	bool warm_unusable; /* a warm IP was skipped as unusable */
	uint64_t next;    /* earliest next window of a full warming IP */
};

/* usable NULL: every IP. Otherwise best_room and first_warm only name
 * usable IPs; the other fields describe the whole pool. */
static void pool_scan(struct warmup_gate *g, struct gate_pool *gp, int prov, uint64_t now,
		      bool (*usable)(void *, size_t), void *ctx, struct pool_view *v)
{
	uint64_t best = 0;

	*v = (struct pool_view){ .best_room = -1, .first_warm = -1, .next = UINT64_MAX };
	for (size_t k = 0; k < gp->n_ip; k++) {
		size_t i = (gp->rr_warming + k) % gp->n_ip;
		struct gate_state *s;
		uint64_t left;

		switch (classify(g, gp->ip[i], prov, now, &left, &s)) {
		case IP_ROOM:
			v->warming = true;
			if (usable && !usable(ctx, i)) {
				v->room_unusable = true;
				break;
			}
			if (left > best) {
				best = left;
				v->best_room = (long)i;
			}
			break;
		case IP_FULL: {
			uint64_t at = warmup_next_ms(&s->st, now);

			v->warming = true;
			if (at < v->next)
				v->next = at;
			break;
		}
		case IP_WARM:
			break;
		case IP_NONE:
			break;
		}
	}
	for (size_t k = 0; k < gp->n_ip; k++) {
		size_t i = (gp->rr_warm + k) % gp->n_ip;
		struct gate_state *s;
		uint64_t left;

		if (classify(g, gp->ip[i], prov, now, &left, &s) == IP_WARM) {
			if (usable && !usable(ctx, i)) {
				v->warm_unusable = true;
				continue;
			}
			v->first_warm = (long)i;
			break;
		}
	}
}

int warmup_gate_pick(struct warmup_gate *g, size_t pool, int prov, uint64_t now, uint64_t *next)
{
	return warmup_gate_pick_usable(g, pool, prov, now, NULL, NULL, next);
}

int warmup_gate_pick_usable(struct warmup_gate *g, size_t pool, int prov, uint64_t now,
			    bool (*usable)(void *ctx, size_t ip), void *ctx, uint64_t *next)
{
	struct gate_pool *gp = &g->pools[pool];
	struct pool_view v;

	*next = now;
	if (!gp->gated) {
		for (size_t k = 0; k < gp->n_ip; k++) {
			size_t i = gp->rr_warm++ % gp->n_ip;

			if (!usable || usable(ctx, i))
				return (int)i;
		}
		return gp->n_ip ? -EBUSY : -EAGAIN;
	}
	pool_scan(g, gp, prov, now, usable, ctx, &v);
	if (v.best_room >= 0) {
		gp->rr_warming = (size_t)v.best_room + 1;
		return (int)v.best_room;
	}
	/* A warming IP with room that is only busy: wait for it rather than
	 * spill (warmup_gate_take would refuse the warm IP anyway). */
	if (v.room_unusable)
		return -EBUSY;
	if (v.first_warm >= 0 && (!v.warming || gp->overflow == WARMUP_SPILL)) {
		gp->rr_warm = (size_t)v.first_warm + 1;
		return (int)v.first_warm;
	}
	if (v.warm_unusable && (!v.warming || gp->overflow == WARMUP_SPILL))
		return -EBUSY;
	*next = v.next;
	return -EAGAIN;
}

bool warmup_gate_take(struct warmup_gate *g, size_t pool, size_t ip, int prov, uint64_t now)
{
	struct gate_pool *gp = &g->pools[pool];
	struct gate_state *s;
	struct pool_view v;
	uint64_t left;

	if (!gp->gated || ip >= gp->n_ip)
		return true;
	switch (classify(g, gp->ip[ip], prov, now, &left, &s)) {
	case IP_ROOM:
		s->dirty = true;
		return warmup_allow(&s->st, now, 1);
	case IP_WARM:
		/* Overflow only: not while a warming IP of the pool has room. */
		pool_scan(g, gp, prov, now, NULL, NULL, &v);
		if (v.best_room >= 0 || (v.warming && gp->overflow != WARMUP_SPILL))
			return false;
		if (s) {
			s->dirty = true;
			warmup_allow(&s->st, now, 1);
		}
		return true;
	case IP_FULL:
	case IP_NONE:
		break;
	}
	return false;
}

int warmup_gate_restore(struct warmup_gate *g, const struct warmup_record *r)
{
	long ip = ip_id(g, r->ip);
	int prov = warmup_gate_provider(g, r->provider);
	struct gate_state *s;

	if (prov < 0)
		return prov;
	if (ip < 0 || !(s = state_of(g, (size_t)ip, prov)))
		return SL_ENOTFOUND;
	s->st.start_ms = r->start_ms;
	s->st.day = r->day ? r->day : 1;
	s->st.cur_day = r->cur_day;
	s->st.cur_hour = r->cur_hour;
	s->st.sent_today = r->sent_today;
	s->st.sent_hour = r->sent_hour;
	s->st.paused = r->paused != 0;
	s->dirty = false;
	return 0;
}

int warmup_gate_command(struct warmup_gate *g, const struct warmup_command *c, uint64_t now)
{
	long ip = ip_id(g, c->ip);
	int prov = warmup_gate_provider(g, c->provider);
	struct gate_state *s;

	if (prov < 0)
		return prov;
	if (ip < 0 || !(s = state_of(g, (size_t)ip, prov)))
		return SL_ENOTFOUND;
	warmup_roll(&s->st, now);
	switch (c->action) {
	case WARMUP_CMD_PAUSE: warmup_pause(&s->st); break;
	case WARMUP_CMD_RESUME: warmup_resume(&s->st); break;
	case WARMUP_CMD_RESTART: warmup_restart(&s->st, now); break;
	case WARMUP_CMD_JUMP: warmup_jump(&s->st, c->day); break;
	default: return -EINVAL;
	}
	s->dirty = true;
	return 0;
}

static void fill_record(const struct warmup_gate *g, const struct gate_ip *gi, int prov,
			struct gate_state *s, uint64_t now, struct warmup_record *r)
{
	struct warmup_cap cap = warmup_state_cap(&s->st, now);

	memset(r, 0, sizeof *r);
	snprintf(r->ip, sizeof r->ip, "%s", gi->text);
	snprintf(r->provider, sizeof r->provider, "%s", g->prov[prov]);
	snprintf(r->schedule, sizeof r->schedule, "%s", s->st.curve->schedule);
	r->start_ms = s->st.start_ms;
	r->day = s->st.day;
	r->paused = s->st.paused;
	r->cur_day = s->st.cur_day;
	r->cur_hour = s->st.cur_hour;
	r->sent_today = s->st.sent_today;
	r->sent_hour = s->st.sent_hour;
	r->now_ms = now;
	r->cap_today = cap.daily;
	r->cap_hour = cap.hourly;
	r->next_increase_day = warmup_next_increase(s->st.curve, s->st.day);
	r->phase = s->st.paused ? WARMUP_PHASE_PAUSED
		   : cap.daily == WARMUP_UNLIMITED ? WARMUP_PHASE_WARM : WARMUP_PHASE_WARMING;
}

size_t warmup_gate_export(struct warmup_gate *g, uint64_t now, bool all, struct warmup_record *out,
			  size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < g->n_ips; i++)
		for (size_t p = 0; p < g->ips[i].n_st; p++) {
			struct gate_state *s = g->ips[i].st[p];
			int64_t h;

			if (!s)
				continue;
			h = s->st.cur_hour;
			warmup_roll(&s->st, now);
			if (!all && !s->dirty && h == s->st.cur_hour)
				continue;
			if (n == max)
				return n;
			fill_record(g, &g->ips[i], (int)p, s, now, &out[n++]);
			s->dirty = false;
		}
	return n;
}

size_t warmup_gate_count(const struct warmup_gate *g)
{
	size_t n = 0;

	for (size_t i = 0; i < g->n_ips; i++)
		for (size_t p = 0; p < g->ips[i].n_st; p++)
			n += g->ips[i].st[p] != NULL;
	return n;
}
