/* sts_cache.c — MTA-STS discovery, fetch and cache; see sts_cache.h. */
#include "sts_cache.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "err.h"
#include "offload.h"

#define N_BUCKETS 1024
#define FETCH_CONNECT_S 10L
#define FETCH_TOTAL_S 30L

struct sts_entry {
	struct sts_cache *c;
	struct sts_entry *next;         /* hash chain */
	bool checked;                   /* a first check finished */
	bool busy;                      /* a check is under way */
	bool have_policy;               /* policy is set (maybe expired) */
	uint64_t checked_ms;            /* when the last check started */
	uint64_t expires_ms;            /* have_policy: usable until */
	uint64_t lookup;                /* resolver handle while resolving */
	char id[MTA_STS_ID_MAX + 1];    /* the cached policy's id */
	char new_id[MTA_STS_ID_MAX + 1];/* the id being fetched */
	struct mta_sts_policy policy;
	/* The fetch on the worker thread. */
	struct offload_job job;
	char resolve[300];              /* CURLOPT_RESOLVE "host:443:addr" */
	struct sl_buf body;
	enum tls_rpt_result result;     /* of the fetch */
	struct mta_sts_policy fetched;
	char domain[];
};

struct sts_cache {
	struct loop *loop;
	struct resolver *res;
	char *ca_file;
	sts_cache_notify_cb notify;
	void *ctx;
	struct offload *off;
	struct loop_op op;
	uint64_t ev;
	struct sts_entry *tab[N_BUCKETS];
};

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)(*s | 0x20)) * 1099511628211ull;
	return h;
}

/* A check ended: failure is what went wrong (SUCCESS for nothing). */
static void check_done(struct sts_entry *e, enum tls_rpt_result failure)
{
	e->busy = false;
	e->checked = true;
	if (e->c->notify) /* NULL while the cache is being destroyed */
		e->c->notify(e->c->ctx, e->domain, failure);
}

/* --- step 3: the HTTPS fetch, on the worker thread ---------------------- */

static size_t fetch_write(char *data, size_t size, size_t n, void *arg)
{
	struct sts_entry *e = arg;

	if (e->body.len + size * n > MTA_STS_POLICY_MAX ||
	    sl_buf_append(&e->body, data, size * n) < 0)
		return 0; /* aborts the transfer */
	return size * n;
}

static void fetch_run(struct offload_job *j)
{
	struct sts_entry *e = (struct sts_entry *)((char *)j - offsetof(struct sts_entry, job));
	struct curl_slist *resolve = NULL;
	char url[320];
	long status = 0;
	char *ctype = NULL;
	CURLcode cc;
	CURL *h;

	e->result = TLS_RPT_STS_POLICY_FETCH_ERROR;
	sl_buf_reset(&e->body);
	h = curl_easy_init();
	resolve = curl_slist_append(NULL, e->resolve);
	if (!h || !resolve)
		goto out;
	snprintf(url, sizeof url, "https://mta-sts.%s/.well-known/mta-sts.txt", e->domain);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, FETCH_CONNECT_S);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, FETCH_TOTAL_S);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)MTA_STS_POLICY_MAX);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice");
	if (e->c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, e->c->ca_file);
	cc = curl_easy_perform(h);
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
	    cc == CURLE_SSL_ISSUER_ERROR) {
		e->result = TLS_RPT_STS_WEBPKI_INVALID;
		goto out;
	}
	if (cc != CURLE_OK || curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
	    status != 200)
		goto out;
	/* RFC 8461 §3.3: the media type is text/plain. */
	if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype) != CURLE_OK || !ctype ||
	    strncasecmp(ctype, "text/plain", 10) || (ctype[10] && ctype[10] != ';' &&
						     ctype[10] != ' ')) {
		e->result = TLS_RPT_STS_POLICY_INVALID;
		goto out;
	}
	e->result = mta_sts_parse(e->body.data ? e->body.data : "", e->body.len, &e->fetched) == 0 ?
		    TLS_RPT_SUCCESS : TLS_RPT_STS_POLICY_INVALID;
out:
	curl_slist_free_all(resolve);
	if (h)
		curl_easy_cleanup(h);
}

static void fetch_done(struct offload_job *j)
{
	struct sts_entry *e = (struct sts_entry *)((char *)j - offsetof(struct sts_entry, job));

	sl_buf_free(&e->body);
	if (e->result == TLS_RPT_SUCCESS) {
		e->policy = e->fetched;
		e->have_policy = true;
		e->expires_ms = loop_now_ms(e->c->loop) + (uint64_t)e->policy.max_age * 1000;
		memcpy(e->id, e->new_id, sizeof e->id);
	}
	check_done(e, e->result);
}

/* --- steps 1 and 2: DNS ------------------------------------------------- */

