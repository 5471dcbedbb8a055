/*
 * base64.h — RFC 4648 base64 decoding (standard alphabet), strict.
 *
 * Used where sluice reads base64 from untrusted places: SMTP AUTH
 * responses (padding required, RFC 4954) and stored password hashes
 * (padding optional). No whitespace is accepted anywhere and non-canonical
 * trailing bits are rejected, so every input has one meaning.
 */
#ifndef SL_BASE64_H
#define SL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* The 6-bit value of a base64 alphabet character, or -1. For lenient
 * decoders (MIME bodies skip line breaks and junk) built on top of it. */
int base64_value(unsigned char c);

/* Decode in[0..len) into out (room for outmax bytes). With need_padding,
 * the input must be a multiple of 4 with '=' padding; otherwise padding may
 * be left out. Returns the decoded length, or -1 for malformed input or
 * too little room. */
long base64_decode(const char *in, size_t len, bool need_padding, unsigned char *out,
		   size_t outmax);

#endif
