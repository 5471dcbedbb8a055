/*
 * cmd_bounce.h — the sluicectl commands for bounces and complaints.
 *
 *   sluicectl bounce classify [--rules FILE] [--reply 'SMTP REPLY']
 *   sluicectl fbl parse
 *
 * Both read a message from stdin (unless --reply is given) and print one
 * JSON object on stdout. Called as cmd_bounce(argc - 1, argv + 1) from
 * sluicectl's main, so argv[0] is "bounce" / "fbl". They print and exit
 * codes, like every sluicectl command: 0 ok, 1 unparseable input (bounce
 * still prints JSON with reason "undefined"), 2 usage or unreadable rules.
 *
 * Rules file: --rules, else $SLUICE_BOUNCE_RULES, else
 * /etc/sluice/bounce-rules.conf, else ./configs/bounce-rules.conf.
 */
#ifndef SL_CMD_BOUNCE_H
#define SL_CMD_BOUNCE_H

int cmd_bounce(int argc, char **argv);
int cmd_fbl(int argc, char **argv);

#endif
