/*
 * cmd_bounce.c — `sluicectl bounce classify` and `sluicectl fbl parse`.
 * See cmd_bounce.h.
 */
#include "cmd_bounce.h"
#include "arf.h"
#include "bounce.h"
#include "buf.h"
#include "err.h"
#include "json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STDIN_MAX BOUNCE_MSG_MAX

static const char *default_rules(void)
{
	const char *env = getenv("SLUICE_BOUNCE_RULES");

	if (env && *env)
		return env;
	if (access("/etc/sluice/bounce-rules.conf", R_OK) == 0)
		return "/etc/sluice/bounce-rules.conf";
	return "configs/bounce-rules.conf";
}

/* Read stdin up to STDIN_MAX bytes (the rest is drained and ignored). */
static int read_stdin(struct sl_buf *b)
{
	char tmp[65536];
	size_t n;
	int rc;

	while ((n = fread(tmp, 1, sizeof tmp, stdin)) > 0) {
		size_t room = STDIN_MAX - sl_buf_avail(b);
		if (n > room)
			n = room;
		if (n && (rc = sl_buf_append(b, tmp, n)) < 0)
			return rc;
	}
	return ferror(stdin) ? -EIO : 0;
}

static int print_obj(struct sl_buf *out)
{
	if (sl_buf_append(out, "\n", 1) < 0)
		return -1;
	fwrite(sl_buf_head(out), 1, sl_buf_avail(out), stdout);
	return fflush(stdout) == 0 ? 0 : -1;
}

static int bounce_usage(void)
{
	fprintf(stderr, "usage: sluicectl bounce classify [--rules FILE] [--reply 'SMTP REPLY']\n"
			"       (without --reply, reads a bounce message from stdin)\n");
	return 2;
}

int cmd_bounce(int argc, char **argv)
{
	const char *rules_path = NULL, *reply = NULL;
	struct bounce_rules *rules = NULL;
	struct bounce_result res;
	struct sl_buf in = { 0 }, out = { 0 };
	struct json_obj o;
	char err[512];
	int rc, ret = 0;

	if (argc < 2 || strcmp(argv[1], "classify") != 0)
		return bounce_usage();
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--rules") && i + 1 < argc)
			rules_path = argv[++i];
		else if (!strcmp(argv[i], "--reply") && i + 1 < argc)
			reply = argv[++i];
		else
			return bounce_usage();
	}
	if (!rules_path)
		rules_path = default_rules();
	rc = bounce_rules_load(rules_path, &rules, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "sluicectl bounce: %s\n", err[0] ? err : sl_strerror(rc));
		return 2;
	}
	if (reply) {
		rc = bounce_classify_reply(rules, reply, &res);
	} else {
		rc = read_stdin(&in);
		if (rc < 0) {
			fprintf(stderr, "sluicectl bounce: stdin: %s\n", sl_strerror(rc));
			ret = 1;
			goto out;
		}
		rc = bounce_classify_message(rules, in.data ? sl_buf_head(&in) : "",
					     sl_buf_avail(&in), &res);
	}
	if (rc == -ENOMEM) {
		fprintf(stderr, "sluicectl bounce: %s\n", sl_strerror(rc));
		ret = 1;
		goto out;
	}
	if (rc < 0)
		ret = 1;
	json_obj_begin(&o, &out);
	json_obj_str(&o, "reason", bounce_reason_name(res.reason));
	json_obj_str(&o, "recipient", res.recipient[0] ? res.recipient : NULL);
	json_obj_str(&o, "status", res.status[0] ? res.status : NULL);
	json_obj_str(&o, "diagnostic", res.diagnostic[0] ? res.diagnostic : NULL);
	json_obj_bool(&o, "hard", res.hard);
	if (res.code)
		json_obj_u64(&o, "code", (uint64_t)res.code);
	if (res.n_recipients)
		json_obj_u64(&o, "recipients", res.n_recipients);
	if (json_obj_end(&o) < 0 || print_obj(&out) < 0) {
		fprintf(stderr, "sluicectl bounce: cannot write output\n");
		ret = 1;
	}
out:
	bounce_rules_free(rules);
	sl_buf_free(&in);
	sl_buf_free(&out);
	return ret;
}

int cmd_fbl(int argc, char **argv)
{
	struct sl_buf in = { 0 }, out = { 0 };
	struct arf_report r;
	struct json_obj o;
	int rc, ret = 0;

	if (argc != 2 || strcmp(argv[1], "parse") != 0) {
		fprintf(stderr, "usage: sluicectl fbl parse < report.eml\n");
		return 2;
	}
	rc = read_stdin(&in);
	if (rc < 0) {
		fprintf(stderr, "sluicectl fbl: stdin: %s\n", sl_strerror(rc));
		sl_buf_free(&in);
		return 1;
	}
	rc = arf_parse(in.data ? sl_buf_head(&in) : "", sl_buf_avail(&in), &r);
	if (rc < 0) {
		fprintf(stderr, "sluicectl fbl: not a feedback report\n");
		ret = 1;
	}
#define STR(k, v) json_obj_str(&o, k, (v)[0] ? (v) : NULL)
	json_obj_begin(&o, &out);
	json_obj_str(&o, "format", arf_format_name(r.format));
	STR("feedback_type", r.feedback_type);
	STR("original_mail_from", r.original_mail_from);
	STR("original_rcpt_to", r.original_rcpt_to);
	STR("source_ip", r.source_ip);
	STR("arrival_date", r.arrival_date);
	STR("reported_domain", r.reported_domain);
	STR("user_agent", r.user_agent);
	STR("message_id", r.message_id);
#undef STR
	if (json_obj_end(&o) < 0 || print_obj(&out) < 0) {
		fprintf(stderr, "sluicectl fbl: cannot write output\n");
		ret = 1;
	}
	sl_buf_free(&in);
	sl_buf_free(&out);
	return ret;
}
