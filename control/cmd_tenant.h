/*
 * cmd_tenant.h — sluicectl tenant ...: tenants over the admin API.
 *
 *   sluicectl tenant list
 *   sluicectl tenant show NAME
 *   sluicectl tenant create NAME [--stream S] [--quota-hour N] [--quota-day N]
 *                               [--transactional-pool P] [--marketing-pool P]
 *   sluicectl tenant update NAME [the options of create]
 *   sluicectl tenant approve|sandbox|resume|disable NAME [--reason TEXT]
 *   sluicectl tenant hold NAME [--grace DURATION] [--reason TEXT]
 *   sluicectl tenant user add NAME USERNAME [--password PW | --password-hash H]
 *   sluicectl tenant user remove NAME USERNAME
 *
 * Global options, output and exit codes: cmd_api.h. Called as
 * cmd_tenant(argc - 1, argv + 1) (argv[0] is "tenant").
 */
#ifndef SL_CMD_TENANT_H
#define SL_CMD_TENANT_H

int cmd_tenant(int argc, char **argv);

#endif