static void on_host(void *ctx, int err, const struct mx_result *res)
{
	struct sts_entry *e = ctx;
	char addr[INET6_ADDRSTRLEN];
	const struct sockaddr_storage *a;

	e->lookup = 0;
	if (err) {
		check_done(e, TLS_RPT_STS_POLICY_FETCH_ERROR);
		return;
	}
	a = &res->hosts[0].addrs[0];
	if (a->ss_family == AF_INET6) {
		addr[0] = '[';
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, addr + 1,
			  sizeof addr - 2);
		strcat(addr, "]");
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, addr, sizeof addr);
	}
	snprintf(e->resolve, sizeof e->resolve, "mta-sts.%s:443:%s", e->domain, addr);
	e->job = (struct offload_job){ .run = fetch_run, .done = fetch_done };
	if (offload_submit(e->c->off, &e->job) < 0)
		check_done(e, TLS_RPT_STS_POLICY_FETCH_ERROR);
}

static void on_txt(void *ctx, int err, const char *const *txts, size_t n)
{
	struct sts_entry *e = ctx;
	char host[300];
	int rc;

	e->lookup = 0;
	if (err) { /* no record, or DNS trouble: keep what we have */
		check_done(e, TLS_RPT_SUCCESS);
		return;
	}
	rc = mta_sts_txt_id(txts, n, e->new_id);
	if (rc == SL_ENOTFOUND) {
		check_done(e, TLS_RPT_SUCCESS);
		return;
	}
	if (rc < 0) {
		check_done(e, TLS_RPT_STS_POLICY_INVALID);
		return;
	}
	if (e->have_policy && !strcmp(e->id, e->new_id) &&
	    loop_now_ms(e->c->loop) < e->expires_ms) {
		check_done(e, TLS_RPT_SUCCESS);
		return;
	}
	snprintf(host, sizeof host, "mta-sts.%s", e->domain);
	if (resolver_lookup_host(e->c->res, host, on_host, e, &e->lookup) < 0)
		check_done(e, TLS_RPT_STS_POLICY_FETCH_ERROR);
}

static void check_start(struct sts_entry *e, uint64_t now)
{
	char name[300];

	e->busy = true;
	e->checked_ms = now;
	snprintf(name, sizeof name, "_mta-sts.%s", e->domain);
	if (resolver_lookup_txt(e->c->res, name, on_txt, e, &e->lookup) < 0) {
		e->busy = false;
		e->checked = true;
	}
}

/* --- the cache ---------------------------------------------------------- */

static void arm_read(struct sts_cache *c)
{
	struct io_uring_sqe *sqe = loop_sqe(c->loop, &c->op);

	io_uring_prep_read(sqe, offload_fd(c->off), &c->ev, sizeof c->ev, 0);
}

static void on_offload(struct loop_op *op, int res, uint32_t flags)
{
	struct sts_cache *c = (struct sts_cache *)((char *)op - offsetof(struct sts_cache, op));

	(void)flags;
	offload_reap(c->off);
	if (res != -ECANCELED)
		arm_read(c);
}

int sts_cache_create(struct loop *l, struct resolver *r, const char *ca_file,
		     sts_cache_notify_cb notify, void *ctx, struct sts_cache **out)
{
	struct sts_cache *c = calloc(1, sizeof *c);
	int rc = -ENOMEM;

	if (!c)
		return -ENOMEM;
	c->loop = l;
	c->res = r;
	c->notify = notify;
	c->ctx = ctx;
	if (ca_file && !(c->ca_file = strdup(ca_file)))
		goto fail;
	rc = offload_create(1, &c->off);
	if (rc < 0)
		goto fail;
	c->op.cb = on_offload;
	arm_read(c);
	*out = c;
	return 0;
fail:
	free(c->ca_file);
	free(c);
	return rc;
}

void sts_cache_destroy(struct sts_cache *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < N_BUCKETS; b++)
		for (struct sts_entry *e = c->tab[b]; e; e = e->next)
			if (e->lookup)
				resolver_cancel(c->res, e->lookup);
	c->notify = NULL;
	/* A fetch under way finishes first; its done must not notify. */
	offload_destroy(c->off);
	for (size_t b = 0; b < N_BUCKETS; b++)
		while (c->tab[b]) {
			struct sts_entry *e = c->tab[b];

			c->tab[b] = e->next;
			sl_buf_free(&e->body);
			free(e);
		}
	free(c->ca_file);
	free(c);
}

int sts_cache_get(struct sts_cache *c, const char *domain, uint64_t now_ms,
		  const struct mta_sts_policy **out)
{
	uint64_t b = hash_name(domain) & (N_BUCKETS - 1);
	struct sts_entry *e;

	for (e = c->tab[b]; e; e = e->next)
		if (!strcasecmp(e->domain, domain))
			break;
	if (!e) {
		size_t len = strlen(domain);

		e = calloc(1, sizeof *e + len + 1);
		if (!e)
			return -ENOMEM;
		e->c = c;
		memcpy(e->domain, domain, len + 1);
		e->next = c->tab[b];
		c->tab[b] = e;
	}
	if (!e->busy && (!e->checked || now_ms - e->checked_ms >= STS_RECHECK_MS))
		check_start(e, now_ms);
	if (!e->checked)
		return 0;
	*out = e->have_policy && now_ms < e->expires_ms ? &e->policy : NULL;
	return 1;
}
