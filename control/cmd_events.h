/*
 * cmd_events.h — sluicectl events: the event log over the admin API.
 *
 *   sluicectl events [--tenant T] [--event KIND] [--limit N] [--follow]
 *
 * The newest N (default 50) matching events, oldest first, as a table or
 * (--json) one JSON object per line as sluiced wrote it; --follow then
 * polls for new ones every second until interrupted. Global options and
 * exit codes: cmd_api.h. Called as cmd_events(argc - 1, argv + 1).
 */
#ifndef SL_CMD_EVENTS_H
#define SL_CMD_EVENTS_H

int cmd_events(int argc, char **argv);

#endif
