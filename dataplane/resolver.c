/*
 * resolver.c — MX and host lookups on libunbound; see resolver.h.
 *
 * A lookup is one caller-visible handle and up to 1 + 2 * RESOLVER_MAX_HOSTS
 * libunbound queries: the MX query, then an A and an AAAA query per host,
 * all in flight together. Each query's callback argument is its struct
 * query, which lives inside the lookup; the lookup completes when its last
 * query has answered (lk->pending reaches 0). Cancelling a lookup cancels
 * its pending queries, after which libunbound never calls them back, so the
 * lookup can be freed at once.
 *
 * libunbound runs in threaded async mode: a background thread does the
 * network I/O and writes answers to a pipe; ub_process() (our
 * resolver_process) reads them and calls back in the caller's thread, with
 * no libunbound lock held, so callbacks may start or cancel queries.
 */
#include "resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <unbound.h>

#include "err.h"

#define NAME_LEN_MAX 253 /* text form without the trailing dot */
#define LABEL_LEN_MAX 63

#define QTYPE_A 1
#define QTYPE_MX 15
#define QTYPE_AAAA 28
#define QTYPE_PTR 12
#define QTYPE_TLSA 52
#define QTYPE_TXT 16
#define TXT_MAX_RRS 16   /* TXT records kept per answer */
#define TXT_MAX_LEN 2048 /* longer TXT records are skipped */
#define QCLASS_IN 1
#define RCODE_NOERROR 0
#define RCODE_NXDOMAIN 3

/* How long a server that timed out is remembered as down (libunbound's
 * default, 900 s, would turn a short outage into 15 minutes of failures). */
#define INFRA_HOST_TTL "60"

enum qstate {
	Q_NONE,    /* not asked (an IP literal host) */
	Q_PENDING, /* in flight */
	Q_DATA,    /* answered with records */
	Q_NODATA,  /* NXDOMAIN or no records of the type: permanent */
	Q_TEMP,    /* SERVFAIL, timeout, or the query could not be started */
};

struct lookup;

struct query {
	struct lookup *lk;
	int id;         /* libunbound async id while Q_PENDING */
	int host;       /* index into lk->hosts; -1 for the MX query */
	uint16_t qtype;
	uint8_t state;  /* enum qstate */
};

struct host {
	char name[NAME_LEN_MAX + 1];
	uint16_t pref;
	uint8_t n4, n6;
	struct in_addr a4[RESOLVER_MAX_ADDRS];
	struct in6_addr a6[RESOLVER_MAX_ADDRS];
	struct query q[3]; /* A, AAAA, TLSA */
	bool addr_insecure; /* an A/AAAA answer was not validated */
	uint8_t tlsa_sec;   /* enum resolver_sec */
	uint8_t n_tlsa;
	uint8_t *tlsa[RESOLVER_MAX_TLSA]; /* copies of the rdata */
	size_t tlsa_len[RESOLVER_MAX_TLSA];
};

struct lookup {
	struct lookup *prev, *next; /* r->lookups while outstanding */
	struct resolver *r;
	uint64_t handle;
	resolver_mx_cb cb;
	resolver_ptr_cb ptr_cb; /* set: a PTR lookup (mxq asks for the PTR) */
	resolver_txt_cb txt_cb; /* set: a TXT lookup (mxq asks for the TXT) */
	void *ctx;
	unsigned pending; /* queries in flight */
	bool implicit;
	bool want_tlsa;   /* look up the hosts' TLSA if the MX answer is secure */
	uint8_t mx_sec;   /* enum resolver_sec of the MX answer */
	struct query mxq;
	struct host *hosts;
	size_t n_hosts;
	char domain[NAME_LEN_MAX + 1];
};

struct resolver {
	struct ub_ctx *ub;
	struct lookup *lookups;
	uint64_t next_handle;
	uint64_t rng;
	bool finalized;  /* libunbound config frozen (first lookup) */
	bool started;    /* libunbound's worker thread exists */
	bool in_process; /* inside ub_process: callbacks may run */
	bool dead;       /* destroyed from a callback; free after ub_process */
	bool tlsa;       /* resolver_set_tlsa */
};

