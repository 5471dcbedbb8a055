/*
 * cmd_token.h — sluicectl token ...: API tokens over the admin API.
 *
 *   sluicectl token list [--tenant T]
 *   sluicectl token create (--tenant T | --operator)
 *   sluicectl token revoke ID
 *
 * create prints the token once (it is never shown again). Global options,
 * output and exit codes: cmd_api.h. Called as cmd_token(argc - 1, argv + 1).
 */
#ifndef SL_CMD_TOKEN_H
#define SL_CMD_TOKEN_H

int cmd_token(int argc, char **argv);

#endif
