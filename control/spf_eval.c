/*
 * spf_eval.c — libspf2 with a DNS layer backed by dns_sync.
 */
#include "spf_eval.h"

#include "dns_sync.h"
#include "err.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include <spf2/spf.h>

static const char *const names[] = { "none", "neutral", "pass", "fail", "softfail",
				     "temperror", "permerror" };

const char *spf_eval_name(enum spf_eval_result r)
{
	return (unsigned)r <= SPF_EVAL_PERMERROR ? names[r] : "?";
}

/* libspf2 lookup: answer (domain, type) from the dns_sync in the hook. */
static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type,
				  int should_cache)
{
	struct dns_sync *dns = srv->hook;
	struct ub_result *res;
	SPF_dns_rr_t *rr;
	int rc, n = 0;

	(void)should_cache;
	rc = dns_sync_query(dns, domain, (int)type, &res);
	rr = SPF_dns_rr_new_init(srv, domain, type, res ? res->ttl : 0,
				 rc == 0 ? NETDB_SUCCESS
				 : rc == SL_ENOTFOUND ? (res && res->nxdomain ? HOST_NOT_FOUND : NO_DATA)
						      : TRY_AGAIN);
	if (!rr || rc < 0)
		goto out;
	for (int i = 0; res->data[i]; i++) {
		size_t len = (size_t)res->len[i];
		char text[1024];

		switch (type) {
		case ns_t_a:
			if (len != 4 || SPF_dns_rr_buf_realloc(rr, n, sizeof(struct in_addr)))
				continue;
			memcpy(&rr->rr[n]->a, res->data[i], 4);
			break;
		case ns_t_aaaa:
			if (len != 16 || SPF_dns_rr_buf_realloc(rr, n, sizeof(struct in6_addr)))
				continue;
			memcpy(&rr->rr[n]->aaaa, res->data[i], 16);
			break;
		case ns_t_txt:
		case ns_t_spf:
		case ns_t_mx:
		case ns_t_ptr:
			if (dns_sync_rdata_text(type == ns_t_spf ? ns_t_txt : (int)type,
						res->data[i], len, text, sizeof text) < 0 ||
			    SPF_dns_rr_buf_realloc(rr, n, strlen(text) + 1))
				continue;
			memcpy(rr->rr[n]->txt, text, strlen(text) + 1);
			break;
		default:
			continue;
		}
		n++;
	}
	rr->num_rr = n;
	if (n == 0 && rr->herrno == NETDB_SUCCESS)
		rr->herrno = NO_DATA;
out:
	ub_resolve_free(res);
	return rr;
}

int spf_eval(struct dns_sync *dns, const struct sockaddr *client, const char *helo,
	     const char *mail_from, enum spf_eval_result *res)
{
	SPF_dns_server_t *layer;
	SPF_server_t *srv;
	SPF_request_t *req = NULL;
	SPF_response_t *resp = NULL;
	int rc = 0;

	*res = SPF_EVAL_NONE;
	if (!client || (client->sa_family != AF_INET && client->sa_family != AF_INET6))
		return -EINVAL;
	if (!(layer = calloc(1, sizeof *layer)))
		return -ENOMEM;
	layer->destroy = NULL; /* ours: freed below */
	layer->lookup = layer_lookup;
	layer->name = "sluice";
	layer->hook = dns;
	if (!(srv = SPF_server_new_dns(layer, 0))) {
		free(layer);
		return -ENOMEM;
	}
	if (!(req = SPF_request_new(srv))) {
		rc = -ENOMEM;
		goto out;
	}
	if (client->sa_family == AF_INET)
		SPF_request_set_ipv4(req, ((const struct sockaddr_in *)client)->sin_addr);
	else
		SPF_request_set_ipv6(req, ((const struct sockaddr_in6 *)client)->sin6_addr);
	if (helo && *helo)
		SPF_request_set_helo_dom(req, helo);
	if (mail_from && *mail_from)
		SPF_request_set_env_from(req, mail_from);
	SPF_request_query_mailfrom(req, &resp);
	switch (resp ? SPF_response_result(resp) : SPF_RESULT_TEMPERROR) {
	case SPF_RESULT_PASS: *res = SPF_EVAL_PASS; break;
	case SPF_RESULT_FAIL: *res = SPF_EVAL_FAIL; break;
	case SPF_RESULT_SOFTFAIL: *res = SPF_EVAL_SOFTFAIL; break;
	case SPF_RESULT_NEUTRAL: *res = SPF_EVAL_NEUTRAL; break;
	case SPF_RESULT_NONE: *res = SPF_EVAL_NONE; break;
	case SPF_RESULT_PERMERROR: *res = SPF_EVAL_PERMERROR; break;
	default: *res = SPF_EVAL_TEMPERROR; break;
	}
out:
	if (resp)
		SPF_response_free(resp);
	if (req)
		SPF_request_free(req);
	SPF_server_free(srv);
	free(layer); /* a layer given to SPF_server_new_dns stays the caller's */
	return rc;
}
