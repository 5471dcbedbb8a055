/* tls_report.c — per-domain TLS-RPT counters; see tls_report.h. */
#include "tls_report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"

struct rpt_entry {
	struct rpt_entry *next; /* in order of creation */
	enum tls_policy_mode mode;
	uint64_t *n[TLS_RPT_N]; /* NULL until first counted */
	char domain[];
};

struct tls_report {
	struct metrics *m;
	struct rpt_entry *head, **tail;
	size_t n_domains;
};

int tls_report_create(struct metrics *m, struct tls_report **out)
{
	struct tls_report *r = calloc(1, sizeof *r);

	if (!r)
		return -ENOMEM;
	r->m = m;
	r->tail = &r->head;
	*out = r;
	return 0;
}

void tls_report_destroy(struct tls_report *r)
{
	if (!r)
		return;
	while (r->head) {
		struct rpt_entry *e = r->head;

		r->head = e->next;
		free(e);
	}
	free(r);
}

static struct rpt_entry *entry_get(struct tls_report *r, const char *domain,
				   enum tls_policy_mode mode)
{
	struct rpt_entry *e;
	size_t len;
	bool known = false;

	for (e = r->head; e; e = e->next)
		if (!strcasecmp(e->domain, domain)) {
			known = true;
			if (e->mode == mode)
				return e;
		}
	if (!known && r->n_domains >= TLS_REPORT_MAX_DOMAINS) {
		if (strcmp(domain, "_other"))
			return entry_get(r, "_other", mode);
	}
	len = strlen(domain);
	e = calloc(1, sizeof *e + len + 1);
	if (!e)
		return NULL;
	for (size_t i = 0; i < len; i++)
		e->domain[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] | 0x20 :
				      domain[i]);
	e->mode = mode;
	*r->tail = e;
	r->tail = &e->next;
	if (!known)
		r->n_domains++;
	return e;
}

void tls_report_count(struct tls_report *r, const char *domain, enum tls_policy_mode mode,
		      enum tls_rpt_result result)
{
	struct rpt_entry *e;

	if ((unsigned)result >= TLS_RPT_N || !(e = entry_get(r, domain, mode)))
		return;
	if (!e->n[result]) {
		struct sl_buf labels = { 0 };

		if (sl_buf_append(&labels, "domain=\"", 8) < 0 ||
		    metrics_label_escape(&labels, e->domain) < 0 ||
		    sl_buf_appendf(&labels, "\",policy=\"%s\",result=\"%s\"", tls_policy_name(mode),
				  tls_rpt_result_name(result)) < 0 ||
		    sl_buf_append(&labels, "", 1) < 0) {
			sl_buf_free(&labels);
			return;
		}
		e->n[result] = metrics_counter(r->m, "sluice_tls_rpt_total",
					       "Outbound TLS sessions and MTA-STS checks per policy "
					       "domain, by RFC 8460 result type",
					       sl_buf_head(&labels));
		sl_buf_free(&labels);
		if (!e->n[result])
			return;
	}
	(*e->n[result])++;
}

int tls_report_json(const struct tls_report *r, struct sl_buf *out)
{
	struct sl_buf inner = { 0 };
	int rc = sl_buf_append(out, "{\"domains\":[", 12);

	for (const struct rpt_entry *e = r->head; !rc && e; e = e->next) {
		uint64_t fail = 0;
		struct json_obj o, f;

		sl_buf_reset(&inner);
		json_obj_begin(&f, &inner);
		for (int i = 1; i < TLS_RPT_N; i++)
			if (e->n[i] && *e->n[i]) {
				fail += *e->n[i];
				json_obj_u64(&f, tls_rpt_result_name(i), *e->n[i]);
			}
		rc = json_obj_end(&f);
		if (!rc && e != r->head)
			rc = sl_buf_append(out, ",", 1);
		if (rc)
			break;
		json_obj_begin(&o, out);
		json_obj_str(&o, "domain", e->domain);
		json_obj_str(&o, "policy", tls_policy_name(e->mode));
		json_obj_u64(&o, "success", e->n[0] ? *e->n[0] : 0);
		json_obj_u64(&o, "failure", fail);
		json_obj_raw(&o, "failures", sl_buf_head(&inner), sl_buf_avail(&inner));
		rc = json_obj_end(&o);
	}
	sl_buf_free(&inner);
	return rc ? rc : sl_buf_append(out, "]}", 2);
}
