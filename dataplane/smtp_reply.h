/*
 * smtp_reply.h — SMTP replies (RFC 5321 §4.2) as a receiver sends them.
 *
 * A reply is one or more lines "NNN-text" ending with a line "NNN text" (or
 * a bare "NNN"), all with the same three-digit code. smtp_reply_parse() turns
 * the bytes of one complete reply into a struct smtp_reply; smtp_reply_scan()
 * finds where a reply ends in a buffer that is still filling up, without
 * rescanning lines it has seen (so a peer trickling bytes costs linear time).
 *
 * Leniency: lines may end in CRLF or a bare LF. Strictness: the first digit
 * must be 2..5, the others digits, the fourth byte '-' or ' ' (or the line
 * ends after the code), every line carries the first line's code, a line is
 * at most SMTP_REPLY_LINE_MAX bytes with its terminator and a whole reply at
 * most SMTP_REPLY_MAX bytes. Anything else is SL_EPROTO (common/err.h).
 *
 * Nothing here allocates; struct smtp_reply is plain data the caller owns.
 */
#ifndef SL_SMTP_REPLY_H
#define SL_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_REPLY_LINE_MAX 2048 /* one line, terminator included */
#define SMTP_REPLY_MAX 65536     /* one whole reply */

struct smtp_reply {
	int code;          /* 200..599 */
	char enhanced[16]; /* RFC 3463 status of the first line, e.g. "5.1.1", or "" */
	/* The lines' text without code, separator, enhanced status or line
	 * ending, trimmed and joined with single spaces; control bytes become
	 * spaces. Cut at a UTF-8 character boundary if longer; NUL-terminated. */
	char text[1024];
	unsigned n_lines;
};

/* Parse one reply at the start of buf. 1: complete, *out filled and
 * *consumed set to its length in bytes; 0: incomplete, read more bytes;
 * SL_EPROTO: malformed (out is then unspecified). */
int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out, size_t *consumed);

/* Incremental end-of-reply search over a buffer that begins with a reply and
 * only ever grows at the end. Keep *state (start at 0) between calls with
 * the same buffer start; reset it after consuming the reply. 1: a complete,
 * well-formed reply of *state bytes is there (smtp_reply_parse() on those
 * bytes succeeds); 0: more bytes needed; SL_EPROTO: malformed. */
int smtp_reply_scan(const char *buf, size_t len, size_t *state);

/* Step through the lines of a reply smtp_reply_parse() accepted (len = its
 * *consumed). Start with *pos = 0. 1: *text, *text_len is the next line after
 * "NNN-" / "NNN ", without the line ending; 0: no more lines. */
int smtp_reply_next_line(const char *buf, size_t len, size_t *pos, const char **text,
			 size_t *text_len);

/* If text begins with an RFC 3463 enhanced status code (class 2, 4 or 5;
 * subject and detail of 1..3 digits) followed by a space or the end, copy it
 * NUL-terminated into out and return the bytes it occupies including the
 * spaces after it; otherwise return 0 and set out to "". */
size_t smtp_reply_parse_enhanced(const char *text, size_t len, char out[16]);

/* Format r on one line for logs: "550 5.1.1 User unknown" (parts that are
 * empty are left out). Returns what snprintf() would: the untruncated length. */
int smtp_reply_format(const struct smtp_reply *r, char *dst, size_t size);

#endif
