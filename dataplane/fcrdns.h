/*
 * fcrdns.h — forward-confirmed reverse DNS of the pools' source IPs.
 *
 * Receivers distrust a source IP whose reverse DNS does not name the host
 * it says EHLO as. At start sluiced checks every pool IP through the
 * resolver: the PTR of the IP must name the IP's `ehlo` host, and that
 * host's A/AAAA records must contain the IP. The outcome per IP is
 *   ok        both hold;
 *   mismatch  no PTR, a PTR naming other hosts, or the EHLO host does not
 *             resolve back to the IP (`why` says which);
 *   unknown   not checked yet, or a lookup failed temporarily.
 * A mismatch is a warning, never fatal: the daemon logs it and `sluicectl
 * ip list` shows it.
 *
 * The checker borrows the resolver and the config (they outlive it); all
 * calls come from the resolver's (the event loop's) thread. `done` runs
 * once per IP when its check ends. No I/O of its own, no logging.
 */
#ifndef SL_FCRDNS_H
#define SL_FCRDNS_H

#include <stddef.h>

#include "config.h"
#include "resolver.h"

enum fcrdns_status { FCRDNS_UNKNOWN, FCRDNS_OK, FCRDNS_MISMATCH };

struct fcrdns_result {
	const char *pool;     /* the pool's name (config) */
	const char *ehlo;     /* the IP's EHLO name (config) */
	char ip[48];          /* canonical text */
	char rdns[256];       /* the first PTR name ("" none or not known) */
	enum fcrdns_status status;
	char why[160];        /* for mismatch and unknown ("" when ok) */
};

struct fcrdns;
typedef void (*fcrdns_done_cb)(void *ctx, const struct fcrdns_result *res);

/* Start checking every IP of every pool of cfg. -ENOMEM; lookups that
 * cannot start leave their IP unknown (and call done). */
int fcrdns_start(struct resolver *r, const struct sl_config *cfg, fcrdns_done_cb done, void *ctx,
		 struct fcrdns **out);
/* Cancel what is still running and free. NULL is a no-op. */
void fcrdns_destroy(struct fcrdns *f);

/* The results, in config order (pool by pool). */
size_t fcrdns_count(const struct fcrdns *f);
const struct fcrdns_result *fcrdns_get(const struct fcrdns *f, size_t i);

/* "ok", "mismatch", "unknown". */
const char *fcrdns_status_name(enum fcrdns_status s);

#endif
