/* events.c — the JSON-lines delivery event log; see events.h. */
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"

/* The last second events_format_time() can show: 9999-12-31T23:59:59Z. */
#define EVENTS_MAX_SEC 253402300799ULL

struct events {
	int fd;
	bool is_stdout;
	char *path;
	struct sl_buf buf;
	uint64_t dropped;
	/* "YYYY-MM-DDTHH:MM:SS" of cached_sec: lines mostly share a second. */
	uint64_t cached_sec;
	char cached[20];
};

static const char *const kind_json[] = {
	[EVENT_RECEPTION] = "\"reception\"", [EVENT_DELIVERED] = "\"delivered\"",
	[EVENT_DEFERRED] = "\"deferred\"",   [EVENT_BOUNCED] = "\"bounced\"",
	[EVENT_EXPIRED] = "\"expired\"",     [EVENT_DSN_SENT] = "\"dsn_sent\"",
	[EVENT_PURGED] = "\"purged\"",       [EVENT_QUEUE_STUCK] = "\"queue_stuck\"",
	[EVENT_SUPPRESSED] = "\"suppressed\"", [EVENT_ASYNC_BOUNCE] = "\"async_bounce\"",
	[EVENT_COMPLAINT] = "\"complaint\"",   [EVENT_POLICY] = "\"policy\"",
	[EVENT_RESPONSE_RULE] = "\"response_rule\"",
	[EVENT_LINK_LISTED] = "\"link_listed\"", [EVENT_IP_BLOCKLISTED] = "\"ip_blocklisted\"",
	[EVENT_IP_DELISTED] = "\"ip_delisted\"",
};

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SS" (19 bytes, no NUL) for sec since the epoch, UTC. */
static void format_sec(uint64_t sec, char *out)
{
	uint64_t z = sec / 86400 + 719468; /* days since 0000-03-01 */
	unsigned sod = (unsigned)(sec % 86400), era, doe, yoe, doy, mp, y, m, d;

	/* Howard Hinnant's civil_from_days; z >= 0 so no negative eras. */
	era = (unsigned)(z / 146097);
	doe = (unsigned)(z - (uint64_t)era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y = yoe + era * 400 + (m <= 2);

	put2(out, y / 100);
	put2(out + 2, y % 100);
	out[4] = '-';
	put2(out + 5, m);
	out[7] = '-';
	put2(out + 8, d);
	out[10] = 'T';
	put2(out + 11, sod / 3600);
	out[13] = ':';
	put2(out + 14, sod / 60 % 60);
	out[16] = ':';
	put2(out + 17, sod % 60);
}

/* ".mmmZ" after the 19-byte seconds part. */
static void format_ms(uint64_t ms, char *out)
{
	unsigned frac = (unsigned)(ms % 1000);

	out[0] = '.';
	out[1] = (char)('0' + frac / 100);
	put2(out + 2, frac % 100);
	out[4] = 'Z';
}

static uint64_t clamp_ms(uint64_t ms)
{
	return ms / 1000 > EVENTS_MAX_SEC ? EVENTS_MAX_SEC * 1000 + 999 : ms;
}

void events_format_time(uint64_t ms, char out[25])
{
	ms = clamp_ms(ms);
	format_sec(ms / 1000, out);
	format_ms(ms, out + 19);
	out[24] = '\0';
}

/* mkdir -p of the directories above the file at path. */
static int make_parents(const char *path)
{
	char *dir = strdup(path), *p;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	for (p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = '/';
	}
	free(dir);
	return rc;
}

static int open_log(const char *path)
{
	const int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY;
	int fd, rc;

	fd = open(path, flags, 0640);
	if (fd < 0 && errno == ENOENT) {
		rc = make_parents(path);
		if (rc)
			return rc;
		fd = open(path, flags, 0640);
	}
	return fd < 0 ? -errno : fd;
}

int events_open(const char *path, struct events **out)
{
	struct events *ev;
	int rc;

	ev = calloc(1, sizeof *ev);
	if (!ev)
		return -ENOMEM;
	ev->fd = -1;
	ev->cached_sec = UINT64_MAX;
	if (strcmp(path, "-") == 0) {
		ev->fd = STDOUT_FILENO;
		ev->is_stdout = true;
	} else {
		ev->path = strdup(path);
		if (!ev->path) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = open_log(path);
		if (rc < 0)
			goto fail;
		ev->fd = rc;
	}
	rc = sl_buf_reserve(&ev->buf, EVENTS_FLUSH_AT + 4096);
	if (rc)
		goto fail;
	*out = ev;
	return 0;
fail:
	if (ev->fd >= 0 && !ev->is_stdout)
		close(ev->fd);
	free(ev->path);
	free(ev);
	return rc;
}

int events_flush(struct events *ev)
{
	ssize_t n;

	while (sl_buf_avail(&ev->buf) > 0) {
		n = write(ev->fd, sl_buf_head(&ev->buf), sl_buf_avail(&ev->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		sl_buf_consume(&ev->buf, (size_t)n);
	}
	return 0;
}

/* The quoted time string of ms: `"YYYY-MM-DDTHH:MM:SS.mmmZ"`, 26 bytes. */
static void quoted_time(struct events *ev, uint64_t ms, char out[26])
{
	uint64_t sec;

	ms = clamp_ms(ms);
	sec = ms / 1000;
	if (sec != ev->cached_sec) {
		format_sec(sec, ev->cached);
		ev->cached_sec = sec;
	}
	out[0] = '"';
	memcpy(out + 1, ev->cached, 19);
	format_ms(ms, out + 20);
	out[25] = '"';
}

/* "tls": null, or its object (built aside, then added raw). */
static void tls_json(struct json_obj *j, const struct event_tls *tls)
{
	struct sl_buf b = { 0 };
	struct json_obj t;

	if (!tls->active && !tls->failure) {
		json_obj_raw(j, "tls", "null", 4);
		return;
	}
	json_obj_begin(&t, &b);
	json_obj_str(&t, "policy", tls->policy);
	if (tls->active) {
		json_obj_str(&t, "version", tls->version);
		json_obj_str(&t, "cipher", tls->cipher);
	} else {
		json_obj_raw(&t, "version", "null", 4);
		json_obj_raw(&t, "cipher", "null", 4);
	}
	json_obj_bool(&t, "verified", tls->active && tls->verified);
	json_obj_str(&t, "failure", tls->failure);
	if (json_obj_end(&t) == 0)
		json_obj_raw(j, "tls", sl_buf_head(&b), sl_buf_avail(&b));
	else
		j->err = -ENOMEM;
	sl_buf_free(&b);
}

static int format_line(struct events *ev, const struct event_outcome *o)
{
	const char *kind = kind_json[o->kind];
	struct json_obj j;
	char t[26];
	int rc;

	quoted_time(ev, o->time_ms, t);
	json_obj_begin(&j, &ev->buf);
	json_obj_raw(&j, "time", t, sizeof t);
	json_obj_raw(&j, "event", kind, strlen(kind));
	json_obj_str(&j, "id", o->id);
	json_obj_str(&j, "tenant", o->tenant);
	json_obj_str(&j, "stream", o->stream);
	json_obj_str(&j, "mail_from", o->mail_from);
	json_obj_str(&j, "rcpt", o->rcpt);
	json_obj_str(&j, "domain", o->domain);
	json_obj_str(&j, "message_id", o->message_id);
	json_obj_str(&j, "source_ip", o->source_ip);
	json_obj_str(&j, "site", o->site);
	json_obj_str(&j, "response", o->response);
	if (o->attempt > 0)
		json_obj_u64(&j, "attempt", o->attempt);
	json_obj_u64(&j, "queued_ms", o->queued_ms);
	json_obj_u64(&j, "session_ms", o->session_ms);
	if (o->kind == EVENT_DEFERRED) {
		/* Not through the cache: it holds the seconds of "time". */
		t[0] = '"';
		events_format_time(o->next_attempt_ms, t + 1);
		t[25] = '"';
		json_obj_raw(&j, "next_attempt", t, sizeof t);
	}
	json_obj_u64(&j, "size", o->size);
	if (o->tls)
		tls_json(&j, o->tls);
	rc = json_obj_end(&j);
	if (rc)
		return rc;
	rc = sl_buf_append(&ev->buf, "\n", 1);
	if (rc) /* json_obj_end() succeeded, so drop the object by hand */
		ev->buf.len = ev->buf.off + (size_t)(j.mark);
	return rc;
}

int events_write(struct events *ev, const struct event_outcome *o)
{
	int rc;

	if ((unsigned)o->kind >= sizeof kind_json / sizeof kind_json[0]) {
		rc = -EINVAL;
		goto drop;
	}
	if (sl_buf_avail(&ev->buf) >= EVENTS_MAX_PENDING) {
		rc = events_flush(ev);
		if (rc)
			goto drop;
	}
	rc = format_line(ev, o);
	if (rc)
		goto drop;
	/* The line is recorded; a failed flush is retried and reported later. */
	if (sl_buf_avail(&ev->buf) >= EVENTS_FLUSH_AT)
		events_flush(ev);
	return 0;
drop:
	ev->dropped++;
	return rc;
}

int events_reopen(struct events *ev)
{
	int fd;

	/* Lines written before the rotation belong in the old file. */
	events_flush(ev);
	if (ev->is_stdout)
		return 0;
	fd = open_log(ev->path);
	if (fd < 0)
		return fd;
	close(ev->fd);
	ev->fd = fd;
	return 0;
}

uint64_t events_dropped(const struct events *ev)
{
	return ev->dropped;
}

void events_close(struct events *ev)
{
	if (!ev)
		return;
	events_flush(ev);
	if (!ev->is_stdout)
		close(ev->fd);
	sl_buf_free(&ev->buf);
	free(ev->path);
	free(ev);
}
