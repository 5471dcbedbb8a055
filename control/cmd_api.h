/*
 * cmd_api.h — what sluicectl's admin-API commands share (cmd_tenant.c,
 * cmd_token.c, cmd_audit.c, cmd_queue.c): option parsing, one request
 * with errors printed the same way, JSON output and simple tables.
 *
 * Every API command takes the global options
 *   --api URL     the admin API (else $SLUICE_API, the config, the default)
 *   --token T     the API token (else $SLUICE_TOKEN, the admin.token file)
 *   -c FILE       the sluiced config to find both in
 *   --json        print the API's JSON instead of a table
 *   -h, --help    the command's help
 * anywhere among its arguments (api_client.h has the lookup order).
 *
 * Like every sluicectl command these print: results on stdout, one-line
 * errors on stderr prefixed with the command ("sluicectl tenant approve:
 * no such tenant (404 not_found)"). Exit codes: 0 ok, 1 the request
 * failed, 2 usage.
 */
#ifndef SL_CMD_API_H
#define SL_CMD_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "api_client.h"

#define CMD_API_ARGS_MAX 8

struct cmd_opt {
	const char *name;   /* "--reason" */
	const char **value; /* option with a value, or NULL */
	bool *flag;         /* flag without a value, or NULL */
};

struct cmd_api {
	char prog[128];    /* "sluicectl tenant approve" */
	const char *api, *token, *config;
	bool json, help;
	char *args[CMD_API_ARGS_MAX]; /* positional arguments */
	int nargs;
	struct api_client client;
};

/* Parse argv[0..argc) (after the subcommand words) into a. 0, or 2 after
 * printing a usage error. a->help is set for -h/--help. */
int cmd_api_parse(struct cmd_api *a, const char *prog, int argc, char **argv,
		  const struct cmd_opt *opts, size_t nopts);
/* Resolve URL and token; 0, or 1 after printing why not. */
int cmd_api_connect(struct cmd_api *a);
/* One request; 0 with *out (may be NULL) for a 2xx reply; 1 after printing
 * the API's error or why it could not be reached. */
int cmd_api_request(struct cmd_api *a, const char *method, const char *path, const json_t *body,
		    json_t **out);
/* Every page of a paginated list: GET base (a path, maybe with a query)
 * with "limit=" and, from the second page on (or from the start when
 * after is given, already escaped), "after=CURSOR", until "next" is null
 * or max items were read (0 = all). 0 with *items (caller decrefs), or 1
 * after printing why. */
int cmd_api_get_all(struct cmd_api *a, const char *base, const char *after, size_t max,
		    json_t **items);
/* Append "?key=value" (or "&key=...", when path has a query already) to
 * path, value percent-encoded; nothing when value is NULL. */
void cmd_api_query_add(char *path, size_t len, const char *key, const char *value);
/* Print j indented, with a newline. */
void cmd_api_print_json(const json_t *j);
/* Print a whole list as --json does: {"items": [...], "next": null}. */
void cmd_api_print_items(const json_t *items);
/* "2026-11-23 12:00:00Z" for wall-clock ms; "-" for 0. */
void cmd_api_time(uint64_t ms, char out[32]);
/* A string member, "" when absent; an integer member as text ("-" null). */
const char *cmd_api_str(const json_t *o, const char *key);
void cmd_api_int(const json_t *o, const char *key, char out[24]);

/* A table printed with aligned columns. */
struct cmd_table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols, strdup'd */
};
void cmd_table_init(struct cmd_table *t, size_t ncols, const char *const *header);
void cmd_table_add(struct cmd_table *t, const char *const *row);
void cmd_table_print(struct cmd_table *t, FILE *f); /* and frees it */

#endif
