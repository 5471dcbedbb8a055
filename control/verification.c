/*
 * verification.c — verify-by-email requests, the inbound check, and the
 * signed webhook (see verification.h).
 *
 * Store layout ("sendauth" database, JSON values):
 *   'v' tenant NUL address -> the request {"v":1, token, created, expires,
 *                              verified, method}
 *   't' token              -> tenant NUL address
 */
#include "verification.h"

#include "dkim_check.h"
#include "dns_sync.h"
#include "err.h"
#include "spf_eval.h"
#include "store.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define RATE_SLOTS 1024
#define HOUR_MS (3600ull * 1000)

struct rate_slot {
	char key[VERIFICATION_ADDR_MAX + 1];
	uint64_t window; /* now / HOUR_MS */
	unsigned count;
};

struct hook {
	struct hook *next;
	char *body;
	unsigned attempts;
};

struct verification {
	struct store *st;
	char *domain, *prefix, *url, *secret;
	char **servers;
	char **local_data; /* tests: unbound local-data records (see verification_set_local_data) */
	uint64_t ttl_ms;
	unsigned per_tenant, per_source, attempts;
	struct dkim_check *dkim;

	pthread_mutex_t mu; /* rate tables, the hook queue, stop */
	struct rate_slot tenants[RATE_SLOTS], sources[RATE_SLOTS];

	pthread_t worker;
	bool worker_started, stop;
	pthread_cond_t cv;
	struct hook *head, **tail;
	unsigned delivered, failed; /* webhooks, for tests */
};

