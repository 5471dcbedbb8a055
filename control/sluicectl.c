/*
 * sluicectl — the operator's command line for sluice.
 *
 *   sluicectl passwd [PASSWORD]        hash a tenant password for the config
 *                                      (reads a line from stdin if omitted)
 *   sluicectl stats [-m HOST:PORT]     queue and delivery counters from a
 *                                      running sluiced's metrics endpoint
 *   sluicectl dkim ...                 DKIM keys, DNS records, offline signing
 *   sluicectl bounce classify ...      classify a bounce message or SMTP reply
 *   sluicectl fbl parse                parse an ARF feedback report
 *   sluicectl shaping explain ...      merged shaping values and their rules
 *   sluicectl warmup status|pause|...  IP warm-up state and operator actions
 *   sluicectl setup ...                the appliance's first-boot wizard
 *   sluicectl tenant ...               tenants, lifecycle, SMTP users (admin API)
 *   sluicectl token ...                admin API tokens
 *   sluicectl audit [--tenant T]       the control store's audit log
 *   sluicectl queue list|show|pause|...  delivery queues (admin API)
 *   sluicectl events [--follow]        the event log (admin API)
 *   sluicectl suppress ...             suppression lists (admin API)
 *   sluicectl verp decode ADDRESS      what a VERP return path names
 *   sluicectl reputation TENANT        rates, state, recent automatic actions
 *   sluicectl reputation hold|resume TENANT DOMAIN STREAM   a configuration set
 *
 * The admin-API commands share their options and output (cmd_api.h).
 */
#include "auth.h"
#include "cmd_bounce.h"
#include "cmd_audit.h"
#include "cmd_events.h"
#include "cmd_queue.h"
#include "cmd_dkim.h"
#include "cmd_ip.h"
#include "cmd_tls.h"
#include "cmd_domain.h"
#include "cmd_verify.h"
#include "cmd_reputation.h"
#include "cmd_shaping.h"
#include "cmd_warmup.h"
#include "cmd_tenant.h"
#include "cmd_token.h"
#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int usage(FILE *f, int rc)
{
	fprintf(f, "usage: sluicectl COMMAND [ARGS]\n"
		   "commands:\n"
		   "  passwd [PASSWORD]       print the password_hash for a tenant's password\n"
		   "                          (reads one line from stdin when PASSWORD is omitted)\n"
		   "  stats [-m HOST:PORT]    print the counters of a running sluiced\n"
		   "                          (metrics endpoint, default 127.0.0.1:9025)\n"
		   "  dkim keygen|dns|sign    DKIM keys, their DNS records, offline signing\n"
		   "                          (sluicectl dkim --help)\n"
		   "  bounce classify         classify a bounce (stdin) or --reply 'SMTP REPLY'\n"
		   "  fbl parse               parse an ARF feedback report (stdin) to JSON\n"
		   "  shaping explain         the shaping values for an (IP, domain) pair and\n"
		   "                          the rule behind each (sluicectl shaping --help)\n"
		   "  warmup status [--json]  warm-up per IP x provider; warmup pause|resume|\n"
		   "                          restart|jump --ip IP --provider P [--day N]\n"
		   "  setup [--from-seed F]   first-boot set-up of the appliance (runs sluice-setup)\n"
		   "  tenant list|show|create|approve|sandbox|hold|resume|disable|user\n"
		   "                          tenants over the admin API (sluicectl tenant --help)\n"
		   "  token list|create|revoke  admin API tokens (sluicectl token --help)\n"
		   "  audit [--tenant T]      the audit log (sluicectl audit --help)\n"
		   "  events [--tenant T] [--follow]  the event log (sluicectl events --help)\n"
		   "  queue list|show|pause|resume|retry|purge\n"
		   "                          delivery queues (sluicectl queue --help)\n"
		   "  ip list [--json]        source IPs: EHLO, rDNS, FCrDNS check, warm-up\n"
		   "  tls [--json]            outbound TLS results per policy domain (TLS-RPT)\n"
		   "  domain add|list|records|verify|remove\n"
		   "                          sending domains and their DNS records (--help)\n"
		   "  verify request|show ADDRESS  verify-by-email (sluicectl verify --help)\n"
		   "  suppress ...            suppression lists (sluicectl suppress --help)\n"
		   "  verp decode ADDRESS     the tenant, message and recipient of a return path\n"
		   "  reputation TENANT       rates, state and recent automatic actions\n"
		   "  reputation hold|resume TENANT DOMAIN STREAM\n"
		   "                          pause / release a configuration set\n"
		   "  help                    this text\n");
	return rc;
}

