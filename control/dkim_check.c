/*
 * dkim_check.c — libopendkim verification with a dns_sync key lookup.
 */
#include "dkim_check.h"

#include "dns_sync.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <opendkim/dkim.h>

struct dkim_check {
	DKIM_LIB *lib;
};

/* Key lookup: TXT at selector._domainkey.domain via the call's dns_sync. */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dns_sync *dns = dkim_get_user_context(dkim);
	struct sl_buf b = { 0 };
	char name[600];
	const char *nl;
	size_t n;
	int rc;

	snprintf(name, sizeof name, "%s._domainkey.%s", (const char *)dkim_sig_getselector(sig),
		 (const char *)dkim_sig_getdomain(sig));
	rc = dns_sync_txt(dns, name, &b);
	if (rc < 0) {
		sl_buf_free(&b);
		return rc == SL_ENOTFOUND ? DKIM_CBSTAT_NOTFOUND : DKIM_CBSTAT_TRYAGAIN;
	}
	nl = memchr(sl_buf_head(&b), '\n', sl_buf_avail(&b)); /* first record */
	n = nl ? (size_t)(nl - sl_buf_head(&b)) : sl_buf_avail(&b);
	if (n + 1 > buflen) {
		sl_buf_free(&b);
		return DKIM_CBSTAT_ERROR;
	}
	memcpy(buf, sl_buf_head(&b), n);
	buf[n] = 0;
	sl_buf_free(&b);
	return DKIM_CBSTAT_CONTINUE;
}

int dkim_check_create(struct dkim_check **out)
{
	struct dkim_check *c;
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;

	*out = NULL;
	if (!(c = calloc(1, sizeof *c)))
		return -ENOMEM;
	if (!(c->lib = dkim_init(NULL, NULL))) {
		free(c);
		return -ENOMEM;
	}
	dkim_options(c->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
	dkim_set_key_lookup(c->lib, key_lookup);
	*out = c;
	return 0;
}

void dkim_check_destroy(struct dkim_check *c)
{
	if (!c)
		return;
	dkim_close(c->lib);
	free(c);
}

/* Organizational domain of d (see the header) as a pointer into d. */
static const char *org_domain(const char *d)
{
	const char *last = NULL, *second = NULL, *third = NULL;
	size_t n = strlen(d);

	while (n && d[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++) {
		if (d[i] != '.')
			continue;
		third = second;
		second = last;
		last = d + i;
	}
	if (!second)
		return d;
	/* a two-letter TLD under a short second level: co.uk, com.au */
	if (n - (size_t)(last + 1 - d) == 2 && (size_t)(last - second - 1) <= 3)
		return third ? third + 1 : d;
	return second + 1;
}

bool dkim_check_domains_aligned(const char *a, const char *b)
{
	const char *oa, *ob;

	if (!a || !b || !*a || !*b)
		return false;
	oa = org_domain(a);
	ob = org_domain(b);
	return strcasecmp(oa, ob) == 0;
}

int dkim_check_aligned(struct dkim_check *c, struct dns_sync *dns, const char *msg, size_t len,
		       const char *from_domain, char *d_out, size_t d_cap)
{
	DKIM_STAT st;
	DKIM *dk;
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0, rc = SL_ENOTFOUND;

	if (d_cap)
		d_out[0] = 0;
	dk = dkim_verify(c->lib, (const unsigned char *)"sluice", NULL, &st);
	if (!dk)
		return -ENOMEM;
	dkim_set_user_context(dk, dns);
	st = dkim_chunk(dk, (u_char *)msg, len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(dk, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(dk, NULL);
	if (st == DKIM_STAT_NOSIG || dkim_getsiglist(dk, &sigs, &nsigs) != DKIM_STAT_OK)
		goto out;
	for (int i = 0; i < nsigs; i++) {
		const char *d = (const char *)dkim_sig_getdomain(sigs[i]);

		if (!d)
			continue;
		if (d_cap)
			snprintf(d_out, d_cap, "%s", d);
		if (!(dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_PROCESSED))
			dkim_sig_process(dk, sigs[i]);
		if (DKIM_SIG_CHECK(sigs[i]) && dkim_check_domains_aligned(d, from_domain)) {
			rc = 0;
			break;
		}
	}
out:
	dkim_free(dk);
	return rc;
}
