/* cmd_ip.c — sluicectl ip list; see cmd_ip.h. */
#include "cmd_ip.h"

#include "cmd_api.h"

#include <stdio.h>
#include <string.h>

static const char ip_help[] =
	"usage: sluicectl ip list [--json] [--api URL] [--token T] [-c FILE]\n"
	"  the pools' source IPs: EHLO name, reverse DNS and whether it is\n"
	"  forward-confirmed (ok / mismatch / unknown), transport, warm-up,\n"
	"  DNSBL self-check (clean / the zones listing it: the IP is paused / off)\n";

int cmd_ip(int argc, char **argv)
{
	static const char *const hdr[] = { "POOL", "IP", "EHLO", "RDNS", "FCRDNS", "TRANSPORT",
					   "WARMUP", "DNSBL", "WHY" };
	struct cmd_table tb;
	struct cmd_api a;
	json_t *page, *v;
	size_t i;
	int rc;

	if (argc < 2 || strcmp(argv[1], "list")) {
		fputs(ip_help, argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
				       ? stdout : stderr);
		return argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
	}
	if ((rc = cmd_api_parse(&a, "sluicectl ip list", argc - 2, argv + 2, NULL, 0)))
		return rc;
	if (a.help) {
		fputs(ip_help, stdout);
		return 0;
	}
	if (a.nargs) {
		fprintf(stderr, "sluicectl ip list: no arguments expected (see --help)\n");
		return 2;
	}
	if ((rc = cmd_api_connect(&a)) || (rc = cmd_api_request(&a, "GET", "/v1/ips", NULL, &page)))
		return rc;
	if (a.json) {
		cmd_api_print_json(page);
	} else {
		cmd_table_init(&tb, 9, hdr);
		json_array_foreach(json_object_get(page, "items"), i, v) {
			const char *rdns = cmd_api_str(v, "rdns");
			const char *zones = cmd_api_str(v, "dnsbl_zones");
			const char *bl = zones[0] ? zones : cmd_api_str(v, "dnsbl");
			const char *row[9] = { cmd_api_str(v, "pool"), cmd_api_str(v, "ip"),
					       cmd_api_str(v, "ehlo"), rdns[0] ? rdns : "-",
					       cmd_api_str(v, "fcrdns"), cmd_api_str(v, "transport"),
					       cmd_api_str(v, "warmup"), bl[0] ? bl : "-",
					       cmd_api_str(v, "why") };

			cmd_table_add(&tb, row);
		}
		cmd_table_print(&tb, stdout);
	}
	json_decref(page);
	return 0;
}
