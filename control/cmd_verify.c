/* cmd_verify.c — sluicectl verify ...; see cmd_verify.h. */
#include "cmd_verify.h"

#include "cmd_api.h"

#include <stdio.h>
#include <string.h>

static const char verify_help[] =
	"usage: sluicectl verify COMMAND ADDRESS [--tenant T] [--json] [--api URL] [--token T]\n"
	"commands:\n"
	"  request ADDRESS    start verify-by-email: prints the address the owner of\n"
	"                     ADDRESS must send any message to (from ADDRESS)\n"
	"  show ADDRESS       the request and whether ADDRESS is verified\n";

int cmd_verify(int argc, char **argv)
{
	const char *tenant = NULL, *sub;
	const struct cmd_opt opts[] = { { "--tenant", &tenant, NULL } };
	struct cmd_api a;
	char prog[96], path[1200], addr[1024], t[256];
	json_t *body, *out = NULL;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(verify_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	snprintf(prog, sizeof prog, "sluicectl verify %s", sub);
	if ((rc = cmd_api_parse(&a, prog, argc - 2, argv + 2, opts, 1)))
		return rc;
	if (a.help) {
		fputs(verify_help, stdout);
		return 0;
	}
	if (strcmp(sub, "request") && strcmp(sub, "show")) {
		fprintf(stderr, "sluicectl verify: unknown command '%s'\n%s", sub, verify_help);
		return 2;
	}
	if (a.nargs != 1) {
		fprintf(stderr, "%s: expected an ADDRESS (see --help)\n", prog);
		return 2;
	}
	if ((rc = cmd_api_connect(&a)))
		return rc;
	if (!strcmp(sub, "request")) {
		body = json_pack("{s:s}", "address", a.args[0]);
		if (tenant)
			json_object_set_new(body, "tenant", json_string(tenant));
		rc = cmd_api_request(&a, "POST", "/v1/verifications", body, &out);
		json_decref(body);
		if (!rc && !a.json)
			printf("ask the owner of %s to send any message from it to:\n%s\n",
			       cmd_api_str(out, "address"), cmd_api_str(out, "write_to"));
	} else {
		api_client_escape(a.args[0], addr, sizeof addr);
		t[0] = 0;
		if (tenant)
			api_client_escape(tenant, t, sizeof t);
		snprintf(path, sizeof path, "/v1/verifications/%s%s%s", addr, t[0] ? "?tenant=" : "",
			 t);
		rc = cmd_api_request(&a, "GET", path, NULL, &out);
		if (!rc && !a.json)
			printf("%s: %s%s%s\n", cmd_api_str(out, "address"),
			       json_is_true(json_object_get(out, "verified")) ? "verified by "
									     : "not verified; write to ",
			       json_is_true(json_object_get(out, "verified"))
				       ? cmd_api_str(out, "method")
				       : cmd_api_str(out, "write_to"),
			       "");
	}
	if (!rc && a.json)
		cmd_api_print_json(out);
	json_decref(out);
	return rc;
}
