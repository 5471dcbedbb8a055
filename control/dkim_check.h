/*
 * dkim_check.h — DKIM signature verification (RFC 6376) with libopendkim's
 * verify side, key records fetched through dns_sync (libunbound).
 *
 * Used by verify-by-email: does the message carry a valid signature whose
 * d= is aligned with a given (From) domain? Signing stays in
 * dataplane/dkim.c. Blocks for DNS. libopendkim's library handle is
 * created once (dkim_check_create) and may be shared by threads; each
 * call uses its own verification handle.
 *
 * Errors: -ENOMEM; SL_EPROTO the message could not be parsed;
 * SL_ENOTFOUND no valid aligned signature (*d_out says the last signing
 * domain seen, if any).
 */
#ifndef SL_DKIM_CHECK_H
#define SL_DKIM_CHECK_H

#include <stdbool.h>
#include <stddef.h>

struct dns_sync;
struct dkim_check;

int dkim_check_create(struct dkim_check **out);
void dkim_check_destroy(struct dkim_check *c);

/* Verify every signature of msg[0..len) (CRLF or LF line ends); 0 if one
 * whose d= is aligned (relaxed, see aligned) with from_domain passes, with
 * its d= in d_out. */
int dkim_check_aligned(struct dkim_check *c, struct dns_sync *dns, const char *msg, size_t len,
		       const char *from_domain, char *d_out, size_t d_cap);

/* Relaxed DMARC alignment (RFC 7489 §3.1): the organizational domains are
 * equal. Without the public suffix list the organizational domain is
 * approximated as the last two labels, or three when the second-to-last
 * is at most three letters under a two-letter TLD (co.uk, com.au). */
bool dkim_check_domains_aligned(const char *a, const char *b);

#endif
