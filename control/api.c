/* api.c — the admin HTTP/JSON API server; see api.h. */
#include "api.h"

#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_grace.h"
#include "file.h"

#define API_HEADERS_MAX 4

struct api {
	struct MHD_Daemon *mhd;
	struct store *store;
	struct api_config cfg;
	char *tls_cert, *tls_key; /* PEM text */
	unsigned port;
	struct api_grace *grace;
	unsigned active; /* requests in flight (atomic) */
	const struct api_route *tables[13];
	size_t counts[13];
};

struct api_request {
	struct api *api;
	struct MHD_Connection *conn;
	enum api_method method;
	const char *path;
	struct api_match match;
	struct api_principal who;
	struct sl_buf body;
	bool too_large;
	bool answered; /* a response was queued on the first call */
};

struct api_response {
	unsigned status;
	struct sl_buf body;
	char *hname[API_HEADERS_MAX], *hvalue[API_HEADERS_MAX];
	size_t nhdr;
	bool set;
};

/* --- methods and routing -------------------------------------------------- */

static const struct {
	enum api_method m;
	const char *name;
} methods[] = {
	{ API_GET, "GET" },   { API_POST, "POST" },     { API_PUT, "PUT" },
	{ API_PATCH, "PATCH" }, { API_DELETE, "DELETE" },
};

enum api_method api_method_parse(const char *s)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (!strcmp(s, methods[i].name))
			return methods[i].m;
	return 0;
}

const char *api_method_name(enum api_method m)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (methods[i].m == m)
			return methods[i].name;
	return "?";
}

bool api_route_match(const char *pattern, const char *path, struct api_match *m)
{
	const char *p = pattern, *u = path;

	m->nparams = 0;
	while (*p && *u) {
		if (*p != '/' || *u != '/')
			return false;
		p++;
		u++;
		const char *pe = strchrnul(p, '/'), *ue = strchrnul(u, '/');
		size_t plen = (size_t)(pe - p), ulen = (size_t)(ue - u);

		if (plen > 0 && p[0] == ':') {
			if (ulen == 0 || ulen >= sizeof m->params[0].value ||
			    m->nparams >= API_PARAMS_MAX || memchr(u, 0, ulen))
				return false;
			m->params[m->nparams].name = p + 1;
			m->params[m->nparams].name_len = plen - 1;
			memcpy(m->params[m->nparams].value, u, ulen);
			m->params[m->nparams].value[ulen] = 0;
			m->nparams++;
		} else if (plen != ulen || memcmp(p, u, plen) != 0) {
			return false;
		}
		p = pe;
		u = ue;
	}
	return *p == 0 && *u == 0;
}

int api_route_find(const struct api_route *const *tables, const size_t *counts, size_t ntables,
		   enum api_method method, const char *path, struct api_match *m,
		   unsigned *allowed)
{
	struct api_match tmp;
	bool any = false;

	*allowed = 0;
	for (size_t t = 0; t < ntables; t++)
		for (size_t i = 0; i < counts[t]; i++) {
			const struct api_route *r = &tables[t][i];

			if (!api_route_match(r->pattern, path, &tmp))
				continue;
			any = true;
			*allowed |= r->method;
			if (r->method == method) {
				*m = tmp;
				m->route = r;
				return 0;
			}
		}
	return any ? -EPERM : SL_ENOTFOUND;
}

/* --- JSON ----------------------------------------------------------------- */

int api_json_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	*out = NULL;
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column,
			 je.text);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errlen, "the request body must be a JSON object");
		return -EINVAL;
	}
	*out = j;
	return 0;
}

static const char *type_name(enum api_json_type t)
{
	switch (t) {
	case API_JSON_STRING: return "a string";
	case API_JSON_UINT: return "a non-negative integer";
	case API_JSON_BOOL: return "true or false";
	case API_JSON_OBJECT: return "an object";
	case API_JSON_ARRAY: return "an array";
	default: return "a value";
	}
}

static bool type_ok(const json_t *v, const struct api_field *f)
{
	switch (f->type) {
	case API_JSON_STRING:
		if (!json_is_string(v))
			return false;
		return (f->max_len == 0 || json_string_length(v) <= f->max_len) &&
		       !memchr(json_string_value(v), 0, json_string_length(v));
	case API_JSON_UINT: return json_is_integer(v) && json_integer_value(v) >= 0;
	case API_JSON_BOOL: return json_is_boolean(v);
	case API_JSON_OBJECT: return json_is_object(v);
	case API_JSON_ARRAY: return json_is_array(v);
	case API_JSON_ANY: return true;
	}
	return false;
}

