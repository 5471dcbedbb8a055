/* cmd_reputation.c — sluicectl suppress / verp / reputation; see cmd_reputation.h. */
#include "cmd_reputation.h"

#include "cmd_api.h"
#include "file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char suppress_help[] =
	"usage: sluicectl suppress list|add|remove|import|export [ARG] [--tenant T] [--reason R]\n"
	"                          [--json] [--api URL] [--token T] [-c FILE]\n"
	"Suppression lists: addresses mail is never sent to (per tenant, or global).\n"
	"  list                 entries (an operator: every list, or --tenant T; T '*' = global)\n"
	"  add ADDRESS          suppress ADDRESS (--reason manual|unsubscribe|hard_bounce|complaint)\n"
	"  remove ADDRESS       lift it\n"
	"  import FILE.csv      add the entries of a CSV file (tenant,address,reason,added_at_ms;\n"
	"                       or bare addresses) ('-' = stdin)\n"
	"  export               print the entries as CSV\n"
	"A tenant token always works on its own list.\n";

static int suppress_list(struct cmd_api *a, const char *tenant)
{
	static const char *const hdr[] = { "TENANT", "ADDRESS", "REASON", "ADDED" };
	char path[1024];
	json_t *all, *v;
	struct cmd_table tb;
	size_t i;
	int rc;

	snprintf(path, sizeof path, "/v1/suppressions");
	cmd_api_query_add(path, sizeof path, "tenant", tenant);
	if ((rc = cmd_api_get_all(a, path, NULL, 0, &all)))
		return rc;
	if (a->json) {
		cmd_api_print_items(all);
	} else {
		cmd_table_init(&tb, 4, hdr);
		json_array_foreach(all, i, v) {
			char when[32];
			const char *row[4] = { cmd_api_str(v, "tenant"), cmd_api_str(v, "address"),
					       cmd_api_str(v, "reason"), when };

			cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "added_ms")), when);
			cmd_table_add(&tb, row);
		}
		cmd_table_print(&tb, stdout);
	}
	json_decref(all);
	return rc;
}

