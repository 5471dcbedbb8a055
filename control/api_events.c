/*
 * api_events.c — the event log over the admin API.
 *
 *   GET /v1/events?tenant=T&event=KIND&limit=N           the newest N, oldest first
 *   GET /v1/events?...&after=OFFSET                      the next ones from OFFSET
 *
 * The event log is the JSON-lines file sluiced writes (events.path; the
 * line format is in dataplane/events.h): this reads it and keeps nothing
 * of its own. Without `after` the answer is the newest `limit` matching
 * events from the last EVENTS_TAIL_MAX bytes; with it, up to `limit` matching events starting
 * at that byte offset. Either way "next" is the offset to poll from for
 * what comes later (sluicectl events --follow), so a client can tail the
 * log without missing or repeating lines. An offset past the end (the log
 * was rotated) starts again at the beginning. A line still being written
 * (no newline yet) is left for the next poll.
 *
 * A tenant token sees only events whose "tenant" is its own.
 */
#include "api.h"
#include "api_dataplane.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EVENTS_TAIL_MAX (8u << 20) /* how far back a tail looks */
#define EVENTS_READ_MAX (8u << 20) /* how much one forward page reads */

static bool event_matches(const json_t *e, const char *tenant, const char *kind)
{
	const char *t = json_string_value(json_object_get(e, "tenant"));
	const char *k = json_string_value(json_object_get(e, "event"));

	if (tenant && (!t || strcmp(t, tenant)))
		return false;
	return !kind || (k && !strcmp(k, kind));
}

/* Read [from, from + len) of the file at path into a new buffer. */
static char *read_span(const char *path, uint64_t from, size_t len, size_t *got)
{
	FILE *f = fopen(path, "r");
	char *buf;

	*got = 0;
	if (!f)
		return NULL;
	buf = malloc(len + 1);
	if (buf && fseeko(f, (off_t)from, SEEK_SET) == 0)
		*got = fread(buf, 1, len, f);
	fclose(f);
	if (buf)
		buf[*got] = 0;
	return buf;
}

static int events_list(struct api_request *req, struct api_response *resp)
{
	const struct api_dataplane *dp = api_daemon(req);
	const struct api_principal *who = api_principal(req);
	const char *tenant = api_query(req, "tenant"), *kind = api_query(req, "event");
	const char *after, *path;
	uint64_t size, from, next, span;
	size_t limit, got, start, end;
	char *buf, cursor[24];
	json_t *items;
	struct stat st;
	bool tail;

	if (!dp || !dp->cfg || !(path = dp->cfg->events_path) || !strcmp(path, "-"))
		return api_error(resp, 503, "unavailable",
				 "the event log is not a file (events.path)");
	if (api_page(req, resp, &limit, &after) < 0)
		return 0;
	if (who->role != STORE_ROLE_OPERATOR) {
		if (tenant && strcmp(tenant, who->tenant))
			return api_error(resp, 404, "not_found", "no such tenant");
		tenant = who->tenant;
	}
	size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
	tail = !after;
	if (tail) {
		from = size > EVENTS_TAIL_MAX ? size - EVENTS_TAIL_MAX : 0;
	} else {
		char *e;

		from = strtoull(after, &e, 10);
		if (*e || after[0] == '-')
			return api_error(resp, 400, "bad_request",
					 "after must be a byte offset from an earlier \"next\"");
		if (from > size)
			from = 0; /* rotated */
	}
	/* A tail is bounded by where it starts; a forward page by EVENTS_READ_MAX. */
	span = size > from ? size - from : 0;
	if (!tail && span > EVENTS_READ_MAX)
		span = EVENTS_READ_MAX;
	got = 0;
	buf = span ? read_span(path, from, span, &got) : NULL;
	items = json_array();
	if (!items) {
		free(buf);
		return -ENOMEM;
	}
	/* Whole lines only; a tail starting mid-file skips its first part line. */
	start = 0;
	if (tail && from > 0 && buf) {
		char *nl = memchr(buf, '\n', got);

		start = nl ? (size_t)(nl - buf) + 1 : got;
	}
	end = start;
	next = from + start;
	for (size_t i = start; buf && i < got; i++) {
		json_t *e;

		if (buf[i] != '\n')
			continue;
		buf[i] = 0;
		e = json_loads(buf + end, JSON_REJECT_DUPLICATES, NULL);
		end = i + 1;
		if (e && event_matches(e, tenant, kind)) {
			json_array_append(items, e);
			/* A tail keeps the newest `limit`; a forward page stops there. */
			if (tail && json_array_size(items) > limit)
				json_array_remove(items, 0);
		}
		json_decref(e);
		next = from + end;
		if (!tail && json_array_size(items) >= limit)
			break;
	}
	free(buf);
	snprintf(cursor, sizeof cursor, "%" PRIu64, next);
	return api_reply_list(resp, items, cursor);
}

const struct api_route api_event_routes[] = {
	{ API_GET, "/v1/events", events_list, STORE_ROLE_TENANT, NULL },
};
const size_t api_event_route_count = sizeof api_event_routes / sizeof *api_event_routes;