int api_json_check(const json_t *obj, const struct api_field *fields, size_t n, char *err,
		   size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "expected a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)obj, key, v) {
		size_t i;

		for (i = 0; i < n; i++)
			if (!strcmp(fields[i].name, key))
				break;
		if (i == n) {
			snprintf(err, errlen, "unknown field \"%.64s\"", key);
			return -EINVAL;
		}
		if (!type_ok(v, &fields[i])) {
			if (fields[i].type == API_JSON_STRING && json_is_string(v) &&
			    fields[i].max_len)
				snprintf(err, errlen,
					 "field \"%s\" must be a string of at most %zu bytes without NUL",
					 key, fields[i].max_len);
			else
				snprintf(err, errlen, "field \"%s\" must be %s", key,
					 type_name(fields[i].type));
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (fields[i].required && !json_object_get(obj, fields[i].name)) {
			snprintf(err, errlen, "missing field \"%s\"", fields[i].name);
			return -EINVAL;
		}
	return 0;
}

int api_body_object(struct api_request *req, struct api_response *resp,
		    const struct api_field *fields, size_t n, json_t **out)
{
	char err[256];
	int rc;

	*out = NULL;
	if (req->body.len == 0) {
		*out = json_object();
		if (!*out)
			return -ENOMEM;
	} else if ((rc = api_json_parse(req->body.data, req->body.len, out, err, sizeof err)) <
		   0) {
		api_error(resp, 400, "bad_request", "%s", err);
		return rc;
	}
	if ((rc = api_json_check(*out, fields, n, err, sizeof err)) < 0) {
		json_decref(*out);
		*out = NULL;
		api_error(resp, 400, "bad_request", "%s", err);
		return rc;
	}
	return 0;
}

/* --- request accessors ---------------------------------------------------- */

enum api_method api_method(const struct api_request *req)
{
	return req->method;
}

const char *api_path(const struct api_request *req)
{
	return req->path;
}

const char *api_param(const struct api_request *req, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < req->match.nparams; i++)
		if (req->match.params[i].name_len == len &&
		    !memcmp(req->match.params[i].name, name, len))
			return req->match.params[i].value;
	return NULL;
}

const char *api_query(const struct api_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *api_header(const struct api_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int api_client_ip(const struct api_request *req, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (!sa)
		return -ENOTCONN;
	if (sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap))
		return 0;
	if (sa->sa_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap))
		return 0;
	return -EAFNOSUPPORT;
}

const char *api_body(const struct api_request *req, size_t *len)
{
	*len = req->body.len;
	return req->body.data;
}

const struct api_principal *api_principal(const struct api_request *req)
{
	return &req->who;
}

bool api_may_see_tenant(const struct api_request *req, const char *tenant)
{
	return req->who.role == STORE_ROLE_OPERATOR || !strcmp(req->who.tenant, tenant);
}

struct store *api_store(const struct api_request *req)
{
	return req->api->store;
}

struct mailbox *api_mailbox(const struct api_request *req)
{
	return req->api->cfg.mailbox;
}

void *api_daemon(const struct api_request *req)
{
	return req->api->cfg.daemon;
}

void api_notify_tenant(const struct api_request *req, const char *tenant)
{
	if (req->api->cfg.tenant_changed)
		req->api->cfg.tenant_changed(req->api->cfg.daemon, tenant);
}

int api_page(struct api_request *req, struct api_response *resp, size_t *limit,
	     const char **after)
{
	const char *l = api_query(req, "limit");

	*after = api_query(req, "after");
	*limit = API_LIMIT_DEFAULT;
	if (l) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(l, &end, 10);
		if (!*l || *end || errno || v < 1 || v > API_LIMIT_MAX || l[0] == '-' ||
		    l[0] == '+') {
			api_error(resp, 400, "bad_request",
				  "limit must be an integer from 1 to %d", API_LIMIT_MAX);
			return -EINVAL;
		}
		*limit = v;
	}
	if (*after && !**after)
		*after = NULL;
	return 0;
}

/* --- replies -------------------------------------------------------------- */

int api_reply_text(struct api_response *resp, unsigned status, const char *json, size_t len)
{
	sl_buf_reset(&resp->body);
	if (len && sl_buf_append(&resp->body, json, len) < 0)
		return -ENOMEM;
	resp->status = status;
	resp->set = true;
	return 0;
}

