/* cmd_warmup.c — `sluicectl warmup`; see cmd_warmup.h. */
#include "cmd_warmup.h"

#include "buf.h"
#include "config.h"
#include "err.h"
#include "json.h"
#include "warmup.h"
#include "warmup_db.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(void)
{
	fprintf(stderr,
		"usage: sluicectl warmup status [--json] [-c CONFIG | --db FILE]\n"
		"       sluicectl warmup pause|resume|restart|jump --ip IP --provider P\n"
		"                 [--day N] [--reason TEXT] [-c CONFIG | --db FILE]\n");
	return 2;
}

static void fmt_cap(uint64_t v, char *buf, size_t len)
{
	if (v == UINT64_MAX)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

static int status(struct warmup_db *db, bool json)
{
	struct warmup_record *r;
	struct sl_buf b = { 0 };
	size_t n;
	int rc = warmup_db_states(db, &r, &n);

	if (rc < 0) {
		fprintf(stderr, "sluicectl warmup: %s\n", sl_strerror(rc));
		return 1;
	}
	if (json) {
		sl_buf_append(&b, "[", 1);
		for (size_t i = 0; i < n; i++) {
			struct json_obj o;

			if (i)
				sl_buf_append(&b, ",", 1);
			json_obj_begin(&o, &b);
			json_obj_str(&o, "ip", r[i].ip);
			json_obj_str(&o, "provider", r[i].provider);
			json_obj_str(&o, "schedule", r[i].schedule);
			json_obj_u64(&o, "day", r[i].day);
			if (r[i].cap_today == UINT64_MAX)
				json_obj_raw(&o, "cap_today", "null", 4);
			else
				json_obj_u64(&o, "cap_today", r[i].cap_today);
			json_obj_u64(&o, "sent_today", r[i].sent_today);
			if (r[i].cap_hour == UINT64_MAX)
				json_obj_raw(&o, "cap_hour", "null", 4);
			else
				json_obj_u64(&o, "cap_hour", r[i].cap_hour);
			json_obj_u64(&o, "sent_hour", r[i].sent_hour);
			json_obj_u64(&o, "next_increase_day", r[i].next_increase_day);
			json_obj_str(&o, "state", warmup_phase_name(r[i].phase));
			json_obj_u64(&o, "start_ms", r[i].start_ms);
			json_obj_u64(&o, "clock_ms", r[i].now_ms);
			json_obj_end(&o);
		}
		sl_buf_append(&b, "]\n", 2);
		fwrite(b.data, 1, b.len, stdout);
		sl_buf_free(&b);
		free(r);
		return 0;
	}
	printf("%-16s %-12s %-13s %5s %10s %10s %10s %10s %-13s %s\n", "IP", "PROVIDER",
	       "SCHEDULE", "DAY", "CAP_TODAY", "SENT_TODAY", "CAP_HOUR", "SENT_HOUR",
	       "NEXT_INCREASE", "STATE");
	for (size_t i = 0; i < n; i++) {
		char ct[24], ch[24], ni[24];

		fmt_cap(r[i].cap_today, ct, sizeof ct);
		fmt_cap(r[i].cap_hour, ch, sizeof ch);
		if (r[i].next_increase_day)
			snprintf(ni, sizeof ni, "day %u", r[i].next_increase_day);
		else
			snprintf(ni, sizeof ni, "-");
		printf("%-16s %-12s %-13s %5u %10s %10llu %10s %10llu %-13s %s\n", r[i].ip,
		       r[i].provider, r[i].schedule, r[i].day, ct,
		       (unsigned long long)r[i].sent_today, ch, (unsigned long long)r[i].sent_hour,
		       ni, warmup_phase_name(r[i].phase));
	}
	free(r);
	return 0;
}

static bool ip_canon(const char *in, char *out, size_t len)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, in, a) == 1)
		return inet_ntop(AF_INET, a, out, (socklen_t)len) != NULL;
	if (inet_pton(AF_INET6, in, a) == 1)
		return inet_ntop(AF_INET6, a, out, (socklen_t)len) != NULL;
	return false;
}

