/* sendauth.c — sender-authentication service of the daemon; see sendauth.h. */
#include "sendauth.h"

#include "dkim.h"
#include "dns_sync.h"
#include "domains.h"
#include "err.h"
#include "verification.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

struct sendauth {
	const struct sl_config *cfg;
	struct store *st;
	void (*changed)(void *ctx, const char *tenant);
	void *ctx;
	struct domains_env env;
	char **ips, **servers;
	struct verification *verif;
	pthread_t th;
	bool started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static uint64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* "IP" or "IP@PORT" of a socket address (port 53 left out). */
static char *addr_text(const struct sockaddr_storage *ss, bool with_port)
{
	char ip[INET6_ADDRSTRLEN], out[INET6_ADDRSTRLEN + 8];
	unsigned port;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		port = ntohs(s4->sin_port);
	}
	if (with_port && port && port != 53)
		snprintf(out, sizeof out, "%s@%u", ip, port);
	else
		snprintf(out, sizeof out, "%s", ip);
	return strdup(out);
}

int sendauth_check_all(struct sendauth *sa)
{
	struct domain *all = NULL;
	struct dns_sync *dns = NULL;
	size_t n = 0, cap = 0;
	int rc, changed = 0;

	if ((rc = domains_list(sa->st, NULL, NULL, 0, &cap)) < 0 || cap == 0)
		return rc;
	if (!(all = calloc(cap, sizeof *all)))
		return -ENOMEM;
	if ((rc = domains_list(sa->st, NULL, all, cap, &n)) < 0)
		goto out;
	if ((rc = dns_sync_create(sa->env.dns_servers, NULL, &dns)) < 0)
		goto out;
	for (size_t i = 0; i < n && i < cap; i++) {
		struct domain d;

		if (domains_verify(sa->st, &sa->env, dns, all[i].tenant, all[i].domain, "sendauth",
				   now_ms(), &d) < 0)
			continue; /* DNS trouble: keep the last result */
		if ((d.verified_ms != 0) != (all[i].verified_ms != 0)) {
			changed++;
			if (sa->changed)
				sa->changed(sa->ctx, d.tenant);
		}
	}
	rc = changed;
out:
	dns_sync_destroy(dns);
	free(all);
	return rc;
}

static void *recheck_main(void *arg)
{
	struct sendauth *sa = arg;

	pthread_mutex_lock(&sa->mu);
	while (!sa->stop) {
		struct timespec until;
		uint64_t ms = sa->cfg->sender_auth.check_interval_ms;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(ms / 1000);
		until.tv_nsec += (long)(ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!sa->stop && pthread_cond_timedwait(&sa->cv, &sa->mu, &until) != ETIMEDOUT)
			;
		if (sa->stop)
			break;
		pthread_mutex_unlock(&sa->mu);
		sendauth_check_all(sa);
		pthread_mutex_lock(&sa->mu);
	}
	pthread_mutex_unlock(&sa->mu);
	return NULL;
}

void sendauth_stop(struct sendauth *sa)
{
	if (!sa)
		return;
	if (sa->started) {
		pthread_mutex_lock(&sa->mu);
		sa->stop = true;
		pthread_cond_broadcast(&sa->cv);
		pthread_mutex_unlock(&sa->mu);
		pthread_join(sa->th, NULL);
	}
	verification_destroy(sa->verif);
	pthread_cond_destroy(&sa->cv);
	pthread_mutex_destroy(&sa->mu);
	strv_free(sa->ips);
	strv_free(sa->servers);
	free(sa);
}