int api_reply(struct api_response *resp, unsigned status, json_t *body)
{
	char *s = NULL;
	int rc;

	if (body) {
		s = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
		json_decref(body);
		if (!s)
			return -ENOMEM;
	}
	rc = api_reply_text(resp, status, s, s ? strlen(s) : 0);
	free(s);
	return rc;
}

int api_reply_list(struct api_response *resp, json_t *items, const char *next)
{
	json_t *o = json_object();

	if (!o || !items) {
		json_decref(o);
		json_decref(items);
		return -ENOMEM;
	}
	json_object_set_new(o, "items", items);
	json_object_set_new(o, "next", next ? json_string(next) : json_null());
	return api_reply(resp, 200, o);
}

int api_error(struct api_response *resp, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	if (!o)
		return -ENOMEM;
	return api_reply(resp, status, o);
}

void api_error_code(int err, unsigned *status, const char **code)
{
	switch (err) {
	case SL_ENOTFOUND: *status = 404; *code = "not_found"; break;
	case -EEXIST:
	case -EPERM: *status = 409; *code = "conflict"; break;
	case -EINVAL: *status = 400; *code = "bad_request"; break;
	case SL_EAUTH: *status = 401; *code = "unauthorized"; break;
	case -EACCES: *status = 403; *code = "forbidden"; break;
	case -EMSGSIZE: *status = 413; *code = "payload_too_large"; break;
	case -EAGAIN: *status = 503; *code = "unavailable"; break;
	default: *status = 500; *code = "internal"; break;
	}
}

int api_error_errno(struct api_response *resp, int err, const char *msg)
{
	unsigned status;
	const char *code;

	api_error_code(err, &status, &code);
	return api_error(resp, status, code, "%s", msg ? msg : sl_strerror(err));
}

int api_header_add(struct api_response *resp, const char *name, const char *value)
{
	if (resp->nhdr == API_HEADERS_MAX)
		return -ENOSPC;
	resp->hname[resp->nhdr] = strdup(name);
	resp->hvalue[resp->nhdr] = strdup(value);
	if (!resp->hname[resp->nhdr] || !resp->hvalue[resp->nhdr]) {
		free(resp->hname[resp->nhdr]);
		free(resp->hvalue[resp->nhdr]);
		return -ENOMEM;
	}
	resp->nhdr++;
	return 0;
}