/* splitmix64: small, seedable, good enough to order equal-preference MX. */
static uint64_t rng_next(struct resolver *r)
{
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool host_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_ip_literal(const char *name)
{
	struct in_addr a4;
	struct in6_addr a6;

	return inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
}

/* Copy a text hostname into out lower-cased, without a trailing dot.
 * 0, or -EINVAL if it is not a hostname or is an IP literal. */
static int name_normalise(const char *in, char out[NAME_LEN_MAX + 1])
{
	size_t len, i, label = 0;

	if (!in)
		return -EINVAL;
	len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_LEN_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (in[i] == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
		} else if (!host_char_ok((unsigned char)in[i]) || ++label > LABEL_LEN_MAX) {
			return -EINVAL;
		}
		out[i] = lower(in[i]);
	}
	out[len] = '\0';
	return is_ip_literal(out) ? -EINVAL : 0;
}

/* Decode the uncompressed wire-format name at p[0..len) into out (lower
 * case, no trailing dot). 1 for the root name, 0 for a hostname, -1 if
 * malformed or not a hostname. */
static int name_from_wire(const uint8_t *p, size_t len, char out[NAME_LEN_MAX + 1])
{
	size_t pos = 0, o = 0;

	for (;;) {
		size_t l, i;

		if (pos >= len)
			return -1;
		l = p[pos++];
		if (l == 0)
			break;
		if (l > LABEL_LEN_MAX || l > len - pos) /* also compression pointers */
			return -1;
		if (o + (o > 0) + l > NAME_LEN_MAX)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (i = 0; i < l; i++) {
			if (!host_char_ok(p[pos + i]))
				return -1;
			out[o++] = lower((char)p[pos + i]);
		}
		pos += l;
	}
	out[o] = '\0';
	return o == 0 ? 1 : 0;
}

static int ub_to_err(int ub_err)
{
	switch (ub_err) {
	case UB_NOERROR: return 0;
	case UB_NOMEM: return -ENOMEM;
	case UB_SYNTAX: return -EINVAL;
	default: return SL_EDNS;
	}
}

/* Freeze libunbound's configuration: forward names libunbound would
 * otherwise answer locally (RFC 6761 "test.", RFC 8375 "home.arpa.", and
 * the reverse zones of the RFC 5737 documentation networks, which sluice's
 * test network uses for its source IPs' PTR records). */
static int resolver_finalize(struct resolver *r)
{
	static const char *const zones[] = { "test.", "home.arpa.", "2.0.192.in-addr.arpa.",
					     "100.51.198.in-addr.arpa.",
					     "113.0.203.in-addr.arpa." };
	int rc = UB_NOERROR;

	if (r->finalized)
		return 0;
	for (size_t i = 0; rc == UB_NOERROR && i < sizeof zones / sizeof *zones; i++)
		rc = ub_ctx_zone_remove(r->ub, zones[i]);
	if (rc != UB_NOERROR)
		return ub_to_err(rc);
	r->finalized = true;
	return 0;
}

static void on_answer(void *arg, int err, struct ub_result *res);

/* Ask libunbound for q's name. The first query creates libunbound's worker
 * thread, which inherits our signal mask: block everything around it so
 * process signals are never delivered to that thread. */
static int query_start(struct resolver *r, struct query *q, const char *name)
{
	sigset_t all, old;
	int rc;

	rc = resolver_finalize(r);
	if (rc)
		return rc;
	if (!r->started) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
	}
	rc = ub_resolve_async(r->ub, name, q->qtype, QCLASS_IN, q, on_answer, &q->id);
	if (!r->started) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		r->started = rc == UB_NOERROR;
	}
	if (rc != UB_NOERROR)
		return ub_to_err(rc);
	q->state = Q_PENDING;
	q->lk->pending++;
	return 0;
}

static void query_cancel(struct resolver *r, struct query *q)
{
	if (q->state == Q_PENDING) {
		ub_cancel(r->ub, q->id);
		q->state = Q_TEMP;
		q->lk->pending--;
	}
}

