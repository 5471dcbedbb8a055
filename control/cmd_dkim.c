/*
 * cmd_dkim.c — `sluicectl dkim keygen|dns|sign` (see cmd_dkim.h).
 */
#include "cmd_dkim.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dkim.h"
#include "err.h"

#define MSG_MAX (64u * 1024 * 1024) /* refuse larger input on stdin */

static int dkim_usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: sluicectl dkim keygen --algo rsa-sha256|ed25519-sha256 --out KEYFILE\n"
		"       sluicectl dkim dns --key KEYFILE\n"
		"       sluicectl dkim sign --domain D --selector S --key KEYFILE [--algo A]\n"
		"                           [--key2 KEYFILE [--selector2 S2] [--algo2 A2]]\n"
		"                           [--canon relaxed|simple[/relaxed|simple]]\n"
		"                           [--time UNIX] < message.eml\n"
		"\n"
		"keygen  write a new private key (RSA-2048 or Ed25519, PEM, mode 0600) to\n"
		"        KEYFILE and print the TXT record to publish at\n"
		"        SELECTOR._domainkey.DOMAIN\n"
		"dns     print the TXT record for an existing private key\n"
		"sign    read a message on stdin and print it with DKIM-Signature\n"
		"        field(s) prepended; with --key2 the message is dual-signed\n"
		"        (e.g. RSA and Ed25519). --algo defaults to the key's type;\n"
		"        --selector2 defaults to --selector; canonicalisation defaults\n"
		"        to relaxed/relaxed.\n");
	return rc;
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"algo", required_argument, NULL, 'a'},
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	enum dkim_algo algo = DKIM_ALGO_AUTO;
	const char *out = NULL;
	struct sl_buf rec = {0};
	int c, rc;

	while ((c = getopt_long(argc, argv, "a:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (dkim_algo_parse(optarg, &algo) < 0) {
				fprintf(stderr, "sluicectl dkim keygen: unknown algorithm '%s' "
						"(use rsa-sha256 or ed25519-sha256)\n", optarg);
				return 2;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			return dkim_usage(stdout, 0);
		default:
			return dkim_usage(stderr, 2);
		}
	}
	if (algo == DKIM_ALGO_AUTO || !out || optind != argc) {
		fprintf(stderr, "sluicectl dkim keygen: --algo and --out are required\n");
		return dkim_usage(stderr, 2);
	}
	rc = dkim_keygen(algo, out);
	if (rc < 0) {
		fprintf(stderr, "sluicectl dkim keygen: %s: %s%s\n", out, sl_strerror(rc),
			rc == -EEXIST ? " (refusing to overwrite a key)" : "");
		return 1;
	}
	rc = dkim_dns_record(out, &rec);
	if (rc < 0) {
		fprintf(stderr, "sluicectl dkim keygen: %s: %s\n", out, sl_strerror(rc));
		return 1;
	}
	printf("%.*s\n", (int)rec.len, rec.data);
	fprintf(stderr, "wrote %s; publish the record above as TXT at "
			"SELECTOR._domainkey.DOMAIN (split into strings of at most "
			"255 characters)\n", out);
	sl_buf_free(&rec);
	return 0;
}

static int cmd_dns(int argc, char **argv)
{
	struct sl_buf rec = {0};
	const char *key = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--key") && i + 1 < argc)
			key = argv[++i];
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return dkim_usage(stdout, 0);
		else
			return dkim_usage(stderr, 2);
	}
	if (!key)
		return dkim_usage(stderr, 2);
	rc = dkim_dns_record(key, &rec);
	if (rc < 0) {
		fprintf(stderr, "sluicectl dkim dns: %s: %s\n", key, sl_strerror(rc));
		return 1;
	}
	printf("%.*s\n", (int)rec.len, rec.data);
	sl_buf_free(&rec);
	return 0;
}

static int read_all(FILE *f, struct sl_buf *b)
{
	for (;;) {
		size_t n;

		if (sl_buf_reserve(b, 65536) < 0)
			return -ENOMEM;
		n = fread(b->data + b->len, 1, 65536, f);
		b->len += n;
		if (b->len > MSG_MAX)
			return SL_ETOOBIG;
		if (n == 0)
			return ferror(f) ? -EIO : 0;
	}
}

static int parse_canon(const char *arg, enum dkim_c14n *h, enum dkim_c14n *b)
{
	const char *slash = strchr(arg, '/');
	size_t hl = slash ? (size_t)(slash - arg) : strlen(arg);
	const char *bs = slash ? slash + 1 : arg;

	if (hl == 7 && !strncmp(arg, "relaxed", 7))
		*h = DKIM_C14N_RELAXED;
	else if (hl == 6 && !strncmp(arg, "simple", 6))
		*h = DKIM_C14N_SIMPLE;
	else
		return -EINVAL;
	if (!strcmp(bs, "relaxed"))
		*b = DKIM_C14N_RELAXED;
	else if (!strcmp(bs, "simple"))
		*b = DKIM_C14N_SIMPLE;
	else
		return -EINVAL;
	return 0;
}

static int add_key(struct dkim_signer *s, const char *domain, const char *sel,
		   enum dkim_algo algo, const char *key)
{
	int rc = dkim_signer_add_key(s, domain, sel, algo, key);

