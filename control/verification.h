/*
 * verification.h — verify-by-email: a tenant proves it controls an address
 * by sending any message FROM that address TO the appliance.
 *
 * Mailing a link to an address lets abusers probe stolen lists; here the
 * address owner writes to us instead. Flow:
 *   1. the API calls verification_request(): it stores a request (tenant,
 *      address, random token, expiry) and returns the address to write to,
 *      "<prefix>+<token>@<verification domain>";
 *   2. the inbound listener gets a message for such a recipient and calls
 *      verification_receive() with the envelope, the client address and the
 *      raw message;
 *   3. verification_receive() accepts only if the header From address equals
 *      the requested address AND either SPF passes for (client IP, MAIL FROM
 *      domain) with the MAIL FROM domain aligned (relaxed, RFC 7489) with the
 *      From domain, or a DKIM signature whose d= is aligned with the From
 *      domain verifies. Then the address is marked verified in the store
 *      (audited "verification.verified") and a webhook is queued: POST JSON
 *      signed with HMAC-SHA256 over the body, header
 *      "X-Sluice-Signature: sha256=<hex>", from a worker thread with bounded
 *      retries. A refusal is audited "verification.refused" with why.
 *
 * Rate limits: verification_request() counts requests per tenant and per
 * source (the API client's address) in fixed one-hour windows, in memory.
 *
 * Threads: every function may be called from any thread (one mutex inside;
 * DNS for SPF/DKIM is a synchronous libunbound context per call, so
 * verification_receive() blocks for DNS: call it from a thread that may
 * block, not from an event loop).
 *
 * Ownership: the struct keeps the store pointer given in the config (the
 * caller keeps the store open until verification_destroy); strings in the
 * config are copied.
 *
 * Errors: -EINVAL bad argument (address syntax, not a verification
 * recipient); SL_ENOTFOUND no such (or an expired) request; -EAGAIN rate
 * limited; -EPERM the message failed the checks (why says which);
 * -ENOMEM; store errors pass through.
 */
#ifndef SL_VERIFICATION_H
#define SL_VERIFICATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"

struct store;
struct verification;

#define VERIFICATION_TOKEN_LEN 24 /* lower-case base32, 120 bits */
#define VERIFICATION_ADDR_MAX 320

struct verification_config {
	struct store *store;        /* required; kept, not owned */
	const char *domain;         /* verification domain, e.g. "verify.sluice.test" */
	const char *local_prefix;   /* NULL = "verify" */
	const char *const *dns_servers; /* NULL-terminated IPs; NULL = /etc/resolv.conf */
	uint64_t ttl_ms;            /* request lifetime; 0 = 24 h */
	unsigned per_tenant_hour;   /* requests per tenant per hour; 0 = 100 */
	unsigned per_source_hour;   /* requests per source per hour; 0 = 20 */
	const char *webhook_url;    /* NULL/"" = no webhook */
	const char *webhook_secret; /* HMAC key */
	unsigned webhook_attempts;  /* 0 = 5 */
	const char *const *dns_local_data; /* tests: unbound "local-data:" RRs; NULL normally */
};

/* One request as stored and listed. */
struct verification_request {
	char tenant[65];
	char address[VERIFICATION_ADDR_MAX + 1];  /* lower case */
	char token[VERIFICATION_TOKEN_LEN + 1];
	char write_to[VERIFICATION_ADDR_MAX + 1]; /* where the user sends mail */
	uint64_t created_ms, expires_ms;
	uint64_t verified_ms;                     /* 0 = not yet */
	char method[16];                          /* "spf", "dkim" or "" */
};

/* Create the verifier (starts the webhook worker thread). */
int verification_create(const struct verification_config *cfg, struct verification **out);
/* Stop the worker (pending webhooks get one last attempt at most) and free. */
void verification_destroy(struct verification *v);

/* Create a request for tenant to prove address; source is the requester's
 * address for rate limiting (may be NULL). *out gets the stored request. */
int verification_request(struct verification *v, const char *tenant, const char *address,
			 const char *source, uint64_t now_ms, struct verification_request *out);
/* The request for (tenant, address), verified or not. SL_ENOTFOUND. */
int verification_get(struct verification *v, const char *tenant, const char *address,
		     struct verification_request *out);

/* Has tenant verified address (any case)? Reads the store directly (any
 * thread, no verifier needed): sandbox tenants may send only to these. */
bool verification_address_verified(struct store *st, const char *tenant, const char *address);

/* True if rcpt is a verification recipient of this appliance
 * ("<prefix>+<token>@<domain>", any case), so the inbound listener can
 * route it here. */
bool verification_is_recipient(const struct verification *v, const char *rcpt);

/* Check a received message (msg, len: the raw RFC 5322 message as
 * received, CRLF or LF line ends) sent by client (sockaddr_in/in6) with
 * HELO helo and envelope sender mail_from to verification recipient rcpt.
 * 0: verified (stored, audited, webhook queued). Otherwise an error and a
 * one-line reason in why: -EINVAL not a verification recipient,
 * SL_ENOTFOUND unknown or expired token, -EPERM From mismatch or neither
 * aligned SPF pass nor aligned DKIM pass. */
int verification_receive(struct verification *v, const char *rcpt, const char *msg, size_t len,
			 const struct sockaddr *client, const char *helo, const char *mail_from,
			 char *why, size_t whylen);

/* Webhooks delivered and given up so far (for tests and metrics). */
void verification_stats(struct verification *v, unsigned *delivered, unsigned *failed);

/* The address of msg's single From field (RFC 5322 header section, folded
 * lines joined), lower case, into out. -EPROTO if there is no From, two
 * From fields, several mailboxes or a bad address. (Exposed for tests and
 * fuzzing: it parses untrusted mail.) */
int verification_header_from(const char *msg, size_t len, char out[VERIFICATION_ADDR_MAX + 1]);

/* A request as a new JSON object, or NULL. */
json_t *verification_request_json(const struct verification_request *r);

#endif
