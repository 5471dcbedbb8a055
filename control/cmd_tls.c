/* cmd_tls.c — sluicectl tls; see cmd_tls.h. */
#include "cmd_tls.h"

#include "cmd_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char tls_help[] =
	"usage: sluicectl tls [--json] [--api URL] [--token T] [-c FILE]\n"
	"  outbound TLS results per policy domain (require, verify, MTA-STS):\n"
	"  successful and failed sessions, failures by RFC 8460 result type\n";

int cmd_tls(int argc, char **argv)
{
	static const char *const hdr[] = { "DOMAIN", "POLICY", "SUCCESS", "FAILURE", "FAILURES" };
	struct cmd_table tb;
	struct cmd_api a;
	json_t *page, *v;
	size_t i;
	int rc;

	if ((rc = cmd_api_parse(&a, "sluicectl tls", argc - 1, argv + 1, NULL, 0)))
		return rc;
	if (a.help) {
		fputs(tls_help, stdout);
		return 0;
	}
	if (a.nargs) {
		fprintf(stderr, "sluicectl tls: no arguments expected (see --help)\n");
		return 2;
	}
	if ((rc = cmd_api_connect(&a)) || (rc = cmd_api_request(&a, "GET", "/v1/tls", NULL, &page)))
		return rc;
	if (a.json) {
		cmd_api_print_json(page);
	} else {
		cmd_table_init(&tb, 5, hdr);
		json_array_foreach(json_object_get(page, "domains"), i, v) {
			char ok[24], bad[24], why[512] = "";
			const char *key;
			json_t *n;
			size_t o = 0;

			snprintf(ok, sizeof ok, "%" JSON_INTEGER_FORMAT,
				 json_integer_value(json_object_get(v, "success")));
			snprintf(bad, sizeof bad, "%" JSON_INTEGER_FORMAT,
				 json_integer_value(json_object_get(v, "failure")));
			json_object_foreach(json_object_get(v, "failures"), key, n) {
				int w = snprintf(why + o, sizeof why - o, "%s%s=%" JSON_INTEGER_FORMAT,
						 o ? " " : "", key, json_integer_value(n));

				if (w < 0 || (size_t)w >= sizeof why - o)
					break;
				o += (size_t)w;
			}
			{
				const char *row[5] = { cmd_api_str(v, "domain"), cmd_api_str(v, "policy"),
						       ok, bad, o ? why : "-" };

				cmd_table_add(&tb, row);
			}
		}
		cmd_table_print(&tb, stdout);
	}
	json_decref(page);
	return 0;
}