static void lookup_free(struct lookup *lk)
{
	for (size_t i = 0; lk->hosts && i < lk->n_hosts; i++)
		for (size_t k = 0; k < lk->hosts[i].n_tlsa; k++)
			free(lk->hosts[i].tlsa[k]);
	free(lk->hosts);
	free(lk);
}

static void lookup_unlink(struct lookup *lk)
{
	struct resolver *r = lk->r;

	if (lk->prev)
		lk->prev->next = lk->next;
	else
		r->lookups = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	lk->prev = lk->next = NULL;
}

/* Cancel lk's queries and free it without calling back. */
static void lookup_abort(struct lookup *lk)
{
	struct resolver *r = lk->r;
	size_t i;

	query_cancel(r, &lk->mxq);
	for (i = 0; i < lk->n_hosts; i++) {
		for (int k = 0; k < 3; k++)
			query_cancel(r, &lk->hosts[i].q[k]);
	}
	lookup_unlink(lk);
	lookup_free(lk);
}

/* Deliver the outcome and free lk. res may point into lk. */
static void lookup_done(struct lookup *lk, int err, const struct mx_result *res)
{
	lookup_unlink(lk);
	lk->cb(lk->ctx, err, err ? NULL : res);
	lookup_free(lk);
}

static struct lookup *lookup_new(struct resolver *r, resolver_mx_cb cb, void *ctx)
{
	struct lookup *lk = calloc(1, sizeof(*lk));

	if (!lk)
		return NULL;
	lk->r = r;
	lk->cb = cb;
	lk->ctx = ctx;
	lk->handle = ++r->next_handle;
	lk->mxq.lk = lk;
	lk->mxq.host = -1;
	lk->mxq.qtype = QTYPE_MX;
	lk->want_tlsa = r->tlsa;
	lk->next = r->lookups;
	if (r->lookups)
		r->lookups->prev = lk;
	r->lookups = lk;
	return lk;
}

/* Start host i's address queries (and its TLSA query when the lookup
 * wants DANE and the MX answer was secure), or take it as an IPv4
 * literal. A query that cannot be started counts as a temporary failure. */
static void host_start(struct lookup *lk, size_t i)
{
	static const uint16_t qtypes[3] = { QTYPE_A, QTYPE_AAAA, QTYPE_TLSA };
	struct host *h = &lk->hosts[i];
	char tlsa_name[NAME_LEN_MAX + 1];
	int k;

	for (k = 0; k < 3; k++) {
		h->q[k].lk = lk;
		h->q[k].host = (int)i;
		h->q[k].qtype = qtypes[k];
	}
	if (inet_pton(AF_INET, h->name, &h->a4[0]) == 1) {
		h->n4 = 1;
		h->addr_insecure = true; /* no DNS answer vouches for it */
		h->q[0].state = Q_DATA;
		h->q[1].state = Q_NONE;
		return;
	}
	for (k = 0; k < 2; k++)
		if (query_start(lk->r, &h->q[k], h->name) < 0)
			h->q[k].state = Q_TEMP;
	if (!lk->want_tlsa || lk->mx_sec != RESOLVER_SEC_SECURE)
		return;
	if ((size_t)snprintf(tlsa_name, sizeof tlsa_name, "_25._tcp.%s", h->name) >=
		    sizeof tlsa_name ||
	    query_start(lk->r, &h->q[2], tlsa_name) < 0)
		h->tlsa_sec = RESOLVER_SEC_FAILED;
}

struct mx_cand {
	uint16_t pref;
	char name[NAME_LEN_MAX + 1];
};

static int mx_cand_cmp(const void *a, const void *b)
{
	const struct mx_cand *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name); /* determinism before the shuffle */
}

/* Sort by preference, shuffle runs of equal preference. */
static void mx_order(struct resolver *r, struct mx_cand *c, size_t n)
{
	size_t start, end, i;

	qsort(c, n, sizeof(*c), mx_cand_cmp);
	for (start = 0; start < n; start = end) {
		for (end = start + 1; end < n && c[end].pref == c[start].pref; end++)
			;
		for (i = end - start; i > 1; i--) {
			size_t j = (size_t)(rng_next(r) % i);
			struct mx_cand t = c[start + i - 1];

			c[start + i - 1] = c[start + j];
			c[start + j] = t;
		}
	}
}

