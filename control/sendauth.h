/*
 * sendauth.h — the daemon's sender-authentication service (sender_auth:
 * section, docs/domains.md): the domain-record settings the API needs, the
 * verify-by-email verifier, and the periodic re-check of every registered
 * sending domain.
 *
 * sendauth_start() builds a domains_env from the configuration (every
 * pool's source IPs for SPF, or sender_auth.spf_include; the return path
 * CNAME target bounces.return_path_domain, else an MX to hostname;
 * dns.servers for the checks), creates the verifier when
 * sender_auth.verification_domain is set, and starts one thread that
 * re-checks every domain each check_interval; when a domain's verified
 * state changes it calls changed(ctx, tenant) so the daemon republishes
 * its tenant view (which carries the verified domains).
 *
 * Ownership: keeps cfg and st (the caller keeps both until sendauth_stop).
 * Errors: -ENOMEM, and verification_create's.
 */
#ifndef SL_SENDAUTH_H
#define SL_SENDAUTH_H

#include <stddef.h>

#include "config.h"
#include "store.h"

struct sendauth;
struct domains_env;
struct verification;

int sendauth_start(const struct sl_config *cfg, struct store *st,
		   void (*changed)(void *ctx, const char *tenant), void *ctx,
		   struct sendauth **out, char *err, size_t errlen);
/* Stop the re-check thread and the verifier; NULL is a no-op. */
void sendauth_stop(struct sendauth *sa);
const struct domains_env *sendauth_domains_env(const struct sendauth *sa);
/* NULL when verify-by-email is off. */
struct verification *sendauth_verification(const struct sendauth *sa);
/* A signer (dataplane/dkim.h) with the key of every verified domain, or
 * *out NULL when there is none. */
struct dkim_signer;
int sendauth_signer_load(struct store *st, struct dkim_signer **out);
/* Re-check every domain now (what the thread does each interval); the
 * number whose verified state changed, or a negative error. */
int sendauth_check_all(struct sendauth *sa);

#endif
