/* cmd_audit.c — sluicectl audit; see cmd_audit.h. */
#include "cmd_audit.h"

#include "cmd_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char audit_help[] =
	"usage: sluicectl audit [--tenant T] [--limit N] [--after SEQ] [--json]\n"
	"                       [--api URL] [--token T] [-c FILE]\n"
	"The audit log, oldest first: who did what to which tenant, when and why.\n"
	"  --tenant T   only entries about tenant T (lifecycle, settings, users, tokens)\n"
	"  --limit N    at most N entries (default: all)\n"
	"  --after SEQ  entries after sequence number SEQ\n";

int cmd_audit(int argc, char **argv)
{
	static const char *const hdr[] = { "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "REASON" };
	const char *tenant = NULL, *limit = NULL, *after = NULL;
	const struct cmd_opt opts[] = { { "--tenant", &tenant, NULL },
					{ "--limit", &limit, NULL },
					{ "--after", &after, NULL } };
	char path[768], cur[32] = "";
	long want = -1;
	json_t *all, *v;
	struct cmd_table tb;
	struct cmd_api a;
	size_t i;
	int rc;

	if ((rc = cmd_api_parse(&a, "sluicectl audit", argc - 1, argv + 1, opts, 3)))
		return rc;
	if (a.help) {
		fputs(audit_help, stdout);
		return 0;
	}
	if (a.nargs) {
		fprintf(stderr, "sluicectl audit: no arguments expected (see --help)\n");
		return 2;
	}
	if (limit) {
		char *end;

		want = strtol(limit, &end, 10);
		if (*end || want < 1) {
			fprintf(stderr, "sluicectl audit: --limit must be a positive number\n");
			return 2;
		}
	}
	if (after)
		api_client_escape(after, cur, sizeof cur);
	if ((rc = cmd_api_connect(&a)))
		return rc;
	snprintf(path, sizeof path, "/v1/audit");
	cmd_api_query_add(path, sizeof path, "tenant", tenant);
	if ((rc = cmd_api_get_all(&a, path, after ? cur : NULL, want < 0 ? 0 : (size_t)want,
				  &all)))
		return rc;
	if (a.json) {
		cmd_api_print_items(all);
	} else {
		cmd_table_init(&tb, 6, hdr);
		json_array_foreach(all, i, v) {
			char seq[24], when[32];
			const char *row[6] = { seq, when, cmd_api_str(v, "actor"),
					       cmd_api_str(v, "action"), cmd_api_str(v, "target"),
					       cmd_api_str(v, "reason") };

			cmd_api_int(v, "seq", seq);
			cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "time_ms")), when);
			cmd_table_add(&tb, row);
		}
		cmd_table_print(&tb, stdout);
	}
	json_decref(all);
	return rc;
}
