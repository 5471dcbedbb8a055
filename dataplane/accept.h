/*
 * accept.h — the acceptance path shared by SMTP ingress and HTTP injection.
 *
 * A message whose envelope is final (tenant known, recipients checked) is
 * handed over as one struct accept_msg. The path then:
 *   1. picks its stream: am->stream when the caller chose one, else the
 *      message's X-Sluice-Stream header, else the tenant's default; the
 *      X-Sluice-Stream header is always removed;
 *   2. takes a queue id and prepends a Received header (built from the
 *      caller's from / with / comment parts) and, when the message has
 *      none, a Message-ID;
 *   3. DKIM-signs it on the offload thread when the From domain has keys
 *      (the signature goes in front of everything);
 *   4. submits one spool PUT and, once the group commit completed, counts
 *      it for reputation (reputation_accepted), adds it to the queue,
 *      counts it, and calls am->done(am, 0).
 * Durability: done with result 0 is the commit point; only then may the
 * client hear 250 / HTTP 200. A failed commit or signature calls done with
 * a negative result and keeps nothing.
 *
 * Ownership: the caller owns am and everything it points to (tenant,
 * mail_from, rcpts, body, the Received parts) from accept_submit() until
 * done has run, unchanged: without DKIM keys the spool's writer reads the
 * body itself (no copy). done may free am. accept keeps copies of nothing
 * else.
 * Everything runs on the event-loop thread.
 *
 * done never runs before accept_submit returned.
 *
 * Quotas: a tenant over its hourly or daily quota (control store, see
 * quota.h) is refused by accept_submit itself with ACCEPT_EQUOTA and the
 * reason in am->refusal; callers answer it as a temporary failure.
 *
 * Links: with link checking on, the hosts the message links to are
 * checked before signing (link_guard.h); a listed host with action reject
 * refuses it with ACCEPT_ELINK, from accept_submit (local blocklist) or
 * through done (DNS blocklists, whose answers the message waits for like
 * it waits for its commit).
 *
 * Errors passed to done: SL_ETOOBIG / -ENOSPC (spool full), SL_ESPOOL,
 * -ECANCELED (accept_destroy while signing), ACCEPT_ESIGN (DKIM failed),
 * -ENOMEM.
 */
#ifndef SL_ACCEPT_H
#define SL_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "link_guard.h"
#include "offload.h"
#include "spool.h"
#include "spool_waiter.h"

struct accept;
struct domain_signer;
struct loop;
struct queue;
struct metrics;

/* done's result when DKIM signing failed (answered 451 / 500). */
#define ACCEPT_ESIGN (-EKEYREJECTED)
/* accept_submit's result when the tenant's quota is used up. */
#define ACCEPT_EQUOTA (-EDQUOT)
/* accept_submit's or done's result when link checking refused the
 * message (a listed host, link_guard.h): am->refusal names host and list;
 * callers answer it as a permanent failure (550 5.7.1). */
#define ACCEPT_ELINK (-ENOLINK)

struct tenant_view;
struct reputation;

struct accept_env {
	struct loop *loop;
	struct spool *spool;
	struct queue *queue;
	struct metrics *metrics;
	const struct sl_config *cfg;
	/* The daemon's current tenant view (quotas), or NULL: no quotas. */
	struct tenant_view *const *tenants;
	/* Outbound link checking (link_check:), or NULL: off. Borrowed. */
	struct link_guard *links;
	/* Reputation automation (volume-spike counts), or NULL. */
	struct reputation *rep;
};

struct accept_msg {
	/* in */
	const struct sl_tenant_cfg *tenant;
	int stream;                 /* enum sl_stream, or -1: header / tenant default */
	const char *mail_from;      /* "" for the null sender */
	const char *const *rcpts;
	size_t n_rcpts;
	const char *body;           /* RFC 5322 message, CRLF line endings */
	size_t body_len;
	uint32_t flags;             /* SPOOL_F_* */
	/* Received: from <from> by <hostname> (sluice) with <with> id <id>
	 *	(tenant T, stream S)[ (<comment>)]; <date> */
	const char *received_from;  /* e.g. "mail.acme.test ([198.51.100.7])" */
	const char *received_with;  /* e.g. "ESMTPSA", "HTTP" */
	const char *received_comment; /* e.g. "using TLSv1.3 TLS_AES_256_GCM_SHA384", or NULL */
	void (*done)(struct accept_msg *am, int result); /* loop thread */
	/* out, valid in done; refusal also after ACCEPT_EQUOTA */
	char refusal[320];
	uint64_t id;
	char message_id[256];
	/* internal */
	struct accept *acc;
	struct spool_waiter waiter;
	struct spool_op op;
	struct spool_msg msg;
	struct spool_rcpt *spool_rcpts;
	struct sl_buf out, sig;
	bool body_in_out;     /* out holds the whole message (signed, or a header dropped) */
	struct offload_job sign_job;
	struct domain_signer *dsigner; /* the verified-domain keys signing it, or NULL */
	struct link_guard_req links;
	char from_domain[256];
	int sign_rc;
};

/* Load every configured DKIM key and start the signing thread. Errors name
 * the failing key in err. */
int accept_create(const struct accept_env *env, struct accept **out, char *err, size_t errlen);
/* Finish signatures under way (their done gets -ECANCELED unless already
 * committed), free. PUTs in flight are the spool's: close it first. */
void accept_destroy(struct accept *acc);

/* Start accepting am. 0: done will be called (maybe before this returns);
 * negative: done will not be called (-ENOMEM, -EPIPE spool closing,
 * -EINVAL no recipients, ACCEPT_EQUOTA quota used up, ACCEPT_ELINK a
 * blocklisted link: am->refusal says which). */
int accept_submit(struct accept *acc, struct accept_msg *am);
/* Is tenant over its quota now? why gets the reason when it is. */
bool accept_quota_over(struct accept *acc, const char *tenant, char *why, size_t whylen);

/* Replace the keys of the control store's verified sending domains
 * (sender_auth) with those of s (taken, also on error; NULL = none). Used
 * for a From domain the configuration has no key for. Loop thread. */
struct dkim_signer;
int accept_set_domain_keys(struct accept *acc, struct dkim_signer *s);

/* "transactional" / "marketing" */
const char *accept_stream_name(int stream);

#endif
