/*
 * providers.h — which mailbox provider hosts a domain, and which domains
 * share a site.
 *
 * A provider table maps MX host-name suffixes to provider names ("google",
 * "microsoft", ...). Shaping rules and warm-up schedules are keyed by these
 * names. The shipped table is configs/providers.conf; an operator's file
 * loaded after it overrides entries suffix by suffix (see
 * providers_parse()). Matching is on label boundaries and the longest
 * suffix wins: "alt1.gmail-smtp-in.l.google.com" matches "google.com", not
 * "ogle.com". Case and one trailing dot are ignored.
 *
 * A site is the set of MX hosts a domain delivers to. site_key() spells it
 * canonically (lower case, trailing dot dropped, sorted, duplicates
 * removed, joined with ','), so gmail.com and every Google-hosted domain
 * roll up to one site and share one ready queue per source IP.
 *
 * File format (one entry a line; '#' starts a comment; blank lines skipped):
 *     SUFFIX  PROVIDER      e.g.  google.com  google
 *     SUFFIX  -             removes SUFFIX (an override file unmapping it)
 * SUFFIX is a DNS name (letters, digits, '-', '_', '.'); PROVIDER is
 * [a-z0-9_-]{1,63}. Errors are SL_ECONFIG with "FILE:LINE: message".
 *
 * The table owns all its strings; names returned by provider_for_mx() live
 * as long as the table. Lookups are read-only and may run concurrently.
 */
#ifndef SL_PROVIDERS_H
#define SL_PROVIDERS_H

#include <stddef.h>

#define PROVIDER_NAME_MAX 63
#define SITE_KEY_MAX 1024 /* a sensible size for site_key() buffers */

struct provider_table;

/* An empty table (NULL when out of memory). */
struct provider_table *providers_create(void);

/* Add the entries of a providers file held in memory to t; later entries
 * (in this text or a later call) replace earlier ones for the same suffix.
 * `name` stands in for FILE in errors. On error t keeps the entries added
 * before the bad line. Returns 0, SL_ECONFIG or -ENOMEM. */
int providers_parse(struct provider_table *t, const char *name, const char *text, size_t len,
		    char *err, size_t errlen);

/* providers_parse() on the contents of path (-errno if unreadable). */
int providers_load_file(struct provider_table *t, const char *path, char *err, size_t errlen);

/* A new table from path (caller frees with providers_free). */
int providers_load(const char *path, struct provider_table **out, char *err, size_t errlen);

void providers_free(struct provider_table *t);

/* Number of suffixes in the table. */
size_t providers_count(const struct provider_table *t);

/* The provider hosting mx_host, or NULL when no suffix matches. */
const char *provider_for_mx(const struct provider_table *t, const char *mx_host);

/* The provider of a domain's MX set: the provider of the first MX host
 * that has one (MX lists of one domain do not mix providers in practice),
 * or NULL. */
const char *provider_for_mxs(const struct provider_table *t, const char *const *mx, size_t n);

/* Write the site key of the n MX hosts into out (NUL-terminated). A domain
 * without MX records has its implicit MX (RFC 5321 5.1): pass the domain.
 * Returns the key's length, SL_ETOOBIG when outlen is too small, -EINVAL
 * when n is 0 or a host is empty, -ENOMEM. */
int site_key(const char *const *mx, size_t n, char *out, size_t outlen);

#endif
