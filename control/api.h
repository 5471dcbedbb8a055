/*
 * api.h — the admin HTTP/JSON API server: routing, token auth, roles,
 * JSON requests and replies, errors and pagination.
 *
 * api_start() runs a libmicrohttpd server with its own thread pool (never
 * the data-plane loop thread). Each request is authenticated with
 * "Authorization: Bearer slk_..." (store_token_lookup), matched against the
 * route tables below, checked against the route's role, and handed to the
 * route's handler on one of the pool's threads. Handlers may block (store
 * calls, mailbox_call); they must not touch data-plane state directly: to
 * act on the event loop they go through api_mailbox() (dataplane/mailbox.h:
 * mailbox_call(mb, fn, arg) returns after the loop thread ran fn(arg)).
 *
 * Routes. A pattern is a path with ":name" segments ("/v1/tenants/:tenant");
 * a segment matches any non-empty run of bytes without '/', percent-decoded.
 * The first route (in table order) whose method and pattern match wins. A
 * path matching some route but not its method gets 405 with an Allow
 * header; no match at all gets 404. Every route lives under "/v1/".
 *
 * Roles. A route's min_role is STORE_ROLE_OPERATOR (operator tokens only:
 * a tenant token gets 403 "forbidden") or STORE_ROLE_TENANT (both roles).
 * On a tenant-role route naming a tenant in its path, set tenant_param to
 * that parameter's name: api.c then answers 404 "not_found" when a tenant
 * token's tenant differs from it, before the handler runs, so a tenant
 * cannot even learn whether another tenant exists. Routes without a tenant
 * in the path filter by api_principal(req)->tenant themselves (a tenant
 * token has role STORE_ROLE_TENANT and a non-empty tenant).
 *
 * Replies are JSON. Errors are always
 *     {"error": {"code": "not_found", "message": "no tenant \"acme\""}}
 * with codes: bad_request (400: bad JSON, wrong type, unknown field,
 * missing field, bad query parameter), unauthorized (401), forbidden (403),
 * not_found (404), method_not_allowed (405), conflict (409: exists, or a
 * lifecycle transition refused), payload_too_large (413), internal (500),
 * unavailable (503), plus tenant refusals' own codes (tenant.h,
 * "tenant_pending_review" ...) with their HTTP status.
 *
 * Lists are paginated: "?limit=N&after=CURSOR" (limit 1..API_LIMIT_MAX,
 * default API_LIMIT_DEFAULT) answer {"items": [...], "next": "CURSOR"} where
 * next is null on the last page; pass it back as after.
 *
 * Request bodies are read up to api_config.max_body bytes (413 beyond);
 * JSON bodies must be one object (RFC 8259, duplicate keys refused).
 *
 * Handler contract: return 0 after setting a reply with api_reply*() or
 * api_error*(); or return a negative errno / SL_E* code without replying
 * and api.c answers api_error_code()'s mapping of it. A handler that
 * returns 0 without replying gets 500.
 *
 * Ownership: the api keeps the store and mailbox pointers it is given (the
 * caller keeps them alive until api_stop returns); request and response
 * objects live for one handler call.
 *
 * Errors from api_start: -EINVAL bad address or TLS files, -EADDRINUSE,
 * -ENOMEM, SL_ECONFIG (libmicrohttpd refused to start).
 */
#ifndef SL_API_H
#define SL_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

#define API_DEFAULT_ADDRESS "127.0.0.1:8025"
#define API_DEFAULT_MAX_BODY ((size_t)1 << 20) /* 1 MiB */
#define API_DEFAULT_THREADS 4
#define API_LIMIT_DEFAULT 50
#define API_LIMIT_MAX 1000
#define API_PARAMS_MAX 8

struct api;
struct api_request;
struct api_response;
struct mailbox; /* dataplane/mailbox.h */

struct api_config {
	const char *address;   /* "HOST:PORT"; NULL = API_DEFAULT_ADDRESS; port 0 = any */
	const char *tls_cert;  /* PEM files; both NULL = plain HTTP */
	const char *tls_key;
	size_t max_body;       /* 0 = API_DEFAULT_MAX_BODY */
	unsigned threads;      /* 0 = API_DEFAULT_THREADS */
	struct mailbox *mailbox; /* the loop thread's mailbox; NULL in tests */
	void *daemon;            /* opaque context for handlers (api_daemon) */
	/* Called (from an API thread) after a tenant's state or settings
	 * changed, so the daemon can republish its data-path view. May be NULL. */
	void (*tenant_changed)(void *daemon, const char *tenant);
};

