/* api_grace.c — ends on_hold grace periods; see api_grace.h. */
#include "api_grace.h"

#include "err.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct api_grace {
	struct store *st;
	void *daemon;
	void (*changed)(void *daemon, const char *tenant);
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int api_grace_sweep(struct store *st, uint64_t now_ms, void *daemon,
		    void (*changed)(void *daemon, const char *tenant))
{
	struct store_tenant page[64];
	char after[STORE_NAME_MAX + 1] = "";
	bool more = true;
	int done = 0;

	while (more) {
		size_t n;
		int rc = store_tenant_list(st, after, page, 64, &n, &more);

		if (rc < 0)
			return rc;
		for (size_t i = 0; i < n; i++) {
			const struct store_tenant *t = &page[i];

			if (t->state != TENANT_ON_HOLD || !t->hold_until_ms ||
			    t->hold_until_ms > now_ms)
				continue;
			rc = store_tenant_set_state(st, t->name, TENANT_EV_GRACE_EXPIRED, 0, "policy",
						    "hold grace period expired", NULL, NULL);
			if (rc == -EPERM)
				continue; /* an operator acted meanwhile */
			if (rc < 0)
				return rc;
			done++;
			if (changed)
				changed(daemon, t->name);
		}
		if (n)
			snprintf(after, sizeof after, "%s", page[n - 1].name);
	}
	return done;
}

static void *grace_main(void *arg)
{
	struct api_grace *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += API_GRACE_PERIOD_MS / 1000;
		ts.tv_nsec += (API_GRACE_PERIOD_MS % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		if (g->stop)
			break;
		pthread_mutex_unlock(&g->mu);
		api_grace_sweep(g->st, wall_ms(), g->daemon, g->changed);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int api_grace_start(struct store *st, void *daemon, void (*changed)(void *daemon, const char *tenant),
		    struct api_grace **out)
{
	struct api_grace *g = calloc(1, sizeof *g);
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->st = st;
	g->daemon = daemon;
	g->changed = changed;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&g->thread, NULL, grace_main, g);
	if (rc) {
		pthread_cond_destroy(&g->cv);
		pthread_mutex_destroy(&g->mu);
		free(g);
		return -rc;
	}
	*out = g;
	return 0;
}

void api_grace_stop(struct api_grace *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}
