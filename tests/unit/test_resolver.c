/*
 * test_resolver.c — the MX resolver against a real unbound server.
 *
 * The group setup starts /usr/sbin/unbound on 127.0.0.1 at a free high port
 * with the local records below (everything outside "test." is REFUSED, so
 * nothing ever leaves loopback), waits until it answers, and kills it at
 * the end. The resolver is driven by a poll() loop on resolver_fd().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <cmocka.h>

#include "err.h"
#include "resolver.h"

#define UNBOUND_BIN "/usr/sbin/unbound"
#define LOOP_LIMIT_MS 15000 /* a hang guard, not a timing assertion */

static const char zone[] =
	"\tlocal-zone: \".\" refuse\n"
	"\tlocal-zone: \"test.\" static\n"
	/* Two MX levels, an equal-preference pair, a host without address,
	 * and a duplicate of the best host at a worse preference. */
	"\tlocal-data: \"multi.test. MX 10 mx1.multi.test.\"\n"
	"\tlocal-data: \"multi.test. MX 20 mx2a.multi.test.\"\n"
	"\tlocal-data: \"multi.test. MX 20 mx2b.multi.test.\"\n"
	"\tlocal-data: \"multi.test. MX 30 noaddr.multi.test.\"\n"
	"\tlocal-data: \"multi.test. MX 40 MX1.Multi.Test.\"\n"
	"\tlocal-data: \"mx1.multi.test. AAAA ::11\"\n"
	"\tlocal-data: \"mx1.multi.test. A 127.0.0.11\"\n"
	"\tlocal-data: \"mx2a.multi.test. A 127.0.0.21\"\n"
	"\tlocal-data: \"mx2b.multi.test. A 127.0.0.22\"\n"
	/* No MX: the domain's own address. */
	"\tlocal-data: \"implicit.test. A 127.0.0.30\"\n"
	/* RFC 7505 null MX. */
	"\tlocal-data: \"nullmx.test. MX 0 .\"\n"
	/* The only MX host has no address at all. */
	"\tlocal-data: \"noaddr.test. MX 10 nothing.noaddr.test.\"\n"
	/* No MX and no address, but the name exists. */
	"\tlocal-data: \"empty.test. TXT hello\"\n"
	/* IP literal MX target. */
	"\tlocal-data: \"literal.test. MX 10 127.0.0.40.\"\n"
	/* Twelve MX hosts, capped at ten. */
	"\tlocal-data: \"many.test. MX 1 h01.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 2 h02.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 3 h03.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 4 h04.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 5 h05.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 6 h06.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 7 h07.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 8 h08.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 9 h09.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 10 h10.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 11 h11.many.test.\"\n"
	"\tlocal-data: \"many.test. MX 12 h12.many.test.\"\n"
	"\tlocal-data: \"h01.many.test. A 127.0.1.1\"\n"
	"\tlocal-data: \"h02.many.test. A 127.0.1.2\"\n"
	"\tlocal-data: \"h03.many.test. A 127.0.1.3\"\n"
	"\tlocal-data: \"h04.many.test. A 127.0.1.4\"\n"
	"\tlocal-data: \"h05.many.test. A 127.0.1.5\"\n"
	"\tlocal-data: \"h06.many.test. A 127.0.1.6\"\n"
	"\tlocal-data: \"h07.many.test. A 127.0.1.7\"\n"
	"\tlocal-data: \"h08.many.test. A 127.0.1.8\"\n"
	"\tlocal-data: \"h09.many.test. A 127.0.1.9\"\n"
	"\tlocal-data: \"h10.many.test. A 127.0.1.10\"\n"
	"\tlocal-data: \"h11.many.test. A 127.0.1.11\"\n"
	"\tlocal-data: \"h12.many.test. A 127.0.1.12\"\n"
	/* Ten IPv4 and two IPv6 addresses for one host: eight are kept. */
	"\tlocal-data: \"wide.test. AAAA ::1\"\n"
	"\tlocal-data: \"wide.test. AAAA ::2\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.1\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.2\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.3\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.4\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.5\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.6\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.7\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.8\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.9\"\n"
	"\tlocal-data: \"wide.test. A 127.0.2.10\"\n"
	"\tlocal-data: \"v6only.test. AAAA ::6\"\n"
	/* Temporary failures: the server REFUSEs names in refused.test. */
	"\tlocal-zone: \"refused.test.\" refuse\n"
	"\tlocal-data: \"tempmix.test. MX 10 a.refused.test.\"\n"
	"\tlocal-data: \"tempmix.test. MX 20 mx2a.multi.test.\"\n"
	"\tlocal-data: \"tempall.test. MX 10 a.refused.test.\"\n"
	"\tlocal-data: \"tempall.test. MX 20 b.refused.test.\"\n"
	/* Reverse DNS (PTR) in a documentation network. */
	"\tlocal-zone: \"113.0.203.in-addr.arpa.\" static\n"
	"\tlocal-data-ptr: \"203.0.113.7 Host.Ptr.Test.\"\n"
	"\tlocal-zone: \"9.113.0.203.in-addr.arpa.\" refuse\n"
	/* TXT: one record, one of two strings, two records. */
	"\tlocal-data: '_mta-sts.txt.test. TXT \"v=STSv1; id=1;\"'\n"
	"\tlocal-data: 'split.txt.test. TXT \"v=STSv1; \" \"id=2;\"'\n"
	"\tlocal-data: 'two.txt.test. TXT \"a\"'\n"
	"\tlocal-data: 'two.txt.test. TXT \"b\"'\n";

