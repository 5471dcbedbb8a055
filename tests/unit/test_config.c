/* test_config.c — the strict YAML configuration parser (common/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

/* The smallest valid configuration: one pool with one IP. */
#define POOL "pools:\n  - name: p\n    ips:\n      - {address: 198.51.100.10, ehlo: mta.example.com}\n"

static struct sl_config *load_ok(const char *yaml)
{
	struct sl_config *cfg = NULL;
	char err[512] = "";
	int rc = config_load_string("t.yaml", yaml, strlen(yaml), &cfg, err, sizeof(err));

	if (rc != 0)
		fail_msg("unexpected error %d: %s\n--- yaml:\n%s", rc, err, yaml);
	assert_non_null(cfg);
	return cfg;
}

static void sin4(struct sockaddr_in *sin, const char *ip, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void sin6(struct sockaddr_in6 *sin, const char *ip, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin6_family = AF_INET6;
	sin->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin->sin6_addr), 1);
}

static void assert_v4(const struct sockaddr_storage *ss, socklen_t len, const char *ip, uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), port);
	assert_string_equal(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)), ip);
}

static void assert_v6(const struct sockaddr_storage *ss, socklen_t len, const char *ip, uint16_t port)
{
	const struct sockaddr_in6 *sin = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(sin->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin->sin6_port), port);
	assert_string_equal(inet_ntop(AF_INET6, &sin->sin6_addr, buf, sizeof(buf)), ip);
}

static void test_shipped_config(void **state)
{
	struct sl_config *cfg = NULL;
	char err[512] = "";
	struct sockaddr_in a;
	int rc;

	(void)state;
	rc = config_load("configs/sluice.yaml", &cfg, err, sizeof(err));
	if (rc)
		fail_msg("configs/sluice.yaml (run from the repo root): %d %s", rc, err);
	assert_string_equal(cfg->path, "configs/sluice.yaml");
	assert_string_equal(cfg->hostname, "sluice.demo.test");

	assert_int_equal(cfg->n_listeners, 1);
	assert_string_equal(cfg->listeners[0].name, "submission");
	assert_v4(&cfg->listeners[0].addr, cfg->listeners[0].addr_len, "127.0.0.1", 2525);
	assert_string_equal(cfg->listeners[0].tls_cert, "/var/lib/sluice/tls/cert.pem");
	assert_string_equal(cfg->listeners[0].tls_key, "/var/lib/sluice/tls/key.pem");
	assert_int_equal(cfg->listeners[0].n_relay_networks, 1);
	sin4(&a, "127.9.8.7", 0);
	assert_true(cidr_contains(&cfg->listeners[0].relay_networks[0], (struct sockaddr *)&a));
	assert_string_equal(cfg->listeners[0].relay_tenant, "local");

	assert_int_equal(cfg->n_tenants, 3);
	assert_string_equal(cfg->tenants[0].name, "local");
	assert_null(cfg->tenants[0].password_hash);
	assert_string_equal(cfg->tenants[1].name, "acme");
	assert_int_equal(cfg->tenants[1].stream, SL_STREAM_TRANSACTIONAL);
	assert_non_null(cfg->tenants[1].password_hash);
	assert_memory_equal(cfg->tenants[1].password_hash, "$pbkdf2-sha256$", 15);
	assert_string_equal(cfg->tenants[2].name, "globex");
	assert_string_equal(cfg->tenants[2].username, "globex");
	assert_string_equal(cfg->tenants[2].pool, "default");
	assert_int_equal(cfg->tenants[2].stream, SL_STREAM_MARKETING);

	assert_int_equal(cfg->n_pools, 1);
	assert_string_equal(cfg->pools[0].name, "default");
	assert_int_equal(cfg->pools[0].n_ips, 2);
	assert_v4(&cfg->pools[0].ips[0].addr, cfg->pools[0].ips[0].addr_len, "198.51.100.10", 0);
	assert_string_equal(cfg->pools[0].ips[0].ehlo, "mta1.demo.test");
	assert_v4(&cfg->pools[0].ips[1].addr, cfg->pools[0].ips[1].addr_len, "198.51.100.11", 0);
	assert_string_equal(cfg->pools[0].ips[1].ehlo, "mta2.demo.test");

	assert_int_equal(cfg->n_routes, 0);
	assert_null(config_route_for(cfg, "example.com"));
	assert_int_equal(cfg->dns.n_servers, 1);
	assert_v4(&cfg->dns.servers[0], cfg->dns.server_lens[0], "198.51.100.53", 53);
	assert_string_equal(cfg->spool.path, "/var/lib/sluice/spool");
	assert_string_equal(cfg->events_path, "/var/log/sluice/events.jsonl");
	assert_v4(&cfg->metrics_addr, cfg->metrics_addr_len, "127.0.0.1", 9025);
	config_free(cfg);
}

