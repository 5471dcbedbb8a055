/* cmd_tenant.c — sluicectl tenant ...; see cmd_tenant.h. */
#include "cmd_tenant.h"

#include "cmd_api.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char tenant_help[] =
	"usage: sluicectl tenant COMMAND [ARGS] [--json] [--api URL] [--token T] [-c FILE]\n"
	"commands:\n"
	"  list                         every tenant with its state\n"
	"  show NAME                    one tenant\n"
	"  create NAME                  a new tenant, pending review; options:\n"
	"      --stream transactional|marketing   default stream\n"
	"      --quota-hour N --quota-day N       message quotas (0 = none)\n"
	"      --transactional-pool P --marketing-pool P\n"
	"  update NAME                  change settings: the options of create\n"
	"  approve NAME                 pending_review/sandbox/... -> active\n"
	"  sandbox NAME                 -> sandbox (own verified addresses only)\n"
	"  hold NAME [--grace DUR]      -> on_hold: mail kept, not delivered; with --grace\n"
	"                               (e.g. 30m, 2d) disabled when the grace ends\n"
	"  resume NAME                  on_hold/warned/disabled -> active\n"
	"  disable NAME                 -> disabled: injection refused, nothing delivered\n"
	"  user add NAME USER (--password PW | --password-hash H)   an SMTP AUTH user\n"
	"  user remove NAME USER\n"
	"Lifecycle commands take --reason TEXT (kept in the audit log).\n"
	"The API and token: --api/$SLUICE_API, --token/$SLUICE_TOKEN, else the config's\n"
	"control section (-c FILE, default /etc/sluice/sluice.yaml) and its admin.token.\n";

static void print_tenants(json_t *items)
{
	static const char *const hdr[] = { "NAME", "STATE", "STREAM", "QUOTA/H", "QUOTA/D",
					   "HOLD UNTIL", "UPDATED" };
	struct cmd_table t;
	size_t i;
	json_t *v;

	cmd_table_init(&t, 7, hdr);
	json_array_foreach(items, i, v) {
		char qh[24], qd[24], hold[32], upd[32];
		const char *row[7];

		cmd_api_int(v, "quota_hour", qh);
		cmd_api_int(v, "quota_day", qd);
		cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "hold_until")), hold);
		cmd_api_time((uint64_t)json_integer_value(json_object_get(v, "updated")), upd);
		row[0] = cmd_api_str(v, "name");
		row[1] = cmd_api_str(v, "state");
		row[2] = cmd_api_str(v, "default_stream");
		row[3] = strcmp(qh, "0") ? qh : "-";
		row[4] = strcmp(qd, "0") ? qd : "-";
		row[5] = hold;
		row[6] = upd;
		cmd_table_add(&t, row);
	}
	cmd_table_print(&t, stdout);
}

static int print_one(struct cmd_api *a, json_t *t)
{
	json_t *arr;

	if (a->json) {
		cmd_api_print_json(t);
	} else {
		arr = json_array();
		json_array_append(arr, t);
		print_tenants(arr);
		json_decref(arr);
	}
	json_decref(t);
	return 0;
}

static int tenant_list(struct cmd_api *a)
{
	json_t *all;
	int rc;

	if ((rc = cmd_api_get_all(a, "/v1/tenants", NULL, 0, &all)))
		return rc;
	if (a->json)
		cmd_api_print_items(all);
	else
		print_tenants(all);
	json_decref(all);
	return 0;
}

static int need_args(struct cmd_api *a, int n, const char *what)
{
	if (a->nargs == n)
		return 0;
	fprintf(stderr, "%s: expected %s (see --help)\n", a->prog, what);
	return 2;
}

/* create (POST /v1/tenants) or update (PATCH /v1/tenants/NAME). */
static int tenant_put(struct cmd_api *a, bool create, const char *stream, const char *qh,
		      const char *qd, const char *tpool, const char *mpool, const char *reason)
{
	json_t *body = create ? json_pack("{s:s}", "name", a->args[0]) : json_object();
	json_t *out, *streams = NULL;
	char path[512], name[256];
	uint64_t v;
	int rc;

	if (stream)
		json_object_set_new(body, "default_stream", json_string(stream));
	if (reason)
		json_object_set_new(body, "reason", json_string(reason));
	for (int i = 0; i < 2; i++) {
		const char *q = i ? qd : qh;
		char *end;

		if (!q)
			continue;
		v = strtoull(q, &end, 10);
		if (!*q || *end || q[0] == '-') {
			fprintf(stderr, "%s: %s must be a number\n", a->prog,
				i ? "--quota-day" : "--quota-hour");
			json_decref(body);
			return 2;
		}
		json_object_set_new(body, i ? "quota_day" : "quota_hour", json_integer((json_int_t)v));
	}
	if (tpool || mpool) {
		streams = json_object();
		if (tpool)
			json_object_set_new(streams, "transactional", json_pack("{s:s}", "pool", tpool));
		if (mpool)
			json_object_set_new(streams, "marketing", json_pack("{s:s}", "pool", mpool));
		json_object_set_new(body, "streams", streams);
	}
	api_client_escape(a->args[0], name, sizeof name);
	snprintf(path, sizeof path, "/v1/tenants/%s", name);
	rc = create ? cmd_api_request(a, "POST", "/v1/tenants", body, &out)
		    : cmd_api_request(a, "PATCH", path, body, &out);
	json_decref(body);
	return rc ? rc : print_one(a, out);
}

