/*
 * control_seed.h — what sluiced puts in the control store at start.
 *
 * 1. The YAML config's tenants are operator-declared: each one missing
 *    from the store is created and approved (active), audited with actor
 *    "config"; its SMTP AUTH user (username, default the name) is added
 *    from password_hash when the store lacks it. Tenants already in the
 *    store keep their state (an operator may have held one).
 * 2. When the store has no operator token, one is minted and written to
 *    <dir>/admin.token (mode 0600, the token and a newline) for sluicectl.
 *
 * Returns 0, with a one-line summary for the log in msg ("" when nothing
 * was done), or a negative code with what failed in msg.
 */
#ifndef SL_CONTROL_SEED_H
#define SL_CONTROL_SEED_H

#include <stddef.h>

#include "config.h"
#include "store.h"

#define CONTROL_TOKEN_FILE "admin.token"

int control_seed(struct store *st, const struct sl_config *cfg, const char *dir, char *msg,
		 size_t msglen);

#endif