/* Turn the MX answer into hosts and start their address queries.
 * 0, or an error to deliver (then no query was started). */
static int mx_answer(struct lookup *lk, int err, const struct ub_result *res)
{
	struct mx_cand *c;
	size_t n = 0, n_ok = 0, i, j, kept;

	if (err)
		return err == UB_NOMEM ? -ENOMEM : SL_EDNS;
	if (res->bogus) /* validation failed: never act on it */
		return SL_EDNS;
	if (res->rcode == RCODE_NXDOMAIN)
		return SL_ENOTFOUND;
	if (res->rcode != RCODE_NOERROR)
		return SL_EDNS;
	lk->mx_sec = res->secure ? RESOLVER_SEC_SECURE : RESOLVER_SEC_INSECURE;
	if (!res->havedata || !res->data[0]) { /* RFC 5321 5.1: its own MX */
		lk->hosts = calloc(1, sizeof(*lk->hosts));
		if (!lk->hosts)
			return -ENOMEM;
		lk->n_hosts = 1;
		lk->implicit = true;
		memcpy(lk->hosts[0].name, lk->domain, sizeof(lk->domain));
		host_start(lk, 0);
		return 0;
	}

	while (res->data[n])
		n++;
	c = calloc(n, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const uint8_t *p = (const uint8_t *)res->data[i];
		size_t len = res->len[i] > 0 ? (size_t)res->len[i] : 0;

		if (len < 3)
			continue;
		/* A null MX (root target) is skipped: alone, nothing remains
		 * and the domain accepts no mail (RFC 7505). */
		if (name_from_wire(p + 2, len - 2, c[n_ok].name) != 0)
			continue;
		c[n_ok].pref = (uint16_t)(p[0] << 8 | p[1]);
		n_ok++;
	}
	if (n_ok == 0) {
		free(c);
		return SL_ENOTFOUND;
	}
	mx_order(lk->r, c, n_ok);

	/* Keep the first occurrence of each name, at most RESOLVER_MAX_HOSTS. */
	kept = 0;
	for (i = 0; i < n_ok && kept < RESOLVER_MAX_HOSTS; i++) {
		for (j = 0; j < kept; j++)
			if (strcmp(c[j].name, c[i].name) == 0)
				break;
		if (j == kept)
			c[kept++] = c[i];
	}
	lk->hosts = calloc(kept, sizeof(*lk->hosts));
	if (!lk->hosts) {
		free(c);
		return -ENOMEM;
	}
	lk->n_hosts = kept;
	for (i = 0; i < kept; i++) {
		memcpy(lk->hosts[i].name, c[i].name, sizeof(c[i].name));
		lk->hosts[i].pref = c[i].pref;
	}
	free(c);
	for (i = 0; i < kept; i++)
		host_start(lk, i);
	return 0;
}

static void host_answer(struct lookup *lk, struct query *q, int err,
			const struct ub_result *res)
{
	struct host *h = &lk->hosts[q->host];
	size_t i;

	if (err || res->bogus ||
	    (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN)) {
		q->state = Q_TEMP;
		return;
	}
	if (!res->secure)
		h->addr_insecure = true;
	q->state = Q_NODATA;
	if (!res->havedata)
		return;
	for (i = 0; res->data[i]; i++) {
		if (q->qtype == QTYPE_A && res->len[i] == 4 && h->n4 < RESOLVER_MAX_ADDRS) {
			memcpy(&h->a4[h->n4++], res->data[i], 4);
			q->state = Q_DATA;
		} else if (q->qtype == QTYPE_AAAA && res->len[i] == 16 &&
			   h->n6 < RESOLVER_MAX_ADDRS) {
			memcpy(&h->a6[h->n6++], res->data[i], 16);
			q->state = Q_DATA;
		}
	}
}