static int cmd_passwd(int argc, char **argv)
{
	char line[1024], out[AUTH_HASH_MAX];
	const char *pw;
	int rc;

	if (argc > 2) {
		fprintf(stderr, "sluicectl passwd: too many arguments\n");
		return 2;
	}
	if (argc == 2) {
		pw = argv[1];
	} else {
		if (!fgets(line, sizeof line, stdin)) {
			fprintf(stderr, "sluicectl passwd: no password on stdin\n");
			return 2;
		}
		line[strcspn(line, "\r\n")] = 0;
		pw = line;
	}
	if (!*pw) {
		fprintf(stderr, "sluicectl passwd: empty password\n");
		return 2;
	}
	rc = auth_hash_password(pw, AUTH_DEFAULT_ITERATIONS, out, sizeof out);
	if (rc < 0) {
		fprintf(stderr, "sluicectl passwd: %s\n", sl_strerror(rc));
		return 1;
	}
	printf("%s\n", out);
	return 0;
}

static int http_get(const char *hostport, const char *path, char **body)
{
	char host[256], *port, req[512];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	size_t len = 0, cap = 65536;
	char *buf, *p;
	ssize_t n;
	int fd, rc;

	snprintf(host, sizeof host, "%s", hostport);
	port = strrchr(host, ':');
	if (!port)
		return -EINVAL;
	*port++ = 0;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc)
		return -EHOSTUNREACH;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	freeaddrinfo(ai);
	snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, hostport);
	if (write(fd, req, strlen(req)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	buf = malloc(cap);
	while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			p = realloc(buf, cap * 2);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
			cap *= 2;
		}
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	buf[len] = 0;
	p = strstr(buf, "\r\n\r\n");
	*body = strdup(p ? p + 4 : buf);
	free(buf);
	return *body ? 0 : -ENOMEM;
}

static int cmd_stats(int argc, char **argv)
{
	const char *addr = "127.0.0.1:9025";
	char *body, *line, *save;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-m") && i + 1 < argc)
			addr = argv[++i];
		else
			return usage(stderr, 2);
	}
	rc = http_get(addr, "/metrics", &body);
	if (rc < 0) {
		fprintf(stderr, "sluicectl stats: cannot reach sluiced at %s: %s\n", addr,
			sl_strerror(rc));
		return 1;
	}
	for (line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (line[0] != '#')
			printf("%s\n", line);
	free(body);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr, 2);
	if (!strcmp(argv[1], "passwd"))
		return cmd_passwd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stats"))
		return cmd_stats(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dkim"))
		return cmd_dkim(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bounce"))
		return cmd_bounce(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fbl"))
		return cmd_fbl(argc - 1, argv + 1);
	if (!strcmp(argv[1], "shaping"))
		return cmd_shaping(argc - 1, argv + 1);
	if (!strcmp(argv[1], "warmup"))
		return cmd_warmup(argc - 1, argv + 1);
	if (!strcmp(argv[1], "tenant"))
		return cmd_tenant(argc - 1, argv + 1);
	if (!strcmp(argv[1], "token"))
		return cmd_token(argc - 1, argv + 1);
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "queue"))
		return cmd_queue(argc - 1, argv + 1);
	if (!strcmp(argv[1], "events"))
		return cmd_events(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ip"))
		return cmd_ip(argc - 1, argv + 1);
	if (!strcmp(argv[1], "tls"))
		return cmd_tls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "domain"))
		return cmd_domain(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "suppress"))
		return cmd_suppress(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verp"))
		return cmd_verp(argc - 1, argv + 1);
	if (!strcmp(argv[1], "reputation"))
		return cmd_reputation(argc - 1, argv + 1);
	if (!strcmp(argv[1], "setup")) {
		/* The first-boot wizard lives with the appliance image. */
		argv[1] = "/usr/sbin/sluice-setup";
		execv(argv[1], argv + 1);
		fprintf(stderr, "sluicectl setup: cannot run %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return usage(stdout, 0);
	fprintf(stderr, "sluicectl: unknown command '%s'\n", argv[1]);
	return usage(stderr, 2);
}
