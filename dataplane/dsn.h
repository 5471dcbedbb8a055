/*
 * dsn.h — RFC 3464 delivery status notifications ("bounces") for mail we
 * could not deliver, or have not delivered yet.
 *
 * dsn_build() renders one complete RFC 5322 message, CRLF line endings
 * throughout, as multipart/report; report-type=delivery-status with three
 * parts: a human-readable text/plain explanation, the machine-readable
 * message/delivery-status, and the original message's header section only
 * (text/rfc822-headers; never the body, so a DSN cannot be used to reflect
 * content at a third party). If every recipient is "delayed" the subject
 * and text say the mail is still being retried; otherwise the subject is
 * "Undelivered Mail Returned to Sender".
 *
 * Caller rules:
 *  - send the result with a null envelope sender (MAIL FROM:<>) to
 *    info->mail_from, so a failing DSN can never cause another DSN;
 *  - never build a DSN for a message whose envelope sender was empty (it
 *    already was a bounce); dsn_build refuses with -EINVAL as a backstop;
 *  - the caller supplies all times (no clock reads here).
 *
 * Every interpolated value is sanitised: CR, LF and other control
 * characters become a space (a CRLF run becomes one space), and values are
 * cut at DSN_FIELD_MAX bytes so no line exceeds RFC 5322's 998. The included
 * header section has its line endings normalised to CRLF and is cut at a
 * line boundary after DSN_HEADERS_MAX bytes. The MIME boundary is derived
 * from boundary_seed and is guaranteed not to occur in any part.
 *
 * Errors: -EINVAL missing or invalid fields (no recipients, empty sender,
 * an action other than failed/delayed/delivered/relayed/expanded, a status
 * that is not N.N.N), -ENOMEM. On error out may hold a partial message;
 * on success the message was appended to out.
 */
#ifndef SL_DSN_H
#define SL_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define DSN_FIELD_MAX 900
#define DSN_HEADERS_MAX 65536

struct dsn_rcpt {
	const char *addr;       /* the failed recipient, without angle brackets */
	const char *status;     /* RFC 3463 code, e.g. "5.1.1" */
	const char *diagnostic; /* e.g. "smtp; 550 5.1.1 User unknown"; may be NULL */
	const char *remote_mta; /* host that answered; may be NULL */
	const char *action;     /* "failed" | "delayed" (also delivered/relayed/expanded) */
};

struct dsn_info {
	const char *reporting_mta; /* our hostname */
	const char *mail_from;     /* original envelope sender: the DSN's recipient */
	const char *original_id;   /* our queue id; may be NULL */
	uint64_t arrival_ms;       /* when we accepted the message, ms since the epoch */
	uint64_t now_ms;           /* Date: and Last-Attempt-Date: */
	const struct dsn_rcpt *rcpts;
	size_t n_rcpts;
	const char *original; /* the original message; only its headers are used */
	size_t original_len;  /* 0 (or original NULL): no third part */
	const char *boundary_seed; /* unique per DSN, e.g. queue id + time; may be NULL */
};

/* Append the DSN message for info to out. 0 or -EINVAL / -ENOMEM. */
int dsn_build(const struct dsn_info *info, struct sl_buf *out);

#endif