/* The TLSA answer of a host: its status and a copy of the records. */
static void tlsa_answer(struct lookup *lk, struct query *q, int err,
			const struct ub_result *res)
{
	struct host *h = &lk->hosts[q->host];

	if (err || (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN)) {
		h->tlsa_sec = res && res->bogus ? RESOLVER_SEC_BOGUS : RESOLVER_SEC_FAILED;
		return;
	}
	if (res->bogus) {
		h->tlsa_sec = RESOLVER_SEC_BOGUS;
		return;
	}
	h->tlsa_sec = res->secure ? RESOLVER_SEC_SECURE : RESOLVER_SEC_INSECURE;
	for (size_t i = 0; res->havedata && res->data[i] && h->n_tlsa < RESOLVER_MAX_TLSA; i++) {
		size_t len = res->len[i] > 0 ? (size_t)res->len[i] : 0;
		uint8_t *p = malloc(len ? len : 1);

		if (!p) { /* keeping fewer records could turn a match into a failure */
			h->tlsa_sec = RESOLVER_SEC_FAILED;
			return;
		}
		memcpy(p, res->data[i], len);
		h->tlsa[h->n_tlsa] = p;
		h->tlsa_len[h->n_tlsa++] = len;
	}
}

static size_t host_n_addrs(const struct host *h)
{
	size_t n = (size_t)h->n4 + h->n6;

	return n < RESOLVER_MAX_ADDRS ? n : RESOLVER_MAX_ADDRS;
}

/* Every query has answered: deliver the hosts that have addresses. */
static void lookup_complete(struct lookup *lk)
{
	struct mx_host out[RESOLVER_MAX_HOSTS];
	struct mx_result res = { .hosts = out, .implicit = lk->implicit,
				 .mx_sec = lk->mx_sec };
	struct sockaddr_storage *addrs, *a;
	size_t total = 0, i, k;
	bool temp = false;

	for (i = 0; i < lk->n_hosts; i++) {
		const struct host *h = &lk->hosts[i];

		total += host_n_addrs(h);
		if (host_n_addrs(h) == 0 && (h->q[0].state == Q_TEMP || h->q[1].state == Q_TEMP))
			temp = true;
	}
	if (total == 0) {
		lookup_done(lk, temp ? SL_EDNS : SL_ENOTFOUND, NULL);
		return;
	}
	addrs = calloc(total, sizeof(*addrs));
	if (!addrs) {
		lookup_done(lk, -ENOMEM, NULL);
		return;
	}
	a = addrs;
	for (i = 0; i < lk->n_hosts; i++) {
		struct host *h = &lk->hosts[i];
		size_t n = host_n_addrs(h);

		if (n == 0)
			continue;
		out[res.n_hosts++] = (struct mx_host){
			.name = h->name, .pref = h->pref, .addrs = a, .n_addrs = n,
			.addr_sec = h->addr_insecure ? RESOLVER_SEC_INSECURE : RESOLVER_SEC_SECURE,
			.tlsa_sec = h->tlsa_sec,
			.tlsa = (const uint8_t *const *)h->tlsa,
			.tlsa_len = h->tlsa_len,
			.n_tlsa = h->n_tlsa,
		};
		for (k = 0; k < n; k++, a++) {
			if (k < h->n4) {
				struct sockaddr_in *sin = (struct sockaddr_in *)a;

				sin->sin_family = AF_INET;
				sin->sin_addr = h->a4[k];
			} else {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)a;

				sin6->sin6_family = AF_INET6;
				sin6->sin6_addr = h->a6[k - h->n4];
			}
		}
	}
	lookup_done(lk, 0, &res);
	free(addrs);
}

