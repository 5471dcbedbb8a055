/*
 * cmd_ip.h — sluicectl ip list: the pools' source IPs as sluiced sees them.
 *
 *   sluicectl ip list [--json]
 *
 * One row per IP: pool, IP, EHLO name, rDNS (the PTR found), the
 * forward-confirmed rDNS check (ok / mismatch / unknown, checked by
 * sluiced at start), transport, warm-up schedule. From GET /v1/ips; global
 * options, output and exit codes: cmd_api.h. Called as cmd_ip(argc - 1,
 * argv + 1).
 */
#ifndef SL_CMD_IP_H
#define SL_CMD_IP_H

int cmd_ip(int argc, char **argv);

#endif
