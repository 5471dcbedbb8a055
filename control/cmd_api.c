/* cmd_api.c — sluicectl's admin-API command plumbing; see cmd_api.h. */
#include "cmd_api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cmd_api_parse(struct cmd_api *a, const char *prog, int argc, char **argv,
		  const struct cmd_opt *opts, size_t nopts)
{
	memset(a, 0, sizeof *a);
	snprintf(a->prog, sizeof a->prog, "%s", prog);
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char **val = NULL;
		bool *flag = NULL;

		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			a->help = true;
			continue;
		}
		if (!strcmp(s, "--json")) {
			a->json = true;
			continue;
		}
		if (!strcmp(s, "--api"))
			val = &a->api;
		else if (!strcmp(s, "--token"))
			val = &a->token;
		else if (!strcmp(s, "-c") || !strcmp(s, "--config"))
			val = &a->config;
		for (size_t k = 0; !val && !flag && k < nopts; k++)
			if (!strcmp(s, opts[k].name)) {
				val = opts[k].value;
				flag = opts[k].flag;
			}
		if (flag) {
			*flag = true;
			continue;
		}
		if (val) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: %s needs a value (see --help)\n", prog, s);
				return 2;
			}
			*val = argv[++i];
			continue;
		}
		if (s[0] == '-' && s[1]) {
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, s);
			return 2;
		}
		if (a->nargs == CMD_API_ARGS_MAX) {
			fprintf(stderr, "%s: too many arguments (see --help)\n", prog);
			return 2;
		}
		a->args[a->nargs++] = argv[i];
	}
	return 0;
}

int cmd_api_connect(struct cmd_api *a)
{
	if (api_client_init(&a->client, a->api, a->token, a->config) < 0) {
		fprintf(stderr, "%s: %s\n", a->prog, a->client.err);
		return 1;
	}
	return 0;
}

int cmd_api_request(struct cmd_api *a, const char *method, const char *path, const json_t *body,
		    json_t **out)
{
	json_t *j = NULL;
	long status;
	int rc;

	*out = NULL;
	rc = api_client_call(&a->client, method, path, body, &status, &j);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", a->prog, a->client.err);
		return 1;
	}
	if (status >= 200 && status < 300) {
		*out = j;
		return 0;
	}
	{
		json_t *e = json_object_get(j, "error");
		const char *msg = json_string_value(json_object_get(e, "message"));
		const char *code = json_string_value(json_object_get(e, "code"));

		if (status == 401)
			fprintf(stderr, "%s: the API refused the token%s%s (401 unauthorized)\n",
				a->prog, a->client.token_file[0] ? " from " : "",
				a->client.token_file);
		else
			fprintf(stderr, "%s: %s (%ld %s)\n", a->prog, msg ? msg : "request failed",
				status, code ? code : "error");
	}
	json_decref(j);
	return 1;
}

void cmd_api_query_add(char *path, size_t len, const char *key, const char *value)
{
	char esc[800];
	size_t n = strlen(path);

	if (!value || n >= len)
		return;
	api_client_escape(value, esc, sizeof esc);
	snprintf(path + n, len - n, "%c%s=%s", strchr(path, '?') ? '&' : '?', key, esc);
}

int cmd_api_get_all(struct cmd_api *a, const char *base, const char *after, size_t max,
		    json_t **items)
{
	char path[2048], cur[800] = "";
	json_t *all = json_array(), *page;
	int rc = 0;

	if (!all)
		return 1;
	if (after)
		snprintf(cur, sizeof cur, "%s", after);
	for (int n = 0; n < 100000; n++) {
		size_t left = max ? max - json_array_size(all) : 1000;
		const char *next;

		snprintf(path, sizeof path, "%s%climit=%zu%s%s", base, strchr(base, '?') ? '&' : '?',
			 left > 1000 ? 1000 : left, cur[0] ? "&after=" : "", cur);
		if ((rc = cmd_api_request(a, "GET", path, NULL, &page)))
			break;
		json_array_extend(all, json_object_get(page, "items"));
		next = json_string_value(json_object_get(page, "next"));
		if (next)
			api_client_escape(next, cur, sizeof cur);
		json_decref(page);
		if (!next || (max && json_array_size(all) >= max))
			break;
	}
	if (rc) {
		json_decref(all);
		return rc;
	}
	*items = all;
	return 0;
}

void cmd_api_print_items(const json_t *items)
{
	json_t *o = json_pack("{s:O,s:n}", "items", items, "next");

	cmd_api_print_json(o);
	json_decref(o);
}

void cmd_api_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		printf("%s\n", s);
		free(s);
	}
}

void cmd_api_time(uint64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || !gmtime_r(&t, &tm)) {
		strcpy(out, "-");
		return;
	}
	strftime(out, 32, "%Y-%m-%d %H:%M:%SZ", &tm);
}

const char *cmd_api_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

void cmd_api_int(const json_t *o, const char *key, char out[24])
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		snprintf(out, 24, "%lld", (long long)json_integer_value(v));
	else
		strcpy(out, "-");
}

void cmd_table_init(struct cmd_table *t, size_t ncols, const char *const *header)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	cmd_table_add(t, header);
}

void cmd_table_add(struct cmd_table *t, const char *const *row)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof *c);

		if (!c)
			return;
		t->cells = c;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = strdup(row[i] ? row[i] : "");
	t->nrows++;
}

void cmd_table_print(struct cmd_table *t, FILE *f)
{
	size_t w[16] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols && i < 16; i++) {
			const char *c = t->cells[r * t->ncols + i];
			size_t n = c ? strlen(c) : 0;

			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *c = t->cells[r * t->ncols + i];

			if (i + 1 == t->ncols)
				fprintf(f, "%s\n", c ? c : "");
			else
				fprintf(f, "%-*s  ", (int)w[i < 16 ? i : 15], c ? c : "");
		}
	}
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	free(t->cells);
	memset(t, 0, sizeof *t);
}