/* A PTR answer: the host names, or why there are none. */
static void ptr_answer(struct lookup *lk, int err, const struct ub_result *res)
{
	char names[RESOLVER_MAX_HOSTS][NAME_LEN_MAX + 1];
	const char *p[RESOLVER_MAX_HOSTS];
	size_t n = 0;
	int rc = 0;

	if (err)
		rc = err == UB_NOMEM ? -ENOMEM : SL_EDNS;
	else if (res->rcode == RCODE_NXDOMAIN)
		rc = SL_ENOTFOUND;
	else if (res->rcode != RCODE_NOERROR)
		rc = SL_EDNS;
	for (size_t i = 0; !rc && res->havedata && res->data[i] && n < RESOLVER_MAX_HOSTS; i++)
		if (name_from_wire((const uint8_t *)res->data[i], (size_t)res->len[i],
				   names[n]) == 0) {
			p[n] = names[n];
			n++;
		}
	if (!rc && !n)
		rc = SL_ENOTFOUND;
	lookup_unlink(lk);
	lk->ptr_cb(lk->ctx, rc, rc ? NULL : p, rc ? 0 : n);
	lookup_free(lk);
}

/* A TXT answer: each record's character-strings joined, or why there are
 * none. Records with a NUL byte or longer than TXT_MAX_LEN are skipped. */
static void txt_answer(struct lookup *lk, int err, const struct ub_result *res)
{
	char (*txt)[TXT_MAX_LEN + 1] = malloc(TXT_MAX_RRS * sizeof *txt);
	const char *p[TXT_MAX_RRS];
	size_t n = 0;
	int rc = 0;

	if (!txt)
		rc = -ENOMEM;
	else if (err)
		rc = err == UB_NOMEM ? -ENOMEM : SL_EDNS;
	else if (res->rcode == RCODE_NXDOMAIN)
		rc = SL_ENOTFOUND;
	else if (res->rcode != RCODE_NOERROR)
		rc = SL_EDNS;
	for (size_t i = 0; !rc && res->havedata && res->data[i] && n < TXT_MAX_RRS; i++) {
		const uint8_t *d = (const uint8_t *)res->data[i];
		size_t len = (size_t)res->len[i], o = 0, k = 0;
		bool ok = true;

		while (ok && k < len) {
			size_t sl = d[k++];

			if (sl > len - k || o + sl > TXT_MAX_LEN || memchr(d + k, 0, sl))
				ok = false;
			else
				memcpy(txt[n] + o, d + k, sl);
			o += sl;
			k += sl;
		}
		if (ok) {
			txt[n][o] = 0;
			p[n] = txt[n];
			n++;
		}
	}
	if (!rc && !n)
		rc = SL_ENOTFOUND;
	lookup_unlink(lk);
	lk->txt_cb(lk->ctx, rc, rc ? NULL : p, rc ? 0 : n);
	free(txt);
	lookup_free(lk);
}

static void on_answer(void *arg, int err, struct ub_result *res)
{
	struct query *q = arg;
	struct lookup *lk = q->lk;
	int rc;

	q->state = Q_NODATA;
	lk->pending--;
	if (lk->ptr_cb) {
		ptr_answer(lk, err, res);
		ub_resolve_free(res);
		return;
	}
	if (lk->txt_cb) {
		txt_answer(lk, err, res);
		ub_resolve_free(res);
		return;
	}
	if (q->host < 0) {
		rc = mx_answer(lk, err, res);
		ub_resolve_free(res);
		if (rc < 0) {
			lookup_done(lk, rc, NULL);
			return;
		}
	} else if (q->qtype == QTYPE_TLSA) {
		tlsa_answer(lk, q, err, res);
		ub_resolve_free(res);
	} else {
		host_answer(lk, q, err, res);
		ub_resolve_free(res);
	}
	if (lk->pending == 0)
		lookup_complete(lk);
}

/* "addr@port" for ub_ctx_set_fwd. */
static int server_string(const struct sockaddr_storage *ss, socklen_t len, char *out,
			 size_t outlen)
{
	char host[NI_MAXHOST];
	unsigned port;

	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in))
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	else if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	else
		return -EINVAL;
	if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), NULL, 0,
			NI_NUMERICHOST) != 0)
		return -EINVAL;
	if ((size_t)snprintf(out, outlen, "%s@%u", host, port ? port : 53) >= outlen)
		return -EINVAL;
	return 0;
}

