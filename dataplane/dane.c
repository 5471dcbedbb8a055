/* dane.c — TLSA records and the RFC 7672 decision per MX host; see dane.h. */
#include "dane.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

struct dane_host {
	unsigned refs;
	enum dane_state state;
	char name[256];
	char reason[320];
	size_t n;
	struct dane_tlsa recs[RESOLVER_MAX_TLSA];
	uint8_t *blob; /* the records' data, back to back */
};

int dane_tlsa_parse(const uint8_t *rdata, size_t len, struct dane_tlsa *out)
{
	if (!rdata || len < 4)
		return -EINVAL;
	*out = (struct dane_tlsa){ .usage = rdata[0], .selector = rdata[1], .mtype = rdata[2],
				   .data = rdata + 3, .len = len - 3 };
	if ((out->mtype == DANE_MTYPE_SHA256 && out->len != 32) ||
	    (out->mtype == DANE_MTYPE_SHA512 && out->len != 64))
		return -EINVAL;
	return 0;
}

bool dane_tlsa_usable(const struct dane_tlsa *t)
{
	if (t->usage != DANE_USAGE_DANE_TA && t->usage != DANE_USAGE_DANE_EE)
		return false;
	if (t->selector != DANE_SELECTOR_CERT && t->selector != DANE_SELECTOR_SPKI)
		return false;
	switch (t->mtype) {
	case DANE_MTYPE_FULL: return t->len > 0;
	case DANE_MTYPE_SHA256: return t->len == 32;
	case DANE_MTYPE_SHA512: return t->len == 64;
	default: return false;
	}
}

static const char *sec_name(enum resolver_sec s)
{
	switch (s) {
	case RESOLVER_SEC_SECURE: return "secure";
	case RESOLVER_SEC_BOGUS: return "bogus";
	case RESOLVER_SEC_FAILED: return "failed";
	default: return "insecure";
	}
}

static struct dane_host *dane_host_new(const char *name, enum dane_state st)
{
	struct dane_host *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	d->refs = 1;
	d->state = st;
	snprintf(d->name, sizeof d->name, "%s", name);
	return d;
}

int dane_host_create(enum resolver_sec mx_sec, const struct mx_host *h,
		     struct dane_host **out)
{
	struct dane_tlsa t[RESOLVER_MAX_TLSA];
	struct dane_host *d;
	size_t n = 0, total = 0, off = 0;

	*out = NULL;
	/* RFC 7672 §2.2: DANE only behind a secure MX RRset and secure
	 * addresses (otherwise the TLSA base domain is not trustworthy). */
	if (mx_sec != RESOLVER_SEC_SECURE || h->addr_sec != RESOLVER_SEC_SECURE)
		return DANE_NONE;
	if (h->tlsa_sec == RESOLVER_SEC_BOGUS || h->tlsa_sec == RESOLVER_SEC_FAILED) {
		/* §2.2.1: a TLSA lookup that fails leaves the host unusable. */
		d = dane_host_new(h->name, DANE_DEFER);
		if (!d)
			return -ENOMEM;
		snprintf(d->reason, sizeof d->reason, "TLSA lookup for _25._tcp.%s is %s",
			 h->name, sec_name(h->tlsa_sec));
		*out = d;
		return DANE_DEFER;
	}
	if (h->tlsa_sec != RESOLVER_SEC_SECURE)
		return DANE_NONE;
	for (size_t i = 0; i < h->n_tlsa && n < RESOLVER_MAX_TLSA; i++)
		if (dane_tlsa_parse(h->tlsa[i], h->tlsa_len[i], &t[n]) == 0 &&
		    dane_tlsa_usable(&t[n]))
			total += t[n++].len;
	if (n == 0) /* §3.1: no usable records is as if none were published */
		return DANE_NONE;
	d = dane_host_new(h->name, DANE_REQUIRED);
	if (!d || !(d->blob = malloc(total))) {
		free(d);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(d->blob + off, t[i].data, t[i].len);
		d->recs[i] = t[i];
		d->recs[i].data = d->blob + off;
		off += t[i].len;
	}
	d->n = n;
	*out = d;
	return DANE_REQUIRED;
}

struct dane_host *dane_host_ref(struct dane_host *d)
{
	if (d)
		d->refs++;
	return d;
}

void dane_host_unref(struct dane_host *d)
{
	if (!d || --d->refs > 0)
		return;
	free(d->blob);
	free(d);
}

enum dane_state dane_host_state(const struct dane_host *d)
{
	return d->state;
}

const char *dane_host_name(const struct dane_host *d)
{
	return d->name;
}

const char *dane_host_reason(const struct dane_host *d)
{
	return d->reason;
}

size_t dane_host_count(const struct dane_host *d)
{
	return d->n;
}

const struct dane_tlsa *dane_host_record(const struct dane_host *d, size_t i)
{
	return i < d->n ? &d->recs[i] : NULL;
}

int dane_host_apply(const struct dane_host *d, struct tls_conn *c)
{
	int rc;

	if (d->state != DANE_REQUIRED)
		return -EINVAL;
	rc = tls_conn_dane_enable(c, d->name);
	/* A record OpenSSL refuses is skipped; if none is left, nothing can
	 * match and the handshake fails, as it should for a host whose
	 * records promised authenticated TLS. */
	for (size_t i = 0; !rc && i < d->n; i++) {
		const struct dane_tlsa *t = &d->recs[i];

		rc = tls_conn_dane_add(c, t->usage, t->selector, t->mtype, t->data, t->len);
		rc = rc < 0 ? rc : 0;
	}
	return rc;
}

const char *dane_outcome_name(enum dane_outcome o)
{
	switch (o) {
	case DANE_OUTCOME_VERIFIED: return "verified";
	case DANE_OUTCOME_FAILED: return "failed";
	default: return "none";
	}
}