static void response_free(struct api_response *resp)
{
	sl_buf_free(&resp->body);
	for (size_t i = 0; i < resp->nhdr; i++) {
		free(resp->hname[i]);
		free(resp->hvalue[i]);
	}
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct api_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!resp->set)
		api_error(resp, 500, "internal", "the handler gave no reply");
	r = MHD_create_response_from_buffer(resp->body.len, resp->body.data, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	if (resp->body.len)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	for (size_t i = 0; i < resp->nhdr; i++)
		MHD_add_response_header(r, resp->hname[i], resp->hvalue[i]);
	ret = MHD_queue_response(c, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result answer_error(struct api_request *req, unsigned status, const char *code,
				    const char *msg, const char *hname, const char *hvalue)
{
	struct api_response resp = { 0 };
	enum MHD_Result ret;

	api_error(&resp, status, code, "%s", msg);
	if (hname)
		api_header_add(&resp, hname, hvalue);
	ret = send_response(req->conn, &resp);
	response_free(&resp);
	req->answered = true;
	return ret;
}

/* --- the request cycle ---------------------------------------------------- */

static int authenticate(struct api_request *req)
{
	const char *h = api_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	uint8_t md[SHA256_DIGEST_LENGTH];
	enum store_role role;
	int rc;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return SL_EAUTH;
	h += 7;
	while (*h == ' ')
		h++;
	rc = store_token_lookup(req->api->store, h, req->who.tenant, &role);
	if (rc < 0)
		return rc;
	req->who.role = role;
	SHA256((const unsigned char *)h, strlen(h), md);
	for (size_t i = 0; i < 8; i++)
		snprintf(req->who.token_id + 2 * i, 3, "%02x", md[i]);
	snprintf(req->who.actor, sizeof req->who.actor, "token:%s", req->who.token_id);
	return 0;
}

/* Does (method, path) name a route that needs no token (min_role 0)? */
static bool public_route(struct api_request *req)
{
	struct api *api = req->api;
	struct api_match m;
	unsigned allowed;

	return api_route_find(api->tables, api->counts, sizeof api->tables / sizeof api->tables[0],
			      req->method, req->path, &m, &allowed) == 0 &&
	       m.route->min_role == 0;
}

/* First call for a request: authenticate, route, check the role and the
 * announced size. Answers and returns false when the request ends here. */
static bool admit(struct api_request *req, enum MHD_Result *ret)
{
	struct api *api = req->api;
	const char *cl, *tp;
	unsigned allowed;
	int rc;

	rc = authenticate(req);
	if (rc == SL_EAUTH && public_route(req)) {
		rc = 0; /* no token: the handler checks what the request carries */
		snprintf(req->who.actor, sizeof req->who.actor, "public");
	}
	if (rc < 0) {
		*ret = rc == SL_EAUTH ? answer_error(req, 401, "unauthorized",
						     "missing or invalid API token "
						     "(Authorization: Bearer slk_...)",
						     MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer")
				      : answer_error(req, 500, "internal", sl_strerror(rc), NULL,
						     NULL);
		return false;
	}
	rc = api_route_find(api->tables, api->counts, sizeof api->tables / sizeof api->tables[0],
			    req->method, req->path, &req->match, &allowed);
	if (rc == -EPERM) {
		char allow[64] = "";

		for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
			if (allowed & methods[i].m) {
				if (allow[0])
					strcat(allow, ", ");
				strcat(allow, methods[i].name);
			}
		*ret = answer_error(req, 405, "method_not_allowed",
				    "method not allowed on this resource", MHD_HTTP_HEADER_ALLOW,
				    allow);
		return false;
	}
	if (rc < 0) {
		*ret = answer_error(req, 404, "not_found", "no such resource", NULL, NULL);
		return false;
	}
	if (req->match.route->min_role == STORE_ROLE_OPERATOR &&
	    req->who.role != STORE_ROLE_OPERATOR) {
		*ret = answer_error(req, 403, "forbidden", "this needs an operator token", NULL,
				    NULL);
		return false;
	}
	tp = req->match.route->tenant_param;
	if (tp && req->who.role != STORE_ROLE_OPERATOR) {
		const char *t = api_param(req, tp);

		if (!t || strcmp(t, req->who.tenant) != 0) {
			*ret = answer_error(req, 404, "not_found", "no such tenant", NULL, NULL);
			return false;
		}
	}
	cl = api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		unsigned long long v = strtoull(cl, &end, 10);

		if (*end == 0 && v > api->cfg.max_body) {
			char msg[96];

			snprintf(msg, sizeof msg, "the request body exceeds %zu bytes",
				 api->cfg.max_body);
			*ret = answer_error(req, 413, "payload_too_large", msg, NULL, NULL);
			return false;
		}
	}
	return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_size, void **con_cls)
{
	struct api *api = cls;
	struct api_request *req = *con_cls;
	struct api_response resp = { 0 };
	enum MHD_Result ret = MHD_YES;
	int rc;

	(void)version;
	if (!req) {
		req = calloc(1, sizeof *req);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		__atomic_add_fetch(&api->active, 1, __ATOMIC_RELAXED);
		req->api = api;
		req->conn = c;
		req->path = url;
		req->method = api_method_parse(method);
		if (!req->method) {
			answer_error(req, 405, "method_not_allowed", "unsupported method",
				     MHD_HTTP_HEADER_ALLOW, "GET, POST, PUT, PATCH, DELETE");
			return MHD_YES;
		}
		if (!admit(req, &ret))
			return ret;
		return MHD_YES;
	}
	if (req->answered) {
		*data_size = 0; /* discard the rest of a refused body */
		return MHD_YES;
	}
	if (*data_size) {
		if (req->body.len + *data_size > api->cfg.max_body)
			req->too_large = true;
		else if (sl_buf_append(&req->body, data, *data_size) < 0)
			return MHD_NO;
		*data_size = 0;
		return MHD_YES;
	}
	if (req->too_large) {
		char msg[96];

		snprintf(msg, sizeof msg, "the request body exceeds %zu bytes", api->cfg.max_body);
		return answer_error(req, 413, "payload_too_large", msg, NULL, NULL);
	}
	rc = req->match.route->handler(req, &resp);
	if (rc < 0 && !resp.set)
		api_error_errno(&resp, rc, NULL);
	ret = send_response(c, &resp);
	response_free(&resp);
	req->answered = true;
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_request *req = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!req)
		return;
	__atomic_sub_fetch(&req->api->active, 1, __ATOMIC_RELAXED);
	sl_buf_free(&req->body);
	free(req);
	*con_cls = NULL;
}

/* --- start and stop ------------------------------------------------------- */

static int parse_address(const char *addr, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] == 0 || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - addr);
	if (hl >= sizeof host)
		return -EINVAL;
	memcpy(host, addr, hl);
	host[hl] = 0;
	memset(ss, 0, sizeof *ss);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		host[hl - 1] = 0;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

