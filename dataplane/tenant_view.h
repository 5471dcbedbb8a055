/*
 * tenant_view.h — the data path's read-only snapshot of the tenants.
 *
 * The control store (control/store.h) is the truth about tenants, but the
 * data path must not read LMDB per message. A tenant_view is an immutable
 * copy of what the data path needs (name, lifecycle state, default stream,
 * pool per stream, quotas, paused configuration sets), loaded from the store on any thread and then handed to
 * the loop thread, which swaps its current pointer and frees the old view
 * (sluiced posts the swap through its mailbox, so the loop thread is the
 * only reader and nothing is freed under it).
 *
 * Lookups are a binary search by name; a tenant absent from the view (or a
 * NULL view: no control store configured) is treated by callers as the
 * YAML config's tenants always were: active.
 *
 * Errors: -ENOMEM, and the store's errors from tenant_view_load.
 */
#ifndef SL_TENANT_VIEW_H
#define SL_TENANT_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "tenant.h"

struct tenant_view;

struct tenant_view_entry {
	char name[STORE_NAME_MAX + 1];
	enum tenant_state state;
	uint8_t default_stream;                       /* enum sl_stream */
	char pool[STORE_STREAMS][STORE_NAME_MAX + 1]; /* "" = the default pool */
	uint64_t quota_hour, quota_day;               /* messages; 0 = none (quota.h) */
};

/* Read every tenant of st into a new view (caller frees). Any thread. */
int tenant_view_load(struct store *st, struct tenant_view **out);
void tenant_view_free(struct tenant_view *v);
/* The entry for name, or NULL (also for a NULL view). */
const struct tenant_view_entry *tenant_view_find(const struct tenant_view *v, const char *name);
size_t tenant_view_count(const struct tenant_view *v);

/* May tenant name deliver / inject per v? True when it is not in v. */
bool tenant_view_may_deliver(const struct tenant_view *v, const char *name);
/* Is the configuration set (tenant, sending domain any case, stream)
 * paused in v (STORE_CFGSET_PAUSED: a policy hold or an operator pause)? */
bool tenant_view_cfgset_held(const struct tenant_view *v, const char *tenant, const char *domain,
			     uint8_t stream);
/* May a message of tenant with envelope sender mail_from on stream be
 * delivered: the tenant may, and its configuration set is not paused? */
bool tenant_view_msg_may_deliver(const struct tenant_view *v, const char *tenant,
				 const char *mail_from, uint8_t stream);
/* The refusal for injecting as tenant name, or NULL when it may. */
const struct tenant_refusal *tenant_view_inject_refusal(const struct tenant_view *v,
							 const char *name);

/* Sending domains (control/domains.h): is domain (any case) verified for
 * tenant in v? The view holds the verified ones, loaded with the tenants. */
bool tenant_view_domain_verified(const struct tenant_view *v, const char *tenant,
				 const char *domain);
/* May tenant send with envelope sender mail_from? 0, or 550 with the rest
 * of the reply line ("5.7.1 sending domain D is not verified for tenant
 * T ...") in reply. Per cfg->sender_auth: off or enforce none = always 0;
 * enforce api_tenants exempts tenants declared in the YAML config; the
 * null sender is not checked. */
int tenant_view_sender_check(const struct tenant_view *v, const struct sl_config *cfg,
			     const char *tenant, const char *mail_from, char *reply, size_t len);

/* A tenant as the acceptance path takes it (struct sl_tenant_cfg) built
 * from a view entry, owning its strings, so it outlives view swaps. */
struct tenant_view_cfg {
	struct sl_tenant_cfg cfg;
	char name[STORE_NAME_MAX + 1];
	char pool[STORE_STREAMS][STORE_NAME_MAX + 1];
};
/* Fill out from e; pools not defined in cfg fall back to the default. */
void tenant_view_cfg_fill(const struct tenant_view_entry *e, const struct sl_config *cfg,
			  struct tenant_view_cfg *out);

#endif
