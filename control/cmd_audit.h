/*
 * cmd_audit.h — sluicectl audit: the control store's audit log.
 *
 *   sluicectl audit [--tenant T] [--limit N] [--after SEQ]
 *
 * Oldest first; every page unless --limit. Global options, output and
 * exit codes: cmd_api.h. Called as cmd_audit(argc - 1, argv + 1).
 */
#ifndef SL_CMD_AUDIT_H
#define SL_CMD_AUDIT_H

int cmd_audit(int argc, char **argv);

#endif