static int read_pem(const char *path, char **out)
{
	size_t len;

	return sl_file_read(path, 1 << 20, out, &len);
}

int api_start(const struct api_config *cfg, struct store *store, struct api **out)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC;
	const union MHD_DaemonInfo *info;
	struct api *api;
	int rc;

	*out = NULL;
	api = calloc(1, sizeof *api);
	if (!api)
		return -ENOMEM;
	api->cfg = *cfg;
	api->store = store;
	if (!api->cfg.address)
		api->cfg.address = API_DEFAULT_ADDRESS;
	if (!api->cfg.max_body)
		api->cfg.max_body = API_DEFAULT_MAX_BODY;
	if (!api->cfg.threads)
		api->cfg.threads = API_DEFAULT_THREADS;
	api->tables[0] = api_tenant_routes;
	api->counts[0] = api_tenant_route_count;
	api->tables[1] = api_token_routes;
	api->counts[1] = api_token_route_count;
	api->tables[2] = api_audit_routes;
	api->counts[2] = api_audit_route_count;
	api->tables[3] = api_message_routes;
	api->counts[3] = api_message_route_count;
	api->tables[4] = api_queue_routes;
	api->counts[4] = api_queue_route_count;
	api->tables[5] = api_cfgset_routes;
	api->counts[5] = api_cfgset_route_count;
	api->tables[6] = api_ip_routes;
	api->counts[6] = api_ip_route_count;
	api->tables[7] = api_event_routes;
	api->counts[7] = api_event_route_count;
	/* sending domains and verify-by-email: the last two slots */
	api->tables[sizeof api->tables / sizeof api->tables[0] - 2] = api_domain_routes;
	api->counts[sizeof api->tables / sizeof api->tables[0] - 2] = api_domain_route_count;
	api->tables[sizeof api->tables / sizeof api->tables[0] - 1] = api_verify_routes;
	api->counts[sizeof api->tables / sizeof api->tables[0] - 1] = api_verify_route_count;
	api->tables[sizeof api->tables / sizeof api->tables[0] - 3] = api_unsubscribe_routes;
	api->counts[sizeof api->tables / sizeof api->tables[0] - 3] = api_unsubscribe_route_count;
	api->tables[8] = api_reputation_routes;
	api->counts[8] = api_reputation_route_count;
	api->tables[9] = api_tls_routes;
	api->counts[9] = api_tls_route_count;
	rc = parse_address(api->cfg.address, &ss);
	if (rc < 0)
		goto fail;
	if (!cfg->tls_cert != !cfg->tls_key) {
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->tls_cert) {
		if ((rc = read_pem(cfg->tls_cert, &api->tls_cert)) < 0 ||
		    (rc = read_pem(cfg->tls_key, &api->tls_key)) < 0)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	api->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, api->cfg.threads, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, api, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		api->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, api->tls_cert,
		MHD_OPTION_HTTPS_MEM_KEY, api->tls_key, MHD_OPTION_END);
	if (!api->mhd) {
		rc = errno == EADDRINUSE ? -EADDRINUSE : SL_ECONFIG;
		goto fail;
	}
	info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
	api->port = info ? info->port : 0;
	rc = api_grace_start(store, cfg->daemon, cfg->tenant_changed, &api->grace);
	if (rc < 0)
		goto fail;
	*out = api;
	return 0;
fail:
	api_stop(api);
	return rc;
}

unsigned api_port(const struct api *api)
{
	return api->port;
}

void api_quiesce(struct api *api)
{
	if (api && api->mhd) {
		MHD_socket fd = MHD_quiesce_daemon(api->mhd);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
}

unsigned api_active(const struct api *api)
{
	return api ? __atomic_load_n(&api->active, __ATOMIC_RELAXED) : 0;
}

void api_stop(struct api *api)
{
	if (!api)
		return;
	api_grace_stop(api->grace);
	if (api->mhd)
		MHD_stop_daemon(api->mhd);
	free(api->tls_cert);
	free(api->tls_key);
	free(api);
}