int cmd_suppress(int argc, char **argv)
{
	const char *tenant = NULL, *reason = NULL, *verb;
	const struct cmd_opt opts[] = { { "--tenant", &tenant, NULL }, { "--reason", &reason, NULL } };
	char path[1024], esc[800], t[256] = "", *text = NULL;
	json_t *body = NULL, *out = NULL;
	struct cmd_api a;
	size_t len;
	int rc;

	if ((rc = cmd_api_parse(&a, "sluicectl suppress", argc - 1, argv + 1, opts, 2)))
		return rc;
	if (a.help || a.nargs < 1) {
		fputs(suppress_help, a.help ? stdout : stderr);
		return a.help ? 0 : 2;
	}
	verb = a.args[0];
	if (tenant)
		api_client_escape(tenant, t, sizeof t);
	if ((!strcmp(verb, "add") || !strcmp(verb, "remove") || !strcmp(verb, "import")) &&
	    a.nargs != 2) {
		fprintf(stderr, "sluicectl suppress %s: one argument expected (see --help)\n", verb);
		return 2;
	}
	if (!strcmp(verb, "import")) {
		rc = !strcmp(a.args[1], "-") ? sl_file_read("/dev/stdin", 256 << 20, &text, &len)
					     : sl_file_read(a.args[1], 256 << 20, &text, &len);
		if (rc < 0) {
			fprintf(stderr, "sluicectl suppress import: %s: cannot read\n", a.args[1]);
			return 1;
		}
	} else if (strcmp(verb, "list") && strcmp(verb, "export") && strcmp(verb, "add") &&
		   strcmp(verb, "remove")) {
		fprintf(stderr, "sluicectl suppress: unknown action '%s' (see --help)\n", verb);
		return 2;
	}
	if ((rc = cmd_api_connect(&a))) {
		free(text);
		return rc;
	}
	if (!strcmp(verb, "list")) {
		rc = suppress_list(&a, tenant);
	} else if (!strcmp(verb, "export")) {
		snprintf(path, sizeof path, "/v1/suppressions/export%s%s", t[0] ? "?tenant=" : "", t);
		if (!(rc = cmd_api_request(&a, "GET", path, NULL, &out)))
			fputs(cmd_api_str(out, "csv"), stdout);
	} else if (!strcmp(verb, "add")) {
		body = json_pack("{s:s}", "address", a.args[1]);
		if (tenant)
			json_object_set_new(body, "tenant", json_string(tenant));
		if (reason)
			json_object_set_new(body, "reason", json_string(reason));
		if (!(rc = cmd_api_request(&a, "POST", "/v1/suppressions", body, &out)))
			printf("%s %s\n", a.args[1],
			       json_is_true(json_object_get(out, "added")) ? "suppressed" :
									     "was already suppressed");
	} else if (!strcmp(verb, "remove")) {
		api_client_escape(a.args[1], esc, sizeof esc);
		snprintf(path, sizeof path, "/v1/suppressions/%s%s%s", esc, t[0] ? "?tenant=" : "", t);
		if (!(rc = cmd_api_request(&a, "DELETE", path, NULL, &out)))
			printf("%s removed\n", a.args[1]);
	} else {
		body = json_pack("{s:s%}", "csv", text, len);
		if (tenant)
			json_object_set_new(body, "tenant", json_string(tenant));
		if (reason)
			json_object_set_new(body, "reason", json_string(reason));
		if (!(rc = cmd_api_request(&a, "POST", "/v1/suppressions/import", body, &out)))
			printf("%lld entries, %lld new\n",
			       (long long)json_integer_value(json_object_get(out, "entries")),
			       (long long)json_integer_value(json_object_get(out, "added")));
	}
	if (!rc && a.json && out && strcmp(verb, "export"))
		cmd_api_print_json(out);
	json_decref(body);
	json_decref(out);
	free(text);
	return rc;
}

int cmd_verp(int argc, char **argv)
{
	char path[1024], esc[800];
	json_t *out = NULL;
	struct cmd_api a;
	int rc;

	if ((rc = cmd_api_parse(&a, "sluicectl verp", argc - 1, argv + 1, NULL, 0)))
		return rc;
	if (a.help || a.nargs != 2 || strcmp(a.args[0], "decode")) {
		fputs("usage: sluicectl verp decode ADDRESS [--json] [--api URL] [--token T]\n"
		      "Which tenant, message (queue id) and recipient a VERP return path names.\n",
		      a.help ? stdout : stderr);
		return a.help ? 0 : 2;
	}
	if ((rc = cmd_api_connect(&a)))
		return rc;
	api_client_escape(a.args[1], esc, sizeof esc);
	snprintf(path, sizeof path, "/v1/verp/decode?address=%s", esc);
	if ((rc = cmd_api_request(&a, "GET", path, NULL, &out)))
		return rc;
	if (a.json) {
		cmd_api_print_json(out);
	} else {
		char idx[24];

		cmd_api_int(out, "rcpt_index", idx);
		printf("tenant %s\nid %s\nrcpt_index %s\nstream %s%s\n", cmd_api_str(out, "tenant"),
		       cmd_api_str(out, "id"), idx, cmd_api_str(out, "stream"),
		       json_is_true(json_object_get(out, "stale")) ? "\n(stale: older than the limit)" :
								     "");
	}
	json_decref(out);
	return 0;
}

/* "counts: k=v ..." and "rates: k=x% ..." lines of a subject. */
static void print_numbers(const char *indent, const json_t *o)
{
	const char *k;
	json_t *v;

	printf("%scounts:", indent);
	json_object_foreach(json_object_get(o, "counts"), k, v)
		printf(" %s=%lld", k, (long long)json_integer_value(v));
	printf("\n%srates:", indent);
	json_object_foreach(json_object_get(o, "rates"), k, v) {
		if (json_is_null(v))
			printf(" %s=- (under the guard)", k);
		else
			printf(" %s=%.2f%%", k, json_real_value(v) * 100);
	}
	printf("\n");
}

