/*
 * message.h — small, allocation-free helpers on RFC 5322 messages as the
 * ingress stores them (CRLF line endings, header section then a blank line).
 *
 * Header names match case-insensitively; folded continuation lines belong
 * to the field above them. Only the header section is ever looked at.
 */
#ifndef SL_MESSAGE_H
#define SL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Length of the header section including its terminating empty line (or
 * len when the message has no body). */
size_t message_header_len(const char *msg, size_t len);

/* Copy the unfolded, trimmed value of the first `name` field into out
 * (NUL-terminated, truncated to outlen - 1). False if absent. */
bool message_header_get(const char *msg, size_t len, const char *name, char *out,
			size_t outlen);

/* Append msg to out, leaving out every `name` field (e.g. internal
 * X-Sluice-* control headers). 0 or -ENOMEM. */
int message_append_without(struct sl_buf *out, const char *msg, size_t len, const char *name);

/* The domain of the (first) address in a From: field value such as
 * "Acme <news@acme.test>" or "news@acme.test", lower-cased into out.
 * False when there is none. */
bool message_from_domain(const char *from_value, char *out, size_t outlen);

/* RFC 5322 date-time for a wall-clock time in ms, e.g.
 * "Mon, 23 Nov 2026 09:34:27 +0000". */
void message_date(unsigned long long wall_ms, char out[40]);

#endif
