/* cmd_domain.c — sluicectl domain ...; see cmd_domain.h. */
#include "cmd_domain.h"

#include "cmd_api.h"

#include <stdio.h>
#include <string.h>

static const char domain_help[] =
	"usage: sluicectl domain COMMAND [ARGS] [--json] [--api URL] [--token T] [-c FILE]\n"
	"commands:\n"
	"  add DOMAIN [--stream transactional|marketing] [--selector S] [--tenant T]\n"
	"                                 register a sending domain (a DKIM key is generated)\n"
	"  list [--tenant T]              domains and whether they are verified\n"
	"  records DOMAIN                 the DNS records to publish, and their last status\n"
	"  verify DOMAIN                  look the records up in DNS now (exit 1 if not verified)\n"
	"  remove DOMAIN                  unregister the domain (and its key)\n"
	"An operator token names the tenant with --tenant; a tenant token acts for its own.\n";

static void print_records(const json_t *d)
{
	static const char *const hdr[] = { "RECORD", "STATUS", "TYPE", "NAME", "VALUE" };
	struct cmd_table tb;
	size_t i;
	json_t *r;

	printf("%s (tenant %s, stream %s, selector %s): %s\n", cmd_api_str(d, "domain"),
	       cmd_api_str(d, "tenant"), cmd_api_str(d, "stream"), cmd_api_str(d, "selector"),
	       json_is_true(json_object_get(d, "verified")) ? "verified" : "NOT verified");
	cmd_table_init(&tb, 5, hdr);
	json_array_foreach(json_object_get(d, "records"), i, r) {
		const char *row[5] = { cmd_api_str(r, "kind"), cmd_api_str(r, "status"),
				       cmd_api_str(r, "type"), cmd_api_str(r, "name"),
				       cmd_api_str(r, "value") };

		cmd_table_add(&tb, row);
	}
	cmd_table_print(&tb, stdout);
	json_array_foreach(json_object_get(d, "records"), i, r) {
		const char *st = cmd_api_str(r, "status");

		if (!strcmp(st, "mismatch"))
			printf("%s: found \"%s\"\n", cmd_api_str(r, "kind"),
			       cmd_api_str(r, "found"));
	}
}

static int domain_list(struct cmd_api *a, const char *tenant)
{
	static const char *const hdr[] = { "DOMAIN", "TENANT", "STREAM", "VERIFIED", "CHECKED" };
	char path[512], t[256] = "";
	json_t *out = NULL, *v;
	struct cmd_table tb;
	size_t i;
	int rc;

	if (tenant)
		api_client_escape(tenant, t, sizeof t);
	snprintf(path, sizeof path, "/v1/domains?limit=1000%s%s", t[0] ? "&tenant=" : "", t);
	if ((rc = cmd_api_request(a, "GET", path, NULL, &out)))
		return rc;
	if (a->json) {
		cmd_api_print_json(out);
	} else {
		cmd_table_init(&tb, 5, hdr);
		json_array_foreach(json_object_get(out, "items"), i, v) {
			char checked[32];
			const char *row[5] = { cmd_api_str(v, "domain"), cmd_api_str(v, "tenant"),
					       cmd_api_str(v, "stream"),
					       json_is_true(json_object_get(v, "verified")) ? "yes"
											    : "no",
					       checked };

			cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "checked")),
				     checked);
			cmd_table_add(&tb, row);
		}
		cmd_table_print(&tb, stdout);
	}
	json_decref(out);
	return 0;
}

int cmd_domain(int argc, char **argv)
{
	const char *tenant = NULL, *stream = NULL, *selector = NULL, *sub;
	const struct cmd_opt opts[] = { { "--tenant", &tenant, NULL },
					{ "--stream", &stream, NULL },
					{ "--selector", &selector, NULL } };
	struct cmd_api a;
	char prog[96], path[600], d[512];
	json_t *body, *out = NULL;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(domain_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	snprintf(prog, sizeof prog, "sluicectl domain %s", sub);
	if ((rc = cmd_api_parse(&a, prog, argc - 2, argv + 2, opts, 3)))
		return rc;
	if (a.help) {
		fputs(domain_help, stdout);
		return 0;
	}
	if (!strcmp(sub, "list")) {
		if (a.nargs) {
			fprintf(stderr, "%s: no arguments expected (see --help)\n", prog);
			return 2;
		}
		return cmd_api_connect(&a) ?: domain_list(&a, tenant);
	}
	if (strcmp(sub, "add") && strcmp(sub, "records") && strcmp(sub, "verify") &&
	    strcmp(sub, "remove")) {
		fprintf(stderr, "sluicectl domain: unknown command '%s'\n%s", sub, domain_help);
		return 2;
	}
	if (a.nargs != 1) {
		fprintf(stderr, "%s: expected a DOMAIN (see --help)\n", prog);
		return 2;
	}
	if ((rc = cmd_api_connect(&a)))
		return rc;
	api_client_escape(a.args[0], d, sizeof d);
	if (!strcmp(sub, "add")) {
		body = json_pack("{s:s}", "domain", a.args[0]);
		if (stream)
			json_object_set_new(body, "stream", json_string(stream));
		if (selector)
			json_object_set_new(body, "selector", json_string(selector));
		if (tenant)
			json_object_set_new(body, "tenant", json_string(tenant));
		rc = cmd_api_request(&a, "POST", "/v1/domains", body, &out);
		json_decref(body);
	} else if (!strcmp(sub, "records")) {
		snprintf(path, sizeof path, "/v1/domains/%s", d);
		rc = cmd_api_request(&a, "GET", path, NULL, &out);
	} else if (!strcmp(sub, "verify")) {
		snprintf(path, sizeof path, "/v1/domains/%s/verify", d);
		rc = cmd_api_request(&a, "POST", path, NULL, &out);
	} else {
		snprintf(path, sizeof path, "/v1/domains/%s", d);
		rc = cmd_api_request(&a, "DELETE", path, NULL, &out);
		if (!rc && !a.json)
			printf("removed %s\n", a.args[0]);
		json_decref(out);
		return rc;
	}
	if (!rc) {
		if (a.json)
			cmd_api_print_json(out);
		else
			print_records(out);
		if (!strcmp(sub, "verify") && !json_is_true(json_object_get(out, "verified")))
			rc = 1;
	}
	json_decref(out);
	return rc;
}
