/*
 * cmd_warmup.h — `sluicectl warmup`: see and steer IP warm-ups.
 *
 *   sluicectl warmup status [--json] [-c CONFIG | --db FILE]
 *   sluicectl warmup pause|resume|restart|jump --ip IP --provider P
 *             [--day N] [--reason TEXT] [-c CONFIG | --db FILE]
 *
 * The state file is SPOOL/warmup.mdb (warmup_db.h), found from the
 * daemon's config (-c, default $SLUICE_CONFIG, else
 * /etc/sluice/sluice.yaml) or named with --db. `status` prints what
 * sluiced last saved (it saves about once a second) as a table per IP x
 * provider. The actions are queued as commands in the same file; a running
 * sluiced applies them within a second (a stopped one at its next start)
 * and keeps them as the audit trail. PROVIDER "*" means destinations with
 * no known provider. With -c and warmup.schedules set, IPs not under
 * warm-up are refused here.
 *
 * Called as cmd_warmup(argc - 1, argv + 1) from sluicectl's main; returns
 * the exit status (0 ok, 1 failed, 2 usage).
 */
#ifndef SL_CMD_WARMUP_H
#define SL_CMD_WARMUP_H

int cmd_warmup(int argc, char **argv);

#endif