static void test_defaults(void **state)
{
	struct sl_config *cfg = load_ok("tenants:\n  - name: t\n" POOL);

	(void)state;
	assert_non_null(cfg->hostname); /* gethostname() */
	assert_true(cfg->hostname[0] != '\0');
	assert_int_equal(cfg->n_listeners, 0);
	assert_string_equal(cfg->tenants[0].username, "t");
	assert_string_equal(cfg->tenants[0].pool, "p");
	assert_null(cfg->tenants[0].password_hash);
	assert_int_equal(cfg->tenants[0].stream, SL_STREAM_TRANSACTIONAL);

	assert_int_equal(cfg->limits.max_line_length, 1000);
	assert_int_equal(cfg->limits.max_message_size, 25 * 1024 * 1024);
	assert_int_equal(cfg->limits.max_recipients, 1000);
	assert_int_equal(cfg->limits.max_errors, 10);
	assert_int_equal(cfg->limits.max_clients, 10000);
	assert_int_equal(cfg->limits.command_timeout_ms, 5 * 60 * 1000);
	assert_int_equal(cfg->limits.data_timeout_ms, 10 * 60 * 1000);

	assert_int_equal(cfg->delivery.n_retry, 7);
	assert_int_equal(cfg->delivery.retry_ms[0], 60 * 1000);
	assert_int_equal(cfg->delivery.retry_ms[6], 4 * 3600 * 1000);
	assert_int_equal(cfg->delivery.max_age_ms, 5ull * 86400 * 1000);
	assert_int_equal(cfg->delivery.connect_timeout_ms, 30 * 1000);
	assert_int_equal(cfg->delivery.command_timeout_ms, 5 * 60 * 1000);
	assert_int_equal(cfg->delivery.max_connections_per_domain, 32);
	assert_int_equal(cfg->delivery.max_messages_per_connection, 100);
	assert_int_equal(cfg->delivery.max_connections, 2000);
	assert_true(cfg->delivery.dsn);
	assert_int_equal(cfg->delivery.n_require_tls_domains, 0);
	assert_false(cfg->delivery.tls_verify);
	assert_false(cfg->delivery.dane);
	assert_null(cfg->dns.trust_anchor_file);
	assert_int_equal(cfg->delivery.n_verify_tls_domains, 0);
	assert_int_equal(cfg->delivery.n_no_tls_domains, 0);
	assert_null(cfg->delivery.tls_ca_file);
	assert_false(cfg->delivery.mta_sts);

	assert_string_equal(cfg->spool.path, "/var/lib/sluice/spool");
	assert_int_equal(cfg->spool.map_size, 8ull << 30);
	assert_int_equal(cfg->spool.commit_batch, 1024);
	assert_true(cfg->spool.sync);
	assert_int_equal(cfg->dns.n_servers, 0);
	assert_string_equal(cfg->events_path, "/var/log/sluice/events.jsonl");
	assert_v4(&cfg->metrics_addr, cfg->metrics_addr_len, "127.0.0.1", 9025);
	config_free(cfg);

	/* config_defaults() alone, freed by config_free(). */
	cfg = calloc(1, sizeof(*cfg));
	assert_non_null(cfg);
	config_defaults(cfg);
	assert_int_equal(cfg->n_pools, 0);
	assert_int_equal(cfg->limits.max_recipients, 1000);
	config_free(cfg);
	config_free(NULL);
}

static void test_values(void **state)
{
	struct sl_config *cfg = load_ok(
		"hostname: mx.example.org\n"
		"listeners:\n"
		"  - name: v6\n"
		"    address: '[::1]:587'\n"
		"    relay_networks: [10.0.0.0/8, 'fd00::/8', 192.168.1.7]\n"
		"    relay_tenant: t\n"
		"    tls: {cert: /c.pem, key: /k.pem}\n"
		"tenants:\n"
		"  - {name: t, username: t@example.org, password_hash: x, stream: marketing, pool: q}\n"
		POOL
		"  - name: q\n"
		"    ips:\n"
		"      - address: 2001:db8::10\n"
		"        ehlo: mta6.example.com\n"
		"routes:\n"
		"  - {domain: Example.COM, host: 203.0.113.25, port: 2525, require_tls: yes}\n"
		"  - {domain: '*', host: smarthost.example.net}\n"
		"limits:\n"
		"  max_line_length: 4k\n"
		"  max_message_size: 1G\n"
		"  max_recipients: 5\n"
		"  command_timeout: 250ms\n"
		"  data_timeout: 90\n"
		"delivery:\n"
		"  retry_schedule: [1s, 2m]\n"
		"  max_age: 2h\n"
		"  dsn: no\n"
		"  tls_verify: True\n"
		"  require_tls_domains: [bank.example]\n"
		"spool: {path: /tmp/s, map_size: 64M, commit_batch: 1, sync: false}\n"
		"dns:\n"
		"  servers: [203.0.113.53, '203.0.113.54:5353', '[2001:db8::53]:54', '2001:db8::35', '[2001:db8::36]']\n"
		"events: {path: '-'}\n"
		"metrics: {address: '[::]:9100'}\n");

	(void)state;
	assert_string_equal(cfg->hostname, "mx.example.org");
	assert_v6(&cfg->listeners[0].addr, cfg->listeners[0].addr_len, "::1", 587);
	assert_int_equal(cfg->listeners[0].n_relay_networks, 3);
	assert_int_equal(cfg->listeners[0].relay_networks[0].family, AF_INET);
	assert_int_equal(cfg->listeners[0].relay_networks[0].prefix, 8);
	assert_int_equal(cfg->listeners[0].relay_networks[1].family, AF_INET6);
	assert_int_equal(cfg->listeners[0].relay_networks[1].prefix, 8);
	assert_int_equal(cfg->listeners[0].relay_networks[2].prefix, 32);
	assert_string_equal(cfg->listeners[0].tls_key, "/k.pem");
	assert_string_equal(cfg->tenants[0].username, "t@example.org");
	assert_int_equal(cfg->tenants[0].stream, SL_STREAM_MARKETING);
	assert_string_equal(cfg->tenants[0].pool, "q");
	assert_v6(&cfg->pools[1].ips[0].addr, cfg->pools[1].ips[0].addr_len, "2001:db8::10", 0);
	assert_int_equal(cfg->routes[0].port, 2525);
	assert_true(cfg->routes[0].require_tls);
	assert_int_equal(cfg->routes[1].port, 25);
	assert_false(cfg->routes[1].require_tls);
	assert_int_equal(cfg->limits.max_line_length, 4096);
	assert_int_equal(cfg->limits.max_message_size, 1ull << 30);
	assert_int_equal(cfg->limits.max_recipients, 5);
	assert_int_equal(cfg->limits.command_timeout_ms, 250);
	assert_int_equal(cfg->limits.data_timeout_ms, 90000);
	assert_int_equal(cfg->delivery.n_retry, 2);
	assert_int_equal(cfg->delivery.retry_ms[0], 1000);
	assert_int_equal(cfg->delivery.retry_ms[1], 120000);
	assert_int_equal(cfg->delivery.max_age_ms, 7200000);
	assert_false(cfg->delivery.dsn);
	assert_true(cfg->delivery.tls_verify);
	assert_int_equal(cfg->delivery.n_require_tls_domains, 1);
	assert_string_equal(cfg->delivery.require_tls_domains[0], "bank.example");
	assert_string_equal(cfg->spool.path, "/tmp/s");
	assert_int_equal(cfg->spool.map_size, 64 << 20);
	assert_int_equal(cfg->spool.commit_batch, 1);
	assert_false(cfg->spool.sync);
	assert_int_equal(cfg->dns.n_servers, 5);
	assert_v4(&cfg->dns.servers[0], cfg->dns.server_lens[0], "203.0.113.53", 53);
	assert_v4(&cfg->dns.servers[1], cfg->dns.server_lens[1], "203.0.113.54", 5353);
	assert_v6(&cfg->dns.servers[2], cfg->dns.server_lens[2], "2001:db8::53", 54);
	assert_v6(&cfg->dns.servers[3], cfg->dns.server_lens[3], "2001:db8::35", 53);
	assert_v6(&cfg->dns.servers[4], cfg->dns.server_lens[4], "2001:db8::36", 53);
	assert_string_equal(cfg->events_path, "-");
	assert_v6(&cfg->metrics_addr, cfg->metrics_addr_len, "::", 9100);

	assert_ptr_equal(config_tenant_by_user(cfg, "t@example.org"), &cfg->tenants[0]);
	assert_null(config_tenant_by_user(cfg, "t"));
	assert_ptr_equal(config_tenant_by_name(cfg, "t"), &cfg->tenants[0]);
	assert_null(config_tenant_by_name(cfg, "T"));
	assert_ptr_equal(config_pool_by_name(cfg, "q"), &cfg->pools[1]);
	assert_null(config_pool_by_name(cfg, "nope"));
	config_free(cfg);
}