static char dir[] = "/tmp/sluice-test-resolver-XXXXXX";
static char conf_path[sizeof(dir) + 16];
static char log_path[sizeof(dir) + 16];
static pid_t server_pid = -1;
static struct sockaddr_storage server;
static socklen_t server_len;

/* A loopback port nobody is bound to right now. */
static unsigned free_port(int type)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, type, 0);
	unsigned port;

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void set_loopback(struct sockaddr_storage *ss, socklen_t *len, unsigned port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*sin);
}

/* Does the server answer a hand-made "multi.test. MX" query? */
static bool server_answers(void)
{
	static const unsigned char q[] = {
		0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		5, 'm', 'u', 'l', 't', 'i', 4, 't', 'e', 's', 't', 0,
		0, 15, 0, 1,
	};
	unsigned char buf[512];
	struct pollfd p;
	bool ok = false;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	if (sendto(fd, q, sizeof(q), 0, (struct sockaddr *)&server, server_len) ==
	    (ssize_t)sizeof(q)) {
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) == 1 && recv(fd, buf, sizeof(buf), 0) > 2 &&
		    buf[0] == 0x12 && buf[1] == 0x34)
			ok = true;
	}
	close(fd);
	return ok;
}

static pid_t start_unbound(unsigned port)
{
	FILE *f = fopen(conf_path, "w");
	pid_t pid;

	assert_non_null(f);
	fprintf(f,
		"server:\n"
		"\tinterface: 127.0.0.1@%u\n"
		"\tdo-daemonize: no\n\tchroot: \"\"\n\tusername: \"\"\n\tpidfile: \"\"\n"
		"\tdirectory: \"%s\"\n\tuse-syslog: no\n\tlogfile: \"%s\"\n\tverbosity: 0\n"
		"\tdo-ip6: no\n\taccess-control: 127.0.0.0/8 allow\n"
		"\tmodule-config: \"iterator\"\n%s"
		"remote-control:\n\tcontrol-enable: no\n",
		port, dir, log_path, zone);
	assert_int_equal(fclose(f), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		execl(UNBOUND_BIN, "unbound", "-d", "-c", conf_path, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int group_teardown(void **state)
{
	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	unlink(conf_path);
	unlink(log_path);
	rmdir(dir);
	return 0;
}

static int group_setup(void **state)
{
	int attempt, i;

	(void)state;
	if (access(UNBOUND_BIN, X_OK) != 0) {
		fprintf(stderr, "test_resolver: %s missing (apt-get install unbound)\n",
			UNBOUND_BIN);
		return -1;
	}
	if (!mkdtemp(dir))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/unbound.conf", dir);
	snprintf(log_path, sizeof(log_path), "%s/unbound.log", dir);
	/* The free port can be taken between the probe and unbound's bind:
	 * try a few. */
	for (attempt = 0; attempt < 5 && server_pid < 0; attempt++) {
		unsigned port = free_port(SOCK_DGRAM);
		pid_t pid = start_unbound(port);

		set_loopback(&server, &server_len, port);
		for (i = 0; i < 100; i++) { /* up to ~10 s */
			if (waitpid(pid, NULL, WNOHANG) == pid) {
				pid = -1;
				break;
			}
			if (server_answers()) {
				server_pid = pid;
				break;
			}
		}
		if (pid > 0 && server_pid < 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	if (server_pid < 0) {
		char line[512];
		FILE *f = fopen(log_path, "r");

		fprintf(stderr, "test_resolver: unbound did not start; its log:\n");
		while (f && fgets(line, sizeof(line), f))
			fputs(line, stderr);
		if (f)
			fclose(f);
		group_teardown(NULL);
		return -1;
	}
	return 0;
}

/* ---- driving the resolver ---- */

struct got {
	int calls;
	int err;
	bool implicit;
	size_t n_hosts;
	char name[RESOLVER_MAX_HOSTS][256];
	uint16_t pref[RESOLVER_MAX_HOSTS];
	size_t n_addrs[RESOLVER_MAX_HOSTS];
	char addr[RESOLVER_MAX_HOSTS][RESOLVER_MAX_ADDRS][INET6_ADDRSTRLEN];
	enum resolver_sec mx_sec, addr_sec[RESOLVER_MAX_HOSTS], tlsa_sec[RESOLVER_MAX_HOSTS];
	size_t n_tlsa[RESOLVER_MAX_HOSTS];
};

static void on_result(void *ctx, int err, const struct mx_result *res)
{
	struct got *g = ctx;
	size_t i, k;

	g->calls++;
	g->err = err;
	if (err) {
		assert_null(res);
		return;
	}
	assert_non_null(res);
	assert_true(res->n_hosts >= 1 && res->n_hosts <= RESOLVER_MAX_HOSTS);
	g->implicit = res->implicit;
	g->n_hosts = res->n_hosts;
	g->mx_sec = res->mx_sec;
	for (i = 0; i < res->n_hosts; i++) {
		const struct mx_host *h = &res->hosts[i];

		assert_true(strlen(h->name) < sizeof(g->name[i]));
		strcpy(g->name[i], h->name);
		g->pref[i] = h->pref;
		g->addr_sec[i] = h->addr_sec;
		g->tlsa_sec[i] = h->tlsa_sec;
		g->n_tlsa[i] = h->n_tlsa;
		assert_true(h->n_addrs >= 1 && h->n_addrs <= RESOLVER_MAX_ADDRS);
		g->n_addrs[i] = h->n_addrs;
		for (k = 0; k < h->n_addrs; k++) {
			const struct sockaddr_storage *ss = &h->addrs[k];

			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *sin = (const void *)ss;

				assert_int_equal(sin->sin_port, 0);
				inet_ntop(AF_INET, &sin->sin_addr, g->addr[i][k], INET6_ADDRSTRLEN);
			} else {
				const struct sockaddr_in6 *sin6 = (const void *)ss;

				assert_int_equal(ss->ss_family, AF_INET6);
				assert_int_equal(sin6->sin6_port, 0);
				inet_ntop(AF_INET6, &sin6->sin6_addr, g->addr[i][k],
					  INET6_ADDRSTRLEN);
			}
		}
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll and process until *calls reaches want (or the hang guard trips). */
static void drive(struct resolver *r, const int *calls, int want)
{
	uint64_t deadline = now_ms() + LOOP_LIMIT_MS;

	while (*calls < want) {
		struct pollfd p = { .fd = resolver_fd(r), .events = POLLIN };
		int n = poll(&p, 1, 100);

		assert_true(n >= 0);
		if (n > 0)
			assert_int_equal(resolver_process(r), 0);
		assert_true(now_ms() < deadline);
	}
}

/* Process whatever arrives during about ms milliseconds. */
static void drain(struct resolver *r, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end) {
		struct pollfd p = { .fd = resolver_fd(r), .events = POLLIN };

		if (poll(&p, 1, 20) > 0)
			assert_int_equal(resolver_process(r), 0);
	}
}

static struct resolver *new_resolver(void)
{
	struct resolver *r = NULL;

	assert_int_equal(resolver_create(&server, &server_len, 1, &r), 0);
	assert_non_null(r);
	assert_true(resolver_fd(r) >= 0);
	return r;
}

static void mx(struct resolver *r, const char *domain, struct got *g)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(resolver_lookup_mx(r, domain, on_result, g, NULL), 0);
	drive(r, &g->calls, 1);
	assert_int_equal(g->calls, 1);
}

static void host(struct resolver *r, const char *name, struct got *g)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(resolver_lookup_host(r, name, on_result, g, NULL), 0);
	drive(r, &g->calls, 1);
	assert_int_equal(g->calls, 1);
}

/* ---- tests ---- */

static void test_mx_order_and_addresses(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	mx(r, "multi.test", &g);
	assert_int_equal(g.err, 0);
	assert_false(g.implicit);
	/* noaddr is dropped, the pref-40 duplicate of mx1 is dropped. */
	assert_int_equal(g.n_hosts, 3);
	assert_string_equal(g.name[0], "mx1.multi.test");
	assert_int_equal(g.pref[0], 10);
	assert_int_equal(g.n_addrs[0], 2);
	assert_string_equal(g.addr[0][0], "127.0.0.11"); /* IPv4 first */
	assert_string_equal(g.addr[0][1], "::11");
	assert_int_equal(g.pref[1], 20);
	assert_int_equal(g.pref[2], 20);
	assert_true((strcmp(g.name[1], "mx2a.multi.test") == 0 &&
		     strcmp(g.name[2], "mx2b.multi.test") == 0) ||
		    (strcmp(g.name[1], "mx2b.multi.test") == 0 &&
		     strcmp(g.name[2], "mx2a.multi.test") == 0));
	assert_int_equal(g.n_addrs[1], 1);
	assert_string_equal(g.addr[1][0],
			    strcmp(g.name[1], "mx2a.multi.test") == 0 ? "127.0.0.21"
								       : "127.0.0.22");
	resolver_destroy(r);
}

static void test_equal_pref_shuffled(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;
	int a_first = 0, b_first = 0;
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= 64 && (a_first == 0 || b_first == 0); seed++) {
		resolver_seed(r, seed);
		mx(r, "multi.test.", &g); /* answered from cache after the first */
		assert_int_equal(g.err, 0);
		assert_int_equal(g.n_hosts, 3);
		assert_string_equal(g.name[0], "mx1.multi.test");
		if (strcmp(g.name[1], "mx2a.multi.test") == 0)
			a_first++;
		else
			b_first++;
	}
	assert_true(a_first > 0);
	assert_true(b_first > 0);

	/* The same seed gives the same order. */
	{
		char first[256];

		resolver_seed(r, 7);
		mx(r, "multi.test", &g);
		strcpy(first, g.name[1]);
		resolver_seed(r, 7);
		mx(r, "multi.test", &g);
		assert_string_equal(first, g.name[1]);
	}
	resolver_destroy(r);
}

static void test_name_normalised(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	mx(r, "MULTI.Test.", &g);
	assert_int_equal(g.err, 0);
	assert_string_equal(g.name[0], "mx1.multi.test");
	resolver_destroy(r);
}

static void test_implicit_mx(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	mx(r, "implicit.test", &g);
	assert_int_equal(g.err, 0);
	assert_true(g.implicit);
	assert_int_equal(g.n_hosts, 1);
	assert_string_equal(g.name[0], "implicit.test");
	assert_int_equal(g.pref[0], 0);
	assert_int_equal(g.n_addrs[0], 1);
	assert_string_equal(g.addr[0][0], "127.0.0.30");
	resolver_destroy(r);
}

static void test_permanent_failures(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	mx(r, "nullmx.test", &g);
	assert_int_equal(g.err, SL_ENOTFOUND);
	mx(r, "nxdomain.test", &g);
	assert_int_equal(g.err, SL_ENOTFOUND);
	mx(r, "noaddr.test", &g);
	assert_int_equal(g.err, SL_ENOTFOUND);
	mx(r, "empty.test", &g); /* no MX, no A/AAAA */
	assert_int_equal(g.err, SL_ENOTFOUND);
	resolver_destroy(r);
}

static void test_literal_mx_target(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	mx(r, "literal.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n_hosts, 1);
	assert_string_equal(g.name[0], "127.0.0.40");
	assert_int_equal(g.n_addrs[0], 1);
	assert_string_equal(g.addr[0][0], "127.0.0.40");
	resolver_destroy(r);
}

static void test_caps(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;
	size_t i;

	(void)state;
	mx(r, "many.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n_hosts, RESOLVER_MAX_HOSTS);
	for (i = 0; i < RESOLVER_MAX_HOSTS; i++) {
		char want[32];

		snprintf(want, sizeof(want), "h%02zu.many.test", i + 1);
		assert_string_equal(g.name[i], want);
		assert_int_equal(g.pref[i], i + 1);
	}

	host(r, "wide.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n_hosts, 1);
	assert_int_equal(g.n_addrs[0], RESOLVER_MAX_ADDRS);
	for (i = 0; i < RESOLVER_MAX_ADDRS; i++)
		assert_non_null(strstr(g.addr[0][i], "127.0.2."));
	resolver_destroy(r);
}

static void test_lookup_host(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	host(r, "Mx1.Multi.Test.", &g);
	assert_int_equal(g.err, 0);
	assert_false(g.implicit);
	assert_int_equal(g.n_hosts, 1);
	assert_string_equal(g.name[0], "mx1.multi.test");
	assert_int_equal(g.pref[0], 0);
	assert_int_equal(g.n_addrs[0], 2);
	assert_string_equal(g.addr[0][0], "127.0.0.11");
	assert_string_equal(g.addr[0][1], "::11");

	host(r, "v6only.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n_addrs[0], 1);
	assert_string_equal(g.addr[0][0], "::6");

	host(r, "multi.test", &g); /* exists, but has no address */
	assert_int_equal(g.err, SL_ENOTFOUND);
	host(r, "nxdomain.test", &g);
	assert_int_equal(g.err, SL_ENOTFOUND);
	resolver_destroy(r);
}

struct ptr_got {
	int calls, err;
	size_t n;
	char name[4][256];
};

static void on_ptr(void *ctx, int err, const char *const *names, size_t n)
{
	struct ptr_got *g = ctx;

	g->calls++;
	g->err = err;
	g->n = n;
	for (size_t i = 0; i < n && i < 4; i++)
		snprintf(g->name[i], sizeof g->name[i], "%s", names[i]);
}

static void ptr(struct resolver *r, const char *ip, struct ptr_got *g)
{
	struct sockaddr_storage ss = { 0 };

	memset(g, 0, sizeof(*g));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	assert_int_equal(resolver_lookup_ptr(r, (struct sockaddr *)&ss, on_ptr, g, NULL), 0);
	drive(r, &g->calls, 1);
	assert_int_equal(g->calls, 1);
}

static void test_lookup_ptr(void **state)
{
	struct resolver *r = new_resolver();
	struct sockaddr_storage un = { .ss_family = AF_UNIX };
	struct ptr_got g;

	(void)state;
	ptr(r, "203.0.113.7", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.name[0], "host.ptr.test");
	ptr(r, "203.0.113.8", &g); /* no PTR in the zone */
	assert_int_equal(g.err, SL_ENOTFOUND);
	ptr(r, "203.0.113.9", &g); /* the server refuses: temporary */
	assert_int_equal(g.err, SL_EDNS);
	ptr(r, "2001:db8::1", &g); /* libunbound's own RFC 3849 zone: none */
	assert_int_equal(g.err, SL_ENOTFOUND);
	assert_int_equal(resolver_lookup_ptr(r, (struct sockaddr *)&un, on_ptr, &g, NULL),
			 -EINVAL);
	resolver_destroy(r);
}

static void on_txt(void *ctx, int err, const char *const *txts, size_t n)
{
	struct ptr_got *g = ctx;

	g->calls++;
	g->err = err;
	g->n = n;
	for (size_t i = 0; i < n && i < 4; i++)
		snprintf(g->name[i], sizeof g->name[i], "%s", txts[i]);
}

static void txt(struct resolver *r, const char *name, struct ptr_got *g)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(resolver_lookup_txt(r, name, on_txt, g, NULL), 0);
	drive(r, &g->calls, 1);
	assert_int_equal(g->calls, 1);
}

static void test_lookup_txt(void **state)
{
	struct resolver *r = new_resolver();
	struct ptr_got g;

	(void)state;
	txt(r, "_mta-sts.txt.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.name[0], "v=STSv1; id=1;");
	txt(r, "split.txt.test.", &g); /* character-strings joined */
	assert_int_equal(g.err, 0);
	assert_string_equal(g.name[0], "v=STSv1; id=2;");
	txt(r, "two.txt.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n, 2);
	txt(r, "none.txt.test", &g);
	assert_int_equal(g.err, SL_ENOTFOUND);
	txt(r, "x.refused.test", &g);
	assert_int_equal(g.err, SL_EDNS);
	assert_int_equal(resolver_lookup_txt(r, "bad name", on_txt, &g, NULL), -EINVAL);
	resolver_destroy(r);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {
		"", ".", "a..b", "a b.test", "[127.0.0.1]", "127.0.0.1", "::1",
		"-\n.test", "exa\xc3\xa9mple.test",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
	};
	struct resolver *r = new_resolver();
	struct got g = { 0 };
	char longname[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(resolver_lookup_mx(r, bad[i], on_result, &g, NULL), -EINVAL);
		assert_int_equal(resolver_lookup_host(r, bad[i], on_result, &g, NULL),
				 -EINVAL);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (i = 50; i < sizeof(longname) - 1; i += 51)
		longname[i] = '.';
	assert_int_equal(resolver_lookup_mx(r, longname, on_result, &g, NULL), -EINVAL);
	drain(r, 50);
	assert_int_equal(g.calls, 0);
	resolver_destroy(r);
}

static void test_temporary_failures(void **state)
{
	struct resolver *r = new_resolver();
	struct got g;

	(void)state;
	/* One host refused, the other fine: the refused one is dropped. */
	mx(r, "tempmix.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n_hosts, 1);
	assert_string_equal(g.name[0], "mx2a.multi.test");
	/* Every host refused: temporary. */
	mx(r, "tempall.test", &g);
	assert_int_equal(g.err, SL_EDNS);
	/* The MX query itself refused. */
	mx(r, "x.refused.test", &g);
	assert_int_equal(g.err, SL_EDNS);
	/* A refusal for one name does not make the server unusable. */
	mx(r, "implicit.test", &g);
	assert_int_equal(g.err, 0);
	resolver_destroy(r);
}

static void test_cancel(void **state)
{
	struct resolver *r = new_resolver();
	struct got a = { 0 }, b = { 0 }, c = { 0 };
	uint64_t ha = 0, hb = 0, hc = 0;

	(void)state;
	assert_int_equal(resolver_lookup_mx(r, "multi.test", on_result, &a, &ha), 0);
	assert_int_equal(resolver_lookup_mx(r, "implicit.test", on_result, &b, &hb), 0);
	assert_int_equal(resolver_lookup_host(r, "wide.test", on_result, &c, &hc), 0);
	assert_true(ha != 0 && hb != 0 && hc != 0);
	assert_true(ha != hb && hb != hc && ha != hc);
	resolver_cancel(r, ha);
	resolver_cancel(r, hc);
	resolver_cancel(r, ha);     /* twice: ignored */
	resolver_cancel(r, 999999); /* unknown: ignored */
	drive(r, &b.calls, 1);
	drain(r, 200);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(c.calls, 0);
	assert_int_equal(b.err, 0);
	resolver_cancel(r, hb); /* finished: ignored */
	resolver_destroy(r);
}

static void test_destroy_with_outstanding(void **state)
{
	struct resolver *r = new_resolver();
	struct got a = { 0 };

	(void)state;
	assert_int_equal(resolver_lookup_mx(r, "multi.test", on_result, &a, NULL), 0);
	assert_int_equal(resolver_lookup_host(r, "wide.test", on_result, &a, NULL), 0);
	resolver_destroy(r); /* no callback, no leak (ASan) */
	assert_int_equal(a.calls, 0);
	resolver_destroy(NULL);
}

struct destroyer {
	struct resolver *r;
	int calls;
};

static void destroy_cb(void *ctx, int err, const struct mx_result *res)
{
	struct destroyer *d = ctx;

	(void)err;
	(void)res;
	d->calls++;
	if (d->r) {
		struct resolver *r = d->r;

		d->r = NULL;
		resolver_destroy(r);
		assert_int_equal(resolver_lookup_mx(r, "multi.test", destroy_cb, d, NULL),
				 -ESHUTDOWN);
	}
}

static void test_destroy_from_callback(void **state)
{
	struct resolver *r = new_resolver();
	struct destroyer d = { .r = r };
	uint64_t deadline = now_ms() + LOOP_LIMIT_MS;
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(resolver_lookup_mx(r, "multi.test", destroy_cb, &d, NULL), 0);
	/* Stop polling once a callback has destroyed r. */
	while (d.r) {
		struct pollfd p = { .fd = resolver_fd(r), .events = POLLIN };

		if (poll(&p, 1, 100) > 0)
			assert_int_equal(resolver_process(r), 0);
		assert_true(now_ms() < deadline);
	}
	assert_int_equal(d.calls, 1);
}

/* Callbacks may start new lookups. */
struct chain {
	struct resolver *r;
	struct got inner;
	int calls;
};

static void chain_cb(void *ctx, int err, const struct mx_result *res)
{
	struct chain *c = ctx;

	c->calls++;
	assert_int_equal(err, 0);
	assert_non_null(res);
	assert_int_equal(resolver_lookup_host(c->r, res->hosts[0].name, on_result, &c->inner,
					      NULL),
			 0);
}

static void test_lookup_from_callback(void **state)
{
	struct resolver *r = new_resolver();
	struct chain c = { .r = r };

	(void)state;
	assert_int_equal(resolver_lookup_mx(r, "multi.test", chain_cb, &c, NULL), 0);
	drive(r, &c.inner.calls, 1);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.inner.err, 0);
	assert_string_equal(c.inner.name[0], "mx1.multi.test");
	resolver_destroy(r);
}

static void test_dead_server(void **state)
{
	struct sockaddr_storage dead;
	socklen_t dead_len;
	struct resolver *r = NULL;
	struct got g;

	(void)state;
	/* Nothing listens there: queries go unanswered (ICMP refusals are
	 * ignored by libunbound), so this is the timeout path. */
	set_loopback(&dead, &dead_len, free_port(SOCK_DGRAM));
	assert_int_equal(resolver_create(&dead, &dead_len, 1, &r), 0);
	/* ~0.8 s to SERVFAIL instead of libunbound's default ~17 s. */
	assert_int_equal(resolver_set_max_rtt_ms(r, 500), 0);
	mx(r, "multi.test", &g);
	assert_int_equal(g.err, SL_EDNS);
	assert_int_equal(resolver_set_max_rtt_ms(r, 500), -EBUSY);
	/* The server is now known dead: the next lookup fails at once. */
	host(r, "mx1.multi.test", &g);
	assert_int_equal(g.err, SL_EDNS);
	resolver_destroy(r);
}

/* Many lookups in flight at once, some cancelled. */
static void test_many_concurrent(void **state)
{
	static const char *const domains[] = {
		"multi.test", "implicit.test", "nullmx.test", "many.test", "literal.test",
		"nxdomain.test", "tempmix.test",
	};
	enum { N = 140 };
	struct resolver *r = new_resolver();
	struct got *g = calloc(N, sizeof(*g));
	uint64_t h[N], deadline;
	int done = 0, want = 0, i;

	(void)state;
	assert_non_null(g);
	for (i = 0; i < N; i++) {
		const char *d = domains[i % 7];

		if (i % 2)
			assert_int_equal(resolver_lookup_mx(r, d, on_result, &g[i], &h[i]), 0);
		else
			assert_int_equal(resolver_lookup_host(r, "wide.test", on_result, &g[i],
							      &h[i]),
					 0);
	}
	for (i = 0; i < N; i += 3)
		resolver_cancel(r, h[i]);
	for (i = 0; i < N; i++)
		want += i % 3 != 0;
	deadline = now_ms() + LOOP_LIMIT_MS;
	for (;;) {
		struct pollfd p = { .fd = resolver_fd(r), .events = POLLIN };

		done = 0;
		for (i = 0; i < N; i++)
			done += g[i].calls;
		if (done >= want)
			break;
		if (poll(&p, 1, 100) > 0)
			assert_int_equal(resolver_process(r), 0);
		assert_true(now_ms() < deadline);
	}
	drain(r, 50); /* nothing more arrives for the cancelled ones */
	for (i = 0; i < N; i++) {
		assert_int_equal(g[i].calls, i % 3 ? 1 : 0);
		if (i % 3 == 0)
			continue;
		if (i % 2 == 0) {
			assert_int_equal(g[i].err, 0);
			assert_int_equal(g[i].n_addrs[0], RESOLVER_MAX_ADDRS);
		} else if (strstr("nullmx.test nxdomain.test", domains[i % 7])) {
			assert_int_equal(g[i].err, SL_ENOTFOUND);
		} else {
			assert_int_equal(g[i].err, 0);
		}
	}
	free(g);
	resolver_destroy(r);
}

static bool task_listed(const long *tids, size_t n, long tid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tids[i] == tid)
			return true;
	return false;
}

static size_t list_tasks(long *tids, size_t max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			tids[n++] = atol(e->d_name);
	closedir(d);
	return n;
}

/* libunbound's worker thread must not take process signals. */
static void test_worker_blocks_signals(void **state)
{
	long before[64], after[64];
	size_t nb, na, i, fresh = 0;
	struct resolver *r;
	struct got g;

	(void)state;
	nb = list_tasks(before, 64);
	r = new_resolver();
	mx(r, "implicit.test", &g);
	na = list_tasks(after, 64);
	for (i = 0; i < na; i++) {
		char path[64], line[256];
		unsigned long long blk = 0;
		FILE *f;

		if (task_listed(before, nb, after[i]))
			continue;
		fresh++;
		snprintf(path, sizeof(path), "/proc/self/task/%ld/status", after[i]);
		f = fopen(path, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &blk) == 1)
				break;
		fclose(f);
		assert_true(blk & (1ull << (SIGTERM - 1)));
		assert_true(blk & (1ull << (SIGINT - 1)));
		assert_true(blk & (1ull << (SIGHUP - 1)));
		assert_true(blk & (1ull << (SIGCHLD - 1)));
	}
	assert_true(fresh >= 1);
	resolver_destroy(r);
}

/* n == 0 reads /etc/resolv.conf (no query is sent here). */
static void test_resolv_conf(void **state)
{
	struct resolver *r = NULL;
	int rc;

	(void)state;
	rc = resolver_create(NULL, NULL, 0, &r);
	assert_true(rc == 0 || rc == SL_EDNS);
	if (rc == 0)
		assert_true(resolver_fd(r) >= 0);
	resolver_destroy(r);
}

/* Unsigned answers are insecure, with or without validation; TLSA
 * records are only looked up behind a secure MX answer. (Signed zones
 * are exercised end to end in tests/e2e/test_dane.py.) */
static void test_dnssec_insecure(void **state)
{
	char ta[] = "/tmp/sluice-test-ta-XXXXXX";
	struct resolver *r;
	struct got g;
	FILE *f;
	int fd;

	(void)state;
	r = new_resolver();
	assert_int_equal(resolver_set_trust_anchor_file(r, "/nonexistent/root.key"), -ENOENT);
	assert_int_equal(resolver_set_trust_anchor_file(r, ""), -EINVAL);
	resolver_set_tlsa(r, true);
	mx(r, "multi.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.mx_sec, RESOLVER_SEC_INSECURE);
	assert_int_equal(g.addr_sec[0], RESOLVER_SEC_INSECURE);
	assert_int_equal(g.tlsa_sec[0], RESOLVER_SEC_INSECURE);
	assert_int_equal(g.n_tlsa[0], 0);
	/* The configuration is frozen by the first lookup. */
	fd = mkstemp(ta);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	/* An anchor for a zone the tests do not use. */
	fprintf(f, "example. 3600 IN DS 12345 13 2 "
		   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
	fclose(f);
	assert_int_equal(resolver_set_trust_anchor_file(r, ta), -EBUSY);
	resolver_destroy(r);

	/* Validation on: names outside the anchor's zone resolve, insecure. */
	r = new_resolver();
	assert_int_equal(resolver_set_trust_anchor_file(r, ta), 0);
	resolver_set_tlsa(r, true);
	mx(r, "multi.test", &g);
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n_hosts, 3);
	assert_int_equal(g.mx_sec, RESOLVER_SEC_INSECURE);
	assert_int_equal(g.tlsa_sec[0], RESOLVER_SEC_INSECURE);
	mx(r, "implicit.test", &g);
	assert_int_equal(g.err, 0);
	assert_true(g.implicit);
	assert_int_equal(g.mx_sec, RESOLVER_SEC_INSECURE);
	resolver_destroy(r);
	unlink(ta);
}

static void test_create_errors(void **state)
{
	struct sockaddr_storage bad = { .ss_family = AF_UNIX };
	socklen_t bad_len = sizeof(bad);
	struct resolver *r = (struct resolver *)&bad;

	(void)state;
	assert_int_equal(resolver_create(&bad, &bad_len, 1, &r), -EINVAL);
	assert_null(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_order_and_addresses),
		cmocka_unit_test(test_dnssec_insecure),
		cmocka_unit_test(test_equal_pref_shuffled),
		cmocka_unit_test(test_name_normalised),
		cmocka_unit_test(test_implicit_mx),
		cmocka_unit_test(test_permanent_failures),
		cmocka_unit_test(test_literal_mx_target),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_lookup_host),
		cmocka_unit_test(test_lookup_ptr),
		cmocka_unit_test(test_lookup_txt),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_temporary_failures),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_destroy_with_outstanding),
		cmocka_unit_test(test_destroy_from_callback),
		cmocka_unit_test(test_lookup_from_callback),
		cmocka_unit_test(test_dead_server),
		cmocka_unit_test(test_many_concurrent),
		cmocka_unit_test(test_worker_blocks_signals),
		cmocka_unit_test(test_resolv_conf),
		cmocka_unit_test(test_create_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
