/*
 * mta_sts.h — MTA-STS (RFC 8461) records and policies, sans-I/O: the
 * `_mta-sts.DOMAIN` TXT record, the policy text served at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and matching an MX host
 * against the policy's mx patterns. Fetching and caching are
 * dataplane/sts_cache.h's.
 *
 * The policy parser is strict where the RFC is: "version: STSv1", a mode of
 * enforce | testing | none, a max_age of at most 10 digits (clamped to
 * 31557600 s, the RFC's maximum), at least one mx unless the mode is none,
 * and every mx a host name or "*." plus a host name. Each of version, mode
 * and max_age at most once; lines end in CRLF or LF; blanks around values
 * are ignored; unknown keys (extensions, RFC 8461 §3.2) are skipped. At
 * most MTA_STS_MAX_MX patterns; more is invalid.
 *
 * Errors: SL_EPROTO for a malformed record or policy; SL_ENOTFOUND when no
 * (single) STS TXT record is present.
 */
#ifndef SL_MTA_STS_H
#define SL_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTA_STS_MAX_MX 32
#define MTA_STS_ID_MAX 32            /* id = 1*32(ALPHA / DIGIT) */
#define MTA_STS_MAX_AGE_MAX 31557600 /* s: one year */
#define MTA_STS_POLICY_MAX 65536     /* bytes: a larger policy file is refused */

enum mta_sts_mode {
	MTA_STS_NONE = 0,
	MTA_STS_TESTING,
	MTA_STS_ENFORCE,
};

struct mta_sts_policy {
	enum mta_sts_mode mode;
	uint32_t max_age; /* seconds */
	size_t n_mx;
	char mx[MTA_STS_MAX_MX][256]; /* lower case, no trailing dot; "*.x.y" wildcards */
};

/* The id of the domain's STS TXT record among the n TXT strings of
 * `_mta-sts.DOMAIN` (each RR's character-strings already concatenated).
 * Records not starting with "v=STSv1;" (or "v=STSv1" alone) are ignored;
 * exactly one must remain and be valid. 0 and id (NUL-terminated),
 * SL_ENOTFOUND none or several, SL_EPROTO the one is malformed. */
int mta_sts_txt_id(const char *const *txts, size_t n, char id[MTA_STS_ID_MAX + 1]);

/* Parse a policy file of len bytes into *out. 0 or SL_EPROTO (out is then
 * unspecified). */
int mta_sts_parse(const char *text, size_t len, struct mta_sts_policy *out);

/* Does MX host name host (any case, trailing dot ignored) match one of the
 * policy's mx patterns? A "*.example.com" pattern matches exactly one more
 * label: "mx.example.com", not "example.com" nor "a.b.example.com". */
bool mta_sts_mx_match(const struct mta_sts_policy *p, const char *host);

/* "enforce", "testing", "none". */
const char *mta_sts_mode_name(enum mta_sts_mode m);

#endif