static uint64_t wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void scopy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static char **strv_dup(const char *const *v)
{
	size_t n = 0;
	char **out;

	while (v && v[n])
		n++;
	if (!(out = calloc(n + 1, sizeof *out)))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(out[i] = strdup(v[i]))) {
			for (size_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			return NULL;
		}
	return out;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* --- the webhook worker -------------------------------------------------- */

static void hmac_hex(const char *key, const char *body, char out[65])
{
	unsigned char mac[32];
	unsigned int len = 0;

	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body, strlen(body), mac,
	     &len);
	for (unsigned i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", mac[i]);
	out[64] = 0;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* One POST; true on a 2xx answer. */
static bool hook_post(struct verification *v, const char *body)
{
	struct curl_slist *h = NULL;
	char sig[128], hex[65];
	long status = 0;
	CURL *c = curl_easy_init();
	bool ok;

	if (!c)
		return false;
	hmac_hex(v->secret ? v->secret : "", body, hex);
	snprintf(sig, sizeof sig, "X-Sluice-Signature: sha256=%s", hex);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, sig);
	curl_easy_setopt(c, CURLOPT_URL, v->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	ok = curl_easy_perform(c) == CURLE_OK &&
	     curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status >= 200 &&
	     status < 300;
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return ok;
}

static void *worker_main(void *arg)
{
	struct verification *v = arg;

	pthread_mutex_lock(&v->mu);
	for (;;) {
		struct hook *k;
		bool ok;

		while (!v->head && !v->stop)
			pthread_cond_wait(&v->cv, &v->mu);
		if (!v->head)
			break;
		k = v->head;
		v->head = k->next;
		if (!v->head)
			v->tail = &v->head;
		pthread_mutex_unlock(&v->mu);
		ok = hook_post(v, k->body);
		pthread_mutex_lock(&v->mu);
		k->attempts++;
		if (ok || k->attempts >= v->attempts || v->stop) {
			if (ok)
				v->delivered++;
			else
				v->failed++;
			free(k->body);
			free(k);
			continue;
		}
		/* back off 1, 2, 4 ... s (at most 60), then requeue at the end */
		{
			struct timespec until;
			unsigned s = 1u << (k->attempts - 1 < 6 ? k->attempts - 1 : 6);

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += s > 60 ? 60 : s;
			while (!v->stop &&
			       pthread_cond_timedwait(&v->cv, &v->mu, &until) != ETIMEDOUT)
				;
		}
		k->next = NULL;
		*v->tail = k;
		v->tail = &k->next;
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

static void hook_queue(struct verification *v, const struct verification_request *r)
{
	json_t *o;
	struct hook *k;
	char *body;

	if (!v->url || !v->worker_started)
		return;
	o = json_pack("{s:s,s:s,s:s,s:s,s:I}", "event", "address.verified", "tenant", r->tenant,
		      "address", r->address, "method", r->method, "verified_at",
		      (json_int_t)r->verified_ms);
	body = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!body || !(k = calloc(1, sizeof *k))) {
		free(body);
		return;
	}
	k->body = body;
	pthread_mutex_lock(&v->mu);
	*v->tail = k;
	v->tail = &k->next;
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

/* --- create / destroy ---------------------------------------------------- */

void verification_destroy(struct verification *v)
{
	if (!v)
		return;
	if (v->worker_started) {
		pthread_mutex_lock(&v->mu);
		v->stop = true;
		pthread_cond_broadcast(&v->cv);
		pthread_mutex_unlock(&v->mu);
		pthread_join(v->worker, NULL);
	}
	while (v->head) {
		struct hook *k = v->head;

		v->head = k->next;
		free(k->body);
		free(k);
	}
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
	dkim_check_destroy(v->dkim);
	strv_free(v->servers);
	strv_free(v->local_data);
	free(v->domain);
	free(v->prefix);
	free(v->url);
	free(v->secret);
	free(v);
}

int verification_create(const struct verification_config *cfg, struct verification **out)
{
	struct verification *v;
	int rc = -ENOMEM;

	*out = NULL;
	if (!cfg || !cfg->store || !cfg->domain || !*cfg->domain)
		return -EINVAL;
	if (!(v = calloc(1, sizeof *v)))
		return -ENOMEM;
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	v->tail = &v->head;
	v->st = cfg->store;
	v->ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : 24 * HOUR_MS;
	v->per_tenant = cfg->per_tenant_hour ? cfg->per_tenant_hour : 100;
	v->per_source = cfg->per_source_hour ? cfg->per_source_hour : 20;
	v->attempts = cfg->webhook_attempts ? cfg->webhook_attempts : 5;
	if (!(v->domain = strdup(cfg->domain)) ||
	    !(v->prefix = strdup(cfg->local_prefix ? cfg->local_prefix : "verify")) ||
	    !(v->servers = strv_dup(cfg->dns_servers)) ||
	    !(v->local_data = strv_dup(cfg->dns_local_data)))
		goto fail;
	for (char *p = v->domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (cfg->webhook_url && *cfg->webhook_url) {
		if (!(v->url = strdup(cfg->webhook_url)) ||
		    !(v->secret = strdup(cfg->webhook_secret ? cfg->webhook_secret : "")))
			goto fail;
	}
	if ((rc = dkim_check_create(&v->dkim)) < 0)
		goto fail;
	if (v->url) {
		if (pthread_create(&v->worker, NULL, worker_main, v)) {
			rc = -EAGAIN;
			goto fail;
		}
		v->worker_started = true;
	}
	*out = v;
	return 0;
fail:
	verification_destroy(v);
	return rc;
}

/* --- requests -------------------------------------------------------------- */

/* Count one hit for key in table; false when it is over limit this hour. */
static bool rate_take(struct rate_slot *t, const char *key, unsigned limit, uint64_t now_ms)
{
	uint64_t w = now_ms / HOUR_MS;
	struct rate_slot *free_slot = NULL, *oldest = &t[0];

	for (size_t i = 0; i < RATE_SLOTS; i++) {
		if (t[i].count && !strcmp(t[i].key, key)) {
			if (t[i].window != w) {
				t[i].window = w;
				t[i].count = 0;
			}
			if (t[i].count >= limit)
				return false;
			t[i].count++;
			return true;
		}
		if (!t[i].count || t[i].window != w) {
			if (!free_slot)
				free_slot = &t[i];
		} else if (t[i].window < oldest->window) {
			oldest = &t[i];
		}
	}
	if (!free_slot)
		free_slot = oldest; /* full this hour: forget one (bounded memory) */
	scopy(free_slot->key, sizeof free_slot->key, key);
	free_slot->window = w;
	free_slot->count = 1;
	return limit > 0;
}

static bool address_norm(const char *in, char out[VERIFICATION_ADDR_MAX + 1])
{
	size_t n = in ? strlen(in) : 0;
	const char *at;

	if (n == 0 || n > VERIFICATION_ADDR_MAX || !(at = strrchr(in, '@')) || at == in ||
	    !at[1] || !strchr(at, '.'))
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c && (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == ','))
			return false;
		out[i] = (char)tolower(c);
	}
	return true;
}

static size_t vkey(const char *tenant, const char *address, char *k)
{
	size_t t = strlen(tenant), a = strlen(address);

	k[0] = 'v';
	memcpy(k + 1, tenant, t + 1);
	memcpy(k + 2 + t, address, a);
	return 2 + t + a;
}

static int req_encode(const struct verification_request *r, struct sl_buf *b)
{
	json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "v", 1, "tenant", r->tenant,
			      "address", r->address, "token", r->token, "created",
			      (json_int_t)r->created_ms, "expires", (json_int_t)r->expires_ms,
			      "verified", (json_int_t)r->verified_ms, "method", r->method);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int rc;

	json_decref(o);
	if (!text)
		return -ENOMEM;
	sl_buf_reset(b);
	rc = sl_buf_append(b, text, strlen(text));
	free(text);
	return rc;
}

static void write_to(const struct verification *v, struct verification_request *r)
{
	snprintf(r->write_to, sizeof r->write_to, "%s+%s@%s", v->prefix, r->token, v->domain);
}

static int req_decode(const struct verification *v, const void *p, size_t n,
		      struct verification_request *r)
{
	json_t *o = json_loadb(p, n, 0, NULL);
	const char *s;

	if (!o)
		return -EBADMSG;
	memset(r, 0, sizeof *r);
	if ((s = json_string_value(json_object_get(o, "tenant"))))
		scopy(r->tenant, sizeof r->tenant, s);
	if ((s = json_string_value(json_object_get(o, "address"))))
		scopy(r->address, sizeof r->address, s);
	if ((s = json_string_value(json_object_get(o, "token"))))
		scopy(r->token, sizeof r->token, s);
	if ((s = json_string_value(json_object_get(o, "method"))))
		scopy(r->method, sizeof r->method, s);
	r->created_ms = (uint64_t)json_integer_value(json_object_get(o, "created"));
	r->expires_ms = (uint64_t)json_integer_value(json_object_get(o, "expires"));
	r->verified_ms = (uint64_t)json_integer_value(json_object_get(o, "verified"));
	json_decref(o);
	write_to(v, r);
	return 0;
}

bool verification_address_verified(struct store *st, const char *tenant, const char *address)
{
	char k[2 + 64 + VERIFICATION_ADDR_MAX + 2], a[VERIFICATION_ADDR_MAX + 1];
	struct sl_buf b = { 0 };
	json_t *o = NULL;
	bool ok = false;
	size_t i;

	if (strlen(tenant) > 64 || strlen(address) > VERIFICATION_ADDR_MAX)
		return false;
	for (i = 0; address[i]; i++)
		a[i] = (char)tolower((unsigned char)address[i]);
	a[i] = 0;
	if (store_sendauth_get(st, k, vkey(tenant, a, k), &b) == 0 &&
	    (o = json_loadb(sl_buf_head(&b), sl_buf_avail(&b), 0, NULL)))
		ok = json_integer_value(json_object_get(o, "verified")) > 0;
	json_decref(o);
	sl_buf_free(&b);
	return ok;
}

static int req_put(struct verification *v, const struct verification_request *r,
		   struct store_audit *e)
{
	char k[2 + 64 + VERIFICATION_ADDR_MAX + 2];
	struct sl_buf b = { 0 };
	int rc;

	if ((rc = req_encode(r, &b)) >= 0)
		rc = store_sendauth_put(v->st, k, vkey(r->tenant, r->address, k), sl_buf_head(&b),
					sl_buf_avail(&b), e);
	sl_buf_free(&b);
	return rc;
}

static void audit_of(struct store_audit *e, const char *actor, const char *action,
		     const struct verification_request *r, const char *reason)
{
	memset(e, 0, sizeof *e);
	scopy(e->actor, sizeof e->actor, actor);
	scopy(e->action, sizeof e->action, action);
	scopy(e->target, sizeof e->target, "address:");
	scopy(e->target + 8, sizeof e->target - 8, r->tenant);
	scopy(e->target + strlen(e->target), sizeof e->target - strlen(e->target), "/");
	scopy(e->target + strlen(e->target), sizeof e->target - strlen(e->target), r->address);
	scopy(e->reason, sizeof e->reason, reason ? reason : "");
}

static void token_new(char out[VERIFICATION_TOKEN_LEN + 1])
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char raw[VERIFICATION_TOKEN_LEN];

	if (RAND_bytes(raw, sizeof raw) != 1) /* never fails on Linux; fall back hard */
		abort();
	for (size_t i = 0; i < VERIFICATION_TOKEN_LEN; i++)
		out[i] = b32[raw[i] & 31];
	out[VERIFICATION_TOKEN_LEN] = 0;
}

int verification_request(struct verification *v, const char *tenant, const char *address,
			 const char *source, uint64_t now_ms, struct verification_request *out)
{
	struct verification_request r = { 0 };
	struct store_tenant t;
	struct store_audit e;
	char tk[1 + VERIFICATION_TOKEN_LEN];
	char tv[64 + 1 + VERIFICATION_ADDR_MAX + 1];
	bool ok;
	int rc;

	if (!v || !tenant || !*tenant || strlen(tenant) > STORE_NAME_MAX ||
	    !address_norm(address, r.address))
		return -EINVAL;
	if ((rc = store_tenant_get(v->st, tenant, &t)) < 0)
		return rc;
	pthread_mutex_lock(&v->mu);
	ok = rate_take(v->tenants, tenant, v->per_tenant, now_ms) &&
	     (!source || rate_take(v->sources, source, v->per_source, now_ms));
	pthread_mutex_unlock(&v->mu);
	if (!ok)
		return -EAGAIN;
	scopy(r.tenant, sizeof r.tenant, tenant);
	token_new(r.token);
	r.created_ms = now_ms;
	r.expires_ms = now_ms + v->ttl_ms;
	write_to(v, &r);
	/* the token index first: a request never exists without it */
	tk[0] = 't';
	memcpy(tk + 1, r.token, VERIFICATION_TOKEN_LEN);
	snprintf(tv, sizeof tv, "%s%c%s", r.tenant, 0, r.address);
	if ((rc = store_sendauth_put(v->st, tk, sizeof tk, tv,
				     strlen(r.tenant) + 1 + strlen(r.address), NULL)) < 0)
		return rc;
	audit_of(&e, "api", "verification.request", &r, NULL);
	if ((rc = req_put(v, &r, &e)) < 0)
		return rc;
	if (out)
		*out = r;
	return 0;
}

int verification_get(struct verification *v, const char *tenant, const char *address,
		     struct verification_request *out)
{
	char norm[VERIFICATION_ADDR_MAX + 1], k[2 + 64 + VERIFICATION_ADDR_MAX + 2];
	struct sl_buf b = { 0 };
	int rc;

	if (!v || !tenant || strlen(tenant) > STORE_NAME_MAX || !address_norm(address, norm))
		return -EINVAL;
	rc = store_sendauth_get(v->st, k, vkey(tenant, norm, k), &b);
	if (rc >= 0)
		rc = req_decode(v, sl_buf_head(&b), sl_buf_avail(&b), out);
	sl_buf_free(&b);
	return rc;
}

/* --- receiving ------------------------------------------------------------- */

/* The token of rcpt ("<prefix>+<token>@<domain>", brackets allowed) into
 * tok; false if rcpt is not one of ours. */
static bool rcpt_token(const struct verification *v, const char *rcpt,
		       char tok[VERIFICATION_TOKEN_LEN + 1])
{
	size_t pl = strlen(v->prefix), n;
	const char *at, *end;

	if (!rcpt)
		return false;
	while (*rcpt == '<' || *rcpt == ' ')
		rcpt++;
	end = rcpt + strlen(rcpt);
	while (end > rcpt && (end[-1] == '>' || end[-1] == ' '))
		end--;
	if (!(at = memchr(rcpt, '@', (size_t)(end - rcpt))))
		return false;
	if ((size_t)(end - at - 1) != strlen(v->domain) ||
	    strncasecmp(at + 1, v->domain, strlen(v->domain)))
		return false;
	if ((size_t)(at - rcpt) != pl + 1 + VERIFICATION_TOKEN_LEN ||
	    strncasecmp(rcpt, v->prefix, pl) || rcpt[pl] != '+')
		return false;
	n = 0;
	for (const char *p = rcpt + pl + 1; p < at; p++) {
		char c = (char)tolower((unsigned char)*p);

		if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')))
			return false;
		tok[n++] = c;
	}
	tok[n] = 0;
	return true;
}

bool verification_is_recipient(const struct verification *v, const char *rcpt)
{
	char tok[VERIFICATION_TOKEN_LEN + 1];

	return v && rcpt_token(v, rcpt, tok);
}

int verification_header_from(const char *msg, size_t len, char out[VERIFICATION_ADDR_MAX + 1])
{
	char field[2048];
	size_t o = 0, i = 0;
	int found = 0;

	while (i < len) {
		size_t ls = i, le;

		while (i < len && msg[i] != '\n')
			i++;
		le = i;
		if (i < len)
			i++;
		if (le > ls && msg[le - 1] == '\r')
			le--;
		if (le == ls)
			break; /* end of the header section */
		if (msg[ls] == ' ' || msg[ls] == '\t') {
			if (found == 1 && o + (le - ls) < sizeof field) {
				memcpy(field + o, msg + ls, le - ls);
				o += le - ls;
			}
			continue;
		}
		if (found == 1)
			found = 2; /* the From field ended */
		if (le - ls >= 5 && !strncasecmp(msg + ls, "from:", 5)) {
			if (found)
				return -EPROTO; /* two From fields */
			found = 1;
			o = 0;
			if (le - ls - 5 < sizeof field) {
				memcpy(field, msg + ls + 5, le - ls - 5);
				o = le - ls - 5;
			}
		}
	}
	if (!found)
		return -EPROTO;
	field[o] = 0;
	{
		char *lt = strrchr(field, '<'), *gt, *a, *b;

		if (strchr(field, ',') && !strchr(field, '"'))
			return -EPROTO; /* several mailboxes */
		if (lt) {
			if (!(gt = strchr(lt, '>')))
				return -EPROTO;
			*gt = 0;
			a = lt + 1;
		} else {
			a = field;
		}
		while (*a == ' ' || *a == '\t')
			a++;
		b = a + strlen(a);
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			*--b = 0;
		if (!address_norm(a, out))
			return -EPROTO;
	}
	return 0;
}

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

static void refuse_audit(struct verification *v, const struct verification_request *r,
			 const struct sockaddr *client, const char *why)
{
	struct store_audit e;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (client && client->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)client)->sin_addr, ip, sizeof ip);
	else if (client && client->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)client)->sin6_addr, ip, sizeof ip);
	audit_of(&e, "inbound", "verification.refused", r, why);
	snprintf(e.details, sizeof e.details, "{\"client\":\"%s\"}", ip);
	store_audit_append(v->st, &e);
}

