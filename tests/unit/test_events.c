/* test_events.c — the JSON-lines delivery event log (dataplane/events.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	umask(022);
	strcpy(dir, "/tmp/test_events.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* dir/name in one of a few static buffers, so a test can hold several. */
static char *path_in(const char *name)
{
	static char p[4][256];
	static unsigned next;
	char *s = p[next++ % 4];

	snprintf(s, sizeof p[0], "%s/%s", dir, name);
	return s;
}

/* The whole file as a NUL-terminated string (caller frees). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static const struct event_outcome delivered = {
	.kind = EVENT_DELIVERED,
	.time_ms = 1795426467123ULL, /* 2026-11-23T09:34:27.123Z */
	.id = "0123456789abcdef",
	.tenant = "acme",
	.stream = "marketing",
	.mail_from = "b+x@bounce.acme.example",
	.rcpt = "bob@example.com",
	.message_id = "<a@b>",
	.source_ip = "198.51.100.7",
	.site = "mx.example.com",
	.domain = "example.com",
	.response = "250 2.0.0 Ok",
	.attempt = 1,
	.queued_ms = 812,
	.session_ms = 96,
	.size = 48213,
};

static const char delivered_line[] =
	"{\"time\":\"2026-11-23T09:34:27.123Z\",\"event\":\"delivered\","
	"\"id\":\"0123456789abcdef\",\"tenant\":\"acme\",\"stream\":\"marketing\","
	"\"mail_from\":\"b+x@bounce.acme.example\",\"rcpt\":\"bob@example.com\","
	"\"domain\":\"example.com\",\"message_id\":\"<a@b>\",\"source_ip\":\"198.51.100.7\","
	"\"site\":\"mx.example.com\",\"response\":\"250 2.0.0 Ok\",\"attempt\":1,"
	"\"queued_ms\":812,\"session_ms\":96,\"size\":48213}\n";

static void test_format_time(void **state)
{
	char t[25];

	(void)state;
	events_format_time(0, t);
	assert_string_equal(t, "1970-01-01T00:00:00.000Z");
	events_format_time(1795426467123ULL, t);
	assert_string_equal(t, "2026-11-23T09:34:27.123Z");
	events_format_time(1709251199999ULL, t);
	assert_string_equal(t, "2024-02-29T23:59:59.999Z");
	events_format_time(4107542400000ULL, t); /* 2100 is not a leap year */
	assert_string_equal(t, "2100-03-01T00:00:00.000Z");
	events_format_time(951782400005ULL, t); /* 2000 is */
	assert_string_equal(t, "2000-02-29T00:00:00.005Z");
	events_format_time(UINT64_MAX, t); /* clamped, still well-formed */
	assert_string_equal(t, "9999-12-31T23:59:59.999Z");
}

