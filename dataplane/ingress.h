/*
 * ingress.h — the ESMTP listeners where tenants submit mail.
 *
 * Each accepted connection runs the sans-I/O smtp_server over a session_io
 * (STARTTLS when the listener has a certificate). The tenant is the AUTH
 * identity (AUTH only after TLS, passwords checked against the configured
 * hash) or, for unauthenticated clients, the listener's relay_tenant — and
 * only when the client's address is inside relay_networks: sluice is never
 * an open relay.
 *
 * An accepted message goes through the acceptance path (accept.h) that
 * HTTP injection shares: queue id, Received header, Message-ID if it lacks
 * one, its stream (the tenant's default, or the message's X-Sluice-Stream
 * header, which is removed), DKIM signature, one spool PUT. Durability: the
 * "250 2.0.0 Ok: queued as ID" reply is written only when that PUT's group
 * commit has completed; a failed commit answers 451 4.3.0 and keeps nothing.
 */
#ifndef SL_INGRESS_H
#define SL_INGRESS_H

#include "config.h"
#include "loop.h"
#include "queue.h"
#include "spool.h"
#include "transport_uring.h"

struct accept;
struct ingress;
struct metrics;
struct events;
struct store;
struct tenant_view;
struct reputation;
struct link_guard;

struct ingress_env {
	struct loop *loop;
	struct transport_uring *tu;
	struct spool *spool;
	struct queue *queue;
	struct metrics *metrics;
	struct events *events;
	const struct sl_config *cfg;
	/* The control store (NULL: none): SMTP AUTH also checks its users. */
	struct store *store;
	/* The loop thread's current tenant view (NULL: none): MAIL FROM of a
	 * tenant that may not inject gets tenant_refusal's reply. */
	struct tenant_view *const *tenants;
	/* Reputation (NULL: none): RCPT refuses suppressed recipients, and
	 * listeners[].inbound take the appliance's own mail (bounces,
	 * complaints, verifications) through it instead of the spool. */
	struct reputation *rep;
	/* Outbound link checking (NULL: off), for the acceptance path. */
	struct link_guard *links;
};

/* Open every configured listener. Errors name the failing listener in
 * err (e.g. "listener submission 127.0.0.1:2525: Address in use"). */
int ingress_create(const struct ingress_env *env, struct ingress **out, char *err,
		   size_t errlen);
/* Stop accepting; open sessions get 421 and close. */
void ingress_shutdown(struct ingress *in);
/* The acceptance path (and its DKIM signer) ingress created; HTTP
 * injection submits through it too. Valid until ingress_destroy. */
struct accept *ingress_accept(struct ingress *in);
/* True once every session is gone (pending commits answered). */
bool ingress_idle(const struct ingress *in);
void ingress_destroy(struct ingress *in);

#endif
