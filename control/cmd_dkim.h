/*
 * cmd_dkim.h — `sluicectl dkim`: DKIM key generation and offline signing.
 *
 *   sluicectl dkim keygen --algo rsa-sha256|ed25519-sha256 --out KEYFILE
 *   sluicectl dkim dns --key KEYFILE
 *   sluicectl dkim sign --domain D --selector S --key KEYFILE [--algo A]
 *                       [--key2 KEYFILE --selector2 S2 --algo2 A2]
 *                       [--canon relaxed|simple[/relaxed|simple]]
 *                       [--time UNIX] < message.eml
 *
 * `sign` goes through dkim_signer_sign(), the code path the daemon uses. This is
 * a command-line front end: it prints to stdout/stderr and returns the
 * process exit status (0 ok, 1 failure, 2 usage error).
 */
#ifndef SL_CMD_DKIM_H
#define SL_CMD_DKIM_H

/* Run `sluicectl dkim ...`; argv[0] is "dkim". Returns an exit status. */
int cmd_dkim(int argc, char **argv);

#endif
