/* cmd_token.c — sluicectl token ...; see cmd_token.h. */
#include "cmd_token.h"

#include "cmd_api.h"

#include <stdio.h>
#include <string.h>

static const char token_help[] =
	"usage: sluicectl token COMMAND [ARGS] [--json] [--api URL] [--token T] [-c FILE]\n"
	"commands:\n"
	"  list [--tenant T]              token ids, roles and tenants (never the tokens)\n"
	"  create --tenant T              a token for tenant T (sees only T's data)\n"
	"  create --operator              an operator token (everything)\n"
	"  revoke ID                      revoke the token with that id\n"
	"The token is printed once by create and cannot be shown again.\n";

static int token_list(struct cmd_api *a, const char *tenant)
{
	static const char *const hdr[] = { "ID", "ROLE", "TENANT", "CREATED" };
	char path[512];
	json_t *all, *v;
	struct cmd_table tb;
	size_t i;
	int rc;

	snprintf(path, sizeof path, "/v1/tokens");
	cmd_api_query_add(path, sizeof path, "tenant", tenant);
	if ((rc = cmd_api_get_all(a, path, NULL, 0, &all)))
		return rc;
	if (a->json) {
		cmd_api_print_items(all);
	} else {
		cmd_table_init(&tb, 4, hdr);
		json_array_foreach(all, i, v) {
			char created[32];
			const char *row[4] = { cmd_api_str(v, "id"), cmd_api_str(v, "role"),
					       cmd_api_str(v, "tenant"), created };

			cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "created")),
				     created);
			if (!row[2][0])
				row[2] = "-";
			cmd_table_add(&tb, row);
		}
		cmd_table_print(&tb, stdout);
	}
	json_decref(all);
	return rc;
}

int cmd_token(int argc, char **argv)
{
	const char *tenant = NULL, *sub;
	bool operator = false;
	const struct cmd_opt opts[] = { { "--tenant", &tenant, NULL },
					{ "--operator", NULL, &operator } };
	struct cmd_api a;
	char prog[96], path[256];
	json_t *body, *out = NULL;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(token_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	snprintf(prog, sizeof prog, "sluicectl token %s", sub);
	if ((rc = cmd_api_parse(&a, prog, argc - 2, argv + 2, opts, 2)))
		return rc;
	if (a.help) {
		fputs(token_help, stdout);
		return 0;
	}
	if (!strcmp(sub, "list")) {
		if (a.nargs) {
			fprintf(stderr, "%s: no arguments expected (see --help)\n", prog);
			return 2;
		}
		return cmd_api_connect(&a) ?: token_list(&a, tenant);
	}
	if (!strcmp(sub, "create")) {
		if (a.nargs || !tenant == !operator) {
			fprintf(stderr, "%s: give --tenant T or --operator (see --help)\n", prog);
			return 2;
		}
		if ((rc = cmd_api_connect(&a)))
			return rc;
		body = operator ? json_pack("{s:s}", "role", "operator")
				: json_pack("{s:s,s:s}", "role", "tenant", "tenant", tenant);
		rc = cmd_api_request(&a, "POST", "/v1/tokens", body, &out);
		json_decref(body);
		if (!rc) {
			if (a.json)
				cmd_api_print_json(out);
			else
				printf("%s\n(id %s; shown only this once)\n", cmd_api_str(out, "token"),
				       cmd_api_str(out, "id"));
		}
		json_decref(out);
		return rc;
	}
	if (!strcmp(sub, "revoke")) {
		char id[64];

		if (a.nargs != 1) {
			fprintf(stderr, "%s: expected a token ID (see --help)\n", prog);
			return 2;
		}
		if ((rc = cmd_api_connect(&a)))
			return rc;
		api_client_escape(a.args[0], id, sizeof id);
		snprintf(path, sizeof path, "/v1/tokens/%s", id);
		rc = cmd_api_request(&a, "DELETE", path, NULL, &out);
		if (!rc && !a.json)
			printf("revoked token %s\n", a.args[0]);
		json_decref(out);
		return rc;
	}
	fprintf(stderr, "sluicectl token: unknown command '%s'\n%s", sub, token_help);
	return 2;
}
