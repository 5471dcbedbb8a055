/* cmd_queue.c — sluicectl queue; see cmd_queue.h. */
#include "cmd_queue.h"

#include "cmd_api.h"

#include <stdio.h>
#include <string.h>

static const char queue_help[] =
	"usage: sluicectl queue list [--by domain|tenant|stream|source_ip|pool]\n"
	"                            [--tenant T] [--domain D] [--stream S]\n"
	"       sluicectl queue show ID\n"
	"       sluicectl queue pause|resume|retry|purge [--tenant T] [--domain D] [--stream S]\n"
	"       (and --json, --api URL, --token T, -c FILE)\n"
	"list     queued deliveries grouped by --by (default domain): counts per\n"
	"         state, oldest age, last reply\n"
	"show     one queued message: envelope and each recipient's state\n"
	"pause    matching deliveries wait (attempts under way finish); kept in\n"
	"         memory, so a restart resumes everything\n"
	"resume   undo a pause (give the same selector)\n"
	"retry    matching deferred deliveries are tried now\n"
	"purge    remove matching recipients (a \"purged\" event each); needs a selector\n"
	"The selector fields must all match; a tenant token acts on its own mail only.\n";

static int queue_list(struct cmd_api *a, const char *by, const char *tenant, const char *domain,
		      const char *stream)
{
	static const char *const hdr[] = { "KEY",    "DELIVERIES", "RCPTS",  "READY",
					   "ACTIVE", "DEFERRED",   "PAUSED", "OLDEST_S",
					   "LAST_RESPONSE" };
	static const char *const nums[] = { "deliveries", "recipients", "ready", "active",
					    "deferred",   "paused",     "oldest_age_s" };
	char path[2048] = "/v1/queues";
	struct cmd_table tb;
	json_t *r, *v;
	size_t i;
	int rc;

	cmd_api_query_add(path, sizeof path, "by", by);
	cmd_api_query_add(path, sizeof path, "tenant", tenant);
	cmd_api_query_add(path, sizeof path, "domain", domain);
	cmd_api_query_add(path, sizeof path, "stream", stream);
	if ((rc = cmd_api_request(a, "GET", path, NULL, &r)))
		return rc;
	if (a->json) {
		cmd_api_print_json(r);
		json_decref(r);
		return 0;
	}
	cmd_table_init(&tb, 9, hdr);
	json_array_foreach(json_object_get(r, "items"), i, v) {
		char cell[7][24];
		const char *row[9];

		row[0] = cmd_api_str(v, "key")[0] ? cmd_api_str(v, "key") : "-";
		for (size_t k = 0; k < 7; k++) {
			cmd_api_int(v, nums[k], cell[k]);
			row[k + 1] = cell[k];
		}
		row[8] = cmd_api_str(v, "last_response");
		cmd_table_add(&tb, row);
	}
	cmd_table_print(&tb, stdout);
	json_decref(r);
	return 0;
}

static int queue_show(struct cmd_api *a, const char *id)
{
	static const char *const hdr[] = { "RECIPIENT", "STATE", "WAITS", "ATTEMPTS",
					   "NEXT_ATTEMPT", "SOURCE_IP", "LAST_RESPONSE" };
	char path[600], esc[512], att[24];
	struct cmd_table tb;
	json_t *r, *v;
	size_t i;
	int rc;

	api_client_escape(id, esc, sizeof esc);
	snprintf(path, sizeof path, "/v1/messages/%s", esc);
	if ((rc = cmd_api_request(a, "GET", path, NULL, &r)))
		return rc;
	if (a->json) {
		cmd_api_print_json(r);
		json_decref(r);
		return 0;
	}
	printf("id:        %s\ntenant:    %s\nstream:    %s\nmail from: %s\n",
	       cmd_api_str(r, "id"), cmd_api_str(r, "tenant"), cmd_api_str(r, "stream"),
	       cmd_api_str(r, "mail_from"));
	cmd_table_init(&tb, 7, hdr);
	json_array_foreach(json_object_get(r, "recipients"), i, v) {
		const char *next = cmd_api_str(v, "next_attempt");
		const char *row[7] = { cmd_api_str(v, "rcpt"), cmd_api_str(v, "state"),
				       cmd_api_str(v, "queue"), att, next[0] ? next : "-",
				       cmd_api_str(v, "source_ip"),
				       cmd_api_str(v, "last_response") };

		cmd_api_int(v, "attempts", att);
		cmd_table_add(&tb, row);
	}
	cmd_table_print(&tb, stdout);
	json_decref(r);
	return 0;
}

static int queue_control(struct cmd_api *a, const char *action, const char *tenant,
			 const char *domain, const char *stream)
{
	char path[64];
	json_t *body = json_object(), *r;
	int rc;

	if (tenant)
		json_object_set_new(body, "tenant", json_string(tenant));
	if (domain)
		json_object_set_new(body, "domain", json_string(domain));
	if (stream)
		json_object_set_new(body, "stream", json_string(stream));
	snprintf(path, sizeof path, "/v1/queues/%s", action);
	rc = cmd_api_request(a, "POST", path, body, &r);
	json_decref(body);
	if (rc)
		return rc;
	if (a->json) {
		cmd_api_print_json(r);
	} else {
		char n[24];

		cmd_api_int(r, "recipients", n);
		printf("%s: %s recipient(s)\n", action, n);
	}
	json_decref(r);
	return 0;
}

int cmd_queue(int argc, char **argv)
{
	static const char *const actions[] = { "pause", "resume", "retry", "purge" };
	const char *by = NULL, *tenant = NULL, *domain = NULL, *stream = NULL;
	const struct cmd_opt opts[] = { { "--by", &by, NULL },
					{ "--tenant", &tenant, NULL },
					{ "--domain", &domain, NULL },
					{ "--stream", &stream, NULL } };
	const char *sub = argc > 1 ? argv[1] : NULL;
	char prog[64];
	struct cmd_api a;
	int rc;

	if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		fputs(queue_help, sub ? stdout : stderr);
		return sub ? 0 : 2;
	}
	snprintf(prog, sizeof prog, "sluicectl queue %s", sub);
	if ((rc = cmd_api_parse(&a, prog, argc - 2, argv + 2, opts, sizeof opts / sizeof opts[0])))
		return rc;
	if (a.help) {
		fputs(queue_help, stdout);
		return 0;
	}
	if (!strcmp(sub, "list")) {
		if (a.nargs) {
			fprintf(stderr, "%s: no arguments expected (see --help)\n", prog);
			return 2;
		}
		return cmd_api_connect(&a) ?: queue_list(&a, by, tenant, domain, stream);
	}
	if (!strcmp(sub, "show")) {
		if (a.nargs != 1) {
			fprintf(stderr, "%s: expected one message id (see --help)\n", prog);
			return 2;
		}
		return cmd_api_connect(&a) ?: queue_show(&a, a.args[0]);
	}
	for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
		if (strcmp(sub, actions[i]))
			continue;
		if (a.nargs || by) {
			fprintf(stderr, "%s: takes only --tenant, --domain, --stream (see --help)\n",
				prog);
			return 2;
		}
		if (!strcmp(sub, "purge") && !tenant && !domain && !stream) {
			fprintf(stderr, "%s: refusing to purge everything: give --tenant, --domain "
					"or --stream\n", prog);
			return 2;
		}
		return cmd_api_connect(&a) ?: queue_control(&a, sub, tenant, domain, stream);
	}
	fprintf(stderr, "sluicectl queue: unknown command '%s' (list, show, pause, resume, retry, "
			"purge)\n", sub);
	return 2;
}