static void test_route_for(void **state)
{
	struct sl_config *cfg = load_ok(POOL "routes:\n"
					"  - {domain: example.com, host: 203.0.113.1}\n"
					"  - {domain: '*', host: 203.0.113.2}\n"
					"  - {domain: sub.example.com, host: 203.0.113.3}\n");

	(void)state;
	assert_ptr_equal(config_route_for(cfg, "example.com"), &cfg->routes[0]);
	assert_ptr_equal(config_route_for(cfg, "EXAMPLE.Com"), &cfg->routes[0]);
	assert_ptr_equal(config_route_for(cfg, "example.com."), &cfg->routes[0]);
	assert_ptr_equal(config_route_for(cfg, "sub.example.com"), &cfg->routes[2]);
	assert_ptr_equal(config_route_for(cfg, "other.example.com"), &cfg->routes[1]);
	assert_ptr_equal(config_route_for(cfg, "example.co"), &cfg->routes[1]);
	assert_null(config_route_for(cfg, NULL));
	config_free(cfg);

	cfg = load_ok(POOL "routes:\n  - {domain: example.com, host: 203.0.113.1}\n");
	assert_ptr_equal(config_route_for(cfg, "example.com"), &cfg->routes[0]);
	assert_null(config_route_for(cfg, "example.net"));
	assert_null(config_route_for(cfg, "www.example.com"));
	config_free(cfg);
}

