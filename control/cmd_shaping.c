/*
 * cmd_shaping.c — `sluicectl shaping explain`; see cmd_shaping.h.
 */
#include "cmd_shaping.h"

#include "buf.h"
#include "err.h"
#include "json.h"
#include "providers.h"
#include "shaping.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MX 64
#define MAX_PROVIDER_FILES 8

static int usage(void)
{
	fprintf(stderr,
		"usage: sluicectl shaping explain --ip IP --domain DOMAIN [--mx HOST ...]\n"
		"           [--pool POOL] [--provider NAME] [--site KEY]\n"
		"           [--shaping FILE] [--providers FILE ...] [--json]\n");
	return 2;
}

static const char *pick(const char *env, const char *etc, const char *local)
{
	const char *e = getenv(env);

	if (e && *e)
		return e;
	if (access(etc, R_OK) == 0)
		return etc;
	return local;
}

static void fmt_duration(uint64_t ms, char *buf, size_t len)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} u[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };

	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
		if (ms && ms % u[i].ms == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(ms / u[i].ms), u[i].unit);
			return;
		}
	snprintf(buf, len, "%llums", (unsigned long long)ms);
}

static void fmt_count(uint32_t n, char *buf, size_t len)
{
	if (n == 0)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%u", n);
}

/* The knob's value as text (the table and the JSON "value"). */
static void fmt_knob(const struct shaping_values *v, enum shaping_knob k, char *buf, size_t len)
{
	size_t off;

	switch (k) {
	case SHAPING_MAX_CONNECTIONS:
		fmt_count(v->max_connections, buf, len);
		break;
	case SHAPING_CONNECTION_RATE:
		shaping_format_rate(&v->connection_rate, buf, len);
		break;
	case SHAPING_MESSAGE_RATE:
		shaping_format_rate(&v->message_rate, buf, len);
		break;
	case SHAPING_MAX_MESSAGES_PER_CONNECTION:
		fmt_count(v->max_messages_per_connection, buf, len);
		break;
	case SHAPING_MAX_RECIPIENTS_PER_TRANSACTION:
		fmt_count(v->max_recipients_per_transaction, buf, len);
		break;
	case SHAPING_RETRY_SCHEDULE:
		off = 0;
		buf[0] = '\0';
		for (size_t i = 0; i < v->n_retry && off + 16 < len; i++) {
			char d[32];

			fmt_duration(v->retry_ms[i], d, sizeof d);
			off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", d);
		}
		break;
	case SHAPING_MAX_AGE:
		fmt_duration(v->max_age_ms, buf, len);
		break;
	case SHAPING_CONNECT_TIMEOUT:
		fmt_duration(v->connect_timeout_ms, buf, len);
		break;
	case SHAPING_IDLE_TIMEOUT:
		fmt_duration(v->idle_timeout_ms, buf, len);
		break;
	default:
		snprintf(buf, len, "?");
		break;
	}
}

static int print_json(const struct shaping_key *key, const struct shaping_values *v)
{
	struct sl_buf out = { 0 }, vals = { 0 };
	struct json_obj o, kv;
	int rc = 0;

	json_obj_begin(&kv, &vals);
	for (int k = 0; k < SHAPING_N_KNOBS; k++) {
		struct sl_buf one = { 0 };
		struct json_obj ko;
		char text[1024];

		fmt_knob(v, (enum shaping_knob)k, text, sizeof text);
		json_obj_begin(&ko, &one);
		json_obj_str(&ko, "value", text);
		json_obj_str(&ko, "from", v->from[k]);
		if (json_obj_end(&ko) < 0)
			rc = -ENOMEM;
		else
			json_obj_raw(&kv, shaping_knob_name((enum shaping_knob)k), sl_buf_head(&one),
				     sl_buf_avail(&one));
		sl_buf_free(&one);
	}
	if (json_obj_end(&kv) < 0)
		rc = -ENOMEM;
	json_obj_begin(&o, &out);
	json_obj_str(&o, "ip", key->ip);
	json_obj_str(&o, "pool", key->pool);
	json_obj_str(&o, "domain", key->domain);
	json_obj_str(&o, "provider", key->provider);
	json_obj_str(&o, "site", key->site);
	if (!rc)
		json_obj_raw(&o, "values", sl_buf_head(&vals), sl_buf_avail(&vals));
	if (json_obj_end(&o) < 0 || rc)
		rc = -ENOMEM;
	if (!rc && sl_buf_append(&out, "\n", 1) < 0)
		rc = -ENOMEM;
	if (!rc) {
		fwrite(sl_buf_head(&out), 1, sl_buf_avail(&out), stdout);
		rc = fflush(stdout) == 0 ? 0 : -EIO;
	}
	sl_buf_free(&vals);
	sl_buf_free(&out);
	return rc;
}