static void test_lines(void **state)
{
	struct event_outcome o;
	struct events *ev;
	struct stat st;
	char *path = path_in("a/b/events.log"), *s;

	(void)state;
	assert_int_equal(events_open(path, &ev), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(stat(path_in("a/b"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);

	assert_int_equal(events_write(ev, &delivered), 0);

	/* Reception: no attempt yet, the optional fields are NULL. */
	o = (struct event_outcome){
		.kind = EVENT_RECEPTION,
		.time_ms = 1795426467000ULL,
		.id = "0123456789abcdef",
		.tenant = "acme",
		.stream = "transactional",
		.mail_from = "",
		.rcpt = "bob@example.com",
		.domain = "example.com",
		.size = 10,
	};
	assert_int_equal(events_write(ev, &o), 0);

	/* Deferred: next_attempt appears; hostile bytes stay on one line. */
	o = delivered;
	o.kind = EVENT_DEFERRED;
	o.time_ms = 1795426468001ULL;
	o.message_id = NULL;
	o.response = "451 4.7.1 \"try\nlater\"\r\n\x01\xff";
	o.attempt = 3;
	o.next_attempt_ms = 1795427067001ULL;
	assert_int_equal(events_write(ev, &o), 0);

	o.kind = EVENT_DSN_SENT;
	o.response = NULL;
	o.source_ip = NULL;
	o.site = NULL;
	assert_int_equal(events_write(ev, &o), 0);

	/* Buffered until flushed. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(events_flush(ev), 0);
	events_close(ev);

	s = slurp(path);
	assert_int_equal(count_lines(s), 4);
	assert_string_equal(
		s,
		"{\"time\":\"2026-11-23T09:34:27.123Z\",\"event\":\"delivered\","
		"\"id\":\"0123456789abcdef\",\"tenant\":\"acme\",\"stream\":\"marketing\","
		"\"mail_from\":\"b+x@bounce.acme.example\",\"rcpt\":\"bob@example.com\","
		"\"domain\":\"example.com\",\"message_id\":\"<a@b>\",\"source_ip\":\"198.51.100.7\","
		"\"site\":\"mx.example.com\",\"response\":\"250 2.0.0 Ok\",\"attempt\":1,"
		"\"queued_ms\":812,\"session_ms\":96,\"size\":48213}\n"
		"{\"time\":\"2026-11-23T09:34:27.000Z\",\"event\":\"reception\","
		"\"id\":\"0123456789abcdef\",\"tenant\":\"acme\",\"stream\":\"transactional\","
		"\"mail_from\":\"\",\"rcpt\":\"bob@example.com\",\"domain\":\"example.com\","
		"\"queued_ms\":0,\"session_ms\":0,\"size\":10}\n"
		"{\"time\":\"2026-11-23T09:34:28.001Z\",\"event\":\"deferred\","
		"\"id\":\"0123456789abcdef\",\"tenant\":\"acme\",\"stream\":\"marketing\","
		"\"mail_from\":\"b+x@bounce.acme.example\",\"rcpt\":\"bob@example.com\","
		"\"domain\":\"example.com\",\"source_ip\":\"198.51.100.7\","
		"\"site\":\"mx.example.com\","
		"\"response\":\"451 4.7.1 \\\"try\\nlater\\\"\\r\\n\\u0001\\ufffd\",\"attempt\":3,"
		"\"queued_ms\":812,\"session_ms\":96,"
		"\"next_attempt\":\"2026-11-23T09:44:27.001Z\",\"size\":48213}\n"
		"{\"time\":\"2026-11-23T09:34:28.001Z\",\"event\":\"dsn_sent\","
		"\"id\":\"0123456789abcdef\",\"tenant\":\"acme\",\"stream\":\"marketing\","
		"\"mail_from\":\"b+x@bounce.acme.example\",\"rcpt\":\"bob@example.com\","
		"\"domain\":\"example.com\",\"attempt\":3,"
		"\"queued_ms\":812,\"session_ms\":96,\"size\":48213}\n");
	free(s);
}

/* The "tls" key: absent, null (plaintext allowed), an object with the
 * session's TLS, or one naming the policy's failure. */
static void test_tls(void **state)
{
	static const struct event_tls plain = { .policy = "opportunistic" };
	static const struct event_tls on = { .policy = "verify", .active = true,
					     .version = "TLSv1.3",
					     .cipher = "TLS_AES_256_GCM_SHA384",
					     .verified = true };
	static const struct event_tls failed = { .policy = "require",
						 .failure = "starttls-not-supported" };
	struct event_outcome o = { .kind = EVENT_DELIVERED, .time_ms = 1795426467000ULL,
				   .id = "0123456789abcdef", .size = 1 };
	struct events *ev;
	char *path = path_in("tls.log"), *s;

	(void)state;
	assert_int_equal(events_open(path, &ev), 0);
	o.tls = &plain;
	assert_int_equal(events_write(ev, &o), 0);
	o.tls = &on;
	assert_int_equal(events_write(ev, &o), 0);
	o.kind = EVENT_DEFERRED;
	o.tls = &failed;
	assert_int_equal(events_write(ev, &o), 0);
	events_close(ev);
	s = slurp(path);
	assert_string_equal(
		s,
		"{\"time\":\"2026-11-23T09:34:27.000Z\",\"event\":\"delivered\","
		"\"id\":\"0123456789abcdef\",\"queued_ms\":0,\"session_ms\":0,\"size\":1,"
		"\"tls\":null}\n"
		"{\"time\":\"2026-11-23T09:34:27.000Z\",\"event\":\"delivered\","
		"\"id\":\"0123456789abcdef\",\"queued_ms\":0,\"session_ms\":0,\"size\":1,"
		"\"tls\":{\"policy\":\"verify\",\"version\":\"TLSv1.3\","
		"\"cipher\":\"TLS_AES_256_GCM_SHA384\",\"verified\":true}}\n"
		"{\"time\":\"2026-11-23T09:34:27.000Z\",\"event\":\"deferred\","
		"\"id\":\"0123456789abcdef\",\"queued_ms\":0,\"session_ms\":0,"
		"\"next_attempt\":\"1970-01-01T00:00:00.000Z\",\"size\":1,"
		"\"tls\":{\"policy\":\"require\",\"version\":null,\"cipher\":null,"
		"\"verified\":false,\"failure\":\"starttls-not-supported\"}}\n");
	free(s);
}

/* Appends to an existing file; flushes by itself past 64 KiB. */
static void test_append_and_autoflush(void **state)
{
	char *path = path_in("big.log"), *s, *p;
	struct events *ev;
	struct stat st;
	int i;

	(void)state;
	assert_int_equal(events_open(path, &ev), 0);
	assert_int_equal(events_write(ev, &delivered), 0);
	events_close(ev);

	assert_int_equal(events_open(path, &ev), 0);
	for (i = 0; i < 2000; i++)
		assert_int_equal(events_write(ev, &delivered), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size >= EVENTS_FLUSH_AT);
	assert_int_equal((size_t)st.st_size % (sizeof delivered_line - 1), 0); /* whole lines */
	events_close(ev);

	s = slurp(path);
	assert_int_equal(count_lines(s), 2001);
	for (p = s, i = 0; i < 2001; i++, p += sizeof delivered_line - 1)
		assert_memory_equal(p, delivered_line, sizeof delivered_line - 1);
	free(s);
}

/* Rotation: lines before the reopen go to the renamed file. */
static void test_reopen(void **state)
{
	char *old = path_in("rot.log.1"), *s;
	struct events *ev;

	(void)state;
	assert_int_equal(events_open(path_in("rot.log"), &ev), 0);
	assert_int_equal(events_write(ev, &delivered), 0);
	assert_int_equal(events_flush(ev), 0);
	assert_int_equal(rename(path_in("rot.log"), old), 0);
	assert_int_equal(events_write(ev, &delivered), 0);
	assert_int_equal(events_reopen(ev), 0);
	assert_int_equal(events_write(ev, &delivered), 0);
	events_close(ev);

	s = slurp(old);
	assert_int_equal(count_lines(s), 2);
	free(s);
	s = slurp(path_in("rot.log"));
	assert_string_equal(s, delivered_line);
	free(s);
}

static void test_errors(void **state)
{
	struct event_outcome o = delivered;
	struct events *ev;
	int fd;

	(void)state;
	/* A parent that is a file. */
	fd = open(path_in("plain"), O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(events_open(path_in("plain/x.log"), &ev), -ENOTDIR);

	assert_int_equal(events_open(path_in("err.log"), &ev), 0);
	o.kind = (enum event_kind)42;
	assert_int_equal(events_write(ev, &o), -EINVAL);
	assert_int_equal(events_dropped(ev), 1);
	events_close(ev);
	events_close(NULL);
}

/* Writes fail: lines stay buffered up to the cap, then are dropped. */
static void test_write_failure(void **state)
{
	struct events *ev;
	uint64_t i, kept;
	int rc = 0;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	assert_int_equal(events_open("/dev/full", &ev), 0);
	assert_int_equal(events_write(ev, &delivered), 0);
	assert_int_equal(events_flush(ev), -ENOSPC);
	for (i = 0; i < EVENTS_MAX_PENDING && rc == 0; i++)
		rc = events_write(ev, &delivered);
	assert_int_equal(rc, -ENOSPC);
	kept = i; /* the first line plus all but the last call's */
	assert_true(kept * (sizeof delivered_line - 1) >= EVENTS_MAX_PENDING);
	assert_int_equal(events_dropped(ev), 1);
	assert_int_equal(events_write(ev, &delivered), -ENOSPC);
	assert_int_equal(events_dropped(ev), 2);
	events_close(ev);
}

/* "-" writes to stdout and leaves it open. */
static void test_stdout(void **state)
{
	char *path = path_in("stdout.log"), *s;
	struct events *ev;
	int saved, fd;

	(void)state;
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);

	assert_int_equal(events_open("-", &ev), 0);
	assert_int_equal(events_write(ev, &delivered), 0);
	assert_int_equal(events_reopen(ev), 0);
	events_close(ev);
	assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0);

	dup2(saved, STDOUT_FILENO);
	close(saved);
	s = slurp(path);
	assert_string_equal(s, delivered_line);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_append_and_autoflush),
		cmocka_unit_test(test_reopen),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_stdout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
