/*
 * cmd_queue.h — sluicectl queue: see and steer the delivery queues.
 *
 *   sluicectl queue list [--by domain|tenant|stream|source_ip|pool]
 *                        [--tenant T] [--domain D] [--stream S]
 *   sluicectl queue show ID
 *   sluicectl queue pause|resume|retry|purge [--tenant T] [--domain D] [--stream S]
 *
 * Over the admin API (docs/queues.md). Global options, output and exit
 * codes: cmd_api.h. Called as cmd_queue(argc - 1, argv + 1).
 */
#ifndef SL_CMD_QUEUE_H
#define SL_CMD_QUEUE_H

int cmd_queue(int argc, char **argv);

#endif
