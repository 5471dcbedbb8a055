/*
 * unsubscribe.h — one-click unsubscribe (RFC 8058) links: the
 * List-Unsubscribe / List-Unsubscribe-Post header fields the acceptance
 * path adds to marketing mail, and the check of a presented link.
 *
 * A link is BASE "/v1/unsubscribe/" TOKEN with TOKEN = hex(tenant) "."
 * hex(recipient) "." hex(first 16 bytes of HMAC-SHA256(key, tenant NUL
 * recipient)). The key is SHA-256 of sender_auth.unsubscribe_secret, so
 * every process with the configuration derives the same one; nothing is
 * stored per message. A POST to the link (no API token: the link is the
 * credential) adds the recipient to the tenant's suppression list.
 *
 * Pure functions, any thread. Errors: -EINVAL bad argument or a token that
 * does not parse; -EPERM a token whose HMAC does not match; -ENOMEM.
 */
#ifndef SL_UNSUBSCRIBE_H
#define SL_UNSUBSCRIBE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define UNSUBSCRIBE_TENANT_MAX 64
#define UNSUBSCRIBE_ADDR_MAX 320

/* key = SHA-256(secret). */
void unsubscribe_key(const char *secret, uint8_t key[32]);
/* Append the token for (tenant, rcpt) to out. */
int unsubscribe_token(const uint8_t key[32], const char *tenant, const char *rcpt,
		      struct sl_buf *out);
/* Append "List-Unsubscribe: <BASE/v1/unsubscribe/TOKEN>\r\n" and
 * "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" to out. */
int unsubscribe_headers(const uint8_t key[32], const char *base_url, const char *tenant,
			const char *rcpt, struct sl_buf *out);
/* Check token; 0 with the tenant and (lower-cased) recipient. */
int unsubscribe_parse(const uint8_t key[32], const char *token,
		      char tenant[UNSUBSCRIBE_TENANT_MAX + 1], char rcpt[UNSUBSCRIBE_ADDR_MAX + 1]);

#endif