int sendauth_start(const struct sl_config *cfg, struct store *st,
		   void (*changed)(void *ctx, const char *tenant), void *ctx,
		   struct sendauth **out, char *err, size_t errlen)
{
	const struct sl_sender_auth_cfg *a = &cfg->sender_auth;
	struct sendauth *sa;
	size_t nips = 0, k = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (errlen)
		err[0] = 0;
	if (!(sa = calloc(1, sizeof *sa)))
		return -ENOMEM;
	pthread_mutex_init(&sa->mu, NULL);
	pthread_cond_init(&sa->cv, NULL);
	sa->cfg = cfg;
	sa->st = st;
	sa->changed = changed;
	sa->ctx = ctx;
	for (size_t p = 0; p < cfg->n_pools; p++)
		nips += cfg->pools[p].n_ips;
	if (!(sa->ips = calloc(nips + 1, sizeof *sa->ips)) ||
	    !(sa->servers = calloc(cfg->dns.n_servers + 1, sizeof *sa->servers)))
		goto fail;
	for (size_t p = 0; p < cfg->n_pools; p++)
		for (size_t i = 0; i < cfg->pools[p].n_ips; i++) {
			char *ip = addr_text(&cfg->pools[p].ips[i].addr, false);
			bool dup = false;

			if (!ip)
				goto fail;
			for (size_t j = 0; j < k; j++)
				dup = dup || !strcmp(sa->ips[j], ip);
			if (dup)
				free(ip);
			else
				sa->ips[k++] = ip;
		}
	for (size_t i = 0; i < cfg->dns.n_servers; i++)
		if (!(sa->servers[i] = addr_text(&cfg->dns.servers[i], true)))
			goto fail;
	sa->env = (struct domains_env){
		.spf_ips = (const char *const *)sa->ips,
		.spf_include = a->spf_include,
		.return_path = cfg->bounces.enabled ? cfg->bounces.return_path_domain : NULL,
		.hostname = cfg->hostname,
		.dmarc_rua = a->dmarc_rua,
		.dns_servers = cfg->dns.n_servers ? (const char *const *)sa->servers : NULL,
	};
	if (a->verification_domain) {
		struct verification_config vc = {
			.store = st,
			.domain = a->verification_domain,
			.dns_servers = sa->env.dns_servers,
			.ttl_ms = a->verification_ttl_ms,
			.webhook_url = a->webhook_url,
			.webhook_secret = a->webhook_secret,
		};

		if ((rc = verification_create(&vc, &sa->verif)) < 0) {
			snprintf(err, errlen, "verify-by-email: %s", sl_strerror(rc));
			goto fail;
		}
	}
	if (pthread_create(&sa->th, NULL, recheck_main, sa)) {
		rc = -EAGAIN;
		goto fail;
	}
	sa->started = true;
	*out = sa;
	return 0;
fail:
	sendauth_stop(sa);
	return rc;
}

const struct domains_env *sendauth_domains_env(const struct sendauth *sa)
{
	return sa ? &sa->env : NULL;
}

struct verification *sendauth_verification(const struct sendauth *sa)
{
	return sa ? sa->verif : NULL;
}

int sendauth_signer_load(struct store *st, struct dkim_signer **out)
{
	struct dkim_signer *s = NULL;
	struct domain *all = NULL;
	struct sl_buf pem = { 0 };
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	if ((rc = domains_list(st, NULL, NULL, 0, &cap)) < 0 || cap == 0)
		return rc;
	if (!(all = calloc(cap, sizeof *all)))
		return -ENOMEM;
	if ((rc = domains_list(st, NULL, all, cap, &n)) < 0)
		goto out;
	for (size_t i = 0; i < n && i < cap; i++) {
		if (!all[i].verified_ms)
			continue;
		if (!s && !(s = dkim_signer_create())) {
			rc = -ENOMEM;
			goto out;
		}
		if (domains_key_pem(st, all[i].tenant, all[i].domain, &pem) < 0)
			continue;
		/* a bad stored key must not stop the others */
		dkim_signer_add_key(s, all[i].domain, all[i].selector, DKIM_ALGO_AUTO,
				    sl_buf_head(&pem));
	}
	rc = 0;
out:
	sl_buf_free(&pem);
	free(all);
	if (rc < 0) {
		dkim_signer_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}
