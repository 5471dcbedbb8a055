/*
 * api_dataplane.h — what the admin API's data-plane routes (HTTP injection,
 * queues: api_messages.c, api_queues.c) need from the daemon.
 *
 * sluiced fills one struct api_dataplane and passes it as
 * api_config.daemon; those handlers read it through api_daemon(req) (NULL:
 * no data plane, they answer 503). Every pointer except cfg and limits is
 * data-plane state owned by the event loop's thread: handlers only pass
 * them to closures run through api_mailbox(req) (dataplane/mailbox.h),
 * never touch them on the API thread. `daemon` is for the daemon's own
 * callbacks (api_config.tenant_changed gets this struct as its argument).
 */
#ifndef SL_API_DATAPLANE_H
#define SL_API_DATAPLANE_H

#include "buf.h"
#include "config.h"
#include "inject.h"

struct accept;
struct queue;
struct domains_env;
struct verification;
struct tenant_view;
struct reputation;

struct api_dataplane {
	struct accept *accept;        /* ingress_accept(): the shared acceptance path */
	struct queue *queue;
	const struct sl_config *cfg;  /* read-only, any thread */
	struct inject_limits limits;  /* POST /v1/messages */
	void *daemon;                 /* the daemon's own context */
	/* GET /v1/ips (api_ips.c): append the source IPs as a JSON array;
	 * runs on the loop thread (through the mailbox). NULL: 503. */
	int (*ips_json)(void *daemon, struct sl_buf *out);
	/* GET /v1/tls (api_tls.c): append the TLS-RPT counters' JSON view
	 * (dataplane/tls_report.h); loop thread, like ips_json. NULL: 503. */
	int (*tls_json)(void *daemon, struct sl_buf *out);
	/* Sending domains and verify-by-email (sender_auth: section; NULL =
	 * off): record generation and DNS check settings, the verifier. Both
	 * are safe from API threads. */
	const struct domains_env *domains;
	struct verification *verification;
	/* The loop thread's current tenant view (loop thread only; NULL: none):
	 * HTTP injection checks sending domains against it. */
	struct tenant_view *const *tenants;
	/* Reputation (NULL: no bounces section): suppression checks at
	 * injection and VERP decoding, both safe from API threads. */
	struct reputation *rep;
};

#endif