int cmd_warmup(int argc, char **argv)
{
	const char *conf = getenv("SLUICE_CONFIG"), *dbpath = NULL, *ip = NULL, *prov = NULL;
	const char *reason = "", *user = getenv("SUDO_USER");
	struct warmup_command c = { 0 };
	struct sl_config *cfg = NULL;
	struct warmup_db *db = NULL;
	char path[4096], err[1024] = "";
	bool json = false;
	long day = 0;
	int rc, ret = 1;

	if (argc < 2)
		return usage();
	if (!conf || !*conf)
		conf = "/etc/sluice/sluice.yaml";
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--json")) {
			json = true;
			continue;
		}
		if (!v)
			return usage();
		if (!strcmp(a, "-c"))
			conf = v;
		else if (!strcmp(a, "--db"))
			dbpath = v;
		else if (!strcmp(a, "--ip"))
			ip = v;
		else if (!strcmp(a, "--provider"))
			prov = v;
		else if (!strcmp(a, "--reason"))
			reason = v;
		else if (!strcmp(a, "--day"))
			day = strtol(v, NULL, 10);
		else
			return usage();
		i++;
	}
	if (strcmp(argv[1], "status")) {
		c.action = warmup_action_parse(argv[1]);
		if (!c.action || !ip || !prov || (c.action == WARMUP_CMD_JUMP && day < 1) ||
		    day < 0 || day > 100000)
			return usage();
		if (!ip_canon(ip, c.ip, sizeof c.ip)) {
			fprintf(stderr, "sluicectl warmup: '%s' is not an IP address\n", ip);
			return 2;
		}
		snprintf(c.provider, sizeof c.provider, "%s", prov);
		c.day = (uint32_t)day;
	}
	if (!dbpath) {
		if ((rc = config_load(conf, &cfg, err, sizeof err)) < 0) {
			fprintf(stderr, "sluicectl warmup: %s\n", err[0] ? err : sl_strerror(rc));
			return 1;
		}
		snprintf(path, sizeof path, "%s/%s", cfg->spool.path, WARMUP_DB_FILE);
		dbpath = path;
		if (c.action && cfg->warmup_schedules) {
			struct warmup_config *wc;

			rc = warmup_load(cfg->warmup_schedules, &wc, err, sizeof err);
			if (rc < 0) {
				fprintf(stderr, "sluicectl warmup: %s\n", err);
				goto out;
			}
			rc = warmup_ip_for(wc, c.ip) != NULL;
			warmup_free(wc);
			if (!rc) {
				fprintf(stderr, "sluicectl warmup: %s is not under warm-up in %s\n",
					c.ip, cfg->warmup_schedules);
				goto out;
			}
		}
	}
	if ((rc = warmup_db_open(dbpath, true, &db)) < 0) {
		fprintf(stderr, "sluicectl warmup: %s: %s\n", dbpath, sl_strerror(rc));
		goto out;
	}
	if (!c.action) {
		ret = status(db, json);
		goto out;
	}
	if (!user || !*user)
		user = getenv("USER");
	snprintf(c.actor, sizeof c.actor, "operator:%s", user && *user ? user : "unknown");
	snprintf(c.reason, sizeof c.reason, "%s", reason);
	c.time_ms = 0;
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		c.time_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	}
	if ((rc = warmup_db_command_add(db, &c)) < 0) {
		fprintf(stderr, "sluicectl warmup: %s\n", sl_strerror(rc));
		goto out;
	}
	printf("warm-up %s %s %s: queued as command %llu (sluiced applies it within a second)\n",
	       warmup_action_name(c.action), c.ip, c.provider, (unsigned long long)c.seq);
	ret = 0;
out:
	warmup_db_close(db);
	config_free(cfg);
	return ret;
}