static int tenant_action(struct cmd_api *a, const char *action, const char *reason,
			 const char *grace)
{
	char path[512], name[256];
	json_t *body = json_object(), *out;
	int rc;

	if (reason)
		json_object_set_new(body, "reason", json_string(reason));
	if (grace) {
		uint64_t ms;

		if (strcmp(action, "hold") != 0) {
			fprintf(stderr, "%s: --grace applies only to hold\n", a->prog);
			json_decref(body);
			return 2;
		}
		if (config_parse_duration(grace, &ms) < 0) {
			fprintf(stderr, "%s: --grace: bad duration '%s' (e.g. 90s, 30m, 2d)\n",
				a->prog, grace);
			json_decref(body);
			return 2;
		}
		json_object_set_new(body, "grace_seconds", json_integer((json_int_t)(ms / 1000)));
	}
	api_client_escape(a->args[0], name, sizeof name);
	snprintf(path, sizeof path, "/v1/tenants/%s/%s", name, action);
	rc = cmd_api_request(a, "POST", path, body, &out);
	json_decref(body);
	return rc ? rc : print_one(a, out);
}

static int tenant_user(struct cmd_api *a, const char *pw, const char *hash)
{
	char path[1200], name[256], user[768];
	json_t *body, *out = NULL;
	int rc;

	if (a->nargs != 3 || (strcmp(a->args[0], "add") && strcmp(a->args[0], "remove"))) {
		fprintf(stderr, "%s: expected 'user add NAME USER' or 'user remove NAME USER'\n",
			a->prog);
		return 2;
	}
	api_client_escape(a->args[1], name, sizeof name);
	api_client_escape(a->args[2], user, sizeof user);
	if (!strcmp(a->args[0], "remove")) {
		snprintf(path, sizeof path, "/v1/tenants/%s/users/%s", name, user);
		rc = cmd_api_request(a, "DELETE", path, NULL, &out);
		if (!rc && !a->json)
			printf("removed SMTP user %s of tenant %s\n", a->args[2], a->args[1]);
		json_decref(out);
		return rc;
	}
	if (!pw == !hash) {
		fprintf(stderr, "%s: give --password PW or --password-hash H\n", a->prog);
		return 2;
	}
	body = json_pack("{s:s}", "username", a->args[2]);
	json_object_set_new(body, pw ? "password" : "password_hash", json_string(pw ? pw : hash));
	snprintf(path, sizeof path, "/v1/tenants/%s/users", name);
	rc = cmd_api_request(a, "POST", path, body, &out);
	json_decref(body);
	if (!rc) {
		if (a->json)
			cmd_api_print_json(out);
		else
			printf("added SMTP user %s to tenant %s\n", a->args[2], a->args[1]);
	}
	json_decref(out);
	return rc;
}

int cmd_tenant(int argc, char **argv)
{
	const char *reason = NULL, *grace = NULL, *stream = NULL, *qh = NULL, *qd = NULL;
	const char *tpool = NULL, *mpool = NULL, *pw = NULL, *hash = NULL, *sub;
	const struct cmd_opt opts[] = {
		{ "--reason", &reason, NULL },       { "--grace", &grace, NULL },
		{ "--stream", &stream, NULL },       { "--quota-hour", &qh, NULL },
		{ "--quota-day", &qd, NULL },        { "--transactional-pool", &tpool, NULL },
		{ "--marketing-pool", &mpool, NULL }, { "--password", &pw, NULL },
		{ "--password-hash", &hash, NULL },
	};
	struct cmd_api a;
	char prog[96];
	int rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(tenant_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	snprintf(prog, sizeof prog, "sluicectl tenant %s", sub);
	if ((rc = cmd_api_parse(&a, prog, argc - 2, argv + 2, opts, sizeof opts / sizeof opts[0])))
		return rc;
	if (a.help) {
		fputs(tenant_help, stdout);
		return 0;
	}
	if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "create") &&
	    strcmp(sub, "update") && strcmp(sub, "approve") && strcmp(sub, "sandbox") &&
	    strcmp(sub, "hold") &&
	    strcmp(sub, "resume") && strcmp(sub, "disable") && strcmp(sub, "user")) {
		fprintf(stderr, "sluicectl tenant: unknown command '%s'\n%s", sub, tenant_help);
		return 2;
	}
	if (!strcmp(sub, "list") ? need_args(&a, 0, "no arguments")
	    : !strcmp(sub, "user") ? 0 : need_args(&a, 1, "a tenant NAME"))
		return 2;
	if ((rc = cmd_api_connect(&a)))
		return rc;
	if (!strcmp(sub, "list"))
		return tenant_list(&a);
	if (!strcmp(sub, "show")) {
		char path[512], name[256];
		json_t *out;

		api_client_escape(a.args[0], name, sizeof name);
		snprintf(path, sizeof path, "/v1/tenants/%s", name);
		rc = cmd_api_request(&a, "GET", path, NULL, &out);
		return rc ? rc : print_one(&a, out);
	}
	if (!strcmp(sub, "create") || !strcmp(sub, "update"))
		return tenant_put(&a, !strcmp(sub, "create"), stream, qh, qd, tpool, mpool, reason);
	if (!strcmp(sub, "user"))
		return tenant_user(&a, pw, hash);
	return tenant_action(&a, sub, reason, grace);
}