static int print_table(const struct shaping_key *key, const struct shaping_values *v)
{
	printf("source ip   %s\n", key->ip);
	printf("pool        %s\n", key->pool ? key->pool : "(none)");
	printf("domain      %s\n", key->domain);
	printf("provider    %s\n", key->provider ? key->provider : "(none)");
	printf("site        %s\n\n", key->site ? key->site : "(unknown: pass --mx)");
	printf("%-32s %-24s %s\n", "SETTING", "VALUE", "FROM");
	for (int k = 0; k < SHAPING_N_KNOBS; k++) {
		char text[1024];

		fmt_knob(v, (enum shaping_knob)k, text, sizeof text);
		printf("%-32s %-24s %s\n", shaping_knob_name((enum shaping_knob)k), text, v->from[k]);
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

int cmd_shaping(int argc, char **argv)
{
	const char *mx[MAX_MX], *pfiles[MAX_PROVIDER_FILES];
	size_t n_mx = 0, n_pfiles = 0;
	const char *shaping_path = NULL, *provider = NULL, *site = NULL;
	struct shaping_key key = { 0 };
	struct provider_table *pt = NULL;
	struct shaping_rules *rules = NULL;
	struct shaping_values v;
	char site_buf[SITE_KEY_MAX], err[512];
	bool json = false;
	int rc, ret = 0;

	if (argc < 2 || strcmp(argv[1], "explain") != 0)
		return usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--json")) {
			json = true;
			continue;
		}
		if (!val)
			return usage();
		i++;
		if (!strcmp(a, "--ip"))
			key.ip = val;
		else if (!strcmp(a, "--domain"))
			key.domain = val;
		else if (!strcmp(a, "--pool"))
			key.pool = val;
		else if (!strcmp(a, "--provider"))
			provider = val;
		else if (!strcmp(a, "--site"))
			site = val;
		else if (!strcmp(a, "--shaping"))
			shaping_path = val;
		else if (!strcmp(a, "--mx") && n_mx < MAX_MX)
			mx[n_mx++] = val;
		else if (!strcmp(a, "--providers") && n_pfiles < MAX_PROVIDER_FILES)
			pfiles[n_pfiles++] = val;
		else
			return usage();
	}
	if (!key.ip || !key.domain)
		return usage();

	if (!shaping_path)
		shaping_path = pick("SLUICE_SHAPING", "/etc/sluice/shaping.yaml",
				    "configs/shaping.yaml");
	rc = shaping_load(shaping_path, &rules, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "sluicectl shaping: %s\n", err[0] ? err : sl_strerror(rc));
		return 2;
	}

	if (n_pfiles == 0) {
		pfiles[n_pfiles++] = pick("SLUICE_PROVIDERS", "/etc/sluice/providers.conf",
					  "configs/providers.conf");
		if (access("/etc/sluice/providers.local.conf", R_OK) == 0)
			pfiles[n_pfiles++] = "/etc/sluice/providers.local.conf";
	}
	pt = providers_create();
	if (!pt) {
		fprintf(stderr, "sluicectl shaping: %s\n", sl_strerror(-ENOMEM));
		ret = 1;
		goto out;
	}
	for (size_t i = 0; i < n_pfiles; i++) {
		rc = providers_load_file(pt, pfiles[i], err, sizeof err);
		if (rc < 0) {
			fprintf(stderr, "sluicectl shaping: %s\n", err[0] ? err : sl_strerror(rc));
			ret = 2;
			goto out;
		}
	}

	key.provider = provider ? provider : provider_for_mxs(pt, mx, n_mx);
	if (site) {
		key.site = site;
	} else if (n_mx) {
		rc = site_key(mx, n_mx, site_buf, sizeof site_buf);
		if (rc < 0) {
			fprintf(stderr, "sluicectl shaping: bad --mx list: %s\n", sl_strerror(rc));
			ret = 2;
			goto out;
		}
		key.site = site_buf;
	}
	shaping_resolve(rules, &key, &v);
	rc = json ? print_json(&key, &v) : print_table(&key, &v);
	if (rc < 0) {
		fprintf(stderr, "sluicectl shaping: cannot write output\n");
		ret = 1;
	}
out:
	providers_free(pt);
	shaping_free(rules);
	return ret;
}
