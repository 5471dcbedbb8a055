/* fuzz_config.c — arbitrary bytes into config_load_string(); must not crash or leak. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_config *cfg = NULL;
	char err[256];
	int rc;

	rc = config_load_string("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof(err));
	if (rc == 0) {
		/* Exercise the lookups on whatever parsed. */
		struct sockaddr_storage any = cfg->metrics_addr;

		for (size_t i = 0; i < cfg->n_listeners; i++)
			for (size_t j = 0; j < cfg->listeners[i].n_relay_networks; j++)
				(void)cidr_contains(&cfg->listeners[i].relay_networks[j],
						    (const struct sockaddr *)&any);
		for (size_t i = 0; i < cfg->n_tenants; i++) {
			if (config_tenant_by_user(cfg, cfg->tenants[i].username) == NULL ||
			    config_pool_by_name(cfg, cfg->tenants[i].pool) == NULL)
				__builtin_trap(); /* every tenant is reachable and has a pool */
		}
		for (size_t i = 0; i < cfg->n_routes; i++)
			if (config_route_for(cfg, cfg->routes[i].domain) == NULL)
				__builtin_trap();
		if (cfg->n_pools == 0)
			__builtin_trap();
		config_free(cfg);
	} else if (cfg != NULL || rc != SL_ECONFIG) {
		if (rc != -ENOMEM)
			__builtin_trap(); /* failures are SL_ECONFIG with no config */
	} else if (memcmp(err, "fuzz.yaml:", 10) != 0) {
		__builtin_trap(); /* every error names FILE:LINE:COL */
	}
	return 0;
}