static void test_parse_helpers(void **state)
{
	struct sl_cidr n;
	uint64_t v;

	(void)state;
	assert_int_equal(config_parse_duration("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(config_parse_duration("30s", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(config_parse_duration("5m", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(config_parse_duration("2h", &v), 0);
	assert_int_equal(v, 7200000);
	assert_int_equal(config_parse_duration("5d", &v), 0);
	assert_int_equal(v, 432000000);
	assert_int_equal(config_parse_duration("42", &v), 0);
	assert_int_equal(v, 42000);
	assert_int_equal(config_parse_duration("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_duration("", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("s", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("1.5h", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("-1s", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("5 m", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("5M", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("1w", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("5sec", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("99999999999999999d", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration("99999999999999999999", &v), SL_ECONFIG);
	assert_int_equal(config_parse_duration(NULL, &v), SL_ECONFIG);

	assert_int_equal(config_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(config_parse_size("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(config_parse_size("25M", &v), 0);
	assert_int_equal(v, 25ull << 20);
	assert_int_equal(config_parse_size("1G", &v), 0);
	assert_int_equal(v, 1ull << 30);
	assert_int_equal(config_parse_size("2T", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(config_parse_size("1KB", &v), SL_ECONFIG);
	assert_int_equal(config_parse_size("1.5G", &v), SL_ECONFIG);
	assert_int_equal(config_parse_size("G", &v), SL_ECONFIG);
	assert_int_equal(config_parse_size("99999999999T", &v), SL_ECONFIG);

	assert_int_equal(config_parse_cidr("127.0.0.0/8", &n), 0);
	assert_int_equal(n.family, AF_INET);
	assert_int_equal(n.prefix, 8);
	assert_int_equal(n.addr[0], 127);
	assert_int_equal(config_parse_cidr("0.0.0.0/0", &n), 0);
	assert_int_equal(n.prefix, 0);
	assert_int_equal(config_parse_cidr("10.1.2.3", &n), 0);
	assert_int_equal(n.prefix, 32);
	assert_int_equal(config_parse_cidr("::1/128", &n), 0);
	assert_int_equal(n.family, AF_INET6);
	assert_int_equal(n.addr[15], 1);
	assert_int_equal(config_parse_cidr("2001:db8::/32", &n), 0);
	assert_int_equal(n.prefix, 32);
	assert_int_equal(config_parse_cidr("127.0.0.1/8", &n), SL_ECONFIG); /* host bits */
	assert_int_equal(config_parse_cidr("10.0.0.0/33", &n), SL_ECONFIG);
	assert_int_equal(config_parse_cidr("::/129", &n), SL_ECONFIG);
	assert_int_equal(config_parse_cidr("10.0.0.0/", &n), SL_ECONFIG);
	assert_int_equal(config_parse_cidr("10.0.0.0/-1", &n), SL_ECONFIG);
	assert_int_equal(config_parse_cidr("10.0.0/8", &n), SL_ECONFIG);
	assert_int_equal(config_parse_cidr("localhost/8", &n), SL_ECONFIG);
	assert_int_equal(config_parse_cidr("", &n), SL_ECONFIG);
}

static void test_cidr_contains(void **state)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sl_cidr net;

	(void)state;
	assert_int_equal(config_parse_cidr("198.51.100.0/24", &net), 0);
	sin4(&a4, "198.51.100.77", 25);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a4));
	sin4(&a4, "198.51.101.77", 25);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a4));
	sin6(&a6, "::ffff:198.51.100.1", 25); /* v4-mapped, from a dual-stack socket */
	assert_true(cidr_contains(&net, (struct sockaddr *)&a6));
	sin6(&a6, "::ffff:198.51.99.1", 25);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a6));
	sin6(&a6, "2001:db8::c633:6401", 25); /* same low bits, not mapped */
	assert_false(cidr_contains(&net, (struct sockaddr *)&a6));

	assert_int_equal(config_parse_cidr("10.0.0.0/13", &net), 0); /* non-octet prefix */
	sin4(&a4, "10.7.255.255", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a4));
	sin4(&a4, "10.8.0.0", 0);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a4));

	assert_int_equal(config_parse_cidr("0.0.0.0/0", &net), 0);
	sin4(&a4, "203.0.113.9", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a4));

	assert_int_equal(config_parse_cidr("127.0.0.1", &net), 0);
	sin4(&a4, "127.0.0.1", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a4));
	sin4(&a4, "127.0.0.2", 0);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a4));

	assert_int_equal(config_parse_cidr("2001:db8:8000::/33", &net), 0);
	sin6(&a6, "2001:db8:8000::1", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a6));
	sin6(&a6, "2001:db8:ffff:ffff::1", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a6));
	sin6(&a6, "2001:db8:7fff::1", 0);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a6));
	sin4(&a4, "32.1.13.184", 0);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a4));

	assert_int_equal(config_parse_cidr("::1/128", &net), 0);
	sin6(&a6, "::1", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a6));
	sin6(&a6, "::2", 0);
	assert_false(cidr_contains(&net, (struct sockaddr *)&a6));

	/* A v4 peer is matched against v6 networks as ::ffff:a.b.c.d. */
	assert_int_equal(config_parse_cidr("::ffff:0:0/96", &net), 0);
	sin4(&a4, "203.0.113.9", 0);
	assert_true(cidr_contains(&net, (struct sockaddr *)&a4));

	assert_false(cidr_contains(NULL, (struct sockaddr *)&a4));
	assert_false(cidr_contains(&net, NULL));
}

struct bad_case {
	const char *yaml;
	const char *msg; /* the whole expected error message */
};

