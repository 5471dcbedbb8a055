/*
 * fuzz_sink_rules.c — drives the sluice-sink rules parser (bench/sink_rules.c)
 * with arbitrary bytes; when a rule set parses, every query runs against a
 * few fixed contexts so the decision code sees fuzzed rules too.
 */
#include "sink_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void query(struct sink_rules *r, const struct sink_match *m,
		  const struct sockaddr *src, uint64_t now)
{
	char line[SINK_REPLY_MAX];
	uint64_t rng = 7;

	sink_rules_greeting(r, m, line, sizeof line);
	sink_rules_delay_ms(r, m);
	sink_rules_disconnect_after(r, m);
	sink_rules_max_msgs(r, m);
	sink_rules_rcpt(r, m, "bob@example.test", 16, &rng, line, sizeof line);
	sink_rules_rcpt(r, m, "nobody", 6, &rng, line, sizeof line);
	sink_rules_rcpt(r, m, "a@b", 3, &rng, line, 0);
	for (int i = 0; i < 4; i++)
		sink_rules_data_end(r, m, src, now + (uint64_t)i * 700, line,
				    sizeof line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in local = { .sin_family = AF_INET,
				     .sin_port = htons(25) };
	struct sockaddr_in6 src = { .sin6_family = AF_INET6 };
	struct sink_match m = { 0 };
	struct sink_rules *r = NULL;
	char err[256];

	if (sink_rules_parse((const char *)data, size, "fuzz", &r, err,
			     sizeof err))
		return 0;
	inet_pton(AF_INET, "198.51.100.7", &local.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &src.sin6_addr);
	query(r, &m, NULL, 0);
	m.domain = "example.test";
	m.domain_len = strlen(m.domain);
	m.local = (const struct sockaddr *)&local;
	query(r, &m, (const struct sockaddr *)&src, 1000);
	m.domain = "mx.gmail.test";
	m.domain_len = strlen(m.domain);
	query(r, &m, (const struct sockaddr *)&local, 5000);
	sink_rules_destroy(r);
	return 0;
}
