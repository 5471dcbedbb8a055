/*
 * dns_sync.c — blocking libunbound lookups for the control plane.
 */
#include "dns_sync.h"

#include "err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#define T_CNAME 5
#define T_PTR 12
#define T_MX 15
#define T_TXT 16

struct dns_sync {
	struct ub_ctx *ctx;
};

int dns_sync_create(const char *const *servers, const char *const *local_data,
		    struct dns_sync **out)
{
	struct dns_sync *d;
	bool any = false;
	int rc = -EINVAL;

	*out = NULL;
	if (!(d = calloc(1, sizeof *d)))
		return -ENOMEM;
	if (!(d->ctx = ub_ctx_create())) {
		free(d);
		return -ENOMEM;
	}
	ub_ctx_debugout(d->ctx, NULL); /* library code never prints */
	if (ub_ctx_set_option(d->ctx, "module-config:", "iterator") ||
	    ub_ctx_set_option(d->ctx, "do-not-query-localhost:", "no"))
		goto fail;
	for (size_t i = 0; servers && servers[i]; i++) {
		if (ub_ctx_set_fwd(d->ctx, servers[i]))
			goto fail;
		any = true;
	}
	for (size_t i = 0; local_data && local_data[i]; i++) {
		const char *zone = !strncmp(local_data[i], "local-zone ", 11) ? local_data[i] + 11 : NULL;

		if (ub_ctx_set_option(d->ctx, zone ? "local-zone:" : "local-data:",
				      zone ? zone : local_data[i]))
			goto fail;
		any = true;
	}
	if (!any && ub_ctx_resolvconf(d->ctx, NULL)) {
		rc = -EIO;
		goto fail;
	}
	/* Ask the servers about names libunbound would answer itself (RFC 6761
	 * "test.", RFC 8375 "home.arpa."), as dataplane/resolver.c does; unless
	 * the local data declares one of them. */
	if (!local_data || !local_data[0]) {
		ub_ctx_zone_remove(d->ctx, "test.");
		ub_ctx_zone_remove(d->ctx, "home.arpa.");
	}
	*out = d;
	return 0;
fail:
	dns_sync_destroy(d);
	return rc;
}

void dns_sync_destroy(struct dns_sync *d)
{
	if (!d)
		return;
	ub_ctx_delete(d->ctx);
	free(d);
}

int dns_sync_query(struct dns_sync *d, const char *name, int rrtype, struct ub_result **res)
{
	*res = NULL;
	if (ub_resolve(d->ctx, name, rrtype, 1, res) || !*res)
		return -EIO;
	if ((*res)->rcode == 3 || !(*res)->havedata)
		return SL_ENOTFOUND;
	if ((*res)->rcode != 0)
		return -EIO;
	return 0;
}

/* A wire-format name at data[*pos] as text (no compression: unbound gives
 * rdata uncompressed). */
static int wire_name(const unsigned char *p, size_t len, size_t pos, char *out, size_t cap)
{
	size_t o = 0;

	while (pos < len && p[pos]) {
		size_t l = p[pos++];

		if (l > 63 || pos + l > len || o + l + 2 > cap)
			return -EINVAL;
		if (o)
			out[o++] = '.';
		memcpy(out + o, p + pos, l);
		o += l;
		pos += l;
	}
	if (pos >= len)
		return -EINVAL;
	out[o] = 0;
	return 0;
}

int dns_sync_rdata_text(int rrtype, const char *data, size_t len, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t o = 0;

	if (!cap)
		return -EINVAL;
	switch (rrtype) {
	case T_CNAME:
	case T_PTR:
		return wire_name(p, len, 0, out, cap);
	case T_MX:
		return len < 3 ? -EINVAL : wire_name(p, len, 2, out, cap);
	case T_TXT:
		for (size_t pos = 0; pos < len;) {
			size_t l = p[pos++];

			if (pos + l > len || o + l + 1 > cap)
				return -EINVAL;
			memcpy(out + o, p + pos, l);
			o += l;
			pos += l;
		}
		out[o] = 0;
		return 0;
	default:
		return -EINVAL;
	}
}

int dns_sync_txt(struct dns_sync *d, const char *name, struct sl_buf *out)
{
	struct ub_result *res;
	char txt[4096];
	int rc;

	sl_buf_reset(out);
	if ((rc = dns_sync_query(d, name, T_TXT, &res)) < 0)
		goto out;
	for (int i = 0; res->data[i]; i++) {
		if (dns_sync_rdata_text(T_TXT, res->data[i], (size_t)res->len[i], txt, sizeof txt) < 0)
			continue;
		if ((rc = sl_buf_appendf(out, "%s%s", sl_buf_avail(out) ? "\n" : "", txt)) < 0)
			goto out;
	}
	rc = sl_buf_avail(out) ? 0 : SL_ENOTFOUND;
out:
	ub_resolve_free(res);
	return rc;
}