static const struct bad_case bad_cases[] = {
	/* syntax errors point at libyaml's problem mark */
	{ "a: [1, 2\n", "t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 1)" },
	{ "a: b: c\n", "t.yaml:1:5: YAML syntax error: mapping values are not allowed in this context" },
	{ "a:\n\tb: 1\n", "t.yaml:2:1: YAML syntax error: found character that cannot start any token (while scanning for the next token at line 2)" },
	{ "a: \"\x01\"\n", "t.yaml:1:5: invalid input: control characters are not allowed (#1)" },
	{ "x: &a 1\ny: *a\n", "t.yaml:2:4: aliases (*a) are not supported; write the value out" },
	{ "a: 1\n---\nb: 2\n", "t.yaml:2:1: a second YAML document; the configuration is one document" },
	{ "[a]\n", "t.yaml:1:1: expected a mapping (key: value lines), got a sequence" },
	/* required keys */
	{ "", "t.yaml:1:1: missing required key 'pools' (at least one pool is required)" },
	{ "hostname: a.example\n", "t.yaml:1:1: missing required key 'pools' (at least one pool is required)" },
	{ "pools: []\n", "t.yaml:1:8: pools: at least one pool is required" },
	{ "pools:\n", "t.yaml:1:7: pools: at least one pool is required" },
	{ "pools:\n  - name: p\n", "t.yaml:2:5: pools[0]: missing required key 'ips'" },
	{ "pools:\n  - name: p\n    ips: []\n", "t.yaml:3:10: pools[0].ips: a pool needs at least one source IP" },
	{ "pools:\n  - ips: [{address: 198.51.100.1, ehlo: a.b}]\n", "t.yaml:2:5: pools[0]: missing required key 'name'" },
	{ "pools:\n  - name: p\n    ips: [{ehlo: a.b}]\n", "t.yaml:3:11: pools[0].ips[0]: missing required key 'address'" },
	{ "pools:\n  - name: p\n    ips: [{address: 198.51.100.1}]\n", "t.yaml:3:11: pools[0].ips[0]: missing required key 'ehlo'" },
	{ POOL "listeners:\n  - address: 127.0.0.1:25\n", "t.yaml:6:5: listeners[0]: missing required key 'name'" },
	{ POOL "listeners:\n  - name: l\n", "t.yaml:6:5: listeners[0]: missing required key 'address'" },
	{ POOL "tenants:\n  - stream: marketing\n", "t.yaml:6:5: tenants[0]: missing required key 'name'" },
	{ POOL "routes:\n  - host: 203.0.113.1\n", "t.yaml:6:5: routes[0]: missing required key 'domain'" },
	{ POOL "routes:\n  - domain: example.com\n", "t.yaml:6:5: routes[0]: missing required key 'host'" },
	/* unknown and duplicate keys */
	{ POOL "listner: 1\n", "t.yaml:5:1: unknown key 'listner' (did you mean 'listeners'?)" },
	{ POOL "listeners:\n  - name: l\n    adress: 127.0.0.1:25\n", "t.yaml:7:5: unknown key 'adress' in listeners[0] (did you mean 'address'?)" },
	{ POOL "frobnicate: 1\n", "t.yaml:5:1: unknown key 'frobnicate' (expected one of: hostname, listeners, tenants, pools, routes, limits, delivery, spool, dns, events, metrics, dkim, shaping, warmup, control, dpdk, bounces, sender_auth, link_check, dnsbl)" },
	/* DANE needs a trust anchor; its switch is off or on */
	{ POOL "delivery:\n  dane: on\n", "t.yaml:6:9: delivery.dane: on needs dns.trust_anchor_file (a validating resolver's trust anchor, e.g. /usr/share/dns/root.key)" },
	{ POOL "delivery:\n  dane: yes\n", "t.yaml:6:9: delivery.dane: 'yes' is not off or on" },
	{ POOL "dns:\n  trust_anchor_file: \"\"\n", "t.yaml:6:22: dns.trust_anchor_file: must not be empty" },
	/* bounces: and inbound listeners */
	{ POOL "control: {store: /tmp/x}\nbounces: {fbl_address: x@y.test}\n", "t.yaml:6:10: bounces: missing required key 'return_path_domain'" },
	{ POOL "bounces: {return_path_domain: b.test}\n", "t.yaml:5:10: bounces needs the control section (suppression lists live in its store)" },
	{ POOL "listeners:\n  - {name: i, address: 127.0.0.1:25, inbound: true}\n", "t.yaml:6:47: listeners[0].inbound: an inbound listener needs the bounces section (what it accepts)" },
	{ POOL "control: {store: /tmp/x}\nbounces: {return_path_domain: b.test, fbl_address: nope}\n", "t.yaml:6:52: bounces.fbl_address: not an address (local@domain)" },
	{ POOL "warmup: {schedules: w.yaml, test_clock_scale: 3600}\n", "t.yaml:5:47: warmup.test_clock_scale: test_clock_scale is for tests only (set SLUICE_TEST_CLOCK=1 in the environment to allow it)" },
	{ POOL "control: {api: {tls_cert: /c.pem}}\n", "t.yaml:5:16: control.api: tls_cert and tls_key go together (both or neither)" },
	{ POOL "control: {api: {address: 'nowhere'}}\n", "t.yaml:5:26: control.api.address: 'nowhere': not an IP address (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)" },
	{ POOL "control: {stor: /x}\n", "t.yaml:5:11: unknown key 'stor' in control (did you mean 'store'?)" },
	{ POOL "shaping: {rulez: x}\n", "t.yaml:5:11: unknown key 'rulez' in shaping (did you mean 'rules'?)" },
	{ POOL "dkim:\n  - {domain: a.test, selector: s1}\n", "t.yaml:6:5: dkim[0]: missing required key 'key'" },
	{ POOL "dkim:\n  - {domain: a.test, selector: s1, key: /k, algorithm: rsa}\n", "t.yaml:6:56: dkim[0].algorithm: 'rsa' is not a DKIM algorithm (expected rsa-sha256 or ed25519-sha256)" },
	{ POOL "max_age: 1d\n", "t.yaml:5:1: unknown key 'max_age' ('max_age' belongs under 'delivery')" },
	{ POOL "limits: {max_errors: 1, max_errors: 2}\n", "t.yaml:5:25: duplicate key 'max_errors' in limits (first at line 5)" },
	{ "hostname: a.b\n" POOL "hostname: c.d\n", "t.yaml:6:1: duplicate key 'hostname' (first at line 1)" },
	{ POOL "limits: {[a]: 1}\n", "t.yaml:5:10: limits: keys must be plain names, got a sequence" },
	/* wrong node types */
	{ POOL "limits: 5\n", "t.yaml:5:9: limits: expected a mapping (key: value lines), got a single value" },
	{ POOL "listeners: {name: l}\n", "t.yaml:5:12: listeners: expected a sequence (a list of '- item' lines or [a, b]), got a mapping" },
	{ POOL "hostname: [a]\n", "t.yaml:5:11: hostname: expected a host name, got a sequence" },
	{ POOL "hostname:\n", "t.yaml:5:10: hostname: expected a host name, got nothing" },
	{ POOL "limits: {max_errors: {a: 1}}\n", "t.yaml:5:22: limits.max_errors: expected a number, got a mapping" },
	/* numbers, durations, sizes, booleans, enums */
	{ POOL "limits: {max_errors: ten}\n", "t.yaml:5:22: limits.max_errors: 'ten' is not a whole number (expected 1-1000)" },
	{ POOL "limits: {max_errors: -1}\n", "t.yaml:5:22: limits.max_errors: '-1' is not a whole number (expected 1-1000)" },
	{ POOL "limits: {max_errors: 0}\n", "t.yaml:5:22: limits.max_errors: 0 is out of range (expected 1-1000)" },
	{ POOL "limits: {max_recipients: 99999999999999999999999}\n", "t.yaml:5:26: limits.max_recipients: '99999999999999999999999' is not a whole number (expected 1-1000000)" },
	{ POOL "limits:\n  command_timeout: 5 min\n", "t.yaml:6:20: limits.command_timeout: '5 min' is not a valid duration (expected a duration like 30s, 5m, 2h)" },
	{ POOL "limits:\n  data_timeout: 0s\n", "t.yaml:6:17: limits.data_timeout: 0s is out of range (expected 1ms-1d)" },
	{ POOL "delivery:\n  retry_schedule: [1m, 1x]\n", "t.yaml:6:24: delivery.retry_schedule[1]: '1x' is not a valid duration (expected a duration like 30s, 5m, 2h)" },
	{ POOL "delivery:\n  retry_schedule: []\n", "t.yaml:6:19: delivery.retry_schedule: needs at least one interval (the last one repeats)" },
	{ POOL "limits:\n  max_message_size: 25MB\n", "t.yaml:6:21: limits.max_message_size: '25MB' is not a valid size (expected a size like 512, 64k, 25M, 1G)" },
	{ POOL "limits:\n  max_line_length: 80\n", "t.yaml:6:20: limits.max_line_length: 80 is out of range (expected 1000-1M)" },
	{ POOL "spool:\n  map_size: 128T\n", "t.yaml:6:13: spool.map_size: 128T is out of range (expected 1M-64T)" },
	{ POOL "spool:\n  sync: maybe\n", "t.yaml:6:9: spool.sync: 'maybe' is not a boolean (expected true or false)" },
	{ POOL "tenants:\n  - name: t\n    stream: bulk\n", "t.yaml:7:13: tenants[0].stream: 'bulk' is not a stream (expected transactional or marketing)" },
	{ POOL "routes:\n  - {domain: a.example, host: h.example, port: 0}\n", "t.yaml:6:48: routes[0].port: 0 is out of range (expected 1-65535)" },
	/* addresses and networks */
	{ POOL "listeners:\n  - name: l\n    address: 127.0.0.1\n", "t.yaml:7:14: listeners[0].address: '127.0.0.1': missing port (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)" },
	{ POOL "listeners:\n  - name: l\n    address: localhost:25\n", "t.yaml:7:14: listeners[0].address: 'localhost:25': not an IP address (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)" },
	{ POOL "listeners:\n  - name: l\n    address: 127.0.0.1:70000\n", "t.yaml:7:14: listeners[0].address: '127.0.0.1:70000': bad port (expected 1-65535) (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)" },
	{ POOL "metrics:\n  address: ::1:9025\n", "t.yaml:6:12: metrics.address: '::1:9025': missing port (write IPv6 as [addr]:port) (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)" },
	{ POOL "metrics:\n  address: '[::1]'\n", "t.yaml:6:12: metrics.address: '[::1]': missing port (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)" },
	{ "pools:\n  - name: p\n    ips:\n      - {address: 198.51.100.10:25, ehlo: a.b}\n", "t.yaml:4:19: pools[0].ips[0].address: '198.51.100.10:25' is not an IP address (a source address takes no port or brackets, e.g. 198.51.100.10 or 2001:db8::10)" },
	{ "pools:\n  - name: p\n    ips:\n      - {address: 0.0.0.0, ehlo: a.b}\n", "t.yaml:4:19: pools[0].ips[0].address: '0.0.0.0' is the unspecified address; a source address must be one of this host's addresses" },
	{ "pools:\n  - name: p\n    ips:\n      - {address: 198.51.100.1, ehlo: 'not a name'}\n", "t.yaml:4:39: pools[0].ips[0].ehlo: 'not a name' is not a valid host name (expected something like mta1.example.com)" },
	{ POOL "dns:\n  servers: [1.2.3]\n", "t.yaml:6:13: dns.servers[0]: '1.2.3': not an IP address (expected IP, IPv4:port or [IPv6]:port)" },
	{ POOL "tenants: [{name: t}]\nlisteners:\n  - name: l\n    address: 127.0.0.1:25\n    relay_tenant: t\n    relay_networks: [127.0.0.1/8]\n",
	  "t.yaml:10:22: listeners[0].relay_networks[0]: '127.0.0.1/8' has host bits set (did you mean 127.0.0.0/8?)" },
	{ POOL "tenants: [{name: t}]\nlisteners:\n  - name: l\n    address: 127.0.0.1:25\n    relay_tenant: t\n    relay_networks: [10.0.0.0/40]\n",
	  "t.yaml:10:22: listeners[0].relay_networks[0]: '10.0.0.0/40': bad prefix length (expected /0-/32) (expected a network like 127.0.0.0/8 or ::1/128)" },
	/* cross-checks */
	{ POOL "listeners:\n  - name: l\n    address: 127.0.0.1:25\n    relay_networks: [127.0.0.0/8]\n",
	  "t.yaml:8:5: listeners[0]: relay_networks needs relay_tenant (the tenant that unauthenticated relays send as)" },
	{ POOL "tenants: [{name: local}]\nlisteners:\n  - name: l\n    address: 127.0.0.1:25\n    relay_networks: [127.0.0.0/8]\n    relay_tenant: locl\n",
	  "t.yaml:10:19: listeners[0].relay_tenant: no tenant named 'locl' (did you mean 'local'?)" },
	{ POOL "listeners:\n  - name: l\n    address: 127.0.0.1:25\n    relay_networks: [127.0.0.0/8]\n    relay_tenant: x\n",
	  "t.yaml:9:19: listeners[0].relay_tenant: no tenant named 'x' (no tenants are defined)" },
	{ POOL "tenants:\n  - name: t\n    pool: bulk\n", "t.yaml:7:11: tenants[0].pool: no pool named 'bulk' (defined pools: p)" },
	{ POOL "listeners:\n  - name: l\n    address: 127.0.0.1:25\n    tls: {cert: /c.pem}\n", "t.yaml:8:10: listeners[0].tls: 'cert' is set but 'key' is missing" },
	{ POOL "listeners:\n  - name: l\n    address: 127.0.0.1:25\n    tls:\n      key: /k.pem\n", "t.yaml:9:7: listeners[0].tls: 'key' is set but 'cert' is missing" },
	/* duplicate names */
	{ POOL "  - name: p\n    ips: [{address: 198.51.100.2, ehlo: a.b}]\n", "t.yaml:5:11: pools[1].name: duplicate pool name 'p' (first at line 2)" },
	{ POOL "tenants:\n  - name: a\n  - name: a\n", "t.yaml:7:11: tenants[1].name: duplicate tenant name 'a' (first at line 6)" },
	{ POOL "tenants:\n  - name: a\n  - {name: b, username: a}\n", "t.yaml:7:25: tenants[1].username: username 'a' is already used by tenant 'a' (line 6)" },
	{ POOL "listeners:\n  - {name: l, address: '127.0.0.1:25'}\n  - {name: l, address: '127.0.0.1:26'}\n", "t.yaml:7:12: listeners[1].name: duplicate listener name 'l' (first at line 6)" },
	{ POOL "listeners:\n  - {name: l, address: '127.0.0.1:25'}\n  - {name: m, address: '127.0.0.1:25'}\n", "t.yaml:7:24: listeners[1].address: listener 'l' already uses this address (line 6)" },
	{ POOL "routes:\n  - {domain: a.example, host: h.example}\n  - {domain: A.example, host: h.example}\n", "t.yaml:7:14: routes[1].domain: duplicate route for 'A.example' (first at line 6)" },
	{ "pools:\n  - name: p\n    ips:\n      - {address: 198.51.100.1, ehlo: a.b}\n      - {address: 198.51.100.1, ehlo: c.d}\n", "t.yaml:5:19: pools[0].ips[1].address: duplicate address in this pool (first at line 4)" },
	/* names and strings */
	{ POOL "tenants: [{name: 'a b'}]\n", "t.yaml:5:18: tenants[0].name: 'a b' is not a valid name (1-64 letters, digits, '.', '_' or '-')" },
	{ POOL "spool: {path: ''}\n", "t.yaml:5:15: spool.path: must not be empty" },
	{ POOL "spool: {path: \"a\\0b\"}\n", "t.yaml:5:15: spool.path: contains a NUL character" },
	{ POOL "routes: [{domain: '*.example.com', host: h.example}]\n", "t.yaml:5:19: routes[0].domain: '*.example.com' is not a domain (only exact domains and \"*\" are supported)" },
	/* the dpdk section and pools on it */
	{ POOL "dpdk: {ports: 1}\n", "t.yaml:5:8: unknown key 'ports' in dpdk (did you mean 'port'?)" },
	{ POOL "dpdk: {eal_args: []}\n", "t.yaml:5:18: dpdk.eal_args: needs at least one EAL argument (e.g. [\"-l\", \"1\", \"-a\", \"0000:03:00.0\"])" },
	{ POOL "dpdk: {eal_args: [-l, 1], mtu: 100}\n", "t.yaml:5:32: dpdk.mtu: 100 is out of range (expected 576-9000)" },
	{ POOL "dpdk: {eal_args: [-l, 1], gateway: '2001:db8::1'}\n", "t.yaml:5:36: dpdk.gateway: the DPDK transport is IPv4 only (e.g. 198.51.100.1)" },
	{ POOL "dpdk: {idle_sleep: 2s}\n", "t.yaml:5:20: dpdk.idle_sleep: 2s is out of range (expected 0ms-1s)" },
	{ POOL "dpdk: {port: 'a b'}\n", "t.yaml:5:14: dpdk.port: 'a b' is not a port id or device name (e.g. 0, net_tap0 or 0000:03:00.0)" },
	{ "pools:\n  - name: p\n    transport: kernel\n    ips: [{address: 198.51.100.10, ehlo: a.b}]\n", "t.yaml:3:16: pools[0].transport: 'kernel' is not a transport (expected uring or dpdk)" },
	{ "pools:\n  - name: p\n    transport: dpdk\n    ips: [{address: 198.51.100.10, ehlo: a.b}]\n", "t.yaml:3:16: pools[0].transport: pool 'p' uses the dpdk transport but there is no dpdk.eal_args (see docs/dpdk.md)" },
	{ "pools:\n  - name: p\n    transport: dpdk\n    ips: [{address: '2001:db8::10', ehlo: a.b}]\ndpdk: {eal_args: [-l, 1]}\n", "t.yaml:4:21: pools[0].ips: pool 'p' uses the dpdk transport, which is IPv4 only" },
	{ "pools:\n  - name: k\n    ips: [{address: 198.51.100.10, ehlo: a.b}]\n  - name: p\n    transport: dpdk\n    ips: [{address: 198.51.100.10, ehlo: a.b}]\ndpdk: {eal_args: [-l, 1]}\n", "t.yaml:6:21: pools[1].ips: 198.51.100.10 belongs to the DPDK port (pool 'p') and cannot also be a kernel source IP (pool 'k')" },
	{ "pools:\n  - name: p\n    transport: dpdk\n    ips: [{address: 198.51.100.10, ehlo: a.b}]\ndpdk: {eal_args: [-l, 1], gateway: 203.0.113.1}\n", "t.yaml:5:36: dpdk.gateway: the gateway is not on-link: no dpdk pool IP shares its /24 (dpdk.prefix_len)" },
	{ POOL "routes: [{domain: example.com, host: 'h.example:2525'}]\n", "t.yaml:5:38: routes[0].host: 'h.example:2525' is not an IP address or host name (put the port in 'port'; write IPv6 without brackets)" },
};