int resolver_create(const struct sockaddr_storage *servers, const socklen_t *lens,
		    size_t n, struct resolver **out)
{
	static const char *const opts[][2] = {
		{ "module-config:", "iterator" },    /* no validation without a trust anchor */
		{ "do-not-query-localhost:", "no" }, /* forwarders may be local */
		{ "infra-host-ttl:", INFRA_HOST_TTL },
		{ "use-syslog:", "no" },
	};
	struct resolver *r;
	bool any_v6 = false;
	size_t i;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ub = ub_ctx_create();
	if (!r->ub) {
		rc = -ENOMEM;
		goto fail;
	}
	/* Library code never prints: send libunbound's log nowhere. */
	ub_ctx_debugout(r->ub, NULL);
	rc = ub_to_err(ub_ctx_async(r->ub, 1));
	if (rc)
		goto fail;
	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		rc = ub_to_err(ub_ctx_set_option(r->ub, opts[i][0], opts[i][1]));
		if (rc)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		char s[NI_MAXHOST + 8];

		rc = server_string(&servers[i], lens[i], s, sizeof(s));
		if (rc)
			goto fail;
		rc = ub_to_err(ub_ctx_set_fwd(r->ub, s));
		if (rc)
			goto fail;
		any_v6 |= servers[i].ss_family == AF_INET6;
	}
	if (n == 0) {
		rc = ub_ctx_resolvconf(r->ub, NULL);
		if (rc != UB_NOERROR) {
			rc = rc == UB_NOMEM ? -ENOMEM : SL_EDNS;
			goto fail;
		}
	} else if (!any_v6) {
		rc = ub_to_err(ub_ctx_set_option(r->ub, "do-ip6:", "no"));
		if (rc)
			goto fail;
	}
	if (getrandom(&r->rng, sizeof(r->rng), GRND_NONBLOCK) != sizeof(r->rng)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		r->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)r;
	}
	*out = r;
	return 0;
fail:
	if (r->ub)
		ub_ctx_delete(r->ub);
	free(r);
	return rc;
}

void resolver_destroy(struct resolver *r)
{
	if (!r)
		return;
	while (r->lookups)
		lookup_abort(r->lookups);
	if (r->in_process) {
		r->dead = true;
		return;
	}
	ub_ctx_delete(r->ub);
	free(r);
}

int resolver_fd(const struct resolver *r)
{
	return ub_fd(r->ub);
}

int resolver_process(struct resolver *r)
{
	int rc;

	if (r->in_process) /* from a callback: the outer call reads on */
		return 0;
	r->in_process = true;
	rc = ub_process(r->ub);
	r->in_process = false;
	if (r->dead) {
		ub_ctx_delete(r->ub);
		free(r);
		return 0;
	}
	return rc == UB_NOERROR ? 0 : -EPIPE;
}

/* Start lk's one query (lk->mxq, its qtype set) for name; on failure lk is
 * gone. */
static int lookup_start_one(struct resolver *r, struct lookup *lk, const char *name,
			    uint64_t *handle_out)
{
	int rc;

	memcpy(lk->domain, name, sizeof lk->domain);
	rc = query_start(r, &lk->mxq, lk->domain);
	if (rc) {
		lookup_abort(lk);
		return rc;
	}
	if (handle_out)
		*handle_out = lk->handle;
	return 0;
}

int resolver_lookup_mx(struct resolver *r, const char *domain, resolver_mx_cb cb,
		       void *ctx, uint64_t *handle_out)
{
	char name[NAME_LEN_MAX + 1];
	struct lookup *lk;
	int rc;

	if (r->dead)
		return -ESHUTDOWN;
	rc = name_normalise(domain, name);
	if (rc)
		return rc;
	lk = lookup_new(r, cb, ctx);
	if (!lk)
		return -ENOMEM;
	return lookup_start_one(r, lk, name, handle_out);
}

