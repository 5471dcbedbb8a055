/*
 * cmd_domain.h — `sluicectl domain add|list|records|verify|remove`:
 * sending domains over the admin API (docs/domains.md). Exit codes as in
 * cmd_api.h; `verify` exits 1 when the domain is not verified.
 */
#ifndef SL_CMD_DOMAIN_H
#define SL_CMD_DOMAIN_H

int cmd_domain(int argc, char **argv);

#endif