static void test_dpdk(void **state)
{
	struct sl_config *cfg = load_ok(POOL);

	(void)state;
	assert_int_equal(cfg->pools[0].transport, SL_TRANSPORT_URING);
	assert_int_equal(cfg->dpdk.n_eal_args, 0);
	assert_null(cfg->dpdk.port);
	assert_int_equal(cfg->dpdk.rx_descriptors, 1024);
	assert_int_equal(cfg->dpdk.tx_descriptors, 1024);
	assert_int_equal(cfg->dpdk.mbufs, 8191);
	assert_int_equal(cfg->dpdk.gateway, 0);
	assert_int_equal(cfg->dpdk.prefix_len, 24);
	assert_int_equal(cfg->dpdk.mtu, 1500);
	assert_int_equal(cfg->dpdk.max_conns, 65536);
	assert_null(cfg->dpdk.capture);
	assert_int_equal(cfg->dpdk.idle_sleep_ms, 0);
	config_free(cfg);

	cfg = load_ok(POOL "  - name: fast\n    transport: dpdk\n"
			   "    ips: [{address: 198.51.100.20, ehlo: fast.example.com}]\n"
			   "dpdk:\n  eal_args: [--no-huge, --vdev=net_tap0]\n  port: net_tap0\n"
			   "  rx_descriptors: 512\n  tx_descriptors: 256\n  mbufs: 4095\n"
			   "  gateway: 198.51.100.1\n  prefix_len: 25\n  mtu: 9000\n"
			   "  max_conns: 1000\n  capture: /tmp/x.pcapng\n  idle_sleep: 2ms\n");
	assert_int_equal(cfg->pools[1].transport, SL_TRANSPORT_DPDK);
	assert_int_equal(cfg->dpdk.n_eal_args, 2);
	assert_string_equal(cfg->dpdk.eal_args[1], "--vdev=net_tap0");
	assert_string_equal(cfg->dpdk.port, "net_tap0");
	assert_int_equal(cfg->dpdk.rx_descriptors, 512);
	assert_int_equal(cfg->dpdk.tx_descriptors, 256);
	assert_int_equal(cfg->dpdk.mbufs, 4095);
	assert_int_equal(cfg->dpdk.gateway, inet_addr("198.51.100.1"));
	assert_int_equal(cfg->dpdk.prefix_len, 25);
	assert_int_equal(cfg->dpdk.mtu, 9000);
	assert_int_equal(cfg->dpdk.max_conns, 1000);
	assert_string_equal(cfg->dpdk.capture, "/tmp/x.pcapng");
	assert_int_equal(cfg->dpdk.idle_sleep_ms, 2);
	config_free(cfg);
}