	if (rc == 0)
		return 0;
	if (rc == SL_ECONFIG)
		fprintf(stderr, "sluicectl dkim sign: %s: not a usable %s private key "
				"for d=%s s=%s (PEM RSA >= %d bits or Ed25519; check "
				"--algo, --domain and --selector)\n", key,
			algo == DKIM_ALGO_AUTO ? "DKIM" : dkim_algo_name(algo),
			domain, sel, DKIM_RSA_MIN_BITS);
	else if (rc == -EEXIST)
		fprintf(stderr, "sluicectl dkim sign: %s: a key of the same type was "
				"already given; dual signing needs one RSA and one "
				"Ed25519 key\n", key);
	else
		fprintf(stderr, "sluicectl dkim sign: %s: %s\n", key, sl_strerror(rc));
	return rc;
}

static int cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
		{"domain", required_argument, NULL, 'd'},
		{"selector", required_argument, NULL, 's'},
		{"key", required_argument, NULL, 'k'},
		{"algo", required_argument, NULL, 'a'},
		{"selector2", required_argument, NULL, 'S'},
		{"key2", required_argument, NULL, 'K'},
		{"algo2", required_argument, NULL, 'A'},
		{"canon", required_argument, NULL, 'c'},
		{"time", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *domain = NULL, *sel = NULL, *key = NULL, *sel2 = NULL, *key2 = NULL;
	enum dkim_algo algo = DKIM_ALGO_AUTO, algo2 = DKIM_ALGO_AUTO;
	enum dkim_c14n hc = DKIM_C14N_RELAXED, bc = DKIM_C14N_RELAXED;
	struct dkim_signer *s = NULL;
	struct sl_buf msg = {0}, hdr = {0};
	int64_t now = (int64_t)time(NULL);
	int c, rc, status = 1;
	char *end;

	while ((c = getopt_long(argc, argv, "d:s:k:a:S:K:A:c:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': domain = optarg; break;
		case 's': sel = optarg; break;
		case 'k': key = optarg; break;
		case 'S': sel2 = optarg; break;
		case 'K': key2 = optarg; break;
		case 'a':
		case 'A':
			if (dkim_algo_parse(optarg, c == 'a' ? &algo : &algo2) < 0) {
				fprintf(stderr, "sluicectl dkim sign: unknown algorithm '%s' "
						"(use rsa-sha256 or ed25519-sha256)\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (parse_canon(optarg, &hc, &bc) < 0) {
				fprintf(stderr, "sluicectl dkim sign: bad --canon '%s' "
						"(e.g. relaxed/relaxed, simple/simple)\n", optarg);
				return 2;
			}
			break;
		case 't':
			errno = 0;
			now = strtoll(optarg, &end, 10);
			if (errno || *end || now < 0) {
				fprintf(stderr, "sluicectl dkim sign: bad --time '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			return dkim_usage(stdout, 0);
		default:
			return dkim_usage(stderr, 2);
		}
	}
	if (!domain || !sel || !key || optind != argc) {
		fprintf(stderr, "sluicectl dkim sign: --domain, --selector and --key are required\n");
		return dkim_usage(stderr, 2);
	}
	if ((sel2 || algo2 != DKIM_ALGO_AUTO) && !key2) {
		fprintf(stderr, "sluicectl dkim sign: --selector2/--algo2 need --key2\n");
		return 2;
	}
	s = dkim_signer_create();
	if (!s) {
		fprintf(stderr, "sluicectl dkim sign: %s\n", sl_strerror(-ENOMEM));
		return 1;
	}
	dkim_signer_set_canon(s, hc, bc);
	if (add_key(s, domain, sel, algo, key) < 0)
		goto out;
	if (key2 && add_key(s, domain, sel2 ? sel2 : sel, algo2, key2) < 0)
		goto out;
	rc = read_all(stdin, &msg);
	if (rc < 0) {
		fprintf(stderr, "sluicectl dkim sign: reading the message: %s\n", sl_strerror(rc));
		goto out;
	}
	rc = dkim_signer_sign_at(s, domain, msg.data, msg.len, now, &hdr);
	if (rc < 0) {
		if (rc == SL_EPROTO)
			fprintf(stderr, "sluicectl dkim sign: malformed message: it needs "
					"a header section of Name: value fields with a From: "
					"field\n");
		else
			fprintf(stderr, "sluicectl dkim sign: %s\n", sl_strerror(rc));
		goto out;
	}
	if (fwrite(hdr.data, 1, hdr.len, stdout) != hdr.len ||
	    (msg.len && fwrite(msg.data, 1, msg.len, stdout) != msg.len) ||
	    fflush(stdout) != 0) {
		fprintf(stderr, "sluicectl dkim sign: writing: %s\n", strerror(errno));
		goto out;
	}
	status = 0;
out:
	sl_buf_free(&msg);
	sl_buf_free(&hdr);
	dkim_signer_destroy(s);
	return status;
}

int cmd_dkim(int argc, char **argv)
{
	if (argc < 2)
		return dkim_usage(stderr, 2);
	optind = 0; /* reinitialise getopt; the subcommand acts as argv[0] */
	if (!strcmp(argv[1], "keygen"))
		return cmd_keygen(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dns"))
		return cmd_dns(argc - 1, argv + 1);
	if (!strcmp(argv[1], "sign"))
		return cmd_sign(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return dkim_usage(stdout, 0);
	fprintf(stderr, "sluicectl dkim: unknown subcommand '%s'\n", argv[1]);
	return dkim_usage(stderr, 2);
}
