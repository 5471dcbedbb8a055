/*
 * warmup-bench — what the warm-up gate adds per message to egress.
 *
 * 100k queued messages across 10k destination domains (each domain with
 * a provider: a tenth of them spread over 8 named providers, the rest
 * without one), one pool of 3 source IPs all under warm-up with caps high
 * enough that nothing is held. Per message the gate path does what egress
 * does: the warm-up clock, warmup_gate_take() for the session's IP, and
 * warmup_gate_pick() when the domain has no session yet or the take
 * refuses. The baseline is the round-robin pick egress used before, over
 * the same messages in the same run. Prints ns per message for both.
 */
#include "config.h"
#include "warmup.h"
#include "warmup_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_MSGS 100000
#define N_DOMAINS 10000
#define ROUNDS 20

static uint64_t ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char cfg_yaml[] =
	"pools:\n"
	"  - name: p\n"
	"    ips:\n"
	"      - {address: 198.51.100.10, ehlo: a.test}\n"
	"      - {address: 198.51.100.11, ehlo: b.test}\n"
	"      - {address: 198.51.100.12, ehlo: c.test}\n";

static const char warm_yaml[] =
	"schedules:\n"
	"  huge:\n"
	"    default:\n"
	"      - {day: 1, daily: 1000000000, hourly: 1000000000}\n"
	"pools:\n"
	"  p: {overflow: spill}\n"
	"ips:\n"
	"  \"198.51.100.10\": {schedule: huge, start: 2020-01-01}\n"
	"  \"198.51.100.11\": {schedule: huge, start: 2020-01-01}\n"
	"  \"198.51.100.12\": {schedule: huge, start: 2020-01-01}\n";

int main(void)
{
	static const char *const names[] = { "google", "microsoft", "yahoo", "apple",
					     "gmx", "mailru", "yandex", "comcast" };
	static int prov[N_DOMAINS], sess[N_DOMAINS];
	static uint32_t msg_dom[N_MSGS];
	struct sl_config *cfg;
	struct warmup_config *wc;
	struct warmup_gate *g;
	char err[512];
	uint64_t t0, t_base = 0, t_gate = 0, sink = 0, next;
	size_t rr = 0;

	if (config_load_string("bench", cfg_yaml, strlen(cfg_yaml), &cfg, err, sizeof err) < 0 ||
	    warmup_load_string("bench", warm_yaml, strlen(warm_yaml), &wc, err, sizeof err) < 0 ||
	    warmup_gate_create(wc, cfg, 1, 1796000000000ull, 0, &g) < 0) {
		fprintf(stderr, "warmup-bench: %s\n", err);
		return 1;
	}
	for (int d = 0; d < N_DOMAINS; d++)
		prov[d] = warmup_gate_provider(g, d % 10 == 0 ? names[(d / 10) % 8] : NULL);
	srand(42);
	for (int i = 0; i < N_MSGS; i++)
		msg_dom[i] = (uint32_t)(rand() % N_DOMAINS);
	for (int round = 0; round < ROUNDS; round++) {
		t0 = ns();
		for (int i = 0; i < N_MSGS; i++)
			sink += rr++ % 3 + msg_dom[i];
		t_base += ns() - t0;
		memset(sess, -1, sizeof sess);
		t0 = ns();
		for (int i = 0; i < N_MSGS; i++) {
			int d = (int)msg_dom[i];
			uint64_t now = warmup_gate_clock(g, (uint64_t)i / 1000);

			if (sess[d] < 0 || !warmup_gate_take(g, 0, (size_t)sess[d], prov[d], now)) {
				sess[d] = warmup_gate_pick(g, 0, prov[d], now, &next);
				if (sess[d] >= 0)
					warmup_gate_take(g, 0, (size_t)sess[d], prov[d], now);
			}
			sink += (uint64_t)sess[d];
		}
		t_gate += ns() - t0;
	}
	printf("warmup-bench: %d messages x %d rounds across %d domains, 3 IPs under warm-up\n",
	       N_MSGS, ROUNDS, N_DOMAINS);
	printf("  baseline round-robin pick   %6.1f ns/message\n",
	       (double)t_base / (N_MSGS * (double)ROUNDS));
	printf("  warm-up gate (pick + take)  %6.1f ns/message\n",
	       (double)t_gate / (N_MSGS * (double)ROUNDS));
	printf("  ratio gate/baseline         %6.1f   (checksum %llu)\n",
	       (double)t_gate / (double)(t_base ? t_base : 1), (unsigned long long)sink % 7);
	warmup_gate_destroy(g);
	warmup_free(wc);
	config_free(cfg);
	return 0;
}
