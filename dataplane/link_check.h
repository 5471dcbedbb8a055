/*
 * link_check.h — outbound link checking, the sans-I/O half: which hosts a
 * message links to, whether a local blocklist names one, how a DNS
 * blocklist's answer reads. No sockets, no clock, no logging; the
 * asynchronous half (lookups, timeout, actions) is link_guard.h.
 *
 * Extraction: every text/plain and text/html part (a message without MIME
 * structure is one text/plain part) is transfer-decoded (base64,
 * quoted-printable: soft line breaks joined, so a URL split by "=\r\n"
 * is found whole) and scanned for "http://", "https://" (case-insensitive;
 * "http:\\" too, as browsers read it) and bare "www." hosts. The host is
 * the authority without userinfo (everything up to the last '@', so
 * "http://good.test@bad.test/" is bad.test) and without port,
 * percent-decoded, lower-cased (ASCII only), without a trailing dot.
 * Internationalised names are kept as they are written (UTF-8 or
 * punycode; no IDNA mapping), IPv6 literals are skipped, IPv4 literals
 * are kept as text. HTML entities in URLs are not decoded. Headers are not
 * scanned.
 *
 * Bounds: at most max_scan decoded bytes in all (the rest of the message
 * is not looked at) and max_hosts distinct hosts (at most LINK_HOSTS_MAX);
 * `truncated` says either cut the scan short. The caller's scratch
 * buffer (max_scan + 1 bytes) holds one decoded part at a time: no
 * allocation here.
 *
 * Errors: the blocklist loaders return SL_ECONFIG ("FILE:LINE: why" in
 * err), -errno when the file cannot be read, -ENOMEM.
 */
#ifndef SL_LINK_CHECK_H
#define SL_LINK_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_HOSTS_MAX 100
#define LINK_HOST_LEN 256 /* a host name with its NUL */

struct link_scan {
	char hosts[LINK_HOSTS_MAX][LINK_HOST_LEN]; /* distinct, in order of appearance */
	size_t n_hosts;
	size_t max_hosts;  /* set by link_scan_init */
	size_t scanned;    /* decoded bytes looked at */
	bool truncated;    /* max_scan or max_hosts was reached */
};

/* Empty s and set its host limit (clamped to 1..LINK_HOSTS_MAX). */
void link_scan_init(struct link_scan *s, size_t max_hosts);
/* Add the hosts of the URLs in decoded text [text, text+len) to s. */
void link_scan_text(struct link_scan *s, const char *text, size_t len);
/* Add the hosts of msg's text parts (RFC 5322 message, CRLF or LF) to s,
 * decoding at most max_scan bytes into scratch (max_scan + 1 bytes). */
void link_scan_message(struct link_scan *s, const char *msg, size_t len, size_t max_scan,
		       char *scratch);

/* A local blocklist: domains, one a line; a line matches the domain and
 * its subdomains ("evil.test" matches evil.test and www.evil.test).
 * '#' starts a comment; a leading "*." or "." is ignored. */
struct link_blocklist;
int link_blocklist_load(const char *path, struct link_blocklist **out, char *err, size_t errlen);
int link_blocklist_parse(const char *name, const char *text, size_t len,
			 struct link_blocklist **out, char *err, size_t errlen);
void link_blocklist_free(struct link_blocklist *bl);
size_t link_blocklist_count(const struct link_blocklist *bl);
/* The listed domain that matches host (lower case), or NULL. bl may be NULL. */
const char *link_blocklist_match(const struct link_blocklist *bl, const char *host);

/* The name a URI blocklist is asked about for host: its registered domain
 * (taken as the last two labels, without a public-suffix list, so
 * "a.b.example.co.uk" asks about "co.uk"), then ".zone". 0, or -EINVAL
 * when host is an IP literal, has one label, or does not fit. */
int link_uribl_name(const char *host, const char *zone, char *out, size_t outlen);

/* How one DNS blocklist answer reads (URIBL and DNSBL alike). */
enum link_dns_verdict {
	LINK_DNS_CLEAN,  /* NXDOMAIN / no address: not listed */
	LINK_DNS_LISTED, /* an A record 127.0.0.x */
	LINK_DNS_ERROR,  /* 127.255.255.x (query refused: blocked resolver,
			    over quota) or another answer: ignored */
};
/* addrs: the A records as host-order IPv4 addresses. n 0 is clean. The
 * first listing answer's text ("127.0.0.2") goes to code when listed. */
enum link_dns_verdict link_dns_verdict(const uint32_t *addrs, size_t n, char *code,
				       size_t codelen);

#endif
