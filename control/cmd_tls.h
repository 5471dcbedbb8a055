/*
 * cmd_tls.h — sluicectl tls: the outbound TLS-RPT counters per policy
 * domain (docs/tls.md).
 *
 *   sluicectl tls [--json]
 *
 * One row per (domain, policy): successful sessions, failed ones, and the
 * failures by RFC 8460 result type. From GET /v1/tls; global options,
 * output and exit codes: cmd_api.h. Called as cmd_tls(argc - 1, argv + 1).
 */
#ifndef SL_CMD_TLS_H
#define SL_CMD_TLS_H

int cmd_tls(int argc, char **argv);

#endif
