/* quota.c — per-tenant hourly and daily message counts; see quota.h. */
#include "quota.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000ull
#define DAY_MS (24 * HOUR_MS)
#define BUCKETS 256u

struct usage {
	struct usage *next;
	uint64_t hour, day;         /* window numbers: now / HOUR_MS, now / DAY_MS */
	uint64_t in_hour, in_day;
	char tenant[];
};

struct quota {
	struct usage *bucket[BUCKETS];
};

static unsigned hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static struct usage *find(struct quota *q, const char *tenant)
{
	for (struct usage *u = q->bucket[hash(tenant)]; u; u = u->next)
		if (!strcmp(u->tenant, tenant))
			return u;
	return NULL;
}

/* Roll u's windows forward to now. */
static void roll(struct usage *u, uint64_t now_ms)
{
	if (u->hour != now_ms / HOUR_MS) {
		u->hour = now_ms / HOUR_MS;
		u->in_hour = 0;
	}
	if (u->day != now_ms / DAY_MS) {
		u->day = now_ms / DAY_MS;
		u->in_day = 0;
	}
}

int quota_create(struct quota **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void quota_destroy(struct quota *q)
{
	if (!q)
		return;
	for (unsigned i = 0; i < BUCKETS; i++)
		while (q->bucket[i]) {
			struct usage *u = q->bucket[i];

			q->bucket[i] = u->next;
			free(u);
		}
	free(q);
}

bool quota_over(struct quota *q, const char *tenant, uint64_t hour_limit, uint64_t day_limit,
		uint64_t now_ms, char *why, size_t whylen)
{
	struct usage *u;

	if (!hour_limit && !day_limit)
		return false;
	if (!(u = find(q, tenant)))
		return false;
	roll(u, now_ms);
	if (hour_limit && u->in_hour >= hour_limit) {
		snprintf(why, whylen, "hourly quota of %llu messages reached",
			 (unsigned long long)hour_limit);
		return true;
	}
	if (day_limit && u->in_day >= day_limit) {
		snprintf(why, whylen, "daily quota of %llu messages reached",
			 (unsigned long long)day_limit);
		return true;
	}
	return false;
}

int quota_count(struct quota *q, const char *tenant, uint64_t now_ms)
{
	struct usage *u = find(q, tenant);

	if (!u) {
		size_t n = strlen(tenant) + 1;
		unsigned h = hash(tenant);

		if (!(u = calloc(1, sizeof *u + n)))
			return -ENOMEM;
		memcpy(u->tenant, tenant, n);
		u->hour = now_ms / HOUR_MS;
		u->day = now_ms / DAY_MS;
		u->next = q->bucket[h];
		q->bucket[h] = u;
	}
	roll(u, now_ms);
	u->in_hour++;
	u->in_day++;
	return 0;
}