/* sluicectl reputation hold|resume TENANT DOMAIN STREAM [--reason R] */
static int reputation_set_action(struct cmd_api *a, const char *reason)
{
	char path[1024], t[256], d[600], st[64];
	json_t *body = json_object(), *out = NULL;
	int rc;

	if (reason)
		json_object_set_new(body, "reason", json_string(reason));
	api_client_escape(a->args[1], t, sizeof t);
	api_client_escape(a->args[2], d, sizeof d);
	api_client_escape(a->args[3], st, sizeof st);
	snprintf(path, sizeof path, "/v1/tenants/%s/cfgsets/%s/%s/%s", t, d, st, a->args[0]);
	rc = cmd_api_request(a, "POST", path, body, &out);
	if (!rc) {
		if (a->json)
			cmd_api_print_json(out);
		else
			printf("configuration set %s/%s/%s %s\n", a->args[1], a->args[2], a->args[3],
			       json_is_true(json_object_get(out, "paused")) ? "paused" : "resumed");
	}
	json_decref(body);
	json_decref(out);
	return rc;
}

int cmd_reputation(int argc, char **argv)
{
	const char *reason = NULL;
	const struct cmd_opt opts[] = { { "--reason", &reason, NULL } };
	char path[512], esc[256];
	json_t *out = NULL, *v;
	struct cmd_api a;
	bool set_action;
	size_t i;
	int rc;

	if ((rc = cmd_api_parse(&a, "sluicectl reputation", argc - 1, argv + 1, opts, 1)))
		return rc;
	set_action = a.nargs == 4 && (!strcmp(a.args[0], "hold") || !strcmp(a.args[0], "resume"));
	if (a.help || (a.nargs != 1 && !set_action)) {
		fputs("usage: sluicectl reputation TENANT [--json] [--api URL] [--token T]\n"
		      "       sluicectl reputation hold|resume TENANT DOMAIN STREAM [--reason R]\n"
		      "The tenant's state, its counts and rates over the policy window and the\n"
		      "recent automatic actions (policy decisions, trap hits, response rules);\n"
		      "each configuration set (sending domain x stream) with its policy state\n"
		      "and whether it is paused. hold pauses a configuration set (its mail is\n"
		      "kept, not delivered); resume releases it (also a policy hold).\n",
		      a.help ? stdout : stderr);
		return a.help ? 0 : 2;
	}
	if ((rc = cmd_api_connect(&a)))
		return rc;
	if (set_action)
		return reputation_set_action(&a, reason);
	api_client_escape(a.args[0], esc, sizeof esc);
	snprintf(path, sizeof path, "/v1/reputation/%s", esc);
	if ((rc = cmd_api_request(&a, "GET", path, NULL, &out)))
		return rc;
	if (a.json) {
		cmd_api_print_json(out);
		json_decref(out);
		return 0;
	}
	printf("tenant %s: state %s, policy %s\n", cmd_api_str(out, "tenant"),
	       cmd_api_str(out, "state"), cmd_api_str(out, "policy_state"));
	print_numbers("  ", out);
	json_array_foreach(json_object_get(out, "sets"), i, v) {
		printf("set %s/%s: policy %s%s\n", cmd_api_str(v, "domain"),
		       cmd_api_str(v, "stream"), cmd_api_str(v, "policy_state"),
		       json_is_true(json_object_get(v, "paused")) ? ", paused" : "");
		print_numbers("  ", v);
	}
	json_array_foreach(json_object_get(out, "recent"), i, v) {
		char when[32];

		cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "time_ms")), when);
		printf("%s  %-14s %s\n", when, cmd_api_str(v, "action"), cmd_api_str(v, "text"));
	}
	json_decref(out);
	return 0;
}