int verification_receive(struct verification *v, const char *rcpt, const char *msg, size_t len,
			 const struct sockaddr *client, const char *helo, const char *mail_from,
			 char *why, size_t whylen)
{
	char tok[VERIFICATION_TOKEN_LEN + 1], tk[1 + VERIFICATION_TOKEN_LEN];
	char from[VERIFICATION_ADDR_MAX + 1], d[256], reason[512];
	struct verification_request r;
	struct sl_buf b = { 0 };
	struct dns_sync *dns = NULL;
	enum spf_eval_result spf = SPF_EVAL_NONE;
	const char *mf_domain, *nul;
	uint64_t now = wall_ms();
	struct store_audit e;
	int rc;

	if (whylen)
		why[0] = 0;
	if (!v || !msg || !rcpt_token(v, rcpt, tok)) {
		snprintf(why, whylen, "not a verification address");
		return -EINVAL;
	}
	tk[0] = 't';
	memcpy(tk + 1, tok, VERIFICATION_TOKEN_LEN);
	rc = store_sendauth_get(v->st, tk, sizeof tk, &b);
	if (rc < 0 || !(nul = memchr(sl_buf_head(&b), 0, sl_buf_avail(&b)))) {
		sl_buf_free(&b);
		snprintf(why, whylen, "unknown verification address");
		return rc < 0 ? rc : -EBADMSG;
	}
	{
		char tenant[65], addr[VERIFICATION_ADDR_MAX + 1];
		size_t tl = (size_t)(nul - sl_buf_head(&b));
		size_t al = sl_buf_avail(&b) - tl - 1;

		if (tl >= sizeof tenant || al >= sizeof addr) {
			sl_buf_free(&b);
			return -EBADMSG;
		}
		memcpy(tenant, sl_buf_head(&b), tl);
		tenant[tl] = 0;
		memcpy(addr, nul + 1, al);
		addr[al] = 0;
		sl_buf_free(&b);
		if ((rc = verification_get(v, tenant, addr, &r)) < 0) {
			snprintf(why, whylen, "unknown verification address");
			return rc;
		}
	}
	if (strcmp(r.token, tok) || (!r.verified_ms && now > r.expires_ms)) {
		snprintf(why, whylen, "verification request expired");
		return SL_ENOTFOUND;
	}
	if (r.verified_ms) {
		snprintf(why, whylen, "already verified");
		return 0;
	}
	if (verification_header_from(msg, len, from) < 0 || strcmp(from, r.address)) {
		snprintf(reason, sizeof reason, "From is not %s", r.address);
		goto refuse;
	}
	if ((rc = dns_sync_create((const char *const *)v->servers,
				  (const char *const *)v->local_data, &dns)) < 0)
		return rc;
	/* SPF: the MAIL FROM domain must pass and align with From. */
	mf_domain = mail_from && *mail_from ? domain_of(mail_from) : NULL;
	if (mf_domain && dkim_check_domains_aligned(mf_domain, domain_of(from)) &&
	    spf_eval(dns, client, helo, mail_from, &spf) == 0 && spf == SPF_EVAL_PASS) {
		scopy(r.method, sizeof r.method, "spf");
	} else if (dkim_check_aligned(v->dkim, dns, msg, len, domain_of(from), d, sizeof d) == 0) {
		scopy(r.method, sizeof r.method, "dkim");
	} else {
		dns_sync_destroy(dns);
		snprintf(reason, sizeof reason,
			 "neither aligned SPF (%s for %s) nor an aligned DKIM signature (%s)",
			 mf_domain ? spf_eval_name(spf) : "no MAIL FROM",
			 mf_domain ? mf_domain : "-", *d ? d : "none");
		goto refuse;
	}
	dns_sync_destroy(dns);
	r.verified_ms = now;
	audit_of(&e, "inbound", "verification.verified", &r, r.method);
	if ((rc = req_put(v, &r, &e)) < 0) {
		snprintf(why, whylen, "store: %s", sl_strerror(rc));
		return rc;
	}
	hook_queue(v, &r);
	snprintf(why, whylen, "verified by %s", r.method);
	return 0;

refuse:
	refuse_audit(v, &r, client, reason);
	snprintf(why, whylen, "%s", reason);
	return -EPERM;
}

json_t *verification_request_json(const struct verification_request *r)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:b,s:I,s:s}", "tenant", r->tenant, "address",
			 r->address, "write_to", r->write_to, "created", (json_int_t)r->created_ms,
			 "expires", (json_int_t)r->expires_ms, "verified", r->verified_ms != 0,
			 "verified_at", (json_int_t)r->verified_ms, "method", r->method);
}

void verification_stats(struct verification *v, unsigned *delivered, unsigned *failed)
{
	pthread_mutex_lock(&v->mu);
	*delivered = v->delivered;
	*failed = v->failed;
	pthread_mutex_unlock(&v->mu);
}