static void test_abuse_sections(void **state)
{
	struct sl_config *cfg;
	char err[512] = "";

	(void)state;
	cfg = load_ok(POOL);
	assert_false(cfg->link_check.enabled);
	assert_false(cfg->dnsbl.enabled);
	assert_int_equal(cfg->link_check.dns_timeout_ms, 2000);
	assert_int_equal(cfg->dnsbl.interval_ms, 3600 * 1000);
	config_free(cfg);
	cfg = load_ok(POOL "link_check:\n  action: log\n  blocklist: /etc/sluice/links.txt\n"
			   "  uribl_zones: [multi.uribl.test, dbl.test]\n  dns_timeout: 500ms\n"
			   "  max_scan: 64k\n  max_hosts: 5\n"
			   "dnsbl:\n  zones: [zen.test]\n  interval: 10m\n");
	assert_true(cfg->link_check.enabled);
	assert_int_equal(cfg->link_check.action, SL_LINK_LOG);
	assert_string_equal(cfg->link_check.blocklist, "/etc/sluice/links.txt");
	assert_int_equal(cfg->link_check.n_uribl_zones, 2);
	assert_string_equal(cfg->link_check.uribl_zones[1], "dbl.test");
	assert_int_equal(cfg->link_check.dns_timeout_ms, 500);
	assert_int_equal(cfg->link_check.max_scan, 65536);
	assert_int_equal(cfg->link_check.max_hosts, 5);
	assert_true(cfg->dnsbl.enabled);
	assert_int_equal(cfg->dnsbl.n_zones, 1);
	assert_int_equal(cfg->dnsbl.interval_ms, 600 * 1000);
	config_free(cfg);
	cfg = NULL;
	static const char *const bad[][2] = {
		{ POOL "link_check:\n  action: drop\n", "not an action" },
		{ POOL "link_check:\n  action: hold\n", "needs the control section" },
		{ POOL "dnsbl:\n  interval: 1h\n", "zones" },
		{ POOL "dnsbl:\n  zones: [not a zone]\n", "not a domain" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cfg = NULL;
		assert_int_equal(config_load_string("t.yaml", bad[i][0], strlen(bad[i][0]), &cfg, err,
						    sizeof err),
				 SL_ECONFIG);
		if (!strstr(err, bad[i][1]))
			fail_msg("case %zu: %s", i, err);
	}
}

static void test_errors(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct sl_config *cfg = (struct sl_config *)1;
		char err[512] = "";
		int rc = config_load_string("t.yaml", bc->yaml, strlen(bc->yaml), &cfg, err,
					    sizeof(err));

		if (rc != SL_ECONFIG || strcmp(err, bc->msg) != 0 || cfg) {
			print_error("case %zu: rc %d\n got: %s\nwant: %s\n--- yaml:\n%s\n", i, rc,
				    err, bc->msg, bc->yaml);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void test_error_buffer(void **state)
{
	struct sl_config *cfg;
	char small[12];
	int rc;

	(void)state;
	/* A short buffer truncates; no buffer at all is fine. */
	rc = config_load_string("t.yaml", "x: 1", 4, &cfg, small, sizeof(small));
	assert_int_equal(rc, SL_ECONFIG);
	assert_string_equal(small, "t.yaml:1:1:");
	rc = config_load_string("t.yaml", "x: 1", 4, &cfg, NULL, 0);
	assert_int_equal(rc, SL_ECONFIG);
	/* Input need not be NUL-terminated: only len bytes are read. */
	rc = config_load_string("t.yaml", POOL "xyz", strlen(POOL), &cfg, small, sizeof(small));
	assert_int_equal(rc, 0);
	config_free(cfg);
	rc = config_load("/nonexistent/sluice.yaml", &cfg, small, sizeof(small));
	assert_int_equal(rc, -ENOENT);
	assert_null(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_config), cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),         cmocka_unit_test(test_route_for),
		cmocka_unit_test(test_parse_helpers),  cmocka_unit_test(test_cidr_contains),
		cmocka_unit_test(test_errors),         cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_dpdk),           cmocka_unit_test(test_abuse_sections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
