/* cmd_events.c — sluicectl events; see cmd_events.h. */
#include "cmd_events.h"

#include "cmd_api.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char events_help[] =
	"usage: sluicectl events [--tenant T] [--event KIND] [--limit N] [--follow] [--json]\n"
	"                        [--api URL] [--token T] [-c FILE]\n"
	"The newest events of sluiced's event log (docs/api.md, Events), oldest first.\n"
	"  --tenant T    only tenant T's events\n"
	"  --event KIND  only this kind: delivered, deferred, bounced, purged, ...\n"
	"  --limit N     how many (default 50, at most 1000)\n"
	"  --follow      keep printing new events as they come (Ctrl-C stops)\n"
	"  --json        the events as JSON lines\n";

static volatile sig_atomic_t interrupted;

static void on_int(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void print_events(const struct cmd_api *a, const json_t *items, bool header)
{
	static const char *const hdr[] = { "TIME", "EVENT", "TENANT", "ID", "RCPT", "RESPONSE" };
	struct cmd_table tb;
	const json_t *v;
	size_t i;

	if (a->json) {
		json_array_foreach(items, i, v) {
			char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

			if (s)
				puts(s);
			free(s);
		}
		fflush(stdout);
		return;
	}
	if (!header) { /* following: new lines as they come, no table header */
		json_array_foreach(items, i, v)
			printf("%s  %s  %s  %s  %s  %s\n", cmd_api_str(v, "time"),
			       cmd_api_str(v, "event"), cmd_api_str(v, "tenant"), cmd_api_str(v, "id"),
			       cmd_api_str(v, "rcpt"), cmd_api_str(v, "response"));
		fflush(stdout);
		return;
	}
	cmd_table_init(&tb, 6, hdr);
	json_array_foreach(items, i, v) {
		const char *row[6] = { cmd_api_str(v, "time"),	 cmd_api_str(v, "event"),
				       cmd_api_str(v, "tenant"), cmd_api_str(v, "id"),
				       cmd_api_str(v, "rcpt"),	 cmd_api_str(v, "response") };

		cmd_table_add(&tb, row);
	}
	cmd_table_print(&tb, stdout);
	fflush(stdout);
}

int cmd_events(int argc, char **argv)
{
	const char *tenant = NULL, *kind = NULL, *limit = NULL;
	bool follow = false;
	const struct cmd_opt opts[] = { { "--tenant", &tenant, NULL },
					{ "--event", &kind, NULL },
					{ "--limit", &limit, NULL },
					{ "--follow", NULL, &follow } };
	char query[1024], cursor[32] = "";
	struct cmd_api a;
	json_t *page;
	int rc;

	if ((rc = cmd_api_parse(&a, "sluicectl events", argc - 1, argv + 1, opts,
				sizeof opts / sizeof opts[0])))
		return rc;
	if (a.help) {
		fputs(events_help, stdout);
		return 0;
	}
	if (a.nargs) {
		fprintf(stderr, "sluicectl events: no arguments expected (see --help)\n");
		return 2;
	}
	if (limit && (atol(limit) < 1 || atol(limit) > 1000 || strspn(limit, "0123456789") !=
								   strlen(limit))) {
		fprintf(stderr, "sluicectl events: --limit must be a number from 1 to 1000\n");
		return 2;
	}
	if ((rc = cmd_api_connect(&a)))
		return rc;
	signal(SIGINT, on_int);
	for (bool first = true; !interrupted; first = false) {
		snprintf(query, sizeof query, "/v1/events");
		cmd_api_query_add(query, sizeof query, "limit", limit ? limit : "50");
		cmd_api_query_add(query, sizeof query, "tenant", tenant);
		cmd_api_query_add(query, sizeof query, "event", kind);
		cmd_api_query_add(query, sizeof query, "after", cursor[0] ? cursor : NULL);
		if ((rc = cmd_api_request(&a, "GET", query, NULL, &page)))
			return rc;
		print_events(&a, json_object_get(page, "items"), first);
		snprintf(cursor, sizeof cursor, "%s", cmd_api_str(page, "next"));
		json_decref(page);
		if (!follow)
			break;
		sleep(1);
	}
	return 0;
}
