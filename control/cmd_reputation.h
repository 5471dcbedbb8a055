/*
 * cmd_reputation.h — sluicectl suppress, verp and reputation: suppression
 * lists, VERP return-path decoding and reputation status, through the
 * admin API (options as for every API command, cmd_api.h).
 *
 *   sluicectl suppress list [--tenant T]
 *   sluicectl suppress add ADDRESS [--tenant T] [--reason R]
 *   sluicectl suppress remove ADDRESS [--tenant T]
 *   sluicectl suppress import FILE.csv [--tenant T] [--reason R]
 *   sluicectl suppress export [--tenant T]
 *   sluicectl verp decode ADDRESS
 *   sluicectl reputation TENANT
 *
 * Exit status: 0 ok, 1 the API refused (its error printed), 2 usage.
 */
#ifndef SL_CMD_REPUTATION_H
#define SL_CMD_REPUTATION_H

int cmd_suppress(int argc, char **argv);
int cmd_verp(int argc, char **argv);
int cmd_reputation(int argc, char **argv);

#endif
