/*
 * sched-bench — the scheduler's cost per message on the delivery path,
 * without sockets: 100k queued messages across 10k destination domains
 * (10k sites), one pool of 2 source IPs, shaping state per (IP, site).
 *
 * What is measured, per message, on one thread:
 *  - queue: queue_add() (the kick hook included), domain_queue_take(),
 *    delivery_all_result() with a 250 and queue_delivery_done() (which
 *    submits the spool DELETE; the spool's writer thread commits it on the
 *    other core, outside the timed path; sync off);
 *  - shaping, as egress.c does it (its functions are static, so this is the
 *    same sequence of library calls, not egress.c itself): per site,
 *    shaping_resolve() for each (IP, site) and rate_init(); per session,
 *    the source IP choice (warmup_gate_pick_usable() over the IPs whose
 *    max_connections, connection and message rates allow, as
 *    site_pick_ip()) and rate_allow() on the IP's connection rate; per
 *    message, rate_allow() on the IP's message rate and warmup_gate_take().
 * Not included: DNS, the SMTP client, reading the body, events, sockets.
 * Sessions carry up to 100 messages (max_messages_per_connection).
 */
#include "config.h"
#include "metrics.h"
#include "queue.h"
#include "shaping.h"
#include "spool.h"
#include "warmup.h"
#include "warmup_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_MSGS 100000
#define N_DOMAINS 10000
#define N_IPS 2

static uint64_t ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char cfg_yaml[] =
	"hostname: sluice.test\n"
	"pools:\n"
	"  - name: p\n"
	"    ips:\n"
	"      - {address: 198.51.100.10, ehlo: a.test}\n"
	"      - {address: 198.51.100.11, ehlo: b.test}\n";

static const char warm_yaml[] =
	"schedules:\n"
	"  huge:\n"
	"    default:\n"
	"      - {day: 1, daily: 1000000000, hourly: 1000000000}\n"
	"ips:\n"
	"  \"198.51.100.11\": {schedule: huge, start: 2020-01-01}\n";

static const char shape_yaml[] =
	"default:\n"
	"  max_connections: 10\n"
	"  message_rate: 1000000/s\n"
	"providers:\n"
	"  google: {connection_rate: 100000/s}\n"
	"ips:\n"
	"  \"198.51.100.11\":\n"
	"    providers:\n"
	"      google: {max_connections: 2, message_rate: 500000/s}\n";

static const char *const ip_text[N_IPS] = { "198.51.100.10", "198.51.100.11" };

struct bip {
	unsigned n_conns;
	struct shaping_values shape;
	struct rate_limiter conn_rate, msg_rate;
};

struct bsite {
	struct domain_queue *dq;
	struct bip ip[N_IPS];
	size_t rr;
	int prov;
	char provider[16];
	char key[64];
};

static struct bsite *sites;
static size_t n_sites;

static void kick(void *ctx, struct domain_queue *dq)
{
	void **slot = domain_queue_egress_slot(dq);

	(void)ctx;
	if (!*slot && n_sites < N_DOMAINS) {
		sites[n_sites].dq = dq;
		*slot = &sites[n_sites++];
	}
}

struct usable_ctx {
	struct bsite *s;
	uint64_t now;
};

static bool usable(void *ctx, size_t i)
{
	struct usable_ctx *c = ctx;
	struct bip *p = &c->s->ip[i];

	if (p->shape.max_connections && p->n_conns >= p->shape.max_connections)
		return false;
	return rate_available(&p->conn_rate, c->now) && rate_available(&p->msg_rate, c->now);
}