enum api_method {
	API_GET = 1,
	API_POST = 2,
	API_PUT = 4,
	API_PATCH = 8,
	API_DELETE = 16,
};

typedef int (*api_handler_fn)(struct api_request *req, struct api_response *resp);

struct api_route {
	enum api_method method;
	const char *pattern;      /* "/v1/tenants/:tenant/users/:user" */
	api_handler_fn handler;
	enum store_role min_role; /* STORE_ROLE_OPERATOR or STORE_ROLE_TENANT; 0 = public:
				   * no token needed (the handler authenticates the
				   * request itself; api_principal() has role 0) */
	const char *tenant_param; /* ":param" naming the tenant (without ':'), or NULL */
};

/* The authenticated caller. */
struct api_principal {
	enum store_role role;
	char tenant[STORE_NAME_MAX + 1]; /* "" for an operator token */
	char token_id[STORE_TOKEN_ID_SIZE];
	char actor[STORE_ACTOR_MAX + 1]; /* for the audit log: "token:<id>" */
};

/*
 * The route tables api.c serves, in this order. Each module defines its
 * own table and count (one concern per file):
 *   api_tenants.c   api_tenant_routes   tenants, lifecycle, SMTP users
 *   api_tokens.c    api_token_routes    API tokens
 *   api_audit.c     api_audit_routes    the audit log
 *   api_cfgsets.c   api_cfgset_routes   configuration sets
 *   api_messages.c  api_message_routes  HTTP injection
 *   api_queues.c    api_queue_routes    queue visibility
 *   api_ips.c       api_ip_routes       source IPs, FCrDNS
 *   api_events.c    api_event_routes    the event log
 *   api_reputation.c api_reputation_routes suppressions, VERP, reputation
 *   api_tls.c       api_tls_routes      outbound TLS-RPT counters
 */
extern const struct api_route api_tenant_routes[];
extern const size_t api_tenant_route_count;
extern const struct api_route api_token_routes[];
extern const size_t api_token_route_count;
extern const struct api_route api_audit_routes[];
extern const size_t api_audit_route_count;
extern const struct api_route api_cfgset_routes[];
extern const size_t api_cfgset_route_count;
extern const struct api_route api_message_routes[];
extern const size_t api_message_route_count;
extern const struct api_route api_queue_routes[];
extern const size_t api_queue_route_count;
extern const struct api_route api_ip_routes[];
extern const size_t api_ip_route_count;
extern const struct api_route api_event_routes[];
extern const size_t api_event_route_count;
/* api_domains.c api_domain_routes, api_verify.c api_verify_routes: sending
 * domains and verify-by-email (docs/domains.md) */
extern const struct api_route api_domain_routes[];
extern const size_t api_domain_route_count;
extern const struct api_route api_verify_routes[];
extern const size_t api_verify_route_count;
/* api_unsubscribe.c: RFC 8058 one-click unsubscribe (a public route) */
extern const struct api_route api_unsubscribe_routes[];
extern const size_t api_unsubscribe_route_count;
extern const struct api_route api_reputation_routes[];
extern const size_t api_reputation_route_count;
extern const struct api_route api_tls_routes[];
extern const size_t api_tls_route_count;

/* --- server -------------------------------------------------------------- */

/* Start serving on cfg->address with store for auth and data. */
int api_start(const struct api_config *cfg, struct store *store, struct api **out);
/* The port actually bound (useful with port 0). */
unsigned api_port(const struct api *api);
/* Stop accepting new connections (requests under way go on). */
void api_quiesce(struct api *api);
/* Requests in flight (handlers running or bodies arriving). */
unsigned api_active(const struct api *api);
/* Wait for running handlers, stop, free. NULL is a no-op. Handlers may be
 * blocked in mailbox_call(): the daemon quiesces, keeps its loop running
 * until api_active() is 0 (bounded), closes the mailbox, then stops. */
void api_stop(struct api *api);

/* --- request ------------------------------------------------------------- */

enum api_method api_method(const struct api_request *req);
const char *api_path(const struct api_request *req);
/* Path parameter (percent-decoded) by name without ':', or NULL. */
const char *api_param(const struct api_request *req, const char *name);
/* Query-string parameter (decoded), or NULL when absent. */
const char *api_query(const struct api_request *req, const char *name);
/* Request header (case-insensitive name), or NULL. */
const char *api_header(const struct api_request *req, const char *name);
/* The client's IP address as text into out. -ENOTCONN if unknown. */
int api_client_ip(const struct api_request *req, char *out, size_t cap);
/* The raw body (not NUL-terminated; *len 0 when none). */
const char *api_body(const struct api_request *req, size_t *len);
const struct api_principal *api_principal(const struct api_request *req);
/* True when the caller may see tenant's data (operator, or that tenant). */
bool api_may_see_tenant(const struct api_request *req, const char *tenant);
struct store *api_store(const struct api_request *req);
struct mailbox *api_mailbox(const struct api_request *req);
void *api_daemon(const struct api_request *req);
/* Tell the daemon tenant changed (api_config.tenant_changed), if set. */
void api_notify_tenant(const struct api_request *req, const char *tenant);