int resolver_lookup_host(struct resolver *r, const char *host, resolver_mx_cb cb,
			 void *ctx, uint64_t *handle_out)
{
	char name[NAME_LEN_MAX + 1];
	struct lookup *lk;
	int rc, k;

	if (r->dead)
		return -ESHUTDOWN;
	rc = name_normalise(host, name);
	if (rc)
		return rc;
	lk = lookup_new(r, cb, ctx);
	if (!lk)
		return -ENOMEM;
	lk->hosts = calloc(1, sizeof(*lk->hosts));
	if (!lk->hosts) {
		lookup_abort(lk);
		return -ENOMEM;
	}
	lk->n_hosts = 1;
	memcpy(lk->domain, name, sizeof(name));
	memcpy(lk->hosts[0].name, name, sizeof(name));
	for (k = 0; k < 2; k++) {
		struct query *q = &lk->hosts[0].q[k];

		q->lk = lk;
		q->host = 0;
		q->qtype = k == 0 ? QTYPE_A : QTYPE_AAAA;
		rc = query_start(r, q, name);
		if (rc) {
			lookup_abort(lk);
			return rc;
		}
	}
	if (handle_out)
		*handle_out = lk->handle;
	return 0;
}

int resolver_lookup_ptr(struct resolver *r, const struct sockaddr *addr, resolver_ptr_cb cb,
			void *ctx, uint64_t *handle_out)
{
	struct lookup *lk;
	char name[NAME_LEN_MAX + 1];
	size_t o = 0;

	if (r->dead)
		return -ESHUTDOWN;
	if (addr->sa_family == AF_INET) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;

		snprintf(name, sizeof name, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
	} else if (addr->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
		static const char hex[] = "0123456789abcdef";

		for (int i = 15; i >= 0; i--) {
			name[o++] = hex[a[i] & 15];
			name[o++] = '.';
			name[o++] = hex[a[i] >> 4];
			name[o++] = '.';
		}
		snprintf(name + o, sizeof name - o, "ip6.arpa");
	} else {
		return -EINVAL;
	}
	lk = lookup_new(r, NULL, ctx);
	if (!lk)
		return -ENOMEM;
	lk->ptr_cb = cb;
	lk->mxq.qtype = QTYPE_PTR;
	return lookup_start_one(r, lk, name, handle_out);
}

int resolver_lookup_txt(struct resolver *r, const char *name, resolver_txt_cb cb, void *ctx,
			uint64_t *handle_out)
{
	struct lookup *lk;
	char norm[NAME_LEN_MAX + 1];
	int rc;

	if (r->dead)
		return -ESHUTDOWN;
	rc = name_normalise(name, norm);
	if (rc)
		return rc;
	lk = lookup_new(r, NULL, ctx);
	if (!lk)
		return -ENOMEM;
	lk->txt_cb = cb;
	lk->mxq.qtype = QTYPE_TXT;
	return lookup_start_one(r, lk, norm, handle_out);
}

size_t resolver_host_ipv4s(const struct mx_host *h, uint32_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n_addrs && n < max; i++)
		if (h->addrs[i].ss_family == AF_INET)
			out[n++] = ntohl(((const struct sockaddr_in *)&h->addrs[i])->sin_addr.s_addr);
	return n;
}

void resolver_cancel(struct resolver *r, uint64_t handle)
{
	struct lookup *lk;

	for (lk = r->lookups; lk; lk = lk->next) {
		if (lk->handle == handle) {
			lookup_abort(lk);
			return;
		}
	}
}

void resolver_seed(struct resolver *r, uint64_t seed)
{
	r->rng = seed;
}

int resolver_set_trust_anchor_file(struct resolver *r, const char *path)
{
	FILE *f;
	int rc;

	if (!path || !*path)
		return -EINVAL;
	if (r->finalized)
		return -EBUSY;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	fclose(f);
	rc = ub_to_err(ub_ctx_set_option(r->ub, "module-config:", "validator iterator"));
	if (rc)
		return rc;
	return ub_to_err(ub_ctx_add_ta_file(r->ub, path));
}

void resolver_set_tlsa(struct resolver *r, bool on)
{
	r->tlsa = on;
}

int resolver_set_max_rtt_ms(struct resolver *r, unsigned ms)
{
	char v[16];

	if (ms == 0)
		return -EINVAL;
	if (r->finalized)
		return -EBUSY;
	snprintf(v, sizeof(v), "%u", ms);
	return ub_to_err(ub_ctx_set_option(r->ub, "infra-cache-max-rtt:", v));
}