int main(void)
{
	static struct spool_rcpt rcpt[N_MSGS];
	static char addr[N_MSGS][32];
	struct sl_config *cfg;
	struct warmup_config *wc;
	struct warmup_gate *g;
	struct shaping_rules *rules;
	struct loop *loop;
	struct spool *spool;
	struct metrics *metrics;
	struct queue *q;
	struct queue_env env;
	char err[512], dir[] = "/tmp/sluice-sched-bench.XXXXXX", cmd[128];
	uint64_t t0, t1, t2, t3, t4, now = 1000, sent = 0, sessions = 0, refused = 0;
	uint64_t wnow = 1767225600000ull; /* 2026-01-01 */
	static const struct smtp_reply ok = { .code = 250, .enhanced = "2.0.0", .text = "Ok" };
	int rc;

	sites = calloc(N_DOMAINS, sizeof *sites);
	if (!sites || !mkdtemp(dir))
		return 1;
	if (config_load_string("c", cfg_yaml, strlen(cfg_yaml), &cfg, err, sizeof err) < 0 ||
	    warmup_load_string("w", warm_yaml, strlen(warm_yaml), &wc, err, sizeof err) < 0 ||
	    shaping_load_string("s", shape_yaml, strlen(shape_yaml), &rules, err, sizeof err) < 0) {
		fprintf(stderr, "sched-bench: %s\n", err);
		return 1;
	}
	if (warmup_gate_create(wc, cfg, 1, wnow, 0, &g) < 0 || loop_create(64, &loop) < 0 ||
	    spool_open(dir, 1u << 30, false, 0, &spool) < 0 || metrics_create(&metrics) < 0)
		return 1;
	env = (struct queue_env){ .loop = loop, .spool = spool, .metrics = metrics, .cfg = cfg,
				  .hooks = { .kick = kick } };
	if (queue_create(&env, &q) < 0)
		return 1;

	/* Queue: 10 messages for each of 10k domains, interleaved. */
	t0 = ns();
	for (uint32_t i = 0; i < N_MSGS; i++) {
		struct spool_msg m = { .id = i + 1, .tenant = "t", .pool = "p",
				       .mail_from = "a@b.test", .message_id = "",
				       .received_ms = 1, .rcpts = &rcpt[i], .n_rcpts = 1 };

		snprintf(addr[i], sizeof addr[i], "u%u@d%u.test", i, i % N_DOMAINS);
		rcpt[i].addr = addr[i];
		if ((rc = queue_add(q, &m)) < 0) {
			fprintf(stderr, "queue_add: %d\n", rc);
			return 1;
		}
	}
	t1 = ns();

	/* Sites: shaping per (IP, site), then one session per site at a time. */
	for (size_t i = 0; i < n_sites; i++) {
		struct bsite *s = &sites[i];

		snprintf(s->key, sizeof s->key, "mx.%s", domain_queue_domain(s->dq));
		snprintf(s->provider, sizeof s->provider, "%s", i % 10 ? "" : "google");
		s->prov = warmup_gate_provider(g, *s->provider ? s->provider : NULL);
		if (s->prov < 0)
			s->prov = 0;
		for (size_t k = 0; k < N_IPS; k++) {
			struct bip *p = &s->ip[k];
			struct shaping_key key = { .ip = ip_text[k], .pool = "p",
						   .provider = *s->provider ? s->provider : NULL,
						   .site = s->key,
						   .domain = domain_queue_domain(s->dq) };

			shaping_resolve(rules, &key, &p->shape);
			rate_init(&p->conn_rate, &p->shape.connection_rate, 0, now);
			rate_init(&p->msg_rate, &p->shape.message_rate, 0, now);
		}
	}
	for (size_t i = 0; i < n_sites; i++) {
		struct bsite *s = &sites[i];

		while (domain_queue_ready(s->dq)) {
			struct usable_ctx c = { .s = s, .now = now };
			uint64_t next;
			int ip = warmup_gate_pick_usable(g, 0, s->prov, wnow, usable, &c, &next);
			struct bip *p;
			unsigned n = 0;

			if (ip < 0) {
				now++;
				refused++;
				continue;
			}
			p = &s->ip[ip];
			rate_allow(&p->conn_rate, now, 1);
			p->n_conns++;
			sessions++;
			while (domain_queue_ready(s->dq) &&
			       n < p->shape.max_messages_per_connection) {
				struct delivery *d;
				struct rcpt_outcome o = { .reply = &ok, .source_ip = ip_text[ip] };

				if (!rate_allow(&p->msg_rate, now, 1)) {
					now++;
					refused++;
					continue;
				}
				if (!warmup_gate_take(g, 0, (size_t)ip, s->prov, wnow))
					break;
				d = domain_queue_take(s->dq);
				delivery_all_result(q, d, &o);
				queue_delivery_done(q, d, 1);
				n++;
				sent++;
				if (!(sent & 127))
					now++;
			}
			p->n_conns--;
		}
	}
	t2 = ns();
	/* The shaping calls alone, same sites and sessions, no queue. */
	for (size_t i = 0; i < n_sites; i++) {
		struct bsite *s = &sites[i];
		struct usable_ctx c = { .s = s, .now = now };
		uint64_t next;
		int ip = warmup_gate_pick_usable(g, 0, s->prov, wnow, usable, &c, &next);

		if (ip < 0)
			continue;
		rate_allow(&s->ip[ip].conn_rate, now, 1);
		for (int k = 0; k < N_MSGS / N_DOMAINS; k++)
			if (rate_allow(&s->ip[ip].msg_rate, now, 1))
				warmup_gate_take(g, 0, (size_t)ip, s->prov, wnow);
		if (!(i & 15))
			now++;
	}
	t3 = ns();
	for (size_t i = 0; i < n_sites; i++) {
		struct bsite *s = &sites[i];

		for (size_t k = 0; k < N_IPS; k++) {
			struct shaping_key key = { .ip = ip_text[k], .pool = "p",
						   .provider = *s->provider ? s->provider : NULL,
						   .site = s->key,
						   .domain = domain_queue_domain(s->dq) };

			shaping_resolve(rules, &key, &s->ip[k].shape);
		}
	}
	t4 = ns();
	printf("sched-bench: %u messages, %zu sites, %d source IPs, %llu sessions, "
	       "%llu rate refusals\n",
	       N_MSGS, n_sites, N_IPS, (unsigned long long)sessions, (unsigned long long)refused);
	printf("  enqueue (queue_add + kick)                      %6.0f ns/msg\n",
	       (double)(t1 - t0) / N_MSGS);
	printf("  schedule (shaping per (IP, site), IP choice, rates, warm-up take,\n"
	       "            domain_queue_take, outcome + done)    %6.0f ns/msg\n",
	       (double)(t2 - t1) / (double)(sent ? sent : 1));
	printf("  total                                           %6.0f ns/msg\n",
	       (double)(t2 - t0) / (double)(sent ? sent : 1));
	printf("  of which shaping alone: IP choice per session, message-rate token\n"
	       "            and warm-up take per message          %6.0f ns/msg\n"
	       "  shaping_resolve per (IP, site), amortised        %6.0f ns/msg "
	       "(%.0f ns per resolve; also what a reload costs per site and IP)\n",
	       (double)(t3 - t2) / N_MSGS, (double)(t4 - t3) / N_MSGS,
	       (double)(t4 - t3) / (double)(n_sites * N_IPS));
	spool_close(spool);
	queue_destroy(q);
	metrics_destroy(metrics);
	loop_destroy(loop);
	warmup_gate_destroy(g);
	warmup_free(wc);
	shaping_free(rules);
	config_free(cfg);
	free(sites);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 && sent == N_MSGS ? 0 : 1;
}
