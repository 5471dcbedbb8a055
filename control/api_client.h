/*
 * api_client.h — a client of sluiced's admin API (libcurl), for sluicectl.
 *
 * Where to connect and with which token, first match wins:
 *   URL:   the url argument (--api), $SLUICE_API, the config's
 *          control.api.address ("http://" or, with tls_cert, "https://"),
 *          http://127.0.0.1:8025;
 *   token: the token argument (--token), $SLUICE_TOKEN, the file
 *          <control.store>/admin.token (default
 *          /var/lib/sluice/control/admin.token).
 * The config is the config argument (-c), else /etc/sluice/sluice.yaml
 * when it exists; an unreadable config is ignored (defaults apply).
 * HTTPS certificates are not verified when $SLUICE_API_INSECURE is set
 * (self-signed appliance certificates).
 *
 * Errors are values with a one-line English message in the client's err
 * (e.g. "cannot reach sluiced at http://127.0.0.1:8025: Connection
 * refused"); nothing here prints. -ENOENT no token found, -ECONNREFUSED
 * cannot reach the API, -EBADMSG the reply is not JSON, -ENOMEM.
 */
#ifndef SL_API_CLIENT_H
#define SL_API_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

#define API_CLIENT_DEFAULT_URL "http://127.0.0.1:8025"
#define API_CLIENT_DEFAULT_TOKEN_FILE "/var/lib/sluice/control/admin.token"

struct api_client {
	char url[512];
	char token[STORE_TOKEN_SIZE + 8];
	char token_file[4096]; /* where the token was looked for, for messages */
	char err[768];
};

/* Resolve the URL and token (any argument may be NULL). */
int api_client_init(struct api_client *c, const char *url, const char *token,
		    const char *config);
/* One request: method and path ("/v1/tenants?limit=10"), an optional JSON
 * body (borrowed). 0 with the HTTP status and the parsed reply (NULL for
 * an empty body; caller json_decref()s), or a negative code. */
int api_client_call(struct api_client *c, const char *method, const char *path,
		    const json_t *body, long *status, json_t **out);
/* Percent-encode s for a path segment or query value into out. */
void api_client_escape(const char *s, char *out, size_t outlen);

#endif
