/*
 * mime.h — a small, bounded MIME reader for reports arriving at the
 * appliance: DSNs (bounce.c), ARF feedback reports (arf.c) and, later, the
 * inbound listener. It never allocates: a part is a header section and a
 * body, both pointing into the caller's message (CRLF or LF line ends), and
 * decoded text goes into caller-sized buffers, cut to fit. Depth and part
 * counts are bounded, so hostile nesting costs little.
 *
 * Why our own and not a library: GMime (Debian's libgmime) builds a GObject
 * tree per message; classifying a bounce needs a handful of header fields
 * and one decoded part, done in place.
 */
#ifndef SL_MIME_H
#define SL_MIME_H

#include <stddef.h>

struct mime_part {
	const char *hdr;
	size_t hdr_len;
	const char *body;
	size_t body_len;
};

/* Split a message or body part at its first empty line. */
void mime_split(const char *msg, size_t len, struct mime_part *p);
/* Copy the unfolded, trimmed value of header field name into out (cut to
 * outlen - 1 bytes, control bytes as spaces). 1 found, 0 not found. */
int mime_header(const char *hdr, size_t hdr_len, const char *name, char *out, size_t outlen);
/* The parameter param of a structured value (Content-Type), unquoted. 1/0. */
int mime_param(const char *value, const char *param, char *out, size_t outlen);
/* Lower-case "type/subtype" of a part into out (default text/plain). */
void mime_ctype(const struct mime_part *p, char *out, size_t outlen);
/* Decode the part's body per Content-Transfer-Encoding (base64,
 * quoted-printable, else copied) into out, NUL-terminated; returns length. */
size_t mime_decode(const struct mime_part *p, char *out, size_t outlen);

/* Called for every non-multipart part (message/rfc822 parts are not
 * entered); depth 0 is the message itself. Return non-zero to stop. */
typedef int (*mime_fn)(void *ctx, const struct mime_part *p, const char *ctype, int depth);
/* Walk the MIME tree of a whole message, at most 8 levels and 128 parts. */
void mime_walk(const char *msg, size_t len, mime_fn fn, void *ctx);

/* Copy n bytes of s to out (size outlen, always terminated) with control
 * bytes as spaces, runs of white space collapsed, trimmed. */
void mime_clean_copy(char *out, size_t outlen, const char *s, size_t n);

#endif
