/*
 * cmd_verify.h — `sluicectl verify request|show`: verify-by-email over the
 * admin API (docs/domains.md). Exit codes as in cmd_api.h.
 */
#ifndef SL_CMD_VERIFY_H
#define SL_CMD_VERIFY_H

int cmd_verify(int argc, char **argv);

#endif