/* --- JSON bodies and validation (pure; fuzzed) ---------------------------- */

enum api_json_type {
	API_JSON_STRING = 1,
	API_JSON_UINT,   /* integer >= 0 */
	API_JSON_BOOL,
	API_JSON_OBJECT,
	API_JSON_ARRAY,
	API_JSON_ANY,
};

struct api_field {
	const char *name;
	enum api_json_type type;
	bool required;
	size_t max_len; /* strings: longest accepted length in bytes; 0 = no limit */
};

/* Parse len bytes as one JSON object into *out (caller json_decref()s).
 * -EINVAL with a one-line English message in err otherwise. */
int api_json_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen);
/* Check obj's members against fields[n]: every member known, of its type
 * (strings within max_len, no NUL bytes), every required one present.
 * 0, or -EINVAL with a message naming the field in err. */
int api_json_check(const json_t *obj, const struct api_field *fields, size_t n, char *err,
		   size_t errlen);
/* Parse the request body and check it: 0 with *out set, or a negative code
 * after answering 400 (the handler then just returns 0). An empty body is
 * taken as {}. */
int api_body_object(struct api_request *req, struct api_response *resp,
		    const struct api_field *fields, size_t n, json_t **out);

/* Check a tenant create (create true: "name" required) or update body
 * and apply its settings (default_stream, quotas, streams' pool and
 * subdomain) to *t; the store validates names. 0, or -EINVAL with err. */
int api_tenant_settings(const json_t *body, bool create, struct store_tenant *t, char *err,
			size_t errlen);

/* --- replies ------------------------------------------------------------- */

/* Reply status with body (JSON; the reference is stolen; NULL = no body). */
int api_reply(struct api_response *resp, unsigned status, json_t *body);
/* Reply status with already-serialised JSON text (copied). */
int api_reply_text(struct api_response *resp, unsigned status, const char *json, size_t len);
/* Reply 200 {"items": items, "next": next or null} (items stolen). */
int api_reply_list(struct api_response *resp, json_t *items, const char *next);
/* Reply status {"error": {"code": code, "message": printf(fmt, ...)}}. */
int api_error(struct api_response *resp, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Map an error value to (status, code): SL_ENOTFOUND 404 not_found, -EEXIST
 * and -EPERM 409 conflict, -EINVAL 400 bad_request, SL_EAUTH 401,
 * -EACCES 403, -EMSGSIZE 413, -EAGAIN 503, anything else 500 internal. */
void api_error_code(int err, unsigned *status, const char **code);
/* api_error with api_error_code(err)'s status and code and message msg
 * (NULL = sl_strerror(err)). */
int api_error_errno(struct api_response *resp, int err, const char *msg);
/* Add a response header (e.g. Location). */
int api_header_add(struct api_response *resp, const char *name, const char *value);

/* Read ?limit= and ?after=: 0, or a negative code after answering 400.
 * *after is NULL when absent. */
int api_page(struct api_request *req, struct api_response *resp, size_t *limit,
	     const char **after);

/* --- routing (pure; exposed for tests and fuzzing) ------------------------ */

struct api_match {
	const struct api_route *route;
	size_t nparams;
	struct {
		const char *name; /* points into the route's pattern (not terminated: name_len) */
		size_t name_len;
		char value[256];  /* percent-decoded */
	} params[API_PARAMS_MAX];
};

/* Match path (without query string) against one pattern: true and m's
 * params filled when it matches. Segments over 255 bytes, bad percent
 * escapes or decoded '/' or NUL never match. */
bool api_route_match(const char *pattern, const char *path, struct api_match *m);
/* Find the route for (method, path) in tables[ntables] of counts[]. 0 with
 * *m filled; SL_ENOTFOUND when no pattern matches; -EPERM (405) when a
 * pattern matches but no route with that method, with *allowed the union
 * of methods that would. */
int api_route_find(const struct api_route *const *tables, const size_t *counts, size_t ntables,
		   enum api_method method, const char *path, struct api_match *m,
		   unsigned *allowed);
/* "GET" ... ; 0 for an unknown method string. */
enum api_method api_method_parse(const char *s);
const char *api_method_name(enum api_method m);

#endif
